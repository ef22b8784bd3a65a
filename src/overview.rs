//! `mysql-sts status`: every pod of the StatefulSet as its sidecar sees
//! itself, in one table (or JSON). The pods are asked over the agent port by
//! their DNS names; rendering is apart from the asking, and table-tested.

use std::fmt::Write as _;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use serde::Serialize;

use crate::net::agent_client::AgentClient;
use crate::net::dns::{peers, resolve};
use crate::pod::short_name;
use crate::status::Status;

/// How long one pod may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);
/// GTID sets longer than this are cut in the table (JSON has them whole).
const GTID_WIDTH: usize = 48;

/// One pod, as the command reports it.
#[derive(Debug, Clone, Serialize)]
pub struct PodReport {
    pub pod: String,
    /// Its sidecar's `/status`; `None` when it did not answer.
    pub status: Option<Status>,
    /// Why it did not answer.
    pub error: Option<String>,
}

impl PodReport {
    pub fn ready(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.ready.ready)
    }
}

/// Asks every pod: `<statefulset>-0` and its peers (`expected` pods, and any
/// further ones whose names resolve).
pub async fn ask_all(
    names: impl Fn(u32) -> String,
    expected: u32,
    resolver: &TokioResolver,
    http: &AgentClient,
) -> Vec<PodReport> {
    let mut hosts = vec![names(0)];
    hosts.extend(
        peers(resolver, &names, expected)
            .await
            .into_iter()
            .map(|p| p.name),
    );
    let mut out = Vec::with_capacity(hosts.len());
    for host in hosts {
        let pod = short_name(&host).to_owned();
        let answer = async {
            resolve(resolver, &host)
                .await
                .map_err(|e| format!("{host} {e}"))?;
            Status::fetch(http, &host, ASK_TIMEOUT).await
        }
        .await;
        out.push(match answer {
            Ok(status) => PodReport {
                pod,
                status: Some(status),
                error: None,
            },
            Err(error) => PodReport {
                pod,
                status: None,
                error: Some(error),
            },
        });
    }
    out
}

/// The table: one line per pod, then why each pod that is not ready is not.
pub fn table(reports: &[PodReport]) -> String {
    let header = [
        "POD",
        "ROLE",
        "READY",
        "CAUSE",
        "GTID EXECUTED",
        "LAG",
        "SOURCE",
        "CLONED FROM",
        "VERSION",
    ];
    let rows: Vec<[String; 9]> = reports.iter().map(row).collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&header.map(String::from));
    for r in &rows {
        line(r);
    }
    for r in reports.iter().filter(|r| !r.ready()) {
        let why = match (&r.status, &r.error) {
            (Some(s), _) => s.ready.reason.clone(),
            (None, Some(e)) => e.clone(),
            (None, None) => "no answer".into(),
        };
        let _ = writeln!(out, "{}: {why}", r.pod);
    }
    out
}

fn row(r: &PodReport) -> [String; 9] {
    let dash = || "-".to_owned();
    let Some(s) = &r.status else {
        return [
            r.pod.clone(),
            dash(),
            "no".into(),
            "unreachable".into(),
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
        ];
    };
    let repl = s.replication.as_ref();
    [
        r.pod.clone(),
        s.identity.role.to_string(),
        if s.ready.ready { "yes" } else { "no" }.into(),
        serde_json::to_value(s.ready.cause)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        s.gtid_executed.as_deref().map_or_else(dash, cut),
        repl.and_then(|r| r.lag_seconds)
            .map_or_else(dash, |l| format!("{l}s")),
        repl.map(|r| short_name(&r.source_host).to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(dash),
        s.cloned_from
            .as_ref()
            .map_or_else(dash, |c| short_name(&c.donor).to_owned()),
        s.version.clone(),
    ]
}

fn cut(gtid: &str) -> String {
    let one_line: String = gtid.split_whitespace().collect();
    if one_line.chars().count() <= GTID_WIDTH {
        one_line
    } else {
        let head: String = one_line.chars().take(GTID_WIDTH - 1).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::replication::{IoState, ReplicaStatus};
    use crate::pod::Identity;
    use crate::sidecar::readiness::{Cause, Readiness};
    use crate::status::Phase;

    fn status(pod: &str, ready: Readiness) -> Status {
        Status {
            phase: Phase::Replicating,
            ready,
            read_only: Some(true),
            gtid_executed: Some("0-100-42".into()),
            round_age_s: Some(0.5),
            ..Status::starting(
                Identity::new(pod, "db-h.ns.svc.cluster.local", 100).unwrap(),
                None,
            )
        }
    }

    #[test]
    fn a_table_of_every_pod_and_why_the_broken_ones_are_not_ready() {
        let master = status(
            "db-0",
            Readiness::yes(Cause::MasterWritable, "the master accepts writes"),
        );
        let mut replica = status(
            "db-1",
            Readiness::yes(Cause::Replicating, "replicating, 0 s behind"),
        );
        replica.replication = Some(ReplicaStatus {
            io: Some(IoState::Yes),
            sql_running: true,
            lag_seconds: Some(0),
            source_host: "db-0.db-h.ns.svc.cluster.local".into(),
            ..ReplicaStatus::default()
        });
        replica.gtid_executed = Some(format!(
            "{}:1-99",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562,".repeat(3)
        ));
        let errant = status(
            "db-2",
            Readiness::no(
                Cause::ErrantTransactions,
                "errant transactions the master does not have: 0-102-1",
            ),
        );
        let reports = vec![
            PodReport {
                pod: "db-0".into(),
                status: Some(master),
                error: None,
            },
            PodReport {
                pod: "db-1".into(),
                status: Some(replica),
                error: None,
            },
            PodReport {
                pod: "db-2".into(),
                status: Some(errant),
                error: None,
            },
            PodReport {
                pod: "db-3".into(),
                status: None,
                error: Some("no answer from http://db-3.db-h:8080/status".into()),
            },
        ];
        let t = table(&reports);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("POD   ROLE     READY  CAUSE"), "{t}");
        assert!(
            lines[1].starts_with("db-0  master   yes    master_writable"),
            "{t}"
        );
        assert!(lines[2].contains("db-0") && lines[2].contains("0s"), "{t}");
        assert!(lines[2].contains('…') && !lines[2].contains(":1-99"), "{t}");
        assert!(lines[3].contains("errant_transactions"), "{t}");
        assert!(
            lines[4].starts_with("db-3  -        no     unreachable"),
            "{t}"
        );
        assert_eq!(
            lines[5],
            "db-2: errant transactions the master does not have: 0-102-1"
        );
        assert_eq!(
            lines[6],
            "db-3: no answer from http://db-3.db-h:8080/status"
        );
        assert_eq!(lines.len(), 7);
        assert!(!reports[2].ready() && !reports[3].ready() && reports[0].ready());
    }
}
