//! The init container: identity, server config, and a clone when the datadir
//! of a replica is empty. Exits; the server starts after it.

use std::path::PathBuf;
use std::time::Duration;

use tracing::{info, warn};

use crate::clone;
use crate::datadir::{Datadir, State};
use crate::donor;
use crate::error::{Error, IoContext, Result};
use crate::flavor::Flavor;
use crate::identity::{Identity, Role};
use crate::mysqld::Binary;
use crate::secret::Secret;

/// Name of the file init writes in `--conf-dir`.
pub const CNF_NAME: &str = "mysql-sts.cnf";

/// Plain settings for one run of init.
pub struct Settings {
    pub identity: Identity,
    pub flavor: Flavor,
    pub datadir: PathBuf,
    pub conf_dir: PathBuf,
    pub mysql_port: u16,
    /// How to reach the peers' agents (plain or TLS).
    pub http: crate::http::AgentClient,
    pub donor_timeout: Duration,
    /// How long to wait for the nearest donor before trying lower ordinals.
    pub donor_fallback_after: Duration,
    pub clone_attempts: u32,
    pub stall_timeout: Duration,
    /// Move the data aside and clone again.
    pub reclone: bool,
    /// On the master: start empty without asking the peers (disaster recovery).
    pub fresh_master: bool,
    /// On an empty master: how long to wait for the peers to say what they hold.
    pub reseed_timeout: Duration,
    pub peer_domain: String,
    pub replication_user: String,
    pub replication_password: Option<Secret>,
    pub root_password: Option<Secret>,
    pub clone_token: Option<Secret>,
    pub binary: Binary,
}

/// What init did, for its last log line and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    KeptData,
    LeftEmptyForMaster,
    /// A replica's clone, or the master's re-seed from the most advanced peer.
    Cloned,
}

/// Writes `<conf-dir>/mysql-sts.cnf` atomically.
pub fn write_cnf(conf_dir: &std::path::Path, text: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(conf_dir)
        .io_context(|| format!("cannot create --conf-dir {}", conf_dir.display()))?;
    let path = conf_dir.join(CNF_NAME);
    let tmp = conf_dir.join(format!(".{CNF_NAME}.tmp"));
    std::fs::write(&tmp, text).io_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).io_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

pub async fn run(s: Settings) -> Result<Outcome> {
    let id = &s.identity;
    let dd = Datadir::new(&s.datadir);
    // Check the datadir before writing anything, so a wrong mount fails cleanly.
    let mut state = dd.state()?;
    let cnf = write_cnf(&s.conf_dir, &s.flavor.render_cnf(id))?;
    info!(pod = %id.hostname, role = %id.role, server_id = id.server_id, flavor = %s.flavor, cnf = %cnf.display(), "server config written");

    if state == State::Initialised && (s.reclone || dd.reclone_requested()) {
        let aside = dd.move_aside()?;
        warn!(moved_to = %aside.display(), "re-clone requested: the old data was moved aside (delete it once the new copy serves)");
        state = State::Empty;
    }
    match state {
        State::Initialised => {
            info!(datadir = %s.datadir.display(), "datadir holds data; keeping it");
            return Ok(Outcome::KeptData);
        }
        State::UnfinishedClone => {
            warn!(datadir = %s.datadir.display(), "an earlier clone did not finish; wiping what it left");
            dd.abandon_clone()?;
        }
        State::Empty => {}
    }

    let donor = match id.role {
        Role::Master if s.fresh_master => {
            warn!("--fresh-master: starting an empty master without asking the peers");
            return Ok(Outcome::LeftEmptyForMaster);
        }
        Role::Master => {
            let peer_domain = s.peer_domain.clone();
            let set = id.statefulset.clone();
            let names =
                move |n: u32| crate::identity::peer_name(&format!("{set}-{n}"), &peer_domain);
            match donor::reseed_source(names, &s.http, s.flavor, s.reseed_timeout).await? {
                Some(peer) => Some(peer.donor),
                None => {
                    info!("empty datadir on the master: the server image initialises it");
                    return Ok(Outcome::LeftEmptyForMaster);
                }
            }
        }
        Role::Replica => None,
    };
    clone_with_retries(&s, &dd, donor).await
}

/// Clones, retrying a failed attempt (a donor that died mid-stream, a cut
/// stream) with the next ready donor, up to `--clone-attempts` and within
/// `--donor-timeout`. The datadir is left empty after each failure.
async fn clone_with_retries(
    s: &Settings,
    dd: &Datadir,
    fixed: Option<donor::Donor>,
) -> Result<Outcome> {
    let missing = |what: &str, env: &str| Error::MissingSecret {
        what: format!("{what} is needed to clone: set {env} or its --*-file flag"),
    };
    match s.flavor {
        Flavor::Mariadb if s.clone_token.is_none() => {
            return Err(missing("the clone token", "MYSQL_STS_CLONE_TOKEN"));
        }
        Flavor::Mysql if s.root_password.is_none() => {
            return Err(missing("the root password", "MYSQL_ROOT_PASSWORD"));
        }
        Flavor::Mysql if s.replication_password.is_none() => {
            return Err(missing(
                "the replication password",
                "MYSQL_STS_REPLICATION_PASSWORD",
            ));
        }
        _ => {}
    }
    let started = std::time::Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let donor = match &fixed {
            Some(d) if attempt == 1 => d.clone(),
            _ => {
                let left = s.donor_timeout.saturating_sub(started.elapsed());
                donor::wait_for_donor(&s.identity.donors, &s.http, left, s.donor_fallback_after)
                    .await?
            }
        };
        match clone_once(s, dd, &donor, attempt - 1).await {
            Ok(()) => return Ok(Outcome::Cloned),
            Err(e @ Error::CloneRefused { .. }) => return Err(e),
            Err(e) if attempt < s.clone_attempts && !s.identity.donors.is_empty() => {
                warn!(attempt, error = %e, "clone attempt failed; the datadir is empty again, trying again");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn clone_once(
    s: &Settings,
    dd: &Datadir,
    donor: &donor::Donor,
    failed_before: u32,
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
    let mut binary = s.binary.clone();
    binary.user = owner.map(|(uid, _)| uid);
    let req = clone::Request {
        flavor: s.flavor,
        donor,
        staging: &staging,
        mysql_port: s.mysql_port,
        http: &s.http,
        replication_user: &s.replication_user,
        replication_password: s.replication_password.as_ref(),
        root_password: s.root_password.as_ref(),
        clone_token: s.clone_token.as_ref(),
        binary: &binary,
        stall_timeout: s.stall_timeout,
        owner,
    };
    let result = async {
        let (data, mut info) = clone::run(&req).await?;
        info.failed_attempts = failed_before;
        if let Some(o) = owner {
            crate::datadir::chown_tree(&data, o)?;
        }
        dd.commit_clone(&data, &info)?;
        info!(donor = %info.donor, bytes = info.bytes, secs = info.seconds, gtid = %info.gtid, "clone complete");
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
