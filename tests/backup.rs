//! Backups to a real S3-compatible store (SeaweedFS, started by each test),
//! on each engine: a backup taken from a replica while the master takes
//! writes, listed as complete, and a new replica seeded from it that ends
//! equal to the master; a backup cut short (its sidecar killed) that never
//! lists as complete and from which no replica is seeded.

mod common;

use std::time::{Duration, Instant};

use common::s3::S3;
use common::*;
use mysql_async::prelude::Queryable;

async fn make_tables(c: &Cluster) {
    let mut m = c.root(0).await;
    m.query_drop("CREATE DATABASE app").await.unwrap();
    m.query_drop("CREATE TABLE app.w (id BIGINT PRIMARY KEY, v VARCHAR(16)) ENGINE=InnoDB")
        .await
        .unwrap();
    // Rows that make the copy more than the empty server's files.
    m.query_drop("CREATE TABLE app.f (id BIGINT PRIMARY KEY, v TEXT) ENGINE=InnoDB")
        .await
        .unwrap();
    for i in 0..40u64 {
        let values: Vec<String> = (0..100)
            .map(|j| format!("({}, REPEAT(SHA2('{i}-{j}', 256), 16))", i * 100 + j))
            .collect();
        m.query_drop(format!("INSERT INTO app.f VALUES {}", values.join(",")))
            .await
            .unwrap();
    }
    m.disconnect().await.unwrap();
}

async fn count(c: &Cluster, n: u32, table: &str) -> u64 {
    let mut conn = c.root(n).await;
    let v = scalar(&mut conn, &format!("SELECT COUNT(*) FROM {table}")).await;
    let _ = conn.disconnect().await;
    v.and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// `mysql-sts backup` run in pod `from`: its exit code, output and log.
fn backup_cli(c: &Cluster, from: u32, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["backup"];
    args.extend_from_slice(extra);
    let out = c
        .pod_command(from, &c.agent_argv(&args))
        .output()
        .expect("mysql-sts backup");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn clone_record(c: &Cluster, n: u32) -> serde_json::Value {
    let text = std::fs::read_to_string(c.pod(n).datadir().join(".mysql-sts-clone.json"))
        .expect("the seeded pod's clone record");
    serde_json::from_str(&text).unwrap()
}

async fn backup_then_seed(engine: Engine) {
    let e = engine.name();
    let s3 = S3::start();
    let mut c = Cluster::new(engine);
    c.extra_env.extend(s3.env_for(&c, "seed"));
    for n in 0..2 {
        c.start_pod(n).await;
        c.wait_ready(n, Duration::from_secs(180)).await;
    }
    make_tables(&c).await;
    let writer = Writer::start(c.pod(0).ip.clone(), "app.w", Duration::from_millis(5), None);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A backup while the master takes writes: from the replica.
    let started = Instant::now();
    let (code, out, log) = backup_cli(&c, 0, &[]);
    let backup_secs = started.elapsed().as_secs_f64();
    assert_eq!(code, Some(0), "[{e}] mysql-sts backup:\n{out}{log}");
    let manifest: mysql_sts::backup::Manifest = serde_json::from_str(&out)
        .unwrap_or_else(|err| panic!("[{e}] not a manifest ({err}):\n{out}{log}"));
    assert_eq!(manifest.source, "mysql-1", "[{e}] the replica is backed up");
    assert_eq!(manifest.engine, engine.flavor());
    assert!(!manifest.gtid.is_empty(), "[{e}] {manifest:?}");
    assert!(manifest.bytes > 1 << 20, "[{e}] {manifest:?}");
    let listed = s3.store("seed").list().await.unwrap();
    assert_eq!(listed.len(), 1, "[{e}] {listed:?}");
    assert_eq!(listed[0].manifest.as_ref(), Some(&manifest));
    // The stream and the manifest.
    assert!(
        listed[0].stored_bytes > manifest.stored_bytes,
        "[{e}] {listed:?}"
    );

    // A new replica from the backup, while the writes go on.
    let rows_at_backup = count(&c, 0, "app.w").await;
    let seeded = Instant::now();
    c.create_pod(2);
    let (status, out) = c.run_init(2, &["--seed-from", "backup"]);
    assert!(status.success(), "[{e}] seeding from the backup:\n{out}");
    assert!(
        out.contains("seeding this replica from a backup"),
        "[{e}] {out}"
    );
    let record = clone_record(&c, 2);
    assert_eq!(record["donor"], format!("backup {}", manifest.id), "[{e}]");
    // The copy holds every transaction the manifest names.
    let copy_gtid = record["gtid"].as_str().unwrap();
    assert!(
        engine.flavor().gtid_contains(copy_gtid, &manifest.gtid),
        "[{e}] the copy holds {copy_gtid}, the manifest says {}",
        manifest.gtid
    );
    c.start_server(2);
    c.start_sidecar(2);
    c.wait_ready(2, Duration::from_secs(180)).await;
    let ready_secs = seeded.elapsed().as_secs_f64();
    let acks = writer.finish().await;
    let written = count(&c, 0, "app.w").await;
    assert!(
        written > rows_at_backup,
        "[{e}] rows were written after the backup"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&c, 2, "app.w").await != written {
        assert!(
            Instant::now() < deadline,
            "[{e}] mysql-2 has {} of {written} rows; status {}",
            count(&c, 2, "app.w").await,
            c.status(2).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for table in ["app.w", "app.f"] {
        let mut sums = Vec::new();
        for n in 0..3 {
            let mut conn = c.root(n).await;
            sums.push(checksum(&mut conn, table).await);
            conn.disconnect().await.unwrap();
        }
        assert!(
            sums.iter().all(|s| *s == sums[0]),
            "[{e}] {table}: {sums:?}"
        );
    }
    assert!(acks.len() as u64 <= written);
    let line = format!(
        "backup of {:.1} MiB ({:.1} MiB stored) in {backup_secs:.1} s while the master took writes; \
         mysql-2 seeded from it and ready {ready_secs:.1} s after its init started, then equal \
         to the master ({written} rows, {} written after the backup)",
        manifest.bytes as f64 / (1 << 20) as f64,
        manifest.stored_bytes as f64 / (1 << 20) as f64,
        written - rows_at_backup
    );
    eprintln!("[{e}] {line}");
    report_scenario(
        "backup while writing, replica seeded from it",
        engine,
        &line,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_backup_then_seed_a_replica() {
    backup_then_seed(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_backup_then_seed_a_replica() {
    backup_then_seed(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_backup_then_seed_a_replica() {
    backup_then_seed(Engine::Mysql).await;
}
