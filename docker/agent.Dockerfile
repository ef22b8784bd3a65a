# The agent image: the static mysql-sts binary and nothing else. Its use is to
# hand the binary to the database containers of the pod:
#   mysql-sts install /opt/mysql-sts     (into a shared emptyDir / volume)
# because init and the sidecar need the database's own tools beside them.
# Build context: a directory holding the static binary of each architecture
# as `mysql-sts-<arch>` (amd64, arm64) and an empty directory `empty/`
# (scripts/build-images makes it for amd64; the release workflow for both,
# with buildx, which sets TARGETARCH).
FROM scratch
ARG TARGETARCH=amd64
COPY mysql-sts-${TARGETARCH} /mysql-sts
# An empty directory owned by the image user: a volume mounted there starts
# out writable for `install`, which then needs no root.
COPY --chown=65532:65532 empty/ /opt/mysql-sts/
USER 65532:65532
ENTRYPOINT ["/mysql-sts"]
CMD ["--help"]
