//! The one seam between MySQL and MariaDB. [`Flavor`] is the only place that
//! chooses an engine: every method dispatches to [`mysql`] or [`mariadb`],
//! which hold each engine's server settings, SQL, GTID arithmetic and clone.
//! Everything outside this folder is flavour-blind.

pub mod binlog;
pub mod clone;
pub mod mariadb;
pub mod mysql;
pub mod mysqld;
pub mod replication;
pub mod xbstream;

use std::fmt::Write as _;
use std::path::PathBuf;

use bytes::Bytes;
use mysql_async::Conn;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::datadir::CloneInfo;
use crate::error::Result;
use crate::pod::{Identity, Role};
use crate::secret::Secret;
use clone::{Request, StreamJob};
use replication::{GtidCheck, ReplicaFacts, SemiSync, Source};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

impl std::str::FromStr for Flavor {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mysql" => Ok(Flavor::Mysql),
            "mariadb" => Ok(Flavor::Mariadb),
            other => Err(format!("{other:?} is not a flavour: mysql or mariadb")),
        }
    }
}

/// What a clone needs to prove who it is, by engine: a MariaDB clone cannot
/// be asked for without a token, nor a MySQL one without both passwords.
#[derive(Debug, Clone)]
pub enum CloneCredentials {
    /// The CLONE plugin logs in to the donor as the replication user; the
    /// copy is started once as root (the donor's accounts came along).
    Mysql { root: Secret, replication: Secret },
    /// The donor's sidecar streams its backup to whoever holds the token.
    Mariadb { token: Secret },
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

    /// Asks the server binary which flavour it is.
    pub async fn detect(binary: &std::path::Path) -> Result<Flavor> {
        Ok(Flavor::from_version(&mysqld::version(binary).await?))
    }

    /// The server binary's usual name.
    pub fn server_binary(self) -> PathBuf {
        match self {
            Flavor::Mysql => "mysqld".into(),
            Flavor::Mariadb => "mariadbd".into(),
        }
    }

    /// The credentials a clone on this engine needs, from those configured;
    /// `Err` names the first one missing.
    pub fn clone_credentials(
        self,
        root: Option<Secret>,
        replication: Option<Secret>,
        token: Option<Secret>,
    ) -> std::result::Result<CloneCredentials, MissingCredential> {
        match self {
            Flavor::Mysql => Ok(CloneCredentials::Mysql {
                root: root.ok_or(MissingCredential::RootPassword)?,
                replication: replication.ok_or(MissingCredential::ReplicationPassword)?,
            }),
            Flavor::Mariadb => Ok(CloneCredentials::Mariadb {
                token: token.ok_or(MissingCredential::CloneToken)?,
            }),
        }
    }

    /// Whether the sidecar serves the clone stream (`/clone`) on this engine.
    pub fn serves_clone_stream(self) -> bool {
        match self {
            Flavor::Mysql => false,
            Flavor::Mariadb => true,
        }
    }

    /// Starts the clone stream a recipient pulls from `/clone`; `None` on an
    /// engine whose recipients clone otherwise (MySQL: the CLONE plugin).
    pub fn start_clone_stream(self, job: StreamJob) -> Option<Result<mpsc::Receiver<Bytes>>> {
        match self {
            Flavor::Mysql => None,
            Flavor::Mariadb => Some(mariadb::backup::start(job)),
        }
    }

    /// Starts a backup of the local server: its copy, framed as a clone
    /// stream is, made by the engine's own consistent copy (MariaDB:
    /// `mariadb-backup`; MySQL: the CLONE plugin's local clone).
    pub fn start_backup_stream(self, job: StreamJob) -> Result<mpsc::Receiver<Bytes>> {
        match self {
            Flavor::Mysql => mysql::backup::start(job),
            Flavor::Mariadb => mariadb::backup::start(job),
        }
    }

    /// The files of a backup's xbstream that hold its GTID position (read
    /// as it passes to the bucket).
    pub fn backup_position_files(self) -> &'static [&'static str] {
        match self {
            Flavor::Mysql => &[],
            Flavor::Mariadb => mariadb::clone::BINLOG_INFO,
        }
    }

    /// The GTID position of the backup just made. MariaDB: the copy's own,
    /// from the files [`Flavor::backup_position_files`] named (`files`).
    /// MySQL: `before`, the server's executed set read before the copy
    /// began: every transaction of it is in the copy, which may hold later
    /// ones (a local clone's exact set is known once the copy first starts,
    /// which a restore does; a replay of binary logs on it skips what it holds).
    pub fn backup_gtid(
        self,
        files: &std::collections::BTreeMap<String, Vec<u8>>,
        before: &str,
    ) -> Result<String> {
        match self {
            Flavor::Mysql => Ok(before.replace('\n', "")),
            Flavor::Mariadb => mariadb::clone::BINLOG_INFO
                .iter()
                .find_map(|name| files.get(*name))
                .map(|text| mariadb::clone::parse_binlog_info(&String::from_utf8_lossy(text)))
                .ok_or_else(|| {
                    crate::error::Error::Other(format!(
                        "the backup holds no binary log position ({})",
                        mariadb::clone::BINLOG_INFO.join(" nor ")
                    ))
                }),
        }
    }

    /// The server settings init writes to `<conf-dir>/mysql-sts.cnf`.
    /// `restart`: the datadir holds data (the replication account among
    /// it), so a master's side of semi-sync is on from its first commit;
    /// on a first start its sidecar switches it on once it made the account.
    pub fn render_cnf(self, id: &Identity, semi_sync: Option<&SemiSync>, restart: bool) -> String {
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
        // What a replica received (and, under semi-sync, acknowledged) is
        // on disk before it says so, and survives a crash: its sidecar
        // applies it before the replica fetches more (MariaDB's GTID mode
        // throws the relay log away when the fetching thread starts).
        s.push_str("relay_log_recovery=OFF\nsync_relay_log=1\n");
        // Every pod starts read-only, the master too: its sidecar makes it
        // writable once it has checked it (replication user, GTID state).
        s.push_str(&match self {
            Flavor::Mysql => mysql::cnf(id.role),
            Flavor::Mariadb => mariadb::cnf(),
        });
        // The master's binary logs go only when the agent's retention fence
        // says no replica needs them.
        if id.role == Role::Master {
            s.push_str(match self {
                Flavor::Mysql => mysql::NO_SERVER_EXPIRY,
                Flavor::Mariadb => mariadb::NO_SERVER_EXPIRY,
            });
        }
        if let Some(semi) = semi_sync {
            s.push_str(&match self {
                Flavor::Mysql => mysql::semi_sync_cnf(id.role, semi, restart),
                Flavor::Mariadb => mariadb::semi_sync_cnf(id.role, semi, restart),
            });
        }
        s
    }

    /// The config line that keeps replication from starting with the server:
    /// a replica resumes only once its sidecar has compared it with the
    /// master, so data that diverged takes nothing.
    pub fn skip_replica_start(self) -> &'static str {
        match self {
            Flavor::Mysql => mysql::SKIP_REPLICA_START,
            Flavor::Mariadb => mariadb::SKIP_REPLICA_START,
        }
    }

    /// The query that answers 1 when the master side of semi-synchronous
    /// replication is on.
    pub fn semi_sync_source_query(self) -> &'static str {
        match self {
            Flavor::Mysql => mysql::SEMI_SYNC_SOURCE_ENABLED,
            Flavor::Mariadb => mariadb::SEMI_SYNC_SOURCE_ENABLED,
        }
    }

    /// How many replicas' acknowledgements a commit waits for under `s`
    /// (MariaDB always waits for one).
    pub fn semi_sync_acks(self, s: &SemiSync) -> u32 {
        match self {
            Flavor::Mysql => s.wait_for.max(1),
            Flavor::Mariadb => 1,
        }
    }

    /// The master side's semi-synchronous state, from its status variables.
    pub async fn semi_sync_state(
        self,
        conn: &mut Conn,
        s: &SemiSync,
    ) -> Result<replication::SemiSyncState> {
        let enabled = crate::net::sql::scalar(conn, self.semi_sync_source_query()).await? == "1";
        let rows =
            crate::net::sql::rows(conn, "SHOW GLOBAL STATUS LIKE 'Rpl\\_semi\\_sync\\_%'").await?;
        let vars = rows.iter().filter_map(|r| {
            Some((
                r.get("Variable_name")?.as_deref()?,
                r.get("Value")?.as_deref()?,
            ))
        });
        Ok(replication::SemiSyncState::from_status(
            vars,
            enabled,
            self.semi_sync_acks(s),
            s,
        ))
    }

    pub fn enable_semi_sync_source(self) -> &'static str {
        match self {
            Flavor::Mysql => mysql::ENABLE_SEMI_SYNC_SOURCE,
            Flavor::Mariadb => mariadb::ENABLE_SEMI_SYNC_SOURCE,
        }
    }

    /// Statements that make the server read-only (for everyone the server
    /// allows) or writable.
    pub fn set_read_only(self, on: bool) -> Vec<String> {
        match self {
            Flavor::Mysql => mysql::set_read_only(on),
            Flavor::Mariadb => mariadb::set_read_only(on),
        }
    }

    /// The query that answers 1 when the server is read-only in the sense that
    /// matters for `role`.
    pub fn read_only_query(self, role: Role) -> &'static str {
        match self {
            Flavor::Mysql => mysql::read_only_query(role),
            Flavor::Mariadb => mariadb::READ_ONLY,
        }
    }

    pub fn gtid_executed_query(self) -> &'static str {
        match self {
            Flavor::Mysql => mysql::GTID_EXECUTED,
            Flavor::Mariadb => mariadb::GTID_EXECUTED,
        }
    }

    /// The query answering the heartbeats a replica received and their period.
    pub fn heartbeats_query(self) -> &'static str {
        match self {
            Flavor::Mysql => mysql::HEARTBEATS,
            Flavor::Mariadb => mariadb::HEARTBEATS,
        }
    }

    pub fn replica_status_query(self) -> &'static str {
        match self {
            Flavor::Mysql => mysql::REPLICA_STATUS,
            Flavor::Mariadb => mariadb::REPLICA_STATUS,
        }
    }

    pub fn stop_replica(self) -> &'static str {
        match self {
            Flavor::Mysql => mysql::STOP_REPLICA,
            Flavor::Mariadb => mariadb::STOP_REPLICA,
        }
    }

    pub fn reset_replica_all(self) -> &'static str {
        match self {
            Flavor::Mysql => mysql::RESET_REPLICA_ALL,
            Flavor::Mariadb => mariadb::RESET_REPLICA_ALL,
        }
    }

    /// Starts the applier alone, on what the relay log holds. MariaDB in
    /// GTID mode throws the relay log away when replication starts with
    /// both threads stopped: its applier is started by position, from where
    /// it stopped in the relay log, and replication is pointed at the master
    /// by GTID again once that is applied.
    pub async fn apply_relay_log(self, conn: &mut Conn) -> Result<()> {
        use crate::net::sql;
        match self {
            Flavor::Mysql => sql::exec(conn, "START REPLICA SQL_THREAD").await,
            Flavor::Mariadb => {
                if let Some((file, pos)) = mariadb::relay_log_resume(conn).await? {
                    sql::exec(
                        conn,
                        &format!(
                            "CHANGE MASTER TO MASTER_USE_GTID=no, RELAY_LOG_FILE={}, RELAY_LOG_POS={pos}",
                            sql::quote(&file)
                        ),
                    )
                    .await?;
                }
                sql::exec(conn, "START SLAVE SQL_THREAD").await
            }
        }
    }

    pub fn start_replica(self) -> &'static str {
        match self {
            Flavor::Mysql => mysql::START_REPLICA,
            Flavor::Mariadb => mariadb::START_REPLICA,
        }
    }

    /// Points the replica at `src` with GTID auto-positioning and a short
    /// connect retry, so that a master restart costs seconds.
    pub fn change_source(self, src: &Source<'_>) -> String {
        match self {
            Flavor::Mysql => mysql::change_source(src),
            Flavor::Mariadb => mariadb::change_source(src),
        }
    }

    /// The statements that create or update the replication account with
    /// least privilege. Each pod runs them on its own server, unlogged
    /// ([`Flavor::run_account_statements`]): a copy carries the account, and
    /// a logged change would wait, under semi-sync, for replicas that can
    /// log in only once it is made. MariaDB is given the hash, made here, so
    /// that no statement, and no server log, ever holds the password in clear.
    pub fn ensure_replication_user(self, user: &str, password: &str) -> Vec<String> {
        use crate::net::sql::quote;
        let (privileges, identified) = match self {
            Flavor::Mysql => (
                mysql::REPLICATION_PRIVILEGES,
                format!("IDENTIFIED BY {}", quote(password)),
            ),
            Flavor::Mariadb => (
                mariadb::REPLICATION_PRIVILEGES,
                format!(
                    "IDENTIFIED BY PASSWORD {}",
                    quote(&mariadb::native_password_hash(password))
                ),
            ),
        };
        let u = quote(user);
        vec![
            format!("CREATE USER IF NOT EXISTS {u}@'%' {identified}"),
            format!("ALTER USER {u}@'%' {identified}"),
            format!("GRANT {privileges} ON *.* TO {u}@'%'"),
        ]
    }

    /// Runs account statements on this server alone: unlogged (every pod
    /// keeps its own accounts), and on a replica too. MySQL's
    /// `super_read_only` is lifted for them (`read_only` stays on: only
    /// accounts with SUPER could write meanwhile); MariaDB's `read_only`
    /// does not hold root back.
    pub async fn run_account_statements(self, conn: &mut Conn, stmts: &[String]) -> Result<()> {
        use crate::net::sql;
        sql::exec(conn, "SET SESSION sql_log_bin = 0").await?;
        let lifted = self == Flavor::Mysql
            && sql::scalar(conn, "SELECT @@global.super_read_only").await? == "1";
        if lifted {
            sql::exec(conn, "SET GLOBAL super_read_only = OFF").await?;
        }
        let mut done = Ok(());
        for stmt in stmts {
            done = sql::exec(conn, stmt).await;
            if done.is_err() {
                break;
            }
        }
        if lifted {
            sql::exec(conn, "SET GLOBAL super_read_only = ON").await?;
        }
        done
    }

    /// Sets the password of every `root` account of this server (unlogged,
    /// on a replica too), keeping each account's authentication plugin.
    pub async fn set_root_password(self, conn: &mut Conn, password: &str) -> Result<()> {
        use crate::net::sql::{self, quote};
        let hosts = sql::rows(conn, "SELECT Host FROM mysql.user WHERE User = 'root'").await?;
        let stmts: Vec<String> = hosts
            .iter()
            .filter_map(|row| row.get("Host").cloned().flatten())
            .map(|host| match self {
                Flavor::Mysql => format!(
                    "ALTER USER 'root'@{} IDENTIFIED BY {}",
                    quote(&host),
                    quote(password)
                ),
                Flavor::Mariadb => format!(
                    "SET PASSWORD FOR 'root'@{} = PASSWORD({})",
                    quote(&host),
                    quote(password)
                ),
            })
            .collect();
        self.run_account_statements(conn, &stmts).await
    }

    /// The statement that makes the server load its certificate, key and CA
    /// files again (renewed in place).
    pub fn reload_tls(self) -> &'static str {
        match self {
            Flavor::Mysql => "ALTER INSTANCE RELOAD TLS",
            Flavor::Mariadb => "FLUSH SSL",
        }
    }

    /// Whether `user` logs in with `password` to the server behind `conn`
    /// and holds the replication privileges: then nothing need be written.
    /// (A write on a master whose commits wait for a semi-synchronous
    /// acknowledgement waits as well; MySQL's account statements hold the
    /// lock that every login takes meanwhile.)
    pub async fn replication_user_in_place(self, conn: &Conn, user: &str, password: &str) -> bool {
        let privileges = match self {
            Flavor::Mysql => mysql::REPLICATION_PRIVILEGES,
            Flavor::Mariadb => mariadb::REPLICATION_PRIVILEGES,
        };
        let opts = mysql_async::OptsBuilder::from_opts(conn.opts().clone())
            .user(Some(user))
            .pass(Some(password));
        let check = async {
            let mut c = Conn::new(opts).await.ok()?;
            let grants: Vec<String> = mysql_async::prelude::Queryable::query(&mut c, "SHOW GRANTS")
                .await
                .ok()?;
            let _ = c.disconnect().await;
            let grants = grants.join("\n").to_ascii_uppercase();
            Some(privileges.split(", ").all(|p| grants.contains(p)))
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), check)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    }

    /// Sets the position a freshly cloned replica starts from, where the
    /// engine needs to be told (MySQL's clone carries it).
    pub fn set_start_position(self, gtid: &str) -> Option<String> {
        match self {
            Flavor::Mysql => None,
            Flavor::Mariadb => Some(mariadb::set_start_position(gtid)),
        }
    }

    /// How far a server got, to pick the most advanced peer: MySQL
    /// transactions, MariaDB the sum of the domains' sequence numbers.
    pub fn gtid_weight(self, set: &str) -> u64 {
        match self {
            Flavor::Mysql => mysql::gtid::count(set),
            Flavor::Mariadb => mariadb::gtid::weight(set),
        }
    }

    /// Whether a server at `a` holds every transaction of one at `b`.
    pub fn gtid_contains(self, a: &str, b: &str) -> bool {
        match self {
            Flavor::Mysql => mysql::gtid::contains(a, b),
            Flavor::Mariadb => mariadb::gtid::contains(a, b),
        }
    }

    /// The `server_id` a master starting a new history over data holding
    /// `held` must take, so that no GTID it issues names a transaction a peer
    /// holds for other data. `None` where GTIDs are already unique to the
    /// data (MySQL: a new datadir or clone has a new `server_uuid`).
    pub fn new_history_server_id(self, now: u64, held: &str) -> Option<u32> {
        match self {
            Flavor::Mysql => None,
            Flavor::Mariadb => Some(mariadb::gtid::new_history_server_id(now, held)),
        }
    }

    /// A server's set `a` without the errant transactions `errant` (its
    /// own writes, which the master never had).
    pub fn gtid_subtract(self, a: &str, errant: &str) -> String {
        match self {
            Flavor::Mysql => mysql::gtid::subtract(a, errant),
            Flavor::Mariadb => mariadb::gtid::subtract(a, errant),
        }
    }

    /// The writes a replica made itself, read off its own set where the
    /// engine's GTIDs name their server (MariaDB: a replica's `server_id`
    /// is never a master's); `None` where they cannot be told from the set
    /// alone or there are none.
    pub fn own_writes(self, set: &str, server_id: u32) -> Option<String> {
        match self {
            Flavor::Mysql => None,
            Flavor::Mariadb => {
                Some(mariadb::gtid::by_server(set, server_id).join(",")).filter(|w| !w.is_empty())
            }
        }
    }

    /// What a server that executed `a` and received `b` holds.
    pub fn gtid_union(self, a: &str, b: &str) -> String {
        match self {
            Flavor::Mysql => mysql::gtid::union(a, b),
            Flavor::Mariadb => mariadb::gtid::union(a, b),
        }
    }

    /// How many transactions (MySQL) or GTIDs (MariaDB) a set lists.
    pub fn gtid_count(self, set: &str) -> u64 {
        match self {
            Flavor::Mysql => mysql::gtid::count(set),
            Flavor::Mariadb => mariadb::gtid::count(set),
        }
    }

    /// The transactions `ours` has that the master has not, and those the
    /// master has purged that `ours` lacks.
    /// What a replica's comparison needs of the local server.
    pub async fn replica_facts(self, local: &mut Conn) -> Result<ReplicaFacts> {
        match self {
            Flavor::Mysql => Ok(ReplicaFacts::default()),
            Flavor::Mariadb => mariadb::replica_facts(local).await,
        }
    }

    /// Compares a replica (`ours`, what it executed, `received` what its
    /// relay log holds beside, and the `facts` read from it) with the
    /// master, asking only the master: a timeout may cut this off, and the
    /// local connection must not be left half-read. What the master purged
    /// is missing only if the replica has neither executed nor received it:
    /// what waits in its relay log it applies without the master.
    /// `binlog_start`: where the master's oldest binary log starts, as its
    /// sidecar published it, if the engine needs it
    /// ([`Flavor::compares_with_binlog_start`]).
    pub async fn compare_with_master(
        self,
        facts: &ReplicaFacts,
        master: &mut Conn,
        ours: &str,
        received: &str,
        binlog_start: Option<&str>,
    ) -> Result<GtidCheck> {
        let held = self.gtid_union(ours, received);
        match self {
            Flavor::Mysql => mysql::compare_with_master(master, ours, &held).await,
            Flavor::Mariadb => {
                mariadb::compare_with_master(facts, master, &held, binlog_start).await
            }
        }
    }

    /// Whether a replica's comparison with the master needs where the
    /// master's oldest binary log starts (MariaDB, which has no
    /// `gtid_purged`; reading it from the server waits on a commit that
    /// waits for a semi-synchronous acknowledgement).
    pub fn compares_with_binlog_start(self) -> bool {
        self == Flavor::Mariadb
    }

    /// The GTIDs logged before binary log `name` began, as a set this
    /// engine's `gtid_contains` takes.
    pub async fn binlog_start(self, conn: &mut Conn, name: &str) -> Result<String> {
        match self {
            Flavor::Mysql => mysql::binlog_start(conn, name).await,
            Flavor::Mariadb => mariadb::binlog_start(conn, name).await,
        }
    }

    /// The name of the master's history its binary logs belong to, for the
    /// archive: log names start again in another (MySQL: the server's UUID,
    /// which each copy gets anew; MariaDB: its `server_id`, which a master
    /// starting a new history takes anew).
    pub async fn history_id(self, conn: &mut Conn) -> Result<String> {
        let query = match self {
            Flavor::Mysql => "SELECT @@global.server_uuid",
            Flavor::Mariadb => "SELECT CONCAT('server-', @@global.server_id)",
        };
        crate::net::sql::scalar(conn, query).await
    }

    /// The tools a restore replays archived binary logs with: the reader
    /// and the client it pipes into.
    pub fn replay_tools(self) -> (&'static str, &'static str) {
        match self {
            Flavor::Mysql => ("mysqlbinlog", "mysql"),
            Flavor::Mariadb => ("mariadb-binlog", "mariadb"),
        }
    }

    /// The reader's arguments that leave out what a copy at `from` holds.
    pub fn replay_from(self, from: &str) -> Vec<String> {
        if from.is_empty() {
            return Vec::new();
        }
        match self {
            // Transactions of the set are skipped (the server would skip
            // them too, by their GTIDs).
            Flavor::Mysql => vec![format!("--exclude-gtids={from}")],
            // Reading starts after the position in each domain, in every file.
            Flavor::Mariadb => vec![format!("--start-position={from}")],
        }
    }

    /// The reader's arguments that stop a replay of `files` (in order)
    /// right after transaction `gtid`. MariaDB's reader stops at a GTID
    /// itself; MySQL's only at a byte position of the last file, which is
    /// found there: the start of the transaction after `gtid` (none when
    /// `gtid` is its last).
    pub async fn replay_to_gtid(
        self,
        files: &[std::path::PathBuf],
        gtid: &str,
    ) -> Result<Vec<String>> {
        match self {
            Flavor::Mariadb => Ok(vec![format!("--stop-position={gtid}")]),
            Flavor::Mysql => {
                let last = files.last().ok_or_else(|| {
                    crate::error::Error::Other(format!("no binary log to replay to {gtid}"))
                })?;
                Ok(mysql::binlog_end_of(last, gtid)
                    .await?
                    .map(|at| vec![format!("--stop-position={at}")])
                    .unwrap_or_default())
            }
        }
    }

    /// Whether `gtid` names one transaction as this engine writes them.
    pub fn is_one_gtid(self, gtid: &str) -> bool {
        match self {
            Flavor::Mysql => gtid
                .split_once(':')
                .is_some_and(|(uuid, n)| uuid.len() == 36 && n.parse::<u64>().is_ok_and(|n| n > 0)),
            Flavor::Mariadb => {
                let parts: Vec<&str> = gtid.split('-').collect();
                parts.len() == 3 && parts.iter().all(|p| p.parse::<u64>().is_ok())
            }
        }
    }

    /// What a copy that replayed binary logs runs afterwards so that the
    /// position it says it holds is the one its binary log holds: MariaDB
    /// reports `gtid_slave_pos` (the backed-up replica's, from before the
    /// replay) as the current position of transactions another server_id
    /// wrote, and a replica cloned from this master would start there.
    pub fn after_replay(self) -> &'static [&'static str] {
        match self {
            Flavor::Mysql => &[],
            Flavor::Mariadb => &["SET GLOBAL gtid_slave_pos = @@global.gtid_binlog_pos"],
        }
    }

    /// The query answering what the binary log holds, in the form
    /// [`Flavor::binlog_start`] gives a log's start.
    pub fn binlog_position_query(self) -> &'static str {
        match self {
            Flavor::Mysql => mysql::GTID_EXECUTED,
            Flavor::Mariadb => "SELECT @@global.gtid_binlog_pos",
        }
    }

    /// The statements that stop the server's own binary log expiry, from its
    /// settings `vars` (those of [`binlog::EXPIRY_SETTINGS`]).
    pub fn stop_server_expiry(self, vars: &[(String, String)]) -> Vec<String> {
        match self {
            Flavor::Mysql => mysql::stop_server_expiry(vars),
            Flavor::Mariadb => mariadb::stop_server_expiry(vars),
        }
    }

    /// On a master whose data came from a clone at `cloned`: whatever the
    /// engine needs so that it does not reuse GTIDs its replicas hold.
    pub async fn continue_sequence(self, conn: &mut Conn, cloned: &str) -> Result<()> {
        match self {
            Flavor::Mysql => Ok(()),
            Flavor::Mariadb => mariadb::continue_sequence(conn, cloned).await,
        }
    }
}

impl CloneCredentials {
    /// Clones into `<staging>/data` on the engine these credentials are for,
    /// and returns that directory and what it holds.
    pub async fn clone(&self, req: &Request<'_>) -> Result<(PathBuf, CloneInfo)> {
        match self {
            CloneCredentials::Mysql { root, replication } => {
                mysql::clone::clone(req, root, replication).await
            }
            CloneCredentials::Mariadb { token } => mariadb::clone::clone(req, token).await,
        }
    }

    /// Receives a copy framed as a clone stream from `body` (a backup in a
    /// bucket) into `<staging>/data`, as [`CloneCredentials::clone`] does.
    pub async fn receive(
        &self,
        req: &Request<'_>,
        body: futures_util::stream::BoxStream<'_, std::result::Result<Bytes, String>>,
        estimate: Option<u64>,
    ) -> Result<(PathBuf, CloneInfo)> {
        let started = std::time::Instant::now();
        match self {
            CloneCredentials::Mysql { root, .. } => {
                mysql::clone::receive(req, root, body, estimate, started).await
            }
            CloneCredentials::Mariadb { .. } => {
                mariadb::clone::receive(req, body, estimate, started).await
            }
        }
    }

    /// After a clone this recipient gave up while the donor still worked on
    /// it: ends what the donor keeps of it. A MySQL donor keeps a clone
    /// whose recipient went away while it waited for prepared transactions
    /// for good, and refuses every later one (only one runs at a time); a
    /// MariaDB donor's stream ends with its connection.
    pub async fn abandon(&self, req: &Request<'_>) {
        if let CloneCredentials::Mysql { replication, .. } = self
            && let Err(e) = mysql::clone::end_donor_clone(req, replication).await
        {
            tracing::warn!(donor = %req.donor.name, error = %e, "cannot end the clone given up on the donor; it ends it by itself only once its network timeout passes");
        }
    }
}

/// A credential a clone needs that is not configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingCredential {
    RootPassword,
    ReplicationPassword,
    CloneToken,
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
        let cnf = Flavor::Mysql.render_cnf(&id("mysql-0"), None, false);
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
        let cnf = Flavor::Mysql.render_cnf(&id("mysql-2"), None, false);
        let s = settings(&cnf);
        assert!(s.contains(&"server_id=102"));
        assert!(s.contains(&"super_read_only=ON"));
        assert!(s.contains(&"read_only=ON"));
    }

    #[test]
    fn mariadb_cnf() {
        let master = Flavor::Mariadb.render_cnf(&id("mysql-0"), None, false);
        let replica = Flavor::Mariadb.render_cnf(&id("mysql-1"), None, false);
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
    fn semi_sync_cnf() {
        let semi = SemiSync {
            wait_for: 2,
            timeout: None,
        };
        for flavor in [Flavor::Mysql, Flavor::Mariadb] {
            let plain = flavor.render_cnf(&id("mysql-1"), None, false);
            assert!(!plain.contains("semi"), "{plain}");
            let master = flavor.render_cnf(&id("mysql-0"), Some(&semi), false);
            let replica = flavor.render_cnf(&id("mysql-1"), Some(&semi), false);
            for cnf in [&master, &replica] {
                assert!(cnf.contains("wait_point=AFTER_SYNC"), "{cnf}");
                assert!(
                    cnf.contains("_timeout=4294967295"),
                    "never falls back: {cnf}"
                );
            }
            assert!(!master.contains("replica_enabled") && !master.contains("slave_enabled"));
            assert!(replica.contains("replica_enabled=ON") || replica.contains("slave_enabled=ON"));
            // On a first start the master side is switched on by the
            // sidecar (after it made the account); on data, from the start.
            assert!(!master.contains("source_enabled") && !master.contains("master_enabled"));
            let restarted = flavor.render_cnf(&id("mysql-0"), Some(&semi), true);
            assert!(
                restarted.contains("rpl_semi_sync_source_enabled=ON")
                    || restarted.contains("rpl_semi_sync_master_enabled=ON"),
                "{restarted}"
            );
            let replica = flavor.render_cnf(&id("mysql-1"), Some(&semi), true);
            assert!(!replica.contains("source_enabled") && !replica.contains("master_enabled"));
        }
        let mysql = Flavor::Mysql.render_cnf(&id("mysql-0"), Some(&semi), false);
        assert!(mysql.contains("wait_for_replica_count=2"), "{mysql}");
        let fallback = SemiSync {
            wait_for: 1,
            timeout: Some(std::time::Duration::from_secs(10)),
        };
        assert!(
            Flavor::Mariadb
                .render_cnf(&id("mysql-0"), Some(&fallback), false)
                .contains("master_timeout=10000")
        );
    }

    #[test]
    fn change_source_uses_gtid_and_short_retry() {
        let src = Source {
            host: "mysql-0.h",
            port: 3306,
            user: "repl",
            password: "p'w",
            ca: None,
        };
        let my = Flavor::Mysql.change_source(&src);
        assert!(my.contains("SOURCE_AUTO_POSITION=1"), "{my}");
        assert!(my.contains("SOURCE_CONNECT_RETRY=1"), "{my}");
        assert!(my.contains("SOURCE_PASSWORD='p''w'"), "{my}");
        assert!(!my.contains("VERIFY"), "{my}");
        let ma = Flavor::Mariadb.change_source(&src);
        assert!(ma.contains("MASTER_USE_GTID=slave_pos"), "{ma}");
        assert!(ma.contains("MASTER_CONNECT_RETRY=1"), "{ma}");
        assert!(!ma.contains("MASTER_SSL"), "{ma}");
        // With a CA: TLS, and the master's certificate verified.
        let verified = Source {
            ca: Some("/tls/ca.pem"),
            ..src
        };
        let my = Flavor::Mysql.change_source(&verified);
        assert!(
            my.contains(
                "SOURCE_SSL=1, SOURCE_SSL_CA='/tls/ca.pem', SOURCE_SSL_VERIFY_SERVER_CERT=1"
            ),
            "{my}"
        );
        let ma = Flavor::Mariadb.change_source(&verified);
        assert!(
            ma.contains(
                "MASTER_SSL=1, MASTER_SSL_CA='/tls/ca.pem', MASTER_SSL_VERIFY_SERVER_CERT=1"
            ),
            "{ma}"
        );
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
