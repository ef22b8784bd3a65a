use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use mysql_sts::cli::{Cli, Command, CommonArgs, LogFormat};
use mysql_sts::db::Target;
use mysql_sts::error::{Error, Result, exit};
use mysql_sts::flavor::Flavor;
use mysql_sts::http::AgentClient;
use mysql_sts::identity::{Identity, Role};
use mysql_sts::mysqld::{self, Binary};
use mysql_sts::readiness::Policy;
use mysql_sts::{donor, init, install, probe, serve, sidecar};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS implementation in the process: rustls with aws-lc.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    init_logging(cli.common.log_format);
    // The sidecar waits on the network almost all the time: one thread keeps
    // its memory small. Init's clone work gets two.
    let rt = match cli.command {
        Command::Sidecar(_) => tokio::runtime::Builder::new_current_thread(),
        _ => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
    }
    .enable_all()
    .build()
    .expect("tokio runtime");
    let code = match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(exit_code = e.exit_code(), "{e}");
            eprintln!("mysql-sts: error: {e}");
            e.exit_code()
        }
    };
    ExitCode::from(code as u8)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MYSQL_STS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn identity(c: &CommonArgs) -> Result<Identity> {
    Identity::new(&c.hostname()?, &c.peer_domain()?, c.server_id_base)
}

async fn run(cli: Cli) -> Result<i32> {
    let c = &cli.common;
    match cli.command {
        Command::Identity => {
            let id = identity(c)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&id).expect("identity serialises")
            );
            Ok(exit::OK)
        }
        Command::Install { dir } => {
            let to = install::copy_self(&dir)?;
            println!("{}", to.display());
            Ok(exit::OK)
        }
        Command::Probe(p) => {
            // Over TLS the sidecar is asked by its own name, which its
            // certificate holds, at the loopback address.
            let loopback = SocketAddr::from(([127, 0, 0, 1], c.agent_port));
            let (host, pin) = match &c.tls_ca_file {
                Some(_) => {
                    let fqdn = identity(c)?.fqdn;
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
            let (ok, said) = probe::run(&http, &host, p.what, p.timeout).await;
            println!("{said}");
            Ok(if ok { exit::OK } else { exit::OTHER })
        }
        Command::Init(args) => {
            let id = identity(c)?;
            let binary = Binary {
                path: match (c.flavor.fixed(), &c.mysqld) {
                    (_, Some(p)) => p.clone(),
                    (Some(Flavor::Mysql), None) => "mysqld".into(),
                    (Some(Flavor::Mariadb), None) => "mariadbd".into(),
                    (None, None) => c.mysqld()?,
                },
                defaults_file: c.mysqld_defaults_file.clone(),
                user: None,
            };
            let flavor = match c.flavor.fixed() {
                Some(f) => f,
                None => mysqld::detect_flavor(&binary.path).await?,
            };
            let replica = id.role == Role::Replica;
            // A replica always needs what a clone needs; the master only when it
            // turns out to need a re-seed, which init checks then.
            let (root, repl, token) = match (replica, flavor) {
                (false, _) => (
                    c.root_password().ok(),
                    c.replication_password().ok(),
                    c.clone_token().ok(),
                ),
                (true, Flavor::Mysql) => (
                    Some(c.root_password()?),
                    Some(c.replication_password()?),
                    None,
                ),
                (true, Flavor::Mariadb) => (None, None, Some(c.clone_token()?)),
            };
            let settings = init::Settings {
                peer_domain: c.peer_domain()?,
                donor_fallback_after: args.donor_fallback_after,
                clone_attempts: args.clone_attempts,
                reclone: args.reclone,
                fresh_master: args.fresh_master,
                reseed_timeout: args.reseed_timeout,
                identity: id,
                flavor,
                datadir: c.datadir.clone(),
                conf_dir: c.conf_dir.clone(),
                mysql_port: c.mysql_port,
                http: AgentClient::new(
                    c.tls_ca_file.as_deref(),
                    c.agent_port,
                    Some(donor::resolver()?),
                    None,
                )?,
                donor_timeout: args.donor_timeout,
                stall_timeout: args.clone_stall_timeout,
                replication_user: c.replication_user.clone(),
                replication_password: repl,
                root_password: root,
                clone_token: token,
                binary,
            };
            let outcome = with_signals(init::run(settings)).await?;
            tracing::info!(?outcome, "init done");
            Ok(exit::OK)
        }
        Command::Sidecar(args) => {
            let id = identity(c)?;
            let flavor = c.flavor.fixed();
            let root = c.root_password()?;
            let repl = c.replication_password()?;
            let token = match (c.clone_token(), flavor) {
                (Ok(t), _) => Some(t),
                (Err(e), Some(Flavor::Mariadb)) => return Err(e),
                (Err(_), _) => {
                    tracing::warn!("no clone token: this sidecar will not serve clone streams");
                    None
                }
            };
            let local = Target {
                host: "127.0.0.1".into(),
                port: c.mysql_port,
                socket: None,
                user: "root".into(),
                password: Some(root),
            };
            let shared = sidecar::Shared::new(id, flavor, local, c.datadir.clone(), token);
            let settings = sidecar::LoopSettings {
                flavor,
                mysql_port: c.mysql_port,
                replication_user: c.replication_user.clone(),
                replication_password: repl,
                policy: Policy {
                    max_lag: std::time::Duration::from_secs(args.max_lag_seconds),
                    master_outage_grace: args.master_outage_grace,
                },
                interval: args.reconcile_interval,
            };
            let listen = SocketAddr::new(args.listen_address, c.agent_port);
            let tls = c.tls_cert_file.clone().zip(c.tls_key_file.clone());
            serve::run(shared, listen, tls, settings).await?;
            Ok(exit::OK)
        }
    }
}

/// Runs init's work until it ends or a signal asks it to stop; a clone cut
/// short leaves its marker and is wiped by the next start.
async fn with_signals<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::Other(e.to_string()))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::Other(e.to_string()))?;
    tokio::select! {
        r = work => r,
        _ = term.recv() => Err(Error::Other("stopped by SIGTERM".into())),
        _ = int.recv() => Err(Error::Other("stopped by SIGINT".into())),
    }
}
