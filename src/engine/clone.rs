//! What a clone is given, for either engine's recipient: the donor, the
//! staging directory, and how to reach and run things. The caller owns the
//! datadir rule (marker, staging, commit); each engine only fills
//! `<staging>/data` with a verified, ready-to-start copy.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::engine::mysqld::Binary;
use crate::error::{Error, IoContext, Result};
use crate::net::agent_client::AgentClient;
use crate::net::sql::Target;
use crate::net::wire::{Compression, Decoder, Frame, Trailer};

/// A donor that resolved and answered ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Donor {
    pub name: String,
    pub ip: IpAddr,
}

/// Everything a clone needs besides the credentials.
pub struct Request<'a> {
    pub donor: &'a Donor,
    pub staging: &'a Path,
    pub mysql_port: u16,
    pub http: &'a AgentClient,
    pub replication_user: &'a str,
    pub binary: &'a Binary,
    pub stall_timeout: Duration,
    /// Who the server runs as, when the agent runs as root and must hand over what it writes.
    pub owner: Option<(u32, u32)>,
    /// The copy becomes a master (an empty master's re-seed), not a replica.
    pub for_master: bool,
    /// With a CA: the MySQL clone requires TLS and verifies the donor's
    /// certificate against it.
    pub tls_ca: Option<&'a Path>,
    /// The compression the recipient asks for: of a MariaDB donor's stream,
    /// of a MySQL CLONE's network layer.
    pub compression: Compression,
}

impl Request<'_> {
    /// This copy failed, for `why`: the error names where it came from.
    pub fn fail(&self, why: String) -> Error {
        Error::Clone {
            donor: self.donor.name.clone(),
            why,
        }
    }

    /// Makes `<staging>/data`, where the copy lands; returns it and the
    /// room left on its volume.
    pub fn data_dir(&self) -> Result<(PathBuf, u64)> {
        let data = self.staging.join("data");
        std::fs::create_dir(&data)
            .map_err(|e| self.fail(format!("cannot create {}: {e}", data.display())))?;
        let free = crate::datadir::free_bytes(&data).map_err(|e| self.fail(e.to_string()))?;
        Ok((data, free))
    }
}

/// The donor's side: one clone stream to serve to a recipient.
pub struct StreamJob {
    /// The local server, as the backup tool logs in to it.
    pub local: Target,
    pub datadir: PathBuf,
    /// Ends the stream at once (the sidecar stops).
    pub shutdown: CancellationToken,
    /// The donor's one clone slot, held until the stream ends.
    pub permit: OwnedSemaphorePermit,
    /// Who pulls the stream, for logs and status.
    pub peer: String,
    pub watcher: Arc<dyn StreamWatcher>,
    /// What the recipient asked for.
    pub compression: Compression,
    /// The most bytes per second the donor sends (`--clone-max-rate`).
    pub max_rate: Option<u64>,
}

/// Told what a clone stream does, for the donor's status and metrics.
pub trait StreamWatcher: Send + Sync {
    fn started(&self, peer: &str);
    /// `n` more bytes went out, `total` so far, `elapsed` since the start.
    fn sent(&self, n: u64, total: u64, elapsed: Duration);
    /// The backup tool's peak resident memory during the stream, in bytes.
    fn backup_peak_rss(&self, bytes: u64);
    /// The stream ended, with its trailer (`ok`) or cut short.
    fn finished(&self, ok: bool);
}

/// Reads a copy framed as a clone stream from `body` until its trailer,
/// handing each data frame's bytes to `data` in order; gives up on a stream
/// that brings nothing for `stall`, breaks, ends early, fails or does not
/// match its trailer. Returns the trailer, and the stream's bytes on the wire.
pub async fn read_framed(
    mut body: BoxStream<'_, std::result::Result<Bytes, String>>,
    stall: Duration,
    progress: &mut crate::progress::Progress,
    mut data: impl AsyncFnMut(Bytes) -> std::result::Result<(), String>,
) -> std::result::Result<(Trailer, u64), String> {
    let mut dec = Decoder::default();
    let mut trailer = None;
    while trailer.is_none() {
        let chunk = match tokio::time::timeout(stall, body.next()).await {
            Err(_) => {
                return Err(format!(
                    "no data for {} s after {} bytes",
                    stall.as_secs(),
                    dec.bytes()
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(format!("the stream broke after {} bytes: {e}", dec.bytes()));
            }
            Ok(Some(Ok(c))) => c,
        };
        dec.push(&chunk);
        while let Some(frame) = dec.next_frame().map_err(|e| e.to_string())? {
            match frame {
                Frame::Data(d) => data(d).await?,
                Frame::End(t) => trailer = Some(t),
                Frame::Fail(m) => return Err(format!("the donor failed: {m}")),
            }
        }
        progress.update(dec.bytes());
    }
    dec.finish().map_err(|e| e.to_string())?;
    Ok((
        trailer.expect("finish() checked the trailer"),
        dec.wire_bytes(),
    ))
}

/// A private directory for sockets and logs; short, as socket paths must be.
/// Owned by `owner` when given, so that a server started as that user can use it.
pub fn run_dir_for(tag: &str, owner: Option<(u32, u32)>) -> Result<PathBuf> {
    let dir = run_dir(tag)?;
    if let Some(o) = owner {
        crate::datadir::chown_tree(&dir, o)?;
    }
    Ok(dir)
}

/// A private directory for sockets and logs; short, as socket paths must be.
pub fn run_dir(tag: &str) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("mysql-sts-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .io_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
