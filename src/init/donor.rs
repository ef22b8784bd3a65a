//! Finding a clone donor: resolve the peers through DNS (the headless Service),
//! nearest ordinal first, and take the first whose sidecar says it is ready.

use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use tracing::{info, warn};

use crate::engine::Flavor;
use crate::engine::clone::Donor;
use crate::error::{Error, Result};
use crate::init::plan::{self, PeerAnswer, Reseed};
use crate::net::agent_client::AgentClient;
use crate::net::dns::resolve;
use crate::status::Status;

/// Each DNS or HTTP check gives up after this long.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

async fn check(
    resolver: &TokioResolver,
    http: &AgentClient,
    name: &str,
) -> std::result::Result<Donor, String> {
    let ip = resolve(resolver, name).await.map_err(|e| e.to_string())?;
    let resp = http
        .get(name, "/readyz", CHECK_TIMEOUT)
        .await
        .map_err(|e| {
            format!(
                "sidecar at {} does not answer ({e})",
                http.url(name, "/readyz")
            )
        })?;
    if resp.status().is_success() {
        Ok(Donor {
            name: name.to_owned(),
            ip,
        })
    } else {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Err(format!("not ready ({status}: {})", body.trim()))
    }
}

/// Which donors may be used `waited` into the wait: the nearest (N-1) alone
/// at first, every one of them, nearest first, after `fallback_after`.
pub fn candidates(donors: &[String], waited: Duration, fallback_after: Duration) -> &[String] {
    if waited < fallback_after {
        &donors[..donors.len().min(1)]
    } else {
        donors
    }
}

/// Waits until one of `donors` (in order of preference) is ready, for at most
/// `timeout`; lower ordinals are tried once the nearest has not been ready for
/// `fallback_after`.
pub async fn wait_for_donor(
    donors: &[String],
    resolver: &TokioResolver,
    http: &AgentClient,
    timeout: Duration,
    fallback_after: Duration,
) -> Result<Donor> {
    let started = Instant::now();
    let mut delays = backoff();
    let mut last: Vec<String> = Vec::new();
    loop {
        last.clear();
        for name in candidates(donors, started.elapsed(), fallback_after) {
            match check(resolver, http, name).await {
                Ok(d) => {
                    info!(donor = %d.name, ip = %d.ip, skipped = ?last, "donor is ready");
                    return Ok(d);
                }
                Err(why) => last.push(format!("{name}: {why}")),
            }
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        if started.elapsed() + delay >= timeout {
            return Err(Error::NoDonor {
                waited: Duration::from_secs(started.elapsed().as_secs()),
                detail: format!(
                    "{}; is the headless Service named by --service (or --peer-domain) right, and are the donors' sidecars up?",
                    last.join("; ")
                ),
            });
        }
        warn!(waited_s = started.elapsed().as_secs(), donors = ?last, "no donor ready yet");
        tokio::time::sleep(delay).await;
    }
}

fn backoff() -> impl Iterator<Item = Duration> {
    backon::BackoffBuilder::build(
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .without_max_times(),
    )
}

/// The peer an empty master re-seeds from, and what it holds.
#[derive(Debug, Clone)]
pub struct PeerData {
    pub donor: Donor,
    pub gtid: String,
}

/// The peers `<statefulset>-1`, `-2`, ... that exist: the pods of a
/// StatefulSet are numbered without gaps, so the scan stops at the first name
/// that does not resolve.
async fn existing_peers(resolver: &TokioResolver, names: impl Fn(u32) -> String) -> Vec<Donor> {
    let mut found = Vec::new();
    for n in 1..=1000 {
        let name = names(n);
        match resolve(resolver, &name).await {
            Ok(ip) => found.push(Donor { name, ip }),
            Err(_) => break,
        }
    }
    found
}

/// What a peer's sidecar says of itself; `None` when it does not answer.
async fn peer_status(http: &AgentClient, name: &str) -> Option<Status> {
    let resp = http.get(name, "/status", CHECK_TIMEOUT).await.ok()?;
    resp.json::<Status>().await.ok()
}

/// For a master whose datadir is empty: the peer holding the most data, so
/// that an empty master never takes over from replicas that hold data.
/// `Ok(None)` when no peer exists (a new cluster) or, after `timeout`, when
/// none of them answered with data.
pub async fn reseed_source(
    names: impl Fn(u32) -> String,
    resolver: &TokioResolver,
    http: &AgentClient,
    flavor: Flavor,
    timeout: Duration,
) -> Result<Option<PeerData>> {
    let peers = existing_peers(resolver, &names).await;
    if peers.is_empty() {
        info!("no other pod exists: this is a new cluster");
        return Ok(None);
    }
    let started = Instant::now();
    let mut delays = backoff();
    loop {
        let mut answered = Vec::new();
        let mut from = Vec::new();
        let mut silent = Vec::new();
        for p in &peers {
            match peer_status(http, &p.name).await {
                Some(st) => {
                    answered.push(PeerAnswer {
                        name: p.name.clone(),
                        gtid: st.gtid_executed.filter(|g| !g.is_empty()),
                    });
                    from.push(p);
                }
                None => silent.push(p.name.clone()),
            }
        }
        let timed_out = started.elapsed() >= timeout;
        match plan::reseed(&answered, silent.len(), timed_out, |g| {
            flavor.gtid_weight(g)
        }) {
            Reseed::Wait => {
                warn!(waiting_for = ?silent, waited_s = started.elapsed().as_secs(), "the master's datadir is empty; waiting for every peer to tell what it holds");
                tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
            }
            Reseed::StartEmpty => {
                warn!(peers = ?peers.iter().map(|p| &p.name).collect::<Vec<_>>(), waited_s = started.elapsed().as_secs(), "peers exist but none has data to give: starting an EMPTY master");
                return Ok(None);
            }
            Reseed::From(i) => {
                let gtid = answered[i].gtid.clone().unwrap_or_default();
                info!(donor = %answered[i].name, gtid = %gtid, unanswered = ?silent, "re-seeding the master from the most advanced peer");
                return Ok(Some(PeerData {
                    donor: from[i].clone(),
                    gtid,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_donor_first_then_all() {
        let donors: Vec<String> = ["mysql-2", "mysql-1", "mysql-0"].map(String::from).into();
        let fallback = Duration::from_secs(60);
        assert_eq!(candidates(&donors, Duration::ZERO, fallback), ["mysql-2"]);
        assert_eq!(
            candidates(&donors, Duration::from_secs(59), fallback),
            ["mysql-2"]
        );
        assert_eq!(candidates(&donors, fallback, fallback), donors.as_slice());
        assert_eq!(candidates(&[], Duration::ZERO, fallback), [] as [String; 0]);
        let only_master: Vec<String> = vec!["mysql-0".into()];
        assert_eq!(
            candidates(&only_master, Duration::ZERO, fallback),
            ["mysql-0"]
        );
    }
}
