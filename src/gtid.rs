//! GTID positions as text, the pure arithmetic the agent needs on them:
//! MariaDB positions compared per domain, MySQL sets counted. (MySQL set
//! subtraction is left to the server's own `GTID_SUBTRACT`.)

use std::collections::BTreeMap;

/// A MariaDB GTID position `domain-server-seq[,...]`: per domain, the last GTID.
pub fn mariadb_position(pos: &str) -> BTreeMap<u32, (u32, u64)> {
    pos.split(',')
        .filter_map(|g| {
            let mut it = g.trim().splitn(3, '-');
            let d = it.next()?.parse().ok()?;
            let s = it.next()?.parse().ok()?;
            let n = it.next()?.parse().ok()?;
            Some((d, (s, n)))
        })
        .collect()
}

/// A MariaDB `gtid_binlog_state`: per (domain, server), the last sequence number.
pub fn mariadb_state(state: &str) -> BTreeMap<(u32, u32), u64> {
    state
        .split(',')
        .filter_map(|g| {
            let mut it = g.trim().splitn(3, '-');
            let d = it.next()?.parse().ok()?;
            let s = it.next()?.parse().ok()?;
            let n = it.next()?.parse().ok()?;
            Some(((d, s), n))
        })
        .collect()
}

/// The GTIDs in the replica's binary log state that the master's does not
/// have: a (domain, server) the master never logged, or a later sequence
/// number. Comparing per server catches a local write on a replica that is
/// behind, whose sequence number the master has used for something else.
pub fn mariadb_errant(replica_state: &str, master_state: &str) -> Vec<String> {
    let m = mariadb_state(master_state);
    mariadb_state(replica_state)
        .into_iter()
        .filter(|(key, n)| m.get(key).is_none_or(|mn| n > mn))
        .map(|((d, s), n)| format!("{d}-{s}-{n}"))
        .collect()
}

/// The domains where `replica` is behind `first_in_binlog`, the position the
/// master's oldest binary log starts from: what it can no longer send.
pub fn mariadb_missing(replica: &str, first_in_binlog: &str) -> Vec<String> {
    let r = mariadb_position(replica);
    mariadb_position(first_in_binlog)
        .into_iter()
        .filter(|(d, (_, n))| r.get(d).map_or(*n > 0, |(_, rn)| rn < n))
        .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
        .collect()
}

/// The position in a `Gtid_list` event's info, e.g. `[0-100-5,1-101-2]`.
pub fn mariadb_gtid_list(info: &str) -> String {
    info.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

/// How many transactions a MySQL GTID set holds (`uuid:1-5:7,uuid:1-3`).
pub fn mysql_count(set: &str) -> u64 {
    set.split(',')
        .flat_map(|part| part.trim().split(':').skip(1))
        .filter_map(|range| match range.split_once('-') {
            Some((a, b)) => Some(b.parse::<u64>().ok()? + 1 - a.parse::<u64>().ok()?),
            None => range.parse::<u64>().ok().map(|_| 1),
        })
        .sum()
}

/// How far a server got, to pick the most advanced peer: MySQL transactions,
/// MariaDB the sum of the domains' sequence numbers.
pub fn weight(flavor: crate::flavor::Flavor, set: &str) -> u64 {
    match flavor {
        crate::flavor::Flavor::Mysql => mysql_count(set),
        crate::flavor::Flavor::Mariadb => mariadb_position(set).values().map(|(_, n)| n).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flavor::Flavor;

    #[test]
    fn mariadb_errant_table() {
        for (replica, master, errant) in [
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
            assert_eq!(
                mariadb_errant(replica, master),
                errant,
                "{replica} vs {master}"
            );
        }
    }

    #[test]
    fn mariadb_missing_table() {
        for (replica, first, missing) in [
            ("0-100-5", "", vec![]),
            ("0-100-5", "0-100-5", vec![]),
            ("0-100-4", "0-100-5", vec!["0-100-5"]),
            ("", "0-100-5", vec!["0-100-5"]),
            ("0-100-9", "0-100-5,1-101-2", vec!["1-101-2"]),
        ] {
            assert_eq!(
                mariadb_missing(replica, first),
                missing,
                "{replica} vs {first}"
            );
        }
        assert_eq!(mariadb_gtid_list("[0-100-5,1-101-2]"), "0-100-5,1-101-2");
        assert_eq!(mariadb_gtid_list("[]"), "");
    }

    #[test]
    fn mysql_counting() {
        assert_eq!(mysql_count(""), 0);
        assert_eq!(mysql_count("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5"), 5);
        assert_eq!(
            mysql_count(
                "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7:9-10,\n2174b383-5441-11e8-b90a-c80aa9429562:1-3"
            ),
            11
        );
        assert_eq!(mysql_count("uuid:tag:1-4"), 4);
    }

    #[test]
    fn weights_order_peers() {
        assert!(weight(Flavor::Mysql, "a:1-9") > weight(Flavor::Mysql, "a:1-5"));
        assert!(weight(Flavor::Mariadb, "0-100-9") > weight(Flavor::Mariadb, "0-100-5"));
        assert_eq!(weight(Flavor::Mariadb, ""), 0);
    }
}
