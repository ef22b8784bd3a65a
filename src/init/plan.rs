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
    /// Its server's transactions.
    Holds(Held),
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
}

/// Waits until every peer has said what it holds; then takes the one that
/// received every transaction any other received (`contains(a, b)`: a server
/// at `a` has every transaction of one at `b`) — under semi-synchronous
/// replication an acknowledged commit may exist only in a relay log — once
/// it has applied them, since a copy holds only what its server applied.
/// Refuses to choose when no peer holds every other's.
pub fn reseed(answers: &[PeerAnswer], contains: impl Fn(&str, &str) -> bool) -> Reseed {
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
        ] {
            assert_eq!(reseed(&answers, contains), want, "{what}");
        }
    }
}
