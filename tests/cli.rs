//! The command-line contract, run on the real binary: identity output, bad
//! input with its documented exit code and message, and nothing written when
//! the input is bad.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::agent_binary;

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
                .env("MYSQL_ROOT_PASSWORD", "x")
                .env("MYSQL_STS_REPLICATION_PASSWORD", "x")
                .env("MYSQL_STS_CLONE_TOKEN", "x")
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
