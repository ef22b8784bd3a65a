//! Pods of a StatefulSet on one machine: each a network namespace on a
//! bridge, with its own address and hostname, running the real `mysql-sts
//! init`, a real server and `mysql-sts sidecar` as the kubelet would.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use super::dns::Dns;
use super::*;

/// One pod's processes and files.
pub struct Pod {
    pub ordinal: u32,
    pub name: String,
    pub netns: String,
    pub ip: String,
    /// The pod's directory as the pod sees it.
    pub dir: PathBuf,
    /// The same directory from the host.
    pub host_dir: PathBuf,
    server: Option<Child>,
    sidecar: Option<Child>,
    pub init_runs: u32,
}

impl Pod {
    pub fn datadir(&self) -> PathBuf {
        self.host_dir.join("data")
    }
    pub fn socket(&self) -> PathBuf {
        self.host_dir.join("run/mysqld.sock")
    }
    pub fn agent(&self) -> String {
        format!("http://{}:8080", self.ip)
    }
    pub fn log(&self, what: &str) -> PathBuf {
        self.host_dir.join(format!("{what}.log"))
    }
}

/// The agents' secret files: their variables, the Secret's keys, the values.
const SECRET_FILES: [(&str, &str, &str); 3] = [
    (
        "MYSQL_STS_ROOT_PASSWORD_FILE",
        "root-password",
        ROOT_PASSWORD,
    ),
    (
        "MYSQL_STS_REPLICATION_PASSWORD_FILE",
        "replication-password",
        REPL_PASSWORD,
    ),
    ("MYSQL_STS_CLONE_TOKEN_FILE", "clone-token", CLONE_TOKEN),
];

pub struct Cluster {
    pub engine: Engine,
    pub id: u8,
    pub statefulset: String,
    bridge: String,
    pub base: PathBuf,
    dns: Dns,
    pub pods: BTreeMap<u32, Pod>,
    pub extra_env: Vec<(String, String)>,
    dns_overrides: Vec<(u32, String)>,
    /// With TLS: the CA's PEM; the agents serve and speak HTTPS.
    pub tls_ca: Option<String>,
    /// The CA behind `tls_ca`, to sign renewed certificates.
    pub tls_issuer: Option<super::tls::Ca>,
    /// Root's password as the test's own connections give it.
    pub root_password: String,
    /// Run each server as the chart does: through `mysql-sts init --`, and
    /// again (init first) whenever it exits, as the kubelet restarts a
    /// container.
    pub server_via_init: bool,
}

impl Cluster {
    pub fn new(engine: Engine) -> Cluster {
        require_root();
        // The bridge name is the lock: the first free id is ours.
        let id = (1..=250u8)
            .find(|id| {
                Command::new("ip")
                    .args(["link", "add", &format!("stsbr{id}"), "type", "bridge"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .expect("no free test bridge id");
        let bridge = format!("stsbr{id}");
        // An address of its own: a bridge without one takes its lowest port's,
        // and a new one when that pod goes, while the other pods still send to
        // the old one (their connects to the bridge's host end time out).
        sh(&format!(
            "ip link set {bridge} address 02:00:0a:4d:{id:02x}:01
             ip addr add 10.77.{id}.1/24 dev {bridge}; ip link set {bridge} up"
        ));
        // A Docker engine on the machine sets the FORWARD policy to DROP, which
        // also drops bridged pod-to-pod traffic once br_netfilter is loaded.
        let _ = Command::new("iptables")
            .args([
                "-I", "FORWARD", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT",
            ])
            .stderr(Stdio::null())
            .status();
        let base = if engine.in_chroot() {
            engine.root().join(format!("pods/c{id}"))
        } else {
            PathBuf::from(format!("/var/tmp/mysql-sts-pods/c{id}"))
        };
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        if engine.in_chroot() {
            install_agent_in_chroot(&engine.root());
        }
        let dns = Dns::start(&base, &format!("10.77.{id}.1"));
        let c = Cluster {
            engine,
            id,
            statefulset: "mysql".into(),
            bridge,
            base,
            dns,
            pods: BTreeMap::new(),
            extra_env: Vec::new(),
            dns_overrides: Vec::new(),
            tls_ca: None,
            tls_issuer: None,
            root_password: ROOT_PASSWORD.into(),
            server_via_init: false,
        };
        std::thread::sleep(Duration::from_millis(300));
        c
    }

    /// Makes the agents serve HTTPS with a wildcard certificate for the pods'
    /// names, signed by a CA made here, and speak HTTPS to each other.
    pub fn enable_tls(&mut self) {
        let ca = super::tls::ca("mysql-sts test CA");
        let (cert, key) = super::tls::signed(&ca, vec![format!("*.{DOMAIN}")]);
        let dir = self.base.join("tls");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        fs::write(dir.join("tls.crt"), cert).unwrap();
        fs::write(dir.join("tls.key"), key).unwrap();
        let seen = Path::new("/").join(dir.strip_prefix(self.engine.root()).unwrap());
        for (var, file) in [
            ("MYSQL_STS_TLS_CERT_FILE", "tls.crt"),
            ("MYSQL_STS_TLS_KEY_FILE", "tls.key"),
            ("MYSQL_STS_TLS_CA_FILE", "ca.pem"),
        ] {
            self.extra_env
                .push((var.into(), seen.join(file).display().to_string()));
        }
        self.tls_ca = Some(ca.pem());
        self.tls_issuer = Some(ca);
    }

    /// Gives the agents their passwords and token in files, one directory
    /// per pod (as each pod mounts the Secret), instead of variables: pods
    /// created from now on.
    pub fn use_secret_files(&mut self) {
        for (var, key, _) in SECRET_FILES {
            self.extra_env
                .push((var.into(), format!("{{pod}}/secrets/{key}")));
        }
    }

    /// Writes `value` as pod `n`'s secret file `key` in place, as the kubelet
    /// updates a mounted Secret (a rename: never half a value).
    pub fn write_secret(&self, n: u32, key: &str, value: &str) {
        let dir = self.pod(n).host_dir.join("secrets");
        fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(format!(".{key}.new"));
        fs::write(&tmp, value).unwrap();
        fs::rename(&tmp, dir.join(key)).unwrap();
    }

    /// Writes a new certificate and key for the pods in place (as
    /// cert-manager renews a mounted Secret), valid for `valid_for`.
    pub fn renew_tls(&self, valid_for: Duration) -> String {
        let ca = self.tls_issuer.as_ref().expect("enable_tls first");
        let (cert, key) = super::tls::signed_for(ca, vec![format!("*.{DOMAIN}")], valid_for);
        let dir = self.base.join("tls");
        for (name, text) in [("tls.key", &key), ("tls.crt", &cert)] {
            let tmp = dir.join(format!(".{name}.new"));
            fs::write(&tmp, text).unwrap();
            fs::rename(&tmp, dir.join(name)).unwrap();
        }
        cert
    }

    /// Where the TLS files are: on this host, and as the pods see them.
    pub fn tls_dir(&self) -> (PathBuf, PathBuf) {
        let dir = self.base.join("tls");
        let seen = Path::new("/").join(dir.strip_prefix(self.engine.root()).unwrap());
        (dir, seen)
    }

    /// GET `path` from pod `n`'s agent, over HTTPS by its name when TLS is on.
    pub async fn get(&self, n: u32, path: &str) -> Result<(u16, String), String> {
        self.get_with(n, path, None).await
    }

    pub async fn get_with(
        &self,
        n: u32,
        path: &str,
        bearer: Option<&str>,
    ) -> Result<(u16, String), String> {
        let resp = self.request(n, path, bearer).await?;
        let code = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        Ok((code, body))
    }

    /// Starts a GET of `path` on pod `n`'s agent; the body is left unread.
    pub async fn request(
        &self,
        n: u32,
        path: &str,
        bearer: Option<&str>,
    ) -> Result<reqwest::Response, String> {
        let pod = self.pod(n);
        let (client, url) = match &self.tls_ca {
            Some(ca) => {
                let name = format!("{}.{DOMAIN}", pod.name);
                let addr = format!("{}:8080", pod.ip).parse().unwrap();
                (
                    tls_client(&name, addr, ca),
                    format!("https://{name}:8080{path}"),
                )
            }
            None => (plain_client(), format!("http://{}:8080{path}", pod.ip)),
        };
        let mut req = client.get(url);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        req.send().await.map_err(|e| e.to_string())
    }

    /// The process id of pod `n`'s sidecar, while it runs.
    pub fn sidecar_pid(&self, n: u32) -> Option<u32> {
        self.pod(n).sidecar.as_ref().map(|c| c.id())
    }

    /// The process id of pod `n`'s server, while it runs.
    pub fn server_pid(&self, n: u32) -> Option<u32> {
        self.pod(n).server.as_ref().map(|c| c.id())
    }

    pub fn pod(&self, n: u32) -> &Pod {
        &self.pods[&n]
    }

    fn pod_name(&self, n: u32) -> String {
        format!("{}-{n}", self.statefulset)
    }

    /// Creates the pod's namespace, address and files; publishes its DNS name
    /// (the headless Service publishes not-ready addresses too).
    pub fn create_pod(&mut self, n: u32) {
        if self.pods.contains_key(&n) {
            return;
        }
        let id = self.id;
        let name = self.pod_name(n);
        let netns = format!("sts{id}-{n}");
        let veth = format!("v{id}-{n}");
        let ip = format!("10.77.{id}.{}", 10 + n);
        // A leftover of an interrupted run would hold the names.
        let _ = Command::new("ip")
            .args(["link", "del", &veth])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &netns])
            .stderr(Stdio::null())
            .status();
        sh(&format!(
            "ip netns add {netns}
             ip link add {veth} type veth peer name eth0 netns {netns}
             ip link set {veth} master {} up
             ip -n {netns} addr add {ip}/24 dev eth0
             ip -n {netns} link set eth0 up
             ip -n {netns} link set lo up
             ip -n {netns} route add default via 10.77.{id}.1
             mkdir -p /etc/netns/{netns}
             echo 'nameserver 10.77.{id}.1' > /etc/netns/{netns}/resolv.conf",
            self.bridge
        ));
        // A pod recreated at the same address has a new MAC: forget the old one.
        let _ = Command::new("ip")
            .args(["neigh", "flush", "to", &ip])
            .status();
        for other in self.pods.values() {
            let _ = Command::new("ip")
                .args(["-n", &other.netns, "neigh", "flush", "to", &ip])
                .status();
        }
        let host_dir = self.base.join(&name);
        let dir = Path::new("/").join(host_dir.strip_prefix(self.engine.root()).unwrap());
        for sub in ["data", "conf.d", "run"] {
            fs::create_dir_all(host_dir.join(sub)).unwrap();
        }
        fs::write(host_dir.join("my.cnf"), self.server_cnf(&dir)).unwrap();
        let files = self
            .extra_env
            .iter()
            .any(|(_, v)| v.contains("{pod}/secrets/"));
        if files {
            fs::create_dir_all(host_dir.join("secrets")).unwrap();
            for (_, key, value) in SECRET_FILES {
                fs::write(host_dir.join("secrets").join(key), value).unwrap();
            }
        }
        self.pods.insert(
            n,
            Pod {
                ordinal: n,
                name,
                netns,
                ip,
                dir,
                host_dir,
                server: None,
                sidecar: None,
                init_runs: 0,
            },
        );
        self.publish_dns();
    }

    fn server_cnf(&self, dir: &Path) -> String {
        let d = dir.display();
        let common = format!(
            "[mysqld]\nuser=root\ndatadir={d}/data\nsocket={d}/run/mysqld.sock\n\
             pid-file={d}/run/mysqld.pid\nport=3306\nbind-address=0.0.0.0\n\
             log_error={d}/server-error.log\nskip-name-resolve\ninnodb_buffer_pool_size=32M\n"
        );
        let engine = match self.engine {
            Engine::Mariadb | Engine::Mariadb11 => "",
            Engine::Mysql => {
                "mysqlx=OFF\nsecure-file-priv=NULL\nperformance_schema=OFF\ninnodb_redo_log_capacity=16M\n"
            }
        };
        format!("{common}{engine}!includedir {d}/conf.d\n")
    }

    pub fn publish_dns(&self) {
        let mut hosts = String::new();
        for p in self.pods.values() {
            let ip = self
                .dns_overrides
                .iter()
                .find(|(n, _)| *n == p.ordinal)
                .map_or(p.ip.as_str(), |(_, ip)| ip.as_str());
            hosts.push_str(&format!("{ip} {}.{DOMAIN}\n", p.name));
        }
        self.dns.publish(&hosts);
    }

    /// A command run inside pod `n`: its network namespace, its hostname and,
    /// for the sid engines, the chroot (with the namespace's resolv.conf bound
    /// into it, and a /proc as a container has: mariadb-backup needs one).
    pub fn pod_command(&self, n: u32, argv: &[String]) -> Command {
        let pod = self.pod(n);
        let root = self.engine.root();
        let setup = if self.engine.in_chroot() {
            format!(
                "hostname {}; mount --bind /etc/resolv.conf {root}/etc/resolv.conf; \
                 mount -t proc proc {root}/proc; exec chroot {root} \"$@\"",
                pod.name,
                root = root.display()
            )
        } else {
            format!("hostname {}; exec \"$@\"", pod.name)
        };
        let mut cmd = Command::new("ip");
        // Its own process group: killing a "container" kills what it started.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.args(["netns", "exec", &pod.netns, "unshare", "--uts", "sh", "-c"])
            .arg(setup)
            .arg("sh")
            .args(argv);
        cmd.env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("MYSQL_ROOT_PASSWORD", ROOT_PASSWORD)
            .env("MYSQL_STS_REPLICATION_PASSWORD", REPL_PASSWORD)
            .env("MYSQL_STS_CLONE_TOKEN", CLONE_TOKEN)
            .env("MYSQL_STS_SERVICE", SERVICE)
            .env("POD_NAMESPACE", NAMESPACE)
            .env("MYSQL_STS_DATADIR", pod.dir.join("data"))
            .env("MYSQL_STS_CONF_DIR", pod.dir.join("conf.d"))
            .env("MYSQL_STS_MYSQLD_DEFAULTS_FILE", pod.dir.join("my.cnf"))
            .env("MYSQL_STS_DONOR_TIMEOUT", "60s")
            .env("MYSQL_STS_RECONCILE_INTERVAL", "1s")
            .env("MYSQL_STS_DONOR_FALLBACK_AFTER", "3s")
            .env("TMPDIR", "/tmp");
        // The agents log at the level the test run asks for.
        if let Some(level) = std::env::var_os("MYSQL_STS_LOG") {
            cmd.env("MYSQL_STS_LOG", level);
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v.replace("{pod}", &pod.dir.display().to_string()));
        }
        cmd
    }

    pub fn agent_argv(&self, args: &[&str]) -> Vec<String> {
        let bin = if self.engine.in_chroot() {
            "/usr/local/bin/mysql-sts".into()
        } else {
            agent_binary().display().to_string()
        };
        std::iter::once(bin)
            .chain(args.iter().map(|s| s.to_string()))
            .collect()
    }

    /// Runs `mysql-sts init` in pod `n` and returns its exit status and output.
    pub fn run_init(&mut self, n: u32, extra: &[&str]) -> (ExitStatus, String) {
        let mut args = vec!["init"];
        args.extend_from_slice(extra);
        let argv = self.agent_argv(&args);
        let out = self.pod_command(n, &argv).output().expect("mysql-sts init");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let pod = self.pods.get_mut(&n).unwrap();
        pod.init_runs += 1;
        let mut log = fs::read_to_string(pod.log("init")).unwrap_or_default();
        log.push_str(&format!(
            "--- init run {} ({})\n{text}",
            pod.init_runs, out.status
        ));
        fs::write(pod.log("init"), log).unwrap();
        (out.status, text)
    }

    /// What the server image's entrypoint does on an empty datadir: initialise
    /// it and set the root password (root@localhost and root@'%').
    /// Skips a datadir that is already initialised.
    pub async fn entrypoint_or_skip(&mut self, n: u32) {
        let pod = self.pod(n);
        if pod.datadir().join("mysql").exists() {
            return;
        }
        let cnf = format!("--defaults-file={}", pod.dir.join("my.cnf").display());
        let argv: Vec<String> = match self.engine.flavor() {
            mysql_sts::engine::Flavor::Mariadb => vec![
                "mariadb-install-db".into(),
                cnf,
                "--auth-root-authentication-method=normal".into(),
                "--skip-test-db".into(),
            ],
            mysql_sts::engine::Flavor::Mysql => {
                vec!["mysqld".into(), cnf, "--initialize-insecure".into()]
            }
        };
        let mut out = self.pod_command(n, &argv).output().unwrap();
        if !out.status.success() {
            // Once more on an empty datadir: a host under the load of the
            // whole suite has failed a bootstrap now and then.
            eprintln!(
                "initialising {} failed, once more: {}",
                pod.name,
                tail(&pod.host_dir.join("server-error.log"))
            );
            let dd = pod.datadir();
            let _ = fs::remove_dir_all(&dd);
            fs::create_dir_all(&dd).unwrap();
            out = self.pod_command(n, &argv).output().unwrap();
        }
        assert!(
            out.status.success(),
            "initialising {}: {}{}\nserver log:\n{}",
            pod.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&pod.host_dir.join("server-error.log"))
        );
        self.start_server(n);
        let mut conn = connect_socket(&self.pod(n).socket(), None).await;
        for sql in [
            format!("ALTER USER root@localhost IDENTIFIED BY '{ROOT_PASSWORD}'"),
            format!("CREATE USER root@'%' IDENTIFIED BY '{ROOT_PASSWORD}'"),
            "GRANT ALL ON *.* TO root@'%' WITH GRANT OPTION".into(),
        ] {
            conn.query_drop(sql).await.unwrap();
        }
        // Like the official images: no anonymous or host-specific root accounts.
        let extra: Vec<(String, String)> = conn
            .query(
                "SELECT User, Host FROM mysql.user WHERE User = '' \
                 OR (User = 'root' AND Host NOT IN ('localhost', '%'))",
            )
            .await
            .unwrap();
        for (user, host) in extra {
            conn.query_drop(format!("DROP USER '{user}'@'{host}'"))
                .await
                .unwrap();
        }
        conn.disconnect().await.unwrap();
    }

    pub fn start_server(&mut self, n: u32) {
        if self.pod(n).server.is_some() {
            return;
        }
        let child = self.spawn_server(n);
        self.wait_server(n, child);
    }

    /// Starts pod `n`'s server (through init with `server_via_init`) without
    /// waiting for it to accept connections.
    fn spawn_server(&mut self, n: u32) -> Child {
        let pod = self.pod(n);
        let mut argv = vec![
            self.engine.server().to_owned(),
            format!("--defaults-file={}", pod.dir.join("my.cnf").display()),
        ];
        let (mut out, mut err) = (Stdio::null(), Stdio::null());
        if self.server_via_init {
            let mut wrapped: Vec<String> = ["sh", "-c", "while :; do \"$@\"; sleep 1; done", "sh"]
                .map(String::from)
                .into();
            wrapped.extend(self.agent_argv(&["init", "--"]));
            wrapped.append(&mut argv);
            argv = wrapped;
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(pod.log("init"))
                .unwrap();
            out = log.try_clone().unwrap().into();
            err = log.into();
        }
        self.pod_command(n, &argv)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap()
    }

    /// Waits until pod `n`'s server, `child`, accepts connections on its socket.
    fn wait_server(&mut self, n: u32, child: Child) {
        let pod = self.pod(n);
        let socket = pod.socket();
        let started = Instant::now();
        let mut child = child;
        while !socket.exists() || std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "server of {} exited ({status}): {}",
                    pod.name,
                    tail(&pod.host_dir.join("server-error.log"))
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "server of {} did not start: {}",
                pod.name,
                tail(&pod.host_dir.join("server-error.log"))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.pods.get_mut(&n).unwrap().server = Some(child);
    }

    pub fn start_sidecar(&mut self, n: u32) {
        if self.pod(n).sidecar.is_some() {
            return;
        }
        let argv = self.agent_argv(&["sidecar"]);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.pod(n).log("sidecar"))
            .unwrap();
        let child = self
            .pod_command(n, &argv)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.pods.get_mut(&n).unwrap().sidecar = Some(child);
    }

    /// Starts pod `n` as the kubelet would: init to completion, then the
    /// server (through the image's entrypoint), then the sidecar.
    pub async fn start_pod(&mut self, n: u32) {
        self.create_pod(n);
        let (status, out) = self.run_init(n, &[]);
        assert!(
            status.success(),
            "init of {} failed ({status}):\n{out}",
            self.pod(n).name
        );
        self.entrypoint_or_skip(n).await;
        if self.server_via_init && self.pod(n).server.is_none() {
            // The kubelet starts the sidecar right after the server container,
            // whose init may still hold the agent port while it asks the peers.
            // (An entrypoint that initialised the datadir left its server
            // running: a second one would only wait on its lock, and replace
            // the first one's handle, which then outlived the test.)
            let server = self.spawn_server(n);
            self.start_sidecar(n);
            self.wait_server(n, server);
        } else {
            self.start_server(n);
            self.start_sidecar(n);
        }
    }

    /// Stops the sidecar (SIGTERM) and the server (SIGTERM, clean shutdown);
    /// returns how the sidecar exited.
    pub fn stop_pod(&mut self, n: u32) -> Option<ExitStatus> {
        let pod = self.pods.get_mut(&n).unwrap();
        let sidecar = pod.sidecar.take().map(terminate);
        if let Some(server) = pod.server.take() {
            terminate_group(server);
        }
        sidecar
    }

    /// SIGKILL of the server "container" (its whole process group).
    pub fn kill_server(&mut self, n: u32) {
        if let Some(c) = self.pods.get_mut(&n).unwrap().server.take() {
            kill_group(c);
        }
    }

    /// SIGKILL of the sidecar "container", with any backup it was streaming.
    pub fn kill_sidecar(&mut self, n: u32) {
        if let Some(c) = self.pods.get_mut(&n).unwrap().sidecar.take() {
            kill_group(c);
        }
    }

    /// Runs `mysql-sts init` in pod `n` in the background, output to its log.
    pub fn spawn_init(&mut self, n: u32, extra: &[&str]) -> Child {
        let mut args = vec!["init"];
        args.extend_from_slice(extra);
        let argv = self.agent_argv(&args);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.pod(n).log("init"))
            .unwrap();
        self.pods.get_mut(&n).unwrap().init_runs += 1;
        self.pod_command(n, &argv)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Deletes pod `n` and its volume, as `kubectl delete pod` + PVC would.
    pub fn remove_pod(&mut self, n: u32) {
        self.kill_sidecar(n);
        self.kill_server(n);
        if let Some(p) = self.pods.remove(&n) {
            let _ = Command::new("ip").args(["netns", "del", &p.netns]).status();
            let _ = fs::remove_dir_all(format!("/etc/netns/{}", p.netns));
            let _ = fs::remove_dir_all(&p.host_dir);
        }
        self.publish_dns();
    }

    /// Publishes `name` at `ip` instead of the pod's address (a test proxy).
    pub fn override_dns(&mut self, n: u32, ip: Option<&str>) {
        self.dns_overrides.retain(|(k, _)| *k != n);
        if let Some(ip) = ip {
            self.dns_overrides.push((n, ip.to_owned()));
        }
        self.publish_dns();
    }

    /// The address of the host end of the pods' bridge.
    pub fn gateway(&self) -> String {
        format!("10.77.{}.1", self.id)
    }

    /// Cuts (or restores) pod `n`'s traffic to pod `to`, inside `n`'s namespace.
    pub fn partition(&self, n: u32, to: u32, cut: bool) {
        let rule = if cut { "-A" } else { "-D" };
        run(Command::new("ip").args([
            "netns",
            "exec",
            &self.pod(n).netns,
            "iptables",
            rule,
            "OUTPUT",
            "-d",
            &self.pod(to).ip,
            "-j",
            "DROP",
        ]));
    }

    /// A killed server's connections outlive it in the kernel, which goes on
    /// sending what their buffers held once a cut link is restored; a
    /// server that died with its node sends nothing more. Drops those
    /// flows, each by its addresses and ports, so that new connections pass.
    pub fn drop_dead_server_flows(&self, n: u32) {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.pod(n).netns,
                "ss",
                "-Htan",
                "sport = :3306",
            ])
            .output()
            .expect("ss");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some((ip, port)) = fields
                .get(4)
                .filter(|_| fields.first() != Some(&"LISTEN"))
                .and_then(|peer| peer.rsplit_once(':'))
            else {
                continue;
            };
            run(Command::new("ip").args([
                "netns",
                "exec",
                &self.pod(n).netns,
                "iptables",
                "-A",
                "OUTPUT",
                "-p",
                "tcp",
                "--sport",
                "3306",
                "-d",
                ip,
                "--dport",
                port,
                "-j",
                "DROP",
            ]));
        }
    }

    pub fn stop_server(&mut self, n: u32) {
        if let Some(c) = self.pods.get_mut(&n).unwrap().server.take() {
            terminate_group(c);
        }
    }

    /// Stops pod `n`'s server as the kubelet stops a container: SIGTERM to
    /// its first process alone (init, with `server_via_init`), which must
    /// stop the server; then the rest of the pod's restart loop. Returns how
    /// long init took to end.
    pub fn stop_server_like_kubelet(&mut self, n: u32) -> Duration {
        assert!(
            self.server_via_init,
            "the container's first process is init"
        );
        let looped = self.pods.get_mut(&n).unwrap().server.take().unwrap();
        let children = Command::new("pgrep")
            .args(["-P", &looped.id().to_string()])
            .output()
            .unwrap();
        let init = String::from_utf8_lossy(&children.stdout)
            .split_whitespace()
            .next()
            .expect("init runs under the restart loop")
            .to_owned();
        let started = Instant::now();
        let _ = Command::new("kill").args(["-TERM", &init]).status();
        while Path::new(&format!("/proc/{init}")).exists()
            && started.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let took = started.elapsed();
        terminate_group(looped);
        took
    }

    /// Waits until the pod's `/readyz` answers 200; panics with its last answer.
    pub async fn wait_ready(&self, n: u32, within: Duration) -> Duration {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < within {
            match self.get(n, "/readyz").await {
                Ok((200, _)) => return started.elapsed(),
                Ok((code, body)) => last = format!("{code} {body}"),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "{} not ready after {within:?}: {last}\nsidecar log:\n{}",
            self.pod(n).name,
            tail(&self.pod(n).log("sidecar"))
        );
    }

    pub async fn status(&self, n: u32) -> serde_json::Value {
        let (code, body) = self.get(n, "/status").await.unwrap();
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// A root connection to pod `n`'s server over TCP, as a client would.
    pub async fn root(&self, n: u32) -> mysql_async::Conn {
        connect_tcp(&self.pod(n).ip, "root", &self.root_password).await
    }

    /// A write made by hand on replica `n`, as root, past its read-only
    /// guard (which its sidecar may restore in between).
    pub async fn hand_write(&self, n: u32, sql: &str) {
        let mut r = self.root(n).await;
        let write = match self.engine {
            Engine::Mysql => format!("SET GLOBAL super_read_only = 0; {sql}"),
            Engine::Mariadb | Engine::Mariadb11 => sql.to_owned(),
        };
        let started = Instant::now();
        while let Err(e) = r.query_drop(&write).await {
            assert!(started.elapsed() < Duration::from_secs(10), "{e}");
        }
        r.disconnect().await.unwrap();
    }
}

/// SIGKILL to the child's process group, then reaps it.
pub fn kill_group(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
}

/// SIGTERM, then SIGKILL after 60 s; returns the exit status.
fn terminate(mut child: Child) -> ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait().unwrap()
}

/// SIGTERM to the child's whole process group (a server "container" run
/// through init and a restart loop: the server stops, and nothing starts
/// it again); waits until every process of the group is gone.
fn terminate_group(child: Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    let pid = child.id();
    terminate(child);
    let started = Instant::now();
    let alive = || {
        Command::new("kill")
            .args(["-0", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    while alive() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ns: Vec<u32> = self.pods.keys().copied().collect();
        for n in &ns {
            let pod = self.pods.get_mut(n).unwrap();
            for child in [pod.sidecar.take(), pod.server.take()]
                .into_iter()
                .flatten()
            {
                kill_group(child);
            }
        }
        self.dns.stop();
        for p in self.pods.values() {
            let _ = Command::new("ip").args(["netns", "del", &p.netns]).status();
            let _ = fs::remove_dir_all(format!("/etc/netns/{}", p.netns));
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
        let _ = Command::new("iptables")
            .args([
                "-D",
                "FORWARD",
                "-i",
                &self.bridge,
                "-o",
                &self.bridge,
                "-j",
                "ACCEPT",
            ])
            .stderr(Stdio::null())
            .status();
        if std::env::var_os("MYSQL_STS_KEEP_TEST_DIRS").is_none() {
            let _ = fs::remove_dir_all(&self.base);
        }
    }
}

/// Copies the agent into the chroot, atomically, if it changed.
fn install_agent_in_chroot(root: &Path) {
    let src = agent_binary();
    let dst = root.join("usr/local/bin/mysql-sts");
    let same = match (fs::metadata(&src), fs::metadata(&dst)) {
        (Ok(a), Ok(b)) => a.len() == b.len() && a.modified().ok() <= b.modified().ok(),
        _ => false,
    };
    if !same {
        // Tests of one binary run side by side: each copy its own name.
        static COPIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = root.join(format!(
            "usr/local/bin/.mysql-sts.{}.{n}",
            std::process::id()
        ));
        fs::copy(&src, &tmp).unwrap();
        fs::rename(&tmp, &dst).unwrap();
    }
}
