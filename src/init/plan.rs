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

/// What an empty master's peers said, in one round of asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAnswer {
    pub name: String,
    /// Its executed GTIDs; `None` when it holds none.
    pub gtid: Option<String>,
}

/// An empty master's choice after a round of asking its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reseed {
    /// Some peer has not answered and there is time left: ask again.
    Wait,
    /// No peer that answered holds data.
    StartEmpty,
    /// Clone from the peer at this index of the answers: the most advanced.
    From(usize),
}

/// Waits for every peer until `timed_out`; then takes the most advanced of
/// those that answered, by `weight`.
pub fn reseed(
    answered: &[PeerAnswer],
    silent: usize,
    timed_out: bool,
    weight: impl Fn(&str) -> u64,
) -> Reseed {
    if silent > 0 && !timed_out {
        return Reseed::Wait;
    }
    answered
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.gtid.as_deref().map(|g| (i, weight(g))))
        .max_by_key(|(_, w)| *w)
        .map_or(Reseed::StartEmpty, |(i, _)| Reseed::From(i))
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

    fn answer(name: &str, gtid: Option<&str>) -> PeerAnswer {
        PeerAnswer {
            name: name.into(),
            gtid: gtid.map(str::to_owned),
        }
    }

    #[test]
    fn reseed_table() {
        let w = |g: &str| g.rsplit('-').next().unwrap().parse::<u64>().unwrap();
        let two = [
            answer("mysql-1", Some("0-100-5")),
            answer("mysql-2", Some("0-100-9")),
        ];
        assert_eq!(reseed(&two, 0, false, w), Reseed::From(1));
        assert_eq!(reseed(&two, 1, false, w), Reseed::Wait);
        assert_eq!(reseed(&two, 1, true, w), Reseed::From(1));
        let empty = [answer("mysql-1", None)];
        assert_eq!(reseed(&empty, 0, false, w), Reseed::StartEmpty);
        assert_eq!(reseed(&[], 2, true, w), Reseed::StartEmpty);
        assert_eq!(reseed(&[], 2, false, w), Reseed::Wait);
    }
}
