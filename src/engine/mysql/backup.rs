//! A MySQL backup: the CLONE plugin's local clone (`CLONE LOCAL DATA
//! DIRECTORY`) makes a consistent copy beside the datadir (in its parent,
//! the volume's root in the chart's layout), with the server's own page tracking and no lock on its commits;
//! the copy is then sent as an xbstream in clone-stream frames, as a
//! MariaDB copy is, and deleted. The copy starts as it is (a local clone
//! needs no prepare); its exact GTID set is known once it first starts.
//!
//! Why the local clone: it is the engine's own consistent copy (what MySQL
//! replicas are cloned with), it needs nothing outside the server image,
//! and it runs on a replica without touching the master. Its cost is room
//! on the volume for one copy while it is sent.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::datadir::{BACKUP_DIR, Datadir, free_bytes};
use crate::engine::clone::StreamJob;
use crate::engine::xbstream;
use crate::error::{Error, Result};
use crate::net::sql::{self as db, quote};
use crate::net::wire::{self, Compression, Encoder};

/// Bytes of a file per chunk (and frame).
const PIECE: usize = 1 << 20;
/// Frames that may wait for the bucket.
const QUEUE: usize = 4;

/// Starts the backup: the local clone, then its stream.
pub fn start(job: StreamJob) -> Result<mpsc::Receiver<Bytes>> {
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    job.watcher.started(&job.peer);
    tokio::spawn(async move {
        let dir = match job.datadir.parent() {
            Some(parent) => parent.join(BACKUP_DIR),
            None => job.datadir.join(BACKUP_DIR),
        };
        let outcome = tokio::select! {
            r = run(&job, &dir, &tx) => r,
            _ = job.shutdown.cancelled() => Err(Error::Other("the sidecar is shutting down".into())),
            _ = tx.closed() => Err(Error::Other("the bucket's upload went away".into())),
        };
        if let Err(e) = &outcome {
            warn!(backup = %job.peer, error = %e, "backup stream failed");
            let _ = tx.send(Encoder::fail(&e.to_string())).await;
        }
        remove_copy(&dir);
        job.watcher.finished(outcome.is_ok());
        drop(job.permit);
    });
    Ok(rx)
}

async fn run(job: &StreamJob, dir: &Path, tx: &mpsc::Sender<Bytes>) -> Result<()> {
    // A copy a killed sidecar left behind goes first.
    remove_copy(dir);
    let live = Datadir::new(&job.datadir).live_bytes()?;
    let free = free_bytes(dir.parent().unwrap_or(dir))?;
    if free < live + live / 10 {
        return Err(Error::Other(format!(
            "a MySQL backup makes its copy on the pod's volume first: it needs about {} MiB free \
             and the volume has {} MiB. Grow the volume",
            (live + live / 10) >> 20,
            free >> 20
        )));
    }
    let mut conn = job.local.connect(Duration::from_secs(10)).await?;
    let installed = db::first_row(
        &mut conn,
        "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'clone'",
    )
    .await?;
    if installed.is_empty() {
        db::exec(&mut conn, "INSTALL PLUGIN clone SONAME 'mysql_clone.so'").await?;
    }
    let started = Instant::now();
    info!(backup = %job.peer, dir = %dir.display(), "local clone started");
    // The clone runs as long as it takes: no statement timeout.
    mysql_async::prelude::Queryable::query_drop(
        &mut conn,
        format!(
            "CLONE LOCAL DATA DIRECTORY = {}",
            quote(&dir.to_string_lossy())
        ),
    )
    .await
    .map_err(|e| Error::Other(format!("CLONE LOCAL failed: {e}")))?;
    drop(conn);
    info!(backup = %job.peer, secs = started.elapsed().as_secs_f64(), "local clone done; sending it");
    let (dir, tx, compression, max_rate, watcher) = (
        dir.to_owned(),
        tx.clone(),
        job.compression,
        job.max_rate,
        job.watcher.clone(),
    );
    tokio::task::spawn_blocking(move || send_dir(&dir, &tx, compression, max_rate, &*watcher))
        .await
        .map_err(|e| Error::Other(format!("the backup's sender: {e}")))?
}

/// Sends every file under `dir` as xbstream chunks, then the trailer, at
/// no more than `max_rate` bytes a second when given.
fn send_dir(
    dir: &Path,
    tx: &mpsc::Sender<Bytes>,
    compression: Compression,
    max_rate: Option<u64>,
    watcher: &dyn crate::engine::clone::StreamWatcher,
) -> Result<()> {
    let started = Instant::now();
    let mut enc = Encoder::default();
    let mut sent = 0u64;
    let mut wire = 0u64;
    let mut buf = vec![0u8; PIECE];
    let gone = || Error::Other("the bucket's upload went away".into());
    let (dirs, files) = tree(dir)?;
    for rel in dirs {
        let chunk = xbstream::directory(&rel);
        sent += chunk.len() as u64;
        tx.blocking_send(enc.data(&chunk)).map_err(|_| gone())?;
    }
    for (rel, path) in files {
        let mut file = std::fs::File::open(&path)
            .map_err(|e| Error::Other(format!("cannot read {}: {e}", path.display())))?;
        let mut offset = 0u64;
        loop {
            let n = read_full(&mut file, &mut buf)
                .map_err(|e| Error::Other(format!("cannot read {}: {e}", path.display())))?;
            if n == 0 {
                break;
            }
            let chunk = xbstream::file_chunk(&rel, offset, &buf[..n]);
            offset += n as u64;
            let frame = match compression {
                Compression::None => enc.data(&chunk),
                _ => enc.data_compressed(&chunk),
            };
            sent += chunk.len() as u64;
            wire += frame.len() as u64;
            watcher.sent(chunk.len() as u64, sent, started.elapsed());
            if let Some(wait) = max_rate.and_then(|r| wire::pace(wire, r, started.elapsed())) {
                std::thread::sleep(wait);
            }
            tx.blocking_send(frame).map_err(|_| gone())?;
        }
        let end = xbstream::end_of_file(&rel);
        sent += end.len() as u64;
        tx.blocking_send(enc.data(&end)).map_err(|_| gone())?;
    }
    tx.blocking_send(enc.end()).map_err(|_| gone())
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Every directory under `dir` (relative to it), and every file, with its
/// path relative to it, each in a stable order.
type Tree = (Vec<String>, Vec<(String, PathBuf)>);

fn tree(dir: &Path) -> Result<Tree> {
    let mut dirs = Vec::new();
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let rd = std::fs::read_dir(&d)
            .map_err(|e| Error::Other(format!("cannot list {}: {e}", d.display())))?;
        for e in rd {
            let e = e.map_err(|e| Error::Other(format!("cannot list {}: {e}", d.display())))?;
            let p = e.path();
            let kind = e
                .file_type()
                .map_err(|e| Error::Other(format!("cannot stat {}: {e}", p.display())))?;
            let rel = p
                .strip_prefix(dir)
                .expect("under dir")
                .to_string_lossy()
                .into_owned();
            if kind.is_dir() {
                dirs.push(rel);
                todo.push(p);
            } else if kind.is_file() {
                out.push((rel, p));
            }
        }
    }
    dirs.sort();
    out.sort();
    Ok((dirs, out))
}

fn remove_copy(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(dir = %dir.display(), error = %e, "cannot remove the backup's local copy"),
    }
}
