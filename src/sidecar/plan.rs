//! The sidecar's decision, apart from its I/O: from what one round observed
//! (and what earlier rounds left in [`Memory`]), the repairs to make. Pure,
//! and table-tested for both roles; the engines differ only in the SQL that
//! the apply step sends for each action.

use std::time::{Duration, Instant};

use crate::engine::replication::{GtidCheck, HEARTBEAT_PERIOD_S, IoState, ReplicaStatus};
use crate::pod::Role;

/// What one round read from the local server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub read_only: bool,
    /// `None` when the server has no replication configured.
    pub replica: Option<ReplicaStatus>,
    /// A replica's latest comparison with the master (kept from an earlier
    /// round while the master cannot be asked).
    pub against_master: GtidCheck,
    /// Whether this run has compared with the master at least once: until
    /// then a replica does not replicate (its server never starts the
    /// threads by itself), so diverged data takes nothing.
    pub compared_with_master: bool,
    /// The GTID position of the clone this pod's data came from, if any.
    pub cloned_gtid: Option<String>,
    /// A master with semi-synchronous replication configured: whether its
    /// side of it is on. `None`: not configured.
    pub semi_sync_source: Option<bool>,
    /// A replica's errant transactions as recorded in its datadir when they
    /// were first found: its data diverged, whatever the master now says.
    pub diverged: Option<String>,
    /// What this server executed.
    pub executed: String,
    /// Whether a replica whose data cannot be replicated to may ask for a
    /// re-clone now (`--auto-reclone`, its interval passed, room on the volume).
    pub may_reclone: bool,
    /// A replica whose server started again has not yet applied what its
    /// relay log held: the applier runs alone until it has.
    pub relay_pending: bool,
    /// For a replica that lacks what the master purged: the peer the master
    /// was re-seeded from, whose binary logs hold it.
    pub catch_up_from: Option<String>,
    /// Replication must be given the replication password again: it
    /// changed since replication was pointed (and the master takes the new
    /// one), or the master refuses what replication was given.
    pub repoint: bool,
}

/// Why a replica asks for its data to be cloned again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecloneRequest {
    pub why: &'static str,
    pub errant: Option<String>,
    pub missing: Option<String>,
    pub executed: String,
    pub master_gtid: Option<String>,
}

/// Where a replica must replicate from, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterRef {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The CA the master's certificate is verified against, when TLS is on.
    pub ca: Option<String>,
}

/// One repair, carried out by the apply step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create or update the replication account on this server (every pod
    /// keeps its own: a replica serves it to peers that catch up from it,
    /// and a master re-seeded from its copy inherits it).
    EnsureReplicationUser,
    /// Remove replication settings from the master (left over from a re-seed,
    /// whose copy came from a replica, or set by hand).
    RemoveReplication,
    /// Make sure a master on cloned data does not reuse GTIDs its replicas
    /// hold (MariaDB; nothing on MySQL).
    ContinueSequence {
        cloned: String,
    },
    SetReadOnly(bool),
    /// Switch the master's side of semi-synchronous replication on: from
    /// then on a commit is acknowledged only once replicas have it.
    EnableSemiSync,
    /// Read and record where the master's oldest binary log starts, while
    /// no client commit can wait for an acknowledgement (on MariaDB such a
    /// wait blocks every listing of the binary logs).
    RecordBinlogStart,
    /// Replication points at the master and stopped without an error.
    StartReplica,
    /// Start the applier alone, on what the relay log holds (received, and
    /// under semi-sync acknowledged, before the server stopped).
    ApplyRelayLog,
    /// Record in the datadir that this replica's data diverged (these
    /// errant transactions), so that it stays off replication across restarts.
    RecordDivergence(String),
    /// Stop replication: the data diverged and must take nothing more.
    StopReplica,
    /// Point replication at a peer (the one the master was re-seeded from),
    /// to fetch from its binary logs what the master purged.
    PointAtPeer {
        host: String,
    },
    /// Point replication at the master, from the cloned position if it has
    /// never replicated.
    PointAtMaster {
        start_gtid: Option<String>,
    },
    /// Ask init for a re-clone (the request records why) and stop the
    /// server: its container's next start goes through init, which moves
    /// the data aside and clones again.
    RequestReclone(RecloneRequest),
}

/// What the sidecar remembers between rounds of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub user_ensured: bool,
    pub sequence_checked: bool,
}

impl Memory {
    /// The memory after `done` were carried out.
    pub fn after(mut self, done: &[Action]) -> Memory {
        for a in done {
            match a {
                Action::EnsureReplicationUser => self.user_ensured = true,
                Action::ContinueSequence { .. } => self.sequence_checked = true,
                _ => {}
            }
        }
        self
    }
}

/// The repairs for this round.
pub fn plan(role: Role, seen: &Seen, memory: Memory, master: &MasterRef) -> Vec<Action> {
    match role {
        Role::Master => master_plan(seen, memory),
        Role::Replica => replica_plan(seen, memory, master),
    }
}

fn master_plan(seen: &Seen, memory: Memory) -> Vec<Action> {
    let mut actions = Vec::new();
    if seen.replica.is_some() {
        actions.push(Action::RemoveReplication);
    }
    // Before anything of ours is logged (the replication user is): the check
    // that the copy's binary log is empty must see it empty.
    if !memory.sequence_checked {
        actions.push(Action::ContinueSequence {
            cloned: seen.cloned_gtid.clone().unwrap_or_default(),
        });
    }
    if !memory.user_ensured {
        actions.push(Action::EnsureReplicationUser);
    }
    if seen.read_only {
        actions.push(Action::RecordBinlogStart);
    }
    // After the replication account exists (its creation would wait for a
    // replica that cannot log in without it), before any client may write.
    if seen.semi_sync_source == Some(false) {
        actions.push(Action::EnableSemiSync);
    }
    if seen.read_only {
        actions.push(Action::SetReadOnly(false));
    }
    actions
}

fn replica_plan(seen: &Seen, memory: Memory, master: &MasterRef) -> Vec<Action> {
    let mut actions = Vec::new();
    if !seen.read_only {
        actions.push(Action::SetReadOnly(true));
    }
    if !memory.user_ensured {
        actions.push(Action::EnsureReplicationUser);
    }
    // Diverged data takes nothing more from the master, even once a master
    // that started over has reached its sequence numbers again (MariaDB would
    // then resume from its own position and skip the master's transactions).
    let errant = seen.against_master.errant.as_ref();
    if let (Some(e), None) = (errant, &seen.diverged) {
        actions.push(Action::RecordDivergence(e.to_string()));
    }
    if errant.is_some() || seen.diverged.is_some() {
        let running = seen
            .replica
            .as_ref()
            .is_some_and(|st| st.io != Some(IoState::No) || st.sql_running);
        if running {
            actions.push(Action::StopReplica);
        }
        if seen.may_reclone {
            actions.push(reclone(seen, "errant transactions"));
        }
        return actions;
    }
    // Pointing it at a master that purged what it lacks would only fail in a
    // loop; an error stays for a human to see (or a re-clone is asked for).
    if seen.against_master.missing.is_some() {
        // The peer the master was re-seeded from holds, in its binary logs,
        // what came before the master's: fetched from there, then from the
        // master again once this replica holds where the master's begin.
        if let Some(peer) = &seen.catch_up_from {
            let status = seen.replica.as_ref();
            let on_peer = !seen.repoint
                && status.is_some_and(|st| st.points_at(peer, master.port, &master.user));
            let failed = status.is_some_and(|st| st.io_errno != 0 || st.sql_errno != 0);
            if !on_peer {
                actions.push(Action::PointAtPeer { host: peer.clone() });
                return actions;
            }
            if !failed {
                if status.is_some_and(|st| st.io == Some(IoState::No) || !st.sql_running) {
                    actions.push(Action::StartReplica);
                }
                return actions;
            }
        }
        if seen.may_reclone {
            actions.push(reclone(seen, "purged transactions"));
        }
        return actions;
    }
    // What the relay log holds is applied first, master or no master: it
    // came from the master, and a re-seed may need it.
    if seen.relay_pending {
        if seen
            .replica
            .as_ref()
            .is_some_and(|st| !st.sql_running && st.sql_errno == 0)
        {
            actions.push(Action::ApplyRelayLog);
        }
        return actions;
    }
    if !seen.compared_with_master {
        return actions;
    }
    let status = seen.replica.as_ref();
    // A channel set up without the agent's heartbeat period (by an older
    // agent, or by hand) is set up again: silence must mean a cut link.
    // and one set up without verifying the master's certificate, when a CA
    // is configured.
    let pointed = !seen.repoint
        && status.is_some_and(|st| {
            st.points_at(&master.host, master.port, &master.user)
                && st
                    .heartbeat_period_ms
                    .is_none_or(|p| p <= u64::from(HEARTBEAT_PERIOD_S) * 1000)
                && master
                    .ca
                    .as_ref()
                    .is_none_or(|ca| st.ssl_verify && st.ssl_ca == *ca)
        });
    // Either thread stopped, and neither with an error: started again (an
    // error stays for a human).
    let stopped_cleanly = status.is_some_and(|st| {
        (st.io == Some(IoState::No) || !st.sql_running) && st.io_errno == 0 && st.sql_errno == 0
    });
    if pointed && stopped_cleanly {
        actions.push(Action::StartReplica);
    } else if !pointed {
        // Before replication is configured, the copy's position is what we hold.
        let start_gtid = if status.is_none() {
            seen.cloned_gtid.clone()
        } else {
            None
        };
        actions.push(Action::PointAtMaster { start_gtid });
    }
    actions
}

fn reclone(seen: &Seen, why: &'static str) -> Action {
    let errant = seen
        .against_master
        .errant
        .as_ref()
        .map(|e| e.to_string())
        .or_else(|| seen.diverged.clone());
    Action::RequestReclone(RecloneRequest {
        why,
        errant,
        missing: seen.against_master.missing.as_ref().map(|m| m.to_string()),
        executed: seen.executed.clone(),
        master_gtid: seen.against_master.master_gtid.clone(),
    })
}

/// The GTID set a replica compares with the master: the cloned position
/// until replication is configured, then what it executed.
pub fn own_position<'a>(seen_replica: bool, cloned: Option<&'a str>, executed: &'a str) -> &'a str {
    match cloned {
        Some(c) if !seen_replica => c,
        _ => executed,
    }
}

/// The silence clock: how long since a replica last received anything from
/// its master, an event or a heartbeat (the retrieved GTIDs or the heartbeat
/// count moved). `None` where the server does not count heartbeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SilenceClock {
    last: Option<(String, u64)>,
    heard_at: Option<Instant>,
}

impl SilenceClock {
    pub fn tick(&mut self, replica: Option<&ReplicaStatus>, now: Instant) -> Option<Duration> {
        let Some(marker) = replica.and_then(|r| Some((r.retrieved_gtid.clone(), r.heartbeats?)))
        else {
            *self = SilenceClock::default();
            return None;
        };
        if self.last.as_ref() != Some(&marker) {
            self.last = Some(marker);
            self.heard_at = Some(now);
        }
        self.heard_at.map(|t| now.saturating_duration_since(t))
    }
}

/// The master-outage clock: how long a replica's IO thread has been away
/// from `Yes` after having been connected. It starts only once the replica
/// has been connected, so a first connection is not an outage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutageClock {
    was_up: bool,
    down_since: Option<Instant>,
}

impl OutageClock {
    pub fn tick(&mut self, io: Option<IoState>, now: Instant) -> Option<Duration> {
        self.down_since = match io {
            Some(IoState::Yes) => {
                self.was_up = true;
                None
            }
            _ if self.was_up => self.down_since.or(Some(now)),
            _ => None,
        };
        self.down_since.map(|t| now.saturating_duration_since(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::replication::GtidSet;

    fn master() -> MasterRef {
        MasterRef {
            ca: None,
            host: "mysql-0.h".into(),
            port: 3306,
            user: "repl".into(),
        }
    }

    fn pointed(io: IoState, sql_running: bool, io_errno: u32, sql_errno: u32) -> ReplicaStatus {
        ReplicaStatus {
            io: Some(io),
            sql_running,
            io_errno,
            sql_errno,
            source_host: "mysql-0.h".into(),
            source_port: 3306,
            source_user: "repl".into(),
            gtid_positioning: true,
            ..Default::default()
        }
    }

    fn seen(read_only: bool, replica: Option<ReplicaStatus>) -> Seen {
        Seen {
            read_only,
            replica,
            against_master: GtidCheck::default(),
            compared_with_master: true,
            cloned_gtid: None,
            semi_sync_source: None,
            diverged: None,
            executed: "0-100-5".into(),
            may_reclone: false,
            relay_pending: false,
            catch_up_from: None,
            repoint: false,
        }
    }

    #[test]
    fn master_table() {
        let fresh = Memory::default();
        let settled = Memory {
            user_ensured: true,
            sequence_checked: true,
        };
        let reseeded = Seen {
            cloned_gtid: Some("0-100-9".into()),
            ..seen(true, Some(pointed(IoState::Yes, true, 0, 0)))
        };
        for (what, s, memory, want) in [
            (
                "first round of a new master",
                seen(true, None),
                fresh,
                vec![
                    Action::ContinueSequence {
                        cloned: String::new(),
                    },
                    Action::EnsureReplicationUser,
                    Action::RecordBinlogStart,
                    Action::SetReadOnly(false),
                ],
            ),
            (
                "re-seeded from a replica",
                reseeded,
                fresh,
                vec![
                    Action::RemoveReplication,
                    Action::ContinueSequence {
                        cloned: "0-100-9".into(),
                    },
                    Action::EnsureReplicationUser,
                    Action::RecordBinlogStart,
                    Action::SetReadOnly(false),
                ],
            ),
            ("settled and writable", seen(false, None), settled, vec![]),
            (
                "semi-sync configured, first round: on before writes",
                Seen {
                    semi_sync_source: Some(false),
                    ..seen(true, None)
                },
                fresh,
                vec![
                    Action::ContinueSequence {
                        cloned: String::new(),
                    },
                    Action::EnsureReplicationUser,
                    Action::RecordBinlogStart,
                    Action::EnableSemiSync,
                    Action::SetReadOnly(false),
                ],
            ),
            (
                "semi-sync on",
                Seen {
                    semi_sync_source: Some(true),
                    ..seen(false, None)
                },
                settled,
                vec![],
            ),
            (
                "made read-only by hand",
                seen(true, None),
                settled,
                vec![Action::RecordBinlogStart, Action::SetReadOnly(false)],
            ),
        ] {
            assert_eq!(plan(Role::Master, &s, memory, &master()), want, "{what}");
        }
    }

    #[test]
    fn replica_table() {
        let elsewhere = ReplicaStatus {
            source_host: "mysql-1.h".into(),
            ..pointed(IoState::Yes, true, 0, 0)
        };
        let by_position = ReplicaStatus {
            gtid_positioning: false,
            ..pointed(IoState::Yes, true, 0, 0)
        };
        let cloned = |s: Seen| Seen {
            cloned_gtid: Some("0-100-7".into()),
            ..s
        };
        let purged = |s: Seen| Seen {
            against_master: GtidCheck {
                errant: None,
                missing: GtidSet::new("0-100-3"),
                master_gtid: None,
            },
            ..s
        };
        let errant = |s: Seen| Seen {
            against_master: GtidCheck {
                errant: GtidSet::new("0-101-1"),
                missing: None,
                master_gtid: None,
            },
            ..s
        };
        let healthy = pointed(IoState::Yes, true, 0, 0);
        let restarted = |s: Seen| Seen {
            relay_pending: true,
            compared_with_master: false,
            ..s
        };
        let behind = |s: Seen| Seen {
            catch_up_from: Some("mysql-1.h".into()),
            ..purged(s)
        };
        let on_peer = |io: IoState, sql: bool, io_errno: u32| ReplicaStatus {
            source_host: "mysql-1.h".into(),
            ..pointed(io, sql, io_errno, 0)
        };
        for (what, s, want) in [
            (
                "behind the re-seed's donor: fetches from it",
                behind(seen(true, Some(healthy.clone()))),
                vec![Action::PointAtPeer {
                    host: "mysql-1.h".into(),
                }],
            ),
            (
                "fetching from the donor",
                behind(seen(true, Some(on_peer(IoState::Yes, true, 0)))),
                vec![],
            ),
            (
                "the donor purged it too: as without one",
                behind(seen(true, Some(on_peer(IoState::No, true, 1236)))),
                vec![],
            ),
            (
                "restarted: the relay log is applied first, with or without a master",
                restarted(seen(true, Some(pointed(IoState::No, false, 0, 0)))),
                vec![Action::ApplyRelayLog],
            ),
            (
                "applying the relay log: nothing more until it is done",
                restarted(seen(true, Some(pointed(IoState::No, true, 0, 0)))),
                vec![],
            ),
            (
                "the applier failed on the relay log: left for a human",
                restarted(seen(true, Some(pointed(IoState::No, false, 0, 1062)))),
                vec![],
            ),
            ("healthy", seen(true, Some(healthy.clone())), vec![]),
            (
                "writable",
                seen(false, Some(healthy.clone())),
                vec![Action::SetReadOnly(true)],
            ),
            (
                "fresh clone, never configured",
                cloned(seen(true, None)),
                vec![Action::PointAtMaster {
                    start_gtid: Some("0-100-7".into()),
                }],
            ),
            (
                "configured once: its own position counts, not the clone's",
                cloned(seen(true, Some(elsewhere.clone()))),
                vec![Action::PointAtMaster { start_gtid: None }],
            ),
            (
                "pointing elsewhere",
                seen(true, Some(elsewhere)),
                vec![Action::PointAtMaster { start_gtid: None }],
            ),
            (
                "file/position replication",
                seen(true, Some(by_position)),
                vec![Action::PointAtMaster { start_gtid: None }],
            ),
            (
                "stopped cleanly",
                seen(true, Some(pointed(IoState::No, false, 0, 0))),
                vec![Action::StartReplica],
            ),
            (
                "the SQL thread stopped without an error, IO running: started",
                seen(true, Some(pointed(IoState::Yes, false, 0, 0))),
                vec![Action::StartReplica],
            ),
            (
                "stopped cleanly, the master not asked yet: left stopped",
                Seen {
                    compared_with_master: false,
                    ..seen(true, Some(pointed(IoState::No, false, 0, 0)))
                },
                vec![],
            ),
            (
                "fresh clone, the master not asked yet: not pointed yet",
                Seen {
                    compared_with_master: false,
                    ..cloned(seen(false, None))
                },
                vec![Action::SetReadOnly(true)],
            ),
            (
                "a channel without the agent's heartbeat period: set up again",
                seen(
                    true,
                    Some(ReplicaStatus {
                        heartbeat_period_ms: Some(30_000),
                        ..healthy.clone()
                    }),
                ),
                vec![Action::PointAtMaster { start_gtid: None }],
            ),
            (
                "IO error: left for a human",
                seen(true, Some(pointed(IoState::No, true, 1236, 0))),
                vec![],
            ),
            (
                "SQL error: left for a human",
                seen(true, Some(pointed(IoState::Yes, false, 0, 1950))),
                vec![],
            ),
            (
                "reconnecting: the server retries by itself",
                seen(true, Some(pointed(IoState::Connecting, true, 2003, 0))),
                vec![],
            ),
            (
                "the master purged what it lacks: not pointed at it",
                purged(seen(false, None)),
                vec![Action::SetReadOnly(true)],
            ),
            (
                "errant: recorded, and replication stops",
                errant(seen(true, Some(healthy.clone()))),
                vec![
                    Action::RecordDivergence("0-101-1".into()),
                    Action::StopReplica,
                ],
            ),
            (
                "recorded divergence, threads started with the server: stopped",
                Seen {
                    diverged: Some("0-101-1".into()),
                    ..seen(true, Some(healthy.clone()))
                },
                vec![Action::StopReplica],
            ),
            (
                "recorded divergence, the master no longer says so: still off",
                Seen {
                    diverged: Some("0-101-1".into()),
                    ..seen(true, Some(pointed(IoState::No, false, 0, 0)))
                },
                vec![],
            ),
            (
                "recorded divergence, never configured: not pointed at the master",
                Seen {
                    diverged: Some("0-101-1".into()),
                    ..cloned(seen(true, None))
                },
                vec![],
            ),
            (
                "errant, --auto-reclone: a re-clone asked for, with why",
                Seen {
                    may_reclone: true,
                    ..errant(seen(true, Some(healthy.clone())))
                },
                vec![
                    Action::RecordDivergence("0-101-1".into()),
                    Action::StopReplica,
                    Action::RequestReclone(RecloneRequest {
                        why: "errant transactions",
                        errant: Some("0-101-1".into()),
                        missing: None,
                        executed: "0-100-5".into(),
                        master_gtid: None,
                    }),
                ],
            ),
            (
                "recorded divergence, --auto-reclone: a re-clone asked for",
                Seen {
                    may_reclone: true,
                    diverged: Some("0-101-1".into()),
                    ..seen(true, Some(pointed(IoState::No, false, 0, 0)))
                },
                vec![Action::RequestReclone(RecloneRequest {
                    why: "errant transactions",
                    errant: Some("0-101-1".into()),
                    missing: None,
                    executed: "0-100-5".into(),
                    master_gtid: None,
                })],
            ),
            (
                "purged, --auto-reclone: a re-clone asked for",
                Seen {
                    may_reclone: true,
                    ..purged(seen(true, Some(pointed(IoState::No, true, 1236, 0))))
                },
                vec![Action::RequestReclone(RecloneRequest {
                    why: "purged transactions",
                    errant: None,
                    missing: Some("0-100-3".into()),
                    executed: "0-100-5".into(),
                    master_gtid: None,
                })],
            ),
            (
                "purged, no --auto-reclone (or held back): left for a human",
                purged(seen(true, Some(pointed(IoState::No, true, 1236, 0)))),
                vec![],
            ),
        ] {
            let settled = Memory::default().after(&[Action::EnsureReplicationUser]);
            assert_eq!(plan(Role::Replica, &s, settled, &master()), want, "{what}");
        }
    }

    #[test]
    fn a_replica_keeps_its_own_account_and_takes_a_new_password() {
        let running = seen(true, Some(pointed(IoState::Yes, true, 0, 0)));
        assert_eq!(
            plan(Role::Replica, &running, Memory::default(), &master()),
            vec![Action::EnsureReplicationUser],
            "its first round sets its own copy of the account"
        );
        let settled = Memory::default().after(&[Action::EnsureReplicationUser]);
        assert_eq!(plan(Role::Replica, &running, settled, &master()), vec![]);
        let repoint = Seen {
            repoint: true,
            ..running.clone()
        };
        assert_eq!(
            plan(Role::Replica, &repoint, settled, &master()),
            vec![Action::PointAtMaster { start_gtid: None }],
            "a changed password: replication is pointed again, running or not"
        );
        let on_peer = ReplicaStatus {
            source_host: "mysql-1.h".into(),
            ..pointed(IoState::Yes, true, 0, 0)
        };
        let catching_up = Seen {
            against_master: GtidCheck {
                missing: GtidSet::new("0-100-3"),
                ..GtidCheck::default()
            },
            catch_up_from: Some("mysql-1.h".into()),
            ..seen(true, Some(on_peer))
        };
        assert_eq!(
            plan(Role::Replica, &catching_up, settled, &master()),
            vec![]
        );
        assert_eq!(
            plan(
                Role::Replica,
                &Seen {
                    repoint: true,
                    ..catching_up
                },
                settled,
                &master()
            ),
            vec![Action::PointAtPeer {
                host: "mysql-1.h".into()
            }],
            "so is a replica catching up from a peer"
        );
    }

    #[test]
    fn memory_after_actions() {
        let m =
            Memory::default().after(&[Action::EnsureReplicationUser, Action::SetReadOnly(false)]);
        assert!(m.user_ensured && !m.sequence_checked);
        let m = m.after(&[Action::ContinueSequence {
            cloned: String::new(),
        }]);
        assert!(m.user_ensured && m.sequence_checked);
    }

    #[test]
    fn own_position_table() {
        assert_eq!(own_position(false, Some("0-100-7"), "0-100-9"), "0-100-7");
        assert_eq!(own_position(true, Some("0-100-7"), "0-100-9"), "0-100-9");
        assert_eq!(own_position(false, None, "0-100-9"), "0-100-9");
    }

    #[test]
    fn outage_clock_starts_after_a_connection() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut c = OutageClock::default();
        assert_eq!(
            c.tick(Some(IoState::Connecting), s(0)),
            None,
            "never connected"
        );
        assert_eq!(c.tick(Some(IoState::Yes), s(1)), None);
        assert_eq!(
            c.tick(Some(IoState::Connecting), s(2)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            c.tick(Some(IoState::No), s(7)),
            Some(Duration::from_secs(5))
        );
        assert_eq!(c.tick(None, s(9)), Some(Duration::from_secs(7)));
        assert_eq!(c.tick(Some(IoState::Yes), s(10)), None);
        assert_eq!(
            c.tick(Some(IoState::Connecting), s(11)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn silence_is_time_since_the_last_event_or_heartbeat() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let status = |gtid: &str, beats: Option<u64>| ReplicaStatus {
            retrieved_gtid: gtid.into(),
            heartbeats: beats,
            ..Default::default()
        };
        let mut c = SilenceClock::default();
        assert_eq!(
            c.tick(Some(&status("0-100-5", Some(1))), at(0)),
            Some(Duration::ZERO)
        );
        // A heartbeat, then an event: heard each time.
        assert_eq!(
            c.tick(Some(&status("0-100-5", Some(2))), at(1)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            c.tick(Some(&status("0-100-6", Some(2))), at(2)),
            Some(Duration::ZERO)
        );
        // Nothing for 7 s.
        assert_eq!(
            c.tick(Some(&status("0-100-6", Some(2))), at(9)),
            Some(Duration::from_secs(7))
        );
        // A server that does not count heartbeats is not judged.
        assert_eq!(c.tick(Some(&status("0-100-6", None)), at(10)), None);
        assert_eq!(c.tick(None, at(11)), None);
    }
}
