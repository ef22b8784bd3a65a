//! Thin helpers over `mysql_async`: connecting with a deadline, reading rows
//! as text as the server's status commands return them, quoting literals.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Value};

use crate::error::{Error, Result, SqlContext};
use crate::secret::Secret;

/// Every statement the agent sends must answer within this, unless
/// [`set_statement_timeout`] said otherwise.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

static TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// Sets how long every statement may take, once, before the first one.
pub fn set_statement_timeout(t: Duration) {
    let _ = TIMEOUT.set(t.max(Duration::from_secs(1)));
}

fn statement_timeout() -> Duration {
    *TIMEOUT.get().unwrap_or(&STATEMENT_TIMEOUT)
}

/// How to reach a server.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub socket: Option<PathBuf>,
    pub user: String,
    pub password: Option<Secret>,
}

impl Target {
    pub fn describe(&self) -> String {
        match &self.socket {
            Some(s) => format!("{}@{}", self.user, s.display()),
            None => format!("{}@{}:{}", self.user, self.host, self.port),
        }
    }

    pub async fn connect(&self, timeout: Duration) -> Result<Conn> {
        let mut opts = OptsBuilder::default()
            .user(Some(self.user.clone()))
            .pass(self.password.as_ref().map(|p| p.expose().to_owned()))
            .prefer_socket(false)
            .wait_timeout(Some(28_800));
        opts = match &self.socket {
            Some(s) => opts.socket(Some(s.to_string_lossy().into_owned())),
            None => opts.ip_or_hostname(self.host.clone()).tcp_port(self.port),
        };
        let what = || format!("cannot connect to {}", self.describe());
        match tokio::time::timeout(timeout, Conn::new(opts)).await {
            Ok(r) => r.sql_context(what),
            Err(_) => Err(Error::Timeout {
                what: what(),
                after: timeout,
            }),
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_owned()),
    }
}

/// Runs `run` on `conn` for at most the statement timeout. A statement that
/// did not answer in time is not left running on the server, where it would
/// hold its locks and its session (under a semi-sync stall, sessions pile up
/// towards `max_connections`): its connection is killed from a second one,
/// and the caller, given the error, drops `conn`.
async fn bounded<'c, T, F>(
    conn: &'c mut Conn,
    sql: &str,
    run: impl FnOnce(&'c mut Conn) -> F,
) -> Result<T>
where
    F: std::future::Future<Output = std::result::Result<T, mysql_async::Error>> + 'c,
{
    let (id, opts) = (conn.id(), conn.opts().clone());
    let after = statement_timeout();
    match tokio::time::timeout(after, run(conn)).await {
        Ok(r) => r.sql_context(|| format!("statement `{}` failed", redact(sql))),
        Err(_) => {
            let killed = match kill(opts, id).await {
                Ok(()) => "its connection was killed on the server".to_owned(),
                Err(e) => format!("its connection could not be killed ({e})"),
            };
            Err(Error::Timeout {
                what: format!("statement `{}` ({killed})", redact(sql)),
                after,
            })
        }
    }
}

/// Kills connection `id` through a new connection made with `opts`.
async fn kill(opts: mysql_async::Opts, id: u32) -> Result<()> {
    let deadline = Duration::from_secs(5);
    let what = || format!("KILL {id}");
    let run = async {
        let mut c = Conn::new(opts).await?;
        c.query_drop(format!("KILL {id}")).await?;
        c.disconnect().await
    };
    match tokio::time::timeout(deadline, run).await {
        Ok(r) => r.sql_context(what),
        Err(_) => Err(Error::Timeout {
            what: what(),
            after: deadline,
        }),
    }
}

/// Runs a statement that returns no rows.
pub async fn exec(conn: &mut Conn, sql: &str) -> Result<()> {
    bounded(conn, sql, |c| c.query_drop(sql)).await
}

/// Runs a query and returns its rows as column → text.
pub async fn rows(conn: &mut Conn, sql: &str) -> Result<Vec<HashMap<String, Option<String>>>> {
    let rows: Vec<mysql_async::Row> = bounded(conn, sql, |c| c.query(sql)).await?;
    Ok(rows
        .iter()
        .map(|row| {
            row.columns_ref()
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name_str().into_owned(), row.as_ref(i).and_then(text)))
                .collect()
        })
        .collect())
}

/// Runs a query and returns the columns of its first row as text.
pub async fn first_row(conn: &mut Conn, sql: &str) -> Result<Vec<Option<String>>> {
    let rows: Vec<mysql_async::Row> = bounded(conn, sql, |c| c.query(sql)).await?;
    Ok(rows
        .first()
        .map(|row| {
            (0..row.len())
                .map(|i| row.as_ref(i).and_then(text))
                .collect()
        })
        .unwrap_or_default())
}

/// Runs a query and returns the first column of its first row as text
/// (empty for no row or NULL).
pub async fn scalar(conn: &mut Conn, sql: &str) -> Result<String> {
    Ok(column(&first_row(conn, sql).await?, 0))
}

/// Column `i` of a row read by [`first_row`], as text (empty for NULL).
pub fn column(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
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

/// Hides what follows `PASSWORD` or `IDENTIFIED BY` in a statement before it
/// appears in an error or a log line.
pub fn redact(sql: &str) -> String {
    let upper = sql.to_ascii_uppercase();
    for key in ["PASSWORD", "IDENTIFIED BY"] {
        if let Some(i) = upper.find(key) {
            return format!("{} ***", &sql[..i + key.len()].trim_end_matches('='));
        }
    }
    sql.to_owned()
}

#[cfg(test)]
mod tests {
    use super::{quote, redact};

    #[test]
    fn quoting() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote("it's"), "'it''s'");
        assert_eq!(quote(r"a\b"), r"'a\\b'");
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("CHANGE MASTER TO MASTER_HOST='a', MASTER_PASSWORD='x'"),
            "CHANGE MASTER TO MASTER_HOST='a', MASTER_PASSWORD ***"
        );
        assert_eq!(
            redact("CREATE USER 'r'@'%' IDENTIFIED BY 'secret'"),
            "CREATE USER 'r'@'%' IDENTIFIED BY ***"
        );
        assert_eq!(redact("SELECT 1"), "SELECT 1");
        assert!(!redact("clone instance from 'r'@'h':3306 identified by 'pw'").contains("pw"));
    }
}
