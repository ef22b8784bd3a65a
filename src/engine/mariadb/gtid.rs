//! MariaDB GTID positions (`domain-server-seq[,...]`) and binary log states,
//! compared per domain and per (domain, server).

use std::collections::BTreeMap;

/// Per domain, the last GTID of a position.
pub fn position(pos: &str) -> BTreeMap<u32, (u32, u64)> {
    triples(pos).map(|(d, s, n)| (d, (s, n))).collect()
}

/// Per (domain, server), the last sequence number of a `gtid_binlog_state`.
pub fn state(state: &str) -> BTreeMap<(u32, u32), u64> {
    triples(state).map(|(d, s, n)| ((d, s), n)).collect()
}

fn triples(list: &str) -> impl Iterator<Item = (u32, u32, u64)> + '_ {
    list.split(',').filter_map(|g| {
        let mut it = g.trim().splitn(3, '-');
        let d = it.next()?.parse().ok()?;
        let s = it.next()?.parse().ok()?;
        let n = it.next()?.parse().ok()?;
        Some((d, s, n))
    })
}

/// The GTIDs in the replica's binary log state that the master's does not
/// have: a (domain, server) the master never logged, or a later sequence
/// number. Comparing per server catches a local write on a replica that is
/// behind, whose sequence number the master has used for something else.
pub fn errant(replica_state: &str, master_state: &str) -> Vec<String> {
    let m = state(master_state);
    state(replica_state)
        .into_iter()
        .filter(|(key, n)| m.get(key).is_none_or(|mn| n > mn))
        .map(|((d, s), n)| format!("{d}-{s}-{n}"))
        .collect()
}

/// The domains where `replica` is behind `first_in_binlog`, the position the
/// master's oldest binary log starts from: what it can no longer send.
pub fn missing(replica: &str, first_in_binlog: &str) -> Vec<String> {
    let r = position(replica);
    position(first_in_binlog)
        .into_iter()
        .filter(|(d, (_, n))| r.get(d).map_or(*n > 0, |(_, rn)| rn < n))
        .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
        .collect()
}

/// The position in a `Gtid_list` event's info, e.g. `[0-100-5,1-101-2]`.
pub fn gtid_list(info: &str) -> String {
    info.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

/// Whether position `a` is at or past `b` in every domain of `b`: what a
/// server at `a` has applied includes what one at `b` has, in a cluster
/// whose domains each have one history.
pub fn contains(a: &str, b: &str) -> bool {
    let a = position(a);
    position(b)
        .iter()
        .all(|(d, (_, n))| a.get(d).is_some_and(|(_, an)| an >= n))
}

/// Per domain, the further of `a` and `b`: what a server that executed `a`
/// and received `b` holds.
pub fn union(a: &str, b: &str) -> String {
    let mut out = position(a);
    for (d, (s, n)) in position(b) {
        if out.get(&d).is_none_or(|&(_, an)| n > an) {
            out.insert(d, (s, n));
        }
    }
    out.iter()
        .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// How far a position got: the sum of its domains' sequence numbers.
pub fn weight(pos: &str) -> u64 {
    position(pos).values().map(|(_, n)| n).sum()
}

/// The `server_id` for a master starting a new history at `now` (Unix
/// seconds) over data holding `held` (a binary log state or position):
/// `2^31 +` the time, so it is above every ordinal-based id and says when the
/// history began, stepped past any server id `held` already names. A GTID
/// names its server, so the new history's transactions can never take the
/// names of transactions a peer holds from an old one.
pub fn new_history_server_id(now: u64, held: &str) -> u32 {
    const HALF: u32 = 1 << 31;
    let used: std::collections::BTreeSet<u32> = triples(held).map(|(_, s, _)| s).collect();
    let mut id = HALF + (now % u64::from(HALF)) as u32;
    while used.contains(&id) {
        id = HALF + (id - HALF + 1) % HALF;
    }
    id
}

/// How many GTIDs a comma-separated list holds.
pub fn count(list: &str) -> u64 {
    list.split(',').filter(|g| !g.is_empty()).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errant_table() {
        for (replica, master, want) in [
            ("0-100-5", "0-100-5", vec![]),
            ("0-100-4", "0-100-5", vec![]),
            ("", "0-100-5", vec![]),
            ("0-101-6", "0-100-5", vec!["0-101-6"]),
            // Behind the master, yet with a write of its own: still errant.
            ("0-100-4,0-103-5", "0-100-9", vec!["0-103-5"]),
            ("0-100-5,1-101-1", "0-100-9", vec!["1-101-1"]),
            ("0-100-5,1-101-1", "0-100-5,1-101-1", vec![]),
            ("0-100-5,0-101-2", "0-101-2,0-100-9", vec![]),
        ] {
            assert_eq!(errant(replica, master), want, "{replica} vs {master}");
        }
    }

    #[test]
    fn missing_table() {
        for (replica, first, want) in [
            ("0-100-5", "", vec![]),
            ("0-100-5", "0-100-5", vec![]),
            ("0-100-4", "0-100-5", vec!["0-100-5"]),
            ("", "0-100-5", vec!["0-100-5"]),
            ("0-100-9", "0-100-5,1-101-2", vec!["1-101-2"]),
        ] {
            assert_eq!(missing(replica, first), want, "{replica} vs {first}");
        }
        assert_eq!(gtid_list("[0-100-5,1-101-2]"), "0-100-5,1-101-2");
        assert_eq!(gtid_list("[]"), "");
    }

    #[test]
    fn inclusion_table() {
        for (a, b, want) in [
            ("0-100-9", "0-100-9", true),
            ("0-100-9", "0-100-5", true),
            ("0-100-9", "", true),
            ("", "0-100-1", false),
            ("0-100-5", "0-100-9", false),
            ("0-101-9", "0-100-5", true),
            ("0-100-9", "0-100-5,1-101-1", false),
            ("1-101-3,0-100-9", "0-100-5,1-101-1", true),
        ] {
            assert_eq!(contains(a, b), want, "{a} ⊇ {b}");
        }
    }

    #[test]
    fn a_new_history_takes_a_server_id_nobody_holds() {
        let t = 1_796_000_000;
        let id = new_history_server_id(t, "");
        assert_eq!(id, (1 << 31) + (t % (1 << 31)) as u32);
        // Above every ordinal-based id.
        assert!(id > 1 << 31);
        // Never one the data already names (a re-seed in the same second).
        assert_eq!(
            new_history_server_id(t, &format!("0-100-7,0-{id}-9")),
            id + 1
        );
        // Wraps inside the upper half.
        let top = new_history_server_id((1 << 31) - 1, "");
        assert_eq!(top, u32::MAX);
        assert_eq!(
            new_history_server_id((1 << 31) - 1, &format!("0-{top}-1")),
            1 << 31
        );
    }

    #[test]
    fn union_per_domain() {
        assert_eq!(union("0-100-5,1-101-2", "0-100-9"), "0-100-9,1-101-2");
        assert_eq!(union("0-100-9", "0-100-5,2-102-1"), "0-100-9,2-102-1");
        assert_eq!(union("", ""), "");
    }

    #[test]
    fn weights_and_counts() {
        assert!(weight("0-100-9") > weight("0-100-5"));
        assert_eq!(weight("0-100-9,1-101-2"), 11);
        assert_eq!(weight(""), 0);
        assert_eq!(count(""), 0);
        assert_eq!(count("0-100-5,1-101-1"), 2);
    }
}
