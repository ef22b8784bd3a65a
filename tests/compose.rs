//! The docker compose cluster, driven through a real Docker engine for each
//! engine: `up`, three ready pods in order, a row written on mysql-0 read back
//! on mysql-2, the master's server stopped and started with the replicas
//! resuming, `down -v`. `scripts/test` starts dockerd and builds the images.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{http_get, run, scalar};
use mysql_async::prelude::Queryable;

const ROOT_PASSWORD: &str = "compose-Root-7c21";

struct Project {
    name: String,
    env_file: PathBuf,
    secrets: PathBuf,
    /// The CA the pods' certificate is signed by (PEM).
    ca: String,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

impl Project {
    fn new(engine: &str) -> Project {
        let name = format!("mysqlststest{engine}{}", std::process::id());
        let secrets = std::env::temp_dir().join(format!("{name}-secrets"));
        std::fs::create_dir_all(&secrets).unwrap();
        for (file, value) in [
            ("root_password", ROOT_PASSWORD),
            ("replication_password", "compose-Repl-55e0"),
            ("clone_token", "compose-Token-9d3f0a"),
        ] {
            std::fs::write(secrets.join(file), format!("{value}\n")).unwrap();
        }
        // As scripts/demo makes them: a CA, and one certificate naming the pods.
        let ca = common::tls::ca("mysql-sts compose test CA");
        let names: Vec<String> = (0..3).map(|n| format!("mysql-{n}")).collect();
        let (cert, key) = common::tls::signed(&ca, names);
        for (file, pem) in [("tls_crt", cert), ("tls_key", key), ("tls_ca", ca.pem())] {
            std::fs::write(secrets.join(file), pem).unwrap();
        }
        // The containers run as uid 999 and read the files as they are.
        for e in std::fs::read_dir(&secrets).unwrap() {
            use std::os::unix::fs::PermissionsExt;
            let p = e.unwrap().path();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        Project {
            name,
            env_file: repo().join(format!("docker/{engine}.env")),
            secrets,
            ca: ca.pem(),
        }
    }

    /// GET `path` from pod `n`'s agent: HTTPS by the pod's name, verified
    /// against the CA.
    async fn get(&self, n: u32, path: &str) -> Result<(u16, String), String> {
        let ip: std::net::IpAddr = self.ip(n).parse().map_err(|e| format!("no address: {e}"))?;
        let name = format!("mysql-{n}");
        let client = common::tls_client(&name, std::net::SocketAddr::new(ip, 8080), &self.ca);
        common::send(client.get(format!("https://{name}:8080{path}")), None).await
    }

    /// Creates the pods' data volumes with a root-owned `lost+found` at the
    /// root, as a freshly formatted ext4 volume has.
    fn lost_found_volumes(&self) {
        let env = std::fs::read_to_string(&self.env_file).unwrap();
        let image = env
            .lines()
            .find_map(|l| l.strip_prefix("DB_IMAGE="))
            .expect("DB_IMAGE in the env file")
            .trim()
            .to_owned();
        for n in 0..3 {
            let volume = format!("{}_data-{n}", self.name);
            let out = Command::new("docker")
                .args(["run", "--rm", "--user", "0", "--entrypoint", "mkdir", "-v"])
                .arg(format!("{volume}:/var/lib/mysql"))
                .args([image.as_str(), "/var/lib/mysql/lost+found"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "cannot prepare {volume}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn compose(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .arg("--env-file")
            .arg(&self.env_file)
            .arg("-f")
            .arg(repo().join("docker/compose.yaml"))
            .arg("-p")
            .arg(&self.name)
            .args(args)
            .env("SECRETS_DIR", &self.secrets)
            .output()
            .expect("docker-compose: run scripts/test, which installs it")
    }

    fn ok(&self, args: &[&str]) {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ip(&self, pod: u32) -> String {
        run(Command::new("docker").args([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &format!("{}_mysql-{pod}_1", self.name),
        ]))
        .trim()
        .to_owned()
    }

    /// The ids of the project's containers, running or not.
    fn containers(&self) -> Vec<String> {
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=com.docker.compose.project={}", self.name),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// Every container of the project runs as a non-root user with a
    /// read-only root filesystem.
    fn assert_hardened(&self) {
        let ids = self.containers();
        assert!(ids.len() >= 13, "containers: {ids:?}");
        for id in ids {
            let out = Command::new("docker")
                .args([
                    "inspect",
                    "-f",
                    "{{.Name}} user={{.Config.User}} ro={{.HostConfig.ReadonlyRootfs}}",
                    &id,
                ])
                .output()
                .unwrap();
            let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let user = line
                .split("user=")
                .nth(1)
                .unwrap_or("")
                .split(' ')
                .next()
                .unwrap_or("");
            assert!(
                !user.is_empty() && user != "root" && !user.starts_with("0:") && user != "0",
                "runs as root: {line}"
            );
            assert!(
                line.ends_with("ro=true"),
                "writable root filesystem: {line}"
            );
        }
    }

    /// Every container that runs the agent (init, the server's init, the
    /// sidecar) knows the StatefulSet's size.
    fn assert_replicas_known(&self) {
        let mut agents = 0;
        for id in &self.containers() {
            let out = Command::new("docker")
                .args([
                    "inspect",
                    "-f",
                    "{{.Name}} {{json .Config.Entrypoint}} {{json .Config.Env}}",
                    id,
                ])
                .output()
                .unwrap();
            let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !line.contains("/opt/mysql-sts/mysql-sts\",\"init")
                && !line.contains("/opt/mysql-sts/mysql-sts\",\"sidecar")
            {
                continue;
            }
            agents += 1;
            assert!(
                line.contains("\"MYSQL_STS_REPLICAS=3\""),
                "the agent does not know the number of pods: {line}"
            );
        }
        assert_eq!(agents, 9, "init, server and sidecar of three pods");
    }

    fn logs(&self) -> String {
        let out = self.compose(&["logs", "--no-color", "--tail", "30"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn wait_ready(&self, pod: u32, within: Duration) {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < within {
            let ip = self.ip(pod);
            if !ip.is_empty() {
                match self.get(pod, "/readyz").await {
                    Ok((200, _)) => return,
                    Ok((code, body)) => last = format!("{code} {body}"),
                    Err(e) => last = e,
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "mysql-{pod} not ready after {within:?}: {last}\n{}",
            self.logs()
        );
    }

    async fn root(&self, pod: u32) -> mysql_async::Conn {
        common::connect_tcp(&self.ip(pod), "root", ROOT_PASSWORD).await
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans"]);
        let _ = std::fs::remove_dir_all(&self.secrets);
    }
}

/// Rows in demo.t on `pod`; 0 while the table has not reached it yet.
async fn count(p: &Project, pod: u32) -> u64 {
    let mut c = p.root(pod).await;
    let n: Option<u64> = c
        .query_first("SELECT COUNT(*) FROM demo.t")
        .await
        .ok()
        .flatten();
    let _ = c.disconnect().await;
    n.unwrap_or(0)
}

async fn wait_count(p: &Project, pod: u32, want: u64, within: Duration) {
    let started = Instant::now();
    loop {
        let got = count(p, pod).await;
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < within,
            "mysql-{pod} has {got} of {want} rows\n{}",
            p.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn compose_cluster(engine: &str) {
    let p = Project::new(engine);
    // Volumes as ext4 disks come: a lost+found at the root, owned by root
    // (the official mysql image refuses to initialise a datadir holding one).
    p.lost_found_volumes();
    let started = Instant::now();
    p.ok(&["up", "-d"]);
    for pod in 0..3 {
        p.wait_ready(pod, Duration::from_secs(240)).await;
    }
    eprintln!(
        "[compose {engine}] up to three ready pods: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    p.assert_hardened();
    p.assert_replicas_known();
    // TLS by default: plain HTTP gets nothing, and the replicas verify the
    // master's certificate.
    let plain = http_get(&format!("http://{}:8080/readyz", p.ip(1))).await;
    assert!(
        !matches!(plain, Ok((200, _))),
        "plain HTTP answered: {plain:?}"
    );
    for pod in 1..3 {
        let (_, body) = p.get(pod, "/status").await.unwrap();
        let st: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(st["replication"]["ssl_verify"], true, "mysql-{pod}: {st}");
    }

    let mut m = p.root(0).await;
    m.query_drop("CREATE DATABASE demo").await.unwrap();
    m.query_drop("CREATE TABLE demo.t (id INT PRIMARY KEY, v VARCHAR(64))")
        .await
        .unwrap();
    m.query_drop("INSERT INTO demo.t VALUES (1, 'written on mysql-0')")
        .await
        .unwrap();
    m.disconnect().await.unwrap();
    wait_count(&p, 2, 1, Duration::from_secs(30)).await;
    let mut r = p.root(2).await;
    assert_eq!(
        scalar(&mut r, "SELECT v FROM demo.t WHERE id = 1")
            .await
            .as_deref(),
        Some("written on mysql-0")
    );
    r.disconnect().await.unwrap();

    // Stop and start mysql-0's server: the replicas resume by themselves.
    p.ok(&["stop", "mysql-0-server"]);
    p.ok(&["start", "mysql-0-server"]);
    let back = Instant::now();
    p.wait_ready(0, Duration::from_secs(120)).await;
    let mut m = p.root(0).await;
    m.query_drop("INSERT INTO demo.t VALUES (2, 'after the restart')")
        .await
        .unwrap();
    m.disconnect().await.unwrap();
    for pod in 1..3 {
        wait_count(&p, pod, 2, Duration::from_secs(60)).await;
    }
    eprintln!(
        "[compose {engine}] replicas caught up {:.1} s after the master's server restarted",
        back.elapsed().as_secs_f64()
    );
    p.ok(&["down", "-v"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_mariadb_cluster() {
    compose_cluster("mariadb").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_mariadb11_cluster() {
    compose_cluster("mariadb11").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_mysql_cluster() {
    compose_cluster("mysql").await;
}
