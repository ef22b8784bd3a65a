//! MariaDB recipient: pull the donor sidecar's framed `mariabackup` stream,
//! extract it with `mbstream`, verify the trailer, prepare, read the GTID.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tracing::info;

use super::Request;
use crate::datadir::CloneInfo;
use crate::error::{Error, Result};
use crate::stream::{Decoder, Frame};

pub(super) async fn clone(req: &Request<'_>) -> Result<(PathBuf, CloneInfo)> {
    let donor = &req.donor.name;
    let fail = |why: String| Error::Clone {
        donor: donor.clone(),
        why,
    };
    let refused = |why: &str| Error::CloneRefused {
        donor: donor.clone(),
        why: why.to_owned(),
    };
    let token = req.clone_token.ok_or_else(|| refused("no clone token"))?;
    let data = req.staging.join("data");
    std::fs::create_dir(&data)
        .map_err(|e| fail(format!("cannot create {}: {e}", data.display())))?;
    let started = Instant::now();

    let url = req.http.url(donor, "/clone");
    let resp = req
        .http
        .client
        .get(&url)
        .bearer_auth(token.expose())
        .send()
        .await
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

    // The donor tells the size of its datadir: an estimate of the stream.
    let estimate = resp
        .headers()
        .get(crate::backup::ESTIMATE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut progress = crate::progress::Progress::new(donor, estimate);
    let mut body = resp.bytes_stream();
    let mut dec = Decoder::default();
    let mut trailer = None;
    while trailer.is_none() {
        let chunk = match tokio::time::timeout(req.stall_timeout, body.next()).await {
            Err(_) => {
                return Err(fail(format!(
                    "no data for {} s after {} bytes",
                    req.stall_timeout.as_secs(),
                    dec.bytes()
                )));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(fail(format!(
                    "the stream broke after {} bytes: {e}",
                    dec.bytes()
                )));
            }
            Ok(Some(Ok(c))) => c,
        };
        dec.push(&chunk);
        loop {
            match dec.next_frame().map_err(|e| fail(e.to_string()))? {
                None => break,
                Some(Frame::Data(d)) => stdin
                    .write_all(&d)
                    .await
                    .map_err(|e| fail(format!("mbstream stopped taking data: {e}")))?,
                Some(Frame::End(t)) => trailer = Some(t),
                Some(Frame::Fail(m)) => return Err(fail(format!("the donor failed: {m}"))),
            }
        }
        progress.update(dec.bytes());
    }
    dec.finish().map_err(|e| fail(e.to_string()))?;
    let trailer = trailer.expect("finish() checked the trailer");
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

    let out = Command::new("mariabackup")
        .arg("--prepare")
        .arg(format!("--target-dir={}", data.display()))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| fail(format!("cannot run mariabackup: {e}")))?;
    if !out.status.success() {
        let log = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        return Err(fail(format!(
            "mariabackup --prepare failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )));
    }
    let gtid = read_gtid(&data).map_err(fail)?;
    let info = CloneInfo {
        donor: donor.clone(),
        gtid,
        bytes: trailer.bytes,
        seconds: started.elapsed().as_secs_f64(),
        failed_attempts: 0,
    };
    info!(donor = %donor, gtid = %info.gtid, prepare_secs = (started.elapsed() - streamed).as_secs_f64(), "copy prepared");
    Ok((data, info))
}

/// The GTID position of the copy: the third field of `xtrabackup_binlog_info`.
fn read_gtid(data: &std::path::Path) -> std::result::Result<String, String> {
    let path = data.join("xtrabackup_binlog_info");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read {}: {e}; is log_bin on at the donor?",
            path.display()
        )
    })?;
    Ok(parse_binlog_info(&text))
}

pub(crate) fn parse_binlog_info(text: &str) -> String {
    text.split_whitespace().nth(2).unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
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
