//! The binary log retention fence, apart from its I/O: from the master's
//! binary logs (what each starts from, its size and age) and what every
//! replica has executed, which logs may go. A log goes once it has expired
//! and no replica still needs a transaction in it; past the disk cap the
//! oldest go anyway, and the replicas that needed them are named. Pure, and
//! table-tested.

use std::time::Duration;

/// One binary log of the master, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub name: String,
    pub size: u64,
    /// The GTIDs logged before this log began (MySQL `Previous_gtids`,
    /// MariaDB `Gtid_list`).
    pub start: String,
    /// Since its last write; `None` when unknown (then it never expires).
    pub age: Option<Duration>,
}

/// A replica that exists, and what it has executed as last known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub name: String,
    /// `None`: never heard from. A replica that has no position yet is being
    /// cloned from a peer that the fence holds for, and needs nothing older.
    pub executed: Option<String>,
}

/// What the server's own expiry would do, and the disk cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Logs older than this expire; `None`: never by age.
    pub expire: Option<Duration>,
    /// The binary logs may take at most this many bytes; `None`: no cap.
    pub max_bytes: Option<u64>,
}

/// The fence's decision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Purge the logs before this one (`PURGE BINARY LOGS TO`); `None`:
    /// nothing goes.
    pub purge_to: Option<String>,
    /// The bytes of the logs kept.
    pub retained_bytes: u64,
    /// The replica that needs the oldest kept log, when one needs an expired
    /// log: what holds the logs back.
    pub holder: Option<String>,
    /// Replicas that need a log the cap makes go: they will have to be
    /// cloned again.
    pub forced: Vec<String>,
}

/// Which logs go. `contains(a, b)`: a server at `a` holds every transaction
/// of `b`.
pub fn decide(
    logs: &[Log],
    replicas: &[Replica],
    limits: Limits,
    contains: impl Fn(&str, &str) -> bool,
) -> Decision {
    let Some(last) = logs.len().checked_sub(1) else {
        return Decision::default();
    };
    // The first log each replica needs: the one whose successor starts with
    // a transaction it lacks. The active log is never purged.
    let needs: Vec<(&str, usize)> = replicas
        .iter()
        .filter_map(|r| {
            let executed = r.executed.as_deref()?;
            let first = (0..last)
                .find(|&k| !contains(executed, &logs[k + 1].start))
                .unwrap_or(last);
            Some((r.name.as_str(), first))
        })
        .collect();
    let fence = needs.iter().map(|&(_, k)| k).min().unwrap_or(last);
    let expired = match limits.expire {
        Some(expire) => logs[..last]
            .iter()
            .take_while(|l| l.age.is_some_and(|a| a > expire))
            .count(),
        None => 0,
    };
    let mut keep_from = expired.min(fence);
    if let Some(cap) = limits.max_bytes {
        while keep_from < last && logs[keep_from..].iter().map(|l| l.size).sum::<u64>() > cap {
            keep_from += 1;
        }
    }
    let forced = needs
        .iter()
        .filter(|&&(_, k)| k < keep_from)
        .map(|&(name, _)| name.to_owned())
        .collect();
    // Held back: an expired log kept for a replica.
    let holder = needs
        .iter()
        .filter(|&&(_, k)| k >= keep_from && k < expired)
        .min_by_key(|&&(_, k)| k)
        .map(|&(name, _)| name.to_owned());
    Decision {
        purge_to: (keep_from > 0).then(|| logs[keep_from].name.clone()),
        retained_bytes: logs[keep_from..].iter().map(|l| l.size).sum(),
        holder,
        forced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MariaDB-like positions in one domain: `a` holds `b` when its sequence
    /// number is at least `b`'s.
    fn contains(a: &str, b: &str) -> bool {
        let n = |s: &str| s.parse::<u64>().unwrap_or(0);
        n(a) >= n(b)
    }

    /// Logs starting at sequence numbers `starts`, 100 bytes each, the
    /// first ones `old` seconds old, the last ones 1 s.
    fn logs(starts: &[u64], old: usize) -> Vec<Log> {
        starts
            .iter()
            .enumerate()
            .map(|(i, s)| Log {
                name: format!("binlog.{:06}", i + 1),
                size: 100,
                start: s.to_string(),
                age: Some(Duration::from_secs(if i < old { 3600 } else { 1 })),
            })
            .collect()
    }

    fn replica(name: &str, executed: Option<u64>) -> Replica {
        Replica {
            name: name.into(),
            executed: executed.map(|e| e.to_string()),
        }
    }

    const HOUR: Limits = Limits {
        expire: Some(Duration::from_secs(60)),
        max_bytes: None,
    };

    #[test]
    fn expired_logs_go_when_every_replica_is_past_them() {
        // Logs hold 1-10, 11-20, 21-30, 31-; the replicas are at 35 and 40.
        let l = logs(&[0, 10, 20, 30], 3);
        let d = decide(
            &l,
            &[replica("mysql-1", Some(40)), replica("mysql-2", Some(35))],
            HOUR,
            contains,
        );
        assert_eq!(d.purge_to.as_deref(), Some("binlog.000004"));
        assert_eq!(d.retained_bytes, 100);
        assert_eq!(d.holder, None);
        assert!(d.forced.is_empty());
    }

    #[test]
    fn a_replica_that_is_behind_holds_the_logs_it_needs() {
        // mysql-2 (down) executed up to 15: it needs the log with 11-20.
        let l = logs(&[0, 10, 20, 30], 3);
        let d = decide(
            &l,
            &[replica("mysql-1", Some(40)), replica("mysql-2", Some(15))],
            HOUR,
            contains,
        );
        assert_eq!(d.purge_to.as_deref(), Some("binlog.000002"));
        assert_eq!(d.retained_bytes, 300);
        assert_eq!(d.holder.as_deref(), Some("mysql-2"));
        // At the very end of a log, it needs the next one only.
        let d = decide(&l, &[replica("mysql-2", Some(20))], HOUR, contains);
        assert_eq!(d.purge_to.as_deref(), Some("binlog.000003"));
    }

    #[test]
    fn nothing_goes_before_it_expires() {
        let l = logs(&[0, 10, 20, 30], 1);
        let d = decide(&l, &[replica("mysql-1", Some(40))], HOUR, contains);
        assert_eq!(d.purge_to.as_deref(), Some("binlog.000002"));
        assert_eq!(d.holder, None);
        // Without an expiry, and for a log of unknown age: nothing.
        let none = Limits::default();
        assert_eq!(
            decide(&l, &[], none, contains),
            Decision {
                retained_bytes: 400,
                ..Decision::default()
            }
        );
        let mut unknown = logs(&[0, 10], 2);
        unknown[0].age = None;
        assert_eq!(decide(&unknown, &[], HOUR, contains).purge_to, None);
    }

    #[test]
    fn the_active_log_is_never_purged() {
        let l = logs(&[0, 10, 20], 3);
        let d = decide(&l, &[replica("mysql-1", Some(5))], HOUR, contains);
        assert_eq!(d.purge_to, None);
        assert_eq!(d.holder.as_deref(), Some("mysql-1"));
        let capped = Limits {
            max_bytes: Some(0),
            ..HOUR
        };
        let d = decide(&l, &[replica("mysql-1", Some(5))], capped, contains);
        assert_eq!(d.purge_to.as_deref(), Some("binlog.000003"));
        assert_eq!(d.forced, ["mysql-1"]);
        assert_eq!(decide(&[], &[], capped, contains), Decision::default());
    }

    #[test]
    fn a_replica_never_heard_from_holds_nothing() {
        let l = logs(&[0, 10, 20, 30], 3);
        let d = decide(&l, &[replica("mysql-3", None)], HOUR, contains);
        assert_eq!(d.purge_to.as_deref(), Some("binlog.000004"));
    }

    #[test]
    fn past_the_cap_the_oldest_go_and_the_replicas_that_needed_them_are_named() {
        // 4 logs of 100 bytes, at most 250: two go, whatever mysql-2 needs.
        let l = logs(&[0, 10, 20, 30], 3);
        let capped = Limits {
            max_bytes: Some(250),
            ..HOUR
        };
        let d = decide(
            &l,
            &[replica("mysql-1", Some(40)), replica("mysql-2", Some(5))],
            capped,
            contains,
        );
        assert_eq!(d.purge_to.as_deref(), Some("binlog.000003"));
        assert_eq!(d.retained_bytes, 200);
        assert_eq!(d.forced, ["mysql-2"]);
        assert_eq!(d.holder, None);
        // Under the cap, nothing is forced.
        let roomy = Limits {
            max_bytes: Some(400),
            ..HOUR
        };
        let d = decide(&l, &[replica("mysql-2", Some(5))], roomy, contains);
        assert_eq!(d.purge_to, None);
        assert!(d.forced.is_empty());
        // The cap purges logs that have not expired yet, too.
        let fresh = logs(&[0, 10, 20, 30], 0);
        let d = decide(&fresh, &[], capped, contains);
        assert_eq!(d.purge_to.as_deref(), Some("binlog.000003"));
    }
}

/// With the binary log archive on, a purge up to `purge_to` (the first log
/// kept) is held back to the first log the archive does not hold: a log
/// leaves the master only once it is archived.
pub fn hold_for_archive(
    logs: &[Log],
    purge_to: Option<String>,
    archived: &std::collections::BTreeSet<String>,
) -> Option<String> {
    let to = logs
        .iter()
        .position(|l| Some(&l.name) == purge_to.as_ref())?;
    match logs.iter().position(|l| !archived.contains(&l.name)) {
        Some(first) if first < to => (first > 0).then(|| logs[first].name.clone()),
        _ => purge_to,
    }
}

#[cfg(test)]
mod archive_tests {
    use super::*;

    #[test]
    fn a_purge_stops_at_the_first_log_not_archived() {
        let logs: Vec<Log> = (1..=5)
            .map(|i| Log {
                name: format!("binlog.00000{i}"),
                size: 1,
                start: String::new(),
                age: None,
            })
            .collect();
        let archived = |n: usize| -> std::collections::BTreeSet<String> {
            logs[..n].iter().map(|l| l.name.clone()).collect()
        };
        let to = |i: usize| Some(format!("binlog.00000{i}"));
        // Everything before binlog.000004 may go and is archived: it goes.
        assert_eq!(hold_for_archive(&logs, to(4), &archived(4)), to(4));
        // Only the first two are archived: the purge stops before the third.
        assert_eq!(hold_for_archive(&logs, to(4), &archived(2)), to(3));
        // None is archived: nothing goes.
        assert_eq!(hold_for_archive(&logs, to(4), &archived(0)), None);
        assert_eq!(hold_for_archive(&logs, None, &archived(5)), None);
    }
}
