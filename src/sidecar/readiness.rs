//! The pure decision "ready or not" that `/readyz` serves, from what the
//! sidecar observed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::replication::{GtidSet, HEARTBEAT_PERIOD_S, IoState, ReplicaStatus};
use crate::pod::Role;

/// Everything the readiness decision looks at, gathered by the sidecar.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub reachable: bool,
    pub read_only: bool,
    /// `None` when the server has no replication configured.
    pub replica: Option<ReplicaStatus>,
    /// Transactions the replica has and the master does not.
    pub errant: Option<GtidSet>,
    /// Transactions the replica lacks that the master has purged from its
    /// binary logs: it can never catch up.
    pub missing: Option<GtidSet>,
    /// The peer a replica that lacks what the master purged catches up from
    /// (the one the master was re-seeded from), if any.
    pub catching_up_from: Option<String>,
    /// How long the IO thread has been away from `Yes` after having been
    /// connected; `None` while connected, or when it never was.
    pub io_down_for: Option<Duration>,
    /// How long since the replica last received anything from the master
    /// (an event or a heartbeat); `None` when the server does not say.
    pub silent_for: Option<Duration>,
}

/// The kind of a readiness answer: a small fixed set, fit for a metric label,
/// where the reason text carries the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    Starting,
    ServerUnreachable,
    MasterWritable,
    MasterReadOnly,
    ReplicaWritable,
    ErrantTransactions,
    PurgedTransactions,
    CatchingUp,
    NotReplicating,
    SqlError,
    SqlStopped,
    Replicating,
    LagTooHigh,
    LagUnknown,
    Connecting,
    MasterOutageGrace,
    MasterUnreachable,
    MasterSilent,
    IoError,
    IoStopped,
}

impl Cause {
    pub const ALL: [Cause; 20] = [
        Cause::Starting,
        Cause::ServerUnreachable,
        Cause::MasterWritable,
        Cause::MasterReadOnly,
        Cause::ReplicaWritable,
        Cause::ErrantTransactions,
        Cause::PurgedTransactions,
        Cause::CatchingUp,
        Cause::NotReplicating,
        Cause::SqlError,
        Cause::SqlStopped,
        Cause::Replicating,
        Cause::LagTooHigh,
        Cause::LagUnknown,
        Cause::Connecting,
        Cause::MasterOutageGrace,
        Cause::MasterUnreachable,
        Cause::MasterSilent,
        Cause::IoError,
        Cause::IoStopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Starting => "starting",
            Cause::ServerUnreachable => "server_unreachable",
            Cause::MasterWritable => "master_writable",
            Cause::MasterReadOnly => "master_read_only",
            Cause::ReplicaWritable => "replica_writable",
            Cause::ErrantTransactions => "errant_transactions",
            Cause::PurgedTransactions => "purged_transactions",
            Cause::CatchingUp => "catching_up",
            Cause::NotReplicating => "not_replicating",
            Cause::SqlError => "sql_error",
            Cause::SqlStopped => "sql_stopped",
            Cause::Replicating => "replicating",
            Cause::LagTooHigh => "lag_too_high",
            Cause::LagUnknown => "lag_unknown",
            Cause::Connecting => "connecting",
            Cause::MasterOutageGrace => "master_outage_grace",
            Cause::MasterUnreachable => "master_unreachable",
            Cause::MasterSilent => "master_silent",
            Cause::IoError => "io_error",
            Cause::IoStopped => "io_stopped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub cause: Cause,
    pub reason: String,
}

impl Readiness {
    /// Before the first round of the control loop.
    pub fn starting() -> Self {
        Readiness {
            ready: false,
            cause: Cause::Starting,
            reason: "the first check has not run yet".into(),
        }
    }
    pub fn yes(cause: Cause, reason: impl Into<String>) -> Self {
        Readiness {
            ready: true,
            cause,
            reason: reason.into(),
        }
    }
    pub fn no(cause: Cause, reason: impl Into<String>) -> Self {
        Readiness {
            ready: false,
            cause,
            reason: reason.into(),
        }
    }
}

/// Readiness policy knobs.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_lag: Duration,
    /// How long a replica stays ready while its IO thread retries a master that
    /// went away, so a short master outage does not empty the read Service.
    pub master_outage_grace: Duration,
}

/// The master is ready when it accepts writes; a replica when both threads run
/// without error and it lags at most `max_lag`.
pub fn decide(role: Role, obs: &Observation, policy: Policy) -> Readiness {
    if !obs.reachable {
        return Readiness::no(
            Cause::ServerUnreachable,
            "the local server is not reachable",
        );
    }
    if role == Role::Master {
        return if obs.read_only {
            Readiness::no(Cause::MasterReadOnly, "the master is read-only")
        } else {
            Readiness::yes(Cause::MasterWritable, "the master accepts writes")
        };
    }
    if !obs.read_only {
        return Readiness::no(Cause::ReplicaWritable, "the replica is not read-only");
    }
    if let Some(errant) = &obs.errant {
        return Readiness::no(
            Cause::ErrantTransactions,
            format!(
                "errant transactions the master does not have: {}; re-clone this replica (see README: errant transactions)",
                errant
            ),
        );
    }
    if let (Some(missing), Some(peer)) = (&obs.missing, &obs.catching_up_from) {
        return Readiness::no(
            Cause::CatchingUp,
            format!(
                "catching up from {peer}, whose binary logs hold what the master purged and this replica lacks: {missing}"
            ),
        );
    }
    if let Some(missing) = &obs.missing {
        return Readiness::no(
            Cause::PurgedTransactions,
            format!(
                "the master has purged binary logs with transactions this replica lacks: {}; re-clone this replica",
                missing
            ),
        );
    }
    let Some(r) = &obs.replica else {
        return Readiness::no(Cause::NotReplicating, "replication is not configured");
    };
    if r.sql_errno != 0 {
        return Readiness::no(
            Cause::SqlError,
            format!("SQL thread error {}: {}", r.sql_errno, r.sql_error),
        );
    }
    if !r.sql_running {
        return Readiness::no(Cause::SqlStopped, "SQL thread is stopped");
    }
    // Whatever the threads say: a replica that has heard nothing from its
    // master for longer than the lag it may have serves reads that may be
    // that stale (a link cut silently looks connected for a while).
    if let Some(silent) = obs.silent_for.filter(|s| *s > policy.max_lag) {
        return Readiness::no(
            Cause::MasterSilent,
            format!(
                "nothing received from the master for {} s (no event, no heartbeat; it sends one every {HEARTBEAT_PERIOD_S} s), more than --max-lag-seconds {}",
                silent.as_secs(),
                policy.max_lag.as_secs()
            ),
        );
    }
    match r.io {
        Some(IoState::Yes) => match r.lag_seconds {
            Some(lag) if lag <= policy.max_lag.as_secs() => {
                Readiness::yes(Cause::Replicating, format!("replicating, {lag} s behind"))
            }
            Some(lag) => Readiness::no(
                Cause::LagTooHigh,
                format!(
                    "lag {lag} s is above --max-lag-seconds {}",
                    policy.max_lag.as_secs()
                ),
            ),
            None => Readiness::no(Cause::LagUnknown, "lag is unknown"),
        },
        Some(IoState::Connecting) => {
            let detail = if r.io_errno != 0 {
                format!(" (error {}: {})", r.io_errno, r.io_error)
            } else {
                String::new()
            };
            let Some(down) = obs.io_down_for else {
                return Readiness::no(
                    Cause::Connecting,
                    format!("connecting to the master{detail}"),
                );
            };
            if down <= policy.master_outage_grace {
                Readiness::yes(
                    Cause::MasterOutageGrace,
                    format!(
                        "reconnecting to the master for {} s{detail}, within the grace of {} s",
                        down.as_secs(),
                        policy.master_outage_grace.as_secs()
                    ),
                )
            } else {
                Readiness::no(
                    Cause::MasterUnreachable,
                    format!(
                        "no connection to the master for {} s{detail}",
                        down.as_secs()
                    ),
                )
            }
        }
        Some(IoState::No) | None if r.io_errno != 0 => Readiness::no(
            Cause::IoError,
            format!(
                "IO thread stopped with error {}: {}",
                r.io_errno, r.io_error
            ),
        ),
        Some(IoState::No) | None => Readiness::no(Cause::IoStopped, "IO thread is stopped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        max_lag: Duration::from_secs(30),
        master_outage_grace: Duration::from_secs(20),
    };

    fn healthy() -> ReplicaStatus {
        ReplicaStatus {
            io: Some(IoState::Yes),
            sql_running: true,
            lag_seconds: Some(0),
            ..Default::default()
        }
    }

    fn replica(r: ReplicaStatus) -> Observation {
        Observation {
            reachable: true,
            read_only: true,
            replica: Some(r),
            ..Default::default()
        }
    }

    #[test]
    fn master() {
        let writable = Observation {
            reachable: true,
            ..Default::default()
        };
        assert!(decide(Role::Master, &writable, POLICY).ready);
        let ro = Observation {
            read_only: true,
            ..writable.clone()
        };
        assert_eq!(
            decide(Role::Master, &ro, POLICY).reason,
            "the master is read-only"
        );
        assert!(!decide(Role::Master, &Observation::default(), POLICY).ready);
    }

    #[test]
    fn replica_table() {
        let cases: Vec<(&str, Observation, bool, &str)> = vec![
            (
                "healthy",
                replica(healthy()),
                true,
                "replicating, 0 s behind",
            ),
            (
                "at the lag limit",
                replica(ReplicaStatus {
                    lag_seconds: Some(30),
                    ..healthy()
                }),
                true,
                "30 s behind",
            ),
            (
                "over the lag limit",
                replica(ReplicaStatus {
                    lag_seconds: Some(31),
                    ..healthy()
                }),
                false,
                "lag 31 s is above --max-lag-seconds 30",
            ),
            (
                "lag unknown",
                replica(ReplicaStatus {
                    lag_seconds: None,
                    ..healthy()
                }),
                false,
                "lag is unknown",
            ),
            (
                "sql error",
                replica(ReplicaStatus {
                    sql_running: false,
                    sql_errno: 1062,
                    sql_error: "Duplicate entry".into(),
                    ..healthy()
                }),
                false,
                "SQL thread error 1062: Duplicate entry",
            ),
            (
                "sql stopped",
                replica(ReplicaStatus {
                    sql_running: false,
                    ..healthy()
                }),
                false,
                "SQL thread is stopped",
            ),
            (
                "io stopped with error",
                replica(ReplicaStatus {
                    io: Some(IoState::No),
                    io_errno: 1236,
                    io_error: "binlog purged".into(),
                    ..healthy()
                }),
                false,
                "IO thread stopped with error 1236",
            ),
            (
                "io stopped",
                replica(ReplicaStatus {
                    io: Some(IoState::No),
                    ..healthy()
                }),
                false,
                "IO thread is stopped",
            ),
            (
                "short master outage",
                Observation {
                    io_down_for: Some(Duration::from_secs(5)),
                    ..replica(ReplicaStatus {
                        io: Some(IoState::Connecting),
                        io_errno: 2003,
                        lag_seconds: None,
                        ..healthy()
                    })
                },
                true,
                "within the grace of 20 s",
            ),
            (
                "connected, yet nothing heard for longer than the lag allowed",
                Observation {
                    silent_for: Some(Duration::from_secs(31)),
                    ..replica(healthy())
                },
                false,
                "nothing received from the master for 31 s",
            ),
            (
                "connected, heard from 5 s ago",
                Observation {
                    silent_for: Some(Duration::from_secs(5)),
                    ..replica(healthy())
                },
                true,
                "replicating",
            ),
            (
                "a short outage, but silent past the lag allowed",
                Observation {
                    io_down_for: Some(Duration::from_secs(5)),
                    silent_for: Some(Duration::from_secs(35)),
                    ..replica(ReplicaStatus {
                        io: Some(IoState::Connecting),
                        io_errno: 2003,
                        lag_seconds: None,
                        ..healthy()
                    })
                },
                false,
                "nothing received",
            ),
            (
                "long master outage",
                Observation {
                    io_down_for: Some(Duration::from_secs(21)),
                    ..replica(ReplicaStatus {
                        io: Some(IoState::Connecting),
                        io_errno: 2003,
                        lag_seconds: None,
                        ..healthy()
                    })
                },
                false,
                "no connection to the master for 21 s",
            ),
            (
                "errant",
                Observation {
                    errant: GtidSet::new("0-101-7"),
                    ..replica(healthy())
                },
                false,
                "errant transactions the master does not have: 0-101-7",
            ),
            (
                "master purged what it needs",
                Observation {
                    missing: GtidSet::new("0-100-5"),
                    ..replica(healthy())
                },
                false,
                "purged binary logs with transactions this replica lacks: 0-100-5",
            ),
            (
                "never connected yet",
                replica(ReplicaStatus {
                    io: Some(IoState::Connecting),
                    lag_seconds: None,
                    ..healthy()
                }),
                false,
                "connecting to the master",
            ),
            (
                "not configured",
                Observation {
                    replica: None,
                    ..replica(healthy())
                },
                false,
                "replication is not configured",
            ),
            (
                "writable replica",
                Observation {
                    read_only: false,
                    ..replica(healthy())
                },
                false,
                "not read-only",
            ),
            (
                "server down",
                Observation {
                    reachable: false,
                    ..replica(healthy())
                },
                false,
                "not reachable",
            ),
        ];
        for (name, obs, ready, reason) in cases {
            let got = decide(Role::Replica, &obs, POLICY);
            assert_eq!(got.ready, ready, "{name}: {got:?}");
            assert!(got.reason.contains(reason), "{name}: {got:?}");
        }
    }

    #[test]
    fn causes_are_a_small_fixed_set() {
        let names: std::collections::HashSet<&str> =
            Cause::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Cause::ALL.len());
        for c in Cause::ALL {
            // /status shows the same name the metric label carries.
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        let connecting = |down: u64| Observation {
            io_down_for: Some(Duration::from_secs(down)),
            ..replica(ReplicaStatus {
                io: Some(IoState::Connecting),
                ..healthy()
            })
        };
        let cases = [
            (Role::Replica, replica(healthy()), Cause::Replicating),
            (
                Role::Replica,
                Observation::default(),
                Cause::ServerUnreachable,
            ),
            (
                Role::Replica,
                replica(ReplicaStatus {
                    lag_seconds: Some(31),
                    ..healthy()
                }),
                Cause::LagTooHigh,
            ),
            (Role::Replica, connecting(5), Cause::MasterOutageGrace),
            (Role::Replica, connecting(21), Cause::MasterUnreachable),
            (
                Role::Replica,
                Observation {
                    errant: GtidSet::new("0-9-1"),
                    ..replica(healthy())
                },
                Cause::ErrantTransactions,
            ),
            (
                Role::Master,
                Observation {
                    reachable: true,
                    ..Default::default()
                },
                Cause::MasterWritable,
            ),
        ];
        for (role, obs, cause) in cases {
            assert_eq!(decide(role, &obs, POLICY).cause, cause, "{obs:?}");
        }
    }
}
