//! Prometheus metrics of the sidecar, registered on one registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::error::Error;
use crate::pod::{Identity, Role};
use crate::sidecar::readiness::Cause;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
    role: String,
    pod: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabel {
    file: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabel {
    replica: String,
}

pub struct Metrics {
    registry: Registry,
    pub ready: Gauge,
    readiness: Family<CauseLabel, Gauge>,
    pub io_running: Gauge,
    pub sql_running: Gauge,
    pub lag_seconds: Gauge,
    pub gtid_executed: Gauge,
    pub gtid_errant: Gauge,
    reconcile_errors: Family<KindLabel, Counter>,
    pub clone_streams_in_progress: Gauge,
    pub clone_streams_total: Counter,
    pub clone_stream_failures: Counter,
    pub clone_bytes_sent: Counter,
    pub clone_unauthorized: Counter,
    pub clone_bytes: Gauge,
    pub clone_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub clone_failed_attempts: Gauge,
    pub binlog_retained_bytes: Gauge,
    pub binlog_cap_bytes: Gauge,
    pub binlog_forced_purges: Counter,
    binlog_held_for: Family<ReplicaLabel, Gauge>,
    pub semi_sync_clients: Gauge,
    pub semi_sync_waiting_sessions: Gauge,
    pub aside_copies_bytes: Gauge,
    pub clone_backup_peak_rss_bytes: Gauge,
    tls_expiry: Family<FileLabel, Gauge>,
    pub backups_total: Counter,
    pub backup_failures: Counter,
    pub backup_last_success: Gauge,
    pub backup_last_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub backup_last_bytes: Gauge,
    pub backup_last_stored_bytes: Gauge,
    pub backup_newest: Gauge,
    pub backup_interval: Gauge,
    pub binlog_archived: Counter,
    pub binlog_archive_failures: Counter,
    pub binlog_archive_pending: Gauge,
    pub binlog_archive_lag_seconds: Gauge,
}

impl Metrics {
    /// Gives every replica its `binlog_held_for` series (0 until it holds
    /// logs), so that dashboards and alerts see them from the start.
    pub fn binlog_replicas<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        for replica in names {
            self.binlog_held_for
                .get_or_create(&ReplicaLabel {
                    replica: replica.to_owned(),
                })
                .inc_by(0);
        }
    }

    /// Moves the binary log holder's mark from `old` to `new`.
    pub fn binlog_held_for(&self, old: Option<&str>, new: Option<&str>) {
        for (name, v) in [(old, 0), (new, 1)] {
            if let Some(replica) = name {
                self.binlog_held_for
                    .get_or_create(&ReplicaLabel {
                        replica: replica.to_owned(),
                    })
                    .set(v);
            }
        }
    }

    pub fn new(id: &Identity) -> Metrics {
        let mut registry = Registry::with_prefix("mysql_sts");
        let info = Info::new(InfoLabels {
            version: env!("CARGO_PKG_VERSION").into(),
            role: id.role.to_string(),
            pod: id.hostname.clone(),
        });
        registry.register("build", "Build and identity of this agent", info);
        let master = Gauge::<i64>::default();
        master.set(i64::from(id.role == Role::Master));
        registry.register(
            "master",
            "1 on the master (ordinal 0), 0 on a replica",
            master,
        );
        let m = Metrics {
            ready: Gauge::default(),
            readiness: Family::default(),
            io_running: Gauge::default(),
            sql_running: Gauge::default(),
            lag_seconds: Gauge::default(),
            gtid_executed: Gauge::default(),
            gtid_errant: Gauge::default(),
            reconcile_errors: Family::default(),
            clone_streams_in_progress: Gauge::default(),
            clone_streams_total: Counter::default(),
            clone_stream_failures: Counter::default(),
            clone_bytes_sent: Counter::default(),
            clone_unauthorized: Counter::default(),
            clone_bytes: Gauge::default(),
            clone_seconds: Gauge::default(),
            clone_failed_attempts: Gauge::default(),
            binlog_retained_bytes: Gauge::default(),
            binlog_cap_bytes: Gauge::default(),
            binlog_forced_purges: Counter::default(),
            binlog_held_for: Family::default(),
            semi_sync_clients: Gauge::default(),
            semi_sync_waiting_sessions: Gauge::default(),
            aside_copies_bytes: Gauge::default(),
            clone_backup_peak_rss_bytes: Gauge::default(),
            tls_expiry: Family::default(),
            backups_total: Counter::default(),
            backup_failures: Counter::default(),
            backup_last_success: Gauge::default(),
            backup_last_seconds: Gauge::default(),
            backup_last_bytes: Gauge::default(),
            backup_last_stored_bytes: Gauge::default(),
            backup_newest: Gauge::default(),
            backup_interval: Gauge::default(),
            binlog_archived: Counter::default(),
            binlog_archive_failures: Counter::default(),
            binlog_archive_pending: Gauge::default(),
            binlog_archive_lag_seconds: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("ready", "1 when /readyz answers 200", m.ready.clone());
        r.register(
            "readiness_cause",
            "1 for the cause of the current readiness answer (see /status for its text), 0 for the others",
            m.readiness.clone(),
        );
        m.set_cause(Cause::Starting);
        for kind in Error::KINDS {
            m.reconcile_errors
                .get_or_create(&KindLabel { kind })
                .inc_by(0);
        }
        r.register(
            "replication_io_running",
            "1 when the replica's IO thread is connected",
            m.io_running.clone(),
        );
        r.register(
            "replication_sql_running",
            "1 when the replica's SQL thread runs",
            m.sql_running.clone(),
        );
        r.register(
            "replication_lag_seconds",
            "Seconds behind the master; -1 when unknown",
            m.lag_seconds.clone(),
        );
        r.register(
            "gtid_executed_transactions",
            "Transactions this server has executed (MariaDB: sum of the domains' sequence numbers)",
            m.gtid_executed.clone(),
        );
        r.register(
            "gtid_errant_transactions",
            "Transactions this replica has and the master does not",
            m.gtid_errant.clone(),
        );
        r.register(
            "reconcile_errors",
            "Control-loop rounds that failed, by kind of failure",
            m.reconcile_errors.clone(),
        );
        if id.role == Role::Master {
            r.register(
                "binlog_retained_bytes",
                "Bytes of binary logs the master keeps",
                m.binlog_retained_bytes.clone(),
            );
            r.register(
                "binlog_retention_cap_bytes",
                "--binlog-retention-max-bytes in bytes; -1: no cap",
                m.binlog_cap_bytes.clone(),
            );
            r.register(
                "binlog_forced_purges",
                "Purges past the cap of binary logs a replica still needed (it must be cloned again)",
                m.binlog_forced_purges.clone(),
            );
            r.register(
                "binlog_held_for",
                "1 for the replica that expired binary logs are kept for",
                m.binlog_held_for.clone(),
            );
            r.register(
                "semi_sync_clients",
                "Semi-synchronous replicas connected to the master (0 with semi-sync off)",
                m.semi_sync_clients.clone(),
            );
            r.register(
                "semi_sync_waiting_sessions",
                "Commits on the master waiting for a replica's acknowledgement now",
                m.semi_sync_waiting_sessions.clone(),
            );
        }
        r.register(
            "binlog_archived",
            "Binary logs the master uploaded to the archive",
            m.binlog_archived.clone(),
        );
        r.register(
            "binlog_archive_failures",
            "Rounds of the binary log archive that failed",
            m.binlog_archive_failures.clone(),
        );
        r.register(
            "binlog_archive_pending",
            "Closed binary logs on the master not yet in the archive",
            m.binlog_archive_pending.clone(),
        );
        r.register(
            "binlog_archive_lag_seconds",
            "How long ago the oldest closed binary log not yet in the archive was closed (0: none waits)",
            m.binlog_archive_lag_seconds.clone(),
        );
        r.register(
            "backups",
            "Backups this pod took to the bucket",
            m.backups_total.clone(),
        );
        r.register(
            "backup_failures",
            "Backups this pod started that failed (none of them lists as complete)",
            m.backup_failures.clone(),
        );
        r.register(
            "backup_last_success_timestamp_seconds",
            "When the last backup this pod took completed (unix time; 0: none yet)",
            m.backup_last_success.clone(),
        );
        r.register(
            "backup_last_duration_seconds",
            "How long the last backup this pod took ran",
            m.backup_last_seconds.clone(),
        );
        r.register(
            "backup_last_bytes",
            "Bytes of data in the last backup this pod took",
            m.backup_last_bytes.clone(),
        );
        r.register(
            "backup_last_stored_bytes",
            "Bytes the last backup this pod took holds in the bucket",
            m.backup_last_stored_bytes.clone(),
        );
        r.register(
            "backup_newest_timestamp_seconds",
            "When the newest complete backup in the bucket started (unix time; 0: none), as last listed",
            m.backup_newest.clone(),
        );
        r.register(
            "backup_schedule_interval_seconds",
            "The longest time between two runs of --backup-schedule (0: no schedule)",
            m.backup_interval.clone(),
        );
        r.register(
            "aside_copies_bytes",
            "Bytes of old data that re-clones set aside on this pod's volume (see --aside-retention)",
            m.aside_copies_bytes.clone(),
        );
        r.register(
            "clone_streams_in_progress",
            "Clone streams being served",
            m.clone_streams_in_progress.clone(),
        );
        r.register(
            "clone_streams",
            "Clone streams started",
            m.clone_streams_total.clone(),
        );
        r.register(
            "clone_stream_failures",
            "Clone streams that failed or were cut",
            m.clone_stream_failures.clone(),
        );
        r.register(
            "clone_sent_bytes",
            "Bytes of backup data served to recipients",
            m.clone_bytes_sent.clone(),
        );
        r.register(
            "clone_backup_peak_rss_bytes",
            "Peak resident memory of the backup tool (mariadb-backup) in the last clone stream served (0: none yet)",
            m.clone_backup_peak_rss_bytes.clone(),
        );
        r.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When the certificate in the file (cert: this pod's, ca: the CA) expires, in unix seconds; 0: unreadable",
            m.tls_expiry.clone(),
        );
        r.register(
            "clone_unauthorized_requests",
            "Clone requests refused for a missing or wrong token",
            m.clone_unauthorized.clone(),
        );
        r.register(
            "clone_received_bytes",
            "Size of the clone this pod's data came from (0: not cloned)",
            m.clone_bytes.clone(),
        );
        r.register(
            "clone_duration_seconds",
            "How long the clone this pod's data came from took",
            m.clone_seconds.clone(),
        );
        r.register(
            "clone_received_failed_attempts",
            "Clone attempts that failed before the one this pod's data came from",
            m.clone_failed_attempts.clone(),
        );
        // Without TLS the series say 0 (no certificate), so that the alert's
        // query has them from the start.
        for file in ["cert", "ca"] {
            m.tls_expiry(file, 0);
        }
        Metrics { registry, ..m }
    }

    /// Marks `cause` as the current readiness cause, every other one as not.
    pub fn set_cause(&self, cause: Cause) {
        for c in Cause::ALL {
            self.readiness
                .get_or_create(&CauseLabel { cause: c.as_str() })
                .set(i64::from(c == cause));
        }
    }

    /// Sets when the certificate of `file` (`cert` or `ca`) expires.
    pub fn tls_expiry(&self, file: &'static str, unix: i64) {
        self.tls_expiry.get_or_create(&FileLabel { file }).set(unix);
    }

    /// Counts a failed control-loop round under its kind of failure.
    pub fn reconcile_failed(&self, kind: &'static str) {
        self.reconcile_errors
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_exists_from_the_start() {
        let id = Identity::new("mysql-2", "mysql-h.db.svc.cluster.local", 100).unwrap();
        let m = Metrics::new(&id);
        m.reconcile_failed("connection");
        m.set_cause(Cause::LagTooHigh);
        let text = m.encode();
        for line in [
            "mysql_sts_build_info{version=\"",
            "role=\"replica\",pod=\"mysql-2\"} 1\n",
            "mysql_sts_master 0\n",
            "mysql_sts_readiness_cause{cause=\"lag_too_high\"} 1\n",
            "mysql_sts_readiness_cause{cause=\"replicating\"} 0\n",
            "mysql_sts_reconcile_errors_total{kind=\"connection\"} 1\n",
            "mysql_sts_reconcile_errors_total{kind=\"access_denied\"} 0\n",
            "mysql_sts_clone_received_failed_attempts 0\n",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        assert_eq!(
            text.matches("mysql_sts_readiness_cause{").count(),
            Cause::ALL.len()
        );
        assert_eq!(
            text.matches("mysql_sts_reconcile_errors_total{").count(),
            Error::KINDS.len()
        );
    }
}
