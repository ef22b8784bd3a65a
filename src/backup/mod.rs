//! Backups in S3-compatible object storage. A backup is the copy a clone
//! stream carries, taken from one replica by the engine's own consistent
//! copy, written to the bucket as it is framed (checksummed, compressed),
//! and vouched for by a manifest written only once the whole stream is in
//! the bucket and its trailer matched. A new replica can be made from one
//! instead of from pod N-1: the copy then costs no running server anything.

pub mod command;
pub mod store;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tracing::info;

use crate::engine::Flavor;
use crate::engine::clone::StreamJob;
use crate::engine::xbstream::{self, Piece};
use crate::error::{Error, Result};
use crate::net::sql::{self as db, Target};
use crate::net::wire::{Compression, Decoder, Frame};
pub use store::{Listed, Store, StoreConfig};

/// The object a backup's stream is.
pub const STREAM: &str = "stream";
/// The object that says a backup is complete, and what it holds.
pub const MANIFEST: &str = "manifest.json";
/// The manifest's layout; a reader refuses one newer than it knows.
pub const FORMAT: u32 = 1;

/// What a complete backup holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub engine: Flavor,
    pub server_version: String,
    /// The GTID position the copy holds (MariaDB: its domain-server-sequence
    /// list; MySQL: a GTID set every transaction of which the copy holds; it
    /// may hold later ones, see [`Flavor::backup_gtid`]).
    pub gtid: String,
    /// The pod the copy was taken from.
    pub source: String,
    /// RFC 3339, UTC.
    pub started: String,
    pub finished: String,
    pub seconds: f64,
    /// The copy's bytes, and their CRC-32 (hex), as the stream's trailer
    /// vouches for them.
    pub bytes: u64,
    pub crc32: String,
    /// The bytes of the stream object in the bucket.
    pub stored_bytes: u64,
    pub compression: Compression,
}

impl Manifest {
    /// Reads a manifest, refusing one this agent cannot restore.
    pub fn parse(body: &[u8]) -> std::result::Result<Manifest, String> {
        #[derive(Deserialize)]
        struct Head {
            format: Option<u32>,
        }
        let head: Head = serde_json::from_slice(body)
            .map_err(|e| format!("its manifest is not a mysql-sts backup manifest: {e}"))?;
        match head.format {
            Some(FORMAT) => {}
            Some(f) => {
                return Err(format!(
                    "its manifest has format {f}; this agent reads format {FORMAT}: use a newer mysql-sts"
                ));
            }
            None => return Err("its manifest names no format: not a mysql-sts backup".into()),
        }
        serde_json::from_slice(body).map_err(|e| format!("its manifest is unreadable: {e}"))
    }

    /// When the copy's data was taken (its start).
    pub fn started_at(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.started).ok()
    }

    /// When the copy was complete: it holds nothing committed after.
    pub fn finished_at(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.finished).ok()
    }
}

/// A backup's name: the UTC time it started, sortable.
pub fn id_for(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.replace(['-', ':'], "")
}

/// When the backup named `id` started, read back from its name.
pub fn started_of(id: &str) -> Option<SystemTime> {
    let b = id.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let t = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &id[0..4],
        &id[4..6],
        &id[6..8],
        &id[9..11],
        &id[11..13],
        &id[13..15]
    );
    humantime::parse_rfc3339(&t).ok()
}

/// What a new release's master restores, and to when.
#[derive(Debug, Clone)]
pub struct RestoreSettings {
    pub store: Store,
    /// This backup; `None`: the newest complete one taken before the target.
    pub backup: Option<String>,
    /// Replay the archive up to this time (transactions committed before
    /// it); `None`: to the archive's end.
    pub to_time: Option<SystemTime>,
    /// Or up to and including this transaction.
    pub to_gtid: Option<String>,
}

/// The pod a backup is taken from: the ready replica of the highest
/// ordinal; the master only when it is the only pod, so that a backup
/// loads the master only when no replica can take the load.
pub fn choose_pod(reports: &[crate::overview::PodReport]) -> std::result::Result<String, String> {
    let ready = |r: &&crate::overview::PodReport| r.ready();
    let replica = reports
        .iter()
        .filter(ready)
        .filter_map(|r| r.status.as_ref())
        .filter(|s| s.identity.role == crate::pod::Role::Replica)
        .max_by_key(|s| s.identity.ordinal);
    if let Some(s) = replica {
        return Ok(s.identity.hostname.clone());
    }
    match reports {
        [only] if only.ready() => Ok(only.pod.clone()),
        [_] => Err("the master, the only pod, is not ready".into()),
        _ => Err(format!(
            "no replica is ready ({} pods); the master is backed up only when it is alone: \
             name a pod with --pod to back it up anyway",
            reports.len()
        )),
    }
}

/// What a backup is made from: the local server, and its stream's job.
pub struct Source {
    pub flavor: Flavor,
    pub local: Target,
    /// This pod's name, for the manifest.
    pub pod: String,
    /// A stream that brings nothing for this long is given up.
    pub stall: Duration,
}

/// Takes a backup of the local server into `store`: the stream, then the
/// manifest. On any failure the upload is aborted and no manifest written,
/// so that nothing lists as a good backup.
pub async fn take(store: &Store, src: &Source, job: StreamJob) -> Result<Manifest> {
    let started = SystemTime::now();
    let clock = std::time::Instant::now();
    let id = id_for(started);
    let fail = |why: String| Error::Backup {
        what: format!("backup {id} of {} to {}", src.pod, store.url),
        why,
    };
    let mut conn = src.local.connect(Duration::from_secs(10)).await?;
    let server_version = db::scalar(&mut conn, "SELECT VERSION()").await?;
    let executed_before = db::scalar(&mut conn, src.flavor.gtid_executed_query()).await?;
    drop(conn);
    let compression = job.compression;
    let mut frames = src
        .flavor
        .start_backup_stream(job)
        .map_err(|e| fail(e.to_string()))?;
    let mut up = store.upload(&id).await?;
    info!(backup = %id, store = %store.url, "backup started");
    let wanted = src.flavor.backup_position_files();
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut guard = xbstream::Guard::new(u64::MAX);
    let mut dec = Decoder::default();
    let received: std::result::Result<_, String> = async {
        let mut capturing: Option<String> = None;
        let mut trailer = None;
        while trailer.is_none() {
            let bytes = match tokio::time::timeout(src.stall, frames.recv()).await {
                Err(_) => {
                    return Err(format!(
                        "the copy brought nothing for {} s",
                        src.stall.as_secs()
                    ));
                }
                Ok(None) => return Err("the copy's stream ended without its trailer".into()),
                Ok(Some(b)) => b,
            };
            dec.push(&bytes);
            while let Some(frame) = dec.next_frame().map_err(|e| e.to_string())? {
                match frame {
                    Frame::Data(d) => guard
                        .scan(&d, &mut |piece| {
                            match piece {
                                Piece::Payload { chunk, .. } => {
                                    capturing = wanted
                                        .contains(&chunk.path.as_str())
                                        .then(|| chunk.path.clone());
                                }
                                Piece::Data(b) => {
                                    if let Some(name) = &capturing {
                                        files.entry(name.clone()).or_default().extend_from_slice(b);
                                    }
                                }
                                Piece::EndOfFile(_) | Piece::Directory(_) => capturing = None,
                            }
                            Ok(())
                        })
                        .map_err(|r| r.to_string())?,
                    Frame::End(t) => trailer = Some(t),
                    Frame::Fail(m) => return Err(format!("the copy failed: {m}")),
                }
            }
            up.write(&bytes).await.map_err(|e| e.to_string())?;
        }
        dec.finish().map_err(|e| e.to_string())?;
        guard.finish().map_err(|r| r.to_string())?;
        Ok(trailer.expect("the loop ends on the trailer"))
    }
    .await;
    let trailer = match received {
        Ok(t) => t,
        Err(why) => {
            up.abort().await;
            return Err(fail(why));
        }
    };
    let gtid = match src.flavor.backup_gtid(&files, &executed_before) {
        Ok(g) => g,
        Err(e) => {
            up.abort().await;
            return Err(fail(e.to_string()));
        }
    };
    let stored_bytes = up.finish().await?;
    let m = Manifest {
        format: FORMAT,
        id: id.clone(),
        engine: src.flavor,
        server_version,
        gtid,
        source: src.pod.clone(),
        started: humantime::format_rfc3339_seconds(started).to_string(),
        finished: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        seconds: clock.elapsed().as_secs_f64(),
        bytes: trailer.bytes,
        crc32: format!("{:08x}", trailer.crc32),
        stored_bytes,
        compression,
    };
    store.put_manifest(&m).await?;
    info!(backup = %id, bytes = m.bytes, stored_bytes, secs = m.seconds, gtid = %m.gtid, "backup complete");
    Ok(m)
}

/// The backup to restore: `id`, or the newest complete one; of `flavor`.
pub async fn choose(store: &Store, id: Option<&str>, flavor: Flavor) -> Result<Manifest> {
    let m = match id {
        Some(id) => store.manifest(id).await?,
        None => store
            .list()
            .await?
            .into_iter()
            .rev()
            .find_map(|l| l.manifest)
            .ok_or_else(|| Error::Backup {
                what: format!("no backup in {}", store.url),
                why: "it holds no complete backup (one with a manifest)".into(),
            })?,
    };
    if m.engine != flavor {
        return Err(Error::Backup {
            what: format!("backup {} in {}", m.id, store.url),
            why: format!("it is a {} backup and this server is {flavor}", m.engine),
        });
    }
    Ok(m)
}

/// How long an incomplete backup may stay: one younger may still be
/// being written.
pub const INCOMPLETE_GRACE: Duration = Duration::from_secs(24 * 3600);

/// The backups retention deletes: the complete ones beyond the newest
/// `keep`, and those older than `max_age`, but never the newest complete
/// one; and the incomplete ones older than [`INCOMPLETE_GRACE`].
pub fn expired(
    all: &[Listed],
    keep: u32,
    max_age: Option<Duration>,
    now: SystemTime,
) -> Vec<String> {
    let age = |l: &Listed| now.duration_since(l.last_modified).unwrap_or_default();
    let complete: Vec<&Listed> = all.iter().filter(|l| l.complete).collect();
    let mut out = Vec::new();
    for (i, l) in complete.iter().enumerate() {
        let newer = complete.len() - 1 - i;
        if newer == 0 {
            continue;
        }
        if newer >= keep as usize || max_age.is_some_and(|m| age(l) > m) {
            out.push(l.id.clone());
        }
    }
    out.extend(
        all.iter()
            .filter(|l| !l.complete && age(l) > INCOMPLETE_GRACE)
            .map(|l| l.id.clone()),
    );
    out.sort();
    out
}

/// Deletes what [`expired`] names; returns the ids deleted.
pub async fn prune(store: &Store, keep: u32, max_age: Option<Duration>) -> Result<Vec<String>> {
    let gone = expired(&store.scan().await?, keep, max_age, SystemTime::now());
    for id in &gone {
        store.delete(id).await?;
        info!(backup = %id, store = %store.url, "backup deleted by retention");
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(host: &str, ready: bool) -> crate::overview::PodReport {
        let id = crate::pod::Identity::new(host, "mysql-h.db.svc.cluster.local", 100).unwrap();
        let mut st = crate::status::Status::starting(id, Some(Flavor::Mariadb));
        st.ready.ready = ready;
        crate::overview::PodReport {
            pod: host.into(),
            status: Some(st),
            error: None,
        }
    }

    #[test]
    fn a_backup_is_taken_from_the_highest_ready_replica() {
        let all = [
            report("mysql-0", true),
            report("mysql-1", true),
            report("mysql-2", true),
            report("mysql-3", false),
        ];
        assert_eq!(choose_pod(&all), Ok("mysql-2".into()));
        // No replica ready: the master is not loaded in its place…
        let none = [report("mysql-0", true), report("mysql-1", false)];
        assert!(choose_pod(&none).unwrap_err().contains("--pod"));
        // …unless it is alone.
        assert_eq!(choose_pod(&all[..1]), Ok("mysql-0".into()));
        assert!(choose_pod(&[report("mysql-0", false)]).is_err());
    }

    #[test]
    fn retention_keeps_the_newest_and_by_count_and_age() {
        let now = humantime::parse_rfc3339("2026-12-10T00:00:00Z").unwrap();
        let day = Duration::from_secs(24 * 3600);
        let at = |days_ago: u32, complete: bool| Listed {
            id: id_for(now - day * days_ago),
            manifest: None,
            complete,
            stored_bytes: 1,
            last_modified: now - day * days_ago,
        };
        // Oldest first, as the bucket lists them.
        let all = [
            at(9, true),
            at(8, false),
            at(5, true),
            at(3, true),
            at(1, true),
            at(0, false),
        ];
        let ids = |idx: &[usize]| -> Vec<String> {
            let mut v: Vec<String> = idx.iter().map(|i| all[*i].id.clone()).collect();
            v.sort();
            v
        };
        // By count: the two newest complete ones stay; the old incomplete goes,
        // the one being written now stays.
        assert_eq!(expired(&all, 2, None, now), ids(&[0, 1, 2]));
        // By age: older than four days goes.
        assert_eq!(expired(&all, 10, Some(day * 4), now), ids(&[0, 1, 2]));
        assert_eq!(expired(&all, 10, None, now), ids(&[1]));
        // The newest complete backup stays whatever its age or the count.
        let old = [at(40, true), at(30, true)];
        assert_eq!(expired(&old, 0, Some(day), now), vec![old[0].id.clone()]);
    }

    #[test]
    fn ids_sort_as_times_do() {
        let t = humantime::parse_rfc3339("2026-12-07T10:15:00Z").unwrap();
        assert_eq!(id_for(t), "20261207T101500Z");
        assert_eq!(started_of("20261207T101500Z"), Some(t));
        assert_eq!(started_of("latest"), None);
        let later = t + Duration::from_secs(61);
        assert!(id_for(later) > id_for(t));
    }

    #[test]
    fn a_manifest_of_another_format_or_none_is_refused() {
        let m = Manifest {
            format: FORMAT,
            id: "20261207T101500Z".into(),
            engine: Flavor::Mariadb,
            server_version: "10.11.14-MariaDB".into(),
            gtid: "0-1-42".into(),
            source: "mysql-2".into(),
            started: "2026-12-07T10:15:00Z".into(),
            finished: "2026-12-07T10:16:00Z".into(),
            seconds: 60.0,
            bytes: 1,
            crc32: "00000000".into(),
            stored_bytes: 1,
            compression: Compression::Zstd,
        };
        let body = serde_json::to_vec(&m).unwrap();
        assert_eq!(Manifest::parse(&body), Ok(m));
        let newer = String::from_utf8(body)
            .unwrap()
            .replace("\"format\":1", "\"format\":2");
        assert!(
            Manifest::parse(newer.as_bytes())
                .unwrap_err()
                .contains("format 2")
        );
        assert!(Manifest::parse(b"{}").unwrap_err().contains("no format"));
        assert!(
            Manifest::parse(b"PK\x03\x04")
                .unwrap_err()
                .contains("not a mysql-sts")
        );
    }
}
