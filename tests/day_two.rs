//! Day-two operations on real servers, for each engine: the master keeps the
//! binary logs a replica that is down still needs (across restarts of its
//! sidecar, whatever the server's own expiry says) and lets them go once
//! it caught up, or once they pass the disk cap (then the replica says it
//! cannot catch up).

mod common;

use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::Queryable;

async fn count(c: &Cluster, n: u32, sql: &str) -> u64 {
    let mut conn = c.root(n).await;
    let v = scalar(&mut conn, sql).await;
    let _ = conn.disconnect().await;
    v.and_then(|v| v.parse().ok()).unwrap_or(0)
}

async fn binlogs(c: &Cluster) -> usize {
    let mut conn = c.root(0).await;
    let logs: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
    conn.disconnect().await.unwrap();
    logs.len()
}

/// Waits until `check` holds for the master's status; panics with the last
/// status and the master's sidecar log.
async fn wait_master(
    c: &Cluster,
    what: &str,
    within: Duration,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let st = c.status(0).await;
        if check(&st) {
            return st;
        }
        assert!(
            started.elapsed() < within,
            "{what}: not within {within:?}; master status: {st}\nsidecar log:\n{}",
            tail(&c.pod(0).log("sidecar"))
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `rounds` times: a transaction of about `bytes` on the master, then a new
/// binary log.
async fn write_and_rotate(c: &Cluster, rounds: u32, bytes: usize) {
    let mut m = c.root(0).await;
    for _ in 0..rounds {
        m.exec_drop("INSERT INTO app.r (pad) VALUES (REPEAT('x', ?))", (bytes,))
            .await
            .unwrap();
        m.query_drop("FLUSH BINARY LOGS").await.unwrap();
    }
    m.disconnect().await.unwrap();
}

/// The server's own expiry, set short on the master as someone might.
async fn set_server_expiry_short(c: &Cluster) {
    let mut m = c.root(0).await;
    let sql = match c.engine {
        Engine::Mysql => {
            "SET GLOBAL binlog_expire_logs_seconds = 1; SET GLOBAL binlog_expire_logs_auto_purge = ON"
        }
        Engine::Mariadb | Engine::Mariadb11 => "SET GLOBAL binlog_expire_logs_seconds = 1",
    };
    m.query_drop(sql).await.unwrap();
    m.disconnect().await.unwrap();
}

async fn server_expiry_off(c: &Cluster) -> bool {
    let sql = match c.engine {
        Engine::Mysql => "SELECT @@global.binlog_expire_logs_auto_purge",
        Engine::Mariadb | Engine::Mariadb11 => "SELECT @@global.binlog_expire_logs_seconds",
    };
    count(c, 0, sql).await == 0
}

/// The directories a re-clone moved pod `n`'s old data to.
fn asides(c: &Cluster, n: u32) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(c.pod(n).datadir().join(".mysql-sts-old"))
        .map(|rd| rd.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default()
}

/// Waits until replica `n` has been cloned again by itself for `why`, is
/// ready and holds the master's rows; checks the record kept with the old
/// data. Returns the seconds it took.
async fn wait_recloned(c: &Cluster, n: u32, why: &str) -> f64 {
    let e = c.engine.name();
    let started = Instant::now();
    loop {
        let st = c.get(n, "/status").await.unwrap_or_default().1;
        let st: serde_json::Value = serde_json::from_str(&st).unwrap_or_default();
        let rows = count(c, 0, "SELECT COUNT(*) FROM app.r").await;
        if st["ready"]["ready"] == true
            && st["reclone"]["why"] == why
            && count(c, n, "SELECT COUNT(*) FROM app.r").await == rows
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "[{e}] mysql-{n} not re-cloned for {why}: {st}\ninit log:\n{}\nsidecar log:\n{}",
            tail(&c.pod(n).log("init")),
            tail(&c.pod(n).log("sidecar"))
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = started.elapsed().as_secs_f64();
    let aside = asides(c, n);
    assert_eq!(aside.len(), 1, "[{e}] {aside:?}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(aside[0].join(".mysql-sts-reclone")).unwrap())
            .unwrap();
    let set = if why == "errant transactions" {
        "errant"
    } else {
        "missing"
    };
    assert!(
        record["why"] == why && record[set].is_string() && record["master_gtid"].is_string(),
        "[{e}] {record}"
    );
    // The old data is there, whole.
    assert!(aside[0].join("mysql").is_dir(), "[{e}] {aside:?}");
    took
}

/// `mysql-sts status` run in pod `n`: its exit code and output.
fn status_command(c: &Cluster, n: u32, args: &[&str]) -> (i32, String) {
    let mut argv = vec!["status"];
    argv.extend_from_slice(args);
    let out = c.pod_command(n, &c.agent_argv(&argv)).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn retention(engine: Engine) {
    let e = engine.name();
    let mut c = Cluster::new(engine);
    // As the chart runs the servers: through init, restarted when they exit
    // (what --auto-reclone needs).
    c.server_via_init = true;
    // Every log expires a second after its last write: only the fence
    // keeps it.
    c.extra_env
        .push(("MYSQL_STS_BINLOG_EXPIRE".into(), "1s".into()));
    for n in 0..3 {
        c.start_pod(n).await;
        c.wait_ready(n, Duration::from_secs(180)).await;
    }
    // The master's sidecar counts the pods as the chart makes it (started in
    // order above, an empty master does not wait for peers).
    c.extra_env.push(("MYSQL_STS_REPLICAS".into(), "3".into()));
    c.kill_sidecar(0);
    c.start_sidecar(0);
    c.wait_ready(0, Duration::from_secs(30)).await;
    let mut m = c.root(0).await;
    m.query_drop("CREATE DATABASE app").await.unwrap();
    m.query_drop(
        "CREATE TABLE app.r (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad LONGTEXT) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    m.disconnect().await.unwrap();

    // The server's own expiry is turned off by the master's sidecar.
    set_server_expiry_short(&c).await;
    let started = Instant::now();
    while !server_expiry_off(&c).await {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "[{e}] the server's own expiry is still on\n{}",
            tail(&c.pod(0).log("sidecar"))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "[{e}] the server's own expiry turned off in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // mysql-2 goes down, its position known; the master writes on.
    wait_master(
        &c,
        "mysql-2's position known",
        Duration::from_secs(30),
        |st| st["binlog"]["replica_positions"]["mysql-2"].is_string(),
    )
    .await;
    let cloned_before = c.status(2).await["cloned_from"].clone();
    c.stop_pod(2);
    write_and_rotate(&c, 20, 1000).await;
    // The logs expired (1 s), rounds went by: they are all still there.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let st = wait_master(
        &c,
        "the logs held for mysql-2",
        Duration::from_secs(10),
        |st| st["binlog"]["held_for"] == "mysql-2",
    )
    .await;
    let held = binlogs(&c).await;
    assert!(held > 20, "[{e}] {held} binary logs left: {st}");
    let (_, metrics) = c.get(0, "/metrics").await.unwrap();
    assert!(
        metrics.contains("mysql_sts_binlog_held_for{replica=\"mysql-2\"} 1"),
        "[{e}] {metrics}"
    );
    // Remembered across a restart of the master's sidecar, while mysql-2 is
    // still down (it cannot be asked).
    c.kill_sidecar(0);
    c.start_sidecar(0);
    c.wait_ready(0, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after_restart = binlogs(&c).await;
    assert!(
        after_restart >= held,
        "[{e}] {after_restart} binary logs left after the sidecar's restart, {held} before"
    );

    // mysql-2 comes back and catches up from the logs: no re-clone.
    let started = Instant::now();
    c.start_pod(2).await;
    c.wait_ready(2, Duration::from_secs(60)).await;
    let rows = count(&c, 0, "SELECT COUNT(*) FROM app.r").await;
    while count(&c, 2, "SELECT COUNT(*) FROM app.r").await != rows {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "[{e}] mysql-2 did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        c.status(2).await["cloned_from"],
        cloned_before,
        "[{e}] mysql-2 was cloned again"
    );
    eprintln!(
        "[{e}] mysql-2, down through 20 binary logs with a 1 s expiry ({held} logs kept), caught up without a re-clone in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Every pod ready: `mysql-sts status` in any pod says so.
    let (code, table) = status_command(&c, 1, &[]);
    eprintln!("[{e}] mysql-sts status:\n{table}");
    assert_eq!(code, 0, "[{e}] {table}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "[{e}] {table}");
    assert!(
        lines[1].starts_with("mysql-0") && lines[1].contains("master_writable"),
        "[{e}] {table}"
    );
    for line in &lines[2..] {
        assert!(
            line.contains("replica") && line.contains(" yes ") && line.contains("mysql-0"),
            "[{e}] {table}"
        );
    }
    // Caught up: the expired logs go.
    wait_master(&c, "the logs released", Duration::from_secs(30), |st| {
        st["binlog"]["held_for"].is_null() && st["binlog"]["logs"].as_u64().is_some_and(|n| n <= 2)
    })
    .await;

    // Past the cap: the logs go anyway, and mysql-2 cannot catch up.
    c.extra_env.push((
        "MYSQL_STS_BINLOG_RETENTION_MAX_BYTES".into(),
        "256KiB".into(),
    ));
    c.kill_sidecar(0);
    c.start_sidecar(0);
    c.wait_ready(0, Duration::from_secs(30)).await;
    c.stop_pod(2);
    write_and_rotate(&c, 20, 64 << 10).await;
    let st = wait_master(&c, "a forced purge", Duration::from_secs(40), |st| {
        st["binlog"]["forced_purges"]
            .as_u64()
            .is_some_and(|n| n > 0)
            && st["binlog"]["retained_bytes"]
                .as_u64()
                .is_some_and(|b| b <= 256 << 10)
    })
    .await;
    let log = std::fs::read_to_string(c.pod(0).log("sidecar")).unwrap();
    assert!(
        log.contains("purging logs that mysql-2 still need; it will have to be cloned again"),
        "[{e}] the master's log does not say which replica lost its logs:\n{}",
        tail(&c.pod(0).log("sidecar"))
    );
    let (_, metrics) = c.get(0, "/metrics").await.unwrap();
    assert!(
        metrics.contains("mysql_sts_binlog_forced_purges_total 1"),
        "[{e}] {metrics}"
    );
    c.start_pod(2).await;
    let started = Instant::now();
    loop {
        // Its sidecar may not listen yet.
        let st = c.get(2, "/status").await.unwrap_or_default().1;
        if st.contains("\"cause\":\"purged_transactions\"") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "[{e}] mysql-2 does not say it lacks purged transactions: {st}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "[{e}] past the 256 KiB cap: {} bytes kept, mysql-2 says purged_transactions",
        st["binlog"]["retained_bytes"]
    );
    // One pod broken: the command says which, why, and exits 1.
    let (code, table) = status_command(&c, 0, &[]);
    eprintln!("[{e}] mysql-sts status:\n{table}");
    assert_eq!(code, 1, "[{e}] {table}");
    assert!(
        table.lines().any(|l| l.starts_with("mysql-2")
            && l.contains(" no ")
            && l.contains("purged_transactions"))
            && table.contains("mysql-2: the master has purged binary logs"),
        "[{e}] {table}"
    );
    let (code, json) = status_command(&c, 2, &["--output", "json"]);
    assert_eq!(code, 1, "[{e}] {json}");
    let pods: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ready: Vec<bool> = pods
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"]["ready"]["ready"] == true)
        .collect();
    assert_eq!(ready, [true, true, false], "[{e}] {json}");

    // --auto-reclone: mysql-2, cut off by the purge, then mysql-1, with a
    // write made by hand, come back by themselves with the master's data
    // and a record of why.
    c.extra_env
        .push(("MYSQL_STS_AUTO_RECLONE".into(), "true".into()));
    for n in [2, 1] {
        c.kill_sidecar(n);
        c.start_sidecar(n);
    }
    let took = wait_recloned(&c, 2, "purged transactions").await;
    eprintln!(
        "[{e}] --auto-reclone: mysql-2 (purged transactions) ready with the master's rows in {took:.1} s"
    );
    c.hand_write(1, "CREATE DATABASE by_hand").await;
    let took = wait_recloned(&c, 1, "errant transactions").await;
    let dbs = count(
        &c,
        1,
        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'by_hand'",
    )
    .await;
    assert_eq!(dbs, 0, "[{e}] mysql-1 kept its write by hand");
    eprintln!(
        "[{e}] --auto-reclone: mysql-1 (errant transactions) ready with the master's rows in {took:.1} s"
    );
    // At most one per --auto-reclone-interval (1 h): a second write by hand
    // on mysql-1 is held back, and the status says why.
    c.hand_write(1, "CREATE DATABASE by_hand_again").await;
    let started = Instant::now();
    loop {
        let st = c.status(1).await;
        if st["ready"]["cause"] == "errant_transactions" && st["reclone_held"].is_string() {
            assert!(
                st["reclone_held"]
                    .as_str()
                    .unwrap()
                    .contains("--auto-reclone-interval"),
                "[{e}] {st}"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "[{e}] {st}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        asides(&c, 1).len(),
        1,
        "[{e}] mysql-1 was cloned again within the interval"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_binlog_retention() {
    retention(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_binlog_retention() {
    retention(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_binlog_retention() {
    retention(Engine::Mysql).await;
}

/// mysql-1's applier stops on an error (a row of its own, written outside
/// the binary log, in the way of the master's first insert) while its
/// receiver goes on filling the relay log; then the master purges every
/// binary log but the current one. What waits in the relay log is not lost
/// to the replica: it is not behind the master's purge, and
/// `--auto-reclone` leaves its data alone (it was judged by what it had
/// executed only: `purged_transactions`, and cloned again). Once the row
/// is out of the way, it applies what it received and catches up.
async fn received_is_not_missing(engine: Engine) {
    let e = engine.name();
    let mut c = Cluster::new(engine);
    c.server_via_init = true;
    c.extra_env
        .push(("MYSQL_STS_AUTO_RECLONE".into(), "true".into()));
    for n in 0..2 {
        c.start_pod(n).await;
        c.wait_ready(n, Duration::from_secs(180)).await;
    }
    let mut m = c.root(0).await;
    m.query_drop("CREATE DATABASE app").await.unwrap();
    m.query_drop(
        "CREATE TABLE app.r (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad LONGTEXT) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    m.disconnect().await.unwrap();
    let started = Instant::now();
    while count(
        &c,
        1,
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app'",
    )
    .await
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "[{e}] no table on mysql-1"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.hand_write(
        1,
        "SET SESSION sql_log_bin = 0; INSERT INTO app.r (id, pad) VALUES (1, 'in the way')",
    )
    .await;
    write_and_rotate(&c, 5, 1000).await;
    let flavor = engine.flavor();
    let master_gtid = {
        let mut m = c.root(0).await;
        let g = scalar(&mut m, flavor.gtid_executed_query())
            .await
            .unwrap_or_default();
        m.disconnect().await.unwrap();
        g
    };
    let started = Instant::now();
    loop {
        let st = c.status(1).await;
        // What it holds: executed, and received since its receiver started.
        let held = flavor.gtid_union(
            st["gtid_executed"].as_str().unwrap_or_default(),
            st["replication"]["retrieved_gtid"]
                .as_str()
                .unwrap_or_default(),
        );
        if st["ready"]["cause"] == "sql_error" && flavor.gtid_contains(&held, &master_gtid) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "[{e}] mysql-1's applier did not stop with all received: {st}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The master purges every binary log but the one it writes.
    let mut m = c.root(0).await;
    let started = Instant::now();
    loop {
        m.query_drop("FLUSH BINARY LOGS").await.unwrap();
        let logs: Vec<mysql_async::Row> = m.query("SHOW BINARY LOGS").await.unwrap();
        let last: String = logs.last().unwrap().get(0).unwrap();
        let _ = m.query_drop(format!("PURGE BINARY LOGS TO '{last}'")).await;
        let logs: Vec<mysql_async::Row> = m.query("SHOW BINARY LOGS").await.unwrap();
        if logs.len() == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "[{e}] the master keeps {} logs",
            logs.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    m.disconnect().await.unwrap();
    // Rounds of mysql-1's sidecar, each comparing with the master.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let st = c.status(1).await;
    assert!(st["gtid_missing_on_master"].is_null(), "[{e}] {st}");
    assert_eq!(st["ready"]["cause"], "sql_error", "[{e}] {st}");
    assert!(
        asides(&c, 1).is_empty() && !c.pod(1).datadir().join(".mysql-sts-reclone").exists(),
        "[{e}] mysql-1 was cloned again"
    );
    // Out of the way, the row the master wrote applies from the relay log.
    let start_applier = match engine {
        Engine::Mysql => "START REPLICA SQL_THREAD",
        Engine::Mariadb | Engine::Mariadb11 => "START SLAVE SQL_THREAD",
    };
    c.hand_write(
        1,
        &format!("SET SESSION sql_log_bin = 0; DELETE FROM app.r WHERE id = 1; {start_applier}"),
    )
    .await;
    c.wait_ready(1, Duration::from_secs(30)).await;
    assert_eq!(
        count(&c, 1, "SELECT COUNT(*) FROM app.r").await,
        count(&c, 0, "SELECT COUNT(*) FROM app.r").await,
        "[{e}]"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_received_is_not_missing() {
    received_is_not_missing(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_received_is_not_missing() {
    received_is_not_missing(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_received_is_not_missing() {
    received_is_not_missing(Engine::Mysql).await;
}

/// Copies of old data that re-clones set aside are shown with their size
/// (status, metric) and go once they pass `--aside-retention` while the pod
/// serves; a newer copy stays. The donor's size estimate leaves them out.
async fn aside_copies_are_reclaimed(engine: Engine) {
    let e = engine.name();
    let mut c = Cluster::new(engine);
    c.extra_env
        .push(("MYSQL_STS_ASIDE_RETENTION".into(), "1h".into()));
    for n in 0..2 {
        c.start_pod(n).await;
        c.wait_ready(n, Duration::from_secs(120)).await;
    }
    c.stop_pod(1);
    let old_dir = c.pod(1).datadir().join(".mysql-sts-old");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // One copy two hours old, one a minute old.
    for (at, bytes) in [(now - 7200, 3 << 20), (now - 60, 1 << 20)] {
        let d = old_dir.join(at.to_string());
        std::fs::create_dir_all(d.join("app")).unwrap();
        std::fs::write(d.join("app").join("t.ibd"), vec![7u8; bytes]).unwrap();
    }
    let newer = format!(".mysql-sts-old/{}", now - 60);
    c.start_pod(1).await;
    c.wait_ready(1, Duration::from_secs(60)).await;
    let started = Instant::now();
    loop {
        let st = c.status(1).await;
        let dirs: Vec<&str> = st["aside_copies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["dir"].as_str().unwrap())
            .collect();
        if dirs == [newer.as_str()] {
            assert_eq!(st["aside_copies"][0]["bytes"], 1 << 20, "[{e}] {st}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "[{e}] the copy past the retention is still there: {dirs:?}\n{}",
            tail(&c.pod(1).log("sidecar"))
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        !old_dir.join((now - 7200).to_string()).exists(),
        "[{e}] its files are still there"
    );
    let (_, metrics) = c.get(1, "/metrics").await.unwrap();
    assert!(
        metrics.contains(&format!("mysql_sts_aside_copies_bytes {}\n", 1 << 20)),
        "[{e}] {metrics}"
    );
    report_scenario(
        "8. copies set aside by re-clones",
        engine,
        "the 2 h old copy deleted (--aside-retention 1h) while the pod is ready, the 1 MiB newer one kept and counted",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_aside_copies_are_reclaimed() {
    aside_copies_are_reclaimed(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_aside_copies_are_reclaimed() {
    aside_copies_are_reclaimed(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_aside_copies_are_reclaimed() {
    aside_copies_are_reclaimed(Engine::Mysql).await;
}
