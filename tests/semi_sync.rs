//! Semi-synchronous replication with no fallback, on real servers: a replica
//! that starts again while a commit on the master waits for it compares its
//! GTIDs with the master's, replicates and acknowledges that commit. On
//! MariaDB the master's binary logs cannot be listed while a commit waits for
//! an acknowledgement; the replica reads where the oldest starts from the
//! master's sidecar instead. And a replica's comparison with the master,
//! made while commits stream in, never takes the newest transactions (which
//! a replica may apply before the master's commit of them returns) for its
//! own.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::Queryable;

/// mysql-0 and mysql-1 ready with semi-sync on, and an empty table `app.t`.
async fn semi_sync_pair(engine: Engine) -> Cluster {
    semi_sync_pair_with(engine, &[]).await
}

async fn semi_sync_pair_with(engine: Engine, env: &[(&str, &str)]) -> Cluster {
    let mut c = Cluster::new(engine);
    c.extra_env
        .push(("MYSQL_STS_SEMI_SYNC".into(), "true".into()));
    c.extra_env
        .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    for n in 0..2 {
        c.start_pod(n).await;
        c.wait_ready(n, Duration::from_secs(120)).await;
    }
    let mut m = c.root(0).await;
    m.query_drop("CREATE DATABASE app").await.unwrap();
    m.query_drop("CREATE TABLE app.t (id BIGINT PRIMARY KEY) ENGINE=InnoDB")
        .await
        .unwrap();
    m.disconnect().await.unwrap();
    // An acknowledgement says the replica received the table, not that it
    // applied it: tests that lock it on mysql-1 need it there.
    let mut r = c.root(1).await;
    let started = Instant::now();
    loop {
        let found: Option<u64> = r
            .query_first(
                "SELECT COUNT(*) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 't'",
            )
            .await
            .unwrap();
        if found == Some(1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "[{}] mysql-1 did not apply app.t in 60 s",
            engine.name()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    r.disconnect().await.unwrap();
    c
}

/// Inserts rows `ids` into `app.t`, each commit acknowledged within 30 s.
async fn insert_acknowledged(
    m: &mut mysql_async::Conn,
    e: &str,
    ids: std::ops::RangeInclusive<u64>,
) {
    for id in ids {
        tokio::time::timeout(
            Duration::from_secs(30),
            m.exec_drop("INSERT INTO app.t VALUES (?)", (id,)),
        )
        .await
        .unwrap_or_else(|_| panic!("[{e}] commit {id} was not acknowledged"))
        .unwrap();
    }
}

async fn replica_starts_under_a_waiting_commit(engine: Engine) {
    let e = engine.name();
    let mut c = semi_sync_pair(engine).await;

    // The only replica stops: the next commits wait for an acknowledgement
    // (two clients, as an application has: the second queues behind the first).
    c.stop_pod(1);
    let mut writes = Vec::new();
    for id in 1..=2u64 {
        let mut m = c.root(0).await;
        writes.push(tokio::spawn(async move {
            m.exec_drop("INSERT INTO app.t VALUES (?)", (id,))
                .await
                .unwrap();
            m.disconnect().await.unwrap();
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        writes.iter().all(|w| !w.is_finished()),
        "[{e}] a commit was acknowledged with no replica"
    );

    let started = Instant::now();
    c.start_pod(1).await;
    let all = async {
        for w in writes {
            w.await.unwrap();
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .is_err()
    {
        panic!(
            "[{e}] the commits were not acknowledged 60 s after mysql-1 started: {}\nsidecar log:\n{}",
            c.status(1).await,
            tail(&c.pod(1).log("sidecar"))
        );
    }
    eprintln!(
        "[{e}] mysql-1 started under waiting commits: acknowledged {:.1} s later",
        started.elapsed().as_secs_f64()
    );
    c.wait_ready(1, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_replica_starts_under_a_waiting_commit() {
    replica_starts_under_a_waiting_commit(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_replica_starts_under_a_waiting_commit() {
    replica_starts_under_a_waiting_commit(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_replica_starts_under_a_waiting_commit() {
    replica_starts_under_a_waiting_commit(Engine::Mysql).await;
}

/// Four clients write to the master with semi-sync on while the replica's
/// GTIDs are compared with the master's as fast as the comparison goes, as
/// the replica's sidecar does once a second: never one errant transaction
/// (on MySQL the master's `gtid_executed` takes a transaction in only at
/// its commit, after the replica has it; the sidecar used to record such a
/// transaction as a divergence and stop replicating for good).
async fn no_errant_transactions_under_load(engine: Engine) {
    let e = engine.name();
    let c = semi_sync_pair(engine).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let mut m = c.root(0).await;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut id = w << 32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                m.exec_drop("INSERT INTO app.t VALUES (?)", (id,))
                    .await
                    .unwrap();
                id += 1;
            }
            m.disconnect().await.unwrap();
        }));
    }
    let flavor = engine.flavor();
    let (mut local, mut master) = (c.root(1).await, c.root(0).await);
    let (mut compared, mut errant) = (0u32, Vec::new());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let facts = flavor.replica_facts(&mut local).await.unwrap();
        let ours = scalar(&mut local, flavor.gtid_executed_query())
            .await
            .unwrap_or_default();
        let check = flavor
            .compare_with_master(&facts, &mut master, &ours, "", None)
            .await
            .unwrap();
        compared += 1;
        if let Some(set) = check.errant {
            errant.push(set.as_str().to_owned());
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    eprintln!(
        "[{e}] {compared} comparisons under four writers: {} found errant transactions",
        errant.len()
    );
    assert!(
        errant.is_empty(),
        "[{e}] {} of {compared} comparisons took the master's own transactions for errant: {:?}",
        errant.len(),
        &errant[..errant.len().min(5)]
    );
    // The replica's sidecar compared too, once a second: it never stopped.
    let (code, body) = c.get(1, "/readyz").await.unwrap();
    assert_eq!(code, 200, "[{e}] {body}");
    assert!(
        !c.pod(1).datadir().join(".mysql-sts-diverged").exists(),
        "[{e}] mysql-1 recorded a divergence"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_no_errant_transactions_under_load() {
    no_errant_transactions_under_load(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_no_errant_transactions_under_load() {
    no_errant_transactions_under_load(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_no_errant_transactions_under_load() {
    no_errant_transactions_under_load(Engine::Mysql).await;
}

/// The only replica loses its volume while a commit on the master waits for
/// its acknowledgement, with no `--semi-sync-timeout`: the copy it needs
/// cannot finish (MariaDB's backup waits at `BACKUP STAGE BLOCK_COMMIT`
/// behind the waiting commit, MySQL's CLONE for the prepared transaction),
/// and nothing but that replica could acknowledge. Init says so at once,
/// naming the setting that resolves it, instead of waiting for ever; the
/// datadir stays empty; and the master shows the waiting session.
async fn rebuild_under_a_waiting_commit(engine: Engine) {
    let e = engine.name();
    let mut c = semi_sync_pair(engine).await;
    c.stop_pod(1);
    let dd = c.pod(1).datadir();
    std::fs::remove_dir_all(&dd).unwrap();
    std::fs::create_dir(&dd).unwrap();

    let mut m = c.root(0).await;
    let write = tokio::spawn(async move {
        let _ = m.query_drop("INSERT INTO app.t VALUES (1)").await;
    });
    let started = Instant::now();
    loop {
        // The master counts the stopped replica as a client until its dump
        // thread fails to send it the waiting commit's events.
        let st = c.status(0).await;
        if st["semi_sync"]["waiting_sessions"].as_u64() == Some(1)
            && st["semi_sync"]["clients"].as_u64() == Some(0)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "[{e}] mysql-0 does not show the waiting commit with no client: {st}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (code, body) = c.get(0, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains("mysql_sts_semi_sync_waiting_sessions 1"),
        "[{e}] {body}"
    );

    let mut init = c.spawn_init(1, &[]);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = init.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(120) {
            kill_group(init);
            panic!(
                "[{e}] init still runs 120 s into a copy that cannot finish:\n{}",
                tail(&c.pod(1).log("init"))
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let gave_up = started.elapsed();
    let log = std::fs::read_to_string(c.pod(1).log("init")).unwrap();
    eprintln!(
        "[{e}] init gave up after {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        log.lines()
            .rev()
            .find(|l| l.contains("semi-sync"))
            .unwrap_or("")
    );
    assert_eq!(
        status.code(),
        Some(4),
        "[{e}] {}",
        tail(&c.pod(1).log("init"))
    );
    assert!(
        log.contains("semi-sync") && log.contains("--semi-sync-timeout"),
        "[{e}] the error names neither the cause nor the setting:\n{}",
        tail(&c.pod(1).log("init"))
    );
    let left: Vec<_> = std::fs::read_dir(&dd)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "[{e}] the datadir holds {left:?}");
    assert!(
        !write.is_finished(),
        "[{e}] the commit returned with no replica"
    );
    // Nothing of the copy given up stays on the donor: a MySQL donor kept
    // such a clone for good and refused every later one ("Too many
    // concurrent clone operations"), a MariaDB donor its backup.
    let mut m = c.root(0).await;
    let started = Instant::now();
    loop {
        let clones: u64 = m
            .query_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE COMMAND = 'clone' OR INFO LIKE 'BACKUP STAGE%'",
            )
            .await
            .unwrap()
            .unwrap();
        let streams = c.status(0).await["clone_streams_active"].as_u64();
        if clones == 0 && streams.unwrap_or(0) == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "[{e}] the donor still works on the copy given up: {clones} session(s), {streams:?} stream(s)"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    write.abort();
    report_scenario(
        "1. semi-sync rebuild with no replica to acknowledge",
        engine,
        &format!(
            "init exited 4 after {:.1} s naming the waiting commit and --semi-sync-timeout; datadir left empty",
            gave_up.as_secs_f64()
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_rebuild_under_a_waiting_commit() {
    rebuild_under_a_waiting_commit(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_rebuild_under_a_waiting_commit() {
    rebuild_under_a_waiting_commit(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_rebuild_under_a_waiting_commit() {
    rebuild_under_a_waiting_commit(Engine::Mysql).await;
}

/// While commits on the master wait for an acknowledgement, statements of
/// its sidecar can wait too (a restarted sidecar's account upkeep). One that
/// timed out is killed on the server, not left running while the next
/// round sends another: the sessions do not pile up towards
/// `max_connections`, which would keep the returning replica out.
async fn timed_out_statements_are_killed(engine: Engine) {
    let e = engine.name();
    let mut c = semi_sync_pair_with(engine, &[("MYSQL_STS_STATEMENT_TIMEOUT", "2s")]).await;
    c.stop_pod(1);
    let mut m = c.root(0).await;
    let write = tokio::spawn(async move {
        let _ = m.query_drop("INSERT INTO app.t VALUES (1)").await;
        m
    });
    // The master's sidecar starts again meanwhile: its first round makes
    // sure of the replication account, a write that waits as well.
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.kill_sidecar(0);
    c.start_sidecar(0);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let mut probe = c.root(0).await;
    let pending: Vec<(u64, String, u64)> = probe
        .query(
            "SELECT ID, INFO, TIME FROM information_schema.PROCESSLIST \
             WHERE INFO IS NOT NULL AND ID <> CONNECTION_ID() AND INFO NOT LIKE 'INSERT%'",
        )
        .await
        .unwrap();
    eprintln!("[{e}] 20 s into the wait, statements running besides the commit: {pending:?}");
    assert!(
        pending.len() <= 1,
        "[{e}] statements that timed out still run on the server: {pending:?}"
    );
    report_scenario(
        "7. the agent's statements under a semi-sync stall",
        engine,
        &format!(
            "{} of the agent's statements still running 20 s into the stall, the sidecar restarted meanwhile",
            pending.len()
        ),
    );
    c.start_pod(1).await;
    tokio::time::timeout(Duration::from_secs(60), write)
        .await
        .unwrap_or_else(|_| panic!("[{e}] the commit was not acknowledged once mysql-1 was back"))
        .unwrap();
    c.wait_ready(0, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_timed_out_statements_are_killed() {
    timed_out_statements_are_killed(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_timed_out_statements_are_killed() {
    timed_out_statements_are_killed(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_timed_out_statements_are_killed() {
    timed_out_statements_are_killed(Engine::Mysql).await;
}

/// A statement of the agent's that does not answer within the statement
/// timeout is killed on the server, not left running there once the agent
/// stopped waiting for it (the statements of these tests run in this
/// process with a 2 s timeout).
async fn a_statement_that_times_out_is_killed(engine: Engine) {
    let e = engine.name();
    mysql_sts::net::sql::set_statement_timeout(Duration::from_secs(2));
    let mut c = Cluster::new(engine);
    c.start_pod(0).await;
    c.wait_ready(0, Duration::from_secs(120)).await;
    let mut conn = c.root(0).await;
    let started = Instant::now();
    let err = mysql_sts::net::sql::exec(&mut conn, "SELECT SLEEP(60)")
        .await
        .expect_err("SLEEP(60) answered within the 2 s timeout");
    eprintln!(
        "[{e}] after {:.1} s: {err}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        err.to_string().contains("killed on the server"),
        "[{e}] {err}"
    );
    let mut probe = c.root(0).await;
    let mut running: Vec<String> = Vec::new();
    for _ in 0..20 {
        running = probe
            .query(
                "SELECT INFO FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP%'",
            )
            .await
            .unwrap();
        if running.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(running.is_empty(), "[{e}] still running: {running:?}");
    report_scenario(
        "7. a statement past --statement-timeout",
        engine,
        &format!(
            "SLEEP(60) killed on the server after {:.1} s (timeout 2 s)",
            started.elapsed().as_secs_f64()
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_a_statement_that_times_out_is_killed() {
    a_statement_that_times_out_is_killed(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_a_statement_that_times_out_is_killed() {
    a_statement_that_times_out_is_killed(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_a_statement_that_times_out_is_killed() {
    a_statement_that_times_out_is_killed(Engine::Mysql).await;
}

/// mysql-0 restarts (init, then its server) while no replica is there to
/// acknowledge, and root writes before the sidecar's first round: the
/// commit waits like any other under semi-sync, instead of being
/// acknowledged asynchronously in the seconds before the sidecar switches
/// semi-sync on (a lost volume then would lose it).
async fn restarted_master_waits_from_its_first_commit(engine: Engine) {
    let e = engine.name();
    let mut c = semi_sync_pair(engine).await;
    c.stop_pod(1);
    c.stop_pod(0);
    let (status, out) = c.run_init(0, &[]);
    assert!(status.success(), "[{e}] {out}");
    c.start_server(0);
    let mut m = c.root(0).await;
    let write = tokio::spawn(async move {
        m.query_drop("INSERT INTO app.t VALUES (7)").await.unwrap();
        m
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !write.is_finished(),
        "[{e}] a commit on the restarted master was acknowledged with no replica"
    );
    c.start_sidecar(0);
    c.start_pod(1).await;
    tokio::time::timeout(Duration::from_secs(60), write)
        .await
        .unwrap_or_else(|_| panic!("[{e}] the commit was not acknowledged once mysql-1 was back"))
        .unwrap();
    c.wait_ready(0, Duration::from_secs(30)).await;
    c.wait_ready(1, Duration::from_secs(30)).await;
    report_scenario(
        "6. a restarted master's first commit",
        engine,
        "root's commit before the sidecar's first round waited for the replica (3 s), then was acknowledged",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_restarted_master_waits_from_its_first_commit() {
    restarted_master_waits_from_its_first_commit(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_restarted_master_waits_from_its_first_commit() {
    restarted_master_waits_from_its_first_commit(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_restarted_master_waits_from_its_first_commit() {
    restarted_master_waits_from_its_first_commit(Engine::Mysql).await;
}

/// Under semi-sync a replica acknowledges what it received, not what it
/// applied. mysql-1 is the only replica up and its applier is held back (a
/// table lock): the master's commits are acknowledged with the rows only
/// in mysql-1's relay log. Then mysql-1's server is killed and mysql-0
/// loses its volume. Every pod starts again: the re-seed must hold every
/// acknowledged row (the relay log survives the crash and is applied
/// before the re-seed takes the copy).
async fn received_not_applied_survives(engine: Engine) {
    let e = engine.name();
    let mut c = semi_sync_pair(engine).await;
    c.start_pod(2).await;
    c.wait_ready(2, Duration::from_secs(120)).await;
    // The pods as the chart counts them, for the re-seed to wait for each.
    c.extra_env.push(("MYSQL_STS_REPLICAS".into(), "3".into()));
    c.stop_pod(2);

    let mut lock = c.root(1).await;
    lock.query_drop("LOCK TABLES app.t READ").await.unwrap();
    let mut m = c.root(0).await;
    insert_acknowledged(&mut m, e, 1..=20).await;
    drop(m);
    // Acknowledged by mysql-1's receipt alone: its applier waits on the lock.
    let st = c.status(1).await;
    eprintln!(
        "[{e}] mysql-1 received {} and executed {}",
        st["replication"]["retrieved_gtid"], st["gtid_executed"]
    );
    c.kill_sidecar(1);
    c.kill_server(1);
    drop(lock);
    c.stop_pod(0);
    let dd = c.pod(0).datadir();
    std::fs::remove_dir_all(&dd).unwrap();
    std::fs::create_dir(&dd).unwrap();

    c.start_pod(1).await;
    c.start_pod(2).await;
    let started = Instant::now();
    let (status, out) = c.run_init(0, &[]);
    assert!(status.success(), "[{e}] the re-seed failed: {out}");
    c.start_server(0);
    c.start_sidecar(0);
    c.wait_ready(0, Duration::from_secs(60)).await;
    let mut m = c.root(0).await;
    let rows: u64 = m
        .query_first("SELECT COUNT(*) FROM app.t")
        .await
        .unwrap()
        .unwrap();
    let reseeded = started.elapsed();
    eprintln!(
        "[{e}] re-seeded in {:.1} s with {rows} of the 20 acknowledged rows",
        reseeded.as_secs_f64()
    );
    assert_eq!(rows, 20, "[{e}] acknowledged rows were lost:\n{out}");
    // mysql-1, whose applier ran alone, follows the new master by GTID again.
    c.wait_ready(1, Duration::from_secs(60)).await;
    let st = c.status(1).await;
    assert_eq!(st["replication"]["gtid_positioning"], true, "[{e}] {st}");
    // mysql-2, down since before the rows, lacks what came before the new
    // master's binary log: it fetches that from mysql-1, whose copy the
    // master is, then follows the master, with no clone.
    let started = Instant::now();
    c.wait_ready(2, Duration::from_secs(60)).await;
    let st = c.status(2).await;
    assert_eq!(
        st["replication"]["source_host"],
        format!("mysql-0.{DOMAIN}"),
        "[{e}] {st}"
    );
    assert!(
        st["aside_copies"].as_array().unwrap().is_empty(),
        "[{e}] mysql-2 was cloned again: {st}"
    );
    let mut r = c.root(2).await;
    let rows: u64 = r
        .query_first("SELECT COUNT(*) FROM app.t")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rows, 20, "[{e}] mysql-2 holds {rows} rows");
    report_scenario(
        "3. rows acknowledged by a replica's receipt alone, then the master lost",
        engine,
        &format!(
            "mysql-0 re-seeded from mysql-1 in {:.1} s with 20 of the 20 rows its relay log held",
            reseeded.as_secs_f64()
        ),
    );
    report_scenario(
        "10. a replica behind the re-seed's donor",
        engine,
        &format!(
            "mysql-2 caught up from the donor, with no clone, in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    );
}

/// A master that stops (its pod deleted, drained, rolled) while a commit
/// waits for an acknowledgement no replica can give answers that commit
/// with an error, never OK: MySQL's shutdown answered it OK, and the row,
/// held by the stopping master alone, was lost with its volume. Then, with
/// the replica back, a stop is a clean shutdown again, and quick.
async fn a_stopping_master_answers_no_unacknowledged_commit(engine: Engine) {
    let e = engine.name();
    let mut c = semi_sync_pair(engine).await;
    // Started again on its data: the server under init, as in its pod.
    c.server_via_init = true;
    c.stop_pod(0);
    c.start_pod(0).await;
    c.wait_ready(0, Duration::from_secs(120)).await;
    c.stop_pod(1);
    let mut m = c.root(0).await;
    let commit = tokio::spawn(async move {
        let r = m.query_drop("INSERT INTO app.t VALUES (1)").await;
        r.map_err(|e| e.to_string())
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !commit.is_finished(),
        "[{e}] the commit did not wait for mysql-1"
    );
    let took = c.stop_server_like_kubelet(0);
    let answered = tokio::time::timeout(Duration::from_secs(30), commit)
        .await
        .expect("the client heard nothing")
        .unwrap();
    eprintln!(
        "[{e}] the master stopped in {:.1} s; the waiting commit got {answered:?}",
        took.as_secs_f64()
    );
    let log = std::fs::read_to_string(c.pod(0).log("init")).unwrap_or_default();
    assert!(
        answered.is_err(),
        "[{e}] a commit no replica acknowledged was answered OK as the master stopped:\n{log}"
    );

    // With the replica back, commits are acknowledged and a stop is clean.
    c.stop_pod(0);
    c.start_pod(0).await;
    c.start_pod(1).await;
    c.wait_ready(0, Duration::from_secs(120)).await;
    c.wait_ready(1, Duration::from_secs(120)).await;
    let mut m = c.root(0).await;
    m.query_drop("INSERT INTO app.t VALUES (2)").await.unwrap();
    drop(m);
    let before = std::fs::read_to_string(c.pod(0).log("init"))
        .unwrap_or_default()
        .len();
    let clean = c.stop_server_like_kubelet(0);
    let log = std::fs::read_to_string(c.pod(0).log("init")).unwrap_or_default();
    let log = log.get(before..).unwrap_or_default();
    eprintln!(
        "[{e}] with its replica up, the master stopped in {:.1} s",
        clean.as_secs_f64()
    );
    assert!(
        log.contains("read-only with no commit in flight") || e != "mysql",
        "[{e}] a master with its replica up was killed, not shut down:\n{log}"
    );
    let error = answered.unwrap_err();
    report_scenario(
        "22. a master stopped while a commit waits for an acknowledgement no replica gave",
        engine,
        &format!(
            "the client got an error, not OK (`{}`), the server stopped in {:.1} s; \
             with its replica up, a clean stop in {:.1} s",
            error.chars().take(60).collect::<String>(),
            took.as_secs_f64(),
            clean.as_secs_f64()
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_a_stopping_master_answers_no_unacknowledged_commit() {
    a_stopping_master_answers_no_unacknowledged_commit(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_a_stopping_master_answers_no_unacknowledged_commit() {
    a_stopping_master_answers_no_unacknowledged_commit(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_a_stopping_master_answers_no_unacknowledged_commit() {
    a_stopping_master_answers_no_unacknowledged_commit(Engine::Mysql).await;
}

/// A re-seed waits until its donor has committed what it received, however
/// its applier runs, here held by a table lock. MySQL's applier is
/// parallel: the re-seed takes "has read all relay log" for done, which its
/// coordinator says only once the workers' queues are empty (while they
/// apply it says "Waiting for replica workers to process their queues").
/// Were that not so, a copy of mysql-1 would lack acknowledged rows, and
/// mysql-1, ahead of its new master, would be cloned again and lose them.
async fn reseed_waits_for_a_held_applier(engine: Engine) {
    let e = engine.name();
    let mut c = semi_sync_pair(engine).await;
    c.extra_env.push(("MYSQL_STS_REPLICAS".into(), "2".into()));
    let mut lock = c.root(1).await;
    lock.query_drop("LOCK TABLES app.t READ").await.unwrap();
    let mut m = c.root(0).await;
    insert_acknowledged(&mut m, e, 1..=20).await;
    drop(m);
    c.stop_pod(0);
    let dd = c.pod(0).datadir();
    std::fs::remove_dir_all(&dd).unwrap();
    std::fs::create_dir(&dd).unwrap();

    let mut init = c.spawn_init(0, &[]);
    // Long enough for several rounds of mysql-1's sidecar and of the
    // re-seed's settling: a copy taken in this time lacks the rows.
    let held = Duration::from_secs(15);
    let t0 = Instant::now();
    while t0.elapsed() < held {
        if let Some(status) = init.try_wait().unwrap() {
            let log = std::fs::read_to_string(c.pod(0).log("init")).unwrap_or_default();
            panic!(
                "[{e}] mysql-0's init ended ({status}) while mysql-1's applier held the rows:\n{log}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = std::fs::read_to_string(c.pod(0).log("init")).unwrap_or_default();
    assert!(
        log.contains("to apply it all"),
        "[{e}] mysql-0's init does not say it waits for mysql-1's applier:\n{log}"
    );
    lock.query_drop("UNLOCK TABLES").await.unwrap();
    drop(lock);
    let released = Instant::now();
    let status = tokio::task::spawn_blocking(move || init.wait().unwrap())
        .await
        .unwrap();
    let log = std::fs::read_to_string(c.pod(0).log("init")).unwrap_or_default();
    assert!(status.success(), "[{e}] the re-seed failed:\n{log}");
    c.start_server(0);
    c.start_sidecar(0);
    c.wait_ready(0, Duration::from_secs(60)).await;
    let mut m = c.root(0).await;
    let rows: u64 = m
        .query_first("SELECT COUNT(*) FROM app.t")
        .await
        .unwrap()
        .unwrap();
    eprintln!(
        "[{e}] re-seeded {:.1} s after mysql-1's applier was let go, with {rows} of 20 rows",
        released.elapsed().as_secs_f64()
    );
    assert_eq!(rows, 20, "[{e}] acknowledged rows were lost:\n{log}");
    report_scenario(
        "23. a re-seed from a donor whose applier is held",
        engine,
        &format!(
            "init waited {} s for the held applier; re-seeded {:.1} s after it was let go, with 20 of 20 rows",
            held.as_secs(),
            released.elapsed().as_secs_f64()
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_reseed_waits_for_a_held_applier() {
    reseed_waits_for_a_held_applier(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_reseed_waits_for_a_held_applier() {
    reseed_waits_for_a_held_applier(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_reseed_waits_for_a_held_applier() {
    reseed_waits_for_a_held_applier(Engine::Mysql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_received_not_applied_survives() {
    received_not_applied_survives(Engine::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb11_received_not_applied_survives() {
    received_not_applied_survives(Engine::Mariadb11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_received_not_applied_survives() {
    received_not_applied_survives(Engine::Mysql).await;
}
