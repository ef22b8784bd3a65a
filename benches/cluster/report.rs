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
    /// The sidecar's CPU per `GET /readyz` served.
    pub probe_http: f64,
    pub scale_out: ScaleOut,
    /// Idle, on a cluster with semi-synchronous replication.
    pub latency_idle_semi_sync: Vec<f64>,
    pub recovery: Vec<f64>,
    pub binary_bytes: u64,
    /// The agent image's size, when it is built.
    pub image_bytes: Option<f64>,
}

/// The master's write latency (ms) in windows: idle, and while data moves.
#[derive(Default)]
pub struct ScaleOut {
    pub window_secs: u64,
    /// One sample per idle window.
    pub idle: Vec<Vec<f64>>,
    pub rows: Vec<LatencyRow>,
    /// Per row, the copies taken again because the master's disk stalled
    /// while they ran (only rows whose copy leaves that disk alone).
    pub retaken: Vec<usize>,
}

/// One way of moving data, its windows and its copies' wall times.
pub struct LatencyRow {
    pub name: &'static str,
    pub windows: Vec<Vec<f64>>,
    pub copies: Vec<f64>,
}

impl LatencyRow {
    pub fn new(name: &'static str) -> LatencyRow {
        LatencyRow {
            name,
            windows: Vec::new(),
            copies: Vec::new(),
        }
    }
}

impl ScaleOut {
    /// Every idle window's latencies together.
    pub fn idle_all(&self) -> Vec<f64> {
        self.idle.concat()
    }
}

/// The p99 of each window.
pub fn window_p99s(windows: &[Vec<f64>]) -> Vec<f64> {
    windows.iter().map(|w| quantile(w, 0.99)).collect()
}

/// The median of the windows' p99s: the figure one odd window cannot move.
pub fn median_p99(windows: &[Vec<f64>]) -> f64 {
    stats(&window_p99s(windows)).0
}

/// How far the p99 of each window strays from their median, at most, as a
/// fraction of that median.
pub fn p99_spread(windows: &[Vec<f64>]) -> f64 {
    let (med, min, max) = stats(&window_p99s(windows));
    ((max - med).max(med - min)) / med
}

/// The table of write latency in windows: pooled figures, the p99 of each
/// window, their median against the idle windows' and how far they stray
/// from it.
pub fn latency_table(idle: &[Vec<f64>], rows: &[LatencyRow]) -> Vec<String> {
    let idle99 = median_p99(idle);
    let mut md = vec![
        "| while | writes | p50 | p99 of all | p99 of each window | their median / idle's | spread |"
            .into(),
        "| --- | --- | --- | --- | --- | --- | --- |".into(),
    ];
    let rows = rows
        .iter()
        .filter(|r| !r.windows.is_empty())
        .map(|r| (r.name, r.windows.as_slice()));
    for (name, windows) in std::iter::once(("idle", idle)).chain(rows) {
        let all = windows.concat();
        let each: Vec<String> = window_p99s(windows)
            .iter()
            .map(|p| format!("{p:.2}"))
            .collect();
        md.push(format!(
            "| {name} | {} | {:.2} ms | {:.2} ms | {} ms | {:.2}× | ±{:.0} % |",
            all.len(),
            quantile(&all, 0.5),
            quantile(&all, 0.99),
            each.join(", "),
            median_p99(windows) / idle99,
            p99_spread(windows) * 100.0
        ));
    }
    md
}

/// The section on the master's write latency while data moves.
pub fn scale_out_section(so: &ScaleOut, main: u64, runs: usize) -> Vec<String> {
    let mut md = Vec::new();
    md.push("## Load on the master during scale-out".into());
    md.push(String::new());
    let idle99 = median_p99(&so.idle);
    md.push(format!(
        "A client inserts one row at a time into mysql-0 (autocommit, 10 ms apart) while data \
         moves into a new pod, mysql-3, at {main} MB: clones back to back until they have run \
         {secs} s together, one such window of each kind (and an idle one of {secs} s) per round, \
         {runs} rounds, the kinds taking turns so that a drift of the machine spreads over all of \
         them. The master's pod and the client are pinned to CPU 0, mysql-1, mysql-2 and \
         mysql-3 to CPU 1, as if on separate nodes. This machine has one disk: mysql-2 and \
         mysql-3 keep their data on a tmpfs, as on disks of their own; the last two rows write \
         mysql-3's copy to the master's disk instead. The control row moves mysql-2's datadir \
         (the same bytes) to mysql-3 with plain `tar` over a socket, no agent: what moving the \
         data costs the master on this machine whoever moves it. A window's p99 is the \
         figure compared: their median against the idle windows' median, and the spread, \
         how far one window's p99 strays from their median.",
        secs = so.window_secs
    ));
    md.push(String::new());
    md.extend(latency_table(&so.idle, &so.rows));
    md.push(String::new());
    let row = |prefix: &str| so.rows.iter().find(|r| r.name.starts_with(prefix));
    let ratio = |r: &LatencyRow| median_p99(&r.windows) / idle99;
    if let (Some(n1), Some(primary), Some(tar)) = (
        row("mysql-3 clones from mysql-2"),
        row("mysql-3 clones from mysql-0"),
        row("control"),
    ) {
        let (med, _, _) = stats(&n1.copies);
        md.push(format!(
            "Cloning from N-1: the master's p99 (the median window's) is **{:.2}×** idle's \
             (target ≤ 1.1×), each window's p99 within **±{:.0} %** of it (target ±20 %); {} clones of \
             {med:.2} s (median). The control, plain `tar` between the same two pods: {:.2}× \
             (±{:.0} %). Cloning from the primary: {:.2}×.",
            ratio(n1),
            p99_spread(&n1.windows) * 100.0,
            n1.copies.len(),
            ratio(tar),
            p99_spread(&tar.windows) * 100.0,
            ratio(primary),
        ));
        md.push(String::new());
    }
    let retaken: usize = so.retaken.iter().sum();
    md.push(format!(
        "This virtual machine's disk now and then takes ~70 ms per cache flush for seconds on \
         end while the guest writes almost nothing: the host's doing, found second by second in \
         `/proc/diskstats` and every process's `write_bytes`. Each of the master's commits \
         flushes, so a window that met such a spell had a p99 of hundreds of ms, in the `tar` \
         control as often as in the N-1 row. A copy of those two rows, which write no data to the master's \
         disk, is taken again when the disk's mean flush while it ran was over ten times \
         the idle window's: **{retaken}** copies in this run{}.",
        if retaken == 0 {
            String::new()
        } else {
            format!(
                " ({})",
                so.rows
                    .iter()
                    .zip(&so.retaken)
                    .filter(|(_, n)| **n > 0)
                    .map(|(r, n)| format!("{n} of “{}”", r.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ));
    md.push(String::new());

    md
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

    md.extend(scale_out_section(&m.scale_out, main, runs));
    let so = &m.scale_out;
    md.push("## The price of semi-synchronous replication".into());
    md.push(String::new());
    md.push(format!(
        "The same client and pinning, idle for {runs} windows of {} s, on the cluster above \
             (asynchronous) and on a three-pod cluster started with `--semi-sync` (a commit is \
             acknowledged once a replica has it).",
        so.window_secs
    ));
    md.push(String::new());
    md.push("| replication | writes | p50 | p99 |".into());
    md.push("| --- | --- | --- | --- |".into());
    for (name, v) in [
        ("asynchronous", &so.idle_all()),
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
    md.push(
        "The chart probes the sidecar with `httpGet`: the first row is what the sidecar spends \
         per `GET /readyz` (2000 requests, each on a new connection as the kubelet makes them). \
         The exec probes are what the probe process spends, started by a shell 50 times."
            .into(),
    );
    md.push(String::new());
    md.push("| readiness check | CPU per check |".into());
    md.push("| --- | --- |".into());
    md.push(format!(
        "| `httpGet /readyz` (the chart's probe), in the sidecar | {:.3} ms |",
        m.probe_http * 1000.0
    ));
    md.push(format!(
        "| `mysql-sts probe ready` (exec) | {:.1} ms |",
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
