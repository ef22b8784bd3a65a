//! A real S3-compatible object store for the backup tests: SeaweedFS's
//! `weed server` (built from its Go module by `scripts/install-test-deps`),
//! one per test, on ports of its own, with an access key and a bucket.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Cluster;

pub const ACCESS_KEY: &str = "AKIAMYSQLSTSTEST";
pub const SECRET_KEY: &str = "s3-Secret-9c41d7e0";
pub const BUCKET: &str = "backups";

pub fn weed_binary() -> PathBuf {
    std::env::var_os("MYSQL_STS_TEST_WEED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/mysql-sts-test/s3/bin/weed"))
}

pub struct S3 {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    /// The S3 port, and the filer's (plain HTTP to the stored files, for a
    /// test that damages an object behind the store's back).
    pub port: u16,
    pub filer_port: u16,
    pub master_port: u16,
    volume_port: u16,
    /// With TLS: the HTTPS port.
    pub https_port: Option<u16>,
}

/// A port free now, whose gRPC twin (+10000) is free too, as `weed` needs.
fn free_port_pair() -> u16 {
    for _ in 0..1000 {
        let p = std::net::TcpListener::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !(10_000..55_000).contains(&p) {
            continue;
        }
        if std::net::TcpListener::bind(("0.0.0.0", p + 10_000)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair for weed");
}

impl S3 {
    /// Starts the store and makes the bucket; it answers S3 on every
    /// address of the host, the pods' bridges among them.
    pub fn start() -> S3 {
        S3::start_with(None)
    }

    /// [`S3::start`], answering S3 over HTTPS too (on `https_port`) with a
    /// certificate for 127.0.0.1 that `ca` signed.
    pub fn start_tls(ca: &super::tls::Ca) -> S3 {
        S3::start_with(Some(ca))
    }

    fn start_with(ca: Option<&super::tls::Ca>) -> S3 {
        let weed = weed_binary();
        assert!(
            weed.exists(),
            "{} is missing: run scripts/install-test-deps",
            weed.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("mysql-sts-s3-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            serde_json::json!({"identities": [{
                "name": "agent",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]})
            .to_string(),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        if let Some(ca) = ca {
            let (cert, key) = super::tls::signed(ca, vec!["127.0.0.1".into(), "localhost".into()]);
            std::fs::write(dir.path().join("s3.crt"), cert).unwrap();
            std::fs::write(dir.path().join("s3.key"), key).unwrap();
        }
        let mut s3 = S3 {
            child: None,
            https_port: ca.map(|_| free_port_pair()),
            dir,
            port: free_port_pair(),
            filer_port: free_port_pair(),
            master_port: free_port_pair(),
            volume_port: free_port_pair(),
        };
        s3.spawn();
        s3.make_bucket(BUCKET);
        s3
    }

    /// Starts `weed server` on this store's directory and ports.
    fn spawn(&mut self) {
        let dir = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("weed.log"))
            .unwrap();
        let mut cmd = Command::new(weed_binary());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.arg("server");
        if let Some(https) = self.https_port {
            cmd.arg(format!("-s3.port.https={https}"))
                .arg(format!("-s3.cert.file={}", dir.join("s3.crt").display()))
                .arg(format!("-s3.key.file={}", dir.join("s3.key").display()));
        }
        let child = cmd
            .arg(format!("-dir={}", dir.join("data").display()))
            .args(["-s3", "-ip=127.0.0.1", "-ip.bind=0.0.0.0", "-volume.max=0"])
            .arg("-master.volumeSizeLimitMB=256")
            .arg(format!("-s3.port={}", self.port))
            .arg(format!("-filer.port={}", self.filer_port))
            .arg(format!("-master.port={}", self.master_port))
            .arg(format!("-volume.port={}", self.volume_port))
            .arg(format!("-s3.config={}", dir.join("s3.json").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_answering(Duration::from_secs(60));
    }

    /// Starts the store again on what it stored, after [`S3::kill`].
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        // Its master elects itself again before the store answers for data.
        self.make_bucket(BUCKET);
    }

    fn wait_answering(&self, within: Duration) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < within,
                "weed did not answer S3 on {} within {within:?}:\n{}",
                self.port,
                super::tail(&self.dir.path().join("weed.log"))
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs commands in the store's own shell; its output.
    pub fn shell(&self, commands: &str) -> String {
        let mut shell = Command::new(weed_binary())
            .args(["shell", &format!("-master=127.0.0.1:{}", self.master_port)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        shell
            .stdin
            .take()
            .unwrap()
            .write_all(commands.as_bytes())
            .unwrap();
        let out = shell.wait_with_output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Makes a bucket through the store's own shell (its master may take a
    /// moment to have a leader).
    pub fn make_bucket(&self, name: &str) {
        let started = Instant::now();
        loop {
            let text = self.shell(&format!("s3.bucket.create -name {name}\n"));
            if text.contains("created bucket") || text.contains("already exist") {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "cannot make bucket {name}: {text}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Fills the bucket: 3 MB more in it behind the store's back, then a
    /// quota of 1 MB enforced (the store then refuses every write to it;
    /// its usage figures come a moment after the writes).
    pub async fn fill_bucket(&self) {
        reqwest::Client::new()
            .put(self.filer_url("filler"))
            .body(vec![7u8; 3 << 20])
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        self.shell(&format!(
            "s3.bucket.quota -name {BUCKET} -op set -sizeMB 1\n"
        ));
        let started = Instant::now();
        loop {
            let said = self.shell("s3.bucket.quota.enforce -apply\n");
            if said.contains("read only") {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the bucket is not full: {said}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The store as pods of `c` reach it: through their bridge's address.
    pub fn endpoint_for(&self, c: &Cluster) -> String {
        format!("http://{}:{}", c.gateway(), self.port)
    }

    /// The variables that point the agents of `c` at `prefix` in the bucket.
    pub fn env_for(&self, c: &Cluster, prefix: &str) -> Vec<(String, String)> {
        [
            ("MYSQL_STS_BACKUP_URL", format!("s3://{BUCKET}/{prefix}")),
            ("MYSQL_STS_BACKUP_ENDPOINT", self.endpoint_for(c)),
            ("MYSQL_STS_BACKUP_ACCESS_KEY", ACCESS_KEY.into()),
            ("MYSQL_STS_BACKUP_SECRET_KEY", SECRET_KEY.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The bucket opened from this process, as the agent opens it.
    pub fn store(&self, prefix: &str) -> mysql_sts::backup::Store {
        let source = |what: &'static str, env: &'static str| mysql_sts::secret::SecretSource {
            what,
            env,
            flag: "--unused",
            file: None,
        };
        // SAFETY: set before any thread of the test reads them.
        unsafe {
            std::env::set_var("MYSQL_STS_TEST_S3_ACCESS", ACCESS_KEY);
            std::env::set_var("MYSQL_STS_TEST_S3_SECRET", SECRET_KEY);
        }
        mysql_sts::backup::Store::open(&mysql_sts::backup::StoreConfig {
            url: format!("s3://{BUCKET}/{prefix}"),
            endpoint: Some(format!("http://127.0.0.1:{}", self.port)),
            region: "us-east-1".into(),
            access_key: source("access key", "MYSQL_STS_TEST_S3_ACCESS"),
            secret_key: source("secret key", "MYSQL_STS_TEST_S3_SECRET"),
            ca: None,
        })
        .unwrap()
    }

    /// The URL of an object on the filer, under the bucket (no S3, no
    /// signature): `path` is the key in the bucket.
    pub fn filer_url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/buckets/{BUCKET}/{path}",
            self.filer_port
        )
    }

    /// Stops the store at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            super::kill_group(child);
        }
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.kill();
    }
}
