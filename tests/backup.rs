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
         to the master ({written} rows, {} written after the backup); `auto` took the backup \
         while the master held the logs since it, a peer once they were purged",
        manifest.bytes as f64 / (1 << 20) as f64,
        manifest.stored_bytes as f64 / (1 << 20) as f64,
        written - rows_at_backup
    );
    eprintln!("[{e}] {line}");
    // `auto`: the backup while the master holds every binary log since it…
    c.create_pod(3);
    let (status, out) = c.run_init(3, &["--seed-from", "auto"]);
    assert!(status.success(), "[{e}] seeding with auto:\n{out}");
    assert_eq!(
        clone_record(&c, 3)["donor"],
        format!("backup {}", manifest.id),
        "[{e}] auto, logs kept"
    );
    // …a peer once the master purged the logs the backup would need.
    {
        // MariaDB keeps a log crash recovery may need until its checkpoint
        // moves on: purge until one log is left.
        let mut m = c.root(0).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            m.query_drop("FLUSH BINARY LOGS").await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let logs: Vec<mysql_async::Row> = m.query("SHOW BINARY LOGS").await.unwrap();
            let newest: String = logs.last().unwrap().get(0).unwrap();
            m.query_drop(format!("PURGE BINARY LOGS TO '{newest}'"))
                .await
                .unwrap();
            let left: Vec<mysql_async::Row> = m.query("SHOW BINARY LOGS").await.unwrap();
            if left.len() == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "[{e}] the master keeps {} logs",
                left.len()
            );
        }
        m.disconnect().await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let start = c.status(0).await["binlog_start"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if !engine.flavor().gtid_contains(&manifest.gtid, &start) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[{e}] the master still says its logs start at {start:?}: {}\n{}",
            c.status(0).await,
            tail(&c.pod(0).log("sidecar"))
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    c.remove_pod(3);
    c.create_pod(3);
    let (status, out) = c.run_init(3, &["--seed-from", "auto"]);
    assert!(status.success(), "[{e}] seeding with auto:\n{out}");
    let donor = clone_record(&c, 3)["donor"].as_str().unwrap().to_owned();
    assert!(
        donor.starts_with("mysql-"),
        "[{e}] auto after the purge seeded from {donor}"
    );
    report_scenario(
        "B1. backup while writing, replica seeded from it",
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

/// The agent's `backup` run in the background from pod `from`.
fn spawn_backup(c: &Cluster, from: u32) -> std::process::Child {
    c.pod_command(from, &c.agent_argv(&["backup"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

async fn finish(child: std::process::Child) -> (Option<i32>, String) {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn assert_empty(c: &Cluster, n: u32, e: &str, after: &str) {
    let state = mysql_sts::datadir::Datadir::new(c.pod(n).datadir())
        .state()
        .unwrap();
    assert_eq!(
        state,
        mysql_sts::datadir::State::Empty,
        "[{e}] mysql-{n}'s datadir after {after}"
    );
}

/// Replaces the object at `key` in the bucket behind the store's back.
async fn damage(s3: &S3, key: &str, change: impl FnOnce(&mut Vec<u8>)) {
    let url = s3.filer_url(key);
    let mut body = reqwest::get(&url)
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    change(&mut body);
    reqwest::Client::new()
        .put(&url)
        .body(body)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

async fn no_complete_backup(s3: &S3, e: &str, after: &str) {
    let listed = s3.store("faults").list().await.unwrap();
    assert!(
        listed.iter().all(|l| l.manifest.is_none()),
        "[{e}] a backup lists as complete after {after}: {listed:?}"
    );
}

async fn cut_short_damaged_or_foreign(engine: Engine) {
    let e = engine.name();
    let mut s3 = S3::start();
    let mut c = Cluster::new(engine);
    c.extra_env.extend(s3.env_for(&c, "faults"));
    for n in 0..2 {
        c.start_pod(n).await;
        c.wait_ready(n, Duration::from_secs(180)).await;
    }
    make_tables(&c).await;
    // The replica's backups slow enough to be cut in the middle.
    c.extra_env
        .push(("MYSQL_STS_CLONE_MAX_RATE".into(), "256KiB".into()));
    c.kill_sidecar(1);
    c.start_sidecar(1);
    c.wait_ready(1, Duration::from_secs(60)).await;
    c.create_pod(2);
    let t0 = Instant::now();
    let step = |what: &str| eprintln!("[{e}] {:6.1} s {what}", t0.elapsed().as_secs_f64());

    // 1. The backing-up sidecar killed in the middle.
    let backup = spawn_backup(&c, 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.kill_sidecar(1);
    let (code, out) = finish(backup).await;
    assert_eq!(
        code,
        Some(5),
        "[{e}] the backup whose sidecar was killed:\n{out}"
    );
    assert!(out.contains("backup of mysql-1"), "[{e}] {out}");
    no_complete_backup(&s3, e, "its sidecar was killed").await;
    let (status, out) = c.run_init(2, &["--seed-from", "backup"]);
    assert_eq!(
        status.code(),
        Some(5),
        "[{e}] seeding with no complete backup:\n{out}"
    );
    assert!(out.contains("no complete backup"), "[{e}] {out}");
    assert_empty(&c, 2, e, "a seed with no complete backup");
    c.start_sidecar(1);
    c.wait_ready(1, Duration::from_secs(60)).await;

    step("the store to be killed in the middle of a backup");
    // 2. The store killed in the middle, then back.
    let backup = spawn_backup(&c, 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    s3.kill();
    let (code, out) = finish(backup).await;
    assert_eq!(
        code,
        Some(5),
        "[{e}] the backup whose store was killed:\n{out}"
    );
    step("store killed");
    s3.restart();
    step("store back");
    no_complete_backup(&s3, e, "its store was killed").await;

    step("a good backup");
    // 3. A good one; a MySQL backup leaves no local copy behind, not even
    // the one the killed sidecar left.
    let (code, out, log) = backup_cli(&c, 0, &[]);
    assert_eq!(code, Some(0), "[{e}] {out}{log}");
    let m: mysql_sts::backup::Manifest = serde_json::from_str(&out).unwrap();
    assert!(
        !c.pod(1).host_dir.join(".mysql-sts-backup").exists(),
        "[{e}] the local copy stays"
    );

    step("its stream damaged");
    // 4. Its stream damaged in the bucket: the seed fails, the datadir stays empty.
    let stream = format!("faults/backups/{}/stream", m.id);
    let mut original = Vec::new();
    damage(&s3, &stream, |b| {
        original = b.clone();
        let middle = b.len() / 2;
        b[middle] ^= 0x40;
    })
    .await;
    let (status, out) = c.run_init(2, &["--seed-from", "backup"]);
    assert_eq!(
        status.code(),
        Some(4),
        "[{e}] seeding from a damaged backup:\n{out}"
    );
    assert!(out.contains(&format!("backup {}", m.id)), "[{e}] {out}");
    assert_empty(&c, 2, e, "a seed from a damaged backup");
    damage(&s3, &stream, |b| *b = original).await;

    step("its manifest made another engine's");
    // 5. A manifest of the other engine: refused before a byte is fetched.
    let other = match engine.flavor() {
        mysql_sts::engine::Flavor::Mysql => "mariadb",
        mysql_sts::engine::Flavor::Mariadb => "mysql",
    };
    let manifest = format!("faults/backups/{}/manifest.json", m.id);
    damage(&s3, &manifest, |b| {
        let text = String::from_utf8(b.clone()).unwrap();
        let ours = format!("\"engine\": \"{}\"", engine.flavor());
        assert!(text.contains(&ours), "{text}");
        *b = text
            .replace(&ours, &format!("\"engine\": \"{other}\""))
            .into_bytes();
    })
    .await;
    let (status, out) = c.run_init(2, &["--seed-from", "backup"]);
    assert_eq!(
        status.code(),
        Some(5),
        "[{e}] seeding from a foreign backup:\n{out}"
    );
    assert!(
        out.contains(&format!(
            "it is a {other} backup and this server is {}",
            engine.flavor()
        )),
        "[{e}] {out}"
    );
    assert_empty(&c, 2, e, "a seed from a foreign backup");

    // 6. The bucket full: the store refuses the upload, the backup says so.
    step("the bucket filled");
    s3.fill_bucket().await;
    let (code, out, log) = backup_cli(&c, 0, &[]);
    assert_eq!(
        code,
        Some(5),
        "[{e}] a backup into a full bucket:\n{out}{log}"
    );
    assert!(
        // What a store answers then is its own (SeaweedFS: AccessDenied, or
        // InternalError when the upload starts): the message passes it on.
        log.contains("the store answered"),
        "[{e}] {log}"
    );
    let complete = s3.store("faults").list().await.unwrap();
    assert_eq!(
        complete.iter().filter(|l| l.complete).count(),
        1,
        "[{e}] {complete:?}"
    );
    report_scenario(
        "B2. backup cut short, damaged or foreign",
        engine,
        "sidecar killed mid-backup and store killed mid-backup: exit 5, nothing listed complete, \
         no seed; a damaged stream: seed exit 4; another engine's manifest: seed exit 5; \
         the datadir empty after each; a full bucket: exit 5 naming what the store answered",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_backup_cut_short_damaged_or_foreign() {
    cut_short_damaged_or_foreign(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_backup_cut_short_damaged_or_foreign() {
    cut_short_damaged_or_foreign(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_backup_cut_short_damaged_or_foreign() {
    cut_short_damaged_or_foreign(Engine::Mysql).await;
}

async fn metric(c: &Cluster, n: u32, name: &str) -> f64 {
    let (_, body) = c.get(n, "/metrics").await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics of mysql-{n}"))
}

/// The lines of mysql-`n`'s sidecar log, from `since` (a backup id: its
/// start time) on, where it took the scheduled backup.
fn scheduled_by(c: &Cluster, n: u32, since: &str) -> Vec<String> {
    let log = std::fs::read_to_string(c.pod(n).log("sidecar")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("this pod takes the scheduled backup"))
        .filter(|l| {
            let at = l.split_whitespace().next().unwrap_or_default();
            humantime::parse_rfc3339(at)
                .is_ok_and(|t| mysql_sts::backup::id_for(t).as_str() >= since)
        })
        .map(str::to_owned)
        .collect()
}

async fn on_a_schedule(engine: Engine) {
    let e = engine.name();
    let s3 = S3::start();
    let mut c = Cluster::new(engine);
    c.extra_env.extend(s3.env_for(&c, "scheduled"));
    c.extra_env.extend([
        ("MYSQL_STS_BACKUP_SCHEDULE".into(), "*/10 * * * * *".into()),
        ("MYSQL_STS_BACKUP_KEEP".into(), "2".into()),
    ]);
    for n in 0..3 {
        c.start_pod(n).await;
        c.wait_ready(n, Duration::from_secs(180)).await;
    }
    let store = s3.store("scheduled");
    // Backups taken while the pods started came from the replica ready then.
    let all_ready = mysql_sts::backup::id_for(std::time::SystemTime::now());
    // Backups come every ten seconds from the highest ready replica; two stay.
    let mut seen = std::collections::BTreeSet::new();
    let mut by_mysql_1 = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let listed = store.list().await.unwrap();
        let complete: Vec<_> = listed.iter().filter_map(|l| l.manifest.clone()).collect();
        assert!(complete.len() <= 3, "[{e}] retention keeps two: {listed:?}");
        for m in complete.iter().filter(|m| m.id > all_ready) {
            match m.source.as_str() {
                "mysql-2" => seen.insert(m.id.clone()),
                "mysql-1" => by_mysql_1.insert(m.id.clone()),
                _ => panic!("[{e}] {m:?}"),
            };
        }
        if seen.len() >= 4 && complete.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[{e}] {} backups seen, {} complete now",
            seen.len(),
            complete.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(metric(&c, 2, "mysql_sts_backups_total").await >= 4.0);
    // mysql-1 takes one only when it finds mysql-2 not ready (a replica
    // behind on a loaded machine is): each time, its log says so.
    let taken_by_1 = scheduled_by(&c, 1, &all_ready);
    for line in &taken_by_1 {
        assert!(
            line.contains("mysql-2: "),
            "[{e}] mysql-1 took a scheduled backup passing over no mysql-2: {line}"
        );
    }
    assert!(
        taken_by_1.len() >= by_mysql_1.len(),
        "[{e}] mysql-1's backups {by_mysql_1:?}, its log: {taken_by_1:?}"
    );
    assert!(metric(&c, 2, "mysql_sts_backup_last_success_timestamp_seconds").await > 0.0);
    assert!(metric(&c, 2, "mysql_sts_backup_newest_timestamp_seconds").await > 0.0);
    assert_eq!(
        metric(&c, 1, "mysql_sts_backup_schedule_interval_seconds").await,
        10.0
    );
    // With mysql-2 gone, the next highest replica takes over.
    c.stop_pod(2);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = store.list().await.unwrap();
        if listed
            .iter()
            .filter_map(|l| l.manifest.as_ref())
            .any(|m| m.source == "mysql-1")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[{e}] mysql-1 never backed up: {listed:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    report_scenario(
        "B3. backups on a schedule",
        engine,
        &format!(
            "every 10 s from mysql-2, the highest ready replica; {} taken, two kept ({} by mysql-1 meanwhile, each when it found mysql-2 not ready); mysql-1 took over once mysql-2 stopped",
            seen.len(),
            taken_by_1.len()
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_backups_on_a_schedule() {
    on_a_schedule(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_backups_on_a_schedule() {
    on_a_schedule(Engine::Mysql).await;
}

async fn ids(c: &Cluster, n: u32) -> std::collections::BTreeSet<u64> {
    let mut conn = c.root(n).await;
    let rows: Vec<u64> = conn.query("SELECT id FROM app.w").await.unwrap();
    conn.disconnect().await.unwrap();
    rows.into_iter().collect()
}

/// The last transaction the master of `c` wrote, as one GTID.
async fn last_gtid(c: &Cluster, engine: Engine) -> String {
    let mut conn = c.root(0).await;
    let gtid = if engine == Engine::Mysql {
        // `<uuid>:1-<n>`: its one server wrote every transaction.
        let set = scalar(&mut conn, "SELECT @@global.gtid_executed")
            .await
            .unwrap();
        let (uuid, range) = set.trim().split_once(':').unwrap();
        let last = range.rsplit(['-', ':']).next().unwrap();
        format!("{uuid}:{last}")
    } else {
        scalar(&mut conn, "SELECT @@global.gtid_binlog_pos")
            .await
            .unwrap()
    };
    conn.disconnect().await.unwrap();
    gtid
}

async fn point_in_time(engine: Engine) {
    let e = engine.name();
    let s3 = S3::start();
    let store = s3.store("pitr");
    let mut a = Cluster::new(engine);
    a.extra_env.extend(s3.env_for(&a, "pitr"));
    a.extra_env.extend([
        ("MYSQL_STS_BINLOG_ARCHIVE".into(), "true".into()),
        ("MYSQL_STS_BINLOG_ARCHIVE_ROTATE".into(), "2s".into()),
    ]);
    for n in 0..2 {
        a.start_pod(n).await;
        a.wait_ready(n, Duration::from_secs(180)).await;
    }
    make_tables(&a).await;
    let writer = Writer::start(a.pod(0).ip.clone(), "app.w", Duration::from_millis(5), None);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, out, log) = backup_cli(&a, 0, &[]);
    assert_eq!(code, Some(0), "[{e}] {out}{log}");
    let backup: mysql_sts::backup::Manifest = serde_json::from_str(&out).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The target: a whole second with no write in the second before it nor
    // after it (binary log events carry whole seconds).
    writer.hold().await;
    let before: std::collections::BTreeSet<u64> = writer.acked_ids().into_iter().collect();
    // The same point as a transaction: the master's last one now.
    let at_gtid = last_gtid(&a, engine).await;
    let held = std::time::SystemTime::now();
    let whole = held
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let target = std::time::UNIX_EPOCH + Duration::from_secs(whole + 1);
    while std::time::SystemTime::now() < target + Duration::from_millis(200) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    writer.resume();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let acks = writer.finish().await;
    let after = acks.len() - before.len();
    assert!(after > 0, "[{e}] rows after the target");
    // The archive reaches past the target (logs close every 2 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let archive = store.archive().await.unwrap();
        let last = archive
            .iter()
            .filter_map(|l| humantime::parse_rfc3339(&l.closed).ok())
            .max();
        if last.is_some_and(|l| l > target + Duration::from_secs(1)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[{e}] the archive ends at {last:?}: {archive:?}\n{}",
            tail(&a.pod(0).log("sidecar"))
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let archived = store.archive().await.unwrap().len();

    // A new release restored to the target.
    let mut b = Cluster::new(engine);
    let to = humantime::format_rfc3339_seconds(target).to_string();
    b.extra_env.extend(s3.env_for(&b, "pitr-b"));
    b.extra_env.extend([
        (
            "MYSQL_STS_RESTORE_URL".into(),
            format!("s3://{}/pitr", common::s3::BUCKET),
        ),
        ("MYSQL_STS_RESTORE_TO_TIME".into(), to.clone()),
    ]);
    let restoring = Instant::now();
    b.start_pod(0).await;
    b.wait_ready(0, Duration::from_secs(180)).await;
    let restore_secs = restoring.elapsed().as_secs_f64();
    let init_log = std::fs::read_to_string(b.pod(0).log("init")).unwrap_or_default();
    assert!(
        init_log.contains("restoring a backup and the binary logs after it"),
        "[{e}] {init_log}"
    );
    let restored = ids(&b, 0).await;
    let missing: Vec<_> = before.difference(&restored).collect();
    let extra: Vec<_> = restored.difference(&before).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "[{e}] restored to {to}: {} rows committed before it missing ({:?}…), {} after it present ({:?}…)",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(5).collect::<Vec<_>>()
    );
    // The rest of the new release seeds from its master as usual.
    b.start_pod(1).await;
    b.wait_ready(1, Duration::from_secs(180)).await;
    assert_eq!(
        ids(&b, 1).await,
        restored,
        "[{e}] mysql-1 of the new release"
    );
    // Another new release restored to the same point named by its GTID.
    let mut c = Cluster::new(engine);
    c.extra_env.extend(s3.env_for(&c, "pitr-c"));
    c.extra_env.extend([
        (
            "MYSQL_STS_RESTORE_URL".into(),
            format!("s3://{}/pitr", common::s3::BUCKET),
        ),
        ("MYSQL_STS_RESTORE_TO_GTID".into(), at_gtid.clone()),
    ]);
    let restoring = Instant::now();
    c.start_pod(0).await;
    c.wait_ready(0, Duration::from_secs(180)).await;
    let gtid_secs = restoring.elapsed().as_secs_f64();
    let to_gtid = ids(&c, 0).await;
    assert!(
        to_gtid == before,
        "[{e}] restored to {at_gtid}: {} rows committed up to it missing, {} after it present",
        before.difference(&to_gtid).count(),
        to_gtid.difference(&before).count()
    );
    let line = format!(
        "backup {} then {} rows in the archive's {archived} logs; a new release restored to {to}: \
         the {} rows committed before it, none of the {after} after it, ready in {restore_secs:.1} s; \
         its mysql-1 cloned from it, equal; another restored to the same point by its GTID ({at_gtid}): \
         the same rows, ready in {gtid_secs:.1} s",
        backup.id,
        acks.len(),
        before.len()
    );
    eprintln!("[{e}] {line}");
    report_scenario("B4. point-in-time restore", engine, &line);
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_restore_to_a_point_in_time() {
    point_in_time(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_restore_to_a_point_in_time() {
    point_in_time(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_restore_to_a_point_in_time() {
    point_in_time(Engine::Mysql).await;
}

/// `mysql-sts backups` on this host against the store over HTTPS.
fn list_over_tls(s3: &S3, ca: Option<&std::path::Path>) -> (bool, String) {
    let mut cmd = std::process::Command::new(agent_binary());
    cmd.args(["backups", "--backup-url", "s3://backups/tls"])
        .arg(format!(
            "--backup-endpoint=https://127.0.0.1:{}",
            s3.https_port.unwrap()
        ))
        .env("MYSQL_STS_BACKUP_ACCESS_KEY", common::s3::ACCESS_KEY)
        .env("MYSQL_STS_BACKUP_SECRET_KEY", common::s3::SECRET_KEY);
    if let Some(ca) = ca {
        cmd.arg(format!("--backup-ca-file={}", ca.display()));
    }
    let out = cmd.output().unwrap();
    (
        out.status.code() == Some(0),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The store's certificate is verified: against the CA given, or the
/// system's trust store, which knows nothing of the test's CA.
#[test]
fn the_stores_certificate_is_verified() {
    let ca = common::tls::ca("mysql-sts test store CA");
    let s3 = S3::start_tls(&ca);
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ca.crt");
    std::fs::write(&ours, ca.pem()).unwrap();
    let other = dir.path().join("other.crt");
    std::fs::write(&other, common::tls::ca("another CA").pem()).unwrap();
    let (ok, said) = list_over_tls(&s3, Some(&ours));
    assert!(ok, "with the store's CA: {said}");
    for (ca, what) in [
        (Some(other.as_path()), "another CA"),
        (None, "the system's trust store"),
    ] {
        let (ok, said) = list_over_tls(&s3, ca);
        assert!(!ok, "the store's certificate was taken with {what}");
        assert!(
            said.contains("invalid peer certificate: UnknownIssuer"),
            "{what}: {said}"
        );
        assert!(
            said.contains("exit_code=5") || said.contains("mysql-sts: error"),
            "{said}"
        );
    }
}
