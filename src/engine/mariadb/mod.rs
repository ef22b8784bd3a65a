//! MariaDB (10.6+): its server settings, SQL, GTID arithmetic, and both ends
//! of a `mariadb-backup` clone. Reached only through `Flavor`, the engine seam.

mod ahead;
pub mod backup;
pub mod clone;
pub mod gtid;

use mysql_async::Conn;
use tracing::info;

use crate::engine::replication::{GtidCheck, GtidSet, ReplicaFacts, SemiSync, Source};
use crate::error::Result;
use crate::net::sql::{self, quote};
use crate::pod::Role;

/// The engine's lines of `mysql-sts.cnf`.
pub fn cnf() -> String {
    // MariaDB would list the old data moved aside as a database.
    format!(
        "binlog_format=ROW\nlog_slave_updates=ON\ngtid_strict_mode=ON\n\
         ignore_db_dirs={}\nread_only=ON\nslave_net_timeout=10\n\
         sync_relay_log_info=1\nsync_master_info=1\n",
        crate::datadir::OLD_DIR
    )
}

/// The semi-synchronous lines of `mysql-sts.cnf` (built into the server; one
/// replica's acknowledgement is all MariaDB waits for). The master side is
/// on from the start of a master that holds data (`restart`), else switched
/// on by its sidecar once the replication account exists.
pub fn semi_sync_cnf(role: Role, s: &SemiSync, restart: bool) -> String {
    let mut out = format!(
        "rpl_semi_sync_master_wait_point=AFTER_SYNC\nrpl_semi_sync_master_timeout={}\n",
        s.timeout_ms()
    );
    match role {
        Role::Replica => out.push_str("rpl_semi_sync_slave_enabled=ON\n"),
        Role::Master if restart => out.push_str("rpl_semi_sync_master_enabled=ON\n"),
        Role::Master => {}
    }
    out
}

pub const SEMI_SYNC_SOURCE_ENABLED: &str = "SELECT @@global.rpl_semi_sync_master_enabled";
pub const ENABLE_SEMI_SYNC_SOURCE: &str = "SET GLOBAL rpl_semi_sync_master_enabled = ON";

pub fn set_read_only(on: bool) -> Vec<String> {
    vec![format!(
        "SET GLOBAL read_only={}",
        if on { "ON" } else { "OFF" }
    )]
}

/// Keeps the replication threads from starting with the server.
pub const SKIP_REPLICA_START: &str = "skip_slave_start=ON\n";
pub const READ_ONLY: &str = "SELECT @@global.read_only";
pub const GTID_EXECUTED: &str = "SELECT @@global.gtid_current_pos";
pub const GTID_BINLOG_STATE: &str = "SELECT @@global.gtid_binlog_state";
pub const REPLICA_STATUS: &str = "SHOW SLAVE STATUS";
pub const STOP_REPLICA: &str = "STOP SLAVE";
pub const START_REPLICA: &str = "START SLAVE";
pub const RESET_REPLICA_ALL: &str = "RESET SLAVE ALL";
/// What replication needs and what the agent's binlog check needs.
pub const REPLICATION_PRIVILEGES: &str = "REPLICATION SLAVE, BINLOG MONITOR";

pub fn change_source(src: &Source<'_>) -> String {
    let tls = match src.ca {
        Some(ca) => format!(
            ", MASTER_SSL=1, MASTER_SSL_CA={}, MASTER_SSL_VERIFY_SERVER_CERT=1",
            quote(ca)
        ),
        None => String::new(),
    };
    format!(
        "CHANGE MASTER TO MASTER_HOST={}, MASTER_PORT={}, \
         MASTER_USER={}, MASTER_PASSWORD={}, \
         MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD={}{tls}",
        quote(src.host),
        src.port,
        quote(src.user),
        quote(src.password),
        crate::engine::replication::HEARTBEAT_PERIOD_S
    )
}

/// Heartbeats received on the replication channel, and their period (s).
pub const HEARTBEATS: &str = "SELECT \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
      WHERE VARIABLE_NAME = 'SLAVE_RECEIVED_HEARTBEATS'), \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
      WHERE VARIABLE_NAME = 'SLAVE_HEARTBEAT_PERIOD')";

/// The `mysql_native_password` hash of `password`, as `PASSWORD()` makes
/// it: `*` and the upper-case hex of SHA-1(SHA-1(password)). It lets a
/// server check a password, not log in with it.
pub fn native_password_hash(password: &str) -> String {
    use sha1::{Digest, Sha1};
    let twice = Sha1::digest(Sha1::digest(password.as_bytes()));
    let mut out = String::with_capacity(41);
    out.push('*');
    for b in twice {
        out.push_str(&format!("{b:02X}"));
    }
    out
}

/// Sets the position a freshly cloned replica starts from.
pub fn set_start_position(gtid: &str) -> String {
    format!("SET GLOBAL gtid_slave_pos={}", quote(gtid))
}

/// What a replica's comparison needs of the local server, read before the
/// master is asked: its binary log state and `server_id`.
pub async fn replica_facts(local: &mut Conn) -> Result<ReplicaFacts> {
    Ok(ReplicaFacts {
        binlog_state: sql::scalar(local, GTID_BINLOG_STATE).await?,
        server_id: sql::scalar(local, "SELECT @@global.server_id")
            .await?
            .parse()
            .unwrap_or(0),
    })
}

/// The GTIDs in our binary log state the master's does not have, and the domains where `ours` is behind the start of the
/// master's oldest binary log. Ours is read first: whatever we got from the
/// master is in the master's state by the time that is read. Where the
/// oldest log starts is what the master's sidecar published (`published`),
/// else read from the master, which waits while a commit there waits for a
/// semi-synchronous acknowledgement.
pub async fn compare_with_master(
    facts: &ReplicaFacts,
    master: &mut Conn,
    held: &str,
    published: Option<&str>,
) -> Result<GtidCheck> {
    let (state, own) = (&facts.binlog_state, facts.server_id);
    let master_state = sql::scalar(master, GTID_BINLOG_STATE).await?;
    let oldest = match published {
        Some(start) => start.to_owned(),
        None => match crate::engine::binlog::list(master).await?.first() {
            Some(first) => binlog_start(master, &first.name).await?,
            None => String::new(),
        },
    };
    // What the replica holds beyond its binary log: a copy's position (a
    // replica cloned a moment ago has logged nothing yet) and its relay log.
    let holds = format!("{state},{held}");
    let errant = gtid::errant(&holds, own, &master_state, &oldest).join(",");
    Ok(GtidCheck {
        errant: GtidSet::new(&errant),
        missing: GtidSet::new(&gtid::missing(held, &oldest).join(",")),
        master_gtid: Some(master_state),
    })
}

/// The position binary log `name` starts from: its `Gtid_list` event, the
/// last GTID of every (domain, server) logged before it.
pub async fn binlog_start(conn: &mut Conn, name: &str) -> Result<String> {
    let info = crate::engine::binlog::event_info(conn, name, 4, "Gtid_list").await?;
    Ok(info.map(|i| gtid::gtid_list(&i)).unwrap_or_default())
}

/// The statements that stop the server's own binary log expiry, from its
/// settings (name, value): the agent's retention fence purges instead.
pub fn stop_server_expiry(vars: &[(String, String)]) -> Vec<String> {
    vars.iter()
        .filter(|(name, value)| {
            matches!(
                name.as_str(),
                "binlog_expire_logs_seconds" | "expire_logs_days" | "max_binlog_total_size"
            ) && value.parse::<f64>().is_ok_and(|v| v != 0.0)
        })
        .map(|(name, _)| format!("SET GLOBAL {name} = 0"))
        .collect()
}

/// The settings of the master's `mysql-sts.cnf` that keep the server from
/// expiring binary logs by itself.
pub const NO_SERVER_EXPIRY: &str = "binlog_expire_logs_seconds=0\nexpire_logs_days=0\n";

/// Where in the relay log the applier must resume: the first transaction
/// (its GTID event) that `gtid_slave_pos` does not hold, in the relay log
/// the applier stopped in or a later one; else the end of the last. `None`
/// without a relay log. (The relay log's own record of the applier's
/// place lags behind in GTID mode.)
pub async fn relay_log_resume(conn: &mut Conn) -> Result<Option<(String, u64)>> {
    let status = sql::rows(conn, "SHOW SLAVE STATUS").await?;
    let Some(first) = status
        .first()
        .and_then(|r| r.get("Relay_Log_File").cloned().flatten())
        .filter(|f| !f.is_empty())
    else {
        return Ok(None);
    };
    let applied = sql::scalar(conn, "SELECT @@global.gtid_slave_pos").await?;
    let mut file = first;
    let mut end = None;
    // relay.000002, relay.000003, ... until one is missing.
    for _ in 0..10_000 {
        let Ok(events) =
            sql::rows(conn, &format!("SHOW RELAYLOG EVENTS IN {}", quote(&file))).await
        else {
            break;
        };
        for e in &events {
            let get = |k: &str| e.get(k).cloned().flatten().unwrap_or_default();
            let pos: u64 = get("Pos").parse().unwrap_or(4);
            end = Some((file.clone(), get("End_log_pos").parse().unwrap_or(pos)));
            if get("Event_type") != "Gtid" {
                continue;
            }
            let info = get("Info");
            let Some(id) = info
                .split_whitespace()
                .find(|w| w.matches('-').count() == 2)
            else {
                continue;
            };
            if !gtid::contains(&applied, id) {
                return Ok(Some((file, pos)));
            }
        }
        match next_log_name(&file) {
            Some(next) => file = next,
            None => break,
        }
    }
    Ok(end)
}

/// `relay.000002` → `relay.000003`.
fn next_log_name(name: &str) -> Option<String> {
    let (base, n) = name.rsplit_once('.')?;
    let next = n.parse::<u64>().ok()? + 1;
    Some(format!("{base}.{next:0width$}", width = n.len()))
}

/// A master whose data came from a clone has an empty binary log: its next
/// transaction would reuse sequence numbers the replicas already have.
/// Continue the GTID sequence from where the copy stands.
pub async fn continue_sequence(conn: &mut Conn, cloned: &str) -> Result<()> {
    let pos = sql::scalar(conn, "SELECT @@global.gtid_binlog_pos").await?;
    if pos.is_empty() && !cloned.is_empty() {
        info!(gtid = %cloned, "continuing the GTID sequence of the cloned data");
        sql::exec(conn, "RESET MASTER").await?;
        sql::exec(
            conn,
            &format!("SET GLOBAL gtid_binlog_state = {}", quote(cloned)),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_relay_log() {
        assert_eq!(
            super::next_log_name("./relay.000009").as_deref(),
            Some("./relay.000010")
        );
        assert_eq!(super::next_log_name("relay"), None);
    }

    #[test]
    fn native_password_hash_is_what_password_makes() {
        // SELECT PASSWORD('password') on MariaDB.
        assert_eq!(
            super::native_password_hash("password"),
            "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
        );
    }
}
