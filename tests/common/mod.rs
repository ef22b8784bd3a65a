//! A StatefulSet on one machine, for the integration tests and benchmarks:
//! pods as network namespaces running the real agent and real servers
//! ([`pods`]), the headless Service's names from a dnsmasq the test controls
//! ([`dns`]), the servers under test ([`engine`]: MariaDB 10.11 from the
//! host's packages, MariaDB 11.8 and MySQL 9.7 from Debian sid chroots, see
//! `scripts/install-test-deps`), SQL and HTTP clients, and the one load
//! writer tests and benchmarks share ([`load`]).
//!
//! Needs root. `scripts/test` installs everything and runs the suite.

// Each test binary uses a different part of this harness.
#![allow(dead_code, unused_imports)]

mod dns;
mod engine;
mod http;
pub mod link;
mod load;
mod pods;
pub mod s3;
mod sql;
pub mod tls;

pub use engine::Engine;
pub use http::*;
pub use load::Writer;
pub use pods::*;
pub use sql::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const ROOT_PASSWORD: &str = "root-Pw-4f1c9e";
pub const REPL_PASSWORD: &str = "repl-Pw-8b2d7a";
pub const CLONE_TOKEN: &str = "clone-Tok-e3a91b57";
pub const APP_PASSWORD: &str = "app-Pw-55d0";
pub const SERVICE: &str = "mysql-h";
pub const NAMESPACE: &str = "test";
pub const DOMAIN: &str = "mysql-h.test.svc.cluster.local";

/// The agent under test: this build's, or the one `MYSQL_STS_TEST_AGENT`
/// names (the benchmarks measure the static binary the image ships).
pub fn agent_binary() -> PathBuf {
    std::env::var_os("MYSQL_STS_TEST_AGENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mysql-sts")))
}

pub fn require_root() {
    let uid = unsafe_getuid();
    assert_eq!(
        uid, 0,
        "the integration tests build network namespaces and need root: run scripts/test"
    );
}

fn unsafe_getuid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh(script: &str) -> String {
    run(Command::new("sh").arg("-ec").arg(script))
}

pub fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Pins the calling thread to `cpus` (a `taskset` list).
pub fn pin_self(cpus: &str) {
    let me = fs::read_link("/proc/thread-self").unwrap();
    let tid = me.file_name().unwrap().to_string_lossy().into_owned();
    taskset(&["-cp", cpus, &tid]);
}

pub fn taskset(args: &[&str]) {
    run(Command::new("taskset").args(args));
}

/// Says what a scenario test measured, once it passed: on stderr, and, when
/// `MYSQL_STS_SCENARIO_REPORT` names a file, as a JSON line appended to it
/// (`scripts/reliability scenarios` makes docs/RELIABILITY.md's table of
/// scenarios from it).
pub fn report_scenario(scenario: &str, engine: Engine, measured: &str) {
    eprintln!("[{}] {scenario}: {measured}", engine.name());
    let Some(path) = std::env::var_os("MYSQL_STS_SCENARIO_REPORT") else {
        return;
    };
    let line = serde_json::json!({
        "scenario": scenario,
        "engine": engine.name(),
        "measured": measured,
        "test": std::thread::current().name().unwrap_or_default(),
    });
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("the scenario report");
    std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()).unwrap();
}
