//! `mysql-sts backup` (ask a sidecar to take one) and `mysql-sts backups`
//! (list the bucket).

use std::fmt::Write as _;

use crate::backup::store::ArchivedLog;
use crate::backup::{Listed, Manifest};
use crate::config::{BackupArgs, BackupsArgs, CommonArgs, Output, StatusArgs};
use crate::error::{Error, Result, exit};

/// Asks the chosen pod's sidecar for a backup and prints its manifest.
pub async fn backup(c: &CommonArgs, args: &BackupArgs) -> Result<i32> {
    let cfg = crate::config::status(
        c,
        &StatusArgs {
            output: Output::Json,
        },
    )?;
    let token = c.clone_token()?;
    let pod = match &args.pod {
        Some(p) => p.clone(),
        None => {
            let reports =
                crate::overview::ask_all(|n| cfg.name(n), cfg.replicas, &cfg.resolver, &cfg.http)
                    .await;
            crate::backup::choose_pod(&reports).map_err(|why| Error::Backup {
                what: "no pod to back up".into(),
                why,
            })?
        }
    };
    let host = crate::pod::peer_name(&pod, &cfg.peer_domain);
    let url = cfg.http.url(&host, "/backup");
    tracing::info!(pod = %pod, "asking for a backup");
    let fail = |why: String| Error::Backup {
        what: format!("backup of {pod}"),
        why,
    };
    let resp = cfg
        .http
        .client()
        .post(&url)
        .bearer_auth(token.expose())
        .send()
        .await
        .map_err(|e| fail(format!("cannot reach {url}: {e}")))?;
    let status = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| fail(format!("{url} answered {status} and then broke off: {e}")))?;
    if !status.is_success() {
        let why = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(body);
        return Err(fail(format!("{url} answered {status}: {why}")));
    }
    let m: Manifest = serde_json::from_str(&body)
        .map_err(|e| fail(format!("{url} answered with no manifest: {e}")))?;
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&m).expect("a manifest serialises")
        ),
        Output::Table => print!("{}", table(&[listed(&m)])),
    }
    Ok(exit::OK)
}

fn listed(m: &Manifest) -> Listed {
    Listed {
        id: m.id.clone(),
        manifest: Some(m.clone()),
        complete: true,
        stored_bytes: m.stored_bytes,
        last_modified: std::time::SystemTime::now(),
    }
}

/// Lists the bucket's backups, and what its binary log archive covers.
pub async fn backups(c: &CommonArgs, args: &BackupsArgs) -> Result<i32> {
    let store = c.store()?;
    let all = store.list().await?;
    let archive = store.archive().await?;
    match args.output {
        Output::Table => print!("{}{}", table(&all), archive_lines(&archive)),
        Output::Json => {
            let rows: Vec<serde_json::Value> = all
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "id": l.id,
                        "complete": l.manifest.is_some(),
                        "stored_bytes": l.stored_bytes,
                        "manifest": l.manifest,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "backups": rows,
                    "binlogs": archive,
                }))
                .expect("rows serialise")
            );
        }
    }
    Ok(exit::OK)
}

/// A line per history of the binary log archive: how many logs, and the
/// times their transactions span.
fn archive_lines(archive: &[ArchivedLog]) -> String {
    let mut histories: std::collections::BTreeMap<&str, Vec<&ArchivedLog>> = Default::default();
    for l in archive {
        histories.entry(&l.history).or_default().push(l);
    }
    let mut out = String::new();
    for (history, logs) in histories {
        let first = logs.iter().map(|l| l.closed.as_str()).min().unwrap_or("-");
        let last = logs.iter().map(|l| l.closed.as_str()).max().unwrap_or("-");
        let bytes: u64 = logs.iter().map(|l| l.bytes).sum();
        let _ = writeln!(
            out,
            "binary logs of {history}: {} archived ({:.1} MiB), closed from {first} to {last}",
            logs.len(),
            bytes as f64 / (1 << 20) as f64
        );
    }
    out
}

/// One line per backup, oldest first.
pub fn table(all: &[Listed]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:<10} {:<8} {:>10} {:>8} {:<8} GTID",
        "BACKUP", "STATE", "ENGINE", "STORED", "SECONDS", "SOURCE"
    );
    for l in all {
        let mib = format!("{:.1} MiB", l.stored_bytes as f64 / (1 << 20) as f64);
        match &l.manifest {
            Some(m) => {
                let _ = writeln!(
                    out,
                    "{:<18} {:<10} {:<8} {:>10} {:>8.1} {:<8} {}",
                    l.id,
                    "complete",
                    m.engine.to_string(),
                    mib,
                    m.seconds,
                    m.source,
                    m.gtid
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "{:<18} {:<10} {:<8} {:>10} {:>8} {:<8} -",
                    l.id, "incomplete", "-", mib, "-", "-"
                );
            }
        }
    }
    if all.is_empty() {
        out.push_str("(no backups)\n");
    }
    out
}
