//! A clone carried out under the datadir rule: marker, staging, commit; a
//! failed attempt (a donor that died mid-stream, a cut stream) is wiped and
//! retried with the next ready donor, up to `--clone-attempts` and within
//! `--donor-timeout`.

use std::time::Duration;

use tracing::{info, warn};

use crate::config::{InitConfig, SeedFrom};
use crate::datadir::Datadir;
use crate::engine::CloneCredentials;
use crate::engine::clone::{Donor, Request};
use crate::error::{Error, Result};
use crate::init::donor;
use crate::net::agent_client::AgentClient;
use crate::status::Status;

/// How long a donor must report a semi-synchronous stall before the copy
/// from it is given up (a replica that reconnects ends a stall at once).
const STALL_GRACE: Duration = Duration::from_secs(6);

/// Clones into the (empty) datadir, from `fixed` first when given (the
/// master's re-seed source), else from the first ready donor.
pub async fn clone_with_retries(
    cfg: &InitConfig,
    credentials: &CloneCredentials,
    dd: &Datadir,
    fixed: Option<Donor>,
) -> Result<()> {
    let started = std::time::Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let donor = match &fixed {
            Some(d) if attempt == 1 => d.clone(),
            _ => {
                let left = cfg.donor_timeout.saturating_sub(started.elapsed());
                donor::wait_for_donor(
                    &cfg.identity.donors,
                    &cfg.resolver,
                    &cfg.http,
                    left,
                    cfg.donor_fallback_after,
                )
                .await?
            }
        };
        match clone_once(cfg, credentials, dd, &donor, attempt - 1).await {
            Ok(()) => return Ok(()),
            Err(e @ Error::CloneRefused { .. }) => return Err(e),
            Err(e) if attempt < cfg.clone_attempts && !cfg.identity.donors.is_empty() => {
                warn!(attempt, error = %e, "clone attempt failed; the datadir is empty again, trying again");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn clone_once(
    cfg: &InitConfig,
    credentials: &CloneCredentials,
    dd: &Datadir,
    donor: &Donor,
    failed_before: u32,
) -> Result<()> {
    staged(cfg, dd, donor, failed_before, async |req| {
        tokio::select! {
            r = credentials.clone(req) => r,
            e = semi_sync_stall(&cfg.http, &donor.name) => {
                credentials.abandon(req).await;
                Err(e)
            }
        }
    })
    .await
}

/// The backup an empty replica is seeded from, as `--seed-from` says, and
/// the bucket it is in: `backup`, the newest complete one (an error when
/// there is none); `auto`, the newest when the master still holds every
/// binary log written since it (the replica must catch up through them);
/// else `None`: a peer.
pub async fn backup_to_seed_from(
    cfg: &InitConfig,
) -> Result<Option<(&crate::backup::Store, crate::backup::Manifest)>> {
    let Some(store) = &cfg.store else {
        return Ok(None);
    };
    let m = match cfg.seed_from {
        SeedFrom::Peer => return Ok(None),
        SeedFrom::Backup => crate::backup::choose(store, None, cfg.flavor).await?,
        SeedFrom::Auto => match crate::backup::choose(store, None, cfg.flavor).await {
            Ok(m) => m,
            Err(e) => {
                info!(why = %e, "no backup to seed from: cloning a peer");
                return Ok(None);
            }
        },
    };
    if cfg.seed_from == SeedFrom::Backup {
        return Ok(Some((store, m)));
    }
    let master = &cfg.identity.master_fqdn;
    let start = Status::fetch(&cfg.http, master, Duration::from_secs(5))
        .await
        .ok()
        .and_then(|st| st.binlog_start);
    match start {
        Some(start) if cfg.flavor.gtid_contains(&m.gtid, &start) => Ok(Some((store, m))),
        Some(start) => {
            info!(backup = %m.id, backup_gtid = %m.gtid, master_binlogs_from = %start, "the master no longer holds every binary log since the newest backup: cloning a peer");
            Ok(None)
        }
        None => {
            info!(backup = %m.id, "the master does not say where its binary logs start: cloning a peer");
            Ok(None)
        }
    }
}

/// Seeds the empty datadir from backup `m` in `store`, under the same rule
/// as a clone: a copy that fails leaves it empty.
pub async fn seed_from_backup(
    cfg: &InitConfig,
    credentials: &CloneCredentials,
    dd: &Datadir,
    store: &crate::backup::Store,
    m: &crate::backup::Manifest,
) -> Result<()> {
    info!(backup = %m.id, gtid = %m.gtid, source = %m.source, bytes = m.bytes, store = %store.url, "seeding this replica from a backup");
    staged(cfg, dd, &backup_donor(m), 0, async |req| {
        receive_backup(credentials, req, store, m).await
    })
    .await
}

/// What a copy from backup `m` is named after: the donor of its logs,
/// errors and clone record.
pub(crate) fn backup_donor(m: &crate::backup::Manifest) -> Donor {
    Donor {
        name: format!("backup {}", m.id),
        ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
    }
}

/// Receives backup `m` from `store` into `<staging>/data`, as a clone from
/// a donor is received.
pub(crate) async fn receive_backup(
    credentials: &CloneCredentials,
    req: &Request<'_>,
    store: &crate::backup::Store,
    m: &crate::backup::Manifest,
) -> Result<(std::path::PathBuf, crate::datadir::CloneInfo)> {
    let body = store.download(&m.id, m.stored_bytes).await?;
    let (data, info) = credentials.receive(req, body, Some(m.bytes)).await?;
    // The manifest's set is all in the copy (a MySQL copy may hold more).
    if !m.engine.gtid_contains(&info.gtid, &m.gtid) {
        warn!(backup = %m.id, manifest = %m.gtid, copy = %info.gtid, "the restored copy lacks transactions its manifest names");
    }
    Ok((data, info))
}

/// Makes a copy under the datadir rule: the marker and staging directory
/// first, `copy` fills `<staging>/data`, then the commit; on failure the
/// datadir is left empty again.
pub(crate) async fn staged(
    cfg: &InitConfig,
    dd: &Datadir,
    donor: &Donor,
    failed_before: u32,
    copy: impl AsyncFnOnce(&Request<'_>) -> Result<(std::path::PathBuf, crate::datadir::CloneInfo)>,
) -> Result<()> {
    let staging = dd.begin_clone()?;
    // Run as root (e.g. in an image whose default user is root), init hands
    // everything it writes to the datadir's owner, who runs the server.
    let owner = if rustix::process::geteuid().is_root() {
        Some(dd.owner()?).filter(|(uid, _)| *uid != 0)
    } else {
        None
    };
    if let Some(o) = owner {
        crate::datadir::chown_tree(&staging, o)?;
    }
    let mut binary = cfg.binary.clone();
    binary.user = owner.map(|(uid, _)| uid);
    let req = Request {
        donor,
        staging: &staging,
        mysql_port: cfg.mysql_port,
        http: &cfg.http,
        replication_user: &cfg.replication_user,
        binary: &binary,
        stall_timeout: cfg.stall_timeout,
        owner,
        for_master: cfg.identity.role == crate::pod::Role::Master,
        tls_ca: cfg.tls_ca.as_deref(),
        compression: cfg.clone_compression,
    };
    let result = async {
        let (data, mut info) = copy(&req).await?;
        info.failed_attempts = failed_before;
        if let Some(o) = owner {
            crate::datadir::chown_tree(&data, o)?;
        }
        dd.commit_clone(&data, &info)?;
        info!(donor = %info.donor, bytes = info.bytes, wire_bytes = info.wire_bytes, secs = info.seconds, gtid = %info.gtid, "clone complete");
        Ok(())
    }
    .await;
    if let Err(e) = result {
        if let Err(wipe) = dd.abandon_clone() {
            warn!(error = %wipe, "cannot clean up after the failed clone; the marker stays and the next start wipes it");
        }
        return Err(match e {
            e @ (Error::Clone { .. } | Error::CloneRefused { .. }) => e,
            other => Error::Clone {
                donor: donor.name.clone(),
                why: other.to_string(),
            },
        });
    }
    Ok(())
}

/// Ends, with the error to give, once `donor` (a master) has reported for
/// [`STALL_GRACE`] commits that wait, with no timeout, for acknowledgements
/// no connected replica can give. A copy from it cannot finish while they
/// wait: MariaDB's backup waits behind them at `BACKUP STAGE BLOCK_COMMIT`,
/// MySQL's CLONE for their prepared transactions; and the replica being
/// made is the one that could acknowledge them. Never ends otherwise.
async fn semi_sync_stall(http: &AgentClient, donor: &str) -> Error {
    let mut since: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stalled = Status::fetch(http, donor, Duration::from_secs(3))
            .await
            .ok()
            .and_then(|st| st.semi_sync)
            .filter(|s| s.stalled());
        let Some(s) = stalled else {
            since = None;
            continue;
        };
        if since.get_or_insert_with(std::time::Instant::now).elapsed() < STALL_GRACE {
            continue;
        }
        return Error::CloneRefused {
            donor: donor.to_owned(),
            why: format!(
                "{} commit(s) on it wait for a semi-sync acknowledgement that no replica can give \
                 ({} of the {} a commit waits for connected), and a copy from it cannot finish while \
                 they wait. Bring another replica back, or set --semi-sync-timeout \
                 (MYSQL_STS_SEMI_SYNC_TIMEOUT; the chart's semiSync.timeout) so that commits fall \
                 back to asynchronous replication after it",
                s.waiting_sessions, s.clients, s.wait_for
            ),
        };
    }
}
