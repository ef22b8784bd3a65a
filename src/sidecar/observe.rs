//! What the sidecar reads from the local server each round: thin reads,
//! every one through the engine's SQL.

use mysql_async::Conn;
use tracing::info;

use crate::engine::Flavor;
use crate::engine::replication::ReplicaStatus;
use crate::error::Result;
use crate::net::sql;
use crate::pod::Role;

/// One round's reading of the local server.
#[derive(Debug, Clone)]
pub struct Local {
    /// The executed GTIDs, read before the master's in a replica's check:
    /// whatever we got from the master is in the master's set by then.
    pub executed: String,
    pub read_only: bool,
    pub replica: Option<ReplicaStatus>,
}

/// Asks the server which flavour it is.
pub async fn flavor(conn: &mut Conn) -> Result<Flavor> {
    let version = sql::scalar(conn, "SELECT VERSION()").await?;
    let f = Flavor::from_version(&version);
    info!(flavor = %f, "flavour detected from the server");
    Ok(f)
}

pub async fn local(conn: &mut Conn, flavor: Flavor, role: Role) -> Result<Local> {
    Ok(Local {
        executed: sql::scalar(conn, flavor.gtid_executed_query()).await?,
        read_only: read_only(conn, flavor, role).await?,
        replica: replica_status(conn, flavor).await?,
    })
}

/// Whether the server is read-only in the sense that matters for `role`.
pub async fn read_only(conn: &mut Conn, flavor: Flavor, role: Role) -> Result<bool> {
    Ok(sql::scalar(conn, flavor.read_only_query(role)).await? == "1")
}

/// The replica status, `None` when no source is configured.
pub async fn replica_status(conn: &mut Conn, flavor: Flavor) -> Result<Option<ReplicaStatus>> {
    let rows = sql::rows(conn, flavor.replica_status_query()).await?;
    let Some(mut st) = rows
        .first()
        .map(ReplicaStatus::from_row)
        .filter(|s| !s.source_host.is_empty())
    else {
        return Ok(None);
    };
    // Where the server cannot say (an older one), nothing is judged on them.
    if let Ok(row) = sql::first_row(conn, flavor.heartbeats_query()).await {
        st.heartbeats = sql::column(&row, 0).parse().ok();
        st.heartbeat_period_ms = sql::column(&row, 1)
            .parse::<f64>()
            .ok()
            .map(|s| (s * 1000.0).round() as u64);
    }
    Ok(Some(st))
}
