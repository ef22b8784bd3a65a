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
    /// Its server's executed GTIDs.
    Holds(String),
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
    /// No peer holds what every other holds: the data diverged, and no
    /// choice keeps all of it. These are the peers with data.
    Disagree(Vec<String>),
}

/// Waits until every peer has said what it holds; then takes the one whose
/// GTID set holds every other's (`contains(a, b)`: a server at `a` has
/// every transaction of one at `b`), or refuses to choose.
pub fn reseed(answers: &[PeerAnswer], contains: impl Fn(&str, &str) -> bool) -> Reseed {
    let unknown: Vec<String> = answers
        .iter()
        .filter(|a| a.says == PeerSays::Unknown)
        .map(|a| a.name.clone())
        .collect();
    if !unknown.is_empty() {
        return Reseed::Wait(unknown);
    }
    let holding: Vec<(usize, &str)> = answers
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match &a.says {
            PeerSays::Holds(g) => Some((i, g.as_str())),
            _ => None,
        })
        .collect();
    if holding.is_empty() {
        return Reseed::StartEmpty;
    }
    holding
        .iter()
        .find(|(_, a)| holding.iter().all(|(_, b)| contains(a, b)))
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
        answer(name, PeerSays::Holds(gtid.into()))
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
        ] {
            assert_eq!(reseed(&answers, contains), want, "{what}");
        }
    }
}
