//! Command-line flags (each with its environment fallback), secret files and
//! their cross-checks, turned into the typed configuration of each command:
//! [`InitConfig`], [`SidecarConfig`], [`ProbeConfig`]. The rules of which
//! secret each command needs are pure functions here, unit-tested below.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::mysqld::Binary;
use crate::engine::replication::SemiSync;
use crate::engine::{CloneCredentials, Flavor, MissingCredential};
use crate::error::{Error, Result};
use crate::net::agent_client::AgentClient;
use crate::net::sql::Target;
use crate::net::wire::Compression;
use crate::pod::{Identity, Role};
use crate::secret::{Secret, SecretSource};
use crate::sidecar::control::{LoopSettings, SecretSources};
use crate::sidecar::readiness::Policy;
use crate::sidecar::retention::RetentionSettings;
use crate::units::ByteLimit;

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
    /// Every pod of the StatefulSet: role, readiness and its cause, GTIDs,
    /// lag, source, clone origin, version; exits 0 when all are ready, 1 when not.
    Status(StatusArgs),
    /// Takes a backup now: the sidecar of the highest ready replica (the
    /// master when it is alone) sends its copy to the bucket; prints the
    /// backup's manifest; exits 0, or 5 when no backup was made.
    Backup(BackupArgs),
    /// Lists the backups in the bucket, oldest first, complete or not.
    Backups(BackupsArgs),
    /// Copies this binary to DIR/mysql-sts, for an init step that hands it to
    /// the database containers of the pod through a shared volume; exits.
    Install {
        /// The shared directory
        dir: PathBuf,
    },
}

/// `--flavor`: an engine, or `auto` (ask the server binary or the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlavorChoice(pub Option<Flavor>);

fn parse_flavor(s: &str) -> std::result::Result<FlavorChoice, String> {
    match s {
        "auto" => Ok(FlavorChoice(None)),
        other => other.parse().map(|f| FlavorChoice(Some(f))),
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
    /// The server flavour: `auto`, `mysql` or `mariadb`; `auto` asks the
    /// server binary or the running server
    #[arg(long, env = "MYSQL_STS_FLAVOR", default_value = "auto", value_parser = parse_flavor, global = true)]
    pub flavor: FlavorChoice,
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
    /// Semi-synchronous replication: the master acknowledges a commit only
    /// once --semi-sync-wait-for replicas have it
    #[arg(long, env = "MYSQL_STS_SEMI_SYNC", global = true)]
    pub semi_sync: bool,
    /// With --semi-sync: how many replicas must have a commit (MariaDB waits
    /// for one whatever this says)
    #[arg(long, env = "MYSQL_STS_SEMI_SYNC_WAIT_FOR", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub semi_sync_wait_for: u32,
    /// With --semi-sync: fall back to asynchronous replication after this
    /// long without acknowledgements, e.g. `10s` (availability over
    /// durability). Default: never; commits wait
    #[arg(long, env = "MYSQL_STS_SEMI_SYNC_TIMEOUT", value_parser = humantime::parse_duration, global = true)]
    pub semi_sync_timeout: Option<Duration>,
    /// The StatefulSet's number of pods: an empty master waits to hear from
    /// each of the others, and the master keeps binary logs for each replica
    /// (the chart sets it, with podManagementPolicy Parallel). 0: the pods
    /// whose names resolve now
    #[arg(long, env = "MYSQL_STS_REPLICAS", default_value_t = 0, global = true)]
    pub replicas: u32,
    /// The bucket backups go to and come from: `s3://<bucket>[/<prefix>]`
    #[arg(long, env = "MYSQL_STS_BACKUP_URL", global = true)]
    pub backup_url: Option<String>,
    /// The object store's address, for a store other than AWS S3 (MinIO,
    /// SeaweedFS, Ceph's gateway), e.g. `https://minio.backup.svc:9000`
    #[arg(long, env = "MYSQL_STS_BACKUP_ENDPOINT", global = true)]
    pub backup_endpoint: Option<String>,
    /// The bucket's region
    #[arg(
        long,
        env = "MYSQL_STS_BACKUP_REGION",
        default_value = "us-east-1",
        global = true
    )]
    pub backup_region: String,
    /// File holding the store's access key id [default: the MYSQL_STS_BACKUP_ACCESS_KEY variable]
    #[arg(long, env = "MYSQL_STS_BACKUP_ACCESS_KEY_FILE", global = true)]
    pub backup_access_key_file: Option<PathBuf>,
    /// File holding the store's secret access key [default: the MYSQL_STS_BACKUP_SECRET_KEY variable]
    #[arg(long, env = "MYSQL_STS_BACKUP_SECRET_KEY_FILE", global = true)]
    pub backup_secret_key_file: Option<PathBuf>,
    /// The store's certificate must chain to this CA bundle (PEM) [default:
    /// the system's trust store]
    #[arg(long, env = "MYSQL_STS_BACKUP_CA_FILE", global = true)]
    pub backup_ca_file: Option<PathBuf>,
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
    /// How long an empty master waits for its peers to say what they hold;
    /// then it fails (exit 3) rather than start empty over peers it has not
    /// heard from, and the kubelet runs it again
    #[arg(long, env = "MYSQL_STS_RESEED_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub reseed_timeout: Duration,
    /// Give up a clone whose stream brings no byte for this long
    #[arg(long, env = "MYSQL_STS_CLONE_STALL_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub clone_stall_timeout: Duration,
    /// The volume's root, when the datadir is a directory in it (so that a
    /// `lost+found` at the root is not in the datadir): init creates the
    /// datadir, and moves data an earlier layout kept at the root into it
    #[arg(long, env = "MYSQL_STS_VOLUME_ROOT")]
    pub volume_root: Option<PathBuf>,
    /// Compression of a MariaDB clone stream: `zstd` (fast level), `none`,
    /// or `auto`: zstd while the link, not the donor's disk, holds it back
    #[arg(long, env = "MYSQL_STS_CLONE_COMPRESSION", default_value = "auto")]
    pub clone_compression: Compression,
    /// Where an empty replica's data comes from: `peer`, a clone of pod N-1
    /// (or a lower ordinal); `backup`, the newest backup in the bucket
    /// (--backup-url), then it catches up from the master by GTID; `auto`,
    /// the backup when the master still holds every binary log since it
    #[arg(long, env = "MYSQL_STS_SEED_FROM", value_enum, default_value_t = SeedFrom::Peer)]
    pub seed_from: SeedFrom,
    /// A new release's `mysql-0` (empty, and no peer holds data) restores
    /// from this bucket, `s3://<bucket>[/<prefix>]` (reached with the
    /// --backup-* endpoint and keys): a backup, then the archived binary
    /// logs after it
    #[arg(long, env = "MYSQL_STS_RESTORE_URL")]
    pub restore_url: Option<String>,
    /// With --restore-url: this backup [default: the newest complete one
    /// finished before --restore-to-time, else the newest]
    #[arg(long, env = "MYSQL_STS_RESTORE_BACKUP")]
    pub restore_backup: Option<String>,
    /// With --restore-url: replay the archive up to this time, RFC 3339
    /// (`2026-12-07T10:15:00Z`): what was committed before it [default: all of it]
    #[arg(long, env = "MYSQL_STS_RESTORE_TO_TIME", value_parser = humantime::parse_rfc3339_weak)]
    pub restore_to_time: Option<std::time::SystemTime>,
    /// With --restore-url: replay the archive up to and including this
    /// transaction (MySQL `<server uuid>:<n>`, MariaDB `<domain>-<server>-<seq>`),
    /// in the order the archive's binary logs hold them
    #[arg(
        long,
        env = "MYSQL_STS_RESTORE_TO_GTID",
        conflicts_with = "restore_to_time"
    )]
    pub restore_to_gtid: Option<String>,
    /// Once init is done, run this command and stay its parent until it
    /// ends: the server, so that every start of the server's container
    /// goes through init (a re-clone asked by the sidecar, a half-finished
    /// clone, an emptied datadir are dealt with before the server touches
    /// the data), and a MySQL master's stop answers no commit a replica did
    /// not acknowledge; e.g. `-- docker-entrypoint.sh mysqld`
    #[arg(last = true, value_name = "COMMAND")]
    pub exec: Vec<String>,
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
    /// The master's binary logs expire after this long, once no replica
    /// needs them (the server's own expiry is turned off: it would purge
    /// logs a replica that is down still needs). `0s`: never by age
    #[arg(long, env = "MYSQL_STS_BINLOG_EXPIRE", default_value = "30d", value_parser = humantime::parse_duration)]
    pub binlog_expire: Duration,
    /// The master's binary logs may take at most this much room: past it the
    /// oldest go even if a replica needs them (it will need a re-clone, and
    /// the log says which). Bytes (`KiB`, `MiB`, `GiB`, `TiB`), a share of the
    /// volume (`25%`), or `0`: no cap
    #[arg(
        long,
        env = "MYSQL_STS_BINLOG_RETENTION_MAX_BYTES",
        default_value = "25%"
    )]
    pub binlog_retention_max_bytes: ByteLimit,
    /// A replica whose data cannot follow the master (errant transactions,
    /// diverged, or transactions the master purged) moves its data aside with
    /// a record of why and clones again, with no human. Needs the server
    /// started through `mysql-sts init -- <server>` (the chart does)
    #[arg(long, env = "MYSQL_STS_AUTO_RECLONE")]
    pub auto_reclone: bool,
    /// The most a clone stream this donor serves may send, in bytes per
    /// second (`KiB` … `GiB`), e.g. a quarter of the disk's speed so that a
    /// donor master's writes keep their latency; `0`: no cap (MariaDB)
    #[arg(long, env = "MYSQL_STS_CLONE_MAX_RATE", default_value = "0")]
    pub clone_max_rate: crate::units::Rate,
    /// Copies of old data that re-clones set aside are deleted once older
    /// than this, while the pod is ready (its new data serves); `0s`: kept
    /// until deleted by hand
    #[arg(long, env = "MYSQL_STS_ASIDE_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub aside_retention: Duration,
    /// Every statement the sidecar sends must answer within this
    #[arg(long, env = "MYSQL_STS_STATEMENT_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub statement_timeout: Duration,
    /// With --auto-reclone: at most one automatic re-clone per this interval
    #[arg(long, env = "MYSQL_STS_AUTO_RECLONE_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub auto_reclone_interval: Duration,
    /// Backups on a schedule, in cron syntax, UTC (e.g. `0 3 * * *`): the
    /// ready replica of the highest ordinal backs up (the master when it is
    /// alone). Needs --backup-url
    #[arg(long, env = "MYSQL_STS_BACKUP_SCHEDULE", value_parser = check_cron)]
    pub backup_schedule: Option<String>,
    /// After a scheduled backup, complete backups beyond this many (newest
    /// first) are deleted; the newest is always kept
    #[arg(long, env = "MYSQL_STS_BACKUP_KEEP", default_value_t = 7)]
    pub backup_keep: u32,
    /// After a scheduled backup, complete backups older than this are
    /// deleted (the newest is always kept), e.g. `30d`; `0s`: by count only
    #[arg(long, env = "MYSQL_STS_BACKUP_MAX_AGE", default_value = "0s", value_parser = humantime::parse_duration)]
    pub backup_max_age: Duration,
    /// The master uploads every closed binary log to the bucket
    /// (--backup-url), for restores to a point in time; the retention fence
    /// keeps each log until it is uploaded
    #[arg(long, env = "MYSQL_STS_BINLOG_ARCHIVE")]
    pub binlog_archive: bool,
    /// With --binlog-archive: a binary log that holds transactions is closed
    /// once open this long, so that it reaches the archive (the most a
    /// restore to now can miss)
    #[arg(long, env = "MYSQL_STS_BINLOG_ARCHIVE_ROTATE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub binlog_archive_rotate: Duration,
}

fn parse_cron(s: &str) -> std::result::Result<croner::Cron, String> {
    s.parse::<croner::Cron>()
        .map_err(|e| format!("{s:?} is not a cron schedule (minute hour day month weekday): {e}"))
}

fn check_cron(s: &str) -> std::result::Result<String, String> {
    parse_cron(s).map(|_| s.to_owned())
}

/// Where an empty replica's data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeedFrom {
    Peer,
    Backup,
    /// The newest backup when the master still holds every binary log
    /// written since it, else a peer.
    Auto,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Back up this pod (e.g. `mysql-2`) instead of the one chosen
    #[arg(long)]
    pub pod: Option<String>,
    /// `table` for people, `json` for scripts
    #[arg(long, short, value_enum, default_value_t = Output::Json)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct BackupsArgs {
    /// `table` for people, `json` for scripts
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// `table` for people, `json` for scripts
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
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

/// What an exec probe asks.
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
    /// The resolver and the agent client for talking to the peers' agents.
    pub fn peer_client(&self) -> Result<(hickory_resolver::TokioResolver, AgentClient)> {
        let resolver = crate::net::dns::resolver()?;
        let http = AgentClient::new(
            self.tls_ca_file.as_deref(),
            self.agent_port,
            Some(resolver.clone()),
            None,
        )?;
        Ok((resolver, http))
    }

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

    pub fn root_password_source(&self) -> SecretSource {
        SecretSource {
            what: "the root password",
            env: "MYSQL_ROOT_PASSWORD",
            flag: "--root-password-file",
            file: self.root_password_file.clone(),
        }
    }

    pub fn replication_password_source(&self) -> SecretSource {
        SecretSource {
            what: "the replication password",
            env: "MYSQL_STS_REPLICATION_PASSWORD",
            flag: "--replication-password-file",
            file: self.replication_password_file.clone(),
        }
    }

    pub fn clone_token_source(&self) -> SecretSource {
        SecretSource {
            what: "the clone token",
            env: "MYSQL_STS_CLONE_TOKEN",
            flag: "--clone-token-file",
            file: self.clone_token_file.clone(),
        }
    }

    /// The bucket backups go to, when `--backup-url` is set.
    pub fn store_config(&self) -> Option<crate::backup::StoreConfig> {
        let (access_key, secret_key) = self.store_keys();
        Some(crate::backup::StoreConfig {
            url: self.backup_url.clone()?,
            endpoint: self.backup_endpoint.clone(),
            region: self.backup_region.clone(),
            access_key,
            secret_key,
            ca: self.backup_ca_file.clone(),
        })
    }

    /// Where the store's access key and secret key come from.
    pub fn store_keys(&self) -> (SecretSource, SecretSource) {
        (
            SecretSource {
                what: "the backup store's access key",
                env: "MYSQL_STS_BACKUP_ACCESS_KEY",
                flag: "--backup-access-key-file",
                file: self.backup_access_key_file.clone(),
            },
            SecretSource {
                what: "the backup store's secret key",
                env: "MYSQL_STS_BACKUP_SECRET_KEY",
                flag: "--backup-secret-key-file",
                file: self.backup_secret_key_file.clone(),
            },
        )
    }

    /// The bucket, opened; an error when none is configured.
    pub fn store(&self) -> Result<crate::backup::Store> {
        let cfg = self.store_config().ok_or_else(|| {
            Error::config("no backup store: set --backup-url (MYSQL_STS_BACKUP_URL) to s3://<bucket>[/<prefix>]")
        })?;
        crate::backup::Store::open(&cfg)
    }

    pub fn root_password(&self) -> Result<Secret> {
        self.root_password_source().load()
    }

    pub fn replication_password(&self) -> Result<Secret> {
        self.replication_password_source().load()
    }

    pub fn clone_token(&self) -> Result<Secret> {
        self.clone_token_source().load()
    }

    /// The server binary: --mysqld, else the flavour's usual name when the
    /// flavour is given, else the first of mariadbd and mysqld on PATH.
    pub fn mysqld(&self) -> Result<PathBuf> {
        if let Some(p) = &self.mysqld {
            return Ok(p.clone());
        }
        if let Some(f) = self.flavor.0 {
            return Ok(f.server_binary());
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

impl CommonArgs {
    /// The semi-synchronous settings, when --semi-sync is on.
    pub fn semi_sync(&self) -> Option<SemiSync> {
        self.semi_sync.then_some(SemiSync {
            wait_for: self.semi_sync_wait_for,
            timeout: self.semi_sync_timeout,
        })
    }

    /// Refuses semi-synchronous settings under which a commit can never be
    /// acknowledged: `--replicas` (when known) leaves fewer replicas than a
    /// commit waits for (MariaDB waits for one, MySQL for
    /// `--semi-sync-wait-for`; with the flavour not yet known, one). Warns
    /// when one replica more than that is all there is and commits wait
    /// without a timeout: while it is down or rebuilt, writes stop.
    pub fn check_semi_sync(&self, flavor: Option<Flavor>) -> Result<()> {
        let Some(s) = self.semi_sync().filter(|_| self.replicas > 0) else {
            return Ok(());
        };
        let need = flavor.unwrap_or(Flavor::Mariadb).semi_sync_acks(&s);
        if self.replicas <= need {
            return Err(Error::config(format!(
                "--semi-sync with --replicas {} leaves {} replica(s), and every commit waits for {need}: \
                 the first write would wait for ever. Run at least {} pods, or lower \
                 --semi-sync-wait-for, or turn --semi-sync off",
                self.replicas,
                self.replicas - 1,
                need + 1
            )));
        }
        if self.replicas == need + 1 && s.timeout.is_none() {
            tracing::warn!(
                replicas = self.replicas,
                wait_for = need,
                "semi-sync with no replica to spare and no --semi-sync-timeout: while a replica is down or rebuilt, every commit waits for it"
            );
        }
        Ok(())
    }

    pub fn identity(&self) -> Result<Identity> {
        Identity::new(&self.hostname()?, &self.peer_domain()?, self.server_id_base)
    }

    /// The pod's own server, as root over TCP on the loopback.
    pub fn local_root(&self, root: Secret) -> Target {
        Target {
            host: "127.0.0.1".into(),
            port: self.mysql_port,
            socket: None,
            user: "root".into(),
            password: Some(root),
        }
    }

    /// Every secret as loaded: a missing one is an error kept for whoever needs it.
    pub fn secrets(&self) -> Secrets {
        Secrets {
            root: self.root_password(),
            replication: self.replication_password(),
            token: self.clone_token(),
        }
    }
}

/// The three secrets as loaded from their files or variables.
#[derive(Debug)]
pub struct Secrets {
    pub root: Result<Secret>,
    pub replication: Result<Secret>,
    pub token: Result<Secret>,
}

impl Secrets {
    /// What a clone on `flavor` needs; `Err` is the load error of the first
    /// missing one, which says how to set it.
    pub fn clone_credentials(self, flavor: Flavor) -> Result<CloneCredentials> {
        let ok = |r: &Result<Secret>| r.as_ref().ok().cloned();
        let missing = match flavor.clone_credentials(
            ok(&self.root),
            ok(&self.replication),
            ok(&self.token),
        ) {
            Ok(c) => return Ok(c),
            Err(m) => m,
        };
        let load = match missing {
            MissingCredential::RootPassword => self.root,
            MissingCredential::ReplicationPassword => self.replication,
            MissingCredential::CloneToken => self.token,
        };
        Err(load.expect_err("a credential the engine found missing failed to load"))
    }
}

/// Everything `mysql-sts init` needs.
pub struct InitConfig {
    pub identity: Identity,
    pub flavor: Flavor,
    pub datadir: PathBuf,
    /// The volume's root, when the datadir is a directory in it.
    pub clone_compression: Compression,
    pub volume_root: Option<PathBuf>,
    pub conf_dir: PathBuf,
    pub mysql_port: u16,
    /// How peers are found: the one resolver, also behind `http`.
    pub resolver: hickory_resolver::TokioResolver,
    /// How to reach the peers' agents (plain or TLS).
    pub http: AgentClient,
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
    /// The StatefulSet's number of pods, when known (0: not known).
    pub replicas: u32,
    pub semi_sync: Option<SemiSync>,
    /// Where the agent port is served while a replica waits for a donor.
    pub agent_listen: SocketAddr,
    /// HTTPS with (certificate, key) on the agent port; the server takes
    /// them too.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The CA peers are verified against: the server's clients too, and the
    /// MySQL clone's donor.
    pub tls_ca: Option<PathBuf>,
    pub peer_domain: String,
    pub replication_user: String,
    /// What a clone needs. A replica cannot start without them; the master
    /// needs them only for a re-seed, and gets this error then.
    pub credentials: Result<CloneCredentials>,
    pub binary: Binary,
    /// Where an empty replica's data comes from, and the bucket when it is
    /// a backup.
    pub seed_from: SeedFrom,
    pub store: Option<crate::backup::Store>,
    /// A new release's master: what to restore.
    pub restore: Option<crate::backup::RestoreSettings>,
}

/// The init configuration from the flags; with `--flavor auto`, the server
/// binary is asked which flavour it is.
pub async fn init(c: &CommonArgs, args: &InitArgs) -> Result<InitConfig> {
    let identity = c.identity()?;
    let flavor = match c.flavor.0 {
        Some(f) => f,
        None => Flavor::detect(&c.mysqld()?).await?,
    };
    c.check_semi_sync(Some(flavor))?;
    let credentials = c.secrets().clone_credentials(flavor);
    let credentials = init_credentials(identity.role, credentials)?;
    let (resolver, http) = c.peer_client()?;
    let store = match args.seed_from {
        SeedFrom::Backup | SeedFrom::Auto => Some(c.store()?),
        SeedFrom::Peer => None,
    };
    let restore = match &args.restore_url {
        None => None,
        Some(url) => {
            let (access_key, secret_key) = c.store_keys();
            let from = crate::backup::StoreConfig {
                url: url.clone(),
                endpoint: c.backup_endpoint.clone(),
                region: c.backup_region.clone(),
                access_key,
                secret_key,
                ca: c.backup_ca_file.clone(),
            };
            Some(crate::backup::RestoreSettings {
                store: crate::backup::Store::open(&from)?,
                backup: args.restore_backup.clone(),
                to_time: args.restore_to_time,
                to_gtid: args.restore_to_gtid.clone(),
            })
        }
    };
    Ok(InitConfig {
        restore,
        seed_from: args.seed_from,
        store,
        peer_domain: c.peer_domain()?,
        donor_fallback_after: args.donor_fallback_after,
        clone_attempts: args.clone_attempts,
        reclone: args.reclone,
        fresh_master: args.fresh_master,
        reseed_timeout: args.reseed_timeout,
        replicas: c.replicas,
        semi_sync: c.semi_sync(),
        agent_listen: SocketAddr::from(([0, 0, 0, 0], c.agent_port)),
        tls: c.tls_cert_file.clone().zip(c.tls_key_file.clone()),
        tls_ca: c.tls_ca_file.clone(),
        identity,
        flavor,
        datadir: c.datadir.clone(),
        volume_root: args.volume_root.clone(),
        clone_compression: args.clone_compression,
        conf_dir: c.conf_dir.clone(),
        mysql_port: c.mysql_port,
        http,
        resolver,
        donor_timeout: args.donor_timeout,
        stall_timeout: args.clone_stall_timeout,
        replication_user: c.replication_user.clone(),
        credentials,
        binary: Binary {
            path: c.mysqld()?,
            defaults_file: c.mysqld_defaults_file.clone(),
            user: None,
        },
    })
}

/// A replica always needs what a clone needs: a missing secret stops it at
/// once. The master keeps the error for a re-seed that may never come.
fn init_credentials(
    role: Role,
    credentials: Result<CloneCredentials>,
) -> Result<Result<CloneCredentials>> {
    match role {
        Role::Replica => credentials.map(Ok),
        Role::Master => Ok(credentials),
    }
}

/// Everything `mysql-sts sidecar` needs.
pub struct SidecarConfig {
    pub identity: Identity,
    /// `None`: asked from the server once it answers.
    pub flavor: Option<Flavor>,
    /// The local server, as root.
    pub local: Target,
    pub datadir: PathBuf,
    /// `None`: this sidecar serves no clone stream.
    pub clone_token: Option<Secret>,
    pub control: LoopSettings,
    pub listen: SocketAddr,
    /// HTTPS with (certificate, key).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// On the master: the binary log retention fence.
    pub retention: Option<RetentionSettings>,
    /// The most bytes per second a clone stream this donor serves sends.
    pub clone_max_rate: Option<u64>,
    /// Backups, when a bucket is configured.
    pub backups: Option<crate::sidecar::backups::BackupSettings>,
    /// On the master with --binlog-archive: the archive.
    pub archive: Option<crate::sidecar::archive::ArchiveSettings>,
}

pub fn sidecar(c: &CommonArgs, args: &SidecarArgs) -> Result<SidecarConfig> {
    let identity = c.identity()?;
    let flavor = c.flavor.0;
    c.check_semi_sync(flavor)?;
    crate::net::sql::set_statement_timeout(args.statement_timeout);
    let Secrets {
        root,
        replication,
        token,
    } = c.secrets();
    let (root, replication) = (root?, replication?);
    let clone_token = sidecar_token(flavor, token)?;
    let retention = match identity.role {
        Role::Master => {
            let (resolver, http) = c.peer_client()?;
            Some(RetentionSettings {
                expire: Some(args.binlog_expire).filter(|d| !d.is_zero()),
                max_bytes: args.binlog_retention_max_bytes,
                replicas: c.replicas,
                peer_domain: c.peer_domain()?,
                interval: args.reconcile_interval.max(Duration::from_secs(1)),
                http,
                resolver,
            })
        }
        Role::Replica => None,
    };
    Ok(SidecarConfig {
        retention,
        clone_max_rate: args.clone_max_rate.0,
        backups: sidecar_backups(c, args)?,
        archive: sidecar_archive(c, args, identity.role)?,
        identity,
        flavor,
        local: c.local_root(root),
        datadir: c.datadir.clone(),
        clone_token,
        control: LoopSettings {
            flavor,
            mysql_port: c.mysql_port,
            replication_user: c.replication_user.clone(),
            replication_password: replication,
            policy: Policy {
                max_lag: Duration::from_secs(args.max_lag_seconds),
                master_outage_grace: args.master_outage_grace,
            },
            interval: args.reconcile_interval,
            semi_sync: c.semi_sync(),
            tls_ca: c.tls_ca_file.clone(),
            auto_reclone: args.auto_reclone.then_some(args.auto_reclone_interval),
            aside_retention: Some(args.aside_retention).filter(|d| !d.is_zero()),
            http: Some(c.peer_client()?.1),
            sources: Some(SecretSources {
                root: c.root_password_source(),
                replication: c.replication_password_source(),
                token: c.clone_token_source(),
            }),
        },
        listen: SocketAddr::new(args.listen_address, c.agent_port),
        tls: c.tls_cert_file.clone().zip(c.tls_key_file.clone()),
    })
}

/// The master's binary log archive, with --binlog-archive.
fn sidecar_archive(
    c: &CommonArgs,
    args: &SidecarArgs,
    role: Role,
) -> Result<Option<crate::sidecar::archive::ArchiveSettings>> {
    if !args.binlog_archive {
        return Ok(None);
    }
    let store = c.store_config().ok_or_else(|| {
        Error::config(
            "--binlog-archive (MYSQL_STS_BINLOG_ARCHIVE) needs --backup-url (MYSQL_STS_BACKUP_URL)",
        )
    })?;
    if role != Role::Master {
        return Ok(None);
    }
    Ok(Some(crate::sidecar::archive::ArchiveSettings {
        store: crate::backup::Store::open(&store)?,
        rotate_after: args.binlog_archive_rotate,
        interval: args.reconcile_interval.max(Duration::from_secs(1)),
    }))
}

/// The sidecar's backups: a bucket, and a schedule only with one.
fn sidecar_backups(
    c: &CommonArgs,
    args: &SidecarArgs,
) -> Result<Option<crate::sidecar::backups::BackupSettings>> {
    let Some(store) = c.store_config() else {
        if args.backup_schedule.is_some() {
            return Err(Error::config(
                "--backup-schedule (MYSQL_STS_BACKUP_SCHEDULE) needs --backup-url (MYSQL_STS_BACKUP_URL)",
            ));
        }
        return Ok(None);
    };
    let (resolver, http) = c.peer_client()?;
    Ok(Some(crate::sidecar::backups::BackupSettings {
        store: crate::backup::Store::open(&store)?,
        schedule: args
            .backup_schedule
            .as_deref()
            .map(parse_cron)
            .transpose()
            .map_err(Error::config)?,
        keep: args.backup_keep,
        max_age: Some(args.backup_max_age).filter(|d| !d.is_zero()),
        replicas: c.replicas,
        peer_domain: c.peer_domain()?,
        http,
        resolver,
    }))
}

/// The token is required where the sidecar must serve clone streams; else a
/// missing one only means it serves none.
fn sidecar_token(flavor: Option<Flavor>, token: Result<Secret>) -> Result<Option<Secret>> {
    match token {
        Ok(t) => Ok(Some(t)),
        Err(e) if flavor.is_some_and(Flavor::serves_clone_stream) => Err(e),
        Err(_) => {
            tracing::warn!("no clone token: this sidecar will not serve clone streams");
            Ok(None)
        }
    }
}

/// Everything `mysql-sts status` needs.
pub struct StatusConfig {
    pub statefulset: String,
    pub peer_domain: String,
    pub replicas: u32,
    pub resolver: hickory_resolver::TokioResolver,
    pub http: AgentClient,
    pub output: Output,
}

impl StatusConfig {
    /// The DNS name of pod `n`.
    pub fn name(&self, n: u32) -> String {
        crate::pod::peer_name(&format!("{}-{n}", self.statefulset), &self.peer_domain)
    }
}

pub fn status(c: &CommonArgs, args: &StatusArgs) -> Result<StatusConfig> {
    let (resolver, http) = c.peer_client()?;
    Ok(StatusConfig {
        statefulset: c.identity()?.statefulset,
        peer_domain: c.peer_domain()?,
        replicas: c.replicas,
        http,
        resolver,
        output: args.output,
    })
}

/// Everything `mysql-sts probe` needs.
pub struct ProbeConfig {
    pub http: AgentClient,
    /// The name the local sidecar is asked by.
    pub host: String,
    pub what: ProbeKind,
    pub timeout: Duration,
}

pub fn probe(c: &CommonArgs, args: &ProbeArgs) -> Result<ProbeConfig> {
    // Over TLS the sidecar is asked by its own name, which its certificate
    // holds, at the loopback address.
    let loopback = SocketAddr::from(([127, 0, 0, 1], c.agent_port));
    let (host, pin) = match &c.tls_ca_file {
        Some(_) => {
            let fqdn = c.identity()?.fqdn;
            (fqdn.clone(), Some(fqdn))
        }
        None => ("127.0.0.1".to_owned(), None),
    };
    let http = AgentClient::new(
        c.tls_ca_file.as_deref(),
        c.agent_port,
        None,
        pin.as_deref().map(|n| (n, loopback)),
    )?;
    Ok(ProbeConfig {
        http,
        host,
        what: args.what,
        timeout: args.timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(what: &str) -> Result<Secret> {
        Err(Error::MissingSecret {
            what: format!("{what}: set ITS_VARIABLE or --its-file"),
        })
    }

    fn secrets(root: bool, replication: bool, token: bool) -> Secrets {
        let s = |ok: bool, what: &str| {
            if ok {
                Ok(Secret::new(format!("{what}-value")))
            } else {
                missing(what)
            }
        };
        Secrets {
            root: s(root, "the root password"),
            replication: s(replication, "the replication password"),
            token: s(token, "the clone token"),
        }
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("mysql-sts").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn clone_credentials_per_engine() {
        let all = |f: Flavor| secrets(true, true, true).clone_credentials(f).unwrap();
        assert!(matches!(all(Flavor::Mysql), CloneCredentials::Mysql { .. }));
        assert!(matches!(
            all(Flavor::Mariadb),
            CloneCredentials::Mariadb { .. }
        ));
        for (flavor, (root, repl, token), says) in [
            (
                Flavor::Mysql,
                (false, true, true),
                Some("the root password"),
            ),
            (
                Flavor::Mysql,
                (true, false, true),
                Some("the replication password"),
            ),
            (
                Flavor::Mysql,
                (false, false, true),
                Some("the root password"),
            ),
            (Flavor::Mysql, (true, true, false), None),
            (
                Flavor::Mariadb,
                (true, true, false),
                Some("the clone token"),
            ),
            (Flavor::Mariadb, (false, false, true), None),
        ] {
            let got = secrets(root, repl, token).clone_credentials(flavor);
            match (says, got) {
                (None, Ok(_)) => {}
                (Some(what), Err(e)) => {
                    assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
                    let text = e.to_string();
                    assert!(
                        text.starts_with(&format!("missing secret: {what}")),
                        "{text}"
                    );
                    assert!(text.contains("ITS_VARIABLE"), "says how to set it: {text}");
                }
                (want, got) => panic!("{flavor} {root} {repl} {token}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn a_replica_needs_its_clone_credentials_the_master_only_later() {
        let none = || secrets(false, false, false).clone_credentials(Flavor::Mariadb);
        assert!(init_credentials(Role::Replica, none()).is_err());
        let kept = init_credentials(Role::Master, none()).unwrap();
        assert!(kept.unwrap_err().to_string().contains("the clone token"));
        let some = secrets(true, true, true).clone_credentials(Flavor::Mysql);
        assert!(init_credentials(Role::Replica, some).unwrap().is_ok());
    }

    #[test]
    fn the_sidecar_token_is_required_where_clones_are_streamed() {
        let ok = || Ok(Secret::new("t"));
        let none = || missing("the clone token");
        assert!(sidecar_token(Some(Flavor::Mariadb), none()).is_err());
        assert!(
            sidecar_token(Some(Flavor::Mysql), none())
                .unwrap()
                .is_none()
        );
        assert!(sidecar_token(None, none()).unwrap().is_none());
        assert!(
            sidecar_token(Some(Flavor::Mariadb), ok())
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn flavor_flag() {
        assert_eq!(parse(&["identity"]).common.flavor, FlavorChoice(None));
        assert_eq!(
            parse(&["--flavor", "mariadb", "identity"]).common.flavor,
            FlavorChoice(Some(Flavor::Mariadb))
        );
        assert_eq!(
            parse(&["--flavor", "mysql", "identity"]).common.flavor,
            FlavorChoice(Some(Flavor::Mysql))
        );
        let err = Cli::try_parse_from(["mysql-sts", "--flavor", "postgres", "identity"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgres"), "{err}");
    }

    #[test]
    fn server_binary_follows_the_flavor_unless_named() {
        let c = parse(&["--flavor", "mariadb", "identity"]).common;
        assert_eq!(c.mysqld().unwrap(), PathBuf::from("mariadbd"));
        let c = parse(&["--flavor", "mariadb", "--mysqld", "/opt/x", "identity"]).common;
        assert_eq!(c.mysqld().unwrap(), PathBuf::from("/opt/x"));
    }

    #[test]
    fn peer_domain_from_service_or_flag() {
        let c = parse(&["--service", "mysql-h", "--namespace", "db", "identity"]).common;
        assert_eq!(c.peer_domain().unwrap(), "mysql-h.db.svc.cluster.local");
        let c = parse(&["--peer-domain", "", "identity"]).common;
        assert_eq!(c.peer_domain().unwrap(), "");
        let c = parse(&[
            "--peer-domain",
            "x.example.",
            "--service",
            "ignored",
            "identity",
        ])
        .common;
        assert_eq!(c.peer_domain().unwrap(), "x.example");
        let c = parse(&["--namespace", "db", "identity"]).common;
        let err = c.peer_domain().unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::CONFIG);
        assert!(err.to_string().contains("--service"), "{err}");
    }

    #[test]
    fn tls_cert_and_key_go_together() {
        let err = Cli::try_parse_from(["mysql-sts", "--tls-cert-file", "/c", "identity"]);
        assert!(err.is_err());
        let c = parse(&["--tls-cert-file", "/c", "--tls-key-file", "/k", "identity"]).common;
        assert!(c.tls_cert_file.is_some() && c.tls_key_file.is_some());
    }
}
