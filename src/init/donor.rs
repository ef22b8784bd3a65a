//! Finding a clone donor: resolve the peers through DNS (the headless Service),
//! nearest ordinal first, and take the first whose sidecar says it is ready.

use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use tracing::{info, warn};

use crate::engine::Flavor;
use crate::engine::clone::Donor;
use crate::error::{Error, Result};
use crate::init::plan::{self, Aside, Held, PeerAnswer, PeerSays, Reseed};
use crate::net::agent_client::AgentClient;
use crate::net::dns::{Peer, peers, resolve};
use crate::status::{Phase, Status};

/// How long an empty master waits before it asks its peers again, to see
/// their answers hold still before it acts on them.
const ANSWERS_SETTLE: Duration = Duration::from_secs(3);

/// Each DNS or HTTP check gives up after this long.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// A peer status whose control loop last finished a round longer ago than
/// this is not taken as current.
const STALE_STATUS: Duration = Duration::from_secs(10);

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

/// What a peer says of its data: its sidecar's `/status`, or the status its
/// init serves while it waits for a donor (an empty datadir).
async fn peer_says(http: &AgentClient, peer: &Peer, flavor: Flavor) -> PeerSays {
    if peer.ip.is_none() {
        return PeerSays::Unknown;
    }
    match Status::fetch(http, &peer.name, CHECK_TIMEOUT).await {
        Ok(st) => held(st, flavor),
        Err(_) => PeerSays::Unknown,
    }
}

/// A peer's status, as what its server holds. A sidecar whose last round is
/// old (its loop held up) says nothing current: unknown. So does one whose
/// last round did not reach its server (stopped, or its data set aside for
/// a re-clone): what it published before is at most a lower bound of what
/// that server holds, and the server cannot donate.
fn held(st: Status, flavor: Flavor) -> PeerSays {
    let live = matches!(
        st.phase,
        Phase::Replicating | Phase::Master | Phase::WaitingForDonor
    );
    let stale = !live
        || st.phase != Phase::WaitingForDonor
            && st
                .round_age_s
                .is_some_and(|age| age > STALE_STATUS.as_secs_f64());
    if st.phase == Phase::WaitingForDonor && !st.aside_copies.is_empty() {
        return PeerSays::SetAside(set_aside(&st, flavor));
    }
    let Some(executed) = st.gtid_executed.filter(|_| !stale) else {
        return PeerSays::Unknown;
    };
    let retrieved = st
        .replication
        .as_ref()
        .map_or("", |r| r.retrieved_gtid.as_str());
    let received = flavor.gtid_union(&executed, retrieved);
    if received.trim().is_empty() {
        return PeerSays::Empty;
    }
    let settled = st.replication.as_ref().is_none_or(|r| {
        r.applied_all_received() || flavor.gtid_contains(&executed, &r.retrieved_gtid)
    });
    // A replica's own writes are not the cluster's: set aside, they neither
    // make it a source nor must a source hold them. Its sidecar found them
    // by comparing with the master; where it could not (the master was
    // already gone when root wrote), they may still show in the set itself.
    let errant = st
        .gtid_errant
        .as_ref()
        .map(|e| e.as_str().to_owned())
        .or_else(|| match st.identity.role {
            crate::pod::Role::Replica => flavor.own_writes(&executed, st.identity.server_id),
            crate::pod::Role::Master => None,
        });
    let without = |set: &str| without_errant(flavor, set, errant.as_deref());
    PeerSays::Holds(Held {
        executed: without(&executed),
        received: without(&received),
        settled,
        diverged: errant.is_some(),
    })
}

/// The copies a peer waiting for a donor set aside, and what each had
/// executed without its own writes, where every one recorded it.
fn set_aside(st: &Status, flavor: Flavor) -> Aside {
    let copies = &st.aside_copies;
    Aside {
        copies: copies.iter().map(|c| c.dir.clone()).collect(),
        executed: copies
            .iter()
            .map(|c| {
                let r = c.record.as_ref()?;
                Some(without_errant(flavor, &r.executed, r.errant.as_deref()))
            })
            .collect(),
    }
}

/// `set` without a replica's own writes, `errant`, if it has any.
fn without_errant(flavor: Flavor, set: &str, errant: Option<&str>) -> String {
    errant.map_or(set.to_owned(), |e| flavor.gtid_subtract(set, e))
}

/// What an empty master says when `copies` (peer: copy) hold data that it
/// cannot prove another peer holds.
pub fn set_aside_refusal(copies: &[String]) -> String {
    format!(
        "its datadir is empty and {} set aside for a re-clone, which no peer with a running \
         server is known to hold: starting empty, or re-seeding from a peer without it, would \
         lose it. To keep a copy, move its contents back into that pod's datadir (then empty \
         but for hidden files) and restart that pod, then this one; to lose it, delete it",
        copies.join(", ")
    )
}

/// For a master whose datadir is empty: the peer whose data holds every
/// other peer's, so that an empty master never takes over from replicas
/// that hold data. `Ok(None)` only with proof that no peer holds data: none
/// exists, or every one said it is empty. A peer not heard from is waited
/// for, up to `timeout`, and then init fails (exit 3) rather than guess;
/// peers whose data diverged fail it at once.
pub async fn reseed_source(
    names: impl Fn(u32) -> String,
    expected: u32,
    resolver: &TokioResolver,
    http: &AgentClient,
    flavor: Flavor,
    timeout: Duration,
    report: &dyn Fn(String),
) -> Result<Option<Donor>> {
    let started = Instant::now();
    let mut delays = backoff();
    // A peer's answer lags its server by up to one round of its sidecar: a
    // decision stands only when a second round, a while later, agrees.
    let mut last: Option<Vec<PeerAnswer>> = None;
    loop {
        let peers = peers(resolver, &names, expected).await;
        if peers.is_empty() {
            info!("no other pod exists: this is a new cluster");
            return Ok(None);
        }
        let mut answers = Vec::new();
        for p in &peers {
            answers.push(PeerAnswer {
                name: p.name.clone(),
                says: peer_says(http, p, flavor).await,
            });
        }
        let decision = plan::reseed(&answers, |a, b| flavor.gtid_contains(a, b));
        let waiting = matches!(decision, Reseed::Wait(_) | Reseed::Applying(_));
        if !waiting && last.as_ref() != Some(&answers) {
            last = Some(answers);
            tokio::time::sleep(ANSWERS_SETTLE).await;
            continue;
        }
        let gave_up = |detail: String| Error::NoDonor {
            waited: Duration::from_secs(started.elapsed().as_secs()),
            detail,
        };
        // What it waits for, and what it says when the wait runs out.
        let (doing, timed_out) = match decision {
            Reseed::Wait(silent) => {
                warn!(waiting_for = ?silent, waited_s = started.elapsed().as_secs(), "the master's datadir is empty; waiting for every peer to say what it holds");
                (
                    format!(
                        "the master's datadir is empty: waiting for {} to say what they hold \
                         (for {} s of --reseed-timeout {} s)",
                        silent.join(", "),
                        started.elapsed().as_secs(),
                        timeout.as_secs()
                    ),
                    format!(
                        "the master's datadir is empty and {} did not say what they hold; \
                         an empty master must not take over from peers that may hold data. \
                         Start them (their sidecars answer once their servers are up; under \
                         podManagementPolicy OrderedReady they are not created before this pod \
                         is ready: use Parallel), or, to start empty and lose what they hold, \
                         set --fresh-master",
                        silent.join(", ")
                    ),
                )
            }
            Reseed::Applying(i) => {
                let (name, held) = match &answers[i].says {
                    PeerSays::Holds(h) => (&answers[i].name, h),
                    _ => unreachable!("an applying peer holds data"),
                };
                info!(peer = %name, received = %held.received, executed = %held.executed, "waiting for the peer that received the most to apply it all before re-seeding from it");
                (
                    format!(
                        "re-seeding: waiting for {name} to apply what it received ({}; executed {})",
                        held.received, held.executed
                    ),
                    format!(
                        "the master's datadir is empty and {name}, the peer that received the \
                         most ({}), has not applied it all (executed {}): a copy of it now \
                         would lose acknowledged transactions. See why its applier stopped \
                         (its /status, `replication`), fix that, and this pod's next start \
                         re-seeds from it",
                        held.received, held.executed
                    ),
                )
            }
            Reseed::StartEmpty => {
                info!(peers = ?answers.iter().map(|a| &a.name).collect::<Vec<_>>(), "every peer says it is empty: a new cluster");
                return Ok(None);
            }
            Reseed::From(i) => {
                let ip = peers[i].ip.expect("a peer that answered resolved");
                let gtid = match &answers[i].says {
                    PeerSays::Holds(h) => h.executed.as_str(),
                    _ => "",
                };
                info!(donor = %answers[i].name, gtid = %gtid, "re-seeding the master from the peer that holds every other's transactions");
                return Ok(Some(Donor {
                    name: answers[i].name.clone(),
                    ip,
                }));
            }
            Reseed::SetAside(held) => {
                let mut copies = Vec::new();
                for a in held.iter().map(|&i| &answers[i]) {
                    if let PeerSays::SetAside(aside) = &a.says {
                        copies.extend(aside.copies.iter().map(|c| format!("{} holds {c}", a.name)));
                    }
                }
                return Err(Error::SetAside {
                    detail: set_aside_refusal(&copies),
                });
            }
            Reseed::Disagree(names) => {
                let said: Vec<String> = answers
                    .iter()
                    .filter_map(|a| match &a.says {
                        PeerSays::Holds(h) => Some(format!("{}: {}", a.name, h.received)),
                        _ => None,
                    })
                    .collect();
                return Err(gave_up(format!(
                    "the master's datadir is empty and no peer holds every other's transactions \
                     ({}): {} diverged, and a re-seed from any of them would lose another's. \
                     Re-clone the replicas that are behind or hold errant transactions, then \
                     restart this pod",
                    said.join("; "),
                    names.join(", ")
                )));
            }
        };
        last = None;
        if started.elapsed() >= timeout {
            return Err(gave_up(timed_out));
        }
        report(doing);
        tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica's sidecar, as it answers after a round in `phase`, having
    /// executed `executed` when it last reached its server.
    fn sidecar(phase: Phase, executed: &str) -> Status {
        let id = crate::pod::Identity::new("mysql-1", "mysql-h", 100).unwrap();
        let mut st = Status::starting(id, Some(Flavor::Mariadb));
        st.phase = phase;
        st.gtid_executed = Some(executed.into());
        st.round_age_s = Some(1.0);
        st
    }

    #[test]
    fn a_sidecar_whose_server_is_away_says_nothing_of_its_data() {
        assert!(matches!(
            held(sidecar(Phase::Replicating, "0-100-9"), Flavor::Mariadb),
            PeerSays::Holds(h) if h.executed == "0-100-9"
        ));
        // Its last round found no server: what it published is old.
        for phase in [Phase::WaitingForServer, Phase::Starting] {
            assert_eq!(
                held(sidecar(phase, "0-100-9"), Flavor::Mariadb),
                PeerSays::Unknown,
                "{phase:?}"
            );
        }
        // A round long ago says nothing current either.
        let mut old = sidecar(Phase::Replicating, "0-100-9");
        old.round_age_s = Some(60.0);
        assert_eq!(held(old, Flavor::Mariadb), PeerSays::Unknown);
        // A write made on the replica by hand, which no master compared: its
        // own server_id names it; the rest of its data is still counted.
        match held(sidecar(Phase::Replicating, "0-101-50"), Flavor::Mariadb) {
            PeerSays::Holds(h) => {
                assert!(h.diverged, "{h:?}");
                assert_eq!(h.executed, "0-101-49");
            }
            other => panic!("{other:?}"),
        }
        // An init waiting for a donor holds nothing.
        assert_eq!(
            held(sidecar(Phase::WaitingForDonor, ""), Flavor::Mariadb),
            PeerSays::Empty
        );
    }

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
