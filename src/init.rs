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
    pub agent_port: u16,
    pub donor_timeout: Duration,
    pub stall_timeout: Duration,
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
    let state = dd.state()?;
    let cnf = write_cnf(&s.conf_dir, &s.flavor.render_cnf(id))?;
    info!(pod = %id.hostname, role = %id.role, server_id = id.server_id, flavor = %s.flavor, cnf = %cnf.display(), "server config written");

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
    if id.role == Role::Master {
        info!("empty datadir on the master: the server image initialises it");
        return Ok(Outcome::LeftEmptyForMaster);
    }

    let donor = donor::wait_for_donor(&id.donors, s.agent_port, s.donor_timeout).await?;
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
        donor: &donor,
        staging: &staging,
        mysql_port: s.mysql_port,
        agent_port: s.agent_port,
        replication_user: &s.replication_user,
        replication_password: s.replication_password.as_ref(),
        root_password: s.root_password.as_ref(),
        clone_token: s.clone_token.as_ref(),
        binary: &binary,
        stall_timeout: s.stall_timeout,
        owner,
    };
    match clone::run(&req).await {
        Ok((data, info)) => {
            if let Some(o) = owner {
                crate::datadir::chown_tree(&data, o)?;
            }
            dd.commit_clone(&data, &info)?;
            info!(donor = %info.donor, bytes = info.bytes, secs = info.seconds, gtid = %info.gtid, "clone complete");
            Ok(Outcome::Cloned)
        }
        Err(e) => {
            if let Err(wipe) = dd.abandon_clone() {
                warn!(error = %wipe, "cannot clean up after the failed clone; the marker stays and the next start wipes it");
            }
            Err(match e {
                e @ Error::Clone { .. } => e,
                other => Error::Clone {
                    donor: donor.name.clone(),
                    why: other.to_string(),
                },
            })
        }
    }
}
