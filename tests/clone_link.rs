//! A MariaDB clone stream's options, on real servers and the real stream:
//! `--clone-compression zstd` sends far fewer bytes than the data, `none` the
//! data as it is, and a donor with `--clone-max-rate` sends no faster than
//! its cap, its backup reading the data files through the page cache (past
//! it when uncapped); every copy holds the donor's rows. The same options
//! drive MySQL's CLONE plugin: its network compression and its bandwidth
//! caps. And the slow links' footing: their proxies listen on the bridge's
//! host end, which every pod must still reach when another pod goes.

mod common;

use std::time::Duration;

use common::*;
use mysql_async::prelude::Queryable;

/// About `mb` MB of rows that compress as table data usually does.
async fn load(c: &Cluster, mb: u32) {
    let mut m = c.root(0).await;
    m.query_drop("CREATE DATABASE app").await.unwrap();
    m.query_drop(
        "CREATE TABLE app.f (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         name VARCHAR(64), pad VARCHAR(1000)) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    m.query_drop(
        "INSERT INTO app.f (name, pad) VALUES \
         ('first', CONCAT(REPEAT('lorem ipsum ', 40), SHA2('0', 256)))",
    )
    .await
    .unwrap();
    let mut rows = 1u32;
    while rows < mb * 1800 {
        m.query_drop(
            "INSERT INTO app.f (name, pad) SELECT CONCAT('row ', id + @@timestamp), \
             CONCAT(REPEAT('lorem ipsum ', 40), SHA2(id + RAND(), 256)) FROM app.f",
        )
        .await
        .unwrap();
        rows *= 2;
    }
    m.disconnect().await.unwrap();
}

/// Clones pod 1 from pod 0 with `args`; returns its clone record.
async fn clone_with(c: &mut Cluster, args: &[&str]) -> serde_json::Value {
    c.create_pod(1);
    let (status, out) = c.run_init(1, args);
    assert!(status.success(), "{out}");
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(c.pod(1).datadir().join(".mysql-sts-clone.json")).unwrap(),
    )
    .unwrap();
    c.start_server(1);
    let mut r = c.root(1).await;
    let mut m = c.root(0).await;
    assert_eq!(
        checksum(&mut r, "app.f").await,
        checksum(&mut m, "app.f").await,
        "the copy differs from the donor"
    );
    r.disconnect().await.unwrap();
    m.disconnect().await.unwrap();
    c.remove_pod(1);
    record
}

/// Starts mysql-0's sidecar again with `--clone-max-rate` at `mib` MiB/s;
/// returns that rate in bytes a second.
async fn cap_donor(c: &mut Cluster, mib: u64) -> u64 {
    c.extra_env
        .push(("MYSQL_STS_CLONE_MAX_RATE".into(), format!("{mib}MiB")));
    c.kill_sidecar(0);
    c.start_sidecar(0);
    c.wait_ready(0, Duration::from_secs(30)).await;
    mib << 20
}

/// What a `mariadb-backup` was seen doing: the tables' data files
/// (`*.ibd`) it held, each with whether it was opened with O_DIRECT (past
/// the page cache), and the nice values its threads ran at.
struct Seen {
    files: Vec<(String, bool)>,
    nice: std::collections::BTreeSet<i64>,
}

/// The nice value of each thread of process `pid`.
fn thread_nices(pid: u32) -> Vec<i64> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        // After the name in parentheses: state is the 1st field, nice the 17th.
        .filter_map(|stat| {
            stat.rsplit_once(") ")?
                .1
                .split_whitespace()
                .nth(16)?
                .parse()
                .ok()
        })
        .collect()
}

/// Watches, until the returned stop is called, the `mariadb-backup`
/// children of process `sidecar`: what [`Seen`] keeps.
fn watch_backup_files(sidecar: u32) -> impl FnOnce() -> Seen {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let watcher = std::thread::spawn(move || {
        let mut direct = std::collections::BTreeMap::new();
        let mut nice = std::collections::BTreeSet::new();
        while !stopped.load(Ordering::Relaxed) {
            for pid in children_named(sidecar, "mariadb-backup") {
                nice.extend(thread_nices(pid));
                let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                    continue;
                };
                for fd in fds.flatten() {
                    let Ok(target) = std::fs::read_link(fd.path()) else {
                        continue;
                    };
                    let name = target.to_string_lossy().into_owned();
                    if !name.ends_with(".ibd") {
                        continue;
                    }
                    let info = std::fs::read_to_string(format!(
                        "/proc/{pid}/fdinfo/{}",
                        fd.file_name().to_string_lossy()
                    ))
                    .unwrap_or_default();
                    if let Some(flags) = info
                        .lines()
                        .find_map(|l| l.strip_prefix("flags:"))
                        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                    {
                        direct.insert(name, flags & libc::O_DIRECT as u32 != 0);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Seen {
            files: direct.into_iter().collect(),
            nice,
        }
    });
    move || {
        stop.store(true, Ordering::Relaxed);
        watcher.join().unwrap()
    }
}

/// The processes named `name` whose parent is `parent`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // "pid (comm) state ppid ...": the name may hold spaces.
            let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
            else {
                return false;
            };
            comm == name && rest.split_whitespace().nth(1) == Some(&parent.to_string())
        })
        .collect()
}

async fn stream_options(engine: Engine) {
    let e = engine.name();
    let mut c = Cluster::new(engine);
    c.start_pod(0).await;
    c.wait_ready(0, Duration::from_secs(120)).await;
    load(&c, 24).await;

    let watch = watch_backup_files(c.sidecar_pid(0).unwrap());
    let plain = clone_with(&mut c, &["--clone-compression", "none"]).await;
    let Seen { files, nice } = watch();
    // Uncapped, the backup reads its data files past the page cache, as the
    // server does, at the server's priority.
    assert!(
        !files.is_empty() && files.iter().all(|(_, d)| *d),
        "[{e}] uncapped, O_DIRECT per data file: {files:?}"
    );
    assert_eq!(
        nice.into_iter().collect::<Vec<_>>(),
        [0],
        "[{e}] uncapped, the backup's threads' nice values"
    );
    let zstd = clone_with(&mut c, &["--clone-compression", "zstd"]).await;
    let (bytes, plain_wire, zstd_wire) = (
        plain["bytes"].as_u64().unwrap(),
        plain["wire_bytes"].as_u64().unwrap(),
        zstd["wire_bytes"].as_u64().unwrap(),
    );
    eprintln!(
        "[{e}] a clone of {:.1} MB: {:.1} MB on the wire as it is, {:.1} MB with zstd ({:.2}x)",
        bytes as f64 / 1e6,
        plain_wire as f64 / 1e6,
        zstd_wire as f64 / 1e6,
        plain_wire as f64 / zstd_wire as f64
    );
    assert!(plain_wire >= bytes, "[{e}] {plain}");
    assert!(
        zstd_wire * 2 < bytes,
        "[{e}] zstd sent {zstd_wire} of {bytes} bytes: {zstd}"
    );

    // The donor capped at 4 MiB/s: the stream takes at least what the cap
    // allows.
    let rate = cap_donor(&mut c, 4).await;
    let watch = watch_backup_files(c.sidecar_pid(0).unwrap());
    let capped = clone_with(&mut c, &["--clone-compression", "none"]).await;
    let Seen { files, nice } = watch();
    // Capped, through the page cache, where the donor reads ahead of it, and
    // as background work, every thread of it.
    assert!(
        !files.is_empty() && files.iter().all(|(_, d)| !*d),
        "[{e}] capped, O_DIRECT per data file: {files:?}"
    );
    assert_eq!(
        nice.into_iter().collect::<Vec<_>>(),
        [i64::from(mysql_sts::sched::BACKGROUND_NICE)],
        "[{e}] capped, the backup's threads' nice values"
    );
    let (wire, secs) = (
        capped["wire_bytes"].as_u64().unwrap(),
        capped["seconds"].as_f64().unwrap(),
    );
    eprintln!(
        "[{e}] with --clone-max-rate 4MiB: {:.1} MB in {secs:.1} s ({:.2} MiB/s)",
        wire as f64 / 1e6,
        wire as f64 / secs / f64::from(1 << 20)
    );
    assert!(
        secs >= wire as f64 / rate as f64 * 0.95,
        "[{e}] {wire} bytes in {secs} s: faster than 4 MiB/s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_clone_stream_options() {
    stream_options(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_clone_stream_options() {
    stream_options(Engine::Mariadb11).await;
}

/// MySQL: `--clone-compression` turns the CLONE plugin's network
/// compression on, and a donor's `--clone-max-rate` (read from its sidecar)
/// caps the recipient's CLONE.
#[tokio::test(flavor = "multi_thread")]
async fn mysql_clone_options() {
    let mut c = Cluster::new(Engine::Mysql);
    c.start_pod(0).await;
    c.wait_ready(0, Duration::from_secs(120)).await;
    load(&c, 24).await;

    let plain = clone_with(&mut c, &["--clone-compression", "none"]).await;
    let zstd = clone_with(&mut c, &["--clone-compression", "zstd"]).await;
    let (plain_wire, zstd_wire) = (
        plain["wire_bytes"].as_u64().unwrap(),
        zstd["wire_bytes"].as_u64().unwrap(),
    );
    eprintln!(
        "[mysql] a clone of {:.1} MB: {:.1} MB on the network as it is, {:.1} MB compressed ({:.2}x)",
        plain["bytes"].as_u64().unwrap() as f64 / 1e6,
        plain_wire as f64 / 1e6,
        zstd_wire as f64 / 1e6,
        plain_wire as f64 / zstd_wire as f64
    );
    assert!(plain_wire > 24_000_000, "[mysql] {plain}");
    assert!(
        zstd_wire * 2 < plain_wire,
        "[mysql] compressed, {zstd_wire} bytes against {plain_wire}: {zstd}"
    );

    // The donor capped at 8 MiB/s: `auto` compresses, and the data read
    // still takes what the cap allows.
    let rate = cap_donor(&mut c, 8).await;
    let capped = clone_with(&mut c, &["--clone-compression", "auto"]).await;
    let (wire, secs) = (
        capped["wire_bytes"].as_u64().unwrap(),
        capped["seconds"].as_f64().unwrap(),
    );
    eprintln!(
        "[mysql] with --clone-max-rate 8MiB and auto: {:.1} MB on the network, {secs:.1} s ({:.2} MiB/s of data)",
        wire as f64 / 1e6,
        plain_wire as f64 / secs / f64::from(1 << 20)
    );
    assert!(wire * 2 < plain_wire, "[mysql] auto, capped: {capped}");
    assert!(
        secs >= plain_wire as f64 / rate as f64 * 0.9,
        "[mysql] {plain_wire} bytes of data in {secs} s: faster than 8 MiB/s"
    );
}

/// Whether pod `n` opens a TCP connection to the bridge's host end (the
/// cluster's DNS server listens there) within 3 s.
fn reaches_bridge(c: &Cluster, n: u32) -> bool {
    let connect = format!("exec 3<>/dev/tcp/{}/53", c.gateway());
    c.pod_command(
        n,
        &["timeout", "3", "bash", "-c", &connect].map(String::from),
    )
    .status()
    .unwrap()
    .success()
}

/// A bridge with no address of its own takes the lowest of its ports', and
/// another when that port goes, while the pods still send to the old one.
/// The pod whose host-side link has the lowest address goes: the others
/// still reach the bridge.
#[test]
fn pods_reach_the_bridge_after_a_pod_goes() {
    let mut c = Cluster::new(Engine::Mariadb);
    for n in 0..3 {
        c.create_pod(n);
        assert!(reaches_bridge(&c, n), "pod {n} cannot reach the bridge");
    }
    let link = |n: u32| format!("/sys/class/net/v{}-{n}", c.id);
    let lowest = (0..3)
        .min_by_key(|&n| std::fs::read_to_string(format!("{}/address", link(n))).unwrap())
        .unwrap();
    let gone = link(lowest);
    c.remove_pod(lowest);
    // The namespace's links go in the background.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&gone).exists() {
        assert!(std::time::Instant::now() < deadline, "{gone} stays");
        std::thread::sleep(Duration::from_millis(50));
    }
    for n in (0..3).filter(|&n| n != lowest) {
        assert!(
            reaches_bridge(&c, n),
            "pod {n} cannot reach the bridge once pod {lowest} is gone"
        );
    }
}
