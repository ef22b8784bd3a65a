//! The master's write latency while data moves: windows of copies back to
//! back, long enough for a p99, repeated so the report shows whether the
//! figure holds still; and a control row that moves the same bytes with
//! plain `tar` and no agent, so the machine's share of a change is visible.

use super::*;
use report::{LatencyRow, ScaleOut};

/// What the writer saw while copies ran back to back into one pod.
#[derive(Default)]
pub struct Window {
    /// The writer's latencies (ms) while a copy ran.
    pub lat: Vec<f64>,
    /// Each copy's wall time (s).
    pub copies: Vec<f64>,
    /// Copies taken again because the master's disk stalled (see
    /// [`FlushGuard`]).
    pub retaken: usize,
}

/// The most copies of one window taken again.
const RETAKE_MAX: usize = 10;

/// Watches the master's disk while a copy that writes no data to it runs. This
/// machine's virtual disk now and then takes ~70 ms per cache flush for
/// seconds on end, while the guest writes almost nothing (found with
/// `/proc/diskstats` and every process's `write_bytes`, second by second):
/// the host's doing. Every commit of the master flushes, so its p99 jumps
/// to hundreds of ms whatever else runs; the `tar` control caught it as
/// often as a clone from N-1. A copy between two pods on a tmpfs during
/// which the disk's mean flush took more than ten times the idle window's
/// (and over 1 ms) is taken again, and the report counts them.
pub struct FlushGuard {
    disk: String,
    limit_ms: f64,
}

/// A disk's flushes so far, and the ms spent on them.
#[derive(Clone, Copy)]
pub struct Flushes(u64, u64);

impl FlushGuard {
    /// The whole disk that holds `dir`, if `/proc/diskstats` counts its
    /// flushes.
    pub fn disk_of(dir: &std::path::Path) -> Option<String> {
        let dev = rustix::fs::stat(dir).ok()?.st_dev;
        let sys = std::path::PathBuf::from(format!(
            "/sys/dev/block/{}:{}",
            rustix::fs::major(dev),
            rustix::fs::minor(dev)
        ));
        let real = std::fs::canonicalize(&sys).ok()?;
        let disk = if sys.join("partition").exists() {
            real.parent()?.to_path_buf()
        } else {
            real
        };
        Some(disk.file_name()?.to_str()?.to_owned())
    }

    pub fn new(disk: String, idle: (Flushes, Flushes)) -> FlushGuard {
        let mean = mean_ms(idle.0, idle.1);
        FlushGuard {
            disk,
            limit_ms: (10.0 * mean).max(1.0),
        }
    }

    pub fn flushes_of(disk: &str) -> Flushes {
        let stats = std::fs::read_to_string("/proc/diskstats").unwrap_or_default();
        let f: Vec<u64> = stats
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.get(2) == Some(&disk))
            .map(|f| f[3..].iter().filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_default();
        match f.len() {
            17.. => Flushes(f[15], f[16]),
            _ => Flushes(0, 0),
        }
    }

    pub fn flushes(&self) -> Flushes {
        Self::flushes_of(&self.disk)
    }

    /// Whether the disk's flushes since `before` took too long.
    fn stalled(&self, before: Flushes) -> bool {
        let mean = mean_ms(before, self.flushes());
        if mean > self.limit_ms {
            eprintln!(
                "bench: the master's disk took {mean:.1} ms per flush (limit {:.2} ms): taking that copy again",
                self.limit_ms
            );
        }
        mean > self.limit_ms
    }
}

fn mean_ms(a: Flushes, b: Flushes) -> f64 {
    match b.0.saturating_sub(a.0) {
        0 => 0.0,
        n => b.1.saturating_sub(a.1) as f64 / n as f64,
    }
}

/// Copies back to back into a new pod `n` (its datadir on a tmpfs with
/// `own`), until they have run `min` together. `copy` fills the empty
/// datadir once and returns its wall time; the datadir is emptied between
/// copies, outside the window, as are the making and deleting of the pod
/// (a network namespace's creation and deletion hold kernel locks the
/// master's traffic needs too) and the writing back of what the copies left
/// in the page cache.
pub fn copies_window(
    c: &mut Cluster,
    w: &Writer,
    n: u32,
    own: bool,
    min: Duration,
    guard: Option<&FlushGuard>,
    mut copy: impl FnMut(&mut Cluster) -> f64,
) -> Window {
    c.create_pod(n);
    if own {
        own_disk(c, n, true);
    }
    std::thread::sleep(Duration::from_secs(3));
    let mut win = Window::default();
    while win.copies.iter().sum::<f64>() < min.as_secs_f64() {
        let from = Instant::now();
        let before = guard.map(|g| g.flushes());
        let secs = copy(c);
        let to = Instant::now();
        let stalled = match (guard, before) {
            (Some(g), Some(before)) => win.retaken < RETAKE_MAX && g.stalled(before),
            _ => false,
        };
        empty_dir(&c.pod(n).datadir());
        if stalled {
            win.retaken += 1;
            continue;
        }
        let acks = w.acks_between(from, to);
        // BENCH_SLOW_MS: the writes slower than that, each with how long
        // after the copy began and before it ended (where the stalls are).
        if let Some(limit) = std::env::var("BENCH_SLOW_MS")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
        {
            let slow: Vec<String> = acks
                .iter()
                .filter(|a| a.ms > limit)
                .map(|a| {
                    format!(
                        "{:.2} ms at +{:.2} s / -{:.2} s",
                        a.ms,
                        (a.at - from).as_secs_f64(),
                        (to - a.at).as_secs_f64()
                    )
                })
                .collect();
            eprintln!(
                "bench: a copy of {secs:.2} s, {} writes, over {limit} ms: {}",
                acks.len(),
                slow.join(", ")
            );
        }
        win.lat.extend(acks.iter().map(|a| a.ms));
        win.copies.push(secs);
    }
    if own {
        own_disk(c, n, false);
    }
    c.remove_pod(n);
    // A copy on the master's disk leaves gigabytes to write back (and a
    // deleted datadir to free), which would land in the next window.
    run(&mut std::process::Command::new("sync"));
    win
}

/// [`copies_window`] of `mysql-sts init` clones into pod `n`, with `args`.
pub fn clones_window(
    c: &mut Cluster,
    w: &Writer,
    n: u32,
    own: bool,
    min: Duration,
    args: &[&str],
) -> Window {
    copies_window(c, w, n, own, min, None, |c| clone_ours_with(c, n, args).0)
}

/// One clone into a new pod `n` (its datadir on a tmpfs), outside any
/// window; its wall time.
pub fn clone_once(c: &mut Cluster, n: u32, args: &[&str]) -> f64 {
    c.create_pod(n);
    own_disk(c, n, true);
    let secs = clone_ours_with(c, n, args).0;
    own_disk(c, n, false);
    c.remove_pod(n);
    secs
}

fn empty_dir(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

/// The rows of the scale-out table, in the order they are measured (and
/// shown); their windows interleave, one of each per round, so a drift of
/// the machine spreads over all of them.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// mysql-3 clones from mysql-2 (N-1), its copy on a disk of its own.
    FromReplica,
    /// mysql-3 clones from mysql-0, its copy on a disk of its own.
    FromMaster,
    /// The same bytes from mysql-2 to mysql-3 by `tar` over a socket.
    Tar,
    /// From mysql-2, the copy on the master's disk.
    FromReplicaSharedDisk,
    /// From mysql-0, the copy on the master's disk.
    FromMasterSharedDisk,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::FromReplica,
        Kind::FromMaster,
        Kind::Tar,
        Kind::FromReplicaSharedDisk,
        Kind::FromMasterSharedDisk,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::FromReplica => "mysql-3 clones from mysql-2 (mysql-sts: N-1)",
            Kind::FromMaster => "mysql-3 clones from mysql-0 (always the primary)",
            Kind::Tar => "control: `tar` of mysql-2's datadir to mysql-3 over a socket, no agent",
            Kind::FromReplicaSharedDisk => "from mysql-2, the copy written to the master's disk",
            Kind::FromMasterSharedDisk => "from mysql-0, the copy written to the master's disk",
        }
    }

    fn own_disk(self) -> bool {
        matches!(self, Kind::FromReplica | Kind::FromMaster | Kind::Tar)
    }

    fn donor_is_master(self) -> bool {
        matches!(self, Kind::FromMaster | Kind::FromMasterSharedDisk)
    }
}

/// The scale-out figures on a cluster of three ready pods, mysql-2's data
/// on a tmpfs, the master's pod and the writer on CPU 0 and the rest on
/// CPU 1: `rounds` rounds of an idle window and one window of each kind,
/// each window `min` long.
pub async fn scale_out(c: &mut Cluster, w: &Writer, rounds: usize, min: Duration) -> ScaleOut {
    let mut out = ScaleOut {
        window_secs: min.as_secs(),
        idle: Vec::new(),
        rows: Kind::ALL
            .iter()
            .map(|k| LatencyRow::new(k.name()))
            .collect(),
        retaken: vec![0; Kind::ALL.len()],
    };
    let master_ip = c.pod(0).ip.clone();
    // The master's pod directory, and the disk under it.
    let master_dir = c.pod(0).datadir().parent().unwrap().to_owned();
    let disk = FlushGuard::disk_of(&master_dir);
    let settle = |what: &str| {
        let waited = settle_disk(&master_dir);
        if waited > Duration::from_secs(2) {
            eprintln!(
                "bench: the master's disk took {waited:.1?} to flush at rest again, before {what}"
            );
        }
    };
    for round in 0..rounds {
        settle("an idle window");
        let before = disk.as_deref().map(FlushGuard::flushes_of);
        let idle = idle_window(w, min).await;
        let guard = disk.clone().zip(before).map(|(d, b)| {
            let after = FlushGuard::flushes_of(&d);
            FlushGuard::new(d, (b, after))
        });
        eprintln!(
            "bench: round {}: idle: {} writes, p99 {:.2} ms",
            round + 1,
            idle.len(),
            report::quantile(&idle, 0.99)
        );
        out.idle.push(idle);
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            settle(kind.name());
            c.override_dns(2, kind.donor_is_master().then_some(master_ip.as_str()));
            let win = if kind == Kind::Tar {
                let src = c.pod(2).datadir();
                copies_window(c, w, 3, true, min, guard.as_ref(), |c| {
                    let dst = c.pod(3).datadir();
                    pipe_via(
                        c,
                        2,
                        3,
                        None,
                        &format!("tar -C {} -xf -", dst.display()),
                        &format!("tar -C {} -cf - . 2>/dev/null", src.display()),
                    )
                })
            } else {
                // Only a copy that writes no data to the master's disk is
                // watched: the others may be what slows it.
                let watch = guard.as_ref().filter(|_| kind == Kind::FromReplica);
                copies_window(c, w, 3, kind.own_disk(), min, watch, |c| {
                    clone_ours_with(c, 3, &[]).0
                })
            };
            c.override_dns(2, None);
            let p99 = report::quantile(&win.lat, 0.99);
            eprintln!(
                "bench: round {}: {}: {} writes, p99 {p99:.2} ms, {} copies",
                round + 1,
                kind.name(),
                win.lat.len(),
                win.copies.len()
            );
            out.retaken[i] += win.retaken;
            out.rows[i].windows.push(win.lat);
            out.rows[i].copies.extend(win.copies);
        }
    }
    out
}
