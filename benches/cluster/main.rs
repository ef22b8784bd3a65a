//! Benchmarks on real clusters of network-namespace pods, written as
//! Markdown and an SVG plot (rendered in `report.rs`) by `scripts/bench`:
//! - MariaDB, at each data size: clone time of mysql-sts against the bare tool
//!   pipeline it replaces, and a new replica's time to ready under writes; at
//!   the main size also the physical ceiling (`tar`), the master's write
//!   latency while a replica clones from its N-1 or from mysql-0 (in
//!   `scaleout.rs`), the agent's footprint, the cost of a readiness probe
//!   and the recovery after a master restart.
//! - MySQL: mysql-sts against a hand-issued `CLONE INSTANCE`; over slow links
//!   and from a capped master donor, on data that compresses as tables do
//!   (`mysql_links.rs`).
//!
//! Settings (environment): `BENCH_SIZES` MB list (default `256,1024,2048`),
//! `BENCH_MB` the main size (default 1024, one of the sizes), `BENCH_RUNS`
//! runs per figure (default 3), `BENCH_MYSQL_MB` (default the main size; 0
//! skips MySQL), `BENCH_LINK_MB` (the slow links and the capped donor;
//! default the main size, 0 skips them), `BENCH_WINDOW_SECS` (each latency
//! window, default 45), `BENCH_BACKUP_MB` (backups against clones, in
//! `backups.rs`; default the main size, 0 skips them), `BENCH_ONLY`
//! (`links`, `mysql-links`, `donor`, `donor-cpu`, `scale-out` or `backup`: that
//! section alone; with `donor`, `BENCH_DONOR_ROWS` picks its rows by key),
//! `BENCH_SLOW_MS` (each copy in a latency window prints the writes slower
//! than that, and when they came),
//! `BENCH_OUT` the Markdown file, `BENCH_SVG` the plot.

mod backups;
#[path = "../../tests/common/mod.rs"]
mod common;
mod cpu;
mod links;
mod mysql_links;
mod report;
mod scaleout;

use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::Queryable;
use mysql_sts::engine::replication::{IoState, ReplicaStatus};
use report::{MainResult, MysqlResult, SizeResult, stats};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `script` in pod `n` with `sh -c`; returns its wall time and stdout.
fn timed_sh(c: &Cluster, n: u32, script: &str) -> (f64, String) {
    let started = Instant::now();
    let out = run(&mut c.pod_command(n, &["sh".into(), "-ec".into(), script.into()]));
    (started.elapsed().as_secs_f64(), out)
}

/// Creates pod 2, pipes `send` (run in pod 1) into `receive` (run in pod 2)
/// through socat over the pods' network; returns the wall time of the copy.
fn socket_copy(c: &mut Cluster, via: Option<&str>, receive: &str, send: &str) -> f64 {
    c.create_pod(2);
    pipe_via(c, 1, 2, via, receive, send)
}

/// Pipes `send` (run in pod `from`) into `receive` (run in pod `to`) through
/// socat over the pods' network, sent to `via` (a proxy) when given rather
/// than to pod `to`; returns the wall time of the copy.
fn pipe_via(c: &Cluster, from: u32, to: u32, via: Option<&str>, receive: &str, send: &str) -> f64 {
    let ip = via.map_or_else(|| c.pod(to).ip.clone(), str::to_owned);
    let listen = format!("socat -u TCP-LISTEN:9999,reuseaddr - | {receive}");
    let mut rx = c
        .pod_command(to, &["sh".into(), "-ec".into(), listen])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    timed_sh(c, from, &format!("{send} | socat -u - TCP:{ip}:9999"));
    assert!(rx.wait().unwrap().success());
    started.elapsed().as_secs_f64()
}

/// CPU seconds (user + system) that `script` run `times` times costs, per run.
fn cpu_per_run(c: &Cluster, n: u32, script: &str, times: u32) -> f64 {
    let looped = format!(
        "i=0; while [ $i -lt {times} ]; do {script} >/dev/null 2>&1 || true; i=$((i+1)); done; cat /proc/$$/stat"
    );
    let (_, stat) = timed_sh(c, n, &looped);
    // The shell's children: cutime and cstime.
    stat_secs(&stat, 16, 17) / times as f64
}

/// The CPU seconds (user + system, every thread) process `pid` has used.
fn proc_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // utime and stime.
    stat_secs(&stat, 14, 15)
}

/// The sum of two clock-tick fields of a `/proc/<pid>/stat` line, in
/// seconds; fields numbered as in proc(5) (state is 3).
fn stat_secs(stat: &str, a: usize, b: usize) -> f64 {
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let tick = |n: usize| fields[n - 3].parse::<f64>().unwrap();
    (tick(a) + tick(b)) / 100.0
}

/// The CPU seconds pod `n`'s sidecar spends per `GET /readyz`, sent `times`
/// as the kubelet's httpGet probe sends them: each on a new connection,
/// closed after the answer.
fn sidecar_cpu_per_readyz(c: &Cluster, n: u32, times: u32) -> f64 {
    use std::io::{Read, Write};
    let pid = c.sidecar_pid(n).unwrap();
    let addr = format!("{}:8080", c.pod(n).ip);
    let request = format!(
        "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.31\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    let before = proc_cpu_secs(pid);
    for _ in 0..times {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    (proc_cpu_secs(pid) - before) / times as f64
}

/// A `/proc/<pid>/status` figure in kB (0 once the process is gone).
fn proc_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Pins every thread of `pid` (and what it starts later) to `cpus`.
fn pin(pid: u32, cpus: &str) {
    taskset(&["-a", "-cp", cpus, &pid.to_string()]);
}

/// This machine's CPUs online: all of them, not only those the calling
/// thread may run on (the bench pins its own thread, and a count taken
/// after that would see one and pin nothing more).
fn cpus() -> usize {
    // SAFETY: sysconf takes no pointer.
    match unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) } {
        n if n > 0 => n as usize,
        _ => 1,
    }
}

/// Pins the servers and sidecars of pods 0 to `last`: the master's to
/// `master`, the others' to `others`.
fn pin_pods(c: &Cluster, last: u32, master: &str, others: &str) {
    for n in 0..=last {
        let cpus = if n == 0 { master } else { others };
        pin(c.server_pid(n).unwrap(), cpus);
        pin(c.sidecar_pid(n).unwrap(), cpus);
    }
}

/// Grows `bench.filler` to `mb` thousand rows of ~1 KB on the master.
async fn grow(c: &Cluster, mb: u64) {
    let started = Instant::now();
    let mut m = c.root(0).await;
    m.query_drop("CREATE DATABASE IF NOT EXISTS bench")
        .await
        .unwrap();
    m.query_drop("CREATE TABLE IF NOT EXISTS bench.filler (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(1000)) ENGINE=InnoDB")
        .await
        .unwrap();
    m.query_drop(
        "CREATE TABLE IF NOT EXISTS bench.lat (id BIGINT PRIMARY KEY, v VARCHAR(16)) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    fill(
        &mut m,
        mb * 1000,
        "INSERT INTO bench.filler (pad) VALUES (REPEAT('x', 1000))",
        |add| format!("INSERT INTO bench.filler (pad) SELECT pad FROM bench.filler LIMIT {add}"),
    )
    .await;
    m.disconnect().await.unwrap();
    eprintln!(
        "bench: data grown to {mb} MB in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// Fills `bench.filler` to `target` rows: `first` when it is empty, then
/// `copy(add)`, which adds `add` rows from those there, doubling it.
async fn fill(m: &mut mysql_async::Conn, target: u64, first: &str, copy: impl Fn(u64) -> String) {
    loop {
        let rows: u64 = scalar(m, "SELECT COUNT(*) FROM bench.filler")
            .await
            .unwrap()
            .parse()
            .unwrap();
        if rows >= target {
            return;
        }
        let sql = match rows {
            0 => first.to_owned(),
            _ => copy(rows.min(target - rows)),
        };
        m.query_drop(sql).await.unwrap();
    }
}

/// Waits until pod `n` has applied every row of the master's filler table.
async fn caught_up(c: &Cluster, n: u32) {
    let sql = "SELECT COALESCE(MAX(id), 0) FROM bench.filler";
    let mut m = c.root(0).await;
    let want = scalar(&mut m, sql).await;
    let mut r = c.root(n).await;
    let started = Instant::now();
    while scalar(&mut r, sql).await != want {
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "mysql-{n} lags"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Drops pod `n`'s binary logs, so that its datadir's size is its data's:
/// the denominator of every throughput figure.
async fn purge_binlogs(c: &Cluster, n: u32) {
    let mut conn = c.root(n).await;
    conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
    conn.query_drop("PURGE BINARY LOGS BEFORE NOW() + INTERVAL 1 SECOND")
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
}

/// One clone into a new pod `n` by `mysql-sts init`: its wall time and the
/// init process's peak RSS (kB), sampled every 20 ms. The pod stays.
fn clone_ours(c: &mut Cluster, n: u32) -> (f64, u64) {
    clone_ours_with(c, n, &[])
}

/// [`clone_ours`] with more flags for init.
fn clone_ours_with(c: &mut Cluster, n: u32, args: &[&str]) -> (f64, u64) {
    c.create_pod(n);
    let started = Instant::now();
    let mut child = c.spawn_init(n, args);
    let mut peak = 0;
    let status = loop {
        peak = peak.max(proc_kb(child.id(), "VmHWM:"));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let secs = started.elapsed().as_secs_f64();
    assert!(
        status.success(),
        "init of mysql-{n}: {}",
        tail(&c.pod(n).log("init"))
    );
    (secs, peak)
}

/// The tutorial's pipeline into a new pod 2: mariabackup | socat | mbstream,
/// then prepare. Returns its wall time.
fn clone_bare(c: &mut Cluster) -> f64 {
    clone_bare_via(c, None)
}

/// [`clone_bare`], its stream sent to `via` (a proxy) rather than to mysql-2.
fn clone_bare_via(c: &mut Cluster, via: Option<&str>) -> f64 {
    let dir = c.pod(1).dir.parent().unwrap().join("mysql-2/data");
    let copy = socket_copy(
        c,
        via,
        &format!("mbstream -x -C {}", dir.display()),
        &format!(
            "rm -rf /tmp/bench-bk; mariabackup --backup --stream=xbstream --target-dir=/tmp/bench-bk \
             --host=127.0.0.1 --port=3306 --user=root --password={ROOT_PASSWORD} 2>/dev/null"
        ),
    );
    let (prepare, _) = timed_sh(
        c,
        2,
        &format!(
            "mariabackup --prepare --target-dir={} 2>/dev/null",
            dir.display()
        ),
    );
    eprintln!("bench: bare pipeline: copy {copy:.2} s, prepare {prepare:.2} s");
    copy + prepare
}

/// Starts pod `n` as the kubelet would while the writer runs; returns the
/// seconds from the start of init to `/readyz` answering 200.
async fn time_to_ready(c: &mut Cluster, n: u32) -> f64 {
    let started = Instant::now();
    c.start_pod(n).await;
    c.wait_ready(n, Duration::from_secs(1800)).await;
    started.elapsed().as_secs_f64()
}

/// Whether pod `n`'s server replicates: both threads running, as the
/// sidecar reads them.
async fn replicating(c: &Cluster, n: u32) -> bool {
    let Ok(Ok(mut conn)) = tokio::time::timeout(
        Duration::from_secs(1),
        mysql_async::Conn::new(tcp_opts(&c.pod(n).ip, "root", ROOT_PASSWORD)),
    )
    .await
    else {
        return false;
    };
    let flavor = c.engine.flavor();
    let rows = mysql_sts::net::sql::rows(&mut conn, flavor.replica_status_query())
        .await
        .unwrap();
    let _ = conn.disconnect().await;
    rows.first()
        .map(ReplicaStatus::from_row)
        .is_some_and(|r| r.io == Some(IoState::Yes) && r.sql_running)
}

/// SIGKILLs the master's server, waits until the replicas notice, starts it
/// again; returns the seconds from it accepting connections to every
/// replica replicating.
async fn recovery(c: &mut Cluster, replicas: &[u32]) -> f64 {
    c.kill_server(0);
    let started = Instant::now();
    for &n in replicas {
        while replicating(c, n).await && started.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    c.start_server(0);
    let back = Instant::now();
    for &n in replicas {
        while !replicating(c, n).await {
            assert!(
                back.elapsed() < Duration::from_secs(120),
                "mysql-{n} does not replicate"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    back.elapsed().as_secs_f64()
}

/// Mounts (or unmounts) a tmpfs on pod `n`'s datadir: a disk of its own,
/// as on another node, where this machine has one.
fn own_disk(c: &Cluster, n: u32, mount: bool) {
    let data = c.pod(n).datadir();
    let mut cmd = std::process::Command::new(if mount { "mount" } else { "umount" });
    if mount {
        cmd.args(["-t", "tmpfs", "tmpfs"]);
    }
    run(cmd.arg(&data));
}

/// How long one 4 KiB write and its `fdatasync` take in `dir` (ms): what a
/// commit's flush costs on that disk.
fn sync_ms(dir: &std::path::Path) -> f64 {
    use std::io::Write as _;
    let path = dir.join("bench-sync-probe");
    let mut f = std::fs::File::create(&path).unwrap();
    let started = Instant::now();
    f.write_all(&[7u8; 4096]).unwrap();
    f.sync_data().unwrap();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let _ = std::fs::remove_file(&path);
    ms
}

/// A flush at rest on the disk under `dir` (ms): the fastest of 30, taken
/// once, before the bench writes anything.
fn disk_rest_ms(dir: &std::path::Path) -> f64 {
    static REST: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *REST.get_or_init(|| {
        std::fs::create_dir_all(dir).unwrap();
        (0..30)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(20));
                sync_ms(dir)
            })
            .fold(f64::INFINITY, f64::min)
    })
}

/// Waits until the disk under `dir` flushes about as fast as at rest again:
/// ten flushes in a row within 3× (or 2 ms of) [`disk_rest_ms`], for at
/// most five minutes. After a window that wrote gigabytes (or the data
/// grown for the bench), this virtual machine's disk takes hundreds of ms
/// per flush until its host has written them back, and a window started
/// then would measure that rather than its own copy. Returns the wait.
pub fn settle_disk(dir: &std::path::Path) -> Duration {
    let rest = disk_rest_ms(dir);
    let limit = (3.0 * rest).max(rest + 2.0);
    let started = Instant::now();
    let mut calm = 0;
    while calm < 10 && started.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(100));
        calm = if sync_ms(dir) <= limit { calm + 1 } else { 0 };
    }
    started.elapsed()
}

/// How long each latency window lasts (`BENCH_WINDOW_SECS`, default 45):
/// copies run back to back until they have taken that long together.
fn window_len() -> Duration {
    Duration::from_secs(env_num("BENCH_WINDOW_SECS", 45).max(1))
}

/// A client writing one row at a time to mysql-0's `bench.lat`, 10 ms
/// apart, on CPU 0: whose latencies the figures read.
fn master_writer(c: &Cluster) -> Writer {
    Writer::start(
        c.pod(0).ip.clone(),
        "bench.lat",
        Duration::from_millis(10),
        Some(0),
    )
}

/// The writer's latencies (ms) over `len` of nothing else, after 2 s to
/// settle.
async fn idle_window(w: &Writer, len: Duration) -> Vec<f64> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from = Instant::now();
    tokio::time::sleep(len).await;
    w.window(from, Instant::now())
}

/// The price of semi-synchronous replication: the master's write latency,
/// idle for `windows` windows of `len`, on a three-pod cluster started with
/// `--semi-sync` (each commit waits for a replica's acknowledgement), pinned
/// as the idle windows of the main cluster are.
async fn semi_sync_latency(windows: usize, len: Duration) -> Vec<f64> {
    let mut c = Cluster::new(Engine::Mariadb);
    c.extra_env
        .push(("MYSQL_STS_SEMI_SYNC".into(), "true".into()));
    for n in 0..3 {
        c.start_pod(n).await;
        c.wait_ready(n, Duration::from_secs(300)).await;
    }
    let mut m = c.root(0).await;
    for sql in [
        "CREATE DATABASE IF NOT EXISTS bench",
        "CREATE TABLE IF NOT EXISTS bench.lat (id BIGINT PRIMARY KEY, v VARCHAR(16)) ENGINE=InnoDB",
    ] {
        m.query_drop(sql).await.unwrap();
    }
    m.disconnect().await.unwrap();
    if cpus() >= 2 {
        pin_pods(&c, 2, "0", "1");
    }
    let writer = master_writer(&c);
    let mut v = Vec::new();
    for _ in 0..windows {
        v.extend(idle_window(&writer, len).await);
    }
    writer.finish().await;
    v
}

async fn mariadb(sizes: &[u64], main: u64, runs: usize) -> (Vec<SizeResult>, MainResult) {
    let mut c = Cluster::new(Engine::Mariadb);
    c.start_pod(0).await;
    c.wait_ready(0, Duration::from_secs(120)).await;
    grow(&c, sizes[0]).await;
    c.start_pod(1).await;
    c.wait_ready(1, Duration::from_secs(600)).await;
    let writer = master_writer(&c);
    let mut results = Vec::new();
    let mut m = MainResult::default();
    for &size in sizes {
        grow(&c, size).await;
        caught_up(&c, 1).await;
        purge_binlogs(&c, 1).await;
        let data_mb = mysql_sts::progress::dir_size(&c.pod(1).datadir()) as f64 / 1e6;
        let mut r = SizeResult {
            mb: size,
            data_mb,
            ours: Vec::new(),
            bare: Vec::new(),
            ready: Vec::new(),
        };
        let sidecar = c.sidecar_pid(1).unwrap();
        for _ in 0..runs {
            let (secs, peak) = clone_ours(&mut c, 2);
            r.ours.push(secs);
            m.init_peak_kb = m.init_peak_kb.max(peak);
            c.remove_pod(2);
        }
        if size == main {
            m.sidecar_serving_kb = proc_kb(sidecar, "VmHWM:");
        }
        for _ in 0..runs {
            r.bare.push(clone_bare(&mut c));
            c.remove_pod(2);
        }
        for _ in 0..runs {
            r.ready.push(time_to_ready(&mut c, 2).await);
            c.remove_pod(2);
        }
        eprintln!(
            "bench: {size} MB: mysql-sts {:.2} s, bare {:.2} s, ready {:.2} s",
            stats(&r.ours).0,
            stats(&r.bare).0,
            stats(&r.ready).0
        );
        if size == main {
            main_size_figures(&mut c, &writer, runs, &mut m).await;
        }
        results.push(r);
    }
    eprintln!(
        "bench: the writer made {} writes",
        writer.finish().await.len()
    );
    (results, m)
}

async fn main_size_figures(c: &mut Cluster, writer: &Writer, runs: usize, m: &mut MainResult) {
    // The master's write latency while data moves (scaleout.rs). mysql-2
    // keeps its data on a tmpfs, as on its own node's disk.
    m.scale_out = scale_out_pinned(c, writer, runs).await;

    // Recovery with two replicas.
    for _ in 0..runs {
        m.recovery.push(recovery(c, &[1, 2]).await);
        c.wait_ready(0, Duration::from_secs(120)).await;
    }
    c.stop_pod(2);
    own_disk(c, 2, false);
    c.remove_pod(2);

    // The ceiling: tar of mysql-1's datadir, its server stopped, over a socket.
    c.stop_server(1);
    for _ in 0..runs {
        let dir = c.pod(1).dir.parent().unwrap().join("mysql-2/data");
        let src = c.pod(1).dir.join("data");
        m.ceiling.push(socket_copy(
            c,
            None,
            &format!("tar -C {} -xf -", dir.display()),
            &format!("tar -C {} -cf - .", src.display()),
        ));
        c.remove_pod(2);
    }
    c.start_server(1);
    c.wait_ready(1, Duration::from_secs(120)).await;

    // Footprint and probe cost.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sidecar = c.sidecar_pid(1).unwrap();
    m.sidecar_idle_kb = proc_kb(sidecar, "VmRSS:");
    m.binary_bytes = std::fs::metadata(agent_binary()).map_or(0, |m| m.len());
    m.image_bytes = agent_image_bytes();
    m.sidecar_idle_anon_kb = proc_kb(sidecar, "RssAnon:");
    let agent = agent_binary().display().to_string();
    m.probe_ours = cpu_per_run(c, 1, &format!("{agent} probe ready"), 50);
    m.probe_http = sidecar_cpu_per_readyz(c, 1, 2000);
    m.probe_sql = cpu_per_run(
        c,
        1,
        &format!("mariadb --no-defaults -uroot -p{ROOT_PASSWORD} -h127.0.0.1 -e 'SELECT 1'"),
        50,
    );
}

/// Starts mysql-2 (its data on a tmpfs, as on its own node's disk), pins
/// the master's pod to CPU 0 and the rest to CPU 1, measures the scale-out
/// figures, and lets every pod use every CPU again. mysql-2 stays.
async fn scale_out_pinned(c: &mut Cluster, writer: &Writer, runs: usize) -> report::ScaleOut {
    c.create_pod(2);
    own_disk(c, 2, true);
    c.start_pod(2).await;
    c.wait_ready(2, Duration::from_secs(1800)).await;
    caught_up(c, 2).await;
    let all = cpus();
    if all >= 2 {
        pin_pods(c, 2, "0", "1");
        pin_self("1");
    }
    let so = scaleout::scale_out(c, writer, runs, window_len()).await;
    if all >= 2 {
        let every = format!("0-{}", all - 1);
        pin_pods(c, 2, &every, &every);
        pin_self(&every);
    }
    so
}

/// The scale-out figures alone, on a cluster grown to `mb` MB.
async fn scale_out_alone(mb: u64, runs: usize) -> report::ScaleOut {
    let (mut c, _) = donor_with_data(Engine::Mariadb, mb, Duration::from_secs(600)).await;
    let writer = master_writer(&c);
    let so = scale_out_pinned(&mut c, &writer, runs).await;
    writer.finish().await;
    c.stop_pod(2);
    own_disk(&c, 2, false);
    so
}

/// A cluster whose mysql-0 holds `mb` MB of generated rows and whose mysql-1
/// (ready within `within`) has applied them, its binary logs purged: the
/// donor of the clones measured. Returns it and mysql-1's datadir size (MB).
async fn donor_with_data(engine: Engine, mb: u64, within: Duration) -> (Cluster, f64) {
    let mut c = Cluster::new(engine);
    c.start_pod(0).await;
    c.wait_ready(0, Duration::from_secs(120)).await;
    grow(&c, mb).await;
    c.start_pod(1).await;
    c.wait_ready(1, within).await;
    caught_up(&c, 1).await;
    purge_binlogs(&c, 1).await;
    let data_mb = mysql_sts::progress::dir_size(&c.pod(1).datadir()) as f64 / 1e6;
    (c, data_mb)
}

/// MySQL: mysql-sts init of a new replica against a hand-issued
/// `CLONE INSTANCE` into a scratch server, both from mysql-1.
async fn mysql(size: u64, runs: usize) -> MysqlResult {
    let (mut c, data_mb) = donor_with_data(Engine::Mysql, size, Duration::from_secs(1200)).await;
    let (mut ours, mut copy, mut hand) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (secs, _) = clone_ours(&mut c, 2);
        ours.push(secs);
        copy.push(copy_secs(
            &std::fs::read_to_string(c.pod(2).log("init")).unwrap(),
        ));
        c.remove_pod(2);
    }
    let donor = c.pod(1).ip.clone();
    for _ in 0..runs {
        hand.push(mysql_links::clone_by_hand(&mut c, &donor));
    }
    MysqlResult {
        data_mb,
        ours,
        copy,
        hand,
    }
}

/// The CLONE INSTANCE statement's time in a MySQL clone, from the init log's
/// last "copy received … clone_secs=" line.
fn copy_secs(log: &str) -> f64 {
    let line = log
        .lines()
        .rfind(|l| l.contains("copy received"))
        .expect("no 'copy received' line in the init log");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("clone_secs="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no clone_secs= in {line:?}"))
}

/// A plot of clone throughput and time to ready against data size, as SVG.
/// The size of the agent image, when it is built.
fn agent_image_bytes() -> Option<f64> {
    std::process::Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{.Size}}",
            "mysql-sts/agent:latest",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
}

/// [`cpu::donor_cpu`]'s section; its perf files go to `target/bench/perf`.
fn cpu_section(rt: &tokio::runtime::Runtime, mb: u64, runs: usize) -> String {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/perf");
    let (rate, rows) = rt.block_on(cpu::donor_cpu(mb, runs, &out));
    cpu::report(mb, runs, rate, &rows)
}

fn main() {
    // cargo bench passes --bench; nothing else to parse.
    // The disk at rest, before the bench writes anything to it.
    let rest = disk_rest_ms(std::path::Path::new("/var/tmp/mysql-sts-bench"));
    eprintln!("bench: a 4 KiB flush at rest takes {rest:.2} ms");
    let main_mb = env_num("BENCH_MB", 1024);
    let mut sizes: Vec<u64> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "256,1024,2048".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    if !sizes.contains(&main_mb) {
        sizes.push(main_mb);
    }
    sizes.sort_unstable();
    let runs = env_num("BENCH_RUNS", 3).max(1) as usize;
    let mysql_mb = env_num("BENCH_MYSQL_MB", main_mb);
    let link_mb = env_num("BENCH_LINK_MB", main_mb);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // BENCH_ONLY=scale-out: the master's latency while data moves, alone.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("scale-out") {
        let so = rt.block_on(scale_out_alone(main_mb, runs));
        println!(
            "{}",
            report::scale_out_section(&so, main_mb, runs).join("\n")
        );
        return;
    }
    // BENCH_ONLY=donor: the capped master donor alone.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("donor") {
        let cap = rt.block_on(links::donor_alone(link_mb, runs));
        if std::env::var_os("BENCH_DONOR_ROWS").is_some() {
            // Some rows only: their table.
            println!("{}", report::latency_table(&cap.idle, &cap.rows).join("\n"));
        } else {
            let md = links::donor_report(&cap);
            println!("{md}");
            if let Ok(path) = std::env::var("BENCH_OUT") {
                std::fs::write(path, &md).unwrap();
            }
        }
        return;
    }
    // BENCH_ONLY=donor-cpu: where a clone's CPU goes, alone.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("donor-cpu") {
        let md = cpu_section(&rt, link_mb, runs);
        println!("{md}");
        if let Ok(path) = std::env::var("BENCH_OUT") {
            std::fs::write(path, &md).unwrap();
        }
        return;
    }
    // BENCH_ONLY=backup: backups against clones, alone.
    let backup_mb = env_num("BENCH_BACKUP_MB", main_mb);
    if std::env::var("BENCH_ONLY").as_deref() == Ok("backup") {
        let md = rt.block_on(backups::backups(backup_mb, runs));
        println!("{md}");
        if let Ok(path) = std::env::var("BENCH_OUT") {
            std::fs::write(path, &md).unwrap();
        }
        return;
    }
    // BENCH_ONLY=mysql-links: MySQL's slow-link and capped-donor figures alone.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("mysql-links") {
        let md = rt.block_on(mysql_links::mysql_links(link_mb, runs));
        println!("{md}");
        if let Ok(path) = std::env::var("BENCH_OUT") {
            std::fs::write(path, &md).unwrap();
        }
        return;
    }
    // BENCH_ONLY=links: the slow-link figures alone.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("links") {
        let (data_mb, rows, cap) = rt.block_on(links::slow_links(link_mb, runs));
        let md = links::report(link_mb, data_mb, runs, &rows) + "\n" + &links::donor_report(&cap);
        println!("{md}");
        if let Ok(path) = std::env::var("BENCH_OUT") {
            std::fs::write(path, &md).unwrap();
        }
        return;
    }
    let (results, mut m) = rt.block_on(mariadb(&sizes, main_mb, runs));
    m.latency_idle_semi_sync = rt.block_on(semi_sync_latency(runs, window_len()));
    let mut md = report::report(&results, main_mb, runs, &m);
    if mysql_mb > 0 {
        md += "\n";
        md += &report::mysql_report(mysql_mb, rt.block_on(mysql(mysql_mb, runs)));
    }
    if link_mb > 0 {
        let (data_mb, rows, cap) = rt.block_on(links::slow_links(link_mb, runs));
        md += "\n";
        md += &links::report(link_mb, data_mb, runs, &rows);
        md += "\n";
        md += &links::donor_report(&cap);
        md += "\n";
        md += &cpu_section(&rt, link_mb, runs);
    }
    if link_mb > 0 && mysql_mb > 0 {
        md += "\n";
        md += &rt.block_on(mysql_links::mysql_links(link_mb, runs));
    }
    if backup_mb > 0 {
        md += "\n";
        md += &rt.block_on(backups::backups(backup_mb, runs));
    }
    println!("{md}");
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(path, &md).unwrap();
    }
    if let Ok(path) = std::env::var("BENCH_SVG") {
        std::fs::write(path, report::plot(&results)).unwrap();
    }
}
