mod common;
use common::*;
use mysql_async::prelude::Queryable;
use std::time::Duration;

async fn waiter(c: &Cluster, id: u64) -> (u64, tokio::task::JoinHandle<String>) {
    let mut m = c.root(0).await;
    let cid: u64 = m
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    let h = tokio::spawn(async move {
        let r = m.exec_drop("INSERT INTO app.t VALUES (?)", (id,)).await;
        format!("{r:?}")
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    (cid, h)
}

async fn probe(engine: Engine) {
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
    c.kill_sidecar(1);
    c.kill_server(1);
    c.kill_sidecar(0);
    let (cid, h) = waiter(&c, 1).await;
    let mut admin = c.root(0).await;
    admin
        .query_drop("SET SESSION lock_wait_timeout=2")
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let ro = admin
        .query_drop(if e == "mysql" {
            "SET GLOBAL super_read_only=ON"
        } else {
            "SET GLOBAL read_only=ON"
        })
        .await;
    eprintln!(
        "[{e}] read-only under a waiting commit: {ro:?} after {:?}",
        t.elapsed()
    );
    let _ = admin
        .query_drop(if e == "mysql" {
            "SET GLOBAL super_read_only=OFF"
        } else {
            "SET GLOBAL read_only=OFF"
        })
        .await;
    admin.query_drop(format!("KILL QUERY {cid}")).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), h).await;
    eprintln!("[{e}] KILL QUERY of a waiting commit: {r:?}");
    let (cid, h) = waiter(&c, 2).await;
    admin
        .query_drop(format!("KILL CONNECTION {cid}"))
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), h).await;
    eprintln!("[{e}] KILL CONNECTION of a waiting commit: {r:?}");
    let rows: Vec<u64> = admin.query("SELECT id FROM app.t").await.unwrap();
    eprintln!("[{e}] rows on the master: {rows:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_mysql() {
    probe(Engine::Mysql).await;
}
#[tokio::test(flavor = "multi_thread")]
async fn probe_mariadb() {
    probe(Engine::Mariadb).await;
}
