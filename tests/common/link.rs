//! A slow link between pods: a TCP proxy on the bridge that forwards to one
//! pod and carries at most a given number of bytes per second each way (this
//! kernel has no netem or tbf qdiscs to shape traffic with). Every
//! connection through it shares the one rate per direction, as they would
//! share a link between zones.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

/// The proxy; it stops when dropped.
pub struct SlowLink {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Bytes sent towards clients so far, and since when, for the one rate.
struct Budget {
    started: Instant,
    sent: u64,
    rate: u64,
}

/// An idle link saves up no more than this much sending time.
const BURST: Duration = Duration::from_millis(20);

impl Budget {
    /// Takes `n` bytes of the budget; returns how long to wait before
    /// sending them.
    fn take(&mut self, n: u64) -> Option<Duration> {
        let due = at_rate(self.sent, self.rate);
        let now = self.started.elapsed();
        if now > due + BURST {
            // Idle: what was not used is not saved up.
            self.started = Instant::now() - (due + BURST);
        }
        self.sent += n;
        mysql_sts::net::wire::pace(self.sent, self.rate, self.started.elapsed())
    }
}

impl SlowLink {
    /// Listens on `listen_ip` at each of `ports`, forwarding to the same port
    /// of `target_ip`; what flows back is held to `rate` bytes per second.
    pub async fn start(listen_ip: &str, target_ip: &str, ports: &[u16], rate: u64) -> SlowLink {
        let direction = || {
            Arc::new(Mutex::new(Budget {
                started: Instant::now(),
                sent: 0,
                rate,
            }))
        };
        let budget = (direction(), direction());
        let mut tasks = Vec::new();
        for &port in ports {
            let listener = listen(listen_ip, port).await;
            let target = format!("{target_ip}:{port}");
            let budget = budget.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let target = target.clone();
                    let budget = budget.clone();
                    tokio::spawn(async move {
                        if let Ok(server) = tokio::net::TcpStream::connect(&target).await {
                            carry(client, server, budget).await;
                        }
                    });
                }
            }));
        }
        SlowLink { tasks }
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

type Budgets = (Arc<Mutex<Budget>>, Arc<Mutex<Budget>>);

async fn carry(client: tokio::net::TcpStream, server: tokio::net::TcpStream, budget: Budgets) {
    let _ = client.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let (up_budget, down_budget) = budget;
    let up = tokio::spawn(pump(cr, sw, up_budget));
    pump(sr, cw, down_budget).await;
    let _ = up.await;
}

/// Copies `from` into `to` at the budget's rate, then closes `to`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    budget: Arc<Mutex<Budget>>,
) {
    // Small pieces: the rate holds within a few milliseconds.
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let wait = budget.lock().await.take(n as u64);
        if let Some(w) = wait {
            tokio::time::sleep(w).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Listens on `ip`:`port` on the bridge, where a test proxy of an earlier
/// step may linger for a moment after its task was stopped.
pub async fn listen(ip: &str, port: u16) -> tokio::net::TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::net::TcpListener::bind((ip, port)).await {
            Ok(listener) => return listener,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot listen on {ip}:{port}: {e}"),
        }
    }
}

/// Bytes per second of a link of `mbit` megabits per second.
pub fn mbit(mbit: u64) -> u64 {
    mbit * 1_000_000 / 8
}

/// How long `bytes` take at `rate` bytes per second.
pub fn at_rate(bytes: u64, rate: u64) -> Duration {
    Duration::from_secs_f64(bytes as f64 / rate as f64)
}
