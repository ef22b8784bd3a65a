//! The sidecar's control loop. Each round: observe the local server (and, on
//! a replica, compare its GTIDs with the master's), plan the repairs (pure,
//! [`crate::sidecar::plan`]), apply them, decide readiness (pure,
//! [`crate::sidecar::readiness`]) and publish status and metrics. Errors are
//! reported, not looped over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::Conn;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::datadir::Datadir;
use crate::engine::Flavor;
use crate::engine::replication::{GtidCheck, GtidSet, IoState};
use crate::error::Result;
use crate::net::agent_client::AgentClient;
use crate::net::sql::{self, Target};
use crate::pod::Role;
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::sidecar::observe;
use crate::sidecar::plan::{self, Action, MasterRef, Memory, OutageClock, Seen, SilenceClock};
use crate::sidecar::readiness::{self, Observation, Policy};
use crate::sidecar::shared::Shared;
use crate::status::Phase;

mod rotation;
pub use rotation::SecretSources;

/// How long a replica's comparison with the master may take (and its
/// connection to the master for it).
const MASTER_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// After a comparison failed, how long until the next is tried.
const MASTER_CHECK_BACKOFF: Duration = Duration::from_secs(5);
/// How long a volume found without room for a re-clone is not looked at again.
const ROOM_RECHECK: Duration = Duration::from_secs(60);

/// Plain settings of the control loop.
pub struct LoopSettings {
    pub flavor: Option<Flavor>,
    pub mysql_port: u16,
    pub replication_user: String,
    pub replication_password: Secret,
    pub policy: Policy,
    pub interval: Duration,
    pub semi_sync: Option<crate::engine::replication::SemiSync>,
    /// The CA the agents verify each other with: replication verifies the
    /// master's certificate against it too.
    pub tls_ca: Option<std::path::PathBuf>,
    /// For asking the master's sidecar (where its oldest binary log starts).
    pub http: Option<AgentClient>,
    /// `--auto-reclone`: a replica whose data cannot follow the master is
    /// cloned again, at most once per this interval.
    pub auto_reclone: Option<Duration>,
    /// `--aside-retention`: copies set aside by re-clones go once older.
    pub aside_retention: Option<Duration>,
    /// Where the passwords and the clone token are read again each round;
    /// `None`: the ones given are kept.
    pub sources: Option<SecretSources>,
}

struct Control {
    shared: Arc<Shared>,
    s: LoopSettings,
    master: MasterRef,
    conn: Option<Conn>,
    flavor: Option<Flavor>,
    memory: Memory,
    outage: OutageClock,
    silence: SilenceClock,
    /// A connection to the master, for GTID comparisons.
    master_conn: Option<Conn>,
    /// The last comparison with the master.
    against_master: GtidCheck,
    /// Whether a comparison with the master has succeeded in this run.
    compared: bool,
    /// After a failed comparison: not before this.
    master_check_after: Option<Instant>,
    /// Why an automatic re-clone is held back, as last said.
    reclone_held: Option<String>,
    /// The last check for room for a re-clone (it sizes the whole datadir):
    /// when, and why there was none.
    room_checked: Option<(Instant, Option<String>)>,
    /// Where applying the relay log stands since the server started.
    relay: Relay,
    /// The peer this replica fetches what the master purged from.
    catch_up: Option<String>,
    /// Root's password as its file now says; the server is made to take it.
    root_wanted: Option<Secret>,
    /// The replication password replication was last pointed with in this
    /// run (or the one it had when a change was first seen).
    pointed_with: Option<Secret>,
    /// The pod's stop, as the sidecar heard it.
    pod: Shutdown,
}

/// Runs until `stop` fires; from the moment `pod` asks the sidecar to
/// stop, a master is no longer made writable.
pub async fn run(shared: Arc<Shared>, s: LoopSettings, pod: Shutdown, stop: CancellationToken) {
    let master = MasterRef {
        ca: s.tls_ca.as_ref().map(|p| p.to_string_lossy().into_owned()),
        host: shared.identity.master_fqdn.clone(),
        port: s.mysql_port,
        user: s.replication_user.clone(),
    };
    let mut c = Control {
        flavor: s.flavor,
        shared,
        s,
        master,
        conn: None,
        memory: Memory::default(),
        outage: OutageClock::default(),
        silence: SilenceClock::default(),
        master_conn: None,
        against_master: GtidCheck::default(),
        compared: false,
        master_check_after: None,
        reclone_held: None,
        room_checked: None,
        relay: Relay::Unknown,
        catch_up: None,
        root_wanted: None,
        pointed_with: None,
        pod,
    };
    let mut tick = tokio::time::interval(c.s.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let obs = match c.reconcile().await {
            Ok(obs) => {
                c.shared.update(|st| st.last_error = None);
                obs
            }
            Err(e) => {
                warn!(error = %e, "reconcile failed");
                c.shared.metrics.reconcile_failed(e.kind());
                c.conn = None;
                c.shared.update(|st| {
                    st.last_error = Some(e.to_string());
                    st.phase = Phase::WaitingForServer;
                });
                Observation::default()
            }
        };
        c.publish(&obs);
        c.reclaim_aside_copies().await;
        *c.shared.last_tick.lock().expect("tick lock") = Instant::now();
    }
    if let Some(conn) = c.conn.take() {
        let _ = conn.disconnect().await;
    }
}

impl Control {
    async fn reconcile(&mut self) -> Result<Observation> {
        self.reread_secrets();
        // The connection is put back only after a round without error.
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => {
                let c = self.connect_local().await?;
                self.server_connected();
                c
            }
        };
        let obs = self.round(&mut conn).await?;
        self.conn = Some(conn);
        Ok(obs)
    }

    async fn round(&mut self, conn: &mut Conn) -> Result<Observation> {
        let role = self.shared.identity.role;
        // Admin statements on a replica must never create local GTIDs.
        sql::exec(conn, "SET SESSION sql_log_bin = 0").await?;
        let flavor = match self.flavor {
            Some(f) => f,
            None => {
                let f = observe::flavor(conn).await?;
                self.flavor = Some(f);
                self.shared.update(|st| st.flavor = Some(f));
                f
            }
        };

        self.set_new_root_password(conn, flavor).await?;

        // Observe.
        let local = observe::local(conn, flavor, role).await?;
        let cloned_gtid = self.shared.cloned_gtid();
        if role == Role::Replica {
            let ours = plan::own_position(
                local.replica.is_some(),
                cloned_gtid.as_deref(),
                &local.executed,
            );
            let received = local
                .replica
                .as_ref()
                .map_or("", |r| r.retrieved_gtid.as_str());
            if let Some(check) = self
                .check_against_master(conn, flavor, ours, received)
                .await
            {
                self.against_master = check;
                self.compared = true;
            }
            self.catch_up = match (&self.against_master.missing, self.catch_up.take()) {
                (None, _) => None,
                (Some(_), Some(peer)) => Some(peer),
                (Some(_), None) => self.reseed_donor().await,
            };
        }
        let semi_sync = match (role, &self.s.semi_sync) {
            (Role::Master, Some(s)) => Some(flavor.semi_sync_state(conn, s).await?),
            _ => None,
        };
        if let Some(st) = &semi_sync {
            let m = &self.shared.metrics;
            m.semi_sync_clients.set(i64::from(st.clients));
            m.semi_sync_waiting_sessions
                .set(i64::from(st.waiting_sessions));
        }
        self.shared.update(|s| s.semi_sync = semi_sync);
        let semi_sync_source = semi_sync.map(|s| s.enabled);
        let datadir = Datadir::new(&self.shared.datadir);
        let diverged = match role {
            Role::Replica => datadir.diverged(),
            Role::Master => None,
        };
        let cannot_follow = role == Role::Replica
            && (diverged.is_some()
                || self.against_master.errant.is_some()
                || self.against_master.missing.is_some());
        let may_reclone = cannot_follow && self.may_reclone(&datadir);
        // Done once the applier has read all the relay log while nothing was
        // fetched, once the replica fetches (then it applies as usual), or
        // once the one attempt ended otherwise (an error is left for a human).
        if role == Role::Replica
            && local.replica.as_ref().is_none_or(|r| {
                r.io == Some(IoState::Yes)
                    || r.applied_all_received()
                    || r.sql_errno != 0
                    || (self.relay == Relay::Applying && !r.sql_running)
            })
        {
            self.relay = Relay::Done;
        }
        let relay_pending = role == Role::Replica && self.relay != Relay::Done && !cannot_follow;
        let seen = Seen {
            diverged,
            executed: local.executed.clone(),
            may_reclone,
            relay_pending,
            catch_up_from: self.catch_up.clone(),
            repoint: role == Role::Replica && self.must_repoint(local.replica.as_ref()).await,
            semi_sync_source,
            read_only: local.read_only,
            replica: local.replica,
            against_master: self.against_master.clone(),
            compared_with_master: self.compared,
            cloned_gtid,
        };

        // Plan and apply.
        let mut actions = plan::plan(role, &seen, self.memory, &self.master);
        // A stopping master's stop made it read-only so that no commit
        // starts that its shutdown would answer: it stays so.
        if self.pod.is_requested() {
            actions.retain(|a| *a != Action::SetReadOnly(false));
        }
        if actions.contains(&Action::ApplyRelayLog) {
            self.relay = Relay::Applying;
        }
        debug!(?actions, compared = self.compared, replica = ?seen.replica, "round planned");
        crate::sidecar::apply::apply(
            conn,
            flavor,
            &actions,
            &self.master,
            &self.s.replication_password,
            &datadir,
        )
        .await?;
        self.memory = self.memory.after(&actions);
        if actions
            .iter()
            .any(|a| matches!(a, Action::PointAtMaster { .. } | Action::PointAtPeer { .. }))
        {
            self.pointed_with = Some(self.s.replication_password.clone());
        }
        if actions.contains(&Action::RecordBinlogStart) {
            let start = datadir.binlog_start();
            self.shared.update(|st| st.binlog_start = start);
        }
        let (read_only, replica) = if actions.is_empty() {
            (seen.read_only, seen.replica)
        } else {
            (
                observe::read_only(conn, flavor, role).await?,
                observe::replica_status(conn, flavor).await?,
            )
        };

        // What readiness is decided on.
        let check = match role {
            Role::Master => GtidCheck::default(),
            Role::Replica => GtidCheck {
                errant: seen
                    .against_master
                    .errant
                    .or_else(|| seen.diverged.as_deref().and_then(GtidSet::new)),
                missing: seen.against_master.missing,
                master_gtid: None,
            },
        };
        let now = Instant::now();
        let (io_down_for, silent_for) = match role {
            Role::Master => (None, None),
            Role::Replica => (
                self.outage.tick(replica.as_ref().and_then(|r| r.io), now),
                self.silence.tick(replica.as_ref(), now),
            ),
        };
        let m = &self.shared.metrics;
        m.gtid_executed
            .set(flavor.gtid_weight(&local.executed) as i64);
        m.gtid_errant.set(
            check
                .errant
                .as_ref()
                .map_or(0, |e| flavor.gtid_count(e.as_str())) as i64,
        );
        let executed = local.executed;
        self.shared.update(|st| {
            st.gtid_executed = Some(executed);
            st.gtid_errant = check.errant.clone();
            st.gtid_missing_on_master = check.missing.clone();
            st.phase = match role {
                Role::Master => Phase::Master,
                Role::Replica if relay_pending => Phase::ApplyingRelayLog,
                Role::Replica => Phase::Replicating,
            };
        });
        Ok(Observation {
            reachable: true,
            read_only,
            replica,
            errant: check.errant,
            missing: check.missing,
            catching_up_from: self.catch_up.clone(),
            io_down_for,
            silent_for,
        })
    }

    /// A new connection to the local server, which may have started again
    /// on other data (a re-clone): what was known of the data is read again,
    /// and the data is compared with the master again before it replicates.
    fn server_connected(&mut self) {
        self.shared.read_datadir();
        self.against_master = GtidCheck::default();
        self.compared = false;
        self.master_check_after = None;
        self.relay = Relay::Unknown;
    }

    /// Whether `--auto-reclone` may ask for a re-clone now: on, none asked
    /// for yet (init acts on a request at the server's next start), the last
    /// automatic one an interval ago, and room on the volume for the copy
    /// beside the data moved aside. Says once why not.
    fn may_reclone(&mut self, datadir: &Datadir) -> bool {
        let Some(interval) = self.s.auto_reclone else {
            return false;
        };
        if datadir.reclone_requested() {
            return false;
        }
        let now = crate::datadir::unix_now();
        let held = match datadir.reclones().last() {
            Some(last) if now.saturating_sub(last.at) < interval.as_secs() => Some(format!(
                "the last automatic re-clone was at {} (unix time) and --auto-reclone-interval is {} s: the next may start at {}",
                last.at,
                interval.as_secs(),
                last.at + interval.as_secs()
            )),
            _ => self.no_room(datadir),
        };
        if held != self.reclone_held {
            if let Some(why) = &held {
                warn!(why = %why, "--auto-reclone held back");
            }
            self.reclone_held = held.clone();
        }
        self.shared.update(|st| st.reclone_held = held.clone());
        held.is_none()
    }

    /// Why a re-clone does not fit on the volume, if it does not: sizing the
    /// datadir walks all of it, so a volume found too full is looked at
    /// again only after [`ROOM_RECHECK`], not every round.
    fn no_room(&mut self, datadir: &Datadir) -> Option<String> {
        if let Some((at, why)) = &self.room_checked
            && at.elapsed() < ROOM_RECHECK
        {
            return why.clone();
        }
        let why = datadir.room_for_reclone().err().map(|e| e.to_string());
        self.room_checked = Some((Instant::now(), why.clone()));
        why
    }

    /// Compares this replica's GTIDs with the master's. `None` when the
    /// master cannot be asked now.
    async fn check_against_master(
        &mut self,
        conn: &mut Conn,
        flavor: Flavor,
        ours: &str,
        received: &str,
    ) -> Option<GtidCheck> {
        // A master that did not answer is asked again only a while later, so
        // that the rounds in between (readiness among them) stay quick.
        if self.master_check_after.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        let check = self.try_master_check(conn, flavor, ours, received).await;
        self.master_check_after = check
            .is_none()
            .then(|| Instant::now() + MASTER_CHECK_BACKOFF);
        check
    }

    async fn try_master_check(
        &mut self,
        conn: &mut Conn,
        flavor: Flavor,
        ours: &str,
        received: &str,
    ) -> Option<GtidCheck> {
        let mut master = match self.master_conn.take() {
            Some(c) => c,
            None => match self.master_target().connect(MASTER_CHECK_TIMEOUT).await {
                Ok(c) => c,
                Err(e) => {
                    debug!(error = %e, "cannot ask the master for its GTIDs now");
                    return None;
                }
            },
        };
        // A master cut off silently would hold the round (and with it this
        // pod's status and readiness) until TCP gives up: bounded, asking
        // its sidecar included.
        let facts = match flavor.replica_facts(conn).await {
            Ok(f) => f,
            Err(e) => {
                debug!(error = %e, "cannot read what the comparison needs of the local server");
                return None;
            }
        };
        let http = self.s.http.clone();
        let host = self.master.host.clone();
        let compare = async {
            let published = match (flavor.compares_with_binlog_start(), &http) {
                (true, Some(http)) => published_binlog_start(http, &host).await,
                _ => None,
            };
            flavor
                .compare_with_master(&facts, &mut master, ours, received, published.as_deref())
                .await
        };
        match tokio::time::timeout(MASTER_CHECK_TIMEOUT, compare).await {
            Ok(Ok(r)) => {
                self.master_conn = Some(master);
                Some(r)
            }
            Ok(Err(e)) => {
                debug!(error = %e, "cannot compare GTIDs with the master now");
                None
            }
            Err(_) => {
                debug!("the master did not answer the GTID comparison in time");
                None
            }
        }
    }

    /// The peer the master was re-seeded from, as the master's sidecar
    /// says (its clone record), unless that is this pod.
    async fn reseed_donor(&self) -> Option<String> {
        let http = self.s.http.as_ref()?;
        let st = crate::status::Status::fetch(http, &self.master.host, MASTER_CHECK_TIMEOUT)
            .await
            .ok()?;
        let donor = st.cloned_from?.donor;
        (donor != self.shared.identity.fqdn).then(|| {
            info!(peer = %donor, "this replica lacks what the master purged: catching up from the peer the master was re-seeded from");
            donor
        })
    }

    fn master_target(&self) -> Target {
        Target {
            host: self.master.host.clone(),
            port: self.master.port,
            socket: None,
            user: self.master.user.clone(),
            password: Some(self.s.replication_password.clone()),
        }
    }

    /// Deletes the copies set aside by re-clones that are older than
    /// `--aside-retention`, once the pod is ready: its new data serves, and
    /// what a copy holds beyond it is what made it be set aside (a replica's
    /// own writes, or less than the master has).
    async fn reclaim_aside_copies(&self) {
        let Some(keep) = self.s.aside_retention else {
            return;
        };
        let st = self.shared.status();
        if !st.ready.ready {
            return;
        }
        let now = crate::datadir::unix_now();
        let old: Vec<String> = st
            .aside_copies
            .iter()
            .filter(|c| {
                c.at()
                    .is_some_and(|at| now.saturating_sub(at) > keep.as_secs())
            })
            .map(|c| c.dir.clone())
            .collect();
        if old.is_empty() {
            return;
        }
        let dd = Datadir::new(&self.shared.datadir);
        let removed = tokio::task::spawn_blocking(move || {
            old.into_iter()
                .map(|dir| (dd.remove_aside(&dir), dir))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (r, dir) in removed {
            match r {
                Ok(()) => {
                    info!(copy = %dir, retention = %humantime::format_duration(keep), "deleted a copy set aside by a re-clone, past --aside-retention")
                }
                Err(e) => warn!(copy = %dir, error = %e, "cannot delete a copy set aside"),
            }
        }
        self.shared.read_datadir();
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

/// Where the master's oldest binary log starts, as its sidecar says.
async fn published_binlog_start(http: &AgentClient, master: &str) -> Option<String> {
    crate::status::Status::fetch(http, master, MASTER_CHECK_TIMEOUT)
        .await
        .ok()?
        .binlog_start
}

/// Applying what a replica's relay log held when its server started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relay {
    Unknown,
    /// The applier was started alone on it.
    Applying,
    Done,
}
