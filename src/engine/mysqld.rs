//! Running the server binary from the agent: asking its version, and the
//! short-lived local servers a MySQL clone needs (no network, own socket).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tracing::{debug, info, warn};

use crate::error::{ER_ACCESS_DENIED, Error, IoContext, Result};
use crate::net::sql::{self as db, Target};
use crate::secret::Secret;

/// What `mysqld --version` says.
pub async fn version(mysqld: &Path) -> Result<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(mysqld).arg("--version").output(),
    )
    .await
    .map_err(|_| Error::Timeout {
        what: format!("{} --version", mysqld.display()),
        after: Duration::from_secs(30),
    })?
    .map_err(|e| {
        Error::config(format!(
            "cannot run {} --version ({e}): pass --mysqld or --flavor",
            mysqld.display()
        ))
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.trim().is_empty() {
        return Err(Error::config(format!(
            "{} --version failed ({}): pass --mysqld or --flavor",
            mysqld.display(),
            out.status
        )));
    }
    Ok(text.into_owned())
}

/// What a temporary server is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The empty scratch server a clone is driven from: it must write.
    Scratch,
    /// A copy started once to finish its recovery and be read: read-only
    /// for everyone, and no event of the application runs, so nothing is
    /// written under the copy's own server UUID.
    Verify,
    /// A copy the agent itself must write to before anyone else can (its
    /// binary log state): writable, no accounts checked, no network.
    Prepare,
}

/// How to start the server binary for a temporary, private server.
#[derive(Debug, Clone)]
pub struct Binary {
    pub path: PathBuf,
    pub defaults_file: Option<PathBuf>,
    /// The uid the server must run as when the agent runs as root.
    pub user: Option<u32>,
}

impl Binary {
    fn command(&self, datadir: &Path, run_dir: &Path, purpose: Use) -> Command {
        let mut cmd = Command::new(&self.path);
        if let Some(f) = &self.defaults_file {
            cmd.arg(format!("--defaults-file={}", f.display()));
        }
        if let Some(uid) = self.user {
            cmd.arg(format!("--user={uid}"));
        }
        cmd.arg(format!("--datadir={}", datadir.display()))
            .arg(format!(
                "--log-error={}",
                run_dir.join("error.log").display()
            ))
            .arg(format!(
                "--pid-file={}",
                run_dir.join("mysqld.pid").display()
            ))
            .arg(format!(
                "--socket={}",
                run_dir.join("mysqld.sock").display()
            ))
            .arg("--skip-networking")
            .arg("--loose-mysqlx=OFF")
            .arg("--event-scheduler=OFF")
            // Each engine knows one of these names.
            .arg("--loose-skip-replica-start")
            .arg("--loose-skip-slave-start");
        let read_only = match purpose {
            Use::Scratch | Use::Prepare => "OFF",
            Use::Verify => "ON",
        };
        if purpose == Use::Prepare {
            cmd.arg("--skip-grant-tables");
        }
        cmd.arg(format!("--read-only={read_only}"))
            .arg(format!("--loose-super-read-only={read_only}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// `mysqld --initialize-insecure` into an empty `datadir`.
    pub async fn initialize(&self, datadir: &Path, run_dir: &Path) -> Result<()> {
        let started = Instant::now();
        let status = tokio::time::timeout(
            Duration::from_secs(300),
            self.command(datadir, run_dir, Use::Scratch)
                .arg("--initialize-insecure")
                .status(),
        )
        .await
        .map_err(|_| Error::Timeout {
            what: "mysqld --initialize-insecure".into(),
            after: Duration::from_secs(300),
        })?
        .io_context(|| format!("cannot run {}", self.path.display()))?;
        if !status.success() {
            return Err(Error::Other(format!(
                "mysqld --initialize-insecure failed ({status}): {}",
                log_tail(run_dir)
            )));
        }
        debug!(
            secs = started.elapsed().as_secs_f64(),
            "scratch server initialised"
        );
        Ok(())
    }

    /// Starts a private server on `datadir` for `purpose` and waits until
    /// it answers as root.
    pub async fn start(
        &self,
        datadir: &Path,
        run_dir: &Path,
        purpose: Use,
        password: Option<Secret>,
        deadline: Duration,
    ) -> Result<TempServer> {
        let child = self
            .command(datadir, run_dir, purpose)
            .spawn()
            .io_context(|| format!("cannot start {}", self.path.display()))?;
        let mut server = TempServer {
            child,
            target: Target {
                host: "localhost".into(),
                port: 0,
                socket: Some(run_dir.join("mysqld.sock")),
                user: "root".into(),
                password,
            },
            run_dir: run_dir.to_owned(),
        };
        let started = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait().io_context(|| "mysqld".into())? {
                return Err(Error::Other(format!(
                    "temporary mysqld on {} exited ({status}): {}",
                    datadir.display(),
                    log_tail(run_dir)
                )));
            }
            match server.target.connect(Duration::from_secs(2)).await {
                Ok(conn) => {
                    drop(conn);
                    info!(datadir = %datadir.display(), secs = started.elapsed().as_secs_f64(), "temporary mysqld is up");
                    return Ok(server);
                }
                // The server is up but refuses us: waiting cannot help.
                Err(
                    e @ Error::Sql {
                        source:
                            mysql_async::Error::Server(mysql_async::ServerError {
                                code: ER_ACCESS_DENIED,
                                ..
                            }),
                        ..
                    },
                ) => {
                    let _ = server.child.kill().await;
                    return Err(Error::Other(format!(
                        "temporary mysqld on {} refuses root: {e}; is MYSQL_ROOT_PASSWORD the cluster's root password?",
                        datadir.display()
                    )));
                }
                Err(e) if started.elapsed() > deadline => {
                    return Err(Error::Other(format!(
                        "temporary mysqld on {} did not answer within {} s: {e}; {}",
                        datadir.display(),
                        deadline.as_secs(),
                        log_tail(run_dir)
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// A temporary server that is killed if dropped before [`TempServer::shutdown`].
pub struct TempServer {
    child: Child,
    pub target: Target,
    run_dir: PathBuf,
}

impl TempServer {
    /// Shuts the server down cleanly and waits for it to exit.
    pub async fn shutdown(mut self) -> Result<()> {
        match self.target.connect(Duration::from_secs(5)).await {
            Ok(mut conn) => {
                if let Err(e) = db::exec(&mut conn, "SHUTDOWN").await {
                    warn!(error = %e, "SHUTDOWN failed; waiting for the server anyway");
                }
            }
            Err(e) => warn!(error = %e, "cannot connect to shut down; killing"),
        }
        match tokio::time::timeout(Duration::from_secs(120), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(Error::Other(format!(
                "temporary mysqld exited with {status}: {}",
                log_tail(&self.run_dir)
            ))),
            Ok(Err(e)) => Err(e).io_context(|| "waiting for mysqld".into()),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(Error::Other(
                    "temporary mysqld did not shut down within 120 s; killed".into(),
                ))
            }
        }
    }
}

/// The last lines of a temporary server's error log, for error messages.
pub fn log_tail(run_dir: &Path) -> String {
    let log = std::fs::read_to_string(run_dir.join("error.log")).unwrap_or_default();
    if log.trim().is_empty() {
        "its error log is empty".to_owned()
    } else {
        format!(
            "last lines of its error log: {}",
            crate::error::last_lines(&log, 5)
        )
    }
}
