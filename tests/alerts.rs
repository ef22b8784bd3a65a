//! The chart's alerts and dashboard, evaluated by a real Prometheus (Debian's
//! `prometheus`) scraping the sidecars of a MariaDB cluster: every dashboard
//! query runs and every metric it or an alert names exists; a write made by
//! hand on a replica fires the errant and not-ready alerts, and its re-clone
//! resolves them.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/mysql-sts/monitoring");

/// The chart's alerts as its template renders them for pods `mysql-N` in
/// namespace `test`, with every `for` cut to 2 s (a test cannot wait minutes).
fn rules() -> String {
    let text = std::fs::read_to_string(Path::new(CHART).join("alerts.yaml")).unwrap();
    let text = text.replace("__SELECTOR__", r#"namespace="test",pod=~"mysql-[0-9]+""#);
    let mut out = String::new();
    for line in text.lines() {
        match line.trim_start().strip_prefix("for: ") {
            Some(_) => out.push_str(&line.replace(line.trim_start(), "for: 2s")),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(c: &Cluster, dir: &Path) -> Prometheus {
        std::fs::write(dir.join("rules.yaml"), rules()).unwrap();
        let targets: String = (0..3)
            .map(|n| {
                format!(
                    "      - targets: ['{}:8080']\n        labels: {{namespace: test, pod: mysql-{n}}}\n",
                    c.pod(n).ip
                )
            })
            .collect();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 rule_files: [rules.yaml]\n\
                 scrape_configs:\n  - job_name: mysql-sts\n    static_configs:\n{targets}"
            ),
        )
        .unwrap();
        let port = 19090 + u16::from(c.id);
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus (scripts/install-test-deps installs it)");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> serde_json::Value {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.url), query).unwrap();
        let resp = plain_client().get(url).send().await;
        match resp {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    }

    async fn query(&self, q: &str) -> serde_json::Value {
        self.api("/api/v1/query", &[("query", q)]).await
    }

    /// The alerts firing now, as (name, pod, cause).
    async fn firing(&self) -> BTreeSet<(String, String, String)> {
        let v = self.api("/api/v1/alerts", &[]).await;
        v["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "firing")
            .map(|a| {
                let l = &a["labels"];
                let s = |k: &str| l[k].as_str().unwrap_or_default().to_owned();
                (s("alertname"), s("pod"), s("cause"))
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_fire_and_resolve_on_a_real_prometheus() {
    let mut c = Cluster::new(Engine::Mariadb);
    for n in 0..3 {
        c.start_pod(n).await;
        c.wait_ready(n, Duration::from_secs(180)).await;
    }
    let dir = std::env::temp_dir().join(format!("mysql-sts-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let prom = Prometheus::start(&c, &dir);
    let log = || tail(&dir.join("prometheus.log"));

    // Every pod scraped.
    let started = Instant::now();
    loop {
        let up = prom.query("sum(up{job=\"mysql-sts\"})").await;
        if up["data"]["result"][0]["value"][1] == "3" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "targets not up: {up}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every dashboard query runs, and every metric a query or an alert names
    // is one the sidecars export.
    let board: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(CHART).join("dashboard.json")).unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = board["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    for e in &exprs {
        let q = e
            .replace("$__rate_interval", "1m")
            .replace("$namespace", "test")
            .replace("$pod", ".+");
        let r = prom.query(&q).await;
        assert_eq!(r["status"], "success", "dashboard query {q}: {r}");
    }
    let exported: BTreeSet<String> = prom
        .query("count by (__name__) ({__name__=~\"mysql_sts_.+\"})")
        .await["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["__name__"].as_str().unwrap().to_owned())
        .collect();
    let named: BTreeSet<String> = exprs
        .iter()
        .map(String::as_str)
        .chain([rules().as_str()])
        .flat_map(|t| {
            t.split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .filter(|w| w.starts_with("mysql_sts_"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let unknown: Vec<&String> = named.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "named but not exported: {unknown:?}; exported: {exported:?}"
    );
    eprintln!(
        "{} dashboard queries ran; the {} metrics they and the alerts name are all exported",
        exprs.len(),
        named.len()
    );
    assert!(
        prom.firing().await.is_empty(),
        "alerts firing on a healthy cluster: {:?}",
        prom.firing().await
    );

    // A write by hand on mysql-1: errant, not ready.
    let broke = Instant::now();
    c.hand_write(1, "CREATE DATABASE by_hand").await;
    let want = [
        ("MysqlStsErrantTransactions", ""),
        ("MysqlStsPodNotReady", "errant_transactions"),
    ];
    loop {
        let firing = prom.firing().await;
        if want.iter().all(|(a, cause)| {
            firing.contains(&(a.to_string(), "mysql-1".into(), cause.to_string()))
        }) {
            break;
        }
        assert!(
            broke.elapsed() < Duration::from_secs(60),
            "alerts firing: {firing:?}; mysql-1: {}\n{}",
            c.status(1).await,
            log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "errant and not-ready alerts fired {:.1} s after the write",
        broke.elapsed().as_secs_f64()
    );

    // The repair: mysql-1 cloned again. Both alerts resolve.
    let repaired = Instant::now();
    c.remove_pod(1);
    c.start_pod(1).await;
    c.wait_ready(1, Duration::from_secs(120)).await;
    loop {
        let firing = prom.firing().await;
        if firing.is_empty() {
            break;
        }
        assert!(
            repaired.elapsed() < Duration::from_secs(120),
            "still firing after the re-clone: {firing:?}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "resolved {:.1} s after the re-clone began",
        repaired.elapsed().as_secs_f64()
    );
    drop(prom);
    let _ = std::fs::remove_dir_all(&dir);
}
