//! Clones over slow links, and a donor that must not hurt its master: the
//! MariaDB clone through a rate-limited link (a proxy on the bridge; this
//! kernel has no traffic shaping) at 1 Gbit/s and 250 Mbit/s, with each
//! `--clone-compression` and against the bare pipeline over the same link;
//! then the master as donor, its write latency idle, while it serves clones
//! as fast as it can, and capped by `--clone-max-rate` at a quarter of its
//! disk's speed.

use super::*;
use common::link::{SlowLink, mbit};
use report::{quantile, stats};

/// One method over one link.
pub struct LinkRow {
    pub mbit: u64,
    pub method: &'static str,
    pub secs: Vec<f64>,
    /// What crossed the link (MB), where counted.
    pub wire_mb: Option<f64>,
}

/// The master donor's write latency (ms) in each window.
#[derive(Default)]
pub struct CapResult {
    pub disk_mb_s: f64,
    pub cap_mb_s: f64,
    pub idle: Vec<f64>,
    pub uncapped: Vec<f64>,
    pub capped: Vec<f64>,
    pub capped_secs: Vec<f64>,
}

/// The disk's sequential write speed under `dir` (MB/s): 256 MiB written
/// with O_DIRECT.
fn disk_mb_s(dir: &std::path::Path) -> f64 {
    let file = dir.join("bench-disk-speed");
    let started = Instant::now();
    run(std::process::Command::new("dd").args([
        "if=/dev/zero",
        &format!("of={}", file.display()),
        "bs=1M",
        "count=256",
        "oflag=direct",
        "status=none",
    ]));
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&file);
    256.0 * 1.048_576 / secs
}

/// What a clone record says crossed the network (MB).
fn wire_mb(c: &Cluster, n: u32) -> Option<f64> {
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(c.pod(n).datadir().join(".mysql-sts-clone.json")).ok()?,
    )
    .ok()?;
    record["wire_bytes"].as_u64().map(|b| b as f64 / 1e6)
}

pub async fn slow_links(mb: u64, runs: usize) -> (f64, Vec<LinkRow>, CapResult) {
    let (mut c, data_mb) = donor_with_data(Engine::Mariadb, mb, Duration::from_secs(600)).await;
    let gateway = c.gateway();
    let donor = c.pod(1).ip.clone();
    let mut rows = Vec::new();
    for rate in [1000, 250] {
        // mysql-2's init reaches mysql-1 by name: the name leads to the link.
        let link = SlowLink::start(&gateway, &donor, &[8080], mbit(rate)).await;
        c.override_dns(1, Some(&gateway));
        for (method, compression) in [
            ("mysql-sts, no compression", "none"),
            ("mysql-sts, zstd", "zstd"),
            ("mysql-sts, auto", "auto"),
        ] {
            let mut row = LinkRow {
                mbit: rate,
                method,
                secs: Vec::new(),
                wire_mb: None,
            };
            for _ in 0..runs {
                let (secs, _) = clone_ours_with(&mut c, 2, &["--clone-compression", compression]);
                row.secs.push(secs);
                row.wire_mb = wire_mb(&c, 2);
                c.remove_pod(2);
            }
            eprintln!(
                "bench: {rate} Mbit/s, {method}: {:.2} s",
                stats(&row.secs).0
            );
            rows.push(row);
        }
        c.override_dns(1, None);
        drop(link);
        let mut bare = LinkRow {
            mbit: rate,
            method: "bare pipeline: mariabackup \\| socat \\| mbstream, prepare",
            secs: Vec::new(),
            wire_mb: None,
        };
        for _ in 0..runs {
            c.create_pod(2);
            let link = SlowLink::start(&gateway, &c.pod(2).ip, &[9999], mbit(rate)).await;
            bare.secs.push(clone_bare_via(&mut c, Some(&gateway)));
            drop(link);
            c.remove_pod(2);
        }
        eprintln!("bench: {rate} Mbit/s, bare: {:.2} s", stats(&bare.secs).0);
        rows.push(bare);
    }
    let cap = capped_master_donor(&mut c, runs).await;
    (data_mb, rows, cap)
}

/// The master's write latency idle, while it serves clones to a new
/// mysql-2 (its data on a disk of its own), and while it serves them capped
/// at a quarter of its disk's speed. Pinned as the main figures are.
async fn capped_master_donor(c: &mut Cluster, runs: usize) -> CapResult {
    let mut r = CapResult {
        disk_mb_s: disk_mb_s(&c.pod(0).datadir()),
        ..CapResult::default()
    };
    r.cap_mb_s = r.disk_mb_s / 4.0;
    let two = std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    let pin_pods = |c: &Cluster| {
        if two {
            for n in 0..=1 {
                pin(c.server_pid(n).unwrap(), if n == 0 { "0" } else { "1" });
                pin(c.sidecar_pid(n).unwrap(), if n == 0 { "0" } else { "1" });
            }
            pin_self("1");
        }
    };
    pin_pods(c);
    let writer = master_writer(c);
    r.idle = idle_window(&writer).await;
    // mysql-2's donor, mysql-1, is the master by name.
    let master = c.pod(0).ip.clone();
    c.override_dns(1, Some(&master));
    // mysql-2's copy on a disk of its own.
    let plain = ["--clone-compression", "none"];
    r.uncapped = latency_during_clones_into(c, &writer, runs, true, 2, &plain).0;
    c.extra_env.push((
        "MYSQL_STS_CLONE_MAX_RATE".into(),
        format!("{}KiB", (r.cap_mb_s * 1e6 / 1024.0) as u64),
    ));
    c.kill_sidecar(0);
    c.start_sidecar(0);
    c.wait_ready(0, Duration::from_secs(60)).await;
    pin_pods(c);
    (r.capped, r.capped_secs) = latency_during_clones_into(c, &writer, runs, true, 2, &plain);
    c.extra_env.retain(|(k, _)| k != "MYSQL_STS_CLONE_MAX_RATE");
    c.override_dns(1, None);
    writer.finish().await;
    eprintln!(
        "bench: master donor p99 idle {:.2} ms, uncapped {:.2} ms, capped at {:.0} MB/s {:.2} ms",
        quantile(&r.idle, 0.99),
        quantile(&r.uncapped, 0.99),
        r.cap_mb_s,
        quantile(&r.capped, 0.99)
    );
    r
}

/// The section of the report.
pub fn report(mb: u64, data_mb: f64, runs: usize, rows: &[LinkRow], cap: &CapResult) -> String {
    let mut s = format!(
        "## Clones over slow links (MariaDB 10.11)\n\n\
         A new replica clones {data_mb:.0} MB ({mb} MB of generated rows) from mysql-1 through a \
         link held to a rate by a proxy on the bridge (this kernel has no traffic shaping); the \
         bare pipeline sends through the same proxy. Runs of each: {runs}. The generated rows repeat \
         one padding value, so they compress far better than most tables do: the on-the-wire \
         column shows how much.\n\n\
         | link | method | time: median | min | max | on the wire |\n| --- | --- | --- | --- | --- | --- |\n"
    );
    for r in rows {
        let (med, min, max) = stats(&r.secs);
        let wire = r.wire_mb.map_or("-".to_owned(), |w| format!("{w:.0} MB"));
        s += &format!(
            "| {} Mbit/s | {} | {med:.2} s | {min:.2} s | {max:.2} s | {wire} |\n",
            r.mbit, r.method
        );
    }
    s += "\n";
    for rate in [1000, 250] {
        let med = |m: &str| {
            rows.iter()
                .find(|r| r.mbit == rate && r.method.starts_with(m))
                .map(|r| stats(&r.secs).0)
        };
        if let (Some(bare), Some(zstd), Some(auto)) =
            (med("bare"), med("mysql-sts, zstd"), med("mysql-sts, auto"))
        {
            s += &format!(
                "- {rate} Mbit/s: a zstd clone is **{:.2}×** as fast as the bare pipeline, `auto` {:.2}×{}.\n",
                bare / zstd,
                bare / auto,
                if rate == 250 { " (target ≥ 2×)" } else { "" }
            );
        }
    }
    let ratio = |v: &[f64]| quantile(v, 0.99) / quantile(&cap.idle, 0.99);
    s += &format!(
        "\n### A master donor capped by `--clone-max-rate`\n\n\
         The master's disk writes {:.0} MB/s (256 MiB, O_DIRECT); the cap is a quarter of that, \
         {:.0} MB/s. A client writes one row at a time to mysql-0 (10 ms apart) while mysql-2 \
         clones from mysql-0 (runs: {runs}), its copy on a disk of its own; the master's pod and the \
         client on CPU 0, the rest on CPU 1.\n\n\
         | while | writes | p50 | p99 | p99 / idle p99 |\n| --- | --- | --- | --- | --- |\n",
        cap.disk_mb_s, cap.cap_mb_s
    );
    for (name, v) in [
        ("idle (20 s)", &cap.idle),
        ("serving clones, no cap", &cap.uncapped),
        (
            "serving clones, capped at a quarter of the disk",
            &cap.capped,
        ),
    ] {
        s += &format!(
            "| {name} | {} | {:.2} ms | {:.2} ms | {:.2}× |\n",
            v.len(),
            quantile(v, 0.5),
            quantile(v, 0.99),
            ratio(v)
        );
    }
    s += &format!(
        "\nCapped, the master's p99 is **{:.2}×** idle (target ≤ 1.2×); a capped clone took {:.1} s (median).\n",
        ratio(&cap.capped),
        stats(&cap.capped_secs).0
    );
    s
}
