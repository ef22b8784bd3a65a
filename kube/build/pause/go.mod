// Builds the pod sandbox image's process for scripts/kube.
module mysql-sts.local/kube/pause

go 1.26.0
