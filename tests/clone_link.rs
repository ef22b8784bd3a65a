//! A MariaDB clone stream's options, on real servers and the real stream:
//! `--clone-compression zstd` sends far fewer bytes than the data, `none` the
//! data as it is, and a donor with `--clone-max-rate` sends no faster than
//! its cap; every copy holds the donor's rows.

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

async fn stream_options(engine: Engine) {
    let e = engine.name();
    let mut c = Cluster::new(engine);
    c.start_pod(0).await;
    c.wait_ready(0, Duration::from_secs(120)).await;
    load(&c, 24).await;

    let plain = clone_with(&mut c, &["--clone-compression", "none"]).await;
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
    let rate = 4u64 << 20;
    c.extra_env
        .push(("MYSQL_STS_CLONE_MAX_RATE".into(), "4MiB".into()));
    c.kill_sidecar(0);
    c.start_sidecar(0);
    c.wait_ready(0, Duration::from_secs(30)).await;
    let capped = clone_with(&mut c, &["--clone-compression", "none"]).await;
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
