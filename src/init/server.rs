//! The server, once init is done: run as init's child, not in init's place.
//! Init stays the container's first process: it passes the stop signal on,
//! reaps what the image's entrypoint leaves behind, and exits as the server
//! did.
//!
//! Why not simply exec the server: a MySQL server that stops while a commit
//! waits for a semi-synchronous acknowledgement answers that commit OK as
//! it shuts down, acknowledged by no replica (MariaDB closes the connection
//! instead). On a master that then loses its volume, the client's row is
//! gone. So on a MySQL master with semi-sync, a stop first makes the server
//! read-only, which it can only do while no commit is in flight, and which
//! then lets no new one start: the shutdown that follows answers nothing
//! unreplicated. While commits wait, their clients are disconnected (they
//! get an error, as they must: nothing acknowledged them), and if no replica
//! acknowledges them before [`STOP_WAIT`], the server is killed rather than
//! shut down, which answers nothing either. The server's own first process
//! ignores a kill from inside its container; its parent's it cannot.

use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions, kill_process};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::error::{Error, IoContext, Result};
use crate::net::sql::{self, Target};

/// How long a stopping master waits for replicas to acknowledge the
/// commits in flight before it kills its server: well inside the pod's
/// grace period (30 s by default).
pub const STOP_WAIT: Duration = Duration::from_secs(15);

/// The lock files of the image's server sockets (MySQL's).
const STALE_LOCKS: [&str; 2] = [
    "/run/mysqld/mysqld.sock.lock",
    "/run/mysqld/mysqlx.sock.lock",
];

/// What a stop must do before the server may shut down: on a MySQL master
/// with semi-sync, answer no commit a replica did not acknowledge.
#[derive(Debug, Clone)]
pub struct StopGuard {
    /// The local server, as root.
    pub local: Target,
    pub wait: Duration,
}

/// Runs `program` with `args` until it exits; returns the exit code to
/// leave with (128 + the signal for a server a signal ended).
pub async fn run(program: &str, args: &[String], guard: Option<StopGuard>) -> Result<i32> {
    let mut term = signal(SignalKind::terminate()).io_context(|| "SIGTERM handler".into())?;
    let mut int = signal(SignalKind::interrupt()).io_context(|| "SIGINT handler".into())?;
    let mut chld = signal(SignalKind::child()).io_context(|| "SIGCHLD handler".into())?;
    // A server killed with its container (a node's reboot) leaves its socket's
    // lock file naming its pid; as init's child its pid is no longer 1, and
    // another process of the new container may hold that pid: MySQL then
    // refuses to start. No server runs in this container before this one.
    for lock in STALE_LOCKS {
        if std::fs::remove_file(lock).is_ok() {
            info!(lock, "removed the socket lock file a stopped server left");
        }
    }
    let child = std::process::Command::new(program)
        .args(args)
        .spawn()
        .map_err(|e| Error::Other(format!("cannot run {program}: {e}")))?;
    let pid = Pid::from_child(&child);
    // Its status is read by reaping every child below, not through `child`.
    drop(child);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        if let Some(code) = reap(pid)? {
            return Ok(code);
        }
        let name = tokio::select! {
            _ = chld.recv() => continue,
            _ = tick.tick() => continue,
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(signal = name, "stopping the server");
        let kill = match &guard {
            Some(g) => !g.quiesce().await,
            None => false,
        };
        let sig = if kill { Signal::KILL } else { Signal::TERM };
        let _ = kill_process(pid, sig);
    }
}

/// Reaps every ended child; the server's exit code once it has ended.
fn reap(server: Pid) -> Result<Option<i32>> {
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) if pid == server => {
                let code = status
                    .exit_status()
                    .or_else(|| status.terminating_signal().map(|s| 128 + s))
                    .unwrap_or(1);
                info!(code, "the server ended");
                return Ok(Some(code));
            }
            Ok(Some(_)) => continue,
            Ok(None) => return Ok(None),
            Err(e) => return Err(Error::Other(format!("waiting for the server: {e}"))),
        }
    }
}

impl StopGuard {
    /// Makes the server read-only with no commit in flight; returns false
    /// when that could not be done within the wait and the server must be
    /// killed instead. A server that cannot be reached has no client to
    /// answer either: it shuts down as asked.
    async fn quiesce(&self) -> bool {
        let started = Instant::now();
        let mut conn = match self.local.connect(Duration::from_secs(2)).await {
            Ok(c) => c,
            Err(e) => {
                info!(error = %e, "the server does not answer: stopping it");
                return true;
            }
        };
        let mut disconnected = 0usize;
        loop {
            let read_only = match sql::exec(&mut conn, "SET SESSION lock_wait_timeout = 1").await {
                Ok(()) => sql::exec(&mut conn, "SET GLOBAL super_read_only = ON").await,
                Err(e) => Err(e),
            };
            match read_only {
                Ok(()) => {
                    info!(
                        disconnected,
                        "read-only with no commit in flight: shutting the server down"
                    );
                    return true;
                }
                Err(e) if started.elapsed() >= self.wait => {
                    warn!(error = %e, waited_s = self.wait.as_secs(), disconnected,
                        "commits still wait for an acknowledgement no replica gave: killing the server, which answers none of them");
                    return false;
                }
                Err(_) => disconnected += disconnect_waiting(&mut conn).await,
            }
        }
    }
}

/// Disconnects the clients of the commits that wait for a replica's
/// acknowledgement (an error, not OK; each commit itself waits on in the
/// server); returns how many it disconnected.
async fn disconnect_waiting(conn: &mut mysql_async::Conn) -> usize {
    let ids = match sql::scalar(
        conn,
        "SELECT GROUP_CONCAT(ID) FROM information_schema.PROCESSLIST \
         WHERE STATE LIKE 'Waiting for semi-sync ACK%' AND COMMAND <> 'Killed'",
    )
    .await
    {
        Ok(ids) => ids,
        Err(e) => {
            warn!(error = %e, "cannot list the waiting commits");
            return 0;
        }
    };
    let mut disconnected = 0;
    for id in ids.split(',').filter_map(|id| id.parse::<u64>().ok()) {
        if sql::exec(conn, &format!("KILL CONNECTION {id}"))
            .await
            .is_ok()
        {
            disconnected += 1;
        }
    }
    if disconnected > 0 {
        warn!(
            sessions = disconnected,
            "commits wait for a replica's acknowledgement: their clients are disconnected"
        );
    }
    disconnected
}
