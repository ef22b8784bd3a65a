//! Semi-synchronous replication with no fallback, on real servers: a replica
//! that starts again while a commit on the master waits for it compares its
//! GTIDs with the master's, replicates and acknowledges that commit. On
//! MariaDB the master's binary logs cannot be listed while a commit waits for
//! an acknowledgement; the replica reads where the oldest starts from the
//! master's sidecar instead.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::Queryable;

async fn replica_starts_under_a_waiting_commit(engine: Engine) {
    let e = engine.name();
    let mut c = Cluster::new(engine);
    c.extra_env
        .push(("MYSQL_STS_SEMI_SYNC".into(), "true".into()));
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
