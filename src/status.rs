//! What a pod says of itself on `/status`: one type, served by the sidecar
//! and read by every peer that asks (an empty master choosing whom to
//! re-seed from). Never holds a secret.

use serde::{Deserialize, Serialize};

use crate::datadir::{AsideCopy, CloneInfo, RecloneRecord};
use crate::engine::Flavor;
use crate::engine::replication::{GtidSet, ReplicaStatus, SemiSyncState};
use crate::net::agent_client::AgentClient;
use crate::pod::Identity;
use crate::sidecar::readiness::Readiness;

/// What `/status` shows. Never holds a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub identity: Identity,
    pub flavor: Option<Flavor>,
    pub phase: Phase,
    pub ready: Readiness,
    pub read_only: Option<bool>,
    pub gtid_executed: Option<String>,
    /// Transactions this replica has and the master does not.
    pub gtid_errant: Option<GtidSet>,
    /// Transactions this replica lacks that the master has purged.
    pub gtid_missing_on_master: Option<GtidSet>,
    pub replication: Option<ReplicaStatus>,
    pub last_error: Option<String>,
    pub clone_streams_active: u32,
    pub clone_streams_served: u64,
    /// The most bytes a second this donor sends a copy at
    /// (`--clone-max-rate`): a MySQL recipient sets its CLONE to it.
    #[serde(default)]
    pub clone_max_rate: Option<u64>,
    /// The clone stream being served, if any.
    pub clone_stream: Option<StreamStatus>,
    /// Where this pod's data came from (its last clone), if it was cloned.
    pub cloned_from: Option<CloneInfo>,
    /// Seconds since the sidecar's control loop last finished a round: what
    /// this status says is at most that old.
    #[serde(default)]
    pub round_age_s: Option<f64>,
    /// On the master: the GTID position its oldest binary log starts from
    /// (what a replica lacking anything before it can no longer get).
    #[serde(default)]
    pub binlog_start: Option<String>,
    /// On the master: its binary logs and what the retention fence keeps.
    #[serde(default)]
    pub binlog: Option<BinlogStatus>,
    /// The last re-clone that `--auto-reclone` asked for: why, and the
    /// GTID sets then (its data is in `.mysql-sts-old/<at>/`).
    #[serde(default)]
    pub reclone: Option<RecloneRecord>,
    /// Why `--auto-reclone` holds a needed re-clone back, if it does.
    #[serde(default)]
    pub reclone_held: Option<String>,
    /// Copies of this pod's old data that re-clones moved aside, oldest
    /// first. While it waits for a donor they are all it holds: an empty
    /// master never takes such a pod for empty.
    #[serde(default)]
    pub aside_copies: Vec<AsideCopy>,
    /// On a master with semi-synchronous replication configured: its side
    /// of it, as the server reports it.
    #[serde(default)]
    pub semi_sync: Option<SemiSyncState>,
    pub version: String,
}

impl Status {
    /// Asks the agent of `host` (a peer's sidecar, or its init while it
    /// waits) for its status; the error says what went wrong.
    pub async fn fetch(
        http: &AgentClient,
        host: &str,
        timeout: std::time::Duration,
    ) -> std::result::Result<Status, String> {
        let resp = http
            .get(host, "/status", timeout)
            .await
            .map_err(|e| format!("no answer from {}: {e}", http.url(host, "/status")))?;
        resp.error_for_status()
            .map_err(|e| e.to_string())?
            .json::<Status>()
            .await
            .map_err(|e| format!("not a status: {e}"))
    }

    /// A sidecar's status before its first round.
    pub fn starting(identity: Identity, flavor: Option<Flavor>) -> Status {
        Status {
            identity,
            flavor,
            phase: Phase::Starting,
            ready: Readiness::starting(),
            read_only: None,
            gtid_executed: None,
            gtid_errant: None,
            gtid_missing_on_master: None,
            replication: None,
            last_error: None,
            clone_streams_active: 0,
            clone_streams_served: 0,
            clone_max_rate: None,
            clone_stream: None,
            cloned_from: None,
            round_age_s: None,
            binlog_start: None,
            binlog: None,
            reclone: None,
            reclone_held: None,
            aside_copies: Vec::new(),
            semi_sync: None,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The master's binary logs, as its retention fence sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogStatus {
    /// Binary logs kept.
    pub logs: usize,
    pub retained_bytes: u64,
    /// `--binlog-retention-max-bytes` in bytes, if set.
    pub cap_bytes: Option<u64>,
    /// The replica that expired logs are kept for, if any.
    pub held_for: Option<String>,
    /// Purges the cap forced past what a replica needed, since the sidecar
    /// started.
    pub forced_purges: u64,
    /// What each replica had executed, as last heard.
    pub replica_positions: std::collections::BTreeMap<String, String>,
}

/// What the sidecar is doing, as `/status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    #[serde(rename = "starting")]
    Starting,
    #[serde(rename = "waiting for the local server")]
    WaitingForServer,
    #[serde(rename = "master")]
    Master,
    #[serde(rename = "replicating")]
    Replicating,
    /// A replica whose server started again, applying what its relay log
    /// held before it fetches more: what it holds is still growing.
    #[serde(rename = "applying its relay log")]
    ApplyingRelayLog,
    /// Init of a pod with an empty datadir, waiting for a donor to clone.
    #[serde(rename = "waiting for a donor")]
    WaitingForDonor,
    /// Init of an empty master, waiting for every peer to say what it holds
    /// (or for the one to re-seed from to apply what it received).
    #[serde(rename = "waiting for peers")]
    WaitingForPeers,
}

/// A clone stream in flight, as `/status` shows it on the donor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamStatus {
    pub recipient: String,
    pub bytes_sent: u64,
    pub seconds: f64,
}
