//! The sidecar in-process, without root or namespaces: its real HTTP server
//! on a loopback port and its control loop, with no database server behind
//! it (the loop keeps failing to connect, as it does while a server starts).
//! What a client sees: `/livez`, `/readyz`, `/status`, `/metrics`, the
//! `/clone` token, busy and wrong-engine answers, and the drain on stop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_sts::engine::Flavor;
use mysql_sts::net::sql::Target;
use mysql_sts::pod::Identity;
use mysql_sts::secret::Secret;
use mysql_sts::shutdown::Shutdown;
use mysql_sts::sidecar::control::LoopSettings;
use mysql_sts::sidecar::readiness::Policy;
use mysql_sts::sidecar::shared::Shared;
use mysql_sts::status::Status;

const TOKEN: &str = "in-process-Token-42";

struct Sidecar {
    base: String,
    shared: Arc<Shared>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<mysql_sts::Result<()>>,
    _datadir: tempfile::TempDir,
}

/// A sidecar for `mysql-1` whose server (port 1 on loopback) never answers.
fn start(flavor: Option<Flavor>) -> Sidecar {
    let identity = Identity::new("mysql-1", "mysql-h.test.svc.cluster.local", 100).unwrap();
    let datadir = tempfile::tempdir().unwrap();
    let local = Target {
        host: "127.0.0.1".into(),
        port: 1,
        socket: None,
        user: "root".into(),
        password: Some(Secret::new("root-pw")),
    };
    let shared = Shared::new(
        identity,
        flavor,
        local,
        datadir.path().to_owned(),
        Some(Secret::new(TOKEN)),
        None,
    );
    let settings = LoopSettings {
        flavor,
        mysql_port: 1,
        replication_user: "repl".into(),
        replication_password: Secret::new("repl-pw"),
        policy: Policy {
            max_lag: Duration::from_secs(30),
            master_outage_grace: Duration::from_secs(30),
        },
        interval: Duration::from_millis(100),
        semi_sync: None,
        tls_ca: None,
        auto_reclone: None,
        aside_retention: None,
        http: None,
        sources: None,
    };
    let listener = mysql_sts::sidecar::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = Shutdown::new();
    let task = tokio::spawn(mysql_sts::sidecar::run(
        shared.clone(),
        listener,
        None,
        settings,
        None,
        shutdown.clone(),
    ));
    Sidecar {
        base,
        shared,
        shutdown,
        task,
        _datadir: datadir,
    }
}

impl Sidecar {
    async fn get(&self, path: &str, bearer: Option<&str>) -> (u16, String) {
        let mut req = reqwest::Client::builder()
            .tls_certs_only([])
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
            .get(format!("{}{path}", self.base));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        (code, resp.text().await.unwrap())
    }

    /// Waits until the control loop has run a round (and failed to connect).
    async fn after_a_round(&self) {
        let started = Instant::now();
        while self.shared.status().last_error.is_none() {
            assert!(started.elapsed() < Duration::from_secs(10), "no round ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn probes_status_and_metrics_without_a_server() {
    let s = start(Some(Flavor::Mariadb));
    s.after_a_round().await;

    let (code, body) = s.get("/livez", None).await;
    assert_eq!(code, 200, "the loop runs: {body}");

    let (code, body) = s.get("/readyz", None).await;
    assert_eq!(code, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["cause"], "server_unreachable", "{body}");

    let (code, body) = s.get("/status", None).await;
    assert_eq!(code, 200);
    let st: Status = serde_json::from_str(&body).expect("/status is the Status type");
    assert_eq!(st.identity.hostname, "mysql-1");
    assert_eq!(st.flavor, Some(Flavor::Mariadb));
    assert!(!st.ready.ready);
    assert!(st.gtid_executed.is_none() && st.gtid_errant.is_none());
    let err = st.last_error.expect("the failed connection is shown");
    assert!(err.contains("127.0.0.1:1"), "{err}");
    for secret in ["root-pw", "repl-pw", TOKEN] {
        assert!(!body.contains(secret), "/status shows a secret");
    }

    let (code, body) = s.get("/metrics", None).await;
    assert_eq!(code, 200);
    assert!(body.contains("mysql_sts_ready 0"), "{body}");
    assert!(
        body.contains(r#"mysql_sts_reconcile_errors_total{kind="connection"}"#),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"), "OpenMetrics text");
    s.shutdown.begin();
    s.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn clone_token_busy_and_wrong_engine() {
    let s = start(Some(Flavor::Mariadb));
    for bearer in [None, Some("wrong"), Some("in-process-Token-4")] {
        let (code, body) = s.get("/clone", bearer).await;
        assert_eq!(code, 401, "{bearer:?}: {body}");
    }
    let metrics = s.get("/metrics", None).await.1;
    assert!(
        metrics.contains("mysql_sts_clone_unauthorized_requests_total 3"),
        "{metrics}"
    );
    // The one clone slot taken: the next recipient is told to come back.
    let slot = s.shared.clone_slot.clone().try_acquire_owned().unwrap();
    let (code, body) = s.get("/clone", Some(TOKEN)).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("busy"), "{body}");
    drop(slot);
    s.shutdown.begin();
    s.task.await.unwrap().unwrap();

    let s = start(Some(Flavor::Mysql));
    let (code, body) = s.get("/clone", Some(TOKEN)).await;
    assert_eq!(code, 409, "a MySQL donor serves no stream: {body}");
    assert!(body.contains("CLONE plugin"), "{body}");
    s.shutdown.begin();
    s.task.await.unwrap().unwrap();

    // The flavour not known yet (the server never answered): not yet.
    let s = start(None);
    let (code, body) = s.get("/clone", Some(TOKEN)).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("not been reached"), "{body}");
    s.shutdown.begin();
    s.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_stop_drains_and_ends_the_loop() {
    let s = start(Some(Flavor::Mariadb));
    s.after_a_round().await;
    let started = Instant::now();
    s.shutdown.begin();
    tokio::time::timeout(Duration::from_secs(10), s.task)
        .await
        .expect("the sidecar stops after a stop request")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        s.shared.shutdown.is_cancelled(),
        "the loop and streams were told"
    );
    let refused = reqwest::Client::new()
        .get(format!("{}/livez", s.base))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(refused.is_err(), "nothing listens after the stop");
}
