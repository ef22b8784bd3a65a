//! MySQL GTID sets (`uuid:1-5:7,uuid:tag:1-3`) as values: parsed into
//! intervals per source (UUID, and tag where there is one), counted and
//! compared by inclusion. The agent's other set arithmetic is the server's
//! own `GTID_SUBTRACT`.

use std::collections::BTreeMap;

/// A GTID set: per source, disjoint closed intervals in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set(BTreeMap<String, Vec<(u64, u64)>>);

impl Set {
    /// Parses a set as the server prints it; `None` for text that is not one.
    pub fn parse(text: &str) -> Option<Set> {
        let mut set = Set::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.split(':');
            let uuid = fields.next()?.to_ascii_lowercase();
            if !is_uuid(&uuid) {
                return None;
            }
            let mut source = uuid;
            for f in fields {
                match interval(f) {
                    Some(iv) => set.0.entry(source.clone()).or_default().push(iv),
                    // A tag names the transactions that follow it.
                    None if !f.is_empty() && !f.starts_with(|c: char| c.is_ascii_digit()) => {
                        source = format!("{}:{}", source.split(':').next()?, f);
                    }
                    None => return None,
                }
            }
        }
        for ivs in set.0.values_mut() {
            ivs.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
            for &(a, b) in ivs.iter() {
                match merged.last_mut() {
                    Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            *ivs = merged;
        }
        set.0.retain(|_, ivs| !ivs.is_empty());
        Some(set)
    }

    /// How many transactions the set holds.
    pub fn count(&self) -> u64 {
        self.0.values().flatten().map(|(a, b)| b - a + 1).sum()
    }

    /// Whether every transaction of `other` is in this set.
    pub fn contains(&self, other: &Set) -> bool {
        other.0.iter().all(|(source, ivs)| {
            let Some(mine) = self.0.get(source) else {
                return false;
            };
            ivs.iter()
                .all(|&(a, b)| mine.iter().any(|&(x, y)| x <= a && b <= y))
        })
    }
}

impl std::fmt::Display for Set {
    /// As the server prints a set: `uuid:1-5:7,uuid:tag:1-3`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (source, ivs)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(source)?;
            for &(a, b) in ivs {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn interval(f: &str) -> Option<(u64, u64)> {
    match f.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then_some((a, b))
        }
        None => f.parse().ok().map(|n| (n, n)),
    }
}

/// How many transactions a set holds (0 for text that is not a set).
pub fn count(set: &str) -> u64 {
    Set::parse(set).map_or(0, |s| s.count())
}

/// Whether `a` holds every transaction of `b`; `false` when either is not a set.
pub fn contains(a: &str, b: &str) -> bool {
    match (Set::parse(a), Set::parse(b)) {
        (Some(a), Some(b)) => a.contains(&b),
        _ => false,
    }
}

/// The transactions of `a` that are not in `b`; `a` when either is not a set.
pub fn subtract(a: &str, b: &str) -> String {
    let (Some(mut a_set), Some(b_set)) = (Set::parse(a), Set::parse(b)) else {
        return a.to_owned();
    };
    for (source, ivs) in a_set.0.iter_mut() {
        let Some(cuts) = b_set.0.get(source) else {
            continue;
        };
        let mut out = Vec::new();
        for &(mut lo, hi) in ivs.iter() {
            let (start, end) = (lo, hi);
            for &(x, y) in cuts.iter().filter(|&&(x, y)| y >= start && x <= end) {
                if x > lo {
                    out.push((lo, x - 1));
                }
                lo = lo.max(y.saturating_add(1));
            }
            if lo <= hi {
                out.push((lo, hi));
            }
        }
        *ivs = out;
    }
    a_set.0.retain(|_, ivs| !ivs.is_empty());
    a_set.to_string()
}

/// Every transaction of `a` or `b`; `a` when `b` is not a set.
pub fn union(a: &str, b: &str) -> String {
    match Set::parse(&format!("{a},{b}")) {
        Some(s) => s.to_string(),
        None => a.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_cuts_intervals() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let v = "4e11fa47-71ca-11e1-9e33-c80aa9429562";
        let s = |t: &str| t.replace('U', u).replace('V', v);
        for (a, b, want) in [
            ("U:1-10", "U:4-5", "U:1-3:6-10"),
            ("U:1-10", "U:1-10", ""),
            ("U:1-10", "U:0-2:9-20", "U:3-8"),
            ("U:1-10,V:1-3", "V:2", "U:1-10,V:1:3"),
            ("U:1-10", "V:1-3", "U:1-10"),
            ("U:1-3:7-9", "U:2-8", "U:1:9"),
            ("U:1-10", "", "U:1-10"),
        ] {
            assert_eq!(subtract(&s(a), &s(b)), s(want), "{a} - {b}");
        }
    }

    #[test]
    fn union_merges_and_prints_as_the_server_does() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let v = "4e11fa47-71ca-11e1-9e33-c80aa9429562";
        assert_eq!(
            union(&format!("{u}:1-5"), &format!("{u}:4-9:11")),
            format!("{u}:1-9:11")
        );
        assert_eq!(
            union(&format!("{v}:2"), &format!("{u}:1")),
            format!("{u}:1,{v}:2")
        );
        assert_eq!(union(&format!("{u}:1-3"), ""), format!("{u}:1-3"));
        assert_eq!(union("", ""), "");
        let tagged = format!("{u}:1-3:fast:1-2");
        assert!(contains(&union(&tagged, ""), &tagged));
        assert!(contains(&tagged, &union(&tagged, "")));
    }

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "2174b383-5441-11e8-b90a-c80aa9429562";

    #[test]
    fn counting() {
        assert_eq!(count(""), 0);
        assert_eq!(count("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5"), 5);
        assert_eq!(count(&format!("{A}:1-5:7:9-10,\n{B}:1-3")), 11);
        assert_eq!(count(&format!("{A}:tag:1-4")), 4);
        assert_eq!(count(&format!("{A}:1-5:3-8")), 8, "overlaps merge");
    }

    #[test]
    fn inclusion_table() {
        for (a, b, want) in [
            (format!("{A}:1-10"), format!("{A}:1-10"), true),
            (format!("{A}:1-10"), format!("{A}:3-7"), true),
            (format!("{A}:1-10"), String::new(), true),
            (String::new(), format!("{A}:1"), false),
            (format!("{A}:1-5"), format!("{A}:1-6"), false),
            (format!("{A}:1-5:7-9"), format!("{A}:6"), false),
            (format!("{A}:1-5:6-9"), format!("{A}:4-7"), true),
            (format!("{A}:1-9"), format!("{A}:1-9,{B}:1"), false),
            (format!("{A}:1-9,\n{B}:1-2"), format!("{B}:2,{A}:9"), true),
            (format!("{A}:1-9"), format!("{A}:t1:1"), false),
            (format!("{A}:1-9:t1:1-3"), format!("{A}:t1:2"), true),
            (format!("{A}:1-9"), "not a set".into(), false),
        ] {
            assert_eq!(contains(&a, &b), want, "{a} ⊇ {b}");
        }
    }
}
