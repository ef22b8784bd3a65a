//! MySQL (8.4, 9.x): its server settings, SQL, GTID arithmetic and the CLONE
//! plugin recipient. Reached only through `Flavor`, the engine seam.

pub mod backup;
pub mod clone;
pub mod gtid;

use mysql_async::Conn;

use crate::engine::replication::{GtidCheck, GtidSet, SemiSync, Source};
use crate::error::Result;
use crate::net::sql::{self, quote};
use crate::pod::Role;

/// The engine's lines of `mysql-sts.cnf`.
pub fn cnf(role: Role) -> String {
    let mut s = String::from(
        "gtid_mode=ON\nenforce_gtid_consistency=ON\nlog_replica_updates=ON\n\
         plugin_load_add=mysql_clone.so\nread_only=ON\nreplica_net_timeout=10\n",
    );
    if role == Role::Replica {
        s.push_str("super_read_only=ON\n");
    }
    s
}

/// The semi-synchronous lines of `mysql-sts.cnf`: both plugins on every pod
/// (a replica may become a master's copy); the source side is on from the
/// start of a master that holds data (`restart`), else switched on by its
/// sidecar once the replication account exists.
pub fn semi_sync_cnf(role: Role, s: &SemiSync, restart: bool) -> String {
    let mut out = format!(
        "plugin_load_add=semisync_source.so\nplugin_load_add=semisync_replica.so\n\
         loose-rpl_semi_sync_source_wait_point=AFTER_SYNC\n\
         loose-rpl_semi_sync_source_timeout={}\n\
         loose-rpl_semi_sync_source_wait_for_replica_count={}\n",
        s.timeout_ms(),
        s.wait_for
    );
    match role {
        Role::Replica => out.push_str("loose-rpl_semi_sync_replica_enabled=ON\n"),
        Role::Master if restart => out.push_str("loose-rpl_semi_sync_source_enabled=ON\n"),
        Role::Master => {}
    }
    out
}

pub const SEMI_SYNC_SOURCE_ENABLED: &str = "SELECT @@global.rpl_semi_sync_source_enabled";
pub const ENABLE_SEMI_SYNC_SOURCE: &str = "SET GLOBAL rpl_semi_sync_source_enabled = ON";

pub fn set_read_only(on: bool) -> Vec<String> {
    if on {
        vec!["SET GLOBAL super_read_only=ON".into()]
    } else {
        vec![
            "SET GLOBAL super_read_only=OFF".into(),
            "SET GLOBAL read_only=OFF".into(),
        ]
    }
}

/// On a replica, read-only even for SUPER (what the agent sets); on a
/// master, read-only in any way.
pub fn read_only_query(role: Role) -> &'static str {
    match role {
        Role::Replica => "SELECT @@global.super_read_only",
        Role::Master => "SELECT @@global.read_only OR @@global.super_read_only",
    }
}

/// Keeps the replication threads from starting with the server.
pub const SKIP_REPLICA_START: &str = "skip_replica_start=ON\n";
pub const GTID_EXECUTED: &str = "SELECT @@global.gtid_executed";
pub const REPLICA_STATUS: &str = "SHOW REPLICA STATUS";
pub const STOP_REPLICA: &str = "STOP REPLICA";
pub const START_REPLICA: &str = "START REPLICA";
pub const RESET_REPLICA_ALL: &str = "RESET REPLICA ALL";
/// What replication needs and what a CLONE donor needs.
pub const REPLICATION_PRIVILEGES: &str = "REPLICATION SLAVE, BACKUP_ADMIN";

pub fn change_source(src: &Source<'_>) -> String {
    let verify = match src.ca {
        Some(ca) => format!(
            ", SOURCE_SSL_CA={}, SOURCE_SSL_VERIFY_SERVER_CERT=1",
            quote(ca)
        ),
        None => String::new(),
    };
    format!(
        "CHANGE REPLICATION SOURCE TO SOURCE_HOST={}, SOURCE_PORT={}, \
         SOURCE_USER={}, SOURCE_PASSWORD={}, SOURCE_AUTO_POSITION=1, \
         SOURCE_SSL=1{verify}, SOURCE_CONNECT_RETRY=1, SOURCE_RETRY_COUNT=1000000, \
         SOURCE_HEARTBEAT_PERIOD={}",
        quote(src.host),
        src.port,
        quote(src.user),
        quote(src.password),
        crate::engine::replication::HEARTBEAT_PERIOD_S
    )
}

/// Heartbeats received on the replication channel, and their period (s).
pub const HEARTBEATS: &str = "SELECT s.COUNT_RECEIVED_HEARTBEATS, c.HEARTBEAT_INTERVAL \
     FROM performance_schema.replication_connection_status s \
     JOIN performance_schema.replication_connection_configuration c USING (CHANNEL_NAME) \
     WHERE CHANNEL_NAME = ''";

/// The GTIDs logged before binary log `name` began: its `Previous_gtids`
/// event.
pub async fn binlog_start(conn: &mut Conn, name: &str) -> Result<String> {
    let info = crate::engine::binlog::event_info(conn, name, 3, "Previous_gtids").await?;
    Ok(info
        .map(|i| i.split_whitespace().collect())
        .unwrap_or_default())
}

/// The statements that stop the server's own binary log expiry, from its
/// settings (name, value): the agent's retention fence purges instead.
pub fn stop_server_expiry(vars: &[(String, String)]) -> Vec<String> {
    vars.iter()
        .filter(|(name, value)| name == "binlog_expire_logs_auto_purge" && value == "ON")
        .map(|(name, _)| format!("SET GLOBAL {name} = OFF"))
        .collect()
}

/// The setting of the master's `mysql-sts.cnf` that keeps the server from
/// expiring binary logs by itself (at start-up too); the agent reads
/// `binlog_expire_logs_seconds` as the expiry it applies.
pub const NO_SERVER_EXPIRY: &str = "binlog_expire_logs_auto_purge=OFF\n";

/// How long (seconds) the master may take to commit a transaction a replica
/// already has, before the replica's copy of it counts as errant: well
/// inside the sidecar's bound on the whole comparison.
const IN_FLIGHT_WAIT_S: &str = "0.5";

/// The transactions `ours` has that the master has not, and those the master
/// has purged that `held` (`ours` and what the relay log holds) lacks: the
/// master's own `GTID_SUBTRACT`, on the
/// master (the local connection is not used: this may be cut off by a
/// timeout).
///
/// The master's `gtid_executed` takes a transaction in only once it commits,
/// and with semi-synchronous replication (`AFTER_SYNC`) that is after a
/// replica has received it, which may have applied it by then: the newest
/// transactions of a healthy replica can be missing from the master's set
/// for a moment. What looks errant is therefore given to the master to wait
/// for (`WAIT_FOR_EXECUTED_GTID_SET`, half a second), and is errant only if
/// the master has still not executed it.
pub async fn compare_with_master(master: &mut Conn, ours: &str, held: &str) -> Result<GtidCheck> {
    let compare = format!(
        "SELECT GTID_SUBTRACT({ours}, @@global.gtid_executed), \
         GTID_SUBTRACT(@@global.gtid_purged, {held}), @@global.gtid_executed",
        ours = quote(ours),
        held = quote(held)
    );
    let one_line = |row: &_, i: usize| sql::column(row, i).replace('\n', "");
    let mut row = sql::first_row(master, &compare).await?;
    let errant = one_line(&row, 0);
    if !errant.is_empty() {
        sql::scalar(
            master,
            &format!(
                "SELECT WAIT_FOR_EXECUTED_GTID_SET({}, {IN_FLIGHT_WAIT_S})",
                quote(&errant)
            ),
        )
        .await?;
        row = sql::first_row(master, &compare).await?;
    }
    Ok(GtidCheck {
        errant: GtidSet::new(&one_line(&row, 0)),
        missing: GtidSet::new(&one_line(&row, 1)),
        master_gtid: Some(one_line(&row, 2)),
    })
}

/// Where, in binary log `file`, the transaction after `gtid` begins (the
/// byte position `mysqlbinlog --stop-position` takes); `None` when `gtid`
/// is the file's last. Reads the file's events as `mysqlbinlog` prints them
/// and stops reading once it knows.
pub async fn binlog_end_of(file: &std::path::Path, gtid: &str) -> Result<Option<u64>> {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new("mysqlbinlog")
        .arg(file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| crate::error::Error::Other(format!("cannot run mysqlbinlog: {e}")))?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let (mut at, mut found) = (0u64, false);
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| crate::error::Error::Other(format!("reading mysqlbinlog: {e}")))?
    {
        if let Some(pos) = line.strip_prefix("# at ") {
            at = pos.trim().parse().unwrap_or(at);
        } else if let Some(next) = gtid_next(&line) {
            if found {
                return Ok(Some(at));
            }
            found = next.eq_ignore_ascii_case(gtid);
        }
    }
    if found {
        Ok(None)
    } else {
        Err(crate::error::Error::Other(format!(
            "the binary log {} does not hold {gtid}",
            file.display()
        )))
    }
}

/// The GTID a `mysqlbinlog` line gives the transaction it begins:
/// `SET @@SESSION.GTID_NEXT= '<uuid>:<n>'/*!*/;` (not `AUTOMATIC`).
fn gtid_next(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("SET @@SESSION.GTID_NEXT= '")?;
    let gtid = &rest[..rest.find('\'')?];
    gtid.contains(':').then_some(gtid)
}

#[cfg(test)]
mod binlog_tests {
    use super::gtid_next;

    #[test]
    fn the_gtid_a_transaction_begins_with() {
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        assert_eq!(
            gtid_next(&format!("SET @@SESSION.GTID_NEXT= '{uuid}:23'/*!*/;")),
            Some(format!("{uuid}:23").as_str())
        );
        assert_eq!(
            gtid_next("SET @@SESSION.GTID_NEXT= 'AUTOMATIC' /* added by mysqlbinlog */ /*!*/;"),
            None
        );
        assert_eq!(gtid_next("# at 233"), None);
    }
}
