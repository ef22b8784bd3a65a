//! Who this pod is: the StatefulSet ordinal parsed from the hostname, and the
//! names of its peers (master and clone donors) derived from it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// This pod's place in the StatefulSet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub hostname: String,
    pub statefulset: String,
    pub ordinal: u32,
    pub role: Role,
    pub server_id: u32,
    pub fqdn: String,
    pub master_fqdn: String,
    /// Donors to clone from, in the order to try them: N-1 first, mysql-0 last.
    pub donors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Master,
    Replica,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Master => "master",
            Role::Replica => "replica",
        })
    }
}

/// Splits `<statefulset>-<ordinal>` at the last dash. The ordinal must be plain
/// decimal digits (no sign, no spaces) that fit in a `u32`.
pub fn parse_hostname(hostname: &str) -> Result<(String, u32)> {
    let bad = |why: &str| Error::Identity {
        hostname: hostname.to_owned(),
        why: why.to_owned(),
    };
    // A pod hostname may come as an FQDN on some platforms; only the first label counts.
    let name = short_name(hostname);
    let (set, ordinal) = name
        .rsplit_once('-')
        .ok_or_else(|| bad("no '-<ordinal>' suffix"))?;
    if set.is_empty() {
        return Err(bad("the StatefulSet name before '-<ordinal>' is empty"));
    }
    if !set
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || set.starts_with('-')
        || set.ends_with('-')
    {
        return Err(bad(
            "the StatefulSet name must be a DNS label: lowercase letters, digits and '-', not at either end",
        ));
    }
    if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            "the ordinal after the last '-' is not a decimal number",
        ));
    }
    if ordinal.len() > 1 && ordinal.starts_with('0') {
        return Err(bad("the ordinal has a leading zero"));
    }
    let ordinal = ordinal
        .parse::<u32>()
        .map_err(|_| bad("the ordinal is too large"))?;
    Ok((set.to_owned(), ordinal))
}

/// A pod's name from its DNS name (or hostname): the first label.
pub fn short_name(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// Joins a pod name and the peer domain; an empty domain means bare names.
pub fn peer_name(pod: &str, peer_domain: &str) -> String {
    if peer_domain.is_empty() {
        pod.to_owned()
    } else {
        format!("{pod}.{peer_domain}")
    }
}

impl Identity {
    pub fn new(hostname: &str, peer_domain: &str, server_id_base: u32) -> Result<Self> {
        let (statefulset, ordinal) = parse_hostname(hostname)?;
        let server_id = server_id_base
            .checked_add(ordinal)
            .filter(|id| *id > 0)
            .ok_or_else(|| Error::Config {
                what: format!(
                    "--server-id-base {server_id_base} + ordinal {ordinal} is not a valid server_id (1..4294967295)"
                ),
            })?;
        let pod = |n: u32| peer_name(&format!("{statefulset}-{n}"), peer_domain);
        let donors = (0..ordinal).rev().map(pod).collect();
        Ok(Identity {
            hostname: format!("{statefulset}-{ordinal}"),
            role: if ordinal == 0 {
                Role::Master
            } else {
                Role::Replica
            },
            server_id,
            fqdn: pod(ordinal),
            master_fqdn: pod(0),
            donors,
            statefulset,
            ordinal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_hostnames() {
        for (host, set, ord) in [
            ("mysql-0", "mysql", 0),
            ("mysql-1", "mysql", 1),
            ("my-db-cluster-12", "my-db-cluster", 12),
            ("db2-7", "db2", 7),
            ("a-4294967295", "a", u32::MAX),
            ("mysql-3.mysql-h.default.svc.cluster.local", "mysql", 3),
        ] {
            assert_eq!(
                parse_hostname(host).unwrap(),
                (set.to_owned(), ord),
                "{host}"
            );
        }
    }

    #[test]
    fn bad_hostnames() {
        for (host, why) in [
            ("mysql", "no '-<ordinal>'"),
            ("", "no '-<ordinal>'"),
            ("mysql-", "not a decimal"),
            ("mysql-a", "not a decimal"),
            ("mysql-1a", "not a decimal"),
            ("mysql-+1", "not a decimal"),
            ("mysql--1", "DNS label"),
            ("mysql- 1", "not a decimal"),
            ("mysql-01", "leading zero"),
            ("mysql-4294967296", "too large"),
            ("mysql-99999999999999999999", "too large"),
            ("-1", "is empty"),
            ("MySQL-1", "DNS label"),
            ("my_sql-1", "DNS label"),
            ("-mysql-1", "DNS label"),
        ] {
            let err = parse_hostname(host).unwrap_err().to_string();
            assert!(err.contains(why), "{host:?}: {err}");
            assert!(err.contains(&format!("{host:?}")), "{host:?}: {err}");
        }
    }

    #[test]
    fn master_identity() {
        let id = Identity::new("mysql-0", "mysql-h.db.svc.cluster.local", 100).unwrap();
        assert_eq!(id.role, Role::Master);
        assert_eq!(id.server_id, 100);
        assert_eq!(id.fqdn, "mysql-0.mysql-h.db.svc.cluster.local");
        assert_eq!(id.master_fqdn, id.fqdn);
        assert!(id.donors.is_empty());
    }

    #[test]
    fn donors_are_nearest_first() {
        let id = Identity::new("mysql-3", "h.ns.svc.cluster.local", 100).unwrap();
        assert_eq!(id.role, Role::Replica);
        assert_eq!(id.server_id, 103);
        assert_eq!(
            id.donors,
            [
                "mysql-2.h.ns.svc.cluster.local",
                "mysql-1.h.ns.svc.cluster.local",
                "mysql-0.h.ns.svc.cluster.local"
            ]
        );
        assert_eq!(id.master_fqdn, "mysql-0.h.ns.svc.cluster.local");
    }

    #[test]
    fn empty_peer_domain_means_bare_names() {
        let id = Identity::new("db-2", "", 1).unwrap();
        assert_eq!(id.fqdn, "db-2");
        assert_eq!(id.donors, ["db-1", "db-0"]);
    }

    #[test]
    fn server_id_must_fit() {
        assert!(Identity::new("mysql-1", "", u32::MAX).is_err());
        assert!(Identity::new("mysql-0", "", 0).is_err());
        assert_eq!(Identity::new("mysql-1", "", 0).unwrap().server_id, 1);
    }
}
