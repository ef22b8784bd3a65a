//! The sidecar's control loop: keep the master writable and the replication
//! user in place; keep each replica read-only and replicating from mysql-0 by
//! GTID; observe, decide readiness, publish status. Errors are reported, not
//! looped over.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use mysql_async::Conn;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::datadir::Datadir;
use crate::db::{self, Target};
use crate::error::Result;
use crate::flavor::{Flavor, Source};
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
    pub replication: Option<ReplicaStatus>,
    pub last_error: Option<String>,
    pub clone_streams_active: u32,
    pub clone_streams_served: u64,
    pub version: &'static str,
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
            ready: Readiness {
                ready: false,
                reason: "the sidecar is starting".into(),
            },
            read_only: None,
            gtid_executed: None,
            replication: None,
            last_error: None,
            clone_streams_active: 0,
            clone_streams_served: 0,
            version: env!("CARGO_PKG_VERSION"),
        };
        Arc::new(Shared {
            metrics: Metrics::new(&identity),
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
                r.shared.metrics.reconcile_errors.inc();
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
        let mut obs = Observation {
            reachable: true,
            ..Default::default()
        };
        match role {
            Role::Master => {
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
                if read_only(conn, flavor, role).await? {
                    warn!("the master is read-only; making it writable");
                    for sql in flavor.set_read_only(false) {
                        db::exec(conn, &sql).await?;
                    }
                }
                obs.read_only = read_only(conn, flavor, role).await?;
                self.shared.update(|st| st.phase = "master".into());
            }
            Role::Replica => {
                if !read_only(conn, flavor, role).await? {
                    warn!("the replica is writable; making it read-only");
                    for sql in flavor.set_read_only(true) {
                        db::exec(conn, &sql).await?;
                    }
                }
                obs.read_only = read_only(conn, flavor, role).await?;
                let status = replica_status(conn, flavor).await?;
                let status = self.repair(conn, flavor, status).await?;
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
            }
        }
        let gtid = db::first_row(conn, flavor.gtid_executed_query()).await?;
        self.shared
            .update(|st| st.gtid_executed = gtid.into_iter().next().flatten());
        Ok(obs)
    }

    /// Points the replica at the master and starts it when it drifted; leaves
    /// replication errors alone so that they stay visible.
    async fn repair(
        &mut self,
        conn: &mut Conn,
        flavor: Flavor,
        status: Option<ReplicaStatus>,
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
        let start_gtid = if status.is_none() {
            Datadir::new(&self.shared.datadir)
                .clone_info()
                .map(|c| c.gtid)
                .filter(|g| !g.is_empty())
        } else {
            None
        };
        let password = self.s.replication_password.clone();
        if pointed {
            info!("replication is stopped without an error; starting it");
            db::exec(conn, flavor.start_replica()).await?;
        } else {
            info!(master = %master, from = ?status.as_ref().map(|s| &s.source_host), "pointing replication at the master");
            db::exec(conn, flavor.stop_replica()).await?;
            if let (Some(gtid), Some(sql)) = (
                &start_gtid,
                start_gtid
                    .as_deref()
                    .and_then(|g| flavor.set_start_position(g)),
            ) {
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

async fn replica_status(conn: &mut Conn, flavor: Flavor) -> Result<Option<ReplicaStatus>> {
    let rows = db::rows(conn, flavor.replica_status_query()).await?;
    Ok(rows
        .first()
        .map(|row| ReplicaStatus::from_row(flavor, row))
        .filter(|s| !s.source_host.is_empty()))
}
