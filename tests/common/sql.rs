//! SQL clients of the test servers: connections, single values, checksums.

use std::path::Path;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

pub async fn connect_socket(socket: &Path, password: Option<&str>) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .socket(Some(socket.to_string_lossy().into_owned()))
        .user(Some("root"))
        .pass(password.map(str::to_owned));
    mysql_async::Conn::new(opts).await.unwrap()
}

/// Options for a client connecting to `host`'s server over TCP, as `user`.
pub fn tcp_opts(host: &str, user: &str, password: &str) -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(host.to_owned())
        .tcp_port(3306)
        .user(Some(user.to_owned()))
        .pass(Some(password.to_owned()))
        .prefer_socket(false)
}

pub async fn connect_tcp(host: &str, user: &str, password: &str) -> mysql_async::Conn {
    let opts = tcp_opts(host, user, password);
    let started = Instant::now();
    loop {
        match mysql_async::Conn::new(opts.clone()).await {
            Ok(c) => return c,
            Err(e) if started.elapsed() > Duration::from_secs(30) => {
                panic!("cannot connect to {user}@{host}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

pub async fn scalar(conn: &mut mysql_async::Conn, sql: &str) -> Option<String> {
    let row: Option<mysql_async::Row> = conn.query_first(sql).await.unwrap();
    row.and_then(|r| {
        r.get_opt::<Option<String>, _>(0)
            .and_then(Result::ok)
            .flatten()
    })
}

/// `CHECKSUM TABLE`'s checksum of `table`.
pub async fn checksum(conn: &mut mysql_async::Conn, table: &str) -> String {
    let row: mysql_async::Row = conn
        .query_first(format!("CHECKSUM TABLE {table}"))
        .await
        .unwrap()
        .unwrap();
    let v: Option<String> = row.get(1);
    v.unwrap_or_default()
}
