//! Replication as the agent sees it: the source a replica is pointed at, and
//! the replica status the server reports, read from either engine's columns.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A non-empty set of GTIDs, as the server writes it; "none" is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GtidSet(String);

impl GtidSet {
    /// `None` for an empty set.
    pub fn new(text: &str) -> Option<GtidSet> {
        let t = text.trim();
        (!t.is_empty()).then(|| GtidSet(t.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for GtidSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A replica's GTIDs compared with its master's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidCheck {
    /// Transactions the replica has and the master does not.
    pub errant: Option<GtidSet>,
    /// Transactions the replica lacks that the master has purged from its
    /// binary logs: it can never catch up.
    pub missing: Option<GtidSet>,
    /// The master's GTID state the comparison was made with.
    pub master_gtid: Option<String>,
}

/// What a replica's comparison with the master needs of the local server,
/// read before the master is asked (MariaDB: its binary log state and
/// `server_id`; MySQL: nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaFacts {
    pub binlog_state: String,
    pub server_id: u32,
}

/// Semi-synchronous replication: the master acknowledges a commit only once
/// `wait_for` replicas have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemiSync {
    pub wait_for: u32,
    /// After this long without enough acknowledgements the master falls back
    /// to asynchronous replication; `None`: it never does (it waits).
    pub timeout: Option<std::time::Duration>,
}

impl SemiSync {
    /// The timeout as the servers take it, in milliseconds; "never" is their
    /// largest value (about 49 days).
    pub fn timeout_ms(&self) -> u64 {
        self.timeout.map_or(u64::from(u32::MAX), |t| {
            (t.as_millis() as u64).min(u64::from(u32::MAX))
        })
    }
}

/// The master's side of semi-synchronous replication, as the server
/// reports it, with the settings it runs under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemiSyncState {
    /// Switched on (by the master's sidecar).
    pub enabled: bool,
    /// Commits wait for acknowledgements now; off once the master fell back
    /// to asynchronous replication after the timeout.
    pub active: bool,
    /// Semi-synchronous replicas connected.
    pub clients: u32,
    /// Commits waiting for an acknowledgement now.
    pub waiting_sessions: u32,
    /// Acknowledgements a commit waits for.
    pub wait_for: u32,
    /// How long a commit waits before the master falls back; `None`: for ever.
    pub timeout_ms: Option<u64>,
}

impl SemiSyncState {
    /// Reads the server's `Rpl_semi_sync_{master,source}_*` status variables
    /// (name, value), MariaDB's and MySQL's names alike.
    pub fn from_status<'a>(
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
        enabled: bool,
        wait_for: u32,
        settings: &SemiSync,
    ) -> SemiSyncState {
        let mut st = SemiSyncState {
            enabled,
            wait_for,
            timeout_ms: settings.timeout.map(|_| settings.timeout_ms()),
            ..SemiSyncState::default()
        };
        for (name, value) in vars {
            let name = name.to_ascii_lowercase();
            let Some(key) = ["rpl_semi_sync_master_", "rpl_semi_sync_source_"]
                .iter()
                .find_map(|p| name.strip_prefix(p))
            else {
                continue;
            };
            match key {
                "clients" => st.clients = value.parse().unwrap_or(0),
                "wait_sessions" => st.waiting_sessions = value.parse().unwrap_or(0),
                "status" => st.active = value.eq_ignore_ascii_case("ON"),
                _ => {}
            }
        }
        st
    }

    /// Commits wait, with no timeout, for more acknowledgements than the
    /// connected replicas can give: only a replica that comes back (or is
    /// rebuilt, which a copy from this master cannot be meanwhile) ends it.
    pub fn stalled(&self) -> bool {
        self.waiting_sessions > 0 && self.clients < self.wait_for && self.timeout_ms.is_none()
    }
}

/// Where the replica should replicate from, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
    /// With a CA (a path the server can read): replicate over TLS and
    /// verify the master's certificate, for its name, against it.
    pub ca: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoState {
    /// Connected to the source and receiving.
    Yes,
    /// Trying to (re)connect: a source outage, retried by the server itself.
    Connecting,
    /// Stopped.
    No,
}

/// The parts of `SHOW REPLICA STATUS` the agent acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ReplicaStatus {
    pub io: Option<IoState>,
    pub sql_running: bool,
    pub lag_seconds: Option<u64>,
    pub source_host: String,
    pub source_port: u16,
    pub source_user: String,
    pub gtid_positioning: bool,
    pub io_errno: u32,
    pub io_error: String,
    pub sql_errno: u32,
    pub sql_error: String,
    pub retrieved_gtid: String,
    /// What the SQL (applier) thread is doing.
    #[serde(default)]
    pub sql_state: String,
    /// The CA the channel verifies the master's certificate against, and
    /// whether it does.
    #[serde(default)]
    pub ssl_ca: String,
    #[serde(default)]
    pub ssl_verify: bool,
    /// Heartbeats received from the master so far (read apart from the
    /// status row), and the channel's heartbeat period in milliseconds.
    #[serde(default)]
    pub heartbeats: Option<u64>,
    #[serde(default)]
    pub heartbeat_period_ms: Option<u64>,
}

/// The heartbeat period a replica asks of its master: an idle master still
/// sends something every second, so silence means a cut link.
pub const HEARTBEAT_PERIOD_S: u32 = 1;

impl ReplicaStatus {
    /// Reads one row of `SHOW REPLICA STATUS` (MySQL) or `SHOW SLAVE STATUS`
    /// (MariaDB), given as column → value.
    pub fn from_row(row: &HashMap<String, Option<String>>) -> ReplicaStatus {
        let get = |c: StatusColumn| -> &str {
            c.names()
                .iter()
                .find_map(|name| row.get(*name).and_then(|v| v.as_deref()))
                .unwrap_or("")
        };
        let io = match get(StatusColumn::IoRunning) {
            "Yes" => IoState::Yes,
            "Connecting" | "Preparing" => IoState::Connecting,
            _ => IoState::No,
        };
        let gtid = get(StatusColumn::GtidMode);
        ReplicaStatus {
            io: Some(io),
            sql_running: get(StatusColumn::SqlRunning) == "Yes",
            lag_seconds: get(StatusColumn::Lag).parse().ok(),
            source_host: get(StatusColumn::SourceHost).to_owned(),
            source_port: get(StatusColumn::SourcePort).parse().unwrap_or(0),
            source_user: get(StatusColumn::SourceUser).to_owned(),
            gtid_positioning: gtid == "1" || gtid.eq_ignore_ascii_case("slave_pos"),
            io_errno: get(StatusColumn::IoErrno).parse().unwrap_or(0),
            io_error: get(StatusColumn::IoError).to_owned(),
            sql_errno: get(StatusColumn::SqlErrno).parse().unwrap_or(0),
            sql_error: get(StatusColumn::SqlError).to_owned(),
            retrieved_gtid: get(StatusColumn::RetrievedGtid).to_owned(),
            sql_state: get(StatusColumn::SqlState).to_owned(),
            ssl_ca: get(StatusColumn::SslCa).to_owned(),
            ssl_verify: get(StatusColumn::SslVerify) == "Yes",
            heartbeats: None,
            heartbeat_period_ms: None,
        }
    }

    /// Whether the applier has applied everything the replica received (it
    /// waits for more; a transaction only partly received never applies).
    pub fn applied_all_received(&self) -> bool {
        self.sql_running && self.sql_state.contains("read all relay log")
    }

    /// Whether the replica replicates from `host:port` as `user` by GTID.
    pub fn points_at(&self, host: &str, port: u16, user: &str) -> bool {
        self.source_host == host
            && self.source_port == port
            && self.source_user == user
            && self.gtid_positioning
    }
}

/// The status columns the agent reads.
#[derive(Debug, Clone, Copy)]
enum StatusColumn {
    IoRunning,
    SqlRunning,
    Lag,
    SourceHost,
    SourcePort,
    SourceUser,
    IoErrno,
    IoError,
    SqlErrno,
    SqlError,
    GtidMode,
    RetrievedGtid,
    SqlState,
    SslCa,
    SslVerify,
}

impl StatusColumn {
    /// A column's names, which differ by engine and version.
    fn names(self) -> &'static [&'static str] {
        use StatusColumn::*;
        match self {
            IoRunning => &["Replica_IO_Running", "Slave_IO_Running"],
            SqlRunning => &["Replica_SQL_Running", "Slave_SQL_Running"],
            Lag => &["Seconds_Behind_Source", "Seconds_Behind_Master"],
            SourceHost => &["Source_Host", "Master_Host"],
            SourcePort => &["Source_Port", "Master_Port"],
            SourceUser => &["Source_User", "Master_User"],
            IoErrno => &["Last_IO_Errno"],
            IoError => &["Last_IO_Error"],
            SqlErrno => &["Last_SQL_Errno"],
            SqlError => &["Last_SQL_Error"],
            GtidMode => &["Auto_Position", "Using_Gtid"],
            RetrievedGtid => &["Retrieved_Gtid_Set", "Gtid_IO_Pos"],
            SqlState => &["Replica_SQL_Running_State", "Slave_SQL_Running_State"],
            SslCa => &["Source_SSL_CA_File", "Master_SSL_CA_File"],
            SslVerify => &[
                "Source_SSL_Verify_Server_Cert",
                "Master_SSL_Verify_Server_Cert",
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> HashMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }

    #[test]
    fn parses_mysql_status() {
        let s = ReplicaStatus::from_row(&row(&[
            ("Replica_IO_Running", "Yes"),
            ("Replica_SQL_Running", "Yes"),
            ("Seconds_Behind_Source", "3"),
            ("Source_Host", "mysql-0.h"),
            ("Source_Port", "3306"),
            ("Source_User", "repl"),
            ("Auto_Position", "1"),
            ("Last_IO_Errno", "0"),
            ("Last_SQL_Errno", "0"),
        ]));
        assert_eq!(s.io, Some(IoState::Yes));
        assert!(s.sql_running);
        assert_eq!(s.lag_seconds, Some(3));
        assert!(s.points_at("mysql-0.h", 3306, "repl"));
        assert!(!s.points_at("mysql-1.h", 3306, "repl"));
    }

    #[test]
    fn parses_mariadb_status() {
        let mut r = row(&[
            ("Slave_IO_Running", "Connecting"),
            ("Slave_SQL_Running", "Yes"),
            ("Master_Host", "mysql-0"),
            ("Master_Port", "3306"),
            ("Master_User", "repl"),
            ("Using_Gtid", "Slave_Pos"),
            ("Last_IO_Errno", "2003"),
            ("Last_IO_Error", "can't connect"),
        ]);
        r.insert("Seconds_Behind_Master".into(), None);
        let s = ReplicaStatus::from_row(&r);
        assert_eq!(s.io, Some(IoState::Connecting));
        assert_eq!(s.lag_seconds, None);
        assert_eq!(s.io_errno, 2003);
        assert!(s.points_at("mysql-0", 3306, "repl"));
        let no_gtid = ReplicaStatus {
            gtid_positioning: false,
            ..s
        };
        assert!(!no_gtid.points_at("mysql-0", 3306, "repl"));
    }

    #[test]
    fn semi_sync_state() {
        let never = SemiSync {
            wait_for: 1,
            timeout: None,
        };
        let mariadb = [
            ("Rpl_semi_sync_master_clients", "0"),
            ("Rpl_semi_sync_master_status", "ON"),
            ("Rpl_semi_sync_master_wait_sessions", "2"),
            ("Rpl_semi_sync_slave_status", "OFF"),
        ];
        let st = SemiSyncState::from_status(mariadb, true, 1, &never);
        assert_eq!((st.clients, st.waiting_sessions, st.active), (0, 2, true));
        assert!(st.stalled());
        let mysql = [
            ("Rpl_semi_sync_source_clients", "1"),
            ("Rpl_semi_sync_source_status", "ON"),
            ("Rpl_semi_sync_source_wait_sessions", "3"),
        ];
        // One replica connected of the two a commit waits for.
        let st = SemiSyncState::from_status(mysql, true, 2, &never);
        assert!(st.stalled());
        // Enough replicas: the waits end with their acknowledgements.
        assert!(!SemiSyncState::from_status(mysql, true, 1, &never).stalled());
        // A timeout ends every wait.
        let fallback = SemiSync {
            timeout: Some(std::time::Duration::from_secs(10)),
            ..never
        };
        let st = SemiSyncState::from_status(mariadb, true, 1, &fallback);
        assert_eq!(st.timeout_ms, Some(10_000));
        assert!(!st.stalled());
    }
}
