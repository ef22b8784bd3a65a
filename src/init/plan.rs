//! Init's decision, apart from its I/O: what to do with the datadir given
//! what it holds and who this pod is, and, for an empty master, which peer
//! to re-seed from. Pure and table-tested.

use crate::datadir::State;
use crate::pod::Role;

/// What init does with the datadir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Move the data aside (a requested re-clone) before anything else.
    pub move_aside: bool,
    /// Wipe what an unfinished clone left before anything else.
    pub wipe_unfinished: bool,
    pub then: Then,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// The datadir holds data: keep it, never clone over it.
    KeepData,
    /// An empty master told to start empty (`--fresh-master`).
    StartEmpty,
    /// An empty master: ask the peers whether one holds data to re-seed from.
    AskPeers,
    /// An empty replica: clone from a donor.
    Clone,
}

pub fn plan(role: Role, state: State, reclone: bool, fresh_master: bool) -> Plan {
    let move_aside = state == State::Initialised && reclone;
    let state = if move_aside { State::Empty } else { state };
    let then = match (state, role) {
        (State::Initialised, _) => Then::KeepData,
        (_, Role::Replica) => Then::Clone,
        (_, Role::Master) if fresh_master => Then::StartEmpty,
        (_, Role::Master) => Then::AskPeers,
    };
    Plan {
        move_aside,
        wipe_unfinished: state == State::UnfinishedClone,
        then,
    }
}

/// What one peer of an empty master said of its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSays {
    /// Nothing yet: no answer, a name that did not resolve for a reason
    /// other than "no such name", or a sidecar whose server is not up.
    Unknown,
    /// Its datadir is empty (it waits for a donor itself) or its server
    /// has executed no transaction.
    Empty,
    /// Its datadir is empty (it waits for a donor) but for copies of its
    /// old data that a re-clone moved aside: not empty, and not a source.
    SetAside(Aside),
    /// Its server's transactions.
    Holds(Held),
}

/// The copies a peer set aside, as it described them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aside {
    /// Where they are in its datadir (`.mysql-sts-old/<unix time>`).
    pub copies: Vec<String>,
    /// What the copies had executed, without their own writes, where every
    /// copy's re-clone recorded it (one requested by hand records nothing:
    /// `None`, a copy that nobody can say is held elsewhere).
    pub executed: Option<Vec<String>>,
}

/// What a peer's server holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Its executed GTIDs.
    pub executed: String,
    /// Executed, or received from the master and not yet applied (what a
    /// semi-synchronous master counted as safe).
    pub received: String,
    /// Its applier has applied all it can of what it received (or it has no
    /// replication configured).
    pub settled: bool,
    /// Its data diverged (it holds writes of its own, which the master never
    /// had): never a re-seed source. Its sets above are without those.
    pub diverged: bool,
}

/// What one peer said, in one round of asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAnswer {
    pub name: String,
    pub says: PeerSays,
}

/// An empty master's choice after a round of asking its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reseed {
    /// Some peers have not said what they hold: ask again; never guess.
    Wait(Vec<String>),
    /// Every peer said it is empty: proof that this is a new cluster.
    StartEmpty,
    /// Clone from the peer at this index: its set holds every other's.
    From(usize),
    /// The peer at this index received the most, and has not yet applied
    /// it all: ask again once it has.
    Applying(usize),
    /// No peer holds what every other holds: the data diverged, and no
    /// choice keeps all of it. These are the peers with data.
    Disagree(Vec<String>),
    /// Peers (by index) hold copies of old data set aside for a re-clone
    /// that no peer with a running server is known to hold: starting empty,
    /// or from another peer, could lose them.
    SetAside(Vec<usize>),
}

/// Waits until every peer has said what it holds; then takes the one that
/// received every transaction any other received (`contains(a, b)`: a server
/// at `a` has every transaction of one at `b`) — under semi-synchronous
/// replication an acknowledged commit may exist only in a relay log — once
/// it has applied them, since a copy holds only what its server applied.
/// Refuses to choose when no peer holds every other's, or when a peer's
/// copy set aside for a re-clone is not known to be held by the source.
pub fn reseed(answers: &[PeerAnswer], contains: impl Fn(&str, &str) -> bool) -> Reseed {
    let decision = reseed_from_servers(answers, &contains);
    let source = match decision {
        Reseed::StartEmpty => None,
        Reseed::From(i) => match &answers[i].says {
            PeerSays::Holds(h) => Some(h.executed.as_str()),
            _ => None,
        },
        _ => return decision,
    };
    let lost: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| match &a.says {
            PeerSays::SetAside(aside) => !aside.executed.as_ref().is_some_and(|sets| {
                source.is_some_and(|src| sets.iter().all(|set| contains(src, set)))
            }),
            _ => false,
        })
        .map(|(i, _)| i)
        .collect();
    if lost.is_empty() {
        decision
    } else {
        Reseed::SetAside(lost)
    }
}

/// [`reseed`] among the peers whose servers said what they hold.
fn reseed_from_servers(answers: &[PeerAnswer], contains: impl Fn(&str, &str) -> bool) -> Reseed {
    let unknown: Vec<String> = answers
        .iter()
        .filter(|a| a.says == PeerSays::Unknown)
        .map(|a| a.name.clone())
        .collect();
    if !unknown.is_empty() {
        return Reseed::Wait(unknown);
    }
    let holding: Vec<(usize, &Held)> = answers
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match &a.says {
            PeerSays::Holds(h) => Some((i, h)),
            _ => None,
        })
        .collect();
    if holding.is_empty() {
        return Reseed::StartEmpty;
    }
    let holds_all = |field: fn(&Held) -> &str, h: &Held| {
        holding.iter().all(|(_, o)| contains(field(h), field(o)))
    };
    fn executed(h: &Held) -> &str {
        &h.executed
    }
    fn received(h: &Held) -> &str {
        &h.received
    }
    let most_received: Vec<&(usize, &Held)> = holding
        .iter()
        .filter(|(_, h)| !h.diverged && holds_all(received, h))
        .collect();
    // One that received the most and has applied every other's transactions.
    if let Some((i, _)) = most_received
        .iter()
        .find(|(_, h)| h.settled && holds_all(executed, h))
    {
        return Reseed::From(*i);
    }
    if let Some((i, _)) = most_received.iter().find(|(_, h)| !h.settled) {
        return Reseed::Applying(*i);
    }
    // Every applier is idle: a transaction only partly received (never
    // acknowledged) cannot be applied; go by what was executed.
    holding
        .iter()
        .find(|(_, h)| !h.diverged && holds_all(executed, h))
        .map_or_else(
            || {
                Reseed::Disagree(
                    holding
                        .iter()
                        .map(|(i, _)| answers[*i].name.clone())
                        .collect(),
                )
            },
            |(i, _)| Reseed::From(*i),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[rustfmt::skip]
    fn datadir_table() {
        use Role::*;
        use State::*;
        // role, state, reclone, fresh master => move aside, wipe, then
        for (role, state, reclone, fresh, move_aside, wipe, then) in [
            (Replica, Initialised,     false, false, false, false, Then::KeepData),
            (Master,  Initialised,     false, false, false, false, Then::KeepData),
            (Master,  Initialised,     false, true,  false, false, Then::KeepData),
            (Replica, Initialised,     true,  false, true,  false, Then::Clone),
            (Master,  Initialised,     true,  false, true,  false, Then::AskPeers),
            (Replica, Empty,           false, false, false, false, Then::Clone),
            (Replica, Empty,           true,  false, false, false, Then::Clone),
            (Master,  Empty,           false, false, false, false, Then::AskPeers),
            (Master,  Empty,           false, true,  false, false, Then::StartEmpty),
            (Replica, UnfinishedClone, false, false, false, true,  Then::Clone),
            (Master,  UnfinishedClone, false, false, false, true,  Then::AskPeers),
            (Master,  UnfinishedClone, false, true,  false, true,  Then::StartEmpty),
        ] {
            let want = Plan { move_aside, wipe_unfinished: wipe, then };
            let got = plan(role, state, reclone, fresh);
            assert_eq!(got, want, "{role} {state:?} reclone={reclone} fresh={fresh}");
        }
    }

    fn answer(name: &str, says: PeerSays) -> PeerAnswer {
        PeerAnswer {
            name: name.into(),
            says,
        }
    }

    fn holds(name: &str, gtid: &str) -> PeerAnswer {
        received(name, gtid, gtid, true)
    }

    fn received(name: &str, executed: &str, received: &str, settled: bool) -> PeerAnswer {
        answer(
            name,
            PeerSays::Holds(Held {
                executed: executed.into(),
                received: received.into(),
                settled,
                diverged: false,
            }),
        )
    }

    /// A diverged peer, `gtid` being its set without its own writes.
    fn diverged(name: &str, gtid: &str) -> PeerAnswer {
        let mut a = holds(name, gtid);
        if let PeerSays::Holds(h) = &mut a.says {
            h.diverged = true;
        }
        a
    }

    /// A peer waiting for a donor with a copy set aside, which had executed
    /// `executed` where its re-clone recorded it.
    fn aside(name: &str, executed: Option<&str>) -> PeerAnswer {
        answer(
            name,
            PeerSays::SetAside(Aside {
                copies: vec![".mysql-sts-old/1796000000".into()],
                executed: executed.map(|e| vec![e.into()]),
            }),
        )
    }

    #[test]
    fn reseed_table() {
        // Sets as "a,b,c": one holds another when it has every letter.
        let contains = |a: &str, b: &str| {
            b.split(',')
                .filter(|x| !x.is_empty())
                .all(|x| a.split(',').any(|y| y == x))
        };
        let unknown = |n: &str| answer(n, PeerSays::Unknown);
        let empty = |n: &str| answer(n, PeerSays::Empty);
        for (what, answers, want) in [
            ("no peers at all", vec![], Reseed::StartEmpty),
            (
                "every peer empty",
                vec![empty("m-1"), empty("m-2")],
                Reseed::StartEmpty,
            ),
            (
                "one has not answered: never a guess",
                vec![holds("m-1", "a,b"), unknown("m-2")],
                Reseed::Wait(vec!["m-2".into()]),
            ),
            (
                "an empty answer is not an unknown one",
                vec![empty("m-1"), unknown("m-2")],
                Reseed::Wait(vec!["m-2".into()]),
            ),
            (
                "the one that holds the other's set",
                vec![holds("m-1", "a"), holds("m-2", "a,b"), empty("m-3")],
                Reseed::From(1),
            ),
            (
                "equal sets: the first",
                vec![holds("m-1", "a,b"), holds("m-2", "a,b")],
                Reseed::From(0),
            ),
            (
                "an errant peer that outnumbers the advanced one does not win",
                vec![holds("m-1", "a,b,c"), holds("m-2", "a,x,y,z")],
                Reseed::Disagree(vec!["m-1".into(), "m-2".into()]),
            ),
            (
                "the most received, still applying: wait for it",
                vec![received("m-1", "a", "a,b,c", false), holds("m-2", "a,b")],
                Reseed::Applying(0),
            ),
            (
                "the most received, applied",
                vec![received("m-1", "a,b,c", "a,b,c", true), holds("m-2", "a,b")],
                Reseed::From(0),
            ),
            (
                "received more than it executed, and idle: a transaction only partly received",
                vec![received("m-1", "a", "a,b", true), holds("m-2", "a,b")],
                Reseed::From(1),
            ),
            (
                "idle with a partial transaction, yet executed what any other did: taken",
                vec![received("m-1", "a", "a,b", true), holds("m-2", "a")],
                Reseed::From(0),
            ),
            (
                "a diverged peer, without its own writes held by another: the other",
                vec![holds("m-1", "a,b"), diverged("m-2", "a")],
                Reseed::From(0),
            ),
            (
                "a diverged peer that alone holds a master's transaction: no guess",
                vec![holds("m-1", "a"), diverged("m-2", "a,b")],
                Reseed::Disagree(vec!["m-1".into(), "m-2".into()]),
            ),
            (
                "only diverged peers: no source",
                vec![diverged("m-1", "a")],
                Reseed::Disagree(vec!["m-1".into()]),
            ),
            (
                "a copy set aside is not empty: never a new cluster over it",
                vec![aside("m-1", Some("a")), empty("m-2")],
                Reseed::SetAside(vec![0]),
            ),
            (
                "a copy set aside by hand says nothing of what it holds",
                vec![holds("m-1", "a,b"), aside("m-2", None)],
                Reseed::SetAside(vec![1]),
            ),
            (
                "a copy set aside that the source holds: the source",
                vec![holds("m-1", "a,b"), aside("m-2", Some("a"))],
                Reseed::From(0),
            ),
            (
                "a copy set aside with what no server holds",
                vec![
                    holds("m-1", "a,b"),
                    aside("m-2", Some("a,c")),
                    aside("m-3", Some("b")),
                ],
                Reseed::SetAside(vec![1]),
            ),
            (
                "a copy set aside does not hurry a peer still applying",
                vec![
                    received("m-1", "a", "a,b", false),
                    aside("m-2", Some("a,b")),
                ],
                Reseed::Applying(0),
            ),
        ] {
            assert_eq!(reseed(&answers, contains), want, "{what}");
        }
    }
}
