//! Point-in-time restore: an empty `mysql-0` whose peers hold nothing (a
//! new release) restores a backup and replays the archived binary logs after
//! it, up to a time or to their end, under the datadir rule: the copy and
//! every replayed transaction are in the staging directory until all is done,
//! so a restore that fails leaves the datadir empty.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tracing::{info, warn};

use crate::backup::store::ArchivedLog;
use crate::backup::{Manifest, RestoreSettings, Store};
use crate::config::InitConfig;
use crate::datadir::Datadir;
use crate::engine::clone::{Request, run_dir_for};
use crate::engine::mysqld::Use;
use crate::engine::{CloneCredentials, Flavor};
use crate::error::{Error, Result};

/// Restores into the empty datadir.
pub async fn restore(
    cfg: &InitConfig,
    credentials: &CloneCredentials,
    dd: &Datadir,
    r: &RestoreSettings,
) -> Result<()> {
    let flavor = cfg.flavor;
    if let Some(g) = &r.to_gtid
        && !flavor.is_one_gtid(g)
    {
        return Err(Error::Backup {
            what: format!("restore to {g}"),
            why: format!(
                "not one {flavor} GTID (MySQL: <server uuid>:<n>; MariaDB: <domain>-<server>-<seq>)"
            ),
        });
    }
    let m = choose(&r.store, r, flavor).await?;
    let archive: Vec<ArchivedLog> = r
        .store
        .archive()
        .await?
        .into_iter()
        .filter(|l| l.engine == flavor)
        .collect();
    let mut logs = to_replay(&archive, &m.gtid, r.to_time, flavor);
    if let Some(g) = &r.to_gtid {
        logs = up_to_gtid(logs, g, flavor).ok_or_else(|| Error::Backup {
            what: format!("restore to {g}"),
            why: format!(
                "no binary log archived in {} after backup {} holds it",
                r.store.url, m.id
            ),
        })?;
    }
    info!(backup = %m.id, gtid = %m.gtid, logs = logs.len(), to = ?r.to_time.map(humantime::format_rfc3339_seconds), to_gtid = ?r.to_gtid, store = %r.store.url, "restoring a backup and the binary logs after it");
    if let (Some(t), Some(last)) = (r.to_time, archive.iter().map(|l| l.closed.as_str()).max())
        && humantime::parse_rfc3339(last).is_ok_and(|c| c < t)
    {
        warn!(archive_ends = %last, "the target is after the archive's last log: restoring to the archive's end");
    }
    let donor = super::clone::backup_donor(&m);
    super::clone::staged(cfg, dd, &donor, 0, async |req| {
        let (data, mut info) = super::clone::receive_backup(credentials, req, &r.store, &m).await?;
        if let Some(first) = logs.first()
            && !flavor.gtid_contains(&info.gtid, &first.start)
        {
            return Err(Error::Backup {
                what: format!("restore from backup {}", m.id),
                why: format!(
                    "the archive misses binary logs between the backup ({}) and {} (which starts at {})",
                    info.gtid, first.name, first.start
                ),
            });
        }
        if !logs.is_empty() {
            info.gtid = replay(req, &data, flavor, &r.store, &logs, r, &info.gtid).await?;
        }
        Ok((data, info))
    })
    .await
}

/// The backup to start from.
async fn choose(store: &Store, r: &RestoreSettings, flavor: Flavor) -> Result<Manifest> {
    if let Some(g) = &r.to_gtid {
        // One that does not hold the target yet: the replay reaches it.
        let holds = |m: &Manifest| flavor.gtid_contains(&m.gtid, g);
        if r.backup.is_some() {
            let m = crate::backup::choose(store, r.backup.as_deref(), flavor).await?;
            if holds(&m) {
                return Err(Error::Backup {
                    what: format!("restore of backup {} to {g}", m.id),
                    why: format!("the backup holds {g} already ({})", m.gtid),
                });
            }
            return Ok(m);
        }
        return newest(store, flavor, |m| !holds(m))
            .await?
            .ok_or_else(|| Error::Backup {
                what: format!("restore to {g}"),
                why: format!(
                    "{} holds no complete {flavor} backup taken before it",
                    store.url
                ),
            });
    }
    if r.backup.is_some() || r.to_time.is_none() {
        return crate::backup::choose(store, r.backup.as_deref(), flavor).await;
    }
    let to = r.to_time.expect("checked");
    newest(store, flavor, |m| m.finished_at().is_some_and(|f| f <= to))
        .await?
        .ok_or_else(|| Error::Backup {
            what: format!("restore to {}", humantime::format_rfc3339_seconds(to)),
            why: format!(
                "{} holds no complete {flavor} backup finished before that time",
                store.url
            ),
        })
}

/// The newest complete backup of `flavor` in `store` that `fits`.
async fn newest(
    store: &Store,
    flavor: Flavor,
    fits: impl Fn(&Manifest) -> bool,
) -> Result<Option<Manifest>> {
    Ok(store
        .list()
        .await?
        .into_iter()
        .rev()
        .filter_map(|l| l.manifest)
        .find(|m| m.engine == flavor && fits(m)))
}

/// The archived logs that hold transactions after `from`, in the order they
/// were written, up to the first one closed at or after `to` (it holds the
/// target time).
pub fn to_replay(
    archive: &[ArchivedLog],
    from: &str,
    to: Option<SystemTime>,
    flavor: Flavor,
) -> Vec<ArchivedLog> {
    let mut logs: Vec<ArchivedLog> = archive
        .iter()
        .filter(|l| !flavor.gtid_contains(from, &l.end))
        .cloned()
        .collect();
    logs.sort_by(|a, b| (&a.closed, &a.name).cmp(&(&b.closed, &b.name)));
    if let Some(to) = to
        && let Some(last) = logs
            .iter()
            .position(|l| humantime::parse_rfc3339(&l.closed).is_ok_and(|c| c >= to))
    {
        logs.truncate(last + 1);
    }
    logs
}

/// `logs` up to the first one holding `gtid`; `None` when none does.
pub fn up_to_gtid(
    mut logs: Vec<ArchivedLog>,
    gtid: &str,
    flavor: Flavor,
) -> Option<Vec<ArchivedLog>> {
    let last = logs
        .iter()
        .position(|l| flavor.gtid_contains(&l.end, gtid))?;
    logs.truncate(last + 1);
    Some(logs)
}

/// Applies `logs` after `from` (up to the target of `r`) to the copy in
/// `data` through a private start of it; returns the GTID position it then
/// holds.
async fn replay(
    req: &Request<'_>,
    data: &Path,
    flavor: Flavor,
    store: &Store,
    logs: &[ArchivedLog],
    r: &RestoreSettings,
    from: &str,
) -> Result<String> {
    let fail = |why: String| Error::Backup {
        what: "replaying the archived binary logs".into(),
        why,
    };
    let dir = req.staging.join("binlogs");
    std::fs::create_dir_all(&dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = Vec::with_capacity(logs.len());
    for l in logs {
        let path = dir.join(format!("{}-{}", l.history, l.name));
        let mut body = store.download_binlog(&l.history, &l.name).await?;
        let mut out = tokio::fs::File::create(&path)
            .await
            .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
        while let Some(chunk) = body.next().await {
            out.write_all(&chunk.map_err(fail)?)
                .await
                .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
        }
        out.flush().await.map_err(|e| fail(e.to_string()))?;
        files.push(path);
    }
    // Where the replay stops, found before the copy is started for it.
    let to_gtid = match &r.to_gtid {
        Some(g) => flavor
            .replay_to_gtid(&files, g)
            .await
            .map_err(|e| fail(e.to_string()))?,
        None => Vec::new(),
    };
    let run = run_dir_for("replay", req.owner)?;
    let server = req
        .binary
        .start(data, &run, Use::Prepare, None, Duration::from_secs(600))
        .await?;
    let socket = server
        .target
        .socket
        .clone()
        .expect("a private server listens on its socket");
    let (dump_tool, client) = flavor.replay_tools();
    let mut dump = Command::new(dump_tool);
    dump.env("TZ", "UTC")
        .args(flavor.replay_from(from))
        .args(to_gtid);
    if let Some(t) = r.to_time {
        // Events at or after the target are left out; the tools read the
        // time in the zone of their TZ.
        let t = humantime::format_rfc3339_seconds(t).to_string();
        dump.arg(format!("--stop-datetime={}", &t[..19].replace('T', " ")));
    }
    let mut dump = dump
        .args(&files)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot run {dump_tool}: {e}")))?;
    let piped: Stdio = dump
        .stdout
        .take()
        .expect("piped")
        .try_into()
        .map_err(|e| fail(format!("cannot pipe {dump_tool}: {e}")))?;
    let apply = Command::new(client)
        .arg("--no-defaults")
        .arg(format!("--socket={}", socket.display()))
        .args(["--user=root", "--binary-mode"])
        .stdin(piped)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot run {client}: {e}")))?;
    let (dumped, applied) = tokio::join!(dump.wait_with_output(), apply.wait_with_output());
    let dumped = dumped.map_err(|e| fail(format!("{dump_tool}: {e}")))?;
    let applied = applied.map_err(|e| fail(format!("{client}: {e}")))?;
    for (tool, out) in [(dump_tool, &dumped), (client, &applied)] {
        if !out.status.success() {
            return Err(fail(format!(
                "{tool} failed ({}): {}",
                out.status,
                crate::error::last_lines(&String::from_utf8_lossy(&out.stderr), 5)
            )));
        }
    }
    let mut conn = server.target.connect(Duration::from_secs(10)).await?;
    for stmt in flavor.after_replay() {
        crate::net::sql::exec(&mut conn, stmt).await?;
    }
    let gtid = crate::net::sql::scalar(&mut conn, flavor.gtid_executed_query()).await?;
    drop(conn);
    server.shutdown().await?;
    let _ = std::fs::remove_dir_all(&run);
    let _ = std::fs::remove_dir_all(&dir);
    info!(logs = logs.len(), gtid = %gtid, "archived binary logs replayed");
    Ok(gtid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(name: &str, start: &str, end: &str, closed: &str) -> ArchivedLog {
        ArchivedLog {
            name: name.into(),
            history: "server-100".into(),
            engine: Flavor::Mariadb,
            start: start.into(),
            end: end.into(),
            bytes: 1,
            closed: closed.into(),
        }
    }

    #[test]
    fn the_logs_after_the_backup_up_to_the_target() {
        let archive = [
            log(
                "binlog.000003",
                "0-100-20",
                "0-100-30",
                "2026-12-07T10:03:00Z",
            ),
            log("binlog.000001", "", "0-100-10", "2026-12-07T10:01:00Z"),
            log(
                "binlog.000002",
                "0-100-10",
                "0-100-20",
                "2026-12-07T10:02:00Z",
            ),
            log(
                "binlog.000004",
                "0-100-30",
                "0-100-40",
                "2026-12-07T10:04:00Z",
            ),
        ];
        let names =
            |logs: Vec<ArchivedLog>| -> Vec<String> { logs.into_iter().map(|l| l.name).collect() };
        let at = |t: &str| Some(humantime::parse_rfc3339(t).unwrap());
        // A backup at 0-100-15: the log holding 16-20 and every later one.
        assert_eq!(
            names(to_replay(&archive, "0-100-15", None, Flavor::Mariadb)),
            ["binlog.000002", "binlog.000003", "binlog.000004"]
        );
        // To 10:02:30: up to the log closed after it, which holds that time.
        assert_eq!(
            names(to_replay(
                &archive,
                "0-100-15",
                at("2026-12-07T10:02:30Z"),
                Flavor::Mariadb
            )),
            ["binlog.000002", "binlog.000003"]
        );
        // A backup at the end of the archive: nothing to replay.
        assert!(to_replay(&archive, "0-100-40", None, Flavor::Mariadb).is_empty());
        // To a transaction: up to the log that holds it.
        let after = to_replay(&archive, "0-100-15", None, Flavor::Mariadb);
        assert_eq!(
            names(up_to_gtid(after.clone(), "0-100-21", Flavor::Mariadb).unwrap()),
            ["binlog.000002", "binlog.000003"]
        );
        assert_eq!(
            names(up_to_gtid(after.clone(), "0-100-20", Flavor::Mariadb).unwrap()),
            ["binlog.000002"]
        );
        assert!(up_to_gtid(after, "0-100-41", Flavor::Mariadb).is_none());
    }

    #[test]
    fn one_gtid_of_each_engine() {
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        assert!(Flavor::Mysql.is_one_gtid(&format!("{uuid}:7")));
        assert!(!Flavor::Mysql.is_one_gtid(&format!("{uuid}:1-7")));
        assert!(!Flavor::Mysql.is_one_gtid("0-1-7"));
        assert!(Flavor::Mariadb.is_one_gtid("0-1-7"));
        assert!(!Flavor::Mariadb.is_one_gtid("0-1-7,1-2-3"));
        assert!(!Flavor::Mariadb.is_one_gtid(&format!("{uuid}:7")));
    }
}
