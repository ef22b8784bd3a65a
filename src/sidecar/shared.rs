//! State shared by the control loop (which writes it) and the HTTP endpoints
//! (which read it): the status `/status` shows, the metrics, the clone slot.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::datadir::Datadir;
use crate::engine::Flavor;
use crate::engine::clone::StreamWatcher;
use crate::net::sql::Target;
use crate::pod::{Identity, Role};
use crate::secret::Secret;
use crate::sidecar::metrics::Metrics;
use crate::status::{Status, StreamStatus};

/// State shared by the control loop and the HTTP endpoints.
pub struct Shared {
    pub identity: Identity,
    pub status: RwLock<Status>,
    pub metrics: Metrics,
    pub clone_slot: Arc<tokio::sync::Semaphore>,
    /// The clone tokens a recipient may present: the current one, and the
    /// one before it while a rotation goes round. Empty: no clone stream is served.
    clone_tokens: RwLock<Vec<Secret>>,
    /// `--clone-max-rate`: the most bytes per second a clone stream sends.
    pub clone_max_rate: Option<u64>,
    /// The local server as root, with the password it last accepted.
    local: RwLock<Target>,
    pub datadir: std::path::PathBuf,
    pub last_tick: Mutex<Instant>,
    pub shutdown: CancellationToken,
    /// The bucket backups go to, when one is configured.
    pub store: std::sync::OnceLock<crate::backup::Store>,
    /// With the binary log archive on: the logs it holds, which alone the
    /// retention fence may purge.
    archived_logs: Mutex<Option<std::collections::BTreeSet<String>>>,
}

impl Shared {
    pub fn new(
        identity: Identity,
        flavor: Option<Flavor>,
        local: Target,
        datadir: std::path::PathBuf,
        clone_token: Option<Secret>,
        clone_max_rate: Option<u64>,
    ) -> Arc<Shared> {
        let status = Status {
            clone_max_rate,
            ..Status::starting(identity.clone(), flavor)
        };
        let shared = Arc::new(Shared {
            metrics: Metrics::new(&identity),
            identity,
            status: RwLock::new(status),
            clone_slot: Arc::new(tokio::sync::Semaphore::new(1)),
            clone_tokens: RwLock::new(clone_token.into_iter().collect()),
            clone_max_rate,
            local: RwLock::new(local),
            datadir,
            last_tick: Mutex::new(Instant::now()),
            shutdown: CancellationToken::new(),
            store: std::sync::OnceLock::new(),
            archived_logs: Mutex::new(None),
        });
        shared.read_datadir();
        shared
    }

    /// The archive is on: from now on the fence keeps every log it does not
    /// hold.
    pub fn hold_unarchived_logs(&self) {
        let mut a = self.archived_logs.lock().expect("archive lock");
        a.get_or_insert_with(Default::default);
    }

    pub fn set_archived_logs(&self, logs: &std::collections::BTreeSet<String>) {
        *self.archived_logs.lock().expect("archive lock") = Some(logs.clone());
    }

    /// The logs the archive holds; `None`: no archive, no hold.
    pub fn archived_logs(&self) -> Option<std::collections::BTreeSet<String>> {
        self.archived_logs.lock().expect("archive lock").clone()
    }

    /// Reads what init recorded in the datadir: where the data was cloned
    /// from, the copies re-clones set aside and the last one's record. At
    /// start-up, and whenever the server starts again (a re-clone may have
    /// replaced the data).
    pub fn read_datadir(&self) {
        let dd = Datadir::new(&self.datadir);
        let cloned_from = dd.clone_info();
        if let Some(c) = &cloned_from {
            let m = &self.metrics;
            m.clone_bytes.set(c.bytes as i64);
            m.clone_seconds.set(c.seconds);
            m.clone_failed_attempts.set(i64::from(c.failed_attempts));
        }
        let aside_copies = dd.aside_copies();
        self.metrics
            .aside_copies_bytes
            .set(aside_copies.iter().map(|c| c.bytes as i64).sum());
        let reclone = crate::datadir::records(&aside_copies).pop();
        let binlog_start = match self.identity.role {
            Role::Master => dd.binlog_start(),
            Role::Replica => None,
        };
        self.update(|st| {
            st.cloned_from = cloned_from;
            st.reclone = reclone;
            st.aside_copies = aside_copies;
            st.binlog_start = binlog_start;
        });
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

    /// The local server as root.
    pub fn local(&self) -> Target {
        self.local.read().expect("local lock").clone()
    }

    /// Root's password as the local server now accepts it.
    pub fn set_root_password(&self, password: Secret) {
        self.local.write().expect("local lock").password = Some(password);
    }

    /// Whether `candidate` is a clone token this donor accepts; `None` when
    /// it has none and serves no clone stream.
    pub fn clone_token_matches(&self, candidate: &str) -> Option<bool> {
        let tokens = self.clone_tokens.read().expect("token lock");
        (!tokens.is_empty()).then(|| tokens.iter().any(|t| t.matches(candidate)))
    }

    /// The clone tokens accepted from now on: `current`, and `previous`
    /// while recipients that read the old one may still ask.
    pub fn set_clone_tokens(&self, current: Secret, previous: Option<Secret>) {
        *self.clone_tokens.write().expect("token lock") =
            std::iter::once(current).chain(previous).collect();
    }

    pub fn flavor(&self) -> Option<Flavor> {
        self.status.read().expect("status lock").flavor
    }

    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.write().expect("status lock"));
    }
}

/// The job of a stream of this pod's copy to `peer` (a recipient, or the
/// bucket), holding the clone slot `permit`: reported into this pod's
/// status and metrics, capped by `--clone-max-rate`.
pub fn stream_job(
    shared: &Arc<Shared>,
    permit: tokio::sync::OwnedSemaphorePermit,
    peer: String,
    compression: crate::net::wire::Compression,
) -> crate::engine::clone::StreamJob {
    crate::engine::clone::StreamJob {
        local: shared.local(),
        datadir: shared.datadir.clone(),
        shutdown: shared.shutdown.clone(),
        permit,
        peer,
        watcher: Arc::new(StreamReport(shared.clone())),
        compression,
        max_rate: shared.clone_max_rate,
    }
}

/// Reports a clone stream of this donor into its status and metrics.
pub struct StreamReport(pub Arc<Shared>);

impl StreamWatcher for StreamReport {
    fn started(&self, peer: &str) {
        let m = &self.0.metrics;
        m.clone_streams_total.inc();
        m.clone_streams_in_progress.inc();
        self.0.update(|st| {
            st.clone_streams_active += 1;
            st.clone_stream = Some(StreamStatus {
                recipient: peer.to_owned(),
                bytes_sent: 0,
                seconds: 0.0,
            });
        });
    }

    fn sent(&self, n: u64, total: u64, elapsed: Duration) {
        self.0.metrics.clone_bytes_sent.inc_by(n);
        self.0.update(|st| {
            if let Some(cs) = st.clone_stream.as_mut() {
                cs.bytes_sent = total;
                cs.seconds = elapsed.as_secs_f64();
            }
        });
    }

    fn backup_peak_rss(&self, bytes: u64) {
        self.0.metrics.clone_backup_peak_rss_bytes.set(bytes as i64);
    }

    fn finished(&self, ok: bool) {
        let m = &self.0.metrics;
        if !ok {
            m.clone_stream_failures.inc();
        }
        m.clone_streams_in_progress.dec();
        self.0.update(|st| {
            st.clone_streams_active -= 1;
            st.clone_streams_served += 1;
            st.clone_stream = None;
        });
    }
}
