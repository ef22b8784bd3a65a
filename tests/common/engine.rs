//! The servers the suite runs, and where each one's files live.

use std::path::PathBuf;

/// Where `scripts/install-test-deps` puts the chroot of a sid engine.
fn chroot(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| default.into())
}

/// The servers the suite proves: MariaDB 10.11 from the host's packages,
/// MariaDB 11.8 and MySQL 9.7 from Debian sid chroots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Mariadb,
    Mariadb11,
    Mysql,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Mariadb => "mariadb",
            Engine::Mariadb11 => "mariadb11",
            Engine::Mysql => "mysql",
        }
    }

    /// The filesystem the pod's processes see: `/` or a chroot.
    pub fn root(self) -> PathBuf {
        match self {
            Engine::Mariadb => "/".into(),
            Engine::Mariadb11 => chroot(
                "MYSQL_STS_TEST_MARIADB11_ROOT",
                "/var/cache/mysql-sts-test/sid-mariadb",
            ),
            Engine::Mysql => chroot("MYSQL_STS_TEST_MYSQL_ROOT", "/var/cache/mysql-sts-test/sid"),
        }
    }

    pub fn in_chroot(self) -> bool {
        self != Engine::Mariadb
    }

    /// The server flavour the agent sees on this engine.
    pub fn flavor(self) -> mysql_sts::engine::Flavor {
        match self {
            Engine::Mariadb | Engine::Mariadb11 => mysql_sts::engine::Flavor::Mariadb,
            Engine::Mysql => mysql_sts::engine::Flavor::Mysql,
        }
    }

    pub fn is_mariadb(self) -> bool {
        self.flavor() == mysql_sts::engine::Flavor::Mariadb
    }

    pub fn server(self) -> &'static str {
        match self.flavor() {
            mysql_sts::engine::Flavor::Mariadb => "/usr/sbin/mariadbd",
            mysql_sts::engine::Flavor::Mysql => "/usr/sbin/mysqld",
        }
    }
}
