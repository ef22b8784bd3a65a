//! The bucket backups live in: an S3-compatible object store, reached with
//! the `object_store` crate. Under the configured prefix each backup is a
//! folder `backups/<id>/` with two objects: `stream`, the copy exactly as a
//! clone stream carries it (framed, checksummed, possibly compressed), and
//! `manifest.json`, written last. A backup without its manifest never
//! finished: it is listed as incomplete and never restored.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};

use super::Manifest;
use crate::error::{Error, Result};
use crate::secret::SecretSource;

/// Parts of an upload: large enough that a few in flight keep a link busy,
/// small enough that they cost little memory.
const PART_BYTES: usize = 8 << 20;
/// Parts uploaded at once.
const PARTS_IN_FLIGHT: usize = 2;

/// Where backups go and how to log in there.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `s3://<bucket>[/<prefix>]`.
    pub url: String,
    /// The store's address, for a store that is not AWS itself, e.g.
    /// `https://minio.backup.svc:9000`.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key: SecretSource,
    pub secret_key: SecretSource,
    /// A CA bundle (PEM) the store's certificate must chain to, in place
    /// of the system's trust store.
    pub ca: Option<PathBuf>,
}

/// One backup folder as the bucket lists it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    /// Absent: the backup never finished (or is still being written), or
    /// it was not read ([`Store::scan`]).
    pub manifest: Option<Manifest>,
    /// It has a manifest.
    pub complete: bool,
    /// The bytes its objects take in the bucket.
    pub stored_bytes: u64,
    pub last_modified: std::time::SystemTime,
}

/// An open bucket.
#[derive(Clone)]
pub struct Store {
    s3: Arc<AmazonS3>,
    prefix: ObjPath,
    /// `s3://bucket/prefix`, for messages.
    pub url: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl Store {
    pub fn open(cfg: &StoreConfig) -> Result<Store> {
        let bad = |why: String| Error::config(format!("backup store {}: {why}", cfg.url));
        let rest = cfg
            .url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("not an s3://<bucket>[/<prefix>] URL".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("names no bucket".into()));
        }
        let access = cfg.access_key.load()?;
        let secret = cfg.secret_key.load()?;
        // Our own stall timeouts bound each read and write: a request
        // timeout would cut a long download (the client resumes a cut one,
        // a few times only).
        let mut client = ClientOptions::new()
            .with_timeout_disabled()
            .with_connect_timeout(Duration::from_secs(10));
        // Plain HTTP needs no trust store, and a CA of the user's is the only
        // one trusted: a minimal image may hold none of the system's.
        let plain_http = cfg
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        client = client.with_no_system_certificates(plain_http || cfg.ca.is_some());
        if let Some(ca) = &cfg.ca {
            let pem = std::fs::read(ca)
                .map_err(|e| bad(format!("cannot read the CA {}: {e}", ca.display())))?;
            let certs = object_store::Certificate::from_pem_bundle(&pem)
                .map_err(|e| bad(format!("the CA {}: {e}", ca.display())))?;
            for c in certs {
                client = client.with_root_certificate(c);
            }
        }
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&cfg.region)
            .with_access_key_id(access.expose())
            .with_secret_access_key(secret.expose())
            .with_client_options(client)
            .with_retry(RetryConfig {
                max_retries: 5,
                retry_timeout: Duration::from_secs(60),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &cfg.endpoint {
            // A store of its own (MinIO, SeaweedFS, Ceph) answers at one
            // address for every bucket.
            b = b
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let s3 = b.build().map_err(|e| {
            bad(if cfg.ca.is_none() && !plain_http {
                format!(
                    "{e}: is there a system trust store to verify the store's certificate with? \
                     Else give its CA with --backup-ca-file"
                )
            } else {
                e.to_string()
            })
        })?;
        Ok(Store {
            s3: Arc::new(s3),
            prefix: ObjPath::from(prefix),
            url: cfg.url.trim_end_matches('/').to_owned(),
        })
    }

    fn fail(&self, what: &str, e: impl std::error::Error) -> Error {
        // The store's client says "error sending request" and keeps the
        // cause (a refused connection, a certificate not trusted) beneath.
        let mut why = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            let said = cause.to_string();
            if !why.contains(&said) {
                why = format!("{why}: {said}");
            }
            source = cause.source();
        }
        Error::Backup {
            what: format!("{what} in {}", self.url),
            why: plain(&why),
        }
    }

    fn backups(&self) -> ObjPath {
        self.prefix.clone().join("backups")
    }

    fn object(&self, id: &str, name: &str) -> ObjPath {
        self.backups().join(id).join(name)
    }

    /// Every backup folder, oldest first, with its manifest when it has one
    /// (a backup deleted meanwhile, by another pod's retention, is left out).
    pub async fn list(&self) -> Result<Vec<Listed>> {
        let mut all = self.scan().await?;
        let mut gone = Vec::new();
        for l in &mut all {
            if l.complete {
                match self.read_manifest(&l.id).await? {
                    Some(m) => l.manifest = Some(m),
                    None => gone.push(l.id.clone()),
                }
            }
        }
        all.retain(|l| !gone.contains(&l.id));
        Ok(all)
    }

    /// Every backup folder, oldest first, from the bucket's listing alone
    /// (one request per thousand objects; no manifest is read).
    pub async fn scan(&self) -> Result<Vec<Listed>> {
        let mut found: std::collections::BTreeMap<String, Listed> = Default::default();
        let base = self.backups();
        let mut objects = self.s3.list(Some(&base));
        while let Some(meta) = objects.next().await {
            let meta = meta.map_err(|e| self.fail("cannot list the backups", e))?;
            let mut parts = meta.location.prefix_match(&base).into_iter().flatten();
            let (Some(id), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            let id = id.as_ref().to_owned();
            let entry = found.entry(id.clone()).or_insert_with(|| Listed {
                id,
                manifest: None,
                complete: false,
                stored_bytes: 0,
                last_modified: std::time::UNIX_EPOCH,
            });
            entry.stored_bytes += meta.size;
            entry.last_modified = entry.last_modified.max(meta.last_modified.into());
            entry.complete |= name.as_ref() == super::MANIFEST;
        }
        Ok(found.into_values().collect())
    }

    /// The manifest of backup `id`.
    pub async fn manifest(&self, id: &str) -> Result<Manifest> {
        self.read_manifest(id).await?.ok_or_else(|| Error::Backup {
            what: format!("backup {id}"),
            why: format!(
                "{} holds no manifest for it: it does not exist or never finished",
                self.url
            ),
        })
    }

    /// The manifest of backup `id`; `None` when there is none.
    async fn read_manifest(&self, id: &str) -> Result<Option<Manifest>> {
        let what = format!("backup {id}");
        let got = match self.s3.get(&self.object(id, super::MANIFEST)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.fail(&format!("cannot read the manifest of {what}"), e)),
        };
        let body = match got.bytes().await {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.fail(&format!("cannot read the manifest of {what}"), e)),
        };
        Manifest::parse(&body)
            .map(Some)
            .map_err(|why| Error::Backup { what, why })
    }

    pub async fn put_manifest(&self, m: &Manifest) -> Result<()> {
        let body = serde_json::to_vec_pretty(m).expect("a manifest serialises");
        self.s3
            .put(&self.object(&m.id, super::MANIFEST), PutPayload::from(body))
            .await
            .map_err(|e| self.fail(&format!("cannot write the manifest of backup {}", m.id), e))?;
        Ok(())
    }

    /// Starts writing the stream of backup `id`.
    pub async fn upload(&self, id: &str) -> Result<Upload> {
        self.start_upload(&self.object(id, super::STREAM), format!("backup {id}"))
            .await
    }

    /// Starts writing the object at `path`, `what` for messages.
    async fn start_upload(&self, path: &ObjPath, what: String) -> Result<Upload> {
        let up = self
            .s3
            .put_multipart(path)
            .await
            .map_err(|e| self.fail(&format!("cannot start the upload of {what}"), e))?;
        Ok(Upload {
            w: WriteMultipart::new_with_chunk_size(up, PART_BYTES),
            store: self.clone(),
            what,
            bytes: 0,
        })
    }

    /// The stream of backup `id`, from its first byte; its object must be
    /// the `size` bytes its manifest says.
    pub async fn download(
        &self,
        id: &str,
        size: u64,
    ) -> Result<BoxStream<'static, std::result::Result<Bytes, String>>> {
        self.read(
            &self.object(id, super::STREAM),
            format!("backup {id}"),
            Some(size),
        )
        .await
    }

    /// The object at `path` as a stream, `what` for messages; when `size`
    /// is given the object must be that long.
    async fn read(
        &self,
        path: &ObjPath,
        what: String,
        size: Option<u64>,
    ) -> Result<BoxStream<'static, std::result::Result<Bytes, String>>> {
        let got = self
            .s3
            .get(path)
            .await
            .map_err(|e| self.fail(&format!("cannot read {what}"), e))?;
        if let Some(size) = size
            && got.meta.size != size
        {
            return Err(Error::Backup {
                what: format!("{what} in {}", self.url),
                why: format!(
                    "its stream is {} bytes and its manifest says {size}: not the stream the manifest was written for",
                    got.meta.size
                ),
            });
        }
        let store = self.clone();
        Ok(got
            .into_stream()
            .map(move |r| r.map_err(|e| store.fail(&format!("reading {what}"), e).to_string()))
            .boxed())
    }

    /// Deletes every object of backup `id`.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let base = self.backups().join(id);
        let mut objects = self.s3.list(Some(&base));
        let mut paths = Vec::new();
        while let Some(meta) = objects.next().await {
            paths.push(
                meta.map_err(|e| self.fail(&format!("cannot list backup {id}"), e))?
                    .location,
            );
        }
        // The manifest first: a backup half deleted is never taken for good.
        paths.sort_by_key(|p| p.filename() != Some(super::MANIFEST));
        for p in paths {
            self.s3
                .delete(&p)
                .await
                .map_err(|e| self.fail(&format!("cannot delete {p}"), e))?;
        }
        Ok(())
    }
}

impl Store {
    fn binlogs(&self, history: &str) -> ObjPath {
        self.prefix.clone().join("binlogs").join(history)
    }

    /// The binary logs of `history` in the archive, by name, with their
    /// records: a log without its record never finished uploading.
    pub async fn archived(&self, history: &str) -> Result<Vec<ArchivedLog>> {
        let base = self.binlogs(history);
        let mut records = Vec::new();
        let mut objects = self.s3.list(Some(&base));
        while let Some(meta) = objects.next().await {
            let meta = meta.map_err(|e| self.fail("cannot list the binary log archive", e))?;
            if meta
                .location
                .filename()
                .is_some_and(|f| f.ends_with(RECORD))
            {
                records.push(meta.location);
            }
        }
        let mut out = Vec::with_capacity(records.len());
        for path in records {
            let read = async { self.s3.get(&path).await?.bytes().await };
            let body = read
                .await
                .map_err(|e| self.fail(&format!("cannot read {path}"), e))?;
            let record: ArchivedLog = serde_json::from_slice(&body).map_err(|e| Error::Backup {
                what: format!("{path} in {}", self.url),
                why: format!("not a binary log record: {e}"),
            })?;
            out.push(record);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The records of every archived binary log, of every history.
    pub async fn archive(&self) -> Result<Vec<ArchivedLog>> {
        let base = self.prefix.clone().join("binlogs");
        let listed = self
            .s3
            .list_with_delimiter(Some(&base))
            .await
            .map_err(|e| self.fail("cannot list the binary log archive", e))?;
        let mut out = Vec::new();
        for history in listed.common_prefixes {
            if let Some(name) = history.filename() {
                out.extend(self.archived(name).await?);
            }
        }
        Ok(out)
    }

    /// Uploads the closed binary log at `path` as `record.name`, then its
    /// record.
    pub async fn archive_binlog(&self, path: &std::path::Path, record: &ArchivedLog) -> Result<()> {
        use tokio::io::AsyncReadExt;
        let object = self.binlogs(&record.history).join(record.name.as_str());
        let what = format!("binary log {}", record.name);
        let mut up = self.start_upload(&object, what.clone()).await?;
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| self.fail(&format!("cannot read {}", path.display()), e))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    up.abort().await;
                    return Err(self.fail(&format!("cannot read {}", path.display()), e));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = up.write(&buf[..n]).await {
                up.abort().await;
                return Err(e);
            }
        }
        up.finish().await?;
        let body = serde_json::to_vec_pretty(record).expect("a record serialises");
        let at = self
            .binlogs(&record.history)
            .join(format!("{}{RECORD}", record.name).as_str());
        self.s3
            .put(&at, PutPayload::from(body))
            .await
            .map_err(|e| self.fail(&format!("cannot write the record of {what}"), e))?;
        Ok(())
    }

    /// Streams the archived binary log `name` of `history`.
    pub async fn download_binlog(
        &self,
        history: &str,
        name: &str,
    ) -> Result<BoxStream<'static, std::result::Result<Bytes, String>>> {
        self.read(
            &self.binlogs(history).join(name),
            format!("binary log {name}"),
            None,
        )
        .await
    }
}

/// The suffix of a binary log's record in the archive.
pub const RECORD: &str = ".json";

/// What the archive knows of one closed binary log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArchivedLog {
    pub name: String,
    /// The master's history the log belongs to (names start again in another).
    pub history: String,
    pub engine: crate::engine::Flavor,
    /// The GTID position before its first transaction, and after its last.
    pub start: String,
    pub end: String,
    pub bytes: u64,
    /// When it was closed (its file's last write), RFC 3339 UTC: its
    /// transactions were committed before.
    pub closed: String,
}

/// An object being written, in parts: a backup's stream, an archived log.
pub struct Upload {
    w: WriteMultipart,
    store: Store,
    /// What is uploaded, for messages (`backup <id>`, `binary log <name>`).
    what: String,
    pub bytes: u64,
}

impl Upload {
    /// Queues `data`, waiting while too many parts are in flight.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.w
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(|e| self.store.fail(&format!("cannot upload {}", self.what), e))?;
        self.w.write(data);
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Completes the object.
    pub async fn finish(self) -> Result<u64> {
        let (store, what, bytes) = (self.store, self.what, self.bytes);
        self.w
            .finish()
            .await
            .map_err(|e| store.fail(&format!("cannot complete the upload of {what}"), e))?;
        Ok(bytes)
    }

    /// Gives the upload up: the store drops the parts sent.
    pub async fn abort(self) {
        if let Err(e) = self.w.abort().await {
            tracing::warn!(upload = %self.what, error = %e, "cannot abort the upload; the store keeps its parts until its own cleanup");
        }
    }
}

/// The store's answer in a few words: S3's error code and message, with
/// what to do for the usual ones, rather than the request and its XML.
fn plain(error: &str) -> String {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = error.find(&open)? + open.len();
        let len = error[start..].find(&format!("</{name}>"))?;
        Some(error[start..start + len].to_owned())
    };
    let Some(code) = tag("Code") else {
        return error.to_owned();
    };
    let message = tag("Message").unwrap_or_default();
    let hint = match code.as_str() {
        "SignatureDoesNotMatch" | "InvalidAccessKeyId" => {
            ": check the access key and secret key (--backup-access-key-file, --backup-secret-key-file)"
        }
        "AccessDenied" => {
            ": check what the keys may do in the bucket; a store may also refuse every write to a full bucket"
        }
        "NoSuchBucket" => ": create the bucket, or fix --backup-url",
        "QuotaExceeded" | "EntityTooLarge" => ": the bucket is full",
        _ => "",
    };
    format!("the store answered {code} ({message}){hint}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stores_answer_is_put_plainly() {
        let raw = "Generic S3 error: Error performing list request: Error performing GET \
                   http://h/b?list-type=2 in 1ms - Server returned non-2xx status code: 404 Not Found: \
                   <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified \
                   bucket does not exist</Message></Error>";
        assert_eq!(
            super::plain(raw),
            "the store answered NoSuchBucket (The specified bucket does not exist): create the bucket, or fix --backup-url"
        );
        assert_eq!(super::plain("connection refused"), "connection refused");
    }
}
