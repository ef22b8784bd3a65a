//! Clones over slow links, and a donor that must not hurt its master: the
//! MariaDB clone through a rate-limited link (a proxy on the bridge; this
//! kernel has no traffic shaping) at 1 Gbit/s and 250 Mbit/s, with each
//! `--clone-compression` and against the bare pipeline over the same link;
//! then the master as donor, its write latency idle, while it serves clones
//! as fast as it can, capped by `--clone-max-rate` at a quarter of its
//! disk's speed, and beside plain readers of its disk at the same rate.

use super::*;
use common::link::{SlowLink, mbit};
use report::{LatencyRow, quantile, stats};

/// One method over one link.
pub struct LinkRow {
    pub mbit: u64,
    pub method: &'static str,
    pub secs: Vec<f64>,
    /// What crossed the link (MB), where counted.
    pub wire_mb: Option<f64>,
}

/// How the master's sidecar serves, in one row of the donor table.
#[derive(Clone, Copy, PartialEq)]
pub enum Setting {
    /// No cap.
    Uncapped,
    /// `--clone-max-rate` a quarter of the disk's speed.
    QuarterDisk,
    /// The same, the master's sidecar (and so its backup) on the other CPU.
    QuarterDiskOwnCpu,
    /// `--clone-max-rate` a quarter of an uncapped clone's rate.
    QuarterClone,
    /// The same, the master's sidecar (and so its backup) on the other CPU.
    QuarterCloneOwnCpu,
    /// No clone: the master's datadir read at the lower cap's rate by a
    /// plain reader on the master's CPU, 128 KiB per read, as a capped
    /// donor's read-ahead reads.
    ReadSmall,
    /// The same, 10 MB per read, as `mariadb-backup` reads.
    ReadLarge,
}

impl Setting {
    const ALL: [Setting; 7] = [
        Setting::Uncapped,
        Setting::QuarterDisk,
        Setting::QuarterDiskOwnCpu,
        Setting::QuarterClone,
        Setting::QuarterCloneOwnCpu,
        Setting::ReadSmall,
        Setting::ReadLarge,
    ];

    /// The setting's key in `BENCH_DONOR_ROWS`.
    fn key(self) -> &'static str {
        match self {
            Setting::Uncapped => "uncapped",
            Setting::QuarterDisk => "quarter-disk",
            Setting::QuarterDiskOwnCpu => "quarter-disk-own-cpu",
            Setting::QuarterClone => "quarter-clone",
            Setting::QuarterCloneOwnCpu => "quarter-clone-own-cpu",
            Setting::ReadSmall => "read-small",
            Setting::ReadLarge => "read-large",
        }
    }

    /// Whether `BENCH_DONOR_ROWS` (a list of keys; all when unset) takes
    /// this setting. The uncapped clone's rate sets the lower cap: measured
    /// once, outside any window, when its row is left out.
    fn chosen(self) -> bool {
        std::env::var("BENCH_DONOR_ROWS")
            .map_or(true, |keys| keys.split(',').any(|k| k.trim() == self.key()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Setting::Uncapped => "serving clones, no cap",
            Setting::QuarterDisk => "capped at a quarter of the disk's speed",
            Setting::QuarterClone => "capped at a quarter of an uncapped clone's rate",
            Setting::QuarterDiskOwnCpu | Setting::QuarterCloneOwnCpu => {
                "the same, the master's sidecar and its backup on the other CPU"
            }
            Setting::ReadSmall => {
                "control: the datadir read at that rate, 128 KiB per read (as the read-ahead reads), no agent"
            }
            Setting::ReadLarge => {
                "control: the datadir read at that rate, 10 MB per read (as mariadb-backup reads), no agent"
            }
        }
    }

    /// Whether the master's sidecar, and the backup it runs, have the other
    /// CPU to themselves.
    fn own_cpu(self) -> bool {
        matches!(
            self,
            Setting::QuarterDiskOwnCpu | Setting::QuarterCloneOwnCpu
        )
    }

    /// The bytes per read of a control's plain reader.
    fn read_size(self) -> Option<usize> {
        match self {
            Setting::ReadSmall => Some(128 << 10),
            Setting::ReadLarge => Some(10 << 20),
            _ => None,
        }
    }
}

/// The master donor's write latency (ms), window by window.
#[derive(Default)]
pub struct CapResult {
    /// The disk's sequential read speed (MB/s), O_DIRECT.
    pub disk_mb_s: f64,
    /// An uncapped clone's rate from the master (datadir over wall time).
    pub clone_mb_s: f64,
    pub window_secs: u64,
    pub idle: Vec<Vec<f64>>,
    /// One per setting, in the order of [`Setting::ALL`].
    pub rows: Vec<LatencyRow>,
}

impl CapResult {
    fn row(&self, setting: Setting) -> &LatencyRow {
        &self.rows[setting as usize]
    }
}

/// The disk's sequential read speed under `dir` (MB/s): its largest file
/// read with O_DIRECT, past the page cache.
fn disk_mb_s(dir: &std::path::Path) -> f64 {
    let largest = walk(dir)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .unwrap();
    let bytes = std::fs::metadata(&largest).unwrap().len();
    let started = Instant::now();
    run(std::process::Command::new("dd").args([
        &format!("if={}", largest.display()),
        "of=/dev/null",
        "bs=1M",
        "iflag=direct",
        "status=none",
    ]));
    bytes as f64 / 1e6 / started.elapsed().as_secs_f64()
}

/// Reads every file under `dir` past the page cache (O_DIRECT, as
/// `mariadb-backup` reads), `size` bytes per read, no faster than `mb_s` on
/// average, over and over for `len`, on CPU 0 where the master's pod runs:
/// what reading the disk at a capped clone's rate costs the master's
/// writes, with no backup. Returns the bytes read.
pub fn paced_read(dir: &std::path::Path, size: usize, mb_s: f64, len: Duration) -> u64 {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if cpus() >= 2 {
        pin_self("0");
    }
    // O_DIRECT wants a buffer aligned to the disk's blocks.
    let mut buf = vec![0u8; size + 4096];
    let skew = buf.as_ptr().align_offset(4096);
    let buf = &mut buf[skew..skew + size];
    let files = walk(dir);
    let rate = (mb_s * 1e6) as u64;
    let started = Instant::now();
    let mut read = 0u64;
    while started.elapsed() < len {
        for path in &files {
            let Ok(mut f) = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
                .open(path)
            else {
                continue;
            };
            while let Ok(n @ 1..) = f.read(buf) {
                read += n as u64;
                // Paced as a capped donor paces its stream.
                if let Some(wait) = mysql_sts::net::wire::pace(read, rate, started.elapsed()) {
                    std::thread::sleep(wait);
                }
                if started.elapsed() >= len {
                    return read;
                }
            }
        }
    }
    read
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// What a clone record says crossed the network (MB).
pub fn wire_mb(c: &Cluster, n: u32) -> Option<f64> {
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(c.pod(n).datadir().join(".mysql-sts-clone.json")).ok()?,
    )
    .ok()?;
    record["wire_bytes"].as_u64().map(|b| b as f64 / 1e6)
}

/// Clones into pod 2 through a link of `rate` Mbit/s already in place, with
/// each `--clone-compression`, `runs` of each; `zstd` names that row.
pub fn compression_rows(
    c: &mut Cluster,
    rate: u64,
    runs: usize,
    zstd: &'static str,
) -> Vec<LinkRow> {
    let mut rows = Vec::new();
    for (method, compression) in [
        ("mysql-sts, no compression", "none"),
        (zstd, "zstd"),
        ("mysql-sts, auto", "auto"),
    ] {
        let mut row = LinkRow {
            mbit: rate,
            method,
            secs: Vec::new(),
            wire_mb: None,
        };
        for _ in 0..runs {
            let (secs, _) = clone_ours_with(c, 2, &["--clone-compression", compression]);
            row.secs.push(secs);
            row.wire_mb = wire_mb(c, 2);
            c.remove_pod(2);
        }
        eprintln!(
            "bench: {:?} {rate} Mbit/s, {method}: {:.2} s",
            c.engine,
            stats(&row.secs).0
        );
        rows.push(row);
    }
    rows
}

pub async fn slow_links(mb: u64, runs: usize) -> (f64, Vec<LinkRow>, CapResult) {
    let (mut c, data_mb) = donor_with_data(Engine::Mariadb, mb, Duration::from_secs(600)).await;
    let gateway = c.gateway();
    let donor = c.pod(1).ip.clone();
    let mut rows = Vec::new();
    for rate in [1000, 250] {
        // mysql-2's init reaches mysql-1 by name: the name leads to the link.
        let link = SlowLink::start(&gateway, &donor, &[8080], mbit(rate)).await;
        c.override_dns(1, Some(&gateway));
        rows.extend(compression_rows(&mut c, rate, runs, "mysql-sts, zstd"));
        c.override_dns(1, None);
        drop(link);
        let mut bare = LinkRow {
            mbit: rate,
            method: "bare pipeline: mariabackup \\| socat \\| mbstream, prepare",
            secs: Vec::new(),
            wire_mb: None,
        };
        for _ in 0..runs {
            c.create_pod(2);
            let link = SlowLink::start(&gateway, &c.pod(2).ip, &[9999], mbit(rate)).await;
            bare.secs.push(clone_bare_via(&mut c, Some(&gateway)));
            drop(link);
            c.remove_pod(2);
        }
        eprintln!("bench: {rate} Mbit/s, bare: {:.2} s", stats(&bare.secs).0);
        rows.push(bare);
    }
    let cap = capped_master_donor(&mut c, runs, data_mb).await;
    (data_mb, rows, cap)
}

/// [`capped_master_donor`] alone, on a cluster grown to `mb` MB.
pub async fn donor_alone(mb: u64, rounds: usize) -> CapResult {
    let (mut c, data_mb) = donor_with_data(Engine::Mariadb, mb, Duration::from_secs(600)).await;
    capped_master_donor(&mut c, rounds, data_mb).await
}

/// The master's write latency idle, while it serves clones to a new
/// mysql-2 (its data on a disk of its own) as fast as it can, and capped by
/// `--clone-max-rate` at a quarter of its disk's speed and at a quarter of
/// an uncapped clone's rate; and, as controls, while a plain reader reads
/// its datadir at that lower rate 128 KiB and 10 MB per read. Windows as in
/// the scale-out figures, taking turns, `rounds` of each; pinned as those
/// are.
async fn capped_master_donor(c: &mut Cluster, rounds: usize, data_mb: f64) -> CapResult {
    let min = window_len();
    let mut r = CapResult {
        disk_mb_s: disk_mb_s(&c.pod(0).datadir()),
        window_secs: min.as_secs(),
        rows: Setting::ALL.map(|s| LatencyRow::new(s.name())).into(),
        ..CapResult::default()
    };
    let two = cpus() >= 2;
    let writer = master_as_donor(c);
    let plain = ["--clone-compression", "none"];
    if !Setting::Uncapped.chosen() {
        restart_master_sidecar(c, None).await;
        r.clone_mb_s = data_mb / scaleout::clone_once(c, 2, &plain);
    }
    for _ in 0..rounds {
        r.idle.push(idle_window(&writer, min).await);
        for setting in Setting::ALL.into_iter().filter(|s| s.chosen()) {
            let rate = match setting {
                Setting::Uncapped => None,
                Setting::QuarterDisk | Setting::QuarterDiskOwnCpu => Some(r.disk_mb_s / 4.0),
                Setting::QuarterClone
                | Setting::QuarterCloneOwnCpu
                | Setting::ReadSmall
                | Setting::ReadLarge => Some(r.clone_mb_s / 4.0),
            };
            if let (Some(size), Some(mb_s)) = (setting.read_size(), rate) {
                let dir = c.pod(0).datadir();
                let from = Instant::now();
                let read = tokio::task::spawn_blocking(move || paced_read(&dir, size, mb_s, min))
                    .await
                    .unwrap();
                let lat = writer.window(from, Instant::now());
                eprintln!(
                    "bench: master donor, {}: {:.0} MB read, {} writes, p99 {:.2} ms",
                    setting.name(),
                    read as f64 / 1e6,
                    lat.len(),
                    quantile(&lat, 0.99)
                );
                r.rows[setting as usize].windows.push(lat);
                continue;
            }
            // The master's sidecar again, serving so.
            restart_master_sidecar(c, rate).await;
            if two {
                pin(
                    c.sidecar_pid(0).unwrap(),
                    if setting.own_cpu() { "1" } else { "0" },
                );
            }
            let win = scaleout::clones_window(c, &writer, 2, true, min, &plain);
            eprintln!(
                "bench: master donor, {}: {} writes, p99 {:.2} ms, {} clones",
                setting.name(),
                win.lat.len(),
                quantile(&win.lat, 0.99),
                win.copies.len()
            );
            if setting == Setting::Uncapped && r.clone_mb_s == 0.0 {
                r.clone_mb_s = data_mb / stats(&win.copies).0;
            }
            let row = &mut r.rows[setting as usize];
            row.windows.push(win.lat);
            row.copies.extend(win.copies);
        }
    }
    c.extra_env.retain(|(k, _)| k != "MYSQL_STS_CLONE_MAX_RATE");
    c.override_dns(1, None);
    writer.finish().await;
    r
}

/// Starts the master's sidecar again with `--clone-max-rate` at `rate`
/// MB/s (none: uncapped), once ready pinned as [`pin_all`] pins.
pub async fn restart_master_sidecar(c: &mut Cluster, rate: Option<f64>) {
    c.extra_env.retain(|(k, _)| k != "MYSQL_STS_CLONE_MAX_RATE");
    if let Some(mb_s) = rate {
        c.extra_env.push((
            "MYSQL_STS_CLONE_MAX_RATE".into(),
            format!("{}KiB", (mb_s * 1e6 / 1024.0) as u64),
        ));
    }
    c.kill_sidecar(0);
    c.start_sidecar(0);
    c.wait_ready(0, Duration::from_secs(60)).await;
    pin_all(c);
}

/// The master's pod and this bench's client on CPU 0, the other pods on
/// CPU 1 (where there are two).
pub fn pin_all(c: &Cluster) {
    if cpus() >= 2 {
        pin_pods(c, 1, "0", "1");
        pin_self("1");
    }
}

/// Pins the pods, starts the master's writer, and makes mysql-2's donor,
/// mysql-1, the master by name.
pub fn master_as_donor(c: &mut Cluster) -> Writer {
    pin_all(c);
    let writer = master_writer(c);
    let master = c.pod(0).ip.clone();
    c.override_dns(1, Some(&master));
    writer
}

/// The median time of the row at `rate` whose method begins with `method`.
pub fn median_secs(rows: &[LinkRow], rate: u64, method: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.mbit == rate && r.method.starts_with(method))
        .map(|r| stats(&r.secs).0)
}

/// The table of clones over links, a row per method and link.
pub fn link_table(rows: &[LinkRow]) -> String {
    let mut s = "| link | method | time: median | min | max | on the wire |\n\
                 | --- | --- | --- | --- | --- | --- |\n"
        .to_owned();
    for r in rows {
        let (med, min, max) = stats(&r.secs);
        let wire = r.wire_mb.map_or("-".to_owned(), |w| format!("{w:.0} MB"));
        s += &format!(
            "| {} Mbit/s | {} | {med:.2} s | {min:.2} s | {max:.2} s | {wire} |\n",
            r.mbit, r.method
        );
    }
    s
}

/// The section of the report.
pub fn report(mb: u64, data_mb: f64, runs: usize, rows: &[LinkRow]) -> String {
    let mut s = format!(
        "## Clones over slow links (MariaDB 10.11)\n\n\
         A new replica clones {data_mb:.0} MB ({mb} MB of generated rows) from mysql-1 through a \
         link held to a rate by a proxy on the bridge (this kernel has no traffic shaping); the \
         bare pipeline sends through the same proxy. Runs of each: {runs}. The generated rows repeat \
         one padding value, so they compress far better than most tables do: the on-the-wire \
         column shows how much.\n\n\
"
    );
    s += &link_table(rows);
    s += "\n";
    for rate in [1000, 250] {
        let med = |m: &str| median_secs(rows, rate, m);
        if let (Some(bare), Some(zstd), Some(auto)) =
            (med("bare"), med("mysql-sts, zstd"), med("mysql-sts, auto"))
        {
            s += &format!(
                "- {rate} Mbit/s: a zstd clone is **{:.2}×** as fast as the bare pipeline, `auto` {:.2}×{}.\n",
                bare / zstd,
                bare / auto,
                if rate == 250 { " (target ≥ 2×)" } else { "" }
            );
        }
    }
    s
}

/// The section on the capped master donor.
pub fn donor_report(cap: &CapResult) -> String {
    let runs = cap.idle.len();
    let idle99 = report::median_p99(&cap.idle);
    let ratio = |v: &[Vec<f64>]| report::median_p99(v) / idle99;
    let mut s = format!(
        "## A master donor capped by `--clone-max-rate` (MariaDB 10.11)\n\n\
         A client writes one row at a time to mysql-0 (10 ms apart) while mysql-2 clones from \
         mysql-0 over the bridge, its copy on a disk of its own; clones back to back in windows \
         of {secs} s, the rows taking turns, {runs} windows each; the master's pod and the \
         client on CPU 0, the rest on CPU 1. The master's disk reads {:.0} MB/s (its largest \
         file, O_DIRECT): on this virtual machine that is the host's cache, faster than an \
         uncapped clone, which reaches {:.0} MB/s (datadir over wall time) bounded by the CPU. \
         So there are two caps: a quarter of the disk's speed ({:.0} MB/s), and a quarter of \
         the uncapped clone's rate ({:.0} MB/s).\n\n",
        cap.disk_mb_s,
        cap.clone_mb_s,
        cap.disk_mb_s / 4.0,
        cap.clone_mb_s / 4.0,
        secs = cap.window_secs,
    );
    s += &report::latency_table(&cap.idle, &cap.rows).join("\n");
    let (disk, disk_own, clone, clone_own) = (
        cap.row(Setting::QuarterDisk),
        cap.row(Setting::QuarterDiskOwnCpu),
        cap.row(Setting::QuarterClone),
        cap.row(Setting::QuarterCloneOwnCpu),
    );
    let (small, large) = (cap.row(Setting::ReadSmall), cap.row(Setting::ReadLarge));
    let control = ratio(&small.windows);
    s += &format!(
        "\n\nAt a quarter of an uncapped clone's rate the master's p99 (the median window's) is \
         **{:.2}×** idle's, and the control that reads the same bytes at the same rate with no \
         agent (128 KiB per read) **{control:.2}×**: the capped clone costs **{:.2}×** what \
         reading its bytes costs (target ≤ 1.3×); a clone {:.1} s (median); **{:.2}×** idle's \
         with the master's sidecar, and so its backup, on the other CPU. At a quarter of the \
         disk's speed **{:.2}×** ({:.2}× on the other CPU), a clone {:.1} s; uncapped {:.2}×. \
         Read 10 MB at a time, as `mariadb-backup` reads, the control costs **{:.2}×**.\n\n\
         A commit's writes and flush queued behind a read wait for all of it on this machine's \
         disk, so a capped donor has the backup read through the page cache and reads ahead of \
         it, 128 KiB per `readahead(2)` request, the next 20 MB of the file it streams, holding \
         the stream until they are in: the disk sees the small control's reads, in the idle I/O \
         class, but for the first 10 MB of each file, which the backup reads itself. The backup \
         and the read-ahead run at nice 19: at the default weight, and with the short slice the \
         agent asks for (an early deadline to this scheduler), they were picked as soon as a \
         woken server thread. What is left: the CPU the copy takes on the master's core (see \
         \"Where a clone's CPU goes\": the sidecar's sends through the pods' bridge and the \
         backup's reads and checksums), and the backup's own commit stalls, one as it starts and \
         one in its last phase (`BACKUP STAGE BLOCK_COMMIT` until the redo log copier has caught \
         up), each one or two commits of several ms: clones back to back, one every few \
         seconds, make them a far larger share of a window's writes than one scale-out would \
         (`BENCH_SLOW_MS=4` prints each copy's slow writes and when they came).\n",
        ratio(&clone.windows),
        ratio(&clone.windows) / control,
        stats(&clone.copies).0,
        ratio(&clone_own.windows),
        ratio(&disk.windows),
        ratio(&disk_own.windows),
        stats(&disk.copies).0,
        ratio(&cap.row(Setting::Uncapped).windows),
        ratio(&large.windows),
    );
    s
}
