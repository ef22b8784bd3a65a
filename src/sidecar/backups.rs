//! Backups from the sidecar: the one a `POST /backup` asks for, and the
//! schedule (`--backup-schedule`), which every sidecar keeps and the one
//! pod [`choose_pod`](crate::backup::choose_pod) names runs; then
//! retention. Metrics say when the last one succeeded and how old the
//! newest complete backup in the bucket is.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hickory_resolver::TokioResolver;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backup::{Manifest, Store};
use crate::engine::Flavor;
use crate::error::Result;
use crate::net::agent_client::AgentClient;
use crate::net::wire::Compression;
use crate::sidecar::shared::{Shared, stream_job};

/// A copy that brings nothing for this long is given up.
const STALL: Duration = Duration::from_secs(120);
/// How often the bucket is listed for the newest backup's age.
const LIST_EVERY: Duration = Duration::from_secs(300);
/// How long a scheduled backup waits for the clone slot (a clone stream
/// being served).
const SLOT_WAIT: Duration = Duration::from_secs(3600);

/// What the sidecar's backups need.
pub struct BackupSettings {
    pub store: Store,
    /// `--backup-schedule`, in UTC; `None`: only on demand.
    pub schedule: Option<croner::Cron>,
    /// Retention: complete backups kept by count and age.
    pub keep: u32,
    pub max_age: Option<Duration>,
    /// For choosing the pod a scheduled backup runs on.
    pub replicas: u32,
    pub peer_domain: String,
    pub http: AgentClient,
    pub resolver: TokioResolver,
}

/// Takes a backup of this pod's server into `store`, holding the clone
/// slot `permit`; counts it in the metrics.
pub async fn take(
    shared: &Arc<Shared>,
    store: &Store,
    flavor: Flavor,
    permit: OwnedSemaphorePermit,
) -> Result<Manifest> {
    let job = stream_job(
        shared,
        permit,
        format!("backup to {}", store.url),
        Compression::Zstd,
    );
    let src = crate::backup::Source {
        flavor,
        local: shared.local(),
        pod: shared.identity.hostname.clone(),
        stall: STALL,
    };
    let m = &shared.metrics;
    match crate::backup::take(store, &src, job).await {
        Ok(manifest) => {
            m.backups_total.inc();
            m.backup_last_success.set(unix(SystemTime::now()));
            m.backup_last_seconds.set(manifest.seconds);
            m.backup_last_bytes.set(manifest.bytes as i64);
            m.backup_last_stored_bytes.set(manifest.stored_bytes as i64);
            if let Some(t) = manifest.started_at() {
                m.backup_newest.set(unix(t));
            }
            Ok(manifest)
        }
        Err(e) => {
            m.backup_failures.inc();
            Err(e)
        }
    }
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The longest time between two runs of `cron` over the next few weeks,
/// for the alert on a backup older than the schedule allows.
pub fn interval(cron: &croner::Cron) -> Option<Duration> {
    let mut runs = cron.iter_after(chrono::Utc::now()).take(64);
    let mut last = runs.next()?;
    let mut longest = Duration::ZERO;
    for t in runs {
        longest = longest.max((t - last).to_std().ok()?);
        last = t;
    }
    Some(longest)
}

/// Runs the schedule until `stop`: at each time, the chosen pod backs up,
/// then prunes; meanwhile every pod keeps the newest backup's age fresh.
pub async fn run(shared: Arc<Shared>, s: BackupSettings, stop: CancellationToken) {
    let Some(cron) = &s.schedule else {
        return;
    };
    if let Some(i) = interval(cron) {
        shared.metrics.backup_interval.set(i.as_secs() as i64);
    }
    info!(schedule = %cron, store = %s.store.url, "backups on a schedule (UTC)");
    let mut listed: Option<Instant> = None;
    loop {
        let next = match cron.find_next_occurrence(&chrono::Utc::now(), false) {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "the backup schedule has no next time; no more scheduled backups");
                return;
            }
        };
        loop {
            if listed.is_none_or(|t| t.elapsed() >= LIST_EVERY) {
                refresh_newest(&shared, &s.store).await;
                listed = Some(Instant::now());
            }
            let left = (next - chrono::Utc::now()).to_std().unwrap_or_default();
            if left.is_zero() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(left.min(LIST_EVERY)) => {}
                _ = stop.cancelled() => return,
            }
        }
        if let Err(e) = scheduled(&shared, &s).await {
            warn!(error = %e, "the scheduled backup failed");
        }
    }
}

/// One scheduled run: back up if this pod is the one, then prune.
async fn scheduled(shared: &Arc<Shared>, s: &BackupSettings) -> Result<()> {
    let name = |n: u32| {
        crate::pod::peer_name(
            &format!("{}-{n}", shared.identity.statefulset),
            &s.peer_domain,
        )
    };
    let reports = crate::overview::ask_all(name, s.replicas, &s.resolver, &s.http).await;
    match crate::backup::choose_pod(&reports) {
        Ok(pod) if pod == shared.identity.hostname => {
            // Why a higher ordinal did not take it: what its sidecar said.
            let passed_over = reports
                .iter()
                .filter(|r| !r.ready())
                .map(|r| match (&r.status, &r.error) {
                    (Some(s), _) => format!("{}: not ready ({})", r.pod, s.ready.reason),
                    (None, e) => format!("{}: no answer ({})", r.pod, e.as_deref().unwrap_or("")),
                })
                .collect::<Vec<_>>()
                .join("; ");
            info!(%passed_over, "this pod takes the scheduled backup");
        }
        Ok(pod) => {
            info!(chosen = %pod, "the scheduled backup is another pod's");
            return Ok(());
        }
        Err(why) => {
            shared.metrics.backup_failures.inc();
            warn!(%why, "no pod to take the scheduled backup");
            return Ok(());
        }
    }
    let Some(flavor) = shared.flavor() else {
        shared.metrics.backup_failures.inc();
        warn!("the scheduled backup is skipped: the local server has not been reached yet");
        return Ok(());
    };
    let permit =
        match tokio::time::timeout(SLOT_WAIT, shared.clone_slot.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                shared.metrics.backup_failures.inc();
                warn!("the scheduled backup is skipped: a clone stream held the slot all along");
                return Ok(());
            }
        };
    let m = take(shared, &s.store, flavor, permit).await?;
    info!(backup = %m.id, "scheduled backup complete");
    crate::backup::prune(&s.store, s.keep, s.max_age).await?;
    Ok(())
}

/// Sets the newest complete backup's time from the bucket's listing.
async fn refresh_newest(shared: &Shared, store: &Store) {
    match store.scan().await {
        Ok(all) => {
            let newest = all
                .iter()
                .rev()
                .find(|l| l.complete)
                .and_then(|l| crate::backup::started_of(&l.id))
                .map(unix)
                .unwrap_or(0);
            shared.metrics.backup_newest.set(newest);
        }
        Err(e) => warn!(error = %e, "cannot list the bucket for the newest backup"),
    }
}
