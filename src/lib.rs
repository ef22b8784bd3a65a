//! mysql-sts: replicated MySQL and MariaDB as a Kubernetes StatefulSet,
//! without an operator. One binary, used as init container, sidecar and
//! probe client.
//!
//! The crate's map:
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`config`] | flags, environment and secret files → `InitConfig`, `SidecarConfig`, `ProbeConfig` |
//! | [`pod`] | who this pod is: ordinal, role, peer names |
//! | [`init`] | the init container: the datadir decision ([`init::plan`]), donors, the clone |
//! | [`sidecar`] | the control loop (observe → [`sidecar::plan`] → apply), readiness, HTTP API, metrics, the binary log retention fence ([`sidecar::fence`]) |
//! | [`engine`] | the one seam between MySQL and MariaDB: settings, SQL, GTIDs, both ends of a clone |
//! | [`net`] | DNS, the agent-to-agent client, the clone wire format, SQL connections |
//! | [`status`] | what a pod says of itself on `/status`, served and read alike |
//! | [`datadir`] | what a datadir holds, and the rule that keeps half a clone from passing as data |
//! | [`probe`] | the exec-probe client |
//! | [`sched`] | the agent's short time slice beside the server |
//! | [`overview`] | `mysql-sts status`: every pod's status in one table |
//! | [`shutdown`], [`error`], [`secret`], [`progress`], [`install`], [`units`] | the rest of the plumbing |

pub mod backup;
pub mod config;
pub mod datadir;
pub mod engine;
pub mod error;
pub mod init;
pub mod install;
pub mod net;
pub mod overview;
pub mod pod;
pub mod probe;
pub mod progress;
pub mod sched;
pub mod secret;
pub mod shutdown;
pub mod sidecar;
pub mod status;
pub mod units;

pub use error::{Error, Result};
