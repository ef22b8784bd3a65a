//! The benchmark's figures and how they are rendered: Markdown tables and an
//! SVG plot. Measuring happens in `main.rs`; nothing here touches a cluster.

/// Median, min and max of a sample.
pub fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The `p` quantile (0..=1) of a sample, nearest rank.
pub fn quantile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

pub fn secs_row(name: &str, v: &[f64]) -> String {
    let (med, min, max) = stats(v);
    format!("| {name} | {med:.2} s | {min:.2} s | {max:.2} s |")
}

pub fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// Figures of one data size.
pub struct SizeResult {
    pub mb: u64,
    pub data_mb: f64,
    pub ours: Vec<f64>,
    pub bare: Vec<f64>,
    pub ready: Vec<f64>,
}

/// Figures measured at the main size only.
#[derive(Default)]
pub struct MainResult {
    pub ceiling: Vec<f64>,
    pub init_peak_kb: u64,
    pub sidecar_idle_kb: u64,
    pub sidecar_idle_anon_kb: u64,
    pub sidecar_serving_kb: u64,
    pub probe_ours: f64,
    pub probe_sql: f64,
    pub latency_idle: Vec<f64>,
    /// Idle, on a cluster with semi-synchronous replication.
    pub latency_idle_semi_sync: Vec<f64>,
    pub latency_replica: Vec<f64>,
    pub latency_master: Vec<f64>,
    pub latency_replica_own_disk: Vec<f64>,
    pub latency_master_own_disk: Vec<f64>,
    pub recovery: Vec<f64>,
    pub binary_bytes: u64,
    /// The agent image's size, when it is built.
    pub image_bytes: Option<f64>,
}

/// Figures of the MySQL comparison.
pub struct MysqlResult {
    pub data_mb: f64,
    /// mysql-sts init, whole.
    pub ours: Vec<f64>,
    /// Its CLONE INSTANCE alone.
    pub copy: Vec<f64>,
    /// A hand-issued CLONE INSTANCE.
    pub hand: Vec<f64>,
}

pub fn plot(results: &[SizeResult]) -> String {
    let (w, h, pad) = (380.0, 260.0, 50.0);
    let xs: Vec<f64> = results.iter().map(|r| r.data_mb / 1000.0).collect();
    let panel = |x0: f64, title: &str, unit: &str, series: &[(&str, &str, Vec<f64>)]| {
        let xmax = xs.iter().cloned().fold(0.0, f64::max) * 1.1;
        let ymax = series
            .iter()
            .flat_map(|s| s.2.iter().cloned())
            .fold(0.0, f64::max)
            * 1.15;
        let px = |x: f64| x0 + pad + x / xmax * (w - pad - 10.0);
        let py = |y: f64| h - pad + 10.0 - y / ymax * (h - pad - 20.0);
        let mut s = format!(
            "<text x=\"{}\" y=\"16\" font-weight=\"bold\">{title}</text>\
             <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\
             <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\
             <text x=\"{}\" y=\"{}\">datadir GB</text><text x=\"{}\" y=\"30\">{unit}</text>",
            x0 + pad,
            px(0.0),
            py(0.0),
            px(xmax),
            py(0.0),
            px(0.0),
            py(0.0),
            px(0.0),
            py(ymax),
            px(xmax) - 70.0,
            h - 12.0,
            x0 + 4.0,
        );
        for i in 0..=4 {
            let y = ymax / 1.15 * i as f64 / 4.0;
            s += &format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{y:.0}</text>",
                px(0.0) - 4.0,
                py(y) + 4.0
            );
        }
        for x in &xs {
            s += &format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{x:.2}</text>",
                px(*x),
                py(0.0) + 16.0
            );
        }
        for (k, (name, colour, ys)) in series.iter().enumerate() {
            let points: Vec<String> = xs
                .iter()
                .zip(ys)
                .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
                .collect();
            s += &format!(
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                points.join(" ")
            );
            for p in &points {
                let (x, y) = p.split_once(',').unwrap();
                s += &format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{colour}\"/>");
            }
            s += &format!(
                "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{name}</text>",
                px(0.0) + 10.0,
                46.0 + 16.0 * k as f64
            );
        }
        s
    };
    let med = |f: &dyn Fn(&SizeResult) -> &Vec<f64>| -> Vec<f64> {
        results.iter().map(|r| stats(f(r)).0).collect()
    };
    let rate = |f: &dyn Fn(&SizeResult) -> &Vec<f64>| -> Vec<f64> {
        results.iter().map(|r| r.data_mb / stats(f(r)).0).collect()
    };
    let left = panel(
        0.0,
        "Clone throughput (MariaDB)",
        "MB/s",
        &[
            ("mysql-sts", "#1f77b4", rate(&|r| &r.ours)),
            ("bare pipeline", "#d62728", rate(&|r| &r.bare)),
        ],
    );
    let right = panel(
        w + 20.0,
        "Seconds (MariaDB, median)",
        "s",
        &[
            ("time to ready, under writes", "#2ca02c", med(&|r| &r.ready)),
            ("mysql-sts clone", "#1f77b4", med(&|r| &r.ours)),
            ("bare pipeline", "#d62728", med(&|r| &r.bare)),
        ],
    );
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>{left}{right}</svg>\n",
        2.0 * w + 20.0
    )
}

pub fn report(sizes: &[SizeResult], main: u64, runs: usize, m: &MainResult) -> String {
    let mut md = vec![format!(
        "{runs} runs per figure: median, min and max. Pods are network namespaces on one machine; \
         the donor of every clone is the replica mysql-1 unless said otherwise.",
    )];
    md.push(String::new());
    md.push("## Clone throughput and time to ready (MariaDB 10.11)".into());
    md.push(String::new());
    md.push("![clone throughput and time to ready against data size](benchmarks.svg)".into());
    md.push(String::new());
    md.push("| data | method | throughput (median) | time: median | min | max |".into());
    md.push("| --- | --- | --- | --- | --- | --- |".into());
    for r in sizes {
        let mut rows = vec![
            (
                "mysql-sts (init of a new replica: stream, verify, prepare)",
                &r.ours,
            ),
            (
                "bare pipeline: mariabackup \\| socat \\| mbstream, prepare",
                &r.bare,
            ),
        ];
        if r.mb == main {
            rows.push((
                "ceiling: tar of the stopped datadir over a socket",
                &m.ceiling,
            ));
        }
        for (name, v) in rows {
            let (med, min, max) = stats(v);
            md.push(format!(
                "| {:.0} MB | {name} | {:.0} MB/s | {med:.2} s | {min:.2} s | {max:.2} s |",
                r.data_mb,
                r.data_mb / med
            ));
        }
    }
    md.push(String::new());
    for r in sizes {
        md.push(format!(
            "- {:.0} MB: mysql-sts / bare pipeline = **{:.2}×** the throughput (target ≥ 0.95×).",
            r.data_mb,
            stats(&r.bare).0 / stats(&r.ours).0
        ));
    }
    md.push(String::new());
    md.extend(
        [
            "Throughput is the donor's datadir size over the wall time of the whole copy, the same",
            "denominator for every method: `tar` moves the binary logs too, the two mariabackup-based",
            "methods do not, and both of those include `--prepare`. The bare pipeline uses socat's",
            "default 8 KiB buffers, as the tutorial does; mysql-sts moves 1 MiB frames over HTTP.",
            "The datadir holds more than the generated rows: the generating transactions grew InnoDB's",
            "undo and system tablespaces, which every method copies too.",
        ]
        .map(String::from),
    );
    md.push(String::new());
    md.push("### Time to ready of a new replica while mysql-0 takes writes".into());
    md.push(String::new());
    md.push("From the start of `mysql-sts init` in an empty pod to its `/readyz` answering 200: clone, prepare, server start, replication caught up.".into());
    md.push(String::new());
    md.push("| data | time: median | min | max |".into());
    md.push("| --- | --- | --- | --- |".into());
    for r in sizes {
        md.push(secs_row(&format!("{:.0} MB", r.data_mb), &r.ready));
    }
    md.push(String::new());

    md.push("## Load on the master during scale-out".into());
    md.push(String::new());
    let idle99 = quantile(&m.latency_idle, 0.99);
    md.push(format!(
        "A client inserts one row at a time into mysql-0 (autocommit, 10 ms apart) while a new \
         replica, mysql-3, clones {runs} times, at {main} MB. The master's pod and the client are \
         pinned to CPU 0, mysql-1, mysql-2 and mysql-3 to CPU 1, as if on separate nodes. This \
         machine has one disk: mysql-2 and mysql-3 keep their data on a tmpfs, as on disks of \
         their own; the last two rows write mysql-3's copy to the master's disk instead."
    ));
    md.push(String::new());
    md.push("| while | writes | p50 | p99 | p99 / idle p99 |".into());
    md.push("| --- | --- | --- | --- | --- |".into());
    for (name, v) in [
        ("idle (20 s)", &m.latency_idle),
        (
            "mysql-3 clones from mysql-2 (mysql-sts: N-1)",
            &m.latency_replica_own_disk,
        ),
        (
            "mysql-3 clones from mysql-0 (always the primary)",
            &m.latency_master_own_disk,
        ),
        (
            "from mysql-2, the copy written to the master's disk",
            &m.latency_replica,
        ),
        (
            "from mysql-0, the copy written to the master's disk",
            &m.latency_master,
        ),
    ] {
        let p99 = quantile(v, 0.99);
        md.push(format!(
            "| {name} | {} | {:.2} ms | {p99:.2} ms | {:.2}× |",
            v.len(),
            quantile(v, 0.5),
            p99 / idle99
        ));
    }
    md.push(String::new());
    md.push(format!(
        "Cloning from N-1: the master's p99 is **{:.2}×** idle (target ≤ 1.1×), {:.2}× when the \
         copy lands on the master's disk; cloning from the primary: {:.2}× and {:.2}×.",
        quantile(&m.latency_replica_own_disk, 0.99) / idle99,
        quantile(&m.latency_replica, 0.99) / idle99,
        quantile(&m.latency_master_own_disk, 0.99) / idle99,
        quantile(&m.latency_master, 0.99) / idle99,
    ));
    md.push(String::new());

    md.push("## The price of semi-synchronous replication".into());
    md.push(String::new());
    md.push(
        "The same client and pinning, idle for 20 s, on the cluster above (asynchronous) and \
         on a three-pod cluster started with `--semi-sync` (a commit is acknowledged once a \
         replica has it)."
            .into(),
    );
    md.push(String::new());
    md.push("| replication | writes | p50 | p99 |".into());
    md.push("| --- | --- | --- | --- |".into());
    for (name, v) in [
        ("asynchronous", &m.latency_idle),
        ("semi-synchronous", &m.latency_idle_semi_sync),
    ] {
        md.push(format!(
            "| {name} | {} | {:.2} ms | {:.2} ms |",
            v.len(),
            quantile(v, 0.5),
            quantile(v, 0.99)
        ));
    }
    md.push(String::new());

    md.push("## Footprint".into());
    md.push(String::new());
    md.push("| | |".into());
    md.push("| --- | --- |".into());
    md.push(format!(
        "| sidecar RSS, idle (of it anonymous memory) | {} ({}) |",
        mb(m.sidecar_idle_kb),
        mb(m.sidecar_idle_anon_kb)
    ));
    md.push(format!(
        "| sidecar peak RSS, having served {runs} clone streams of {main} MB | {} |",
        mb(m.sidecar_serving_kb)
    ));
    md.push(format!(
        "| init peak RSS during a clone | {} |",
        mb(m.init_peak_kb)
    ));
    md.push(format!(
        "| binary (the static build the image ships) | {:.1} MB |",
        m.binary_bytes as f64 / 1e6
    ));
    md.push(match m.image_bytes {
        Some(size) => format!("| agent image `mysql-sts/agent` | {:.1} MB |", size / 1e6),
        None => "| agent image `mysql-sts/agent` | not built |".into(),
    });
    md.push(String::new());
    md.push("RSS counts the pages of the binary in use (file-backed) as well as the heap.".into());
    md.push(String::new());

    md.push("## Probe cost".into());
    md.push(String::new());
    md.push("| readiness check | CPU per check |".into());
    md.push("| --- | --- |".into());
    md.push(format!(
        "| `mysql-sts probe ready` | {:.1} ms |",
        m.probe_ours * 1000.0
    ));
    md.push(format!(
        "| `mariadb -e 'SELECT 1'` (the tutorial's exec probe) | {:.1} ms |",
        m.probe_sql * 1000.0
    ));
    md.push(String::new());

    md.push("## Recovery".into());
    md.push(String::new());
    md.push("mysql-0's server is SIGKILLed; once both replicas have noticed, it is started again. Measured from it accepting connections to both replicas' IO and SQL threads running (polled every 50 ms).".into());
    md.push(String::new());
    md.push("| | median | min | max |".into());
    md.push("| --- | --- | --- | --- |".into());
    md.push(secs_row(
        "master back → every replica replicating",
        &m.recovery,
    ));
    md.push(String::new());
    md.join("\n")
}

pub fn mysql_report(size: u64, r: MysqlResult) -> String {
    let MysqlResult {
        data_mb,
        ours,
        copy,
        hand,
    } = r;
    let row = |name: &str, v: &[f64]| {
        let (med, min, max) = stats(v);
        format!(
            "| {name} | {:.0} MB/s | {med:.2} s | {min:.2} s | {max:.2} s |",
            data_mb / med
        )
    };
    [
        format!("## Clone (MySQL 9.7, CLONE plugin, {size} MB generated, {data_mb:.0} MB datadir)"),
        String::new(),
        "| method | throughput (median) | time: median | min | max |".into(),
        "| --- | --- | --- | --- | --- |".into(),
        row("mysql-sts init, whole (scratch server, CLONE, first start of the copy)", &ours),
        row("mysql-sts, its CLONE INSTANCE alone (from its log)", &copy),
        row("hand-issued CLONE INSTANCE … DATA DIRECTORY into a running server", &hand),
        String::new(),
        format!(
            "mysql-sts's copy / hand-issued: **{:.2}×** the throughput. The whole init also makes the scratch \
             server it issues CLONE from and starts the copy once so that it is recovered and its GTID \
             position known: work the hand-issued statement leaves to the operator.",
            stats(&hand).0 / stats(&copy).0
        ),
        String::new(),
    ]
    .join("\n")
}
