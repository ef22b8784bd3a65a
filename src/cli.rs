//! Command-line flags (each with its environment fallback) and their checks,
//! turned into the plain settings the rest of the crate takes.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{Error, Result};
use crate::flavor::Flavor;
use crate::secret::Secret;

const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Replicated MySQL and MariaDB as a Kubernetes StatefulSet, without an operator.
#[derive(Debug, Parser)]
#[command(name = "mysql-sts", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Init container: identity, server config, clone from a peer if the datadir is empty; exits.
    Init(InitArgs),
    /// Sidecar beside the server: replication, read-only, HTTP endpoints, clone donor; until SIGTERM.
    Sidecar(SidecarArgs),
    /// Prints this pod's identity as JSON; touches nothing.
    Identity,
    /// Asks the local sidecar; exits 0 when OK, 1 when not.
    Probe(ProbeArgs),
    /// Copies this binary to DIR/mysql-sts, for an init step that hands it to
    /// the database containers of the pod through a shared volume; exits.
    Install {
        /// The shared directory
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlavorArg {
    Auto,
    Mysql,
    Mariadb,
}

impl FlavorArg {
    pub fn fixed(self) -> Option<Flavor> {
        match self {
            FlavorArg::Auto => None,
            FlavorArg::Mysql => Some(Flavor::Mysql),
            FlavorArg::Mariadb => Some(Flavor::Mariadb),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// This pod's hostname, `<statefulset>-<ordinal>` [default: the system hostname]
    #[arg(long, env = "MYSQL_STS_HOSTNAME", global = true)]
    pub hostname: Option<String>,
    /// The headless Service that names the pods; required unless --peer-domain is given
    #[arg(long, env = "MYSQL_STS_SERVICE", global = true)]
    pub service: Option<String>,
    /// The pod's namespace [default: the service-account namespace file, else `default`]
    #[arg(long, env = "POD_NAMESPACE", global = true)]
    pub namespace: Option<String>,
    /// The cluster's DNS domain
    #[arg(
        long,
        env = "MYSQL_STS_CLUSTER_DOMAIN",
        default_value = "cluster.local",
        global = true
    )]
    pub cluster_domain: String,
    /// The domain under which peers resolve [default: <service>.<namespace>.svc.<cluster-domain>];
    /// an empty value means bare pod names (docker compose)
    #[arg(long, env = "MYSQL_STS_PEER_DOMAIN", global = true)]
    pub peer_domain: Option<String>,
    /// The server's data directory (the pod's volume)
    #[arg(
        long,
        env = "MYSQL_STS_DATADIR",
        default_value = "/var/lib/mysql",
        global = true
    )]
    pub datadir: PathBuf,
    /// Where init writes mysql-sts.cnf; the server must include this directory
    #[arg(
        long,
        env = "MYSQL_STS_CONF_DIR",
        default_value = "/etc/mysql/conf.d",
        global = true
    )]
    pub conf_dir: PathBuf,
    /// server_id = base + ordinal
    #[arg(
        long,
        env = "MYSQL_STS_SERVER_ID_BASE",
        default_value_t = 100,
        global = true
    )]
    pub server_id_base: u32,
    /// The port of the local server and of the peers' servers
    #[arg(
        long,
        env = "MYSQL_STS_MYSQL_PORT",
        default_value_t = 3306,
        global = true
    )]
    pub mysql_port: u16,
    /// The port of this sidecar's HTTP endpoints and of the peers'
    #[arg(
        long,
        env = "MYSQL_STS_AGENT_PORT",
        default_value_t = 8080,
        global = true
    )]
    pub agent_port: u16,
    /// The server flavour; `auto` asks the server binary or the running server
    #[arg(long, env = "MYSQL_STS_FLAVOR", value_enum, default_value_t = FlavorArg::Auto, global = true)]
    pub flavor: FlavorArg,
    /// File holding the root password [default: the MYSQL_ROOT_PASSWORD variable]
    #[arg(long, env = "MYSQL_STS_ROOT_PASSWORD_FILE", global = true)]
    pub root_password_file: Option<PathBuf>,
    /// The replication account
    #[arg(
        long,
        env = "MYSQL_STS_REPLICATION_USER",
        default_value = "repl",
        global = true
    )]
    pub replication_user: String,
    /// File holding the replication password [default: the MYSQL_STS_REPLICATION_PASSWORD variable]
    #[arg(long, env = "MYSQL_STS_REPLICATION_PASSWORD_FILE", global = true)]
    pub replication_password_file: Option<PathBuf>,
    /// File holding the clone token [default: the MYSQL_STS_CLONE_TOKEN variable]
    #[arg(long, env = "MYSQL_STS_CLONE_TOKEN_FILE", global = true)]
    pub clone_token_file: Option<PathBuf>,
    /// The server binary, for `--flavor auto` and the temporary servers of a MySQL clone
    /// [default: mariadbd or mysqld, whichever is on PATH]
    #[arg(long, env = "MYSQL_STS_MYSQLD", global = true)]
    pub mysqld: Option<PathBuf>,
    /// The option file the pod's server reads; temporary servers read it too
    #[arg(long, env = "MYSQL_STS_MYSQLD_DEFAULTS_FILE", global = true)]
    pub mysqld_defaults_file: Option<PathBuf>,
    /// The sidecar serves HTTPS with this certificate (PEM; a chain is fine),
    /// valid for the pod's DNS name (e.g. *.<service>.<namespace>.svc.<domain>)
    #[arg(
        long,
        env = "MYSQL_STS_TLS_CERT_FILE",
        global = true,
        requires = "tls_key_file"
    )]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file (PEM)
    #[arg(
        long,
        env = "MYSQL_STS_TLS_KEY_FILE",
        global = true,
        requires = "tls_cert_file"
    )]
    pub tls_key_file: Option<PathBuf>,
    /// Talk to the other agents over HTTPS, trusting this CA bundle (PEM)
    #[arg(long, env = "MYSQL_STS_TLS_CA_FILE", global = true)]
    pub tls_ca_file: Option<PathBuf>,
    /// Log format
    #[arg(long, env = "MYSQL_STS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// How long to wait for a donor to resolve and be ready, e.g. `90s`, `10m`
    #[arg(long, env = "MYSQL_STS_DONOR_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub donor_timeout: Duration,
    /// How long to wait for the nearest donor (N-1) before trying lower ordinals
    #[arg(long, env = "MYSQL_STS_DONOR_FALLBACK_AFTER", default_value = "60s", value_parser = humantime::parse_duration)]
    pub donor_fallback_after: Duration,
    /// Clone attempts (each after a failed one, with the next ready donor)
    #[arg(long, env = "MYSQL_STS_CLONE_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub clone_attempts: u32,
    /// Move this pod's data aside (into <datadir>/.mysql-sts-old-<time>) and clone
    /// again; so does a file <datadir>/.mysql-sts-reclone
    #[arg(long, env = "MYSQL_STS_RECLONE")]
    pub reclone: bool,
    /// Disaster recovery: let an empty master start empty without looking for
    /// peers that hold data
    #[arg(long, env = "MYSQL_STS_FRESH_MASTER")]
    pub fresh_master: bool,
    /// How long an empty master waits for its peers to say what they hold
    /// before it starts empty
    #[arg(long, env = "MYSQL_STS_RESEED_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub reseed_timeout: Duration,
    /// Give up a clone whose stream brings no byte for this long
    #[arg(long, env = "MYSQL_STS_CLONE_STALL_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub clone_stall_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct SidecarArgs {
    /// A replica lagging more than this is not ready
    #[arg(long, env = "MYSQL_STS_MAX_LAG_SECONDS", default_value_t = 30)]
    pub max_lag_seconds: u64,
    /// How long a replica stays ready while it reconnects to a master that went away
    #[arg(long, env = "MYSQL_STS_MASTER_OUTAGE_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub master_outage_grace: Duration,
    /// How often the sidecar checks and repairs replication
    #[arg(long, env = "MYSQL_STS_RECONCILE_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub reconcile_interval: Duration,
    /// The address the HTTP endpoints listen on
    #[arg(long, env = "MYSQL_STS_LISTEN_ADDRESS", default_value = "0.0.0.0")]
    pub listen_address: std::net::IpAddr,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// What to ask
    #[arg(value_enum)]
    pub what: ProbeKind,
    /// Give up after this long
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeKind {
    Ready,
    Live,
}

impl CommonArgs {
    pub fn hostname(&self) -> Result<String> {
        if let Some(h) = &self.hostname {
            return Ok(h.clone());
        }
        gethostname::gethostname().into_string().map_err(|h| {
            Error::config(format!(
                "the system hostname {h:?} is not UTF-8; pass --hostname"
            ))
        })
    }

    /// The domain peers resolve under, from --peer-domain or --service.
    pub fn peer_domain(&self) -> Result<String> {
        if let Some(d) = &self.peer_domain {
            return Ok(d.trim_matches('.').to_owned());
        }
        let service = self
            .service
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::config(
                    "--service (MYSQL_STS_SERVICE) is required unless --peer-domain is given",
                )
            })?;
        let namespace = match &self.namespace {
            Some(n) if !n.is_empty() => n.clone(),
            _ => std::fs::read_to_string(NAMESPACE_FILE)
                .map(|s| s.trim().to_owned())
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "default".to_owned()),
        };
        Ok(format!(
            "{service}.{namespace}.svc.{}",
            self.cluster_domain.trim_matches('.')
        ))
    }

    pub fn root_password(&self) -> Result<Secret> {
        Secret::load(
            "the root password",
            "MYSQL_ROOT_PASSWORD",
            "--root-password-file",
            self.root_password_file.as_deref(),
        )
    }

    pub fn replication_password(&self) -> Result<Secret> {
        Secret::load(
            "the replication password",
            "MYSQL_STS_REPLICATION_PASSWORD",
            "--replication-password-file",
            self.replication_password_file.as_deref(),
        )
    }

    pub fn clone_token(&self) -> Result<Secret> {
        Secret::load(
            "the clone token",
            "MYSQL_STS_CLONE_TOKEN",
            "--clone-token-file",
            self.clone_token_file.as_deref(),
        )
    }

    /// The server binary named by --mysqld, else the first of mariadbd and mysqld on PATH.
    pub fn mysqld(&self) -> Result<PathBuf> {
        if let Some(p) = &self.mysqld {
            return Ok(p.clone());
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        for name in ["mariadbd", "mysqld"] {
            for dir in std::env::split_paths(&path).chain(["/usr/sbin".into()]) {
                let p = dir.join(name);
                if p.is_file() {
                    return Ok(p);
                }
            }
        }
        Err(Error::config(
            "no server binary: neither mariadbd nor mysqld is on PATH; pass --mysqld or --flavor",
        ))
    }
}
