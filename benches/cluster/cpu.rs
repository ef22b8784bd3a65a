//! Where a clone's CPU goes: the master as donor (its pod on CPU 0, the
//! recipient's on CPU 1), each way of moving its datadir recorded by `perf`
//! sampling every CPU at 1 kHz, the samples counted by CPU and process. The
//! bare pipeline (`mariadb-backup | socat` into `socat | mbstream`) moves
//! the same bytes with no agent; the control reads them at the capped rate
//! and sends them nowhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::*;

/// `perf record`'s sampling rate: one sample per ms a CPU runs (or idles).
const HZ: f64 = 1000.0;

/// One way of moving the master's data, summed over its runs.
pub struct CpuRow {
    pub method: String,
    /// Wall time of each run (s).
    pub secs: Vec<f64>,
    /// Data moved over all runs (GB).
    pub gb: f64,
    /// CPU seconds by (CPU, process).
    pub cpu: BTreeMap<(u32, &'static str), f64>,
}

impl CpuRow {
    fn new(method: &str) -> CpuRow {
        CpuRow {
            method: method.to_owned(),
            secs: Vec::new(),
            gb: 0.0,
            cpu: BTreeMap::new(),
        }
    }

    /// CPU seconds per GB that `process` took on `cpu`.
    pub fn per_gb(&self, cpu: u32, process: &'static str) -> f64 {
        self.cpu.get(&(cpu, process)).copied().unwrap_or(0.0) / self.gb
    }

    /// CPU seconds per GB on `cpu`, idle aside.
    pub fn busy_per_gb(&self, cpu: u32) -> f64 {
        self.cpu
            .iter()
            .filter(|((c, p), _)| *c == cpu && *p != IDLE)
            .map(|(_, s)| s)
            .sum::<f64>()
            / self.gb
    }
}

const IDLE: &str = "idle";
/// The processes a row names, in the order of the table's columns.
pub const DONOR: [&str; 6] = [
    "server",
    "mariadb-backup",
    "sidecar",
    "read-ahead",
    "socat",
    "other",
];
pub const RECIPIENT: [&str; 5] = ["init", "mbstream", "socat", "mariadb-backup", "other"];

/// Whose a sample is, by the process it interrupted.
fn process(comm: &str, pid: u32, sidecar: Option<u32>) -> &'static str {
    match comm {
        "swapper" => IDLE,
        "mariadbd" | "mysqld" => "server",
        "mariadb-backup" | "mariabackup" => "mariadb-backup",
        "mbstream" => "mbstream",
        "socat" => "socat",
        "clone-read-ahea" => "read-ahead",
        _ if Some(pid) == sidecar => "sidecar",
        _ if pid == std::process::id() => "reader",
        "tokio-runtime-w" | "mysql-sts" => "init",
        _ => "other",
    }
}

/// `perf record` of every CPU, until [`Recording::stop`].
struct Recording {
    child: Child,
    file: PathBuf,
}

impl Recording {
    fn start(file: &Path) -> Recording {
        let child = Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "1000", "-a", "-g", "-o"])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("perf (linux-perf) runs");
        // perf opens its events before it samples.
        std::thread::sleep(Duration::from_millis(500));
        Recording {
            child,
            file: file.to_owned(),
        }
    }

    /// Stops the recording and adds its samples to `row`.
    fn stop(mut self, row: &mut CpuRow, sidecar: Option<u32>) {
        // SAFETY: kill takes no pointer; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.child.wait().unwrap();
        let out = Command::new("perf")
            .args(["script", "-F", "comm,pid,cpu", "-i"])
            .arg(&self.file)
            .stderr(Stdio::null())
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "<comm> <pid> [<cpu>]"; a comm may hold spaces.
            let Some((head, cpu)) = line.trim_end().rsplit_once(" [") else {
                continue;
            };
            let Some((comm, pid)) = head.trim().rsplit_once(' ') else {
                continue;
            };
            let (Ok(pid), Ok(cpu)) = (pid.parse(), cpu.trim_end_matches(']').parse()) else {
                continue;
            };
            *row.cpu
                .entry((cpu, process(comm.trim(), pid, sidecar)))
                .or_default() += 1.0 / HZ;
        }
    }
}

/// The master's datadir into a new mysql-2 (on a tmpfs, as a disk of its
/// own), `runs` times each: mysql-sts uncapped, capped at a quarter of the
/// uncapped rate, the bare pipeline, and the control reader at the capped
/// rate. The perf files stay in `out` for a closer look
/// (`perf report -i <file> --sort sym -C 0`).
pub async fn donor_cpu(mb: u64, runs: usize, out: &Path) -> (f64, Vec<CpuRow>) {
    let (mut c, data_mb) = donor_with_data(Engine::Mariadb, mb, Duration::from_secs(600)).await;
    links::pin_all(&c);
    let master = c.pod(0).ip.clone();
    c.override_dns(1, Some(&master));
    std::fs::create_dir_all(out).unwrap();
    let gb = data_mb / 1e3;
    let mut uncapped = CpuRow::new("mysql-sts, uncapped");
    let mut capped = CpuRow::new("mysql-sts, capped");
    let mut bare = CpuRow::new("bare pipeline: mariadb-backup into socat, socat into mbstream");
    let mut control = CpuRow::new("control: the datadir read at the capped rate, 128 KiB per read");
    // Uncapped first: the cap is a quarter of its rate.
    clone_runs(&mut c, &mut uncapped, None, runs, gb, out).await;
    let rate = data_mb / stats(&uncapped.secs).0 / 4.0;
    capped.method = format!("mysql-sts, capped at {rate:.0} MB/s");
    clone_runs(&mut c, &mut capped, Some(rate), runs, gb, out).await;
    c.extra_env.retain(|(k, _)| k != "MYSQL_STS_CLONE_MAX_RATE");
    for i in 0..runs {
        c.create_pod(2);
        own_disk(&c, 2, true);
        let dir = c.pod(2).datadir();
        let rec = Recording::start(&out.join(format!("bare-{i}.data")));
        // The sending shell moves itself to the master's CPU first (this
        // thread, which starts both ends, is on the other).
        let secs = pipe_via(
            &c,
            0,
            2,
            None,
            &format!("mbstream -x -C {}", dir.display()),
            &format!(
                "taskset -pc 0 $$ >/dev/null; rm -rf /tmp/bench-bk; \
                 mariabackup --backup --stream=xbstream --target-dir=/tmp/bench-bk \
                 --host=127.0.0.1 --port=3306 --user=root --password={ROOT_PASSWORD} 2>/dev/null"
            ),
        );
        rec.stop(&mut bare, None);
        eprintln!("bench: cpu: bare pipeline: {secs:.2} s");
        bare.secs.push(secs);
        bare.gb += gb;
        own_disk(&c, 2, false);
        c.remove_pod(2);
    }
    let datadir = c.pod(0).datadir();
    for i in 0..runs {
        let rec = Recording::start(&out.join(format!("control-{i}.data")));
        let len = Duration::from_secs_f64(data_mb / rate);
        let dir = datadir.clone();
        let started = Instant::now();
        let read =
            tokio::task::spawn_blocking(move || links::paced_read(&dir, 128 << 10, rate, len))
                .await
                .unwrap();
        rec.stop(&mut control, None);
        control.secs.push(started.elapsed().as_secs_f64());
        control.gb += read as f64 / 1e9;
    }
    pin_self("0-1");
    c.override_dns(1, None);
    (rate, vec![uncapped, capped, bare, control])
}

/// `runs` clones into a new mysql-2 from the master's sidecar, started
/// anew with `--clone-max-rate` at `rate` MB/s (or none), each recorded.
async fn clone_runs(
    c: &mut Cluster,
    row: &mut CpuRow,
    rate: Option<f64>,
    runs: usize,
    gb: f64,
    out: &Path,
) {
    links::restart_master_sidecar(c, rate).await;
    let sidecar = c.sidecar_pid(0);
    for i in 0..runs {
        c.create_pod(2);
        own_disk(c, 2, true);
        let rec = Recording::start(&out.join(format!("{}-{i}.data", slug(&row.method))));
        let (secs, _) = clone_ours_with(c, 2, &["--clone-compression", "none"]);
        rec.stop(row, sidecar);
        eprintln!("bench: cpu: {}: {secs:.2} s", row.method);
        row.secs.push(secs);
        row.gb += gb;
        own_disk(c, 2, false);
        c.remove_pod(2);
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The section of the report.
pub fn report(mb: u64, runs: usize, rate: f64, rows: &[CpuRow]) -> String {
    let mut s = format!(
        "## Where a clone's CPU goes (MariaDB 10.11)\n\n\
         The master's datadir ({mb} MB of generated rows) moves into a new mysql-2, {runs} times \
         each way: the master's pod on CPU 0, mysql-2's on CPU 1, no writes. `perf record -e \
         cpu-clock -F 1000 -a` samples both CPUs every millisecond; a sample counts for the \
         process it interrupted (the kernel's work for a process, its system calls and the \
         network's soft interrupts it meets, among it). The capped row is held to {rate:.0} MB/s, \
         a quarter of the uncapped clone's rate; the control reads the same datadir at that rate \
         (O_DIRECT, 128 KiB per read) and sends it nowhere. CPU seconds per GB of datadir:\n\n\
         | method | wall | CPU 0 (donor) busy | {} | CPU 1 (recipient) busy | {} |\n\
         | --- | --- | --- | {} | --- | {} |\n",
        DONOR.join(" | "),
        RECIPIENT.map(|p| format!("{p} (1)")).join(" | "),
        DONOR.map(|_| "---").join(" | "),
        RECIPIENT.map(|_| "---").join(" | "),
    );
    for r in rows {
        let cells = |cpu: u32, procs: &[&'static str]| {
            procs
                .iter()
                .map(|p| match r.per_gb(cpu, p) {
                    v if v < 0.005 => "-".to_owned(),
                    v => format!("{v:.2}"),
                })
                .collect::<Vec<_>>()
                .join(" | ")
        };
        s += &format!(
            "| {} | {:.2} s | **{:.2}** | {} | **{:.2}** | {} |\n",
            r.method,
            stats(&r.secs).0,
            r.busy_per_gb(0),
            cells(0, &DONOR),
            r.busy_per_gb(1),
            cells(1, &RECIPIENT),
        );
    }
    if let Some(control) = rows.iter().find(|r| r.method.starts_with("control")) {
        s += &format!(
            "\nThe control reader shows as `reader` on CPU 0: {:.2} CPU-s per GB.\n",
            control.per_gb(0, "reader")
        );
    }
    s
}
