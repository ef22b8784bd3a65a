//! The master's binary log archive: every closed binary log is uploaded to
//! the bucket (`binlogs/<history>/<name>`, then its record), so that a
//! restore can replay them to any point after the oldest backup. A log that
//! holds transactions and stays open longer than `--binlog-archive-rotate`
//! is closed (`FLUSH BINARY LOGS`): that bounds what a restore can miss. The
//! retention fence keeps every log until it is archived (only its byte cap
//! overrides that, as it overrides the replicas' hold).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mysql_async::Conn;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backup::Store;
use crate::backup::store::ArchivedLog;
use crate::engine::binlog;
use crate::error::Result;
use crate::sidecar::retention::Starts;
use crate::sidecar::shared::Shared;

/// What the archive needs.
pub struct ArchiveSettings {
    pub store: Store,
    /// A log with transactions is closed once open this long.
    pub rotate_after: Duration,
    pub interval: Duration,
}

struct Archiver {
    shared: Arc<Shared>,
    s: ArchiveSettings,
    conn: Option<Conn>,
    /// The master's history, and the logs of it in the archive.
    history: Option<String>,
    archived: BTreeSet<String>,
    starts: Starts,
    /// The open log, and since when this sidecar has seen it open.
    open: Option<(String, Instant)>,
}

/// Archives the master's closed binary logs until `stop`.
pub async fn run(shared: Arc<Shared>, s: ArchiveSettings, stop: CancellationToken) {
    shared.hold_unarchived_logs();
    let mut a = Archiver {
        shared,
        s,
        conn: None,
        history: None,
        archived: BTreeSet::new(),
        starts: Starts::default(),
        open: None,
    };
    info!(store = %a.s.store.url, rotate_after = %humantime::format_duration(a.s.rotate_after), "archiving the binary logs");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(a.s.interval) => {}
        }
        if let Err(e) = a.round().await {
            a.shared.metrics.binlog_archive_failures.inc();
            warn!(error = %e, "binary log archive round failed");
            a.conn = None;
        }
    }
}

impl Archiver {
    async fn round(&mut self) -> Result<()> {
        let Some(flavor) = self.shared.flavor() else {
            return Ok(());
        };
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.shared.local().connect(Duration::from_secs(5)).await?,
        };
        let history = flavor.history_id(&mut conn).await?;
        if self.history.as_ref() != Some(&history) {
            self.archived = self
                .s
                .store
                .archived(&history)
                .await?
                .into_iter()
                .map(|l| l.name)
                .collect();
            info!(history = %history, archived = self.archived.len(), "the binary log archive of this master's history");
            self.history = Some(history.clone());
            self.shared.set_archived_logs(&self.archived);
        }
        let listed = binlog::list(&mut conn).await?;
        let dir = binlog::dir(&mut conn).await?.unwrap_or_default();
        let Some((active, closed)) = listed.split_last() else {
            self.conn = Some(conn);
            return Ok(());
        };
        let pending: Vec<&binlog::Listed> = closed
            .iter()
            .filter(|l| !self.archived.contains(&l.name))
            .collect();
        self.report(&dir, &pending);
        for (i, log) in pending.iter().enumerate() {
            let next = listed
                .iter()
                .skip_while(|l| l.name != log.name)
                .nth(1)
                .expect("a closed log has a next one");
            let record = ArchivedLog {
                name: log.name.clone(),
                history: history.clone(),
                engine: flavor,
                start: self.starts.of(&mut conn, flavor, &log.name).await?,
                end: self.starts.of(&mut conn, flavor, &next.name).await?,
                bytes: log.size,
                closed: std::fs::metadata(dir.join(&log.name))
                    .and_then(|m| m.modified())
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                    .unwrap_or_default(),
            };
            let started = Instant::now();
            self.s
                .store
                .archive_binlog(&dir.join(&log.name), &record)
                .await?;
            info!(log = %log.name, bytes = log.size, secs = started.elapsed().as_secs_f64(), end = %record.end, "binary log archived");
            self.shared.metrics.binlog_archived.inc();
            self.archived.insert(log.name.clone());
            self.shared.set_archived_logs(&self.archived);
            self.report(&dir, &pending[i + 1..]);
        }
        self.rotate(&mut conn, flavor, active).await?;
        self.starts.keep(&listed);
        self.conn = Some(conn);
        Ok(())
    }

    /// The logs waiting for the archive, and how long the oldest has.
    fn report(&self, dir: &std::path::Path, pending: &[&binlog::Listed]) {
        let m = &self.shared.metrics;
        m.binlog_archive_pending.set(pending.len() as i64);
        let lag = pending
            .first()
            .and_then(|l| binlog::age(dir, &l.name, SystemTime::now()))
            .unwrap_or_default();
        m.binlog_archive_lag_seconds.set(lag.as_secs() as i64);
    }

    /// Closes the open log once it has held transactions for long enough.
    async fn rotate(
        &mut self,
        conn: &mut Conn,
        flavor: crate::engine::Flavor,
        active: &binlog::Listed,
    ) -> Result<()> {
        let since = match &self.open {
            Some((name, since)) if *name == active.name => *since,
            _ => {
                self.open = Some((active.name.clone(), Instant::now()));
                return Ok(());
            }
        };
        if since.elapsed() < self.s.rotate_after {
            return Ok(());
        }
        let start = self.starts.of(conn, flavor, &active.name).await?;
        let executed = crate::net::sql::scalar(conn, flavor.binlog_position_query()).await?;
        if flavor.gtid_contains(&start, &executed) {
            // Nothing written since it opened: nothing to archive.
            self.open = Some((active.name.clone(), Instant::now()));
            return Ok(());
        }
        info!(log = %active.name, open_secs = since.elapsed().as_secs(), "closing the binary log for the archive");
        crate::net::sql::exec(conn, "FLUSH BINARY LOGS").await?;
        Ok(())
    }
}
