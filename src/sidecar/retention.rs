//! The master's binary log retention fence, its I/O: every round it learns
//! what each replica has executed (their `/status`, remembered in the
//! datadir for the replicas that are down), keeps the server's own expiry
//! off, and purges what [`crate::sidecar::fence`] says may go.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hickory_resolver::TokioResolver;
use mysql_async::Conn;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::datadir::{self, Datadir};
use crate::engine::{Flavor, binlog};
use crate::error::Result;
use crate::net::agent_client::AgentClient;
use crate::net::dns::peers;
use crate::pod::{Role, peer_name, short_name};
use crate::sidecar::fence::{self, Limits, Log, Replica};
use crate::sidecar::shared::Shared;
use crate::status::{BinlogStatus, Phase, Status};
use crate::units::ByteLimit;

/// How long a replica's agent may take to say where it is.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the logs stay past the cap before logs a replica needs go: a
/// replica that is connected and a moment behind (its status a round old)
/// catches up meanwhile, and only the ones that are away are cut off.
const CAP_GRACE: Duration = Duration::from_secs(10);
/// How long one round may take.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the fence.
pub struct RetentionSettings {
    /// Logs expire after this long (no replica needing them); `None`: never.
    pub expire: Option<Duration>,
    pub max_bytes: ByteLimit,
    /// The StatefulSet's number of pods (0: those whose names resolve, and
    /// those remembered).
    pub replicas: u32,
    pub peer_domain: String,
    pub interval: Duration,
    pub http: AgentClient,
    pub resolver: TokioResolver,
}

struct Retention {
    shared: Arc<Shared>,
    s: RetentionSettings,
    conn: Option<Conn>,
    /// What each replica executed, as last heard.
    positions: BTreeMap<String, String>,
    starts: Starts,
    held_for: Option<String>,
    forced_purges: u64,
    /// Since when the cap would make logs a replica needs go.
    over_cap_since: Option<Instant>,
}

/// Runs the fence on the master until `stop` fires.
pub async fn run(shared: Arc<Shared>, s: RetentionSettings, stop: CancellationToken) {
    let positions = Datadir::new(&shared.datadir).replica_positions();
    let mut r = Retention {
        shared,
        s,
        conn: None,
        positions,
        starts: Starts::default(),
        held_for: None,
        forced_purges: 0,
        over_cap_since: None,
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(r.s.interval) => {}
        }
        match tokio::time::timeout(ROUND_TIMEOUT, r.round()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "binary log retention round failed");
                r.conn = None;
            }
            // On MariaDB a commit waiting for a semi-synchronous
            // acknowledgement holds every listing of the binary logs.
            Err(_) => {
                debug!(
                    "the server did not list its binary logs in time; nothing purged this round"
                );
                r.conn = None;
            }
        }
    }
}

impl Retention {
    async fn round(&mut self) -> Result<()> {
        let Some(flavor) = self.shared.flavor() else {
            return Ok(());
        };
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.shared.local().connect(Duration::from_secs(5)).await?,
        };
        self.stop_server_expiry(&mut conn, flavor).await?;
        let replicas = self.replicas().await;
        self.shared
            .metrics
            .binlog_replicas(replicas.iter().map(|r| r.name.as_str()));
        let dir = binlog::dir(&mut conn).await?;
        let logs = self.logs(&mut conn, flavor, dir.as_deref()).await?;
        let limits = Limits {
            expire: self.s.expire,
            max_bytes: self.s.max_bytes.bytes(|| {
                dir.as_deref()
                    .and_then(|d| rustix::fs::statvfs(d).ok())
                    .map(|v| v.f_blocks.saturating_mul(v.f_frsize))
            }),
        };
        let contains = |a: &str, b: &str| flavor.gtid_contains(a, b);
        let mut d = fence::decide(&logs, &replicas, limits, contains);
        if d.forced.is_empty() {
            self.over_cap_since = None;
        } else if self
            .over_cap_since
            .get_or_insert_with(Instant::now)
            .elapsed()
            < CAP_GRACE
        {
            let uncapped = Limits {
                max_bytes: None,
                ..limits
            };
            d = fence::decide(&logs, &replicas, uncapped, contains);
        }
        // The archive holds what it has not uploaded yet; only the byte cap
        // overrides that, as it overrides the replicas' hold.
        if d.forced.is_empty()
            && let Some(archived) = self.shared.archived_logs()
        {
            let held = fence::hold_for_archive(&logs, d.purge_to.clone(), &archived);
            if held != d.purge_to {
                debug!(wanted = ?d.purge_to, to = ?held, "keeping binary logs the archive does not hold yet");
                d.purge_to = held;
            }
        }
        if let Some(to) = &d.purge_to {
            if d.forced.is_empty() {
                info!(to = %to, "purging binary logs no replica needs");
            } else {
                self.forced_purges += 1;
                self.shared.metrics.binlog_forced_purges.inc();
                warn!(
                    to = %to,
                    cap_bytes = limits.max_bytes,
                    replicas = ?d.forced,
                    "the binary logs passed --binlog-retention-max-bytes: purging logs that {} still need; {} will have to be cloned again",
                    d.forced.join(", "),
                    if d.forced.len() == 1 { "it" } else { "they" }
                );
            }
            binlog::purge_to(&mut conn, to).await?;
        }
        // Where the oldest log kept starts, for the replicas' comparisons;
        // recorded after a purge, never before it.
        let first = match &d.purge_to {
            Some(to) => logs.iter().find(|l| &l.name == to),
            None => logs.first(),
        };
        let dd = Datadir::new(&self.shared.datadir);
        if let Some(first) = first
            && dd.binlog_start().as_deref() != Some(first.start.as_str())
        {
            dd.record_binlog_start(&first.start)?;
            let start = first.start.clone();
            self.shared.update(|st| st.binlog_start = Some(start));
        }
        if d.holder != self.held_for {
            match &d.holder {
                Some(h) => info!(
                    replica = %h,
                    position = %self.positions.get(h).map_or("", String::as_str),
                    "keeping expired binary logs for a replica that has not executed them"
                ),
                None => info!("no replica holds expired binary logs back any more"),
            }
            self.shared
                .metrics
                .binlog_held_for(self.held_for.as_deref(), d.holder.as_deref());
            self.held_for = d.holder.clone();
        }
        let kept = logs
            .iter()
            .skip_while(|l| d.purge_to.as_ref().is_some_and(|to| &l.name != to))
            .count();
        let m = &self.shared.metrics;
        m.binlog_retained_bytes.set(d.retained_bytes as i64);
        m.binlog_cap_bytes
            .set(limits.max_bytes.map_or(-1, |b| b as i64));
        let status = BinlogStatus {
            logs: kept,
            retained_bytes: d.retained_bytes,
            cap_bytes: limits.max_bytes,
            held_for: d.holder,
            forced_purges: self.forced_purges,
            replica_positions: self.positions.clone(),
        };
        self.shared.update(|st| st.binlog = Some(status));
        self.conn = Some(conn);
        Ok(())
    }

    /// The server must not expire logs by itself: it knows nothing of the
    /// replicas that are down.
    async fn stop_server_expiry(&mut self, conn: &mut Conn, flavor: Flavor) -> Result<()> {
        let settings = binlog::expiry_settings(conn).await?;
        for stmt in flavor.stop_server_expiry(&settings) {
            warn!(statement = %stmt, "the server was set to expire binary logs by itself, which would purge logs a replica needs; turned off (the agent expires them: --binlog-expire)");
            crate::net::sql::exec(conn, &stmt).await?;
        }
        Ok(())
    }

    /// Every replica that exists, with its position: asked now, or as last
    /// heard (and remembered on the volume).
    async fn replicas(&mut self) -> Vec<Replica> {
        let id = &self.shared.identity;
        let names = |n: u32| peer_name(&format!("{}-{n}", id.statefulset), &self.s.peer_domain);
        let found = peers(&self.s.resolver, names, self.s.replicas).await;
        let mut changed = false;
        let mut exist: Vec<String> = Vec::new();
        for p in &found {
            let pod = short_name(&p.name).to_owned();
            if p.ip.is_some()
                && let Some(executed) = self.ask(&p.name).await
                && self.positions.get(&pod) != Some(&executed)
            {
                self.positions.insert(pod.clone(), executed);
                changed = true;
            }
            exist.push(pod);
        }
        // With a known count, the pods past it are gone (scaled down); without
        // one, a remembered replica may only be down.
        if self.s.replicas > 0 {
            let before = self.positions.len();
            self.positions.retain(|name, _| exist.contains(name));
            changed |= self.positions.len() != before;
        } else {
            exist.extend(
                self.positions
                    .keys()
                    .filter(|k| !exist.contains(k))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        if changed
            && let Err(e) =
                Datadir::new(&self.shared.datadir).record_replica_positions(&self.positions)
        {
            warn!(error = %e, file = datadir::REPLICA_POSITIONS, "cannot remember the replicas' positions");
        }
        exist
            .into_iter()
            .map(|name| Replica {
                executed: self.positions.get(&name).cloned(),
                name,
            })
            .collect()
    }

    /// What a replica's sidecar says it executed; `None` when it does not
    /// answer as a replica's sidecar in its control loop.
    async fn ask(&self, host: &str) -> Option<String> {
        let st = Status::fetch(&self.s.http, host, ASK_TIMEOUT).await.ok()?;
        (st.identity.role == Role::Replica && st.phase == Phase::Replicating)
            .then_some(st.gtid_executed)
            .flatten()
            .filter(|g| !g.is_empty())
    }

    /// The master's binary logs, oldest first, with their start and age.
    async fn logs(
        &mut self,
        conn: &mut Conn,
        flavor: Flavor,
        dir: Option<&std::path::Path>,
    ) -> Result<Vec<Log>> {
        let listed = binlog::list(conn).await?;
        let now = SystemTime::now();
        self.starts.keep(&listed);
        let mut logs = Vec::with_capacity(listed.len());
        for l in listed {
            let start = self.starts.of(conn, flavor, &l.name).await?;
            logs.push(Log {
                age: dir.and_then(|d| binlog::age(d, &l.name, now)),
                name: l.name,
                size: l.size,
                start,
            });
        }
        Ok(logs)
    }
}

/// What each binary log starts from (`Flavor::binlog_start`), read once per
/// log: a log's start never changes.
#[derive(Debug, Default)]
pub struct Starts(HashMap<String, String>);

impl Starts {
    /// Where log `name` starts.
    pub async fn of(&mut self, conn: &mut Conn, flavor: Flavor, name: &str) -> Result<String> {
        if let Some(s) = self.0.get(name) {
            return Ok(s.clone());
        }
        let s = flavor.binlog_start(conn, name).await?;
        self.0.insert(name.to_owned(), s.clone());
        Ok(s)
    }

    /// Forgets the logs that are not in `listed` any more.
    pub fn keep(&mut self, listed: &[binlog::Listed]) {
        self.0
            .retain(|name, _| listed.iter().any(|l| &l.name == name));
    }
}
