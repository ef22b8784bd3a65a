//! The master's binary logs as the retention fence reads and purges them:
//! the SQL both engines share. What each log starts from is the engine's
//! (`Flavor::binlog_start`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mysql_async::Conn;

use crate::error::Result;
use crate::net::sql::{self, quote};

/// The server settings by which a server expires binary logs by itself
/// (those a version lacks are simply not listed).
pub const EXPIRY_SETTINGS: &str = "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
     ('binlog_expire_logs_seconds', 'expire_logs_days', 'max_binlog_total_size', \
     'binlog_expire_logs_auto_purge')";

/// One binary log, as `SHOW BINARY LOGS` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub size: u64,
}

/// The binary logs, oldest first.
pub async fn list(conn: &mut Conn) -> Result<Vec<Listed>> {
    Ok(sql::rows(conn, "SHOW BINARY LOGS")
        .await?
        .into_iter()
        .filter_map(|r| {
            let name = r.get("Log_name").cloned().flatten()?;
            let size = r
                .get("File_size")
                .cloned()
                .flatten()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            Some(Listed { name, size })
        })
        .collect())
}

/// The directory the binary logs are written to.
pub async fn dir(conn: &mut Conn) -> Result<Option<PathBuf>> {
    let base = sql::scalar(conn, "SELECT @@global.log_bin_basename").await?;
    Ok(Path::new(&base).parent().map(Path::to_path_buf))
}

/// How long ago a log was last written (its file's modification time, which
/// is what the servers' own expiry goes by). `None` when it cannot be read.
pub fn age(dir: &Path, name: &str, now: SystemTime) -> Option<Duration> {
    let modified = std::fs::metadata(dir.join(name)).ok()?.modified().ok()?;
    Some(now.duration_since(modified).unwrap_or_default())
}

/// The server's expiry settings, (name, value).
pub async fn expiry_settings(conn: &mut Conn) -> Result<Vec<(String, String)>> {
    Ok(sql::rows(conn, EXPIRY_SETTINGS)
        .await?
        .into_iter()
        .filter_map(|r| {
            Some((
                r.get("Variable_name").cloned().flatten()?,
                r.get("Value").cloned().flatten().unwrap_or_default(),
            ))
        })
        .collect())
}

/// The info of the first event of `kind` among the first `limit` events of
/// binary log `name` (how each engine records what a log starts from).
pub async fn event_info(
    conn: &mut Conn,
    name: &str,
    limit: u32,
    kind: &str,
) -> Result<Option<String>> {
    let events = sql::rows(
        conn,
        &format!("SHOW BINLOG EVENTS IN {} LIMIT {limit}", quote(name)),
    )
    .await?;
    Ok(events.iter().find_map(|e| {
        (e.get("Event_type").cloned().flatten().as_deref() == Some(kind))
            .then(|| e.get("Info").cloned().flatten().unwrap_or_default())
    }))
}

/// Purges the logs before `name`.
pub async fn purge_to(conn: &mut Conn, name: &str) -> Result<()> {
    sql::exec(conn, &format!("PURGE BINARY LOGS TO {}", quote(name))).await
}
