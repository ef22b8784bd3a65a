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
        let secs = copy(c);
        win.lat.extend(w.window(from, Instant::now()));
        win.copies.push(secs);
        empty_dir(&c.pod(n).datadir());
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
    copies_window(c, w, n, own, min, |c| clone_ours_with(c, n, args).0)
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
    };
    let master_ip = c.pod(0).ip.clone();
    for round in 0..rounds {
        let idle = idle_window(w, min).await;
        eprintln!(
            "bench: round {}: idle: {} writes, p99 {:.2} ms",
            round + 1,
            idle.len(),
            report::quantile(&idle, 0.99)
        );
        out.idle.push(idle);
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            c.override_dns(2, kind.donor_is_master().then_some(master_ip.as_str()));
            let win = if kind == Kind::Tar {
                let src = c.pod(2).datadir();
                copies_window(c, w, 3, true, min, |c| {
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
                clones_window(c, w, 3, kind.own_disk(), min, &[])
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
            out.rows[i].windows.push(win.lat);
            out.rows[i].copies.extend(win.copies);
        }
    }
    out
}
