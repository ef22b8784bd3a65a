//! The sidecar's control loop: keep the master writable and the replication
//! user in place; keep each replica read-only and replicating from mysql-0 by
//! GTID; observe, decide readiness, publish status. Errors are reported, not
//! looped over.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use mysql_async::Conn;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::datadir::Datadir;
use crate::db::{self, Target};
use crate::error::Result;
use crate::flavor::{Flavor, Source, quote};
use crate::gtid;
use crate::identity::{Identity, Role};
use crate::metrics::Metrics;
use crate::readiness::{self, IoState, Observation, Policy, Readiness, ReplicaStatus};
use crate::secret::Secret;

/// What `/status` shows. Never holds a secret.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub identity: Identity,
    pub flavor: Option<Flavor>,
    pub phase: String,
    pub ready: Readiness,
    pub read_only: Option<bool>,
    pub gtid_executed: Option<String>,
    /// Transactions this replica has and the master does not.
    pub gtid_errant: Option<String>,
    /// Transactions this replica lacks that the master has purged.
    pub gtid_missing_on_master: Option<String>,
    pub replication: Option<ReplicaStatus>,
    pub last_error: Option<String>,
    pub clone_streams_active: u32,
    pub clone_streams_served: u64,
    /// The clone stream being served, if any.
    pub clone_stream: Option<StreamStatus>,
    /// Where this pod's data came from (its last clone), if it was cloned.
    pub cloned_from: Option<crate::datadir::CloneInfo>,
    pub version: &'static str,
}

/// A clone stream in flight, as `/status` shows it on the donor.
#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    pub recipient: String,
    pub bytes_sent: u64,
    pub seconds: f64,
}

/// State shared by the control loop and the HTTP endpoints.
pub struct Shared {
    pub identity: Identity,
    pub status: RwLock<Status>,
    pub metrics: Metrics,
    pub clone_slot: Arc<tokio::sync::Semaphore>,
    pub clone_token: Option<Secret>,
    pub local: Target,
    pub datadir: std::path::PathBuf,
    pub last_tick: Mutex<Instant>,
    pub shutdown: CancellationToken,
}

impl Shared {
    pub fn new(
        identity: Identity,
        flavor: Option<Flavor>,
        local: Target,
        datadir: std::path::PathBuf,
        clone_token: Option<Secret>,
    ) -> Arc<Shared> {
        let status = Status {
            identity: identity.clone(),
            flavor,
            phase: "starting".into(),
            ready: Readiness::starting(),
            read_only: None,
            gtid_executed: None,
            gtid_errant: None,
            gtid_missing_on_master: None,
            replication: None,
            last_error: None,
            clone_streams_active: 0,
            clone_streams_served: 0,
            clone_stream: None,
            cloned_from: None,
            version: env!("CARGO_PKG_VERSION"),
        };
        let metrics = Metrics::new(&identity);
        let cloned_from = Datadir::new(&datadir).clone_info();
        if let Some(c) = &cloned_from {
            metrics.clone_bytes.set(c.bytes as i64);
            metrics.clone_seconds.set(c.seconds);
            metrics
                .clone_failed_attempts
                .set(i64::from(c.failed_attempts));
        }
        let status = Status {
            cloned_from,
            ..status
        };
        Arc::new(Shared {
            metrics,
            identity,
            status: RwLock::new(status),
            clone_slot: Arc::new(tokio::sync::Semaphore::new(1)),
            clone_token,
            local,
            datadir,
            last_tick: Mutex::new(Instant::now()),
            shutdown: CancellationToken::new(),
        })
    }

    pub fn status(&self) -> Status {
        self.status.read().expect("status lock").clone()
    }

    /// The GTID position of the clone this pod's data came from, if any. Read
    /// once at start-up: init, which writes it, runs before the sidecar.
    pub fn cloned_gtid(&self) -> Option<String> {
        let st = self.status.read().expect("status lock");
        st.cloned_from
            .as_ref()
            .map(|c| c.gtid.clone())
            .filter(|g| !g.is_empty())
    }

    pub fn flavor(&self) -> Option<Flavor> {
        self.status.read().expect("status lock").flavor
    }

    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.write().expect("status lock"));
    }
}

/// Plain settings of the control loop.
pub struct LoopSettings {
    pub flavor: Option<Flavor>,
    pub mysql_port: u16,
    pub replication_user: String,
    pub replication_password: Secret,
    pub policy: Policy,
    pub interval: Duration,
}

struct Reconciler {
    shared: Arc<Shared>,
    s: LoopSettings,
    conn: Option<Conn>,
    flavor: Option<Flavor>,
    io_down_since: Option<Instant>,
    io_was_up: bool,
    user_ensured: bool,
    binlog_state_checked: bool,
    /// A connection to the master, for GTID comparisons.
    master_conn: Option<Conn>,
    /// The last (errant, missing) comparison with the master.
    against_master: (String, String),
}

/// Runs until the shutdown token fires.
pub async fn run(shared: Arc<Shared>, s: LoopSettings) {
    let mut r = Reconciler {
        flavor: s.flavor,
        shared,
        s,
        conn: None,
        io_down_since: None,
        io_was_up: false,
        user_ensured: false,
        binlog_state_checked: false,
        master_conn: None,
        against_master: Default::default(),
    };
    let mut tick = tokio::time::interval(r.s.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = r.shared.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let obs = match r.reconcile().await {
            Ok(obs) => {
                r.shared.update(|st| st.last_error = None);
                obs
            }
            Err(e) => {
                warn!(error = %e, "reconcile failed");
                r.shared.metrics.reconcile_failed(e.kind());
                r.conn = None;
                r.shared.update(|st| {
                    st.last_error = Some(e.to_string());
                    st.phase = "waiting for the local server".into();
                });
                Observation::default()
            }
        };
        r.publish(&obs);
        *r.shared.last_tick.lock().expect("tick lock") = Instant::now();
    }
    if let Some(conn) = r.conn.take() {
        let _ = conn.disconnect().await;
    }
}

impl Reconciler {
    async fn reconcile(&mut self) -> Result<Observation> {
        // The connection is put back only after a round without error.
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.shared.local.connect(Duration::from_secs(5)).await?,
        };
        let obs = self.round(&mut conn).await?;
        self.conn = Some(conn);
        Ok(obs)
    }

    async fn round(&mut self, conn: &mut Conn) -> Result<Observation> {
        let role = self.shared.identity.role;
        // Admin statements on a replica must never create local GTIDs.
        db::exec(conn, "SET SESSION sql_log_bin = 0").await?;
        let flavor = match self.flavor {
            Some(f) => f,
            None => {
                let v = db::first_row(conn, "SELECT VERSION()").await?;
                let f = Flavor::from_version(v.first().cloned().flatten().as_deref().unwrap_or(""));
                info!(flavor = %f, "flavour detected from the server");
                self.flavor = Some(f);
                self.shared.update(|st| st.flavor = Some(f));
                f
            }
        };
        // Read before the master's set in the replica's check: whatever we got
        // from the master is in the master's set by the time that is read.
        let gtid = db::first_row(conn, flavor.gtid_executed_query())
            .await?
            .into_iter()
            .next()
            .flatten()
            .unwrap_or_default();
        let mut obs = match role {
            Role::Master => self.master_round(conn, flavor).await?,
            Role::Replica => self.replica_round(conn, flavor, &gtid).await?,
        };
        obs.reachable = true;
        let m = &self.shared.metrics;
        m.gtid_executed.set(gtid::weight(flavor, &gtid) as i64);
        m.gtid_errant.set(match flavor {
            Flavor::Mysql => gtid::mysql_count(&obs.errant),
            Flavor::Mariadb => obs.errant.split(',').filter(|g| !g.is_empty()).count() as u64,
        } as i64);
        self.shared.update(|st| {
            st.gtid_executed = Some(gtid);
            st.gtid_errant = (!obs.errant.is_empty()).then(|| obs.errant.clone());
            st.gtid_missing_on_master = (!obs.missing.is_empty()).then(|| obs.missing.clone());
        });
        Ok(obs)
    }

    async fn master_round(&mut self, conn: &mut Conn, flavor: Flavor) -> Result<Observation> {
        let role = Role::Master;
        if !self.user_ensured {
            db::exec(conn, "SET SESSION sql_log_bin = 1").await?;
            for sql in flavor.ensure_replication_user(
                &self.s.replication_user,
                self.s.replication_password.expose(),
            ) {
                db::exec(conn, &sql).await?;
            }
            db::exec(conn, "SET SESSION sql_log_bin = 0").await?;
            info!(user = %self.s.replication_user, "replication user ensured");
            self.user_ensured = true;
        }
        if let Some(st) = replica_status(conn, flavor).await? {
            // Left over from a re-seed (the copy came from a replica) or set by hand.
            warn!(source = %st.source_host, "the master has replication configured; removing it");
            db::exec(conn, flavor.stop_replica()).await?;
            db::exec(conn, flavor.reset_replica_all()).await?;
        }
        if flavor == Flavor::Mariadb && !self.binlog_state_checked {
            self.restore_binlog_state(conn).await?;
            self.binlog_state_checked = true;
        }
        if read_only(conn, flavor, role).await? {
            info!("making the master writable");
            for sql in flavor.set_read_only(false) {
                db::exec(conn, &sql).await?;
            }
        }
        self.shared.update(|st| st.phase = "master".into());
        Ok(Observation {
            read_only: read_only(conn, flavor, role).await?,
            ..Default::default()
        })
    }

    /// A MariaDB master whose data came from a clone has an empty binary log:
    /// its next transaction would reuse sequence numbers the replicas already
    /// have. Continue the GTID sequence from where the copy stands.
    async fn restore_binlog_state(&mut self, conn: &mut Conn) -> Result<()> {
        let pos = db::first_row(conn, "SELECT @@global.gtid_binlog_pos").await?;
        let pos = pos.into_iter().next().flatten().unwrap_or_default();
        let cloned = self.shared.cloned_gtid().unwrap_or_default();
        if pos.is_empty() && !cloned.is_empty() {
            info!(gtid = %cloned, "continuing the GTID sequence of the cloned data");
            db::exec(conn, "RESET MASTER").await?;
            db::exec(
                conn,
                &format!(
                    "SET GLOBAL gtid_binlog_state = {}",
                    crate::flavor::quote(&cloned)
                ),
            )
            .await?;
        }
        Ok(())
    }

    async fn replica_round(
        &mut self,
        conn: &mut Conn,
        flavor: Flavor,
        executed: &str,
    ) -> Result<Observation> {
        let role = Role::Replica;
        if !read_only(conn, flavor, role).await? {
            warn!("the replica is writable; making it read-only");
            for sql in flavor.set_read_only(true) {
                db::exec(conn, &sql).await?;
            }
        }
        let mut obs = Observation {
            read_only: read_only(conn, flavor, role).await?,
            ..Default::default()
        };
        let status = replica_status(conn, flavor).await?;
        // Before replication is configured, the copy's position is what we hold.
        let start_gtid = if status.is_none() {
            self.shared.cloned_gtid()
        } else {
            None
        };
        let ours = start_gtid.as_deref().unwrap_or(executed);
        if let Some(check) = self.check_against_master(conn, flavor, ours).await {
            self.against_master = check;
        }
        (obs.errant, obs.missing) = self.against_master.clone();
        let status = if obs.missing.is_empty() {
            self.repair(conn, flavor, status, start_gtid).await?
        } else {
            // Pointing it at the master would only fail in a loop.
            status
        };
        // The outage clock starts only once the replica has been connected.
        self.io_down_since = match status.as_ref().and_then(|s| s.io) {
            Some(IoState::Yes) => {
                self.io_was_up = true;
                None
            }
            _ if self.io_was_up => self.io_down_since.or(Some(Instant::now())),
            _ => None,
        };
        obs.io_down_for = self.io_down_since.map(|t| t.elapsed());
        obs.replica = status;
        self.shared.update(|st| st.phase = "replicating".into());
        Ok(obs)
    }

    /// Compares this replica's GTIDs with the master's: errant transactions
    /// (ours, not the master's) and transactions we lack that the master has
    /// purged. `None` when the master cannot be asked now.
    async fn check_against_master(
        &mut self,
        conn: &mut Conn,
        flavor: Flavor,
        ours: &str,
    ) -> Option<(String, String)> {
        let mut master = match self.master_conn.take() {
            Some(c) => c,
            None => match self.master_target().connect(Duration::from_secs(3)).await {
                Ok(c) => c,
                Err(e) => {
                    debug!(error = %e, "cannot ask the master for its GTIDs now");
                    return None;
                }
            },
        };
        let result = compare_gtids(conn, &mut master, flavor, ours).await;
        match result {
            Ok(r) => {
                self.master_conn = Some(master);
                Some(r)
            }
            Err(e) => {
                debug!(error = %e, "cannot compare GTIDs with the master now");
                None
            }
        }
    }

    fn master_target(&self) -> Target {
        Target {
            host: self.shared.identity.master_fqdn.clone(),
            port: self.s.mysql_port,
            socket: None,
            user: self.s.replication_user.clone(),
            password: Some(self.s.replication_password.clone()),
        }
    }

    /// Points the replica at the master and starts it when it drifted; leaves
    /// replication errors alone so that they stay visible.
    async fn repair(
        &mut self,
        conn: &mut Conn,
        flavor: Flavor,
        status: Option<ReplicaStatus>,
        start_gtid: Option<String>,
    ) -> Result<Option<ReplicaStatus>> {
        let master = self.shared.identity.master_fqdn.clone();
        let port = self.s.mysql_port;
        let user = self.s.replication_user.clone();
        let pointed = status
            .as_ref()
            .is_some_and(|st| st.points_at(&master, port, &user));
        let stopped_cleanly = status.as_ref().is_some_and(|st| {
            st.io == Some(IoState::No) && !st.sql_running && st.io_errno == 0 && st.sql_errno == 0
        });
        if pointed && !stopped_cleanly {
            return Ok(status);
        }
        let password = self.s.replication_password.clone();
        if pointed {
            info!("replication is stopped without an error; starting it");
            db::exec(conn, flavor.start_replica()).await?;
        } else {
            info!(master = %master, from = ?status.as_ref().map(|s| &s.source_host), "pointing replication at the master");
            db::exec(conn, flavor.stop_replica()).await?;
            if let Some(gtid) = start_gtid.as_deref()
                && let Some(sql) = flavor.set_start_position(gtid)
            {
                info!(gtid = %gtid, "starting from the cloned position");
                db::exec(conn, &sql).await?;
            }
            let src = Source {
                host: &master,
                port,
                user: &user,
                password: password.expose(),
            };
            db::exec(conn, &flavor.change_source(&src)).await?;
            db::exec(conn, flavor.start_replica()).await?;
        }
        replica_status(conn, flavor).await
    }

    fn publish(&self, obs: &Observation) {
        let role = self.shared.identity.role;
        let ready = readiness::decide(role, obs, self.s.policy);
        let m = &self.shared.metrics;
        m.ready.set(i64::from(ready.ready));
        m.set_cause(ready.cause);
        if let Some(r) = &obs.replica {
            m.io_running.set(i64::from(r.io == Some(IoState::Yes)));
            m.sql_running.set(i64::from(r.sql_running));
            m.lag_seconds.set(r.lag_seconds.map_or(-1, |l| l as i64));
        }
        self.shared.update(|st| {
            if st.ready.ready != ready.ready {
                info!(ready = ready.ready, reason = %ready.reason, "readiness changed");
            }
            st.ready = ready;
            st.read_only = obs.reachable.then_some(obs.read_only);
            st.replication = obs.replica.clone();
        });
    }
}

async fn read_only(conn: &mut Conn, flavor: Flavor, role: Role) -> Result<bool> {
    let row = db::first_row(conn, flavor.read_only_query(role)).await?;
    Ok(row.iter().any(|v| v.as_deref() == Some("1")))
}

/// (errant, missing): see [`Reconciler::check_against_master`].
async fn compare_gtids(
    local: &mut Conn,
    master: &mut Conn,
    flavor: Flavor,
    ours: &str,
) -> Result<(String, String)> {
    let text =
        |row: Vec<Option<String>>, i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    match flavor {
        Flavor::Mysql => {
            let row = db::first_row(
                master,
                "SELECT @@global.gtid_executed, @@global.gtid_purged",
            )
            .await?;
            let (executed, purged) = (text(row.clone(), 0), text(row, 1));
            let errant = db::first_row(
                local,
                &format!(
                    "SELECT GTID_SUBTRACT({}, {})",
                    quote(ours),
                    quote(&executed)
                ),
            )
            .await?;
            let missing = db::first_row(
                local,
                &format!("SELECT GTID_SUBTRACT({}, {})", quote(&purged), quote(ours)),
            )
            .await?;
            Ok((
                text(errant, 0).replace('\n', ""),
                text(missing, 0).replace('\n', ""),
            ))
        }
        Flavor::Mariadb => {
            // Per (domain, server) states, ours read first, as above.
            let state = text(
                db::first_row(local, "SELECT @@global.gtid_binlog_state").await?,
                0,
            );
            let master_state = text(
                db::first_row(master, "SELECT @@global.gtid_binlog_state").await?,
                0,
            );
            let errant = gtid::mariadb_errant(&state, &master_state).join(",");
            let logs = db::rows(master, "SHOW BINARY LOGS").await?;
            let first = logs
                .first()
                .and_then(|r| r.get("Log_name").cloned().flatten())
                .unwrap_or_default();
            let mut oldest = String::new();
            if !first.is_empty() {
                let events = db::rows(
                    master,
                    &format!("SHOW BINLOG EVENTS IN {} LIMIT 4", quote(&first)),
                )
                .await?;
                if let Some(info) = events.iter().find_map(|e| {
                    (e.get("Event_type").cloned().flatten().as_deref() == Some("Gtid_list"))
                        .then(|| e.get("Info").cloned().flatten().unwrap_or_default())
                }) {
                    oldest = gtid::mariadb_gtid_list(&info);
                }
            }
            Ok((errant, gtid::mariadb_missing(ours, &oldest).join(",")))
        }
    }
}

async fn replica_status(conn: &mut Conn, flavor: Flavor) -> Result<Option<ReplicaStatus>> {
    let rows = db::rows(conn, flavor.replica_status_query()).await?;
    Ok(rows
        .first()
        .map(|row| ReplicaStatus::from_row(flavor, row))
        .filter(|s| !s.source_host.is_empty()))
}
