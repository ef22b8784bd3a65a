//! Carrying out the repairs the plan decided, with the
//! engine's SQL. Thin: every decision was made before.

use mysql_async::Conn;
use tracing::{info, warn};

use crate::datadir::{Datadir, RecloneRecord};
use crate::engine::replication::Source;
use crate::engine::{Flavor, binlog};
use crate::error::Result;
use crate::net::sql;
use crate::secret::Secret;
use crate::sidecar::plan::{Action, MasterRef};

/// Runs `actions` in order, stopping at the first error.
pub async fn apply(
    conn: &mut Conn,
    flavor: Flavor,
    actions: &[Action],
    master: &MasterRef,
    password: &Secret,
    datadir: &Datadir,
) -> Result<()> {
    for action in actions {
        match action {
            Action::EnsureReplicationUser => {
                if flavor
                    .replication_user_in_place(conn, &master.user, password.expose())
                    .await
                {
                    info!(user = %master.user, "replication user in place");
                    continue;
                }
                let stmts = flavor.ensure_replication_user(&master.user, password.expose());
                flavor.run_account_statements(conn, &stmts).await?;
                info!(user = %master.user, "replication user set to the replication password");
            }
            Action::RemoveReplication => {
                warn!("the master has replication configured; removing it");
                sql::exec(conn, flavor.stop_replica()).await?;
                sql::exec(conn, flavor.reset_replica_all()).await?;
            }
            Action::ContinueSequence { cloned } => flavor.continue_sequence(conn, cloned).await?,
            Action::SetReadOnly(on) => {
                if *on {
                    warn!("the replica is writable; making it read-only");
                } else {
                    info!("making the master writable");
                }
                for stmt in flavor.set_read_only(*on) {
                    sql::exec(conn, &stmt).await?;
                }
            }
            Action::RecordBinlogStart => {
                if let Some(first) = binlog::list(conn).await?.first() {
                    let start = flavor.binlog_start(conn, &first.name).await?;
                    datadir.record_binlog_start(&start)?;
                }
            }
            Action::EnableSemiSync => {
                info!("semi-synchronous replication on: commits wait for a replica");
                sql::exec(conn, flavor.enable_semi_sync_source()).await?;
            }
            Action::RecordDivergence(errant) => {
                warn!(errant = %errant, "this replica's data diverged from the master's: replication stays off until it is cloned again");
                datadir.record_divergence(errant)?;
            }
            Action::StopReplica => {
                warn!("stopping replication: this replica's data diverged");
                sql::exec(conn, flavor.stop_replica()).await?;
            }
            Action::ApplyRelayLog => {
                info!("applying what the relay log holds before fetching more");
                // One attempt: a relay log that cannot be applied is fetched
                // again from the master.
                if let Err(e) = flavor.apply_relay_log(conn).await {
                    warn!(error = %e, "cannot apply the relay log; the replica fetches from the master instead");
                }
            }
            Action::StartReplica => {
                info!("replication is stopped without an error; starting it");
                sql::exec(conn, flavor.start_replica()).await?;
            }
            Action::RequestReclone(r) => {
                let record = RecloneRecord {
                    at: crate::datadir::unix_now(),
                    why: r.why.to_owned(),
                    errant: r.errant.clone(),
                    missing: r.missing.clone(),
                    executed: r.executed.clone(),
                    master: master.host.clone(),
                    master_gtid: r.master_gtid.clone(),
                };
                warn!(why = r.why, errant = ?r.errant, missing = ?r.missing, "--auto-reclone: this replica's data cannot follow the master; asking init for a re-clone and stopping the server (its container's next start moves the data aside and clones again)");
                datadir.request_reclone(&record)?;
                sql::exec(conn, "SHUTDOWN").await?;
            }
            Action::PointAtPeer { host } => {
                info!(peer = %host, "fetching what the master purged from the peer it was re-seeded from");
                point_at(conn, flavor, host, None, master, password).await?;
            }
            Action::PointAtMaster { start_gtid } => {
                info!(master = %master.host, "pointing replication at the master");
                point_at(
                    conn,
                    flavor,
                    &master.host,
                    start_gtid.as_deref(),
                    master,
                    password,
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Points replication at `host` (the master, or a peer), as the master's
/// account, from `start_gtid` where given and the engine needs telling.
async fn point_at(
    conn: &mut Conn,
    flavor: Flavor,
    host: &str,
    start_gtid: Option<&str>,
    master: &MasterRef,
    password: &Secret,
) -> Result<()> {
    sql::exec(conn, flavor.stop_replica()).await?;
    if let Some(gtid) = start_gtid
        && let Some(stmt) = flavor.set_start_position(gtid)
    {
        info!(gtid = %gtid, "starting from the cloned position");
        sql::exec(conn, &stmt).await?;
    }
    let src = Source {
        host,
        port: master.port,
        user: &master.user,
        password: password.expose(),
        ca: master.ca.as_deref(),
    };
    sql::exec(conn, &flavor.change_source(&src)).await?;
    sql::exec(conn, flavor.start_replica()).await
}
