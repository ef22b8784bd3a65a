//! Where the clone is decided and done: the recipient side of both flavours.
//! The caller owns the datadir rule (marker, staging, commit); each flavour
//! only fills `<staging>/data` with a verified, ready-to-start copy.

mod mariadb;
mod mysql;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::datadir::CloneInfo;
use crate::donor::Donor;
use crate::error::{IoContext, Result};
use crate::flavor::Flavor;
use crate::mysqld::Binary;
use crate::secret::Secret;

/// Everything a clone needs besides the donor.
pub struct Request<'a> {
    pub flavor: Flavor,
    pub donor: &'a Donor,
    pub staging: &'a Path,
    pub mysql_port: u16,
    pub http: &'a crate::http::AgentClient,
    pub replication_user: &'a str,
    pub replication_password: Option<&'a Secret>,
    pub root_password: Option<&'a Secret>,
    pub clone_token: Option<&'a Secret>,
    pub binary: &'a Binary,
    pub stall_timeout: Duration,
    /// Who the server runs as, when the agent runs as root and must hand over what it writes.
    pub owner: Option<(u32, u32)>,
}

/// Clones into `<staging>/data` and returns that directory and what it holds.
pub async fn run(req: &Request<'_>) -> Result<(PathBuf, CloneInfo)> {
    match req.flavor {
        Flavor::Mariadb => mariadb::clone(req).await,
        Flavor::Mysql => mysql::clone(req).await,
    }
}

/// A private directory for sockets and logs; short, as socket paths must be.
/// Owned by `owner` when given, so that a server started as that user can use it.
pub(crate) fn run_dir_for(tag: &str, owner: Option<(u32, u32)>) -> Result<PathBuf> {
    let dir = run_dir(tag)?;
    if let Some(o) = owner {
        crate::datadir::chown_tree(&dir, o)?;
    }
    Ok(dir)
}

/// A private directory for sockets and logs; short, as socket paths must be.
pub(crate) fn run_dir(tag: &str) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("mysql-sts-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .io_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
