//! MariaDB recipient: pull the donor sidecar's framed `mariadb-backup` stream,
//! extract it with `mbstream`, verify the trailer, prepare, read the GTID.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tracing::{info, warn};

use crate::datadir::CloneInfo;
use crate::engine::clone::{Request, read_framed, run_dir_for};
use crate::engine::mysqld::Use;
use crate::engine::xbstream;
use crate::error::{Error, Result};
use crate::net::wire;
use crate::secret::Secret;

pub async fn clone(req: &Request<'_>, token: &Secret) -> Result<(PathBuf, CloneInfo)> {
    let donor = &req.donor.name;
    let fail = |why: String| req.fail(why);
    let refused = |why: &str| Error::CloneRefused {
        donor: donor.clone(),
        why: why.to_owned(),
    };
    let started = Instant::now();
    let url = req.http.url(donor, "/clone");
    // A donor that accepts the connection and then says nothing (blackholed)
    // is given up like one whose stream stalls.
    let resp = tokio::time::timeout(
        req.stall_timeout,
        req.http
            .client()
            .get(&url)
            .bearer_auth(token.expose())
            .header(wire::COMPRESSION_HEADER, req.compression.as_str())
            .send(),
    )
    .await
    .map_err(|_| {
        fail(format!(
            "{url} sent no answer within {} s",
            req.stall_timeout.as_secs()
        ))
    })?
    .map_err(|e| fail(format!("cannot reach {url}: {e}")))?;
    match resp.status() {
        s if s.is_success() => {}
        reqwest::StatusCode::UNAUTHORIZED => {
            return Err(refused(
                "the donor refused the clone token (401): every pod must have the same MYSQL_STS_CLONE_TOKEN",
            ));
        }
        s => {
            let body = resp.text().await.unwrap_or_default();
            return Err(fail(format!("the donor answered {s}: {}", body.trim())));
        }
    }

    // The donor tells the size of its datadir: an estimate of the stream.
    let estimate = resp
        .headers()
        .get(wire::ESTIMATE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = resp
        .bytes_stream()
        .map(|r| r.map_err(|e| e.to_string()))
        .boxed();
    receive(req, body, estimate, started).await
}

/// Receives a copy framed as a clone stream (from a donor, or a backup in a
/// bucket) into `<staging>/data`, extracts it with `mbstream`, verifies the
/// trailer, prepares it and reads its GTID position.
pub async fn receive(
    req: &Request<'_>,
    body: BoxStream<'_, std::result::Result<Bytes, String>>,
    estimate: Option<u64>,
    started: Instant,
) -> Result<(PathBuf, CloneInfo)> {
    let donor = &req.donor.name;
    let fail = |why: String| req.fail(why);
    let (data, free) = req.data_dir()?;
    let mut mbstream = Command::new("mbstream")
        .arg("-x")
        .arg("-C")
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            fail(format!(
                "cannot run mbstream: {e}; is mariadb-backup installed?"
            ))
        })?;
    let mut stdin = mbstream.stdin.take().expect("piped");

    let mut progress = crate::progress::Progress::new(donor, estimate);
    // The stream is checked before mbstream writes any of it.
    let mut guard = xbstream::Guard::new(xbstream::Guard::cap_for(estimate, free));
    let (trailer, wire_bytes) = read_framed(body, req.stall_timeout, &mut progress, async |d| {
        guard.check(&d).map_err(|r| r.to_string())?;
        stdin
            .write_all(&d)
            .await
            .map_err(|e| format!("mbstream stopped taking data: {e}"))
    })
    .await
    .map_err(fail)?;
    guard.finish().map_err(|r| fail(r.to_string()))?;
    drop(stdin);
    let out = mbstream
        .wait_with_output()
        .await
        .map_err(|e| fail(format!("mbstream: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "mbstream -x failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let streamed = started.elapsed();
    info!(donor = %donor, bytes = trailer.bytes, crc32 = format!("{:08x}", trailer.crc32), secs = streamed.as_secs_f64(), "stream received and verified");

    let dropped = own_backup_cnf(&data).map_err(fail)?;
    if !dropped.is_empty() {
        warn!(donor = %donor, dropped = ?dropped, "the copy's backup-my.cnf named settings the recipient does not take: prepared without them");
    }
    let out = Command::new("mariadb-backup")
        .arg("--prepare")
        .arg(format!("--target-dir={}", data.display()))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| fail(format!("cannot run mariadb-backup: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "mariadb-backup --prepare failed ({}): {}",
            out.status,
            crate::error::last_lines(&String::from_utf8_lossy(&out.stderr), 5)
        )));
    }
    let gtid = read_gtid(&data).map_err(fail)?;
    if req.for_master {
        continue_sequence_offline(req, &data, &gtid)
            .await
            .map_err(|e| fail(format!("cannot set the copy's binary log state: {e}")))?;
    }
    let info = CloneInfo {
        donor: donor.clone(),
        gtid,
        bytes: trailer.bytes,
        seconds: started.elapsed().as_secs_f64(),
        failed_attempts: 0,
        wire_bytes,
    };
    info!(donor = %donor, gtid = %info.gtid, prepare_secs = (started.elapsed() - streamed).as_secs_f64(), "copy prepared");
    Ok((data, info))
}

/// A master made from a replica's copy has an empty binary log: its next
/// transaction would reuse sequence numbers the replicas hold. Before the
/// server first takes writes (root may write to a read-only MariaDB), a
/// private start of the copy makes its binary log go on from `gtid`.
async fn continue_sequence_offline(req: &Request<'_>, data: &Path, gtid: &str) -> Result<()> {
    if gtid.is_empty() {
        return Ok(());
    }
    let run = run_dir_for("reseed", req.owner)?;
    let server = req
        .binary
        .start(data, &run, Use::Prepare, None, Duration::from_secs(600))
        .await?;
    let mut conn = server.target.connect(Duration::from_secs(10)).await?;
    super::continue_sequence(&mut conn, gtid).await?;
    drop(conn);
    server.shutdown().await?;
    let _ = std::fs::remove_dir_all(&run);
    info!(gtid = %gtid, "the copy's binary log goes on from its position");
    Ok(())
}

/// What `mariadb-backup --prepare` may take from the `backup-my.cnf` that
/// came with the copy: the InnoDB layout the data files were written with.
/// The file is the donor's, and the donor is not trusted beyond its data:
/// no setting that names a place (`innodb_data_home_dir`,
/// `innodb_log_group_home_dir`, `innodb_undo_directory`, ...) and no value
/// that could hold a path is kept.
const PREPARE_SETTINGS: [&str; 9] = [
    "innodb_checksum_algorithm",
    "innodb_data_file_path",
    "innodb_log_file_size",
    "innodb_log_files_in_group",
    "innodb_page_size",
    "innodb_undo_tablespaces",
    "innodb_compression_level",
    "innodb_encrypt_log",
    "innodb_log_block_size",
];

/// The `backup-my.cnf` the recipient prepares with, written from the
/// donor's: the [`PREPARE_SETTINGS`] whose values are plain (letters,
/// digits, `_ : ; . + -`, never `..`), and the undo tablespaces where the
/// copy has them (`./`, as mariadb-backup itself writes). Returns the text
/// and every line of the donor's it left out.
fn prepare_cnf(donor: &str) -> (String, Vec<String>) {
    let mut out = String::from(
        "# Written by mysql-sts from the donor's backup-my.cnf: the settings it takes.\n[mysqld]\n",
    );
    let mut dropped = Vec::new();
    let plain = |v: &str| {
        !v.is_empty()
            && !v.contains("..")
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_:;.+-".contains(c))
    };
    for line in donor.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line == "[mysqld]" {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let key = key.trim().replace('-', "_");
        let value = value.trim();
        if key == "innodb_undo_directory" && value == "./" {
            continue;
        }
        if PREPARE_SETTINGS.contains(&key.as_str()) && plain(value) {
            out.push_str(&format!("{key}={value}\n"));
        } else {
            dropped.push(line.to_owned());
        }
    }
    out.push_str("innodb_undo_directory=./\n");
    (out, dropped)
}

/// Replaces the copy's `backup-my.cnf` with [`prepare_cnf`]'s; returns the
/// donor's lines it left out.
fn own_backup_cnf(data: &Path) -> std::result::Result<Vec<String>, String> {
    let path = data.join("backup-my.cnf");
    let donor = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let (text, dropped) = prepare_cnf(&donor);
    // A name the donor made a link or a directory is not written through.
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(dropped)
}

/// mariadb-backup's record of the copy's binary log position, under the name
/// of each version: `mariadb_backup_*` since 11.1 (MDEV-18931), `xtrabackup_*`
/// before.
pub(crate) const BINLOG_INFO: &[&str] = &["mariadb_backup_binlog_info", "xtrabackup_binlog_info"];

/// The GTID position of the copy: the third field of its binlog info file.
fn read_gtid(data: &Path) -> std::result::Result<String, String> {
    for name in BINLOG_INFO.iter().copied() {
        let path = data.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(parse_binlog_info(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    }
    let found = backup_metadata(data);
    Err(format!(
        "the copy holds no binary log position: neither {} in {} ({}); \
         the donor's mariadb-backup wrote a layout this agent does not know",
        BINLOG_INFO.join(" nor "),
        data.display(),
        if found.is_empty() {
            "and no backup metadata at all: was it a mariadb-backup stream?".to_owned()
        } else {
            format!("backup metadata found: {}", found.join(", "))
        }
    ))
}

/// The names of the backup metadata files in `data`, sorted.
fn backup_metadata(data: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(data)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("mariadb_backup_") || n.starts_with("xtrabackup_"))
        .collect();
    found.sort();
    found
}

pub(crate) fn parse_binlog_info(text: &str) -> String {
    text.split_whitespace().nth(2).unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::read_gtid;

    fn copy_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn reads_the_position_under_either_name() {
        let old = copy_with(&[
            ("xtrabackup_binlog_info", "binlog.000002\t1234\t0-100-57\n"),
            ("xtrabackup_checkpoints", "backup_type = full-prepared\n"),
        ]);
        assert_eq!(read_gtid(old.path()).unwrap(), "0-100-57");
        let new = copy_with(&[
            (
                "mariadb_backup_binlog_info",
                "binlog.000003\t328\t0-100-9\n",
            ),
            (
                "mariadb_backup_checkpoints",
                "backup_type = full-prepared\n",
            ),
        ]);
        assert_eq!(read_gtid(new.path()).unwrap(), "0-100-9");
    }

    #[test]
    fn an_unknown_layout_says_what_it_found() {
        let dir = copy_with(&[
            ("mariadb_backup_checkpoints", ""),
            ("mariadb_backup_info", ""),
            ("ibdata1", ""),
        ]);
        let err = read_gtid(dir.path()).unwrap_err();
        assert!(
            err.contains("mariadb_backup_binlog_info nor xtrabackup_binlog_info"),
            "{err}"
        );
        assert!(
            err.contains("backup metadata found: mariadb_backup_checkpoints, mariadb_backup_info"),
            "{err}"
        );
        assert!(!err.contains("log_bin"), "{err}");
        let empty = copy_with(&[]);
        let err = read_gtid(empty.path()).unwrap_err();
        assert!(err.contains("no backup metadata at all"), "{err}");
    }

    #[test]
    fn prepare_takes_the_layout_and_no_place_from_the_donor() {
        // What mariadb-backup 10.11 writes.
        let real = "# This options file was generated by innobackupex.\n\n# The server\n[mysqld]\n\
            innodb_checksum_algorithm=crc32\ninnodb_data_file_path=ibdata1:12M:autoextend\n\
            innodb_log_file_size=100663296\ninnodb_page_size=16384\ninnodb_undo_directory=./\n\
            innodb_undo_tablespaces=0\ninnodb_compression_level=6\n";
        let (text, dropped) = super::prepare_cnf(real);
        assert_eq!(dropped, Vec::<String>::new());
        for line in real.lines().filter(|l| l.starts_with("innodb")) {
            assert!(text.lines().any(|l| l == line), "{line} lost:\n{text}");
        }
        // A hostile donor's places and paths.
        let evil = "[mysqld]\ninnodb_log_group_home_dir=/etc\ninnodb-data-home-dir=/\n\
            innodb_undo_directory=/var/lib\ninnodb_data_file_path=../../etc/x:12M\n\
            innodb_page_size=16384\nplugin_load_add=evil.so\ninnodb_log_file_size=1/2\n";
        let (text, dropped) = super::prepare_cnf(evil);
        assert_eq!(dropped.len(), 6, "{dropped:?}");
        assert!(
            text.lines()
                .filter(|l| l.contains('/'))
                .all(|l| l == "innodb_undo_directory=./"),
            "{text}"
        );
        assert!(text.contains("innodb_page_size=16384\n"), "{text}");
        assert!(!text.contains("plugin"), "{text}");
    }

    #[test]
    fn binlog_info() {
        assert_eq!(
            super::parse_binlog_info("binlog.000002\t1234\t0-100-57\n"),
            "0-100-57"
        );
        assert_eq!(
            super::parse_binlog_info("binlog.000002\t1234\t0-100-5,1-101-3"),
            "0-100-5,1-101-3"
        );
        assert_eq!(super::parse_binlog_info("binlog.000001\t4"), "");
    }
}
