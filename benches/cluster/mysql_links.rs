//! MySQL's clone as MariaDB's is measured in `links.rs`: through a link held
//! to 1 Gbit/s and 250 Mbit/s with each `--clone-compression` (the CLONE
//! plugin's network compression) beside a hand-issued `CLONE INSTANCE`
//! over the same link, then the master as donor: its write latency idle,
//! serving clones uncapped and capped by `--clone-max-rate` (the CLONE
//! plugin's bandwidth caps, which the recipient takes from the donor's
//! sidecar), beside a plain reader of its datadir at the cap's rate. On
//! data that compresses as tables usually do, not one repeated string.

use super::*;
use common::link::{SlowLink, mbit};
use links::{LinkRow, paced_read};
use report::{LatencyRow, quantile, stats};

/// The methods of the rows the summary compares, beside the rows'
/// "mysql-sts, no compression" (`links::compression_rows`).
const COMPRESSED: &str = "mysql-sts, compressed";
const BY_HAND: &str = "CLONE INSTANCE by hand, no compression";

/// Grows `bench.filler` to about `mb` MB on the master with rows such as an
/// application keeps: a name from a small vocabulary, numbers, a date, two
/// hex digests and a sentence of random words; zstd's fast level shrinks
/// such a table about threefold, not the hundredfold of one repeated string.
async fn grow_mixed(c: &Cluster, mb: u64) {
    let started = Instant::now();
    let mut m = c.root(0).await;
    for sql in [
        "CREATE DATABASE IF NOT EXISTS bench",
        "CREATE TABLE IF NOT EXISTS bench.filler (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         name VARCHAR(32), qty INT, price DECIMAL(10,2), at DATETIME, \
         ref CHAR(64), tag CHAR(32), pad VARCHAR(700)) ENGINE=InnoDB",
        "CREATE TABLE IF NOT EXISTS bench.lat (id BIGINT PRIMARY KEY, v VARCHAR(16)) ENGINE=InnoDB",
    ] {
        m.query_drop(sql).await.unwrap();
    }
    let words = "ELT(1 + FLOOR(RAND() * 12), 'order', 'shipped', 'customer', 'pending', \
                 'invoice', 'returned', 'warehouse', 'paid', 'north', 'express', 'refund', 'item')";
    let sentence = (0..60).map(|_| words).collect::<Vec<_>>().join(", ' ', ");
    // Two digests, the second 32 characters long: MySQL 9 has no MD5().
    let row = format!(
        "{words}, FLOOR(RAND() * 1000), ROUND(RAND() * 10000, 2), \
         NOW() - INTERVAL FLOOR(RAND() * 100000000) SECOND, SHA2(RAND(), 256), LEFT(SHA2(RAND(), 256), 32), \
         CONCAT({sentence})"
    );
    let cols = "(name, qty, price, at, ref, tag, pad)";
    // Rows are about 1 KB: `mb` thousand of them.
    fill(
        &mut m,
        mb * 1000,
        &format!("INSERT INTO bench.filler {cols} SELECT {row}"),
        |add| format!("INSERT INTO bench.filler {cols} SELECT {row} FROM bench.filler LIMIT {add}"),
    )
    .await;
    m.disconnect().await.unwrap();
    eprintln!(
        "bench: mixed data grown to {mb} MB in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// How many times smaller zstd's fast level (the agent's) makes the table's
/// data file.
fn zstd_ratio(c: &Cluster, n: u32) -> f64 {
    let file = c.pod(n).datadir().join("bench/filler.ibd");
    let data = std::fs::read(&file).unwrap();
    let packed = zstd::bulk::compress(&data, 1).unwrap();
    data.len() as f64 / packed.len() as f64
}

/// A hand-issued `CLONE INSTANCE` from `donor` into a scratch server in pod
/// 2 (made and started first, not timed): the statement's wall time.
pub fn clone_by_hand(c: &mut Cluster, donor: &str) -> f64 {
    c.create_pod(2);
    let d = c.pod(2).dir.join("hand");
    let d = d.display();
    let server = format!(
        "mysqld --no-defaults --user=root --datadir={d}/scratch --socket={d}/s.sock --port=3306 \
         --mysqlx=OFF --secure-file-priv= --plugin-load-add=mysql_clone.so --log-error={d}/error.log --pid-file={d}/pid"
    );
    let client = format!("mysql --no-defaults -uroot -S {d}/s.sock");
    let script = format!(
        "mkdir -p {d}; mysqld --no-defaults --user=root --initialize-insecure --datadir={d}/scratch 2>/dev/null; \
         {server} & pid=$!; trap 'kill $pid; wait $pid' EXIT; \
         i=0; while ! {client} -e 'SELECT 1' >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 1200 ] || {{ cat {d}/error.log >&2; exit 1; }}; sleep 0.1; done; \
         {client} -e \"SET GLOBAL clone_valid_donor_list = '{donor}:3306'\"; \
         date +%s.%N; \
         {client} -e \"CLONE INSTANCE FROM 'root'@'{donor}':3306 IDENTIFIED BY '{ROOT_PASSWORD}' DATA DIRECTORY = '{d}/data'\"; \
         date +%s.%N"
    );
    let (_, out) = timed_sh(c, 2, &script);
    let t: Vec<f64> = out.lines().filter_map(|l| l.parse().ok()).collect();
    assert_eq!(t.len(), 2, "{out}");
    c.remove_pod(2);
    t[1] - t[0]
}

/// The master donor's rows: idle, serving clones uncapped, capped at a
/// quarter of an uncapped clone's rate, and the control at that rate.
const UNCAPPED: usize = 0;
const CAPPED: usize = 1;
const CONTROL: usize = 2;

pub async fn mysql_links(mb: u64, runs: usize) -> String {
    let mut c = Cluster::new(Engine::Mysql);
    c.start_pod(0).await;
    c.wait_ready(0, Duration::from_secs(120)).await;
    grow_mixed(&c, mb).await;
    c.start_pod(1).await;
    c.wait_ready(1, Duration::from_secs(1200)).await;
    caught_up(&c, 1).await;
    purge_binlogs(&c, 1).await;
    let data_mb = mysql_sts::progress::dir_size(&c.pod(1).datadir()) as f64 / 1e6;
    let ratio = zstd_ratio(&c, 1);
    let gateway = c.gateway();
    let donor = c.pod(1).ip.clone();
    let mut rows = Vec::new();
    for rate in [1000, 250] {
        // mysql-2's init reaches mysql-1 by name: the name leads to the
        // link, which carries both the sidecar's port and the server's.
        let link = SlowLink::start(&gateway, &donor, &[8080, 3306], mbit(rate)).await;
        c.override_dns(1, Some(&gateway));
        rows.extend(links::compression_rows(&mut c, rate, runs, COMPRESSED));
        c.override_dns(1, None);
        let mut hand = LinkRow {
            mbit: rate,
            method: BY_HAND,
            secs: Vec::new(),
            wire_mb: None,
        };
        for _ in 0..runs {
            hand.secs.push(clone_by_hand(&mut c, &gateway));
        }
        eprintln!(
            "bench: mysql {rate} Mbit/s, by hand: {:.2} s",
            stats(&hand.secs).0
        );
        rows.push(hand);
        drop(link);
    }
    let (idle, donor_rows, clone_mb_s) = capped_master(&mut c, runs, data_mb).await;
    report(
        mb,
        data_mb,
        ratio,
        runs,
        &rows,
        &idle,
        &donor_rows,
        clone_mb_s,
    )
}

/// The master's write latency idle, while it serves clones to a new mysql-2
/// uncapped and capped at a quarter of an uncapped clone's rate, and while a
/// plain reader reads its datadir at that rate, 128 KiB per read; windows
/// taking turns, `rounds` of each, pinned as in `links.rs`. Returns the
/// idle windows, the rows, and the uncapped clone's rate (MB/s).
async fn capped_master(
    c: &mut Cluster,
    rounds: usize,
    data_mb: f64,
) -> (Vec<Vec<f64>>, Vec<LatencyRow>, f64) {
    let min = window_len();
    let writer = links::master_as_donor(c);
    let plain = ["--clone-compression", "none"];
    let mut idle = Vec::new();
    let mut rows = vec![
        LatencyRow::new("serving clones, no cap"),
        LatencyRow::new("capped at a quarter of an uncapped clone's rate"),
        LatencyRow::new("control: the datadir read at that rate, 128 KiB per read, no agent"),
    ];
    let mut clone_mb_s = 0.0;
    for _ in 0..rounds {
        idle.push(idle_window(&writer, min).await);
        for row in [UNCAPPED, CAPPED, CONTROL] {
            if row == CONTROL {
                let dir = c.pod(0).datadir();
                let mb_s = clone_mb_s / 4.0;
                let from = Instant::now();
                tokio::task::spawn_blocking(move || paced_read(&dir, 128 << 10, mb_s, min))
                    .await
                    .unwrap();
                rows[row].windows.push(writer.window(from, Instant::now()));
                continue;
            }
            links::restart_master_sidecar(c, (row == CAPPED).then_some(clone_mb_s / 4.0)).await;
            let win = scaleout::clones_window(c, &writer, 2, true, min, &plain);
            eprintln!(
                "bench: mysql master donor, {}: {} writes, p99 {:.2} ms, {} clones",
                rows[row].name,
                win.lat.len(),
                quantile(&win.lat, 0.99),
                win.copies.len()
            );
            if row == UNCAPPED && clone_mb_s == 0.0 {
                clone_mb_s = data_mb / stats(&win.copies).0;
            }
            rows[row].windows.push(win.lat);
            rows[row].copies.extend(win.copies);
        }
    }
    c.extra_env.retain(|(k, _)| k != "MYSQL_STS_CLONE_MAX_RATE");
    c.override_dns(1, None);
    writer.finish().await;
    (idle, rows, clone_mb_s)
}

#[allow(clippy::too_many_arguments)]
fn report(
    mb: u64,
    data_mb: f64,
    ratio: f64,
    runs: usize,
    rows: &[LinkRow],
    idle: &[Vec<f64>],
    donor_rows: &[LatencyRow],
    clone_mb_s: f64,
) -> String {
    let mut s = format!(
        "## MySQL clones over slow links and from a capped master (MySQL 9.7)\n\n\
         A new replica clones {data_mb:.0} MB ({mb} MB of generated rows) from mysql-1 through a \
         link held to a rate by a proxy on the bridge, which carries the sidecar's port and the \
         server's: the CLONE plugin copies, the recipient setting `clone_enable_compression` from \
         `--clone-compression` (`auto`: on only for a capped donor, so off here). The hand-issued \
         `CLONE INSTANCE` goes through the same link, into a scratch server made beforehand. \
         The rows are what an application keeps (a word from a small vocabulary, numbers, a \
         date, two hex digests, a sentence of 60 random words of twelve): zstd's fast level makes \
         the table's data file **{ratio:.1}×** smaller. Runs of each: {runs}.\n\n\
"
    );
    s += &links::link_table(rows);
    s += &link_summary(rows);
    let idle99 = report::median_p99(idle);
    let ratio_of = |row: usize| report::median_p99(&donor_rows[row].windows) / idle99;
    s += &format!(
        "\n### A MySQL master donor capped by `--clone-max-rate`\n\n\
         As for MariaDB: a client writes one row at a time to mysql-0 while mysql-2 clones from \
         it, clones back to back in windows of {} s, the rows taking turns, {runs} windows each, \
         the master's pod and the client on CPU 0, the rest on CPU 1. An uncapped clone reaches \
         {clone_mb_s:.0} MB/s (datadir over wall time); the cap is a quarter of that \
         ({:.0} MB/s), which the recipient's CLONE takes from the master's sidecar (in whole \
         MiB/s). The control reads the master's datadir at the cap's rate, 128 KiB per read, \
         with no clone.\n\n",
        window_len().as_secs(),
        clone_mb_s / 4.0,
    );
    s += &report::latency_table(idle, donor_rows).join("\n");
    s += &format!(
        "\n\nCapped, the master's p99 (the median window's) is **{:.2}×** idle's, a clone {:.1} s \
         (median); the control at the same rate **{:.2}×**, so the capped clone costs **{:.2}×** \
         what reading the same bytes costs; uncapped {:.2}×.\n",
        ratio_of(CAPPED),
        stats(&donor_rows[CAPPED].copies).0,
        ratio_of(CONTROL),
        ratio_of(CAPPED) / ratio_of(CONTROL),
        ratio_of(UNCAPPED),
    );
    s
}

/// Each link's mysql-sts rows beside their control, the statement by hand.
fn link_summary(rows: &[LinkRow]) -> String {
    let mut s = String::from("\n");
    for rate in [1000, 250] {
        let (Some(plain), Some(packed), Some(hand)) = (
            links::median_secs(rows, rate, "mysql-sts, no compression"),
            links::median_secs(rows, rate, COMPRESSED),
            links::median_secs(rows, rate, BY_HAND),
        ) else {
            continue;
        };
        s += &format!(
            "- {rate} Mbit/s: mysql-sts uncompressed {plain:.1} s, {:.1} s more than the statement \
             by hand ({hand:.1} s); compressed **{:.2}×** the uncompressed time.\n",
            plain - hand,
            packed / plain,
        );
    }
    s + "\nA mysql-sts row is init's whole run: besides the `CLONE` statement it starts the \
         scratch server that issues it, and then the copy once, so that it is recovered and its \
         GTID position known; the row by hand is the statement alone, into a server started \
         beforehand: work that does not depend on the link. Compression pays where the link, \
         not the CPU, is the bound.\n"
}
