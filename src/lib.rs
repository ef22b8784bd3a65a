//! mysql-sts: replicated MySQL and MariaDB as a Kubernetes StatefulSet,
//! without an operator. One binary, used as init container, sidecar and
//! probe client.

pub mod api;
pub mod backup;
pub mod cli;
pub mod clone;
pub mod datadir;
pub mod db;
pub mod donor;
pub mod error;
pub mod flavor;
pub mod gtid;
pub mod http;
pub mod identity;
pub mod init;
pub mod install;
pub mod metrics;
pub mod mysqld;
pub mod probe;
pub mod progress;
pub mod readiness;
pub mod secret;
pub mod serve;
pub mod sidecar;
pub mod stream;

pub use error::{Error, Result};
