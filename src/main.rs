use std::process::ExitCode;

use clap::Parser;
use mysql_sts::config::{self, Cli, Command, LogFormat, Output};
use mysql_sts::engine::Flavor;
use mysql_sts::error::{Result, exit};
use mysql_sts::pod::Role;
use mysql_sts::shutdown::Shutdown;
use mysql_sts::{init, install, overview, probe, sidecar};

fn main() -> ExitCode {
    // The agent holds every secret of the cluster: no core dump of it, and
    // no other process of its user may read its memory.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let cli = Cli::parse();
    // One TLS implementation in the process: rustls with aws-lc.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    init_logging(cli.common.log_format);
    // Before any other thread: every thread, and every program the agent
    // runs (a donor's backup), inherits the short slice.
    if let Err(e) = mysql_sts::sched::short_slice() {
        tracing::debug!("the kernel refused a short time slice: {e}");
    }
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

async fn run(cli: Cli) -> Result<i32> {
    let c = &cli.common;
    match &cli.command {
        Command::Identity => {
            let id = c.identity()?;
            println!(
                "{}",
                serde_json::to_string_pretty(&id).expect("identity serialises")
            );
            Ok(exit::OK)
        }
        Command::Backup(args) => mysql_sts::backup::command::backup(c, args).await,
        Command::Backups(args) => mysql_sts::backup::command::backups(c, args).await,
        Command::Install { dir } => {
            println!("{}", install::copy_self(dir)?.display());
            Ok(exit::OK)
        }
        Command::Probe(args) => {
            let (ok, said) = probe::run(&config::probe(c, args)?).await;
            println!("{said}");
            Ok(if ok { exit::OK } else { exit::OTHER })
        }
        Command::Status(args) => {
            let cfg = config::status(c, args)?;
            let reports =
                overview::ask_all(|n| cfg.name(n), cfg.replicas, &cfg.resolver, &cfg.http).await;
            match cfg.output {
                Output::Table => print!("{}", overview::table(&reports)),
                Output::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&reports).expect("reports serialise")
                ),
            }
            Ok(if reports.iter().all(|r| r.ready()) {
                exit::OK
            } else {
                exit::OTHER
            })
        }
        Command::Init(args) => {
            let cfg = config::init(c, args).await?;
            // MySQL answers a commit waiting for a semi-sync acknowledgement
            // OK as it shuts down: a master's stop is guarded.
            let guard = (cfg.flavor == Flavor::Mysql
                && cfg.identity.role == Role::Master
                && cfg.semi_sync.is_some())
            .then(|| c.root_password().ok())
            .flatten()
            .map(|root| init::server::StopGuard {
                local: c.local_root(root),
                wait: init::server::STOP_WAIT,
            });
            let outcome = init::run(cfg, Shutdown::on_signals()?).await?;
            tracing::info!(?outcome, "init done");
            match args.exec.split_first() {
                Some((program, rest)) => {
                    tracing::info!(command = ?args.exec, "starting the server");
                    // The server is not the agent's bulk work: it runs on the
                    // default slice, not the short one the agent asked for.
                    if let Err(e) = mysql_sts::sched::default_slice() {
                        tracing::warn!("the kernel refused the default time slice: {e}");
                    }
                    Ok(init::server::run(program, rest, guard).await?)
                }
                None => Ok(exit::OK),
            }
        }
        Command::Sidecar(args) => {
            let cfg = config::sidecar(c, args)?;
            let listener = sidecar::bind_when_free(cfg.listen, sidecar::PORT_WAIT).await?;
            sidecar::serve(cfg, listener, Shutdown::on_signals()?).await?;
            Ok(exit::OK)
        }
    }
}
