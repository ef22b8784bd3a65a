//! The one seam between MySQL and MariaDB: the server settings, the SQL and the
//! status column names of each. Everything else in the crate is flavour-blind.

use std::fmt::Write as _;

use serde::Serialize;

use crate::identity::{Identity, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Mysql,
    Mariadb,
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Flavor::Mysql => "mysql",
            Flavor::Mariadb => "mariadb",
        })
    }
}

/// Where the replica should replicate from, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
}

/// Escapes a string for a single-quoted SQL literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

impl Flavor {
    /// Recognises the flavour from `mysqld --version` or `SELECT VERSION()`.
    pub fn from_version(version: &str) -> Flavor {
        if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::Mariadb
        } else {
            Flavor::Mysql
        }
    }

    /// The server settings init writes to `<conf-dir>/mysql-sts.cnf`.
    pub fn render_cnf(self, id: &Identity) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Written by `mysql-sts init` for {} at every start; edits are overwritten.",
            id.hostname
        );
        s.push_str("[mysqld]\n");
        let _ = writeln!(s, "server_id={}", id.server_id);
        let _ = writeln!(s, "report_host={}", id.fqdn);
        // Relative names: absolute paths end up in the .index files and break a
        // datadir that is copied to another pod.
        s.push_str("log_bin=binlog\nrelay_log=relay\n");
        s.push_str("sync_binlog=1\ninnodb_flush_log_at_trx_commit=1\n");
        s.push_str("relay_log_recovery=ON\n");
        // Every pod starts read-only, the master too: its sidecar makes it
        // writable once it has checked it (replication user, GTID state).
        match self {
            Flavor::Mysql => {
                s.push_str("gtid_mode=ON\nenforce_gtid_consistency=ON\n");
                s.push_str("log_replica_updates=ON\n");
                s.push_str("plugin_load_add=mysql_clone.so\n");
                s.push_str("read_only=ON\n");
                if id.role == Role::Replica {
                    s.push_str("super_read_only=ON\n");
                }
            }
            Flavor::Mariadb => {
                s.push_str("binlog_format=ROW\n");
                s.push_str("log_slave_updates=ON\ngtid_strict_mode=ON\n");
                // MariaDB would list the old data moved aside as a database.
                let _ = writeln!(s, "ignore_db_dirs={}", crate::datadir::OLD_DIR);
                s.push_str("read_only=ON\n");
            }
        }
        s
    }

    /// Statements that make a replica read-only for everyone the server allows.
    pub fn set_read_only(self, on: bool) -> Vec<String> {
        let v = if on { "ON" } else { "OFF" };
        match (self, on) {
            (Flavor::Mysql, true) => vec![format!("SET GLOBAL super_read_only={v}")],
            (Flavor::Mysql, false) => vec![
                format!("SET GLOBAL super_read_only={v}"),
                format!("SET GLOBAL read_only={v}"),
            ],
            (Flavor::Mariadb, _) => vec![format!("SET GLOBAL read_only={v}")],
        }
    }

    /// The query that answers 1 when the server is read-only in the sense that
    /// matters for `role`: on a MySQL replica, read-only even for SUPER
    /// (what the agent sets); on a master, read-only in any way.
    pub fn read_only_query(self, role: Role) -> &'static str {
        match (self, role) {
            (Flavor::Mysql, Role::Replica) => "SELECT @@global.super_read_only",
            (Flavor::Mysql, Role::Master) => {
                "SELECT @@global.read_only OR @@global.super_read_only"
            }
            (Flavor::Mariadb, _) => "SELECT @@global.read_only",
        }
    }

    pub fn gtid_executed_query(self) -> &'static str {
        match self {
            Flavor::Mysql => "SELECT @@global.gtid_executed",
            Flavor::Mariadb => "SELECT @@global.gtid_current_pos",
        }
    }

    pub fn replica_status_query(self) -> &'static str {
        match self {
            Flavor::Mysql => "SHOW REPLICA STATUS",
            Flavor::Mariadb => "SHOW SLAVE STATUS",
        }
    }

    pub fn stop_replica(self) -> &'static str {
        match self {
            Flavor::Mysql => "STOP REPLICA",
            Flavor::Mariadb => "STOP SLAVE",
        }
    }

    pub fn reset_replica_all(self) -> &'static str {
        match self {
            Flavor::Mysql => "RESET REPLICA ALL",
            Flavor::Mariadb => "RESET SLAVE ALL",
        }
    }

    pub fn start_replica(self) -> &'static str {
        match self {
            Flavor::Mysql => "START REPLICA",
            Flavor::Mariadb => "START SLAVE",
        }
    }

    /// Points the replica at `src` with GTID auto-positioning and a short
    /// connect retry, so that a master restart costs seconds.
    pub fn change_source(self, src: &Source<'_>) -> String {
        let (host, port, user, password) = (
            quote(src.host),
            src.port,
            quote(src.user),
            quote(src.password),
        );
        match self {
            Flavor::Mysql => format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST={host}, SOURCE_PORT={port}, \
                 SOURCE_USER={user}, SOURCE_PASSWORD={password}, SOURCE_AUTO_POSITION=1, \
                 SOURCE_SSL=1, SOURCE_CONNECT_RETRY=1, SOURCE_RETRY_COUNT=1000000"
            ),
            Flavor::Mariadb => format!(
                "CHANGE MASTER TO MASTER_HOST={host}, MASTER_PORT={port}, \
                 MASTER_USER={user}, MASTER_PASSWORD={password}, \
                 MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1"
            ),
        }
    }

    /// Creates or updates the replication account with least privilege: what
    /// replication needs and, on MySQL, what a CLONE donor needs.
    pub fn ensure_replication_user(self, user: &str, password: &str) -> Vec<String> {
        let (u, p) = (quote(user), quote(password));
        let privileges = match self {
            Flavor::Mysql => "REPLICATION SLAVE, BACKUP_ADMIN",
            Flavor::Mariadb => "REPLICATION SLAVE, BINLOG MONITOR",
        };
        vec![
            format!("CREATE USER IF NOT EXISTS {u}@'%' IDENTIFIED BY {p}"),
            format!("ALTER USER {u}@'%' IDENTIFIED BY {p}"),
            format!("GRANT {privileges} ON *.* TO {u}@'%'"),
        ]
    }

    /// Sets the position a freshly cloned MariaDB replica starts from.
    pub fn set_start_position(self, gtid: &str) -> Option<String> {
        match self {
            Flavor::Mysql => None,
            Flavor::Mariadb => Some(format!("SET GLOBAL gtid_slave_pos={}", quote(gtid))),
        }
    }

    /// The names of the status columns, which differ by flavour and version.
    pub fn column<'a>(self, col: StatusColumn) -> &'a [&'a str] {
        use StatusColumn::*;
        match col {
            IoRunning => &["Replica_IO_Running", "Slave_IO_Running"],
            SqlRunning => &["Replica_SQL_Running", "Slave_SQL_Running"],
            Lag => &["Seconds_Behind_Source", "Seconds_Behind_Master"],
            SourceHost => &["Source_Host", "Master_Host"],
            SourcePort => &["Source_Port", "Master_Port"],
            SourceUser => &["Source_User", "Master_User"],
            IoErrno => &["Last_IO_Errno"],
            IoError => &["Last_IO_Error"],
            SqlErrno => &["Last_SQL_Errno"],
            SqlError => &["Last_SQL_Error"],
            GtidMode => &["Auto_Position", "Using_Gtid"],
            RetrievedGtid => &["Retrieved_Gtid_Set", "Gtid_IO_Pos"],
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum StatusColumn {
    IoRunning,
    SqlRunning,
    Lag,
    SourceHost,
    SourcePort,
    SourceUser,
    IoErrno,
    IoError,
    SqlErrno,
    SqlError,
    GtidMode,
    RetrievedGtid,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(host: &str) -> Identity {
        Identity::new(host, "mysql-h.db.svc.cluster.local", 100).unwrap()
    }

    fn settings(cnf: &str) -> Vec<&str> {
        cnf.lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with('['))
            .collect()
    }

    #[test]
    fn mysql_master_cnf() {
        let cnf = Flavor::Mysql.render_cnf(&id("mysql-0"));
        assert!(cnf.contains("[mysqld]\n"));
        let s = settings(&cnf);
        for want in [
            "server_id=100",
            "report_host=mysql-0.mysql-h.db.svc.cluster.local",
            "gtid_mode=ON",
            "enforce_gtid_consistency=ON",
            "log_bin=binlog",
            "relay_log=relay",
            "plugin_load_add=mysql_clone.so",
        ] {
            assert!(s.contains(&want), "missing {want} in\n{cnf}");
        }
        assert!(s.contains(&"read_only=ON"), "{cnf}");
        assert!(
            !cnf.contains("super_read_only"),
            "root must be able to initialise it\n{cnf}"
        );
        assert!(!cnf.contains("gtid_strict_mode"), "{cnf}");
    }

    #[test]
    fn mysql_replica_cnf_is_super_read_only() {
        let cnf = Flavor::Mysql.render_cnf(&id("mysql-2"));
        let s = settings(&cnf);
        assert!(s.contains(&"server_id=102"));
        assert!(s.contains(&"super_read_only=ON"));
        assert!(s.contains(&"read_only=ON"));
    }

    #[test]
    fn mariadb_cnf() {
        let master = Flavor::Mariadb.render_cnf(&id("mysql-0"));
        let replica = Flavor::Mariadb.render_cnf(&id("mysql-1"));
        for cnf in [&master, &replica] {
            let s = settings(cnf);
            for want in [
                "gtid_strict_mode=ON",
                "log_slave_updates=ON",
                "log_bin=binlog",
                "relay_log=relay",
            ] {
                assert!(s.contains(&want), "missing {want} in\n{cnf}");
            }
            assert!(!cnf.contains("gtid_mode"), "{cnf}");
            assert!(!cnf.contains("super_read_only"), "{cnf}");
            assert!(!cnf.contains("clone"), "{cnf}");
        }
        assert!(settings(&master).contains(&"read_only=ON"));
        assert!(settings(&replica).contains(&"read_only=ON"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote("it's"), "'it''s'");
        assert_eq!(quote(r"a\b"), r"'a\\b'");
    }

    #[test]
    fn change_source_uses_gtid_and_short_retry() {
        let src = Source {
            host: "mysql-0.h",
            port: 3306,
            user: "repl",
            password: "p'w",
        };
        let my = Flavor::Mysql.change_source(&src);
        assert!(my.contains("SOURCE_AUTO_POSITION=1"), "{my}");
        assert!(my.contains("SOURCE_CONNECT_RETRY=1"), "{my}");
        assert!(my.contains("SOURCE_PASSWORD='p''w'"), "{my}");
        let ma = Flavor::Mariadb.change_source(&src);
        assert!(ma.contains("MASTER_USE_GTID=slave_pos"), "{ma}");
        assert!(ma.contains("MASTER_CONNECT_RETRY=1"), "{ma}");
    }

    #[test]
    fn detects_flavor() {
        assert_eq!(
            Flavor::from_version("mysqld  Ver 10.11.6-MariaDB-0+deb12u1 for debian-linux-gnu"),
            Flavor::Mariadb
        );
        assert_eq!(Flavor::from_version("10.11.6-MariaDB-log"), Flavor::Mariadb);
        assert_eq!(
            Flavor::from_version("/usr/sbin/mysqld  Ver 9.7.0 for Linux on x86_64"),
            Flavor::Mysql
        );
    }
}
