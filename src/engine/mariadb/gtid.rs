//! MariaDB GTID positions (`domain-server-seq[,...]`) and binary log states,
//! compared per domain and per (domain, server).

use std::collections::BTreeMap;

/// Per domain, the furthest GTID of a position (or of a list with several
/// servers per domain, such as a `Gtid_list`).
pub fn position(pos: &str) -> BTreeMap<u32, (u32, u64)> {
    let mut out: BTreeMap<u32, (u32, u64)> = BTreeMap::new();
    for (d, s, n) in triples(pos) {
        if out.get(&d).is_none_or(|&(_, m)| n > m) {
            out.insert(d, (s, n));
        }
    }
    out
}

/// Per (domain, server), the last sequence number of a `gtid_binlog_state`
/// (of several lists joined, the furthest).
pub fn state(state: &str) -> BTreeMap<(u32, u32), u64> {
    let mut out: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    for (d, s, n) in triples(state) {
        let last = out.entry((d, s)).or_default();
        *last = (*last).max(n);
    }
    out
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

/// The GTIDs in the replica's binary log state (`own`: its server_id) that
/// are not in the master's history, judged per (domain, server):
/// - a later sequence number than the master's for that server: one it
///   never reached (a replica ahead of the peer a master was re-seeded from);
/// - a write of the replica's own that the master's state does not hold,
///   even one behind the master (its sequence number the master has used
///   for something else);
/// - another server the master's binary log has not named since it starts
///   (`first_in_binlog`, the oldest log's `Gtid_list`), past that start: a
///   history the master does not descend from (it started over). Before the
///   start the binary log cannot tell: an earlier history, which a master
///   re-seeded from a copy (whose state starts at the copy's position) does
///   not list; the purge check speaks for a position there.
pub fn errant(
    replica_state: &str,
    own: u32,
    master_state: &str,
    first_in_binlog: &str,
) -> Vec<String> {
    let m = state(master_state);
    let start = starts(first_in_binlog);
    state(replica_state)
        .into_iter()
        .filter(|((d, s), n)| match m.get(&(*d, *s)) {
            Some(mn) => n > mn,
            None if *s == own => true,
            None => *n > start.get(d).copied().unwrap_or(0),
        })
        .map(|((d, s), n)| format!("{d}-{s}-{n}"))
        .collect()
}

/// The GTIDs of a position (or list) that name `server_id`: on a replica,
/// whose id no master ever takes, writes made on it by hand.
pub fn by_server(pos: &str, server_id: u32) -> Vec<String> {
    triples(pos)
        .filter(|(_, s, _)| *s == server_id)
        .map(|(d, s, n)| format!("{d}-{s}-{n}"))
        .collect()
}

/// Per domain, the highest sequence number of a GTID list.
fn starts(list: &str) -> BTreeMap<u32, u64> {
    position(list)
        .into_iter()
        .map(|(d, (_, n))| (d, n))
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
    text(&position(&format!("{a},{b}")))
}

/// A position as the server writes it.
fn text(p: &BTreeMap<u32, (u32, u64)>) -> String {
    p.iter()
        .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Position `pos` without the `errant` GTIDs (a replica's own writes): in a
/// domain whose last GTID is errant, what came before it, which under
/// `gtid_strict_mode` is the sequence number just below.
pub fn subtract(pos: &str, errant: &str) -> String {
    let mut p = position(pos);
    for (d, s, n) in triples(errant) {
        if p.get(&d) == Some(&(s, n)) {
            if n > 1 {
                p.insert(d, (s, n - 1));
            } else {
                p.remove(&d);
            }
        }
    }
    text(&p)
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
        for (replica, master, first, want) in [
            // The replica is mysql-3 (server_id 103); "" a binary log from the start.
            ("0-100-5", "0-100-5", "", vec![]),
            ("0-100-4", "0-100-5", "", vec![]),
            ("", "0-100-5", "", vec![]),
            ("0-103-6", "0-100-5", "", vec!["0-103-6"]),
            // Behind the master, yet with a write of its own: still errant,
            // also behind the start of the master's binary log.
            ("0-100-4,0-103-5", "0-100-9", "", vec!["0-103-5"]),
            ("0-100-4,0-103-5", "0-100-9", "0-100-8", vec!["0-103-5"]),
            ("0-100-5,1-103-1", "0-100-9", "", vec!["1-103-1"]),
            ("0-100-5,1-103-1", "0-100-5,1-103-1", "", vec![]),
            ("0-100-5,0-101-2", "0-101-2,0-100-9", "", vec![]),
            // Ahead of the master in a history it shares: never reached.
            (
                "0-100-5003",
                "0-100-5000,0-2147483999-5010",
                "0-100-5000",
                vec!["0-100-5003"],
            ),
            // A master that started over (a new server_id), even once it has
            // passed the replica's sequence numbers.
            ("0-100-5000", "0-2147483999-6000", "", vec!["0-100-5000"]),
            // Earlier histories a re-seeded master's state does not list,
            // before its binary log starts: not judged here.
            (
                "0-2147483001-4731,0-2147483002-5331,0-2147483003-6449",
                "0-2147483003-6449,0-2147483004-6460",
                "0-2147483003-6449",
                vec![],
            ),
            // ... but one past its start is a history it does not descend from.
            (
                "0-2147483001-6452",
                "0-2147483003-6449,0-2147483004-6460",
                "0-2147483003-6449",
                vec!["0-2147483001-6452"],
            ),
            // A replica cloned a moment ago (an empty binary log state, its
            // copy's position joined to it) under a master that started over.
            (
                ",0-3944096785-834",
                "0-3944096810-9",
                "",
                vec!["0-3944096785-834"],
            ),
            // The same GTID in the state and in the position: one, the furthest.
            ("0-100-4,0-100-5", "0-100-5", "", vec![]),
        ] {
            assert_eq!(
                errant(replica, 103, master, first),
                want,
                "{replica} vs {master} from {first}"
            );
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
    fn subtract_drops_a_replicas_own_last_write() {
        assert_eq!(
            subtract("0-102-816,1-100-4", "0-102-816"),
            "0-102-815,1-100-4"
        );
        assert_eq!(subtract("0-100-900", "0-102-816"), "0-100-900");
        assert_eq!(subtract("0-102-1", "0-102-1"), "");
    }

    #[test]
    fn a_replicas_own_writes_name_its_server() {
        assert_eq!(by_server("0-100-49,1-101-3", 101), ["1-101-3"]);
        assert_eq!(by_server("0-101-50", 101), ["0-101-50"]);
        assert_eq!(by_server("0-100-50", 101), Vec::<String>::new());
        assert_eq!(by_server("", 101), Vec::<String>::new());
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
