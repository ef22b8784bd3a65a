//! The command-line contract, run on the real binary: identity output, bad
//! input with its documented exit code and message, and nothing written when
//! the input is bad.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::agent_binary;

/// Every secret the agent reads, each set to something.
const SECRETS: [(&str, &str); 3] = [
    ("MYSQL_ROOT_PASSWORD", "x"),
    ("MYSQL_STS_REPLICATION_PASSWORD", "x"),
    ("MYSQL_STS_CLONE_TOKEN", "x"),
];

struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("mysql-sts-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        Scratch { dir }
    }

    fn datadir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn conf_dir(&self) -> PathBuf {
        self.dir.join("conf.d")
    }

    /// The agent with a clean environment pointing at this scratch directory.
    fn agent(&self) -> Command {
        let mut cmd = Command::new(agent_binary());
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("MYSQL_STS_DATADIR", self.datadir())
            .env("MYSQL_STS_CONF_DIR", self.conf_dir())
            .env("MYSQL_STS_PEER_DOMAIN", "mysql-h.db.svc.cluster.local")
            .env("MYSQL_STS_DONOR_TIMEOUT", "1s");
        cmd
    }

    fn untouched(&self) -> bool {
        empty(&self.datadir()) && empty(&self.conf_dir())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn empty(p: &Path) -> bool {
    std::fs::read_dir(p).unwrap().next().is_none()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn identity_prints_the_pod_identity() {
    let s = Scratch::new("identity");
    let out = s
        .agent()
        .args(["identity", "--hostname", "db-cluster-2"])
        .env_remove("MYSQL_STS_PEER_DOMAIN")
        .env("MYSQL_STS_SERVICE", "db-h")
        .env("POD_NAMESPACE", "prod")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["statefulset"], "db-cluster");
    assert_eq!(v["ordinal"], 2);
    assert_eq!(v["role"], "replica");
    assert_eq!(v["server_id"], 102);
    assert_eq!(v["fqdn"], "db-cluster-2.db-h.prod.svc.cluster.local");
    assert_eq!(v["master_fqdn"], "db-cluster-0.db-h.prod.svc.cluster.local");
    assert_eq!(
        v["donors"],
        serde_json::json!([
            "db-cluster-1.db-h.prod.svc.cluster.local",
            "db-cluster-0.db-h.prod.svc.cluster.local"
        ])
    );
    assert!(s.untouched());
}

#[test]
fn init_on_a_bad_hostname_exits_2_and_touches_nothing() {
    for flavor in ["mysql", "mariadb"] {
        for host in [
            "mysql",
            "mysql-",
            "mysql-x",
            "mysql-+1",
            "mysql-01",
            "mysql-99999999999",
            "-3",
        ] {
            let s = Scratch::new("badhost");
            std::fs::write(s.datadir().join("ibdata1"), b"data").unwrap();
            let out = s
                .agent()
                .args(["init", "--flavor", flavor, &format!("--hostname={host}")])
                .envs(SECRETS)
                .output()
                .unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{flavor} {host}: {err}");
            assert!(err.contains(&format!("hostname {host:?}")), "{host}: {err}");
            assert!(empty(&s.conf_dir()), "{host}: a config was written");
            assert_eq!(std::fs::read(s.datadir().join("ibdata1")).unwrap(), b"data");
        }
    }
}

#[test]
fn missing_secrets_exit_2_naming_the_secret() {
    // A replica's init needs the clone token on MariaDB, the passwords on MySQL.
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&str, Env, &str); 4] = [
        ("mariadb", &[], "MYSQL_STS_CLONE_TOKEN"),
        (
            "mysql",
            &[("MYSQL_STS_REPLICATION_PASSWORD", "r")],
            "MYSQL_ROOT_PASSWORD",
        ),
        (
            "mysql",
            &[("MYSQL_ROOT_PASSWORD", "r")],
            "MYSQL_STS_REPLICATION_PASSWORD",
        ),
        (
            "mysql",
            &[
                ("MYSQL_ROOT_PASSWORD", ""),
                ("MYSQL_STS_REPLICATION_PASSWORD", "r"),
            ],
            "MYSQL_ROOT_PASSWORD",
        ),
    ];
    for (flavor, env, named) in cases {
        let s = Scratch::new("secret");
        let mut cmd = s.agent();
        cmd.args(["init", "--flavor", flavor, "--hostname", "mysql-1"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flavor}: {err}");
        assert!(
            err.contains("missing secret") && err.contains(named),
            "{flavor}: {err}"
        );
        assert!(s.untouched());
    }
    // A secret file that cannot be read is named too.
    let s = Scratch::new("secretfile");
    let out = s
        .agent()
        .args([
            "sidecar",
            "--hostname",
            "mysql-0",
            "--root-password-file",
            "/nonexistent/root",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--root-password-file /nonexistent/root"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_flag_values_exit_2() {
    for args in [
        &["init", "--donor-timeout", "soon"][..],
        &["init", "--flavor", "postgres"],
        &["init", "--mysql-port", "70000"],
        &["sidecar", "--max-lag-seconds=-1"],
        &["probe", "maybe"],
    ] {
        let s = Scratch::new("flags");
        let out = s
            .agent()
            .args(args)
            .arg("--hostname=mysql-1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("invalid value"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(s.untouched());
    }
    let s = Scratch::new("noservice");
    let out = s
        .agent()
        .args(["identity", "--hostname", "mysql-1"])
        .env_remove("MYSQL_STS_PEER_DOMAIN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--service"), "{}", stderr(&out));
}

#[test]
fn init_on_a_missing_datadir_fails_without_writing() {
    let s = Scratch::new("nodatadir");
    std::fs::remove_dir(s.datadir()).unwrap();
    let out = s
        .agent()
        .args(["init", "--flavor", "mariadb", "--hostname", "mysql-0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(empty(&s.conf_dir()));
}

#[test]
fn init_on_an_empty_master_writes_the_config_only() {
    let s = Scratch::new("master");
    let out = s
        .agent()
        .args(["init", "--flavor", "mysql", "--hostname", "mysql-0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cnf = std::fs::read_to_string(s.conf_dir().join("mysql-sts.cnf")).unwrap();
    assert!(cnf.contains("server_id=100\n"), "{cnf}");
    assert!(
        cnf.contains("report_host=mysql-0.mysql-h.db.svc.cluster.local\n"),
        "{cnf}"
    );
    assert!(empty(&s.datadir()));
}

#[test]
fn probe_without_a_sidecar_exits_1() {
    let s = Scratch::new("probe");
    let out = s
        .agent()
        .args(["probe", "ready", "--agent-port", "1", "--timeout", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("does not answer"));
}

#[test]
fn install_copies_a_working_binary() {
    let s = Scratch::new("install");
    let target = s.dir.join("shared/bin");
    let out = s.agent().arg("install").arg(&target).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let copy = target.join("mysql-sts");
    let out = Command::new(&copy).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("mysql-sts "));
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Two thousand clients that connect and never finish their request headers
/// neither starve the probes nor grow the sidecar: `/readyz` answers within
/// a second meanwhile, each of them is dropped after the header timeout, and
/// a request with oversized headers is refused.
#[tokio::test(flavor = "multi_thread")]
async fn idle_and_slow_clients_leave_the_probes_answered() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    // This test holds more sockets than the default soft limit allows.
    let mut l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    l.current = l.maximum;
    rustix::process::setrlimit(rustix::process::Resource::Nofile, l).unwrap();
    let s = Scratch::new("flood");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sidecar = s
        .agent()
        .args([
            "sidecar",
            "--hostname",
            "mysql-1",
            "--listen-address",
            "127.0.0.1",
        ])
        .env("MYSQL_STS_AGENT_PORT", port.to_string())
        .env("MYSQL_STS_MYSQL_PORT", "1")
        .env("MYSQL_ROOT_PASSWORD", "root-pw")
        .env("MYSQL_STS_REPLICATION_PASSWORD", "repl-pw")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .tls_certs_only([])
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    while http.get(format!("{base}/livez")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the sidecar never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_before = rss_kib(sidecar.id());

    let opened = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..2000 {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"GET /readyz HTTP/1.1\r\nHost: mysql-1\r\n")
            .unwrap();
        idle.push(c);
    }
    let probe = Instant::now();
    let resp = http.get(format!("{base}/readyz")).send().await.unwrap();
    let answered = probe.elapsed();
    assert_eq!(
        resp.status().as_u16(),
        503,
        "no database behind it: not ready"
    );
    assert!(
        answered < Duration::from_secs(1),
        "/readyz took {answered:?} beside 2000 idle clients"
    );
    let rss_with = rss_kib(sidecar.id());
    assert!(
        rss_with < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_with} KiB"
    );

    // The header timeout (5 s) closes every one of them.
    let mut closed = 0;
    for c in &mut idle {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 512];
        // Whatever the server says first, then the end of the connection;
        // a read that times out means it was still open.
        loop {
            match c.read(&mut buf) {
                Ok(0) => break closed += 1,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break closed += 1,
                Err(_) => break,
            }
        }
    }
    // Each one ended by the server (a read that waited 10 s would not count):
    // the header timeout, not a bound on how fast 2000 closes go on a
    // loaded machine (alone about 10 s from the first open; 16 s once, beside
    // the other tests).
    let dropped_after = opened.elapsed();
    assert_eq!(closed, 2000, "{closed} closed after {dropped_after:?}");
    assert!(dropped_after < Duration::from_secs(60), "{dropped_after:?}");

    // Oversized request headers are refused.
    let big = "x".repeat(32 << 10);
    let code = http
        .get(format!("{base}/readyz"))
        .header("x-filler", big)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert!(
        code != 503 && code != 200,
        "32 KiB of headers were read: {code}"
    );
    eprintln!(
        "2000 idle clients: /readyz answered in {:.1} ms; RSS {:.1} MiB before, {:.1} MiB with them; all dropped {:.1} s after they connected",
        answered.as_secs_f64() * 1e3,
        rss_before as f64 / 1024.0,
        rss_with as f64 / 1024.0,
        dropped_after.as_secs_f64()
    );
    let _ = sidecar.kill();
    let _ = sidecar.wait();
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(
            ok,
            "mount a tmpfs at {}: the suite runs as root",
            at.display()
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A re-clone moves the old data aside on the same volume, so the clone must
/// fit beside it: when it cannot, init refuses before moving anything.
#[test]
fn a_reclone_without_room_leaves_the_data_in_place() {
    let s = Scratch::new("room");
    let _volume = Tmpfs::mount(&s.datadir(), "32m");
    std::fs::write(s.datadir().join("ibdata1"), vec![1u8; 20 << 20]).unwrap();
    let out = s
        .agent()
        .args([
            "init",
            "--flavor",
            "mariadb",
            "--hostname",
            "mysql-1",
            "--reclone",
        ])
        .env("MYSQL_STS_CLONE_TOKEN", "a-token")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("a re-clone needs about"), "{err}");
    let names: Vec<String> = std::fs::read_dir(s.datadir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["ibdata1"], "the data was moved: {names:?}");
}

/// A datadir in the volume: a fresh ext4 volume's `lost+found` stays at the
/// root, outside the datadir (the official mysql image refuses to initialise
/// a datadir holding it); data an earlier layout kept at the root is moved in.
#[test]
fn a_datadir_in_the_volume_leaves_lost_found_outside() {
    let s = Scratch::new("volume");
    let root = s.datadir();
    let datadir = root.join("mysql-data");
    std::fs::create_dir(root.join("lost+found")).unwrap();
    let init = |s: &Scratch| {
        s.agent()
            .args([
                "init",
                "--flavor",
                "mysql",
                "--hostname",
                "mysql-0",
                "--fresh-master",
            ])
            .env("MYSQL_STS_VOLUME_ROOT", &root)
            .env("MYSQL_STS_DATADIR", &datadir)
            .output()
            .unwrap()
    };
    let out = init(&s);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(empty(&datadir), "a new volume's datadir is empty");
    let cnf = std::fs::read_to_string(s.conf_dir().join("mysql-sts.cnf")).unwrap();
    assert!(
        cnf.contains(&format!("datadir={}\n", datadir.display())),
        "{cnf}"
    );

    // An earlier layout: the data at the root. It is moved in and kept.
    std::fs::remove_dir(&datadir).unwrap();
    std::fs::create_dir(root.join("mysql")).unwrap();
    std::fs::write(root.join("ibdata1"), b"pages").unwrap();
    let out = init(&s);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("moved the data kept at the volume's root"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("datadir holds data; keeping it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(datadir.join("ibdata1")).unwrap(), b"pages");
    assert!(datadir.join("mysql").is_dir() && root.join("lost+found").is_dir());
    assert!(!root.join("ibdata1").exists());
}

/// The short time slice the agent asks for is the agent's own: the server
/// that init runs in its place (`init -- <server>`) starts on the kernel's
/// default. Kernels before 6.12 have no slice to check.
#[test]
fn the_server_init_runs_gets_the_default_time_slice() {
    let slice = |sched: &str| -> Option<u64> {
        let line = sched.lines().find(|l| l.starts_with("se.slice"))?;
        line.split(':').nth(1)?.trim().parse().ok()
    };
    let base: u64 = std::fs::read_to_string("/sys/kernel/debug/sched/base_slice_ns")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let own = slice(&std::fs::read_to_string("/proc/self/sched").unwrap());
    let s = Scratch::new("slice");
    let out = s
        .agent()
        .args(["init", "--flavor", "mariadb", "--hostname", "mysql-0"])
        .args(["--fresh-master", "--", "cat", "/proc/self/sched"])
        .envs(SECRETS)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let server = slice(&String::from_utf8_lossy(&out.stdout));
    let Some(server) = server else {
        eprintln!("this kernel reports no slice; nothing to check");
        return;
    };
    assert_ne!(
        server,
        mysql_sts::sched::SLICE_NS,
        "the server inherited the agent's short slice"
    );
    if base > 0 {
        assert_eq!(server, base, "not the kernel's default slice");
    } else if let Some(own) = own {
        assert_eq!(server, own, "not the slice the test runs on");
    }
}

/// Semi-synchronous settings no cluster can acknowledge a commit under are
/// refused by init and the sidecar alike (exit 2, nothing written): one pod,
/// or fewer replicas than MySQL's `--semi-sync-wait-for`.
#[test]
fn semi_sync_that_can_never_acknowledge_is_refused() {
    for (cmd, flavor, extra, says) in [
        (
            "init",
            "mariadb",
            &["--replicas", "1"][..],
            "--replicas 1 leaves 0 replica(s)",
        ),
        (
            "init",
            "mysql",
            &["--replicas", "1"],
            "--replicas 1 leaves 0 replica(s)",
        ),
        (
            "init",
            "mysql",
            &["--replicas", "2", "--semi-sync-wait-for", "2"],
            "every commit waits for 2",
        ),
        (
            "sidecar",
            "mariadb",
            &["--replicas", "1"],
            "--replicas 1 leaves 0 replica(s)",
        ),
    ] {
        let s = Scratch::new("semisync");
        let out = s
            .agent()
            .args([
                cmd,
                "--flavor",
                flavor,
                "--hostname",
                "mysql-0",
                "--semi-sync",
            ])
            .args(extra)
            .envs(SECRETS)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{cmd} {flavor} {extra:?}: {err}"
        );
        assert!(err.contains(says), "{cmd} {flavor} {extra:?}: {err}");
        assert!(
            s.untouched(),
            "{cmd} {flavor} {extra:?}: something was written"
        );
    }
}
