//! The library's error type and the process exit codes it maps to.

use std::path::PathBuf;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit codes of `mysql-sts`, part of its contract with scripts and kubelet.
pub mod exit {
    /// Done.
    pub const OK: i32 = 0;
    /// Anything not covered below; a retry may help.
    pub const OTHER: i32 = 1;
    /// Bad configuration or identity: retrying cannot help.
    pub const CONFIG: i32 = 2;
    /// No donor (or no DNS answer) within `--donor-timeout`.
    pub const NO_DONOR: i32 = 3;
    /// The clone failed; the datadir was left empty.
    pub const CLONE_FAILED: i32 = 4;
    /// A backup failed, or the bucket could not be read or written; no
    /// backup that lists as good was made.
    pub const BACKUP_FAILED: i32 = 5;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("hostname {hostname:?} is not a StatefulSet pod name <statefulset>-<ordinal>: {why}")]
    Identity { hostname: String, why: String },

    #[error("bad configuration: {what}")]
    Config { what: String },

    #[error("missing secret: {what}")]
    MissingSecret { what: String },

    #[error("no donor became ready within {}: {detail}", humantime::format_duration(*waited))]
    NoDonor { waited: Duration, detail: String },

    /// An empty master that would lose a copy of data set aside by a re-clone.
    #[error("the master will not start empty: {detail}")]
    SetAside { detail: String },

    #[error("clone from {donor} failed: {why}")]
    Clone { donor: String, why: String },

    /// A clone that no retry can fix (the donor refused our credentials).
    #[error("clone from {donor} refused: {why}")]
    CloneRefused { donor: String, why: String },

    /// A backup, or the bucket it goes to or comes from.
    #[error("{what}: {why}")]
    Backup { what: String, why: String },

    #[error("datadir {}: {why}", path.display())]
    Datadir { path: PathBuf, why: String },

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{what}: {source}")]
    Sql {
        what: String,
        #[source]
        source: mysql_async::Error,
    },

    /// A server, a statement or a tool that did not answer in time.
    #[error("{what}: no answer within {} s", after.as_secs())]
    Timeout { what: String, after: Duration },

    #[error("stopped by a signal before the work was done")]
    Stopped,

    #[error("{0}")]
    Other(String),
}

/// The server error "Access denied" (MySQL and MariaDB alike).
pub const ER_ACCESS_DENIED: u16 = 1045;

impl Error {
    /// Every name [`Error::kind`] gives.
    pub const KINDS: [&'static str; 9] = [
        "connection",
        "timeout",
        "access_denied",
        "sql",
        "io",
        "config",
        "clone",
        "backup",
        "other",
    ];

    /// A short fixed name for the kind of failure, fit for a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Sql {
                source: mysql_async::Error::Server(e),
                ..
            } if e.code == ER_ACCESS_DENIED => "access_denied",
            Error::Sql {
                source: mysql_async::Error::Server(_),
                ..
            } => "sql",
            Error::Sql { .. } => "connection",
            Error::Io { .. } => "io",
            Error::Timeout { .. } => "timeout",
            Error::Identity { .. } | Error::Config { .. } | Error::MissingSecret { .. } => "config",
            Error::Other(_) | Error::Stopped => "other",
            Error::Backup { .. } => "backup",
            Error::NoDonor { .. }
            | Error::SetAside { .. }
            | Error::Clone { .. }
            | Error::CloneRefused { .. }
            | Error::Datadir { .. } => "clone",
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Identity { .. } | Error::Config { .. } | Error::MissingSecret { .. } => {
                exit::CONFIG
            }
            Error::NoDonor { .. } | Error::SetAside { .. } => exit::NO_DONOR,
            Error::Clone { .. } | Error::CloneRefused { .. } => exit::CLONE_FAILED,
            Error::Backup { .. } => exit::BACKUP_FAILED,
            _ => exit::OTHER,
        }
    }

    pub fn config(what: impl Into<String>) -> Self {
        Error::Config { what: what.into() }
    }
}

/// The last `n` lines of a tool's log, on one line, for an error message.
pub fn last_lines(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().rev().take(n).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// Attaches a description of the failed I/O operation.
pub trait IoContext<T> {
    fn io_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: what(),
            source,
        })
    }
}

/// Attaches a description of the failed SQL operation.
pub trait SqlContext<T> {
    fn sql_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> SqlContext<T> for std::result::Result<T, mysql_async::Error> {
    fn sql_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sql {
            what: what(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_listed() {
        let errors = [
            Error::config("x"),
            Error::Other("x".into()),
            Error::Io {
                what: "x".into(),
                source: std::io::Error::other("x"),
            },
            Error::Sql {
                what: "x".into(),
                source: mysql_async::Error::Server(mysql_async::ServerError {
                    code: ER_ACCESS_DENIED,
                    message: "Access denied".into(),
                    state: "28000".into(),
                }),
            },
            Error::Clone {
                donor: "mysql-1".into(),
                why: "x".into(),
            },
            Error::Timeout {
                what: "x".into(),
                after: Duration::from_secs(1),
            },
        ];
        let kinds: Vec<&str> = errors.iter().map(Error::kind).collect();
        assert_eq!(
            kinds,
            ["config", "other", "io", "access_denied", "clone", "timeout"]
        );
        assert!(kinds.iter().all(|k| Error::KINDS.contains(k)));
    }
}
