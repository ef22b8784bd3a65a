//! A StatefulSet's life, on real servers, for each engine: ordered bootstrap,
//! replication with equal checksums, refused writes on replicas, scale-up
//! cloning from the highest pod, replica and master restarts, the clone
//! endpoint's authentication, and no secret in what the agent shows.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::Queryable;
use mysql_sts::sidecar::readiness;

async fn row_count(c: &Cluster, n: u32) -> u64 {
    let mut conn = c.root(n).await;
    let v = scalar(&mut conn, "SELECT COUNT(*) FROM app.t").await;
    let _ = conn.disconnect().await;
    v.and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Waits until pod `n` has `rows` rows in app.t (it replicates).
async fn wait_rows(c: &Cluster, n: u32, rows: u64, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = row_count(c, n).await;
        if got == rows {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "mysql-{n} has {got} of {rows} rows after {within:?}; status: {}\nsidecar log:\n{}",
            c.status(n).await,
            tail(&c.pod(n).log("sidecar"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn insert(c: &Cluster, from: u64, to: u64) {
    let mut conn = c.root(0).await;
    for i in from..to {
        conn.exec_drop(
            "INSERT INTO app.t (id, v) VALUES (?, REPEAT(SHA2(?, 256), 4))",
            (i, i),
        )
        .await
        .unwrap();
    }
    conn.disconnect().await.unwrap();
}

async fn assert_checksums_agree(c: &Cluster) {
    let mut sums = Vec::new();
    for n in c.pods.keys() {
        let mut conn = c.root(*n).await;
        sums.push((*n, checksum(&mut conn, "app.t").await));
        conn.disconnect().await.unwrap();
    }
    assert!(
        sums.iter().all(|(_, s)| *s == sums[0].1),
        "CHECKSUM TABLE differs: {sums:?}"
    );
}

/// Waits until pod `n`'s `/status` (its init's or its sidecar's) says
/// `phase`; panics with what it said last and the pod's logs.
async fn wait_phase(c: &Cluster, n: u32, phase: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let said = c
            .get(n, "/status")
            .await
            .map_or_else(|e| e, |(_, body)| body);
        let st: serde_json::Value = serde_json::from_str(&said).unwrap_or_default();
        if st["phase"] == phase {
            return;
        }
        assert!(
            started.elapsed() < within,
            "[{}] mysql-{n} is not {phase:?} after {within:?}: {said}\ninit log:\n{}\nsidecar log:\n{}",
            c.engine.name(),
            tail(&c.pod(n).log("init")),
            tail(&c.pod(n).log("sidecar"))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// mysql-0 stopped and its datadir emptied, as a lost volume leaves it.
fn lose_master_volume(c: &mut Cluster) {
    c.stop_pod(0);
    let dd = c.pod(0).datadir();
    std::fs::remove_dir_all(&dd).unwrap();
    std::fs::create_dir(&dd).unwrap();
}

fn clone_donor(c: &Cluster, n: u32) -> String {
    let info = std::fs::read_to_string(c.pod(n).datadir().join(".mysql-sts-clone.json"))
        .unwrap_or_else(|e| panic!("mysql-{n} has no clone record: {e}"));
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    v["donor"].as_str().unwrap().to_owned()
}

async fn lifecycle(engine: Engine, tls: bool) {
    let mut c = Cluster::new(engine);
    if tls {
        c.enable_tls();
    }
    let e = engine.name();

    // Bootstrap in order, as OrderedReady does.
    let mut times = Vec::new();
    for n in 0..3 {
        let started = Instant::now();
        c.start_pod(n).await;
        c.wait_ready(n, Duration::from_secs(120)).await;
        times.push(started.elapsed());
    }
    eprintln!(
        "[{e}] bootstrap: mysql-0 {:.1} s, mysql-1 {:.1} s, mysql-2 {:.1} s, total {:.1} s",
        times[0].as_secs_f64(),
        times[1].as_secs_f64(),
        times[2].as_secs_f64(),
        times.iter().sum::<Duration>().as_secs_f64()
    );
    assert_eq!(clone_donor(&c, 1), format!("mysql-0.{DOMAIN}"));
    let st = c.status(2).await;
    assert_eq!(
        st["cloned_from"]["donor"],
        format!("mysql-1.{DOMAIN}"),
        "{st}"
    );
    let (_, metrics) = c.get(2, "/metrics").await.unwrap();
    assert!(
        !metrics.contains("mysql_sts_clone_received_bytes 0\n"),
        "{metrics}"
    );
    assert_eq!(clone_donor(&c, 2), format!("mysql-1.{DOMAIN}"));
    // A MariaDB donor's backup tool runs in the agent's container: its
    // peak memory is measured, and must fit the chart's sidecar limit.
    if engine.is_mariadb() {
        let (_, metrics) = c.get(0, "/metrics").await.unwrap();
        let peak: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("mysql_sts_clone_backup_peak_rss_bytes "))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no backup peak memory: {metrics}"));
        eprintln!(
            "[{e}] mariadb-backup peak RSS serving mysql-1: {} MiB",
            peak >> 20
        );
        assert!(peak > 1 << 20 && peak < 256 << 20, "{peak}");
        report_scenario(
            "17. a donor's backup within the agent container's memory limit",
            engine,
            &format!(
                "mariadb-backup's peak RSS {} MiB serving a clone (limit 256 MiB)",
                peak >> 20
            ),
        );
    }
    for n in 1..3 {
        let st = c.status(n).await;
        assert_eq!(st["identity"]["role"], "replica");
        assert_eq!(st["ready"]["ready"], true, "{st}");
        assert_eq!(
            st["replication"]["source_host"],
            format!("mysql-0.{DOMAIN}"),
            "{st}"
        );
        assert_eq!(st["replication"]["gtid_positioning"], true, "{st}");
    }
    assert_eq!(c.status(0).await["identity"]["role"], "master");
    if tls {
        // The agents speak TLS only: plain HTTP gets nothing.
        let plain = http_get(&format!("http://{}:8080/readyz", c.pod(1).ip)).await;
        assert!(
            !matches!(plain, Ok((200, _))),
            "plain HTTP answered: {plain:?}"
        );
        let probe = c
            .pod_command(1, &c.agent_argv(&["probe", "ready"]))
            .output()
            .unwrap();
        assert!(probe.status.success(), "probe over TLS: {probe:?}");
    }

    // Writes on the master reach every replica, identical.
    {
        let mut m = c.root(0).await;
        for sql in [
            "CREATE DATABASE app".to_owned(),
            "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT) ENGINE=InnoDB".to_owned(),
            format!("CREATE USER app@'%' IDENTIFIED BY '{APP_PASSWORD}'"),
            "GRANT ALL ON app.* TO app@'%'".to_owned(),
        ] {
            m.query_drop(sql).await.unwrap();
        }
        m.disconnect().await.unwrap();
    }
    insert(&c, 0, 500).await;
    for n in 1..3 {
        wait_rows(&c, n, 500, Duration::from_secs(30)).await;
    }
    if tls {
        replication_verifies_the_master(&mut c).await;
    }
    assert_checksums_agree(&c).await;

    // Writes to a replica are refused (for root too, where the engine can).
    for n in 1..3 {
        let mut app = connect_tcp(&c.pod(n).ip, "app", APP_PASSWORD).await;
        let err = app
            .query_drop("INSERT INTO app.t (id, v) VALUES (1000000, 'x')")
            .await
            .expect_err("a replica took a write");
        assert!(
            err.to_string().contains("read-only")
                || err.to_string().contains("read only")
                || err.to_string().contains("--read-only"),
            "{err}"
        );
        if engine == Engine::Mysql {
            let mut root = c.root(n).await;
            let err = root
                .query_drop("INSERT INTO app.t (id, v) VALUES (1000001, 'x')")
                .await
                .expect_err("root wrote to a super-read-only replica");
            assert!(err.to_string().contains("super-read-only"), "{err}");
        }
    }

    // Scale up: mysql-3 clones from mysql-2 while the master takes writes.
    let started = Instant::now();
    let writer = {
        let ip = c.pod(0).ip.clone();
        tokio::spawn(async move {
            let mut conn = connect_tcp(&ip, "root", ROOT_PASSWORD).await;
            for i in 500..700u64 {
                conn.exec_drop(
                    "INSERT INTO app.t (id, v) VALUES (?, 'during scale-up')",
                    (i,),
                )
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    c.start_pod(3).await;
    c.wait_ready(3, Duration::from_secs(120)).await;
    writer.await.unwrap();
    eprintln!(
        "[{e}] scale-up to mysql-3: ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(clone_donor(&c, 3), format!("mysql-2.{DOMAIN}"));
    for n in 1..4 {
        wait_rows(&c, n, 700, Duration::from_secs(30)).await;
    }
    assert_checksums_agree(&c).await;

    // Restart a replica: no second clone, and it catches up.
    let record = std::fs::read(c.pod(1).datadir().join(".mysql-sts-clone.json")).unwrap();
    let sidecar = c.stop_pod(1).unwrap();
    assert!(
        sidecar.success(),
        "the sidecar did not exit 0 on SIGTERM: {sidecar}"
    );
    insert(&c, 700, 800).await;
    let (status, out) = c.run_init(1, &[]);
    assert!(status.success(), "{out}");
    assert!(
        out.contains("keeping it"),
        "init did not keep the data:\n{out}"
    );
    assert_eq!(
        std::fs::read(c.pod(1).datadir().join(".mysql-sts-clone.json")).unwrap(),
        record
    );
    c.start_server(1);
    c.start_sidecar(1);
    c.wait_ready(1, Duration::from_secs(60)).await;
    wait_rows(&c, 1, 800, Duration::from_secs(30)).await;

    // Restart the master: replicas resume by themselves within seconds.
    c.stop_server(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in 1..4 {
        let (code, body) = c.get(n, "/readyz").await.unwrap();
        assert_eq!(
            code, 200,
            "a short master outage took mysql-{n} out of service: {body}"
        );
    }
    c.start_server(0);
    let back = Instant::now();
    insert(&c, 800, 801).await;
    for n in 1..4 {
        wait_rows(&c, n, 801, Duration::from_secs(20)).await;
    }
    eprintln!(
        "[{e}] master restart: every replica replicating again {:.1} s after the master was back",
        back.elapsed().as_secs_f64()
    );
    assert_checksums_agree(&c).await;

    // The clone endpoint wants the token.
    for bearer in [
        None,
        Some("wrong-token"),
        Some(&CLONE_TOKEN[..CLONE_TOKEN.len() - 1]),
    ] {
        let (code, body) = c.get_with(2, "/clone", bearer).await.unwrap();
        assert_eq!(code, 401, "{bearer:?}: {body}");
        assert!(body.len() < 200, "a refused request got data");
    }
    if engine.is_mariadb() {
        // One stream at a time: a second request is told the donor is busy.
        let first = c.request(2, "/clone", Some(CLONE_TOKEN)).await.unwrap();
        assert_eq!(first.status(), 200);
        let estimate: u64 = first.headers()["x-mysql-sts-estimated-bytes"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(estimate > 1_000_000, "estimate {estimate}");
        let st = c.status(2).await;
        assert!(st["clone_stream"]["recipient"].is_string(), "{st}");
        let (code, body) = c.get_with(2, "/clone", Some(CLONE_TOKEN)).await.unwrap();
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("busy"), "{body}");
        drop(first);
    }

    master_purged_what_a_replica_needs(&mut c).await;
    errant_then_reclone(&mut c).await;
    donor_with_a_copy_aside(&mut c).await;
    reseed_waits_for_a_stopped_server(&mut c).await;
    reseed_master(&mut c).await;
    if engine.is_mariadb() {
        reseed_over_an_unseen_write(&mut c).await;
    }

    // No binary or relay log holds a password in clear: the replication
    // account the master's sidecar keeps is logged (the replicas need it),
    // with its password hashed.
    for n in 0..4 {
        for f in std::fs::read_dir(c.pod(n).datadir()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("binlog.") || name.starts_with("relay.")) {
                continue;
            }
            let bytes = std::fs::read(f.path()).unwrap();
            for secret in [ROOT_PASSWORD, REPL_PASSWORD] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "[{e}] mysql-{n}'s {name} holds a password in clear"
                );
            }
        }
    }

    // No process shows a secret in its argv.
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        for secret in [ROOT_PASSWORD, REPL_PASSWORD, CLONE_TOKEN] {
            assert!(!cmdline.contains(secret), "a secret in argv: {cmdline:?}");
        }
    }

    // Nothing the agent shows holds a secret.
    for n in 0..4 {
        let (_, status) = c.get(n, "/status").await.unwrap();
        let (_, metrics) = c.get(n, "/metrics").await.unwrap();
        let logs = std::fs::read_to_string(c.pod(n).log("sidecar")).unwrap()
            + &std::fs::read_to_string(c.pod(n).log("init")).unwrap();
        for secret in [ROOT_PASSWORD, REPL_PASSWORD, CLONE_TOKEN] {
            for (what, text) in [("status", &status), ("metrics", &metrics), ("logs", &logs)] {
                assert!(!text.contains(secret), "mysql-{n} {what} shows a secret");
            }
        }
        assert!(
            metrics.contains("mysql_sts_ready 1"),
            "mysql-{n}: {metrics}"
        );
        // Exactly one cause is set, and it is one under which the pod is ready
        // (a replica may still be reconnecting after the master's restart).
        let set: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("mysql_sts_readiness_cause{") && l.ends_with("} 1"))
            .collect();
        let ready_causes: &[&str] = if n == 0 {
            &["master_writable"]
        } else {
            &["replicating", "master_outage_grace"]
        };
        assert!(
            set.len() == 1
                && ready_causes
                    .iter()
                    .any(|c| set[0] == format!("mysql_sts_readiness_cause{{cause=\"{c}\"}} 1")),
            "mysql-{n}: {set:?}"
        );
        assert_eq!(
            metrics.matches("mysql_sts_readiness_cause{").count(),
            readiness::Cause::ALL.len(),
            "one series per cause"
        );
        assert!(
            metrics.contains(&format!("mysql_sts_master {}\n", u8::from(n == 0))),
            "mysql-{n}: {metrics}"
        );
    }

    aside_copies_are_not_empty(&mut c).await;
    // Last: it leaves the replicas diverged, as it must.
    fresh_master_over_replicas(&mut c).await;
}

/// While mysql-0 is down, every replica's data is moved aside for a
/// re-clone (as `--reclone` or `--auto-reclone` do) and the replicas wait for
/// a donor; then mysql-0 loses its volume. The copies aside are all the data
/// there is: the empty master must not start a new cluster over them (each
/// replica used to answer "empty", and it did), but refuse, naming each copy,
/// leaving its datadir as it was. Moved back as the message says, the copies
/// serve again and the master re-seeds from them with every row.
async fn aside_copies_are_not_empty(c: &mut Cluster) {
    let e = c.engine.name();
    let rows = row_count(c, 1).await;
    lose_master_volume(c);
    let dd = c.pod(0).datadir();
    let mut waiting = Vec::new();
    for n in 1..4 {
        std::fs::write(c.pod(n).datadir().join(".mysql-sts-reclone"), b"").unwrap();
        c.stop_pod(n);
        waiting.push(c.spawn_init(n, &["--donor-timeout", "10m"]));
    }
    for n in 1..4 {
        wait_phase(c, n, "waiting for a donor", Duration::from_secs(60)).await;
    }
    let (status, out) = c.run_init(0, &["--reseed-timeout", "60s"]);
    assert_eq!(status.code(), Some(3), "[{e}] {out}");
    for n in 1..4 {
        let st = c.status(n).await;
        assert!(
            st["aside_copies"][0]["dir"]
                .as_str()
                .is_some_and(|d| d.starts_with(".mysql-sts-old/")),
            "[{e}] mysql-{n} does not show its copy: {st}"
        );
    }
    assert!(out.contains("will not start empty"), "[{e}] {out}");
    for n in 1..4 {
        assert!(
            out.contains(&format!("mysql-{n}.{DOMAIN} holds .mysql-sts-old/")),
            "[{e}] the refusal does not name mysql-{n}'s copy: {out}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&dd)
            .unwrap()
            .flatten()
            .filter(|f| !f.file_name().to_string_lossy().starts_with('.'))
            .count(),
        0,
        "[{e}] the refused master's datadir is not empty"
    );
    eprintln!("[{e}] an empty master over copies set aside refused: {out}");
    // Keep the copies, as the message says: back into place, then the pods.
    for child in waiting {
        kill_group(child);
    }
    for n in 1..4 {
        // The newest copy (mysql-3 keeps an older, errant one).
        let data = c.pod(n).datadir();
        let copy = std::fs::read_dir(data.join(".mysql-sts-old"))
            .unwrap()
            .flatten()
            .map(|d| d.path())
            .max()
            .unwrap();
        for f in std::fs::read_dir(&copy).unwrap().flatten() {
            if f.file_name() != ".mysql-sts-reclone" {
                std::fs::rename(f.path(), data.join(f.file_name())).unwrap();
            }
        }
        std::fs::remove_dir_all(&copy).unwrap();
        c.start_pod(n).await;
    }
    let (status, out) = c.run_init(0, &[]);
    assert!(
        status.success() && out.contains("re-seeding"),
        "[{e}] {out}"
    );
    c.start_server(0);
    c.start_sidecar(0);
    for n in 0..4 {
        c.wait_ready(n, Duration::from_secs(120)).await;
    }
    assert_eq!(row_count(c, 0).await, rows, "[{e}] rows lost");
    assert_checksums_agree(c).await;
    report_scenario(
        "2. the master lost while replicas' data is set aside for a re-clone",
        c.engine,
        &format!(
            "mysql-0's init exited 3 naming the 3 copies; moved back, mysql-0 re-seeded from them with all {rows} rows"
        ),
    );
}

/// mysql-3 is down while the master takes writes and purges its binary logs:
/// when it comes back it cannot catch up, and it says so instead of looping.
async fn master_purged_what_a_replica_needs(c: &mut Cluster) {
    c.stop_pod(3);
    let rows = row_count(c, 0).await;
    insert(c, rows + 2_000_000, rows + 2_000_005).await;
    // MariaDB keeps a binary log until its transactions are checkpointed:
    // rotate and purge until the log holding the new rows is gone.
    let mut m = c.root(0).await;
    let names = |rows: Vec<mysql_async::Row>| -> Vec<String> {
        rows.into_iter()
            .map(|r| r.get::<String, _>(0).unwrap())
            .collect()
    };
    let first = names(m.query("SHOW BINARY LOGS").await.unwrap())
        .first()
        .cloned();
    let started = Instant::now();
    loop {
        m.query_drop("FLUSH BINARY LOGS").await.unwrap();
        m.query_drop("PURGE BINARY LOGS BEFORE NOW() + INTERVAL 1 DAY")
            .await
            .unwrap();
        let logs = names(m.query("SHOW BINARY LOGS").await.unwrap());
        if logs.len() == 1 && logs.first() != first.as_ref() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "cannot purge: {logs:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    m.disconnect().await.unwrap();
    c.start_pod(3).await;
    let started = Instant::now();
    loop {
        let (code, body) = c
            .get(3, "/readyz")
            .await
            .unwrap_or((0, "no answer yet".into()));
        if code == 503 && body.contains("purged binary logs") {
            eprintln!("[{}] purged binlogs reported: {body}", c.engine.name());
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "purged binlogs not reported: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(c.status(3).await["gtid_missing_on_master"].is_string());
}

/// A local write on a replica is errant: the replica leaves the read Service
/// and says why; a requested re-clone moves its data aside and heals it.
async fn errant_then_reclone(c: &mut Cluster) {
    let e = c.engine.name();
    c.hand_write(3, "INSERT INTO app.t (id, v) VALUES (999999, 'errant')")
        .await;
    let started = Instant::now();
    let reason = loop {
        let (code, body) = c.get(3, "/readyz").await.unwrap();
        if code == 503 && body.contains("errant") {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "errant transaction not reported: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "[{e}] errant write on mysql-3 detected in {:.1} s: {reason}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        c.status(3).await["gtid_errant"]
            .as_str()
            .is_some_and(|g| !g.is_empty())
    );
    let (_, metrics) = c.get(3, "/metrics").await.unwrap();
    assert!(
        !metrics.contains("mysql_sts_gtid_errant_transactions 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mysql_sts_readiness_cause{cause=\"errant_transactions\"} 1\n"),
        "{metrics}"
    );

    std::fs::write(c.pod(3).datadir().join(".mysql-sts-reclone"), b"").unwrap();
    c.stop_pod(3);
    let (status, out) = c.run_init(3, &[]);
    assert!(status.success(), "{out}");
    assert!(out.contains("moved aside"), "{out}");
    let aside: Vec<_> = std::fs::read_dir(c.pod(3).datadir().join(".mysql-sts-old"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(aside.len(), 1, "the old data must be kept aside");
    assert!(aside[0].path().join("mysql").is_dir());
    // MySQL walks the datadir for tablespaces at start-up and refuses two
    // with the same id: the copy aside holds the same system tablespaces
    // as the new one, and the server must start beside it all the same.
    if c.engine.flavor() == mysql_sts::engine::Flavor::Mysql {
        for f in ["mysql.ibd", "undo_001", "ibdata1"] {
            assert!(
                aside[0].path().join(f).exists(),
                "{f} not in the copy aside"
            );
            assert!(
                c.pod(3).datadir().join(f).exists(),
                "{f} not in the new copy"
            );
        }
    }
    c.start_server(3);
    c.start_sidecar(3);
    c.wait_ready(3, Duration::from_secs(120)).await;
    let master_rows = row_count(c, 0).await;
    wait_rows(c, 3, master_rows, Duration::from_secs(30)).await;
    let mut r = c.root(3).await;
    let dbs: Vec<String> = r.query("SHOW DATABASES").await.unwrap();
    assert!(
        dbs.iter().all(|d| !d.contains("mysql-sts")),
        "the data moved aside shows as a database: {dbs:?}"
    );
    r.disconnect().await.unwrap();
    assert_checksums_agree(c).await;
}

/// mysql-0 loses its datadir while down: it re-seeds from the most advanced
/// replica instead of starting empty, and the replicas follow it again.
/// The master starts over empty (`--fresh-master`: its volume lost, the
/// operator chose to start empty) while the replicas hold the old data. A
/// replica is caught as diverged and takes nothing from the new master, also
/// once the new master's sequence numbers passed its own (MariaDB would then
/// resume from its own position, skipping the master's transactions) and the
/// replica restarted.
async fn fresh_master_over_replicas(c: &mut Cluster) {
    let e = c.engine.name();
    let rows = row_count(c, 1).await;
    let held = c.status(1).await["gtid_executed"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // mysql-2 is down the whole time: it comes back only once the new master
    // has passed every sequence number it holds, with no record of anything.
    assert_eq!(row_count(c, 2).await, rows);
    c.stop_pod(2);
    lose_master_volume(c);
    let (status, out) = c.run_init(0, &["--fresh-master"]);
    assert!(status.success(), "{out}");
    c.entrypoint_or_skip(0).await;
    c.start_server(0);
    c.start_sidecar(0);
    c.wait_ready(0, Duration::from_secs(120)).await;
    let started = Instant::now();
    while !diverged(c, 1).await.0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "[{e}] mysql-1 not caught as diverged: {}",
            diverged(c, 1).await.1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The new master's own history, past every sequence number mysql-1 holds.
    let past: u64 = held
        .split(',')
        .filter_map(|g| g.rsplit(['-', ':']).next()?.parse().ok())
        .max()
        .unwrap_or(0)
        .min(5000)
        + 5;
    let mut m = c.root(0).await;
    m.query_drop("CREATE DATABASE fresh").await.unwrap();
    m.query_drop("CREATE TABLE fresh.t (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    for i in 0..past {
        m.query_drop(format!("INSERT INTO fresh.t VALUES ({i})"))
            .await
            .unwrap();
    }
    m.disconnect().await.unwrap();
    // mysql-1 restarts as a pod does: init, server, sidecar.
    c.stop_pod(1);
    let (status, out) = c.run_init(1, &[]);
    assert!(status.success(), "{out}");
    assert!(out.contains("diverged"), "{out}");
    c.start_server(1);
    c.start_sidecar(1);
    tokio::time::sleep(Duration::from_secs(5)).await;
    still_off(c, 1, rows).await;
    eprintln!(
        "[{e}] a master that started over: mysql-1 caught as diverged in {:.1} s, still off after {past} new transactions and a restart",
        started.elapsed().as_secs_f64()
    );

    // mysql-2 was away: its position is a sequence number the new master has
    // issued too, for other data. It must be caught before it applies any.
    let (status, out) = c.run_init(2, &[]);
    assert!(status.success(), "{out}");
    c.start_server(2);
    c.start_sidecar(2);
    let started = Instant::now();
    while !diverged(c, 2).await.0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "[{e}] mysql-2, back after the new master passed its position, not caught as diverged: {}",
            diverged(c, 2).await.1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    still_off(c, 2, rows).await;
    eprintln!(
        "[{e}] mysql-2, away while the new master passed its position: caught as diverged in {:.1} s, nothing applied",
        started.elapsed().as_secs_f64()
    );
}

/// Pod `n`, found diverged, is still not ready for it, holds its `rows`, and
/// took none of the new master's transactions (database `fresh`).
async fn still_off(c: &Cluster, n: u32, rows: u64) {
    let e = c.engine.name();
    let (still, body) = diverged(c, n).await;
    assert!(
        still,
        "[{e}] mysql-{n} ready again over diverged data: {body}"
    );
    assert_eq!(
        row_count(c, n).await,
        rows,
        "[{e}] mysql-{n}'s data changed"
    );
    let mut r = c.root(n).await;
    let dbs: Vec<String> = r.query("SHOW DATABASES").await.unwrap();
    assert!(
        !dbs.iter().any(|d| d == "fresh"),
        "[{e}] mysql-{n} applied the new master's transactions: {dbs:?}"
    );
    r.disconnect().await.unwrap();
}

/// With TLS, the replicas verify the master's certificate against the CA: a
/// master serving one that another CA signed, for the very same names, is
/// turned away, and the replicas are back once it serves the right one.
async fn replication_verifies_the_master(c: &mut Cluster) {
    let e = c.engine.name();
    let (dir, seen) = c.tls_dir();
    for n in 1..3 {
        let st = c.status(n).await;
        assert_eq!(st["replication"]["ssl_verify"], true, "[{e}] {st}");
        assert_eq!(
            st["replication"]["ssl_ca"],
            seen.join("ca.pem").display().to_string(),
            "[{e}] {st}"
        );
    }
    let rogue_ca = common::tls::ca("some other CA");
    let (cert, key) = common::tls::signed(&rogue_ca, vec![format!("*.{DOMAIN}")]);
    std::fs::write(dir.join("rogue.crt"), cert).unwrap();
    std::fs::write(dir.join("rogue.key"), key).unwrap();
    let rogue = c.pod(0).host_dir.join("conf.d/zz-rogue.cnf");
    std::fs::write(
        &rogue,
        format!(
            "[mysqld]\nssl_cert={}\nssl_key={}\n",
            seen.join("rogue.crt").display(),
            seen.join("rogue.key").display()
        ),
    )
    .unwrap();
    c.stop_server(0);
    c.start_server(0);
    c.wait_ready(0, Duration::from_secs(60)).await;
    let rows = row_count(c, 1).await;
    insert(c, 3_000_000, 3_000_003).await;
    let started = Instant::now();
    let refused = loop {
        let (_, body) = c.get(1, "/readyz").await.unwrap_or((0, String::new()));
        // The IO thread's error, as the sidecar reports it while it retries.
        if body.contains("2026") || body.contains("SSL") || body.contains("certificate") {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "[{e}] mysql-1 did not turn away a master with a foreign certificate: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "[{e}] a master serving a certificate another CA signed: turned away in {:.1} s: {refused}",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in 1..3 {
        assert_eq!(
            row_count(c, n).await,
            rows,
            "[{e}] mysql-{n} took rows from a master it could not verify"
        );
    }
    std::fs::remove_file(&rogue).unwrap();
    c.stop_server(0);
    c.start_server(0);
    for n in 1..3 {
        wait_rows(c, n, rows + 3, Duration::from_secs(60)).await;
        c.wait_ready(n, Duration::from_secs(60)).await;
    }
    let mut m = c.root(0).await;
    m.query_drop("DELETE FROM app.t WHERE id >= 3000000")
        .await
        .unwrap();
    m.disconnect().await.unwrap();
    for n in 1..3 {
        wait_rows(c, n, rows, Duration::from_secs(30)).await;
    }
}

/// Whether pod `n` is not ready for errant transactions, and what it said.
async fn diverged(c: &Cluster, n: u32) -> (bool, String) {
    let (code, body) = c
        .get(n, "/readyz")
        .await
        .unwrap_or((0, "no answer yet".into()));
    (code == 503 && body.contains("errant"), body)
}

/// mysql-3 keeps the copy its re-clone set aside; a new mysql-4 clones from
/// it (pod N-1) all the same, and takes nothing of the copy.
async fn donor_with_a_copy_aside(c: &mut Cluster) {
    let e = c.engine.name();
    assert!(c.pod(3).datadir().join(".mysql-sts-old").is_dir());
    c.start_pod(4).await;
    c.wait_ready(4, Duration::from_secs(120)).await;
    assert_eq!(clone_donor(c, 4), format!("mysql-3.{DOMAIN}"), "[{e}]");
    assert!(
        !c.pod(4).datadir().join(".mysql-sts-old").exists(),
        "[{e}] the donor's copy aside came with the clone"
    );
    wait_rows(c, 4, row_count(c, 0).await, Duration::from_secs(30)).await;
    c.remove_pod(4);
}

/// mysql-1's server is down while its sidecar runs on, still showing what
/// it last read; then mysql-0 loses its datadir. What mysql-1 holds is not
/// known (and it cannot donate): the empty master waits for it rather than
/// re-seed from it (it used to, and the clone failed on the stopped server),
/// and says whom it waited for.
async fn reseed_waits_for_a_stopped_server(c: &mut Cluster) {
    let e = c.engine.name();
    c.stop_server(1);
    wait_phase(
        c,
        1,
        "waiting for the local server",
        Duration::from_secs(30),
    )
    .await;
    lose_master_volume(c);
    let (status, out) = c.run_init(0, &["--reseed-timeout", "8s"]);
    assert_eq!(status.code(), Some(3), "[{e}] {out}");
    assert!(
        out.contains(&format!("mysql-1.{DOMAIN} did not say what they hold")),
        "[{e}] {out}"
    );
    // Its server back, it says what it holds again (the master is still
    // away: ready or not, its phase says its server answered).
    c.start_server(1);
    wait_phase(c, 1, "replicating", Duration::from_secs(30)).await;
}

/// MariaDB: mysql-1 is cut off from the master while the master commits a
/// row that the other replicas get; the master is lost with its volume, and
/// then root writes on mysql-1, which no master can compare any more. Its
/// position (`0-101-N`) and the tip the others hold (`0-100-N`) have the same
/// sequence number: the re-seed used to take mysql-1 (the first of equals)
/// and lose the row. Its own server_id names the write as its own: it is
/// no source, and the master re-seeds from a peer with the row.
async fn reseed_over_an_unseen_write(c: &mut Cluster) {
    let e = c.engine.name();
    let rows = row_count(c, 0).await;
    for n in 1..4 {
        wait_rows(c, n, rows, Duration::from_secs(30)).await;
    }
    // Both ways: what the master sends on a link already open would arrive.
    c.partition(1, 0, true);
    c.partition(0, 1, true);
    let tip = 5_000_000;
    insert(c, tip, tip + 1).await;
    for n in 2..4 {
        wait_rows(c, n, rows + 1, Duration::from_secs(30)).await;
    }
    lose_master_volume(c);
    c.partition(1, 0, false);
    c.partition(0, 1, false);
    assert_eq!(row_count(c, 1).await, rows, "[{e}] mysql-1 got the row");
    c.hand_write(1, "INSERT INTO app.t (id, v) VALUES (5000001, 'by hand')")
        .await;
    let (status, out) = c.run_init(0, &[]);
    assert!(status.success(), "[{e}] {out}");
    assert!(
        !out.contains(&format!("donor=mysql-1.{DOMAIN}")),
        "[{e}] re-seeded from the replica written by hand: {out}"
    );
    c.start_server(0);
    c.start_sidecar(0);
    c.wait_ready(0, Duration::from_secs(120)).await;
    let mut m = c.root(0).await;
    let got = scalar(
        &mut m,
        &format!("SELECT COUNT(*) FROM app.t WHERE id = {tip}"),
    )
    .await;
    m.disconnect().await.unwrap();
    assert_eq!(
        got.as_deref(),
        Some("1"),
        "[{e}] the master's last row was lost"
    );
    // mysql-1 holds a write of its own: cloned again, it follows once more.
    std::fs::write(c.pod(1).datadir().join(".mysql-sts-reclone"), b"").unwrap();
    c.stop_pod(1);
    c.start_pod(1).await;
    c.wait_ready(1, Duration::from_secs(120)).await;
    wait_rows(c, 1, rows + 1, Duration::from_secs(30)).await;
}

/// mysql-0 (down, its datadir already lost) re-seeds from the most advanced
/// replica, with every row they hold.
async fn reseed_master(c: &mut Cluster) {
    let e = c.engine.name();
    let rows = row_count(c, 1).await;
    lose_master_volume(c);
    let started = Instant::now();
    let (status, out) = c.run_init(0, &[]);
    assert!(status.success(), "{out}");
    assert!(out.contains("re-seeding the master"), "{out}");
    c.start_server(0);
    c.start_sidecar(0);
    c.wait_ready(0, Duration::from_secs(120)).await;
    eprintln!(
        "[{e}] master re-seeded from a replica, ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(row_count(c, 0).await, rows, "rows lost in the re-seed");
    insert(c, rows + 1_000_000, rows + 1_000_010).await;
    for n in 1..4 {
        wait_rows(c, n, rows + 10, Duration::from_secs(60)).await;
        c.wait_ready(n, Duration::from_secs(60)).await;
    }
    assert_checksums_agree(c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_statefulset_lifecycle() {
    // The MariaDB cluster runs its agents over TLS (clone stream included).
    lifecycle(Engine::Mariadb, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_statefulset_lifecycle() {
    lifecycle(Engine::Mariadb11, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_statefulset_lifecycle() {
    // With TLS: the clone requires it and verifies the donor, replication
    // verifies the master.
    lifecycle(Engine::Mysql, true).await;
}

/// A replica whose donors never resolve gives up after --donor-timeout with
/// exit 3, names what it tried, and leaves the datadir empty.
#[tokio::test(flavor = "multi_thread")]
async fn init_without_donor_exits_3() {
    let mut c = Cluster::new(Engine::Mariadb);
    c.create_pod(1);
    // Only mysql-1 is published: mysql-0 does not resolve.
    for flavor in ["mariadb", "mysql"] {
        let started = Instant::now();
        let (status, out) = c.run_init(1, &["--flavor", flavor, "--donor-timeout", "3s"]);
        assert_eq!(status.code(), Some(3), "{out}");
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(out.contains(&format!("mysql-0.{DOMAIN}")), "{out}");
        assert!(out.contains("no donor became ready"), "{out}");
        let left: Vec<_> = std::fs::read_dir(c.pod(1).datadir()).unwrap().collect();
        assert!(left.is_empty(), "init wrote into the datadir: {left:?}");
    }
}

/// Certificates renewed in place, as cert-manager renews a mounted Secret,
/// with no pod restarted: once the pods
/// run, a certificate that lives 30 s replaces theirs, and every sidecar
/// serves it; a renewal replaces that one at once; once it has expired, the
/// sidecars serve the renewal, the servers too (a replica reconnects,
/// verifying the master), and a new pod clones (verifying its donor); the
/// expiry metric tells each date. (The short-lived one comes once the pods
/// run, however long they take to start on a loaded machine.)
async fn certificates_renewed_in_place(engine: Engine) {
    let mut c = Cluster::new(engine);
    c.enable_tls();
    for n in 0..2 {
        c.start_pod(n).await;
        c.wait_ready(n, Duration::from_secs(120)).await;
    }
    let short = Instant::now();
    let short_lived = c.renew_tls(Duration::from_secs(30));
    served(&c, 2, &short_lived, Duration::from_secs(20)).await;
    let renewed = c.renew_tls(Duration::from_secs(3600));
    // Past the short-lived certificate's expiry, and one reload round.
    tokio::time::sleep(Duration::from_secs(42).saturating_sub(short.elapsed())).await;
    served(&c, 2, &renewed, Duration::from_secs(10)).await;
    // The replica connects again: the master's server must serve the new one.
    let relogin = reconnects(&c, 1, Duration::from_secs(60)).await;
    c.wait_ready(1, Duration::from_secs(60)).await;
    // A new pod clones from mysql-1 (its server or its sidecar, over TLS).
    c.start_pod(2).await;
    c.wait_ready(2, Duration::from_secs(120)).await;
    report_scenario(
        "11. certificates renewed in place",
        engine,
        &format!(
            "a 30 s certificate served by every sidecar, then renewed, no restart: past its expiry every sidecar served the renewal, \
             the replica logged in anew over TLS in {:.1} s, a new pod cloned over TLS",
            relogin.as_secs_f64()
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_certificates_renewed_in_place() {
    certificates_renewed_in_place(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_certificates_renewed_in_place() {
    certificates_renewed_in_place(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_certificates_renewed_in_place() {
    certificates_renewed_in_place(Engine::Mysql).await;
}

/// Waits until `user` logs in to pod `n` with `password` and no longer with
/// `old`; how long that took.
/// Waits until the sidecars of pods 0..`pods` serve over TLS and report
/// the expiry of certificate `cert`.
async fn served(c: &Cluster, pods: u32, cert: &str, within: Duration) {
    let e = c.engine.name();
    let want = mysql_sts::sidecar::tls::not_after_pem(cert.as_bytes()).unwrap();
    let line =
        format!("mysql_sts_tls_certificate_expiry_timestamp_seconds{{file=\"cert\"}} {want}\n");
    let deadline = Instant::now() + within;
    for n in 0..pods {
        loop {
            let body = match c.get(n, "/metrics").await {
                Ok((200, body)) => body,
                Ok((code, body)) => format!("status {code}: {body}"),
                Err(err) => format!("mysql-{n}'s sidecar serves no valid certificate: {err}"),
            };
            if body.contains(&line) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "[{e}] mysql-{n}: {line:?} not in\n{body}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn wait_password(
    c: &Cluster,
    n: u32,
    user: &str,
    password: &str,
    old: &str,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    let ip = c.pod(n).ip.clone();
    loop {
        let new = mysql_async::Conn::new(tcp_opts(&ip, user, password)).await;
        let before = mysql_async::Conn::new(tcp_opts(&ip, user, old)).await;
        if new.is_ok() && before.is_err() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "mysql-{n}: {user} logs in with the new password: {}, with the old one: {}; sidecar log:\n{}",
            new.is_ok(),
            before.is_ok(),
            tail(&c.pod(n).log("sidecar"))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until replica `n` fetches from its master, after stopping its
/// replication (its sidecar starts it again): it has logged in anew.
async fn reconnects(c: &Cluster, n: u32, within: Duration) -> Duration {
    let flavor = c.engine.flavor();
    let mut r = c.root(n).await;
    r.query_drop(flavor.stop_replica()).await.unwrap();
    let started = Instant::now();
    loop {
        let st = mysql_sts::sidecar::observe::replica_status(&mut r, flavor)
            .await
            .unwrap()
            .unwrap();
        if st.io == Some(mysql_sts::engine::replication::IoState::Yes) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "mysql-{n} does not fetch from the master again: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Item: passwords and the clone token rotated in place, as the kubelet
/// updates a mounted Secret, pod by pod. Every server takes the new root
/// and replication passwords, replication logs in with the new one (a
/// replica whose files changed first keeps its link until the master takes
/// it), a pod that was down through the change comes back (its server
/// still has the old root password: the chart keeps it as
/// `root-password-previous`), and a new pod clones with the new token.
async fn passwords_rotated_in_place(engine: Engine) {
    let e = engine.name();
    let mut c = Cluster::new(engine);
    c.use_secret_files();
    for n in 0..3 {
        c.start_pod(n).await;
        c.wait_ready(n, Duration::from_secs(120)).await;
    }
    {
        let mut m = c.root(0).await;
        m.query_drop("CREATE DATABASE app").await.unwrap();
        m.query_drop("CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT) ENGINE=InnoDB")
            .await
            .unwrap();
    }
    insert(&c, 0, 10).await;
    for n in 1..3 {
        wait_rows(&c, n, 10, Duration::from_secs(30)).await;
    }
    // mysql-2 is down while the change goes round.
    c.kill_sidecar(2);
    c.stop_server(2);

    let (root, repl, token) = (
        "root-Pw-rotated-51",
        "repl-Pw-rotated-52",
        "clone-Tok-rotated-53",
    );
    let rotate = |c: &Cluster, n: u32| {
        c.write_secret(n, "root-password", root);
        c.write_secret(n, "replication-password", repl);
        c.write_secret(n, "clone-token", token);
    };
    // The replica's files change first: it keeps its link, the master not
    // taking the new password yet.
    rotate(&c, 1);
    let on_replica =
        wait_password(&c, 1, "root", root, ROOT_PASSWORD, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    insert(&c, 10, 20).await;
    // From here on the test's own connections give the new root password.
    c.root_password = root.into();
    wait_rows(&c, 1, 20, Duration::from_secs(10)).await;
    let io = {
        let mut r = c.root(1).await;
        mysql_sts::sidecar::observe::replica_status(&mut r, engine.flavor())
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(
        io.io,
        Some(mysql_sts::engine::replication::IoState::Yes),
        "[{e}] mysql-1 dropped its link before the master took the new password: {io:?}"
    );

    // Then the master's.
    rotate(&c, 0);
    let on_master =
        wait_password(&c, 0, "root", root, ROOT_PASSWORD, Duration::from_secs(30)).await;
    let repl_on_master =
        wait_password(&c, 0, "repl", repl, REPL_PASSWORD, Duration::from_secs(30)).await;
    wait_password(&c, 1, "repl", repl, REPL_PASSWORD, Duration::from_secs(30)).await;
    // Replication logs in anew: only the new password lets it.
    let relogin = reconnects(&c, 1, Duration::from_secs(30)).await;
    insert(&c, 20, 30).await;
    wait_rows(&c, 1, 30, Duration::from_secs(30)).await;
    if engine.flavor() == mysql_sts::engine::Flavor::Mysql {
        let mut r = c.root(1).await;
        assert_eq!(
            scalar(&mut r, "SELECT @@global.super_read_only")
                .await
                .as_deref(),
            Some("1"),
            "[{e}] mysql-1 left writable by the password change"
        );
    }

    // mysql-2 comes back: old passwords in its server, new ones in its files.
    rotate(&c, 2);
    c.write_secret(2, "root-password-previous", ROOT_PASSWORD);
    let back = Instant::now();
    c.start_server(2);
    c.start_sidecar(2);
    c.wait_ready(2, Duration::from_secs(60)).await;
    wait_rows(&c, 2, 30, Duration::from_secs(30)).await;
    wait_password(&c, 2, "root", root, ROOT_PASSWORD, Duration::from_secs(10)).await;
    wait_password(&c, 2, "repl", repl, REPL_PASSWORD, Duration::from_secs(10)).await;
    let back = back.elapsed();
    reconnects(&c, 2, Duration::from_secs(30)).await;

    // The old token is refused; a new pod clones with the new one.
    let (code, _) = c.get_with(0, "/clone", Some(CLONE_TOKEN)).await.unwrap();
    assert_eq!(code, 401, "[{e}] the old clone token is still taken");
    c.create_pod(3);
    rotate(&c, 3);
    c.start_pod(3).await;
    c.wait_ready(3, Duration::from_secs(120)).await;
    wait_rows(&c, 3, 30, Duration::from_secs(30)).await;
    assert_checksums_agree(&c).await;
    report_scenario(
        "12. passwords and the clone token rotated in place",
        engine,
        &format!(
            "root changed on the replica {:.1} s and on the master {:.1} s after their files, \
         the replication account on the master {:.1} s after; replication logged in with the new one in {:.1} s; \
         mysql-2, down through the change, ready {:.1} s after it started; mysql-3 cloned with the new token",
            on_replica.as_secs_f64(),
            on_master.as_secs_f64(),
            repl_on_master.as_secs_f64(),
            relogin.as_secs_f64(),
            back.as_secs_f64()
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_passwords_rotated_in_place() {
    passwords_rotated_in_place(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_passwords_rotated_in_place() {
    passwords_rotated_in_place(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_passwords_rotated_in_place() {
    passwords_rotated_in_place(Engine::Mysql).await;
}
