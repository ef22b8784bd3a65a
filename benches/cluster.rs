//! Benchmarks on a real MariaDB cluster of network-namespace pods: clone
//! throughput of mysql-sts against the bare tool pipeline it replaces and the
//! physical ceiling, the agent's footprint, and the cost of a readiness probe.
//! Run by `bench/run`, which writes docs/BENCHMARKS.md. `BENCH_MB` sets the
//! data size (default 1024), `BENCH_RUNS` the runs per figure (default 3).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::Queryable;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Median, min and max of a sample.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// Runs `script` in pod `n` with `sh -c` and returns its wall time.
fn timed_sh(c: &Cluster, n: u32, script: &str) -> f64 {
    let started = Instant::now();
    let out = c
        .pod_command(n, &["sh".into(), "-ec".into(), script.into()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed().as_secs_f64()
}

/// Creates pod 2, pipes `send` (run in pod 1) into `receive` (run in pod 2)
/// through socat over the pods' network; returns the wall time of the copy.
fn socket_copy(c: &mut Cluster, receive: &str, send: &str) -> f64 {
    c.create_pod(2);
    let ip = c.pod(2).ip.clone();
    let listen = format!("socat -u TCP-LISTEN:9999,reuseaddr - | {receive}");
    let mut rx = c
        .pod_command(2, &["sh".into(), "-ec".into(), listen])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    timed_sh(c, 1, &format!("{send} | socat -u - TCP:{ip}:9999"));
    assert!(rx.wait().unwrap().success());
    started.elapsed().as_secs_f64()
}

/// CPU seconds (user + system) that `script` run `times` times costs, per run.
fn cpu_per_run(c: &Cluster, n: u32, script: &str, times: u32) -> f64 {
    let looped = format!(
        "i=0; while [ $i -lt {times} ]; do {script} >/dev/null 2>&1 || true; i=$((i+1)); done; cat /proc/$$/stat"
    );
    let out = c
        .pod_command(n, &["sh".into(), "-c".into(), looped])
        .output()
        .unwrap();
    let stat = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, cutime 16 and cstime 17.
    let ticks: f64 = fields[13].parse::<f64>().unwrap() + fields[14].parse::<f64>().unwrap();
    ticks / 100.0 / times as f64
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn run() -> String {
    let mb = env_num("BENCH_MB", 1024);
    let runs = env_num("BENCH_RUNS", 3) as usize;
    let mut c = Cluster::new(Engine::Mariadb);
    c.start_pod(0).await;
    c.wait_ready(0, Duration::from_secs(120)).await;
    let started = Instant::now();
    {
        let mut m = c.root(0).await;
        m.query_drop("CREATE DATABASE bench").await.unwrap();
        m.query_drop("CREATE TABLE bench.filler (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(1000)) ENGINE=InnoDB")
            .await
            .unwrap();
        m.query_drop("INSERT INTO bench.filler (pad) VALUES (REPEAT('x', 1000))")
            .await
            .unwrap();
        let mut rows = 1u64;
        while rows < mb * 1000 {
            m.query_drop("INSERT INTO bench.filler (pad) SELECT pad FROM bench.filler")
                .await
                .unwrap();
            rows *= 2;
        }
        m.disconnect().await.unwrap();
    }
    eprintln!(
        "generated {mb} MB in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    c.start_pod(1).await;
    c.wait_ready(1, Duration::from_secs(600)).await;
    let data_mb = mysql_sts::progress::dir_size(&c.pod(1).datadir()) as f64 / 1e6;

    // mysql-sts: init of a new replica cloning mysql-1, prepare included.
    let mut ours = Vec::new();
    for _ in 0..runs {
        c.create_pod(2);
        let started = Instant::now();
        let (status, out) = c.run_init(2, &[]);
        assert!(status.success(), "{out}");
        ours.push(started.elapsed().as_secs_f64());
        c.remove_pod(2);
    }
    let sidecar_pid = c.sidecar_pid(1).unwrap();
    let peak_kb = rss_kb(sidecar_pid, "VmHWM:");

    // The bare pipeline of the Kubernetes tutorial: mariabackup | socat | mbstream, then prepare.
    let mut bare = Vec::new();
    for _ in 0..runs {
        let dir = c.pod(1).dir.parent().unwrap().join("mysql-2/data");
        let secs = socket_copy(
            &mut c,
            &format!("mbstream -x -C {}", dir.display()),
            &format!(
                "rm -rf /tmp/bench-bk; mariabackup --backup --stream=xbstream --target-dir=/tmp/bench-bk \
                 --host=127.0.0.1 --port=3306 --user=root --password={ROOT_PASSWORD} 2>/dev/null"
            ),
        );
        let prepare = timed_sh(
            &c,
            2,
            &format!(
                "mariabackup --prepare --target-dir={} 2>/dev/null",
                dir.display()
            ),
        );
        bare.push(secs + prepare);
        c.remove_pod(2);
    }

    // The ceiling: tar of mysql-1's datadir, its server stopped, over a socket.
    let mut ceiling = Vec::new();
    c.stop_server(1);
    for _ in 0..runs {
        let dir = c.pod(1).dir.parent().unwrap().join("mysql-2/data");
        let src = c.pod(1).dir.join("data");
        ceiling.push(socket_copy(
            &mut c,
            &format!("tar -C {} -xf -", dir.display()),
            &format!("tar -C {} -cf - .", src.display()),
        ));
        c.remove_pod(2);
    }
    c.start_server(1);
    c.wait_ready(1, Duration::from_secs(120)).await;

    // Footprint and probe cost.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_kb = rss_kb(c.sidecar_pid(1).unwrap(), "VmRSS:");
    let bin = std::fs::metadata(agent_binary())
        .map(|m| m.len())
        .unwrap_or(0);
    let agent = agent_binary().display().to_string();
    let probe_ours = cpu_per_run(&c, 1, &format!("{agent} probe ready"), 50);
    let probe_sql = cpu_per_run(
        &c,
        1,
        &format!("mariadb --no-defaults -uroot -p{ROOT_PASSWORD} -h127.0.0.1 -e 'SELECT 1'"),
        50,
    );

    let row = |name: &str, v: &[f64]| {
        let (med, min, max) = stats(v.to_vec());
        format!(
            "| {name} | {:.0} MB/s | {med:.2} s | {min:.2} s | {max:.2} s |",
            data_mb / med
        )
    };
    let (ours_med, ..) = stats(ours.clone());
    let (bare_med, ..) = stats(bare.clone());
    let mut md = vec![
        format!(
            "Data: {data_mb:.0} MB datadir (MariaDB {}), {runs} runs per figure, idle donor (a replica, mysql-1).",
            mb
        ),
        String::new(),
        "| clone method | throughput (median) | time: median | min | max |".into(),
        "| --- | --- | --- | --- | --- |".into(),
        row(
            "mysql-sts (init of a new replica: stream, verify, prepare)",
            &ours,
        ),
        row(
            "bare pipeline: mariabackup \\| socat \\| mbstream, prepare",
            &bare,
        ),
        row(
            "ceiling: tar of the stopped datadir over a socket",
            &ceiling,
        ),
        String::new(),
        format!(
            "mysql-sts / bare pipeline: **{:.2}×** the throughput (target ≥ 0.95×).",
            bare_med / ours_med
        ),
        String::new(),
        "Throughput is the donor's datadir size over the wall time of the whole copy, the same"
            .into(),
        "denominator for every method: `tar` moves the binary logs too, the two mariabackup-based"
            .into(),
        "methods do not, and both of those include `--prepare`. The bare pipeline uses socat's"
            .into(),
        "default 8 KiB buffers, as the tutorial does; mysql-sts moves 1 MiB frames over HTTP."
            .into(),
        String::new(),
        "| footprint | |".into(),
        "| --- | --- |".into(),
        format!("| sidecar RSS, idle | {:.1} MB |", idle_kb as f64 / 1024.0),
        format!(
            "| sidecar peak RSS, having served {runs} clone streams | {:.1} MB |",
            peak_kb as f64 / 1024.0
        ),
        format!(
            "| binary (release build, as benchmarked) | {:.1} MB |",
            bin as f64 / 1e6
        ),
        String::new(),
        "| readiness check | CPU per check |".into(),
        "| --- | --- |".into(),
        format!(
            "| `mysql-sts probe ready` | {:.1} ms |",
            probe_ours * 1000.0
        ),
        format!(
            "| `mariadb -e 'SELECT 1'` (the tutorial's exec probe) | {:.1} ms |",
            probe_sql * 1000.0
        ),
    ];
    md.push(String::new());
    md.join("\n")
}

fn main() {
    // cargo bench passes --bench; nothing else to parse.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let md = rt.block_on(run());
    println!("{md}");
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(path, md).unwrap();
    }
}
