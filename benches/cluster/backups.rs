//! Backups on MariaDB, against the clone from N-1 on the same data in the same
//! run: a backup's throughput to a real S3 store (SeaweedFS on this machine)
//! beside a clone's, a replica's seed from the backup, and the master's write
//! latency while replicas are seeded back to back from the backup and from
//! their N-1, with an idle window as the control.

use super::*;
use common::s3::S3;
use report::{quantile, stats};

/// Seeds of pod 2 back to back for `len`: the writer's latencies meanwhile
/// and each seed's seconds.
async fn seeding_window(
    c: &mut Cluster,
    w: &Writer,
    len: Duration,
    args: &[&str],
) -> (Vec<f64>, Vec<f64>) {
    let from = Instant::now();
    let mut secs = Vec::new();
    while from.elapsed() < len {
        secs.push(clone_ours_with(c, 2, args).0);
        c.remove_pod(2);
    }
    (w.window(from, Instant::now()), secs)
}

fn row(name: &str, secs: &[f64], mb: f64) -> String {
    let (med, min, max) = stats(secs);
    format!(
        "| {name} | {med:.2} s | {min:.2} s | {max:.2} s | {:.0} MB/s |",
        mb / med
    )
}

fn p99_row(name: &str, lat: &[f64], idle: f64) -> String {
    let p99 = quantile(lat, 0.99);
    format!(
        "| {name} | {:.2} ms | {p99:.2} ms | {:.2}× | {} |",
        quantile(lat, 0.5),
        p99 / idle,
        lat.len()
    )
}

/// The section of the report.
pub async fn backups(mb: u64, runs: usize) -> String {
    let s3 = S3::start();
    let mut c = Cluster::new(Engine::Mariadb);
    c.extra_env.extend(s3.env_for(&c, "bench"));
    for n in 0..2 {
        c.start_pod(n).await;
        c.wait_ready(n, Duration::from_secs(600)).await;
    }
    grow(&c, mb).await;
    caught_up(&c, 1).await;
    for n in 0..2 {
        purge_binlogs(&c, n).await;
    }
    let data_mb = mysql_sts::datadir::Datadir::new(c.pod(1).datadir())
        .live_bytes()
        .unwrap() as f64
        / 1e6;
    let mut backup = Vec::new();
    let mut stored_mb = 0.0;
    for _ in 0..runs {
        let out = c
            .pod_command(0, &c.agent_argv(&["backup", "--pod", "mysql-1"]))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "backup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let m: mysql_sts::backup::Manifest = serde_json::from_slice(&out.stdout).unwrap();
        stored_mb = m.stored_bytes as f64 / 1e6;
        backup.push(m.seconds);
    }
    let mut clone = Vec::new();
    let mut seed = Vec::new();
    for _ in 0..runs {
        clone.push(clone_ours(&mut c, 2).0);
        c.remove_pod(2);
        seed.push(clone_ours_with(&mut c, 2, &["--seed-from", "backup"]).0);
        c.remove_pod(2);
    }
    let w = master_writer(&c);
    let len = window_len();
    let mut idle = Vec::new();
    let (mut from_backup, mut from_peer) = (Vec::new(), Vec::new());
    let (mut seeds_b, mut seeds_p) = (0, 0);
    for _ in 0..runs {
        idle.extend(idle_window(&w, len).await);
        let (lat, n) = seeding_window(&mut c, &w, len, &["--seed-from", "backup"]).await;
        from_backup.extend(lat);
        seeds_b += n.len();
        let (lat, n) = seeding_window(&mut c, &w, len, &[]).await;
        from_peer.extend(lat);
        seeds_p += n.len();
    }
    w.finish().await;
    let idle_p99 = quantile(&idle, 0.99);
    let mut md = vec![
        "## Backups (MariaDB 10.11)".to_owned(),
        String::new(),
        format!(
            "A {mb} MB table ({data_mb:.0} MB datadir) on a two-pod cluster; the store is SeaweedFS \
             on this machine (`scripts/install-test-deps` builds it), reached over the pods' bridge; \
             {runs} runs each. A backup is `mysql-sts backup --pod mysql-1` (mariadb-backup on the \
             replica, its stream zstd-compressed into a multipart upload: {stored_mb:.0} MB stored); \
             a clone is `mysql-sts init` of a new pod 2 from mysql-1 (stream, extract, prepare); a \
             seed is `mysql-sts init --seed-from backup` of pod 2 (download, extract, prepare). MB/s \
             of the datadir at the median."
        ),
        String::new(),
        "| copy | median | min | max | throughput |".to_owned(),
        "| --- | --- | --- | --- | --- |".to_owned(),
        row("backup to the bucket", &backup, data_mb),
        row("clone from N-1 (the control)", &clone, data_mb),
        row("seed from the backup", &seed, data_mb),
        String::new(),
        format!(
            "The master's write latency (one row per 10 ms, on CPU 0) while pod 2 is seeded back \
             to back for {} s windows, {runs} of each, against the idle windows between them \
             ({seeds_b} seeds from the backup, {seeds_p} clones from mysql-1):",
            len.as_secs()
        ),
        String::new(),
        "| while | p50 | p99 | p99 / idle p99 | writes |".to_owned(),
        "| --- | --- | --- | --- | --- |".to_owned(),
        p99_row("idle (the control)", &idle, idle_p99),
        p99_row("replicas seeded from the backup", &from_backup, idle_p99),
        p99_row("replicas cloned from N-1", &from_peer, idle_p99),
        String::new(),
    ];
    md.push(
        "A seed from the backup reads nothing from a running server: mysql-1 and the master \
         serve only the replica's catching up by GTID afterwards. What this machine cannot \
         show: the table's rows are one repeated character, which zstd shrinks to almost \
         nothing, so the throughputs are this machine's disk and CPU rather than a link's \
         (real tables compress 2-4×); and on 2 cores every copy shares the master's CPUs and \
         disk (the store, the seeding pod's extract and prepare among them), so both kinds of \
         seed raise the master's p99 alike, while its p50 shows what a seed that reads no \
         running server spares it."
            .to_owned(),
    );
    md.join("\n") + "\n"
}
