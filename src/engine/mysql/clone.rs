//! MySQL recipient: the CLONE plugin, driven from a scratch server into the
//! staging directory, then one start on the copy to finish its recovery.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use tracing::{info, warn};

use crate::datadir::CloneInfo;
use crate::engine::clone::{Request, read_framed, run_dir_for};
use crate::engine::mysqld::Use;
use crate::engine::xbstream::{Extractor, Guard};
use crate::error::Result;
use crate::net::sql::{self as db, quote};
use crate::net::wire::Compression;
use crate::progress::{Progress, dir_size};
use crate::secret::Secret;
use crate::status::Status;

const START_DEADLINE: Duration = Duration::from_secs(600);

/// Kills, on the donor, the clone sessions of the replication account (the
/// one every recipient clones as): what a recipient that gave up left
/// running there.
pub async fn end_donor_clone(req: &Request<'_>, password: &Secret) -> Result<()> {
    let donor = db::Target {
        host: req.donor.ip.to_string(),
        port: req.mysql_port,
        socket: None,
        user: req.replication_user.to_owned(),
        password: Some(password.clone()),
    };
    let mut conn = donor.connect(Duration::from_secs(5)).await?;
    let sessions = db::rows(
        &mut conn,
        "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'clone' \
         AND USER = SUBSTRING_INDEX(CURRENT_USER(), '@', 1)",
    )
    .await?;
    let ids = sessions
        .iter()
        .filter_map(|r| r.get("ID").cloned().flatten()?.parse::<u64>().ok());
    for id in ids {
        info!(donor = %req.donor.name, session = id, "ending the clone given up on the donor");
        db::exec(&mut conn, &format!("KILL {id}")).await?;
    }
    Ok(())
}

pub async fn clone(
    req: &Request<'_>,
    root: &Secret,
    password: &Secret,
) -> Result<(PathBuf, CloneInfo)> {
    let donor = &req.donor.name;
    let fail = |why: String| req.fail(why);
    let started = Instant::now();
    let scratch = req.staging.join("scratch");
    let data = req.staging.join("data");
    let run = run_dir_for("clone", req.owner)?;

    req.binary
        .initialize(&scratch, &run)
        .await
        .map_err(|e| fail(format!("cannot make the scratch server: {e}")))?;
    let server = req
        .binary
        .start(&scratch, &run, Use::Scratch, None, START_DEADLINE)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut conn = server.target.connect(Duration::from_secs(10)).await?;
    let installed = db::first_row(
        &mut conn,
        "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'clone'",
    )
    .await?;
    if installed.is_empty() {
        db::exec(&mut conn, "INSTALL PLUGIN clone SONAME 'mysql_clone.so'")
            .await
            .map_err(|e| fail(format!("the CLONE plugin is not available: {e}")))?;
    }
    // The donor's cap and the compression asked for, in the CLONE plugin's
    // own settings: the recipient drives the copy and holds them.
    let cap = donor_max_rate(req).await;
    for (name, value) in clone_settings(cap, req.compression) {
        db::exec(&mut conn, &format!("SET GLOBAL {name} = {value}")).await?;
    }
    let donor_addr = format!("{}:{}", req.donor.ip, req.mysql_port);
    db::exec(
        &mut conn,
        &format!("SET GLOBAL clone_valid_donor_list = {}", quote(&donor_addr)),
    )
    .await?;
    info!(donor = %donor, addr = %donor_addr, "CLONE INSTANCE started");
    // With a CA the copy travels over TLS only, from a donor whose
    // certificate the CA signed.
    let require_ssl = match req.tls_ca {
        Some(ca) => {
            db::exec(
                &mut conn,
                &format!("SET GLOBAL clone_ssl_ca = {}", quote(&ca.to_string_lossy())),
            )
            .await?;
            " REQUIRE SSL"
        }
        None => "",
    };
    let sql = format!(
        "CLONE INSTANCE FROM {}@{}:{} IDENTIFIED BY {} DATA DIRECTORY = {}{require_ssl}",
        quote(req.replication_user),
        quote(&req.donor.ip.to_string()),
        req.mysql_port,
        quote(password.expose()),
        quote(&data.to_string_lossy()),
    );
    // CLONE has its own network timeouts; a long copy must not be cut here.
    // Progress is what has landed in the target directory so far.
    let mut progress = Progress::new(donor, None);
    let clone_started = Instant::now();
    let received_before = received_bytes();
    {
        let clone = mysql_async::prelude::Queryable::query_drop(&mut conn, sql);
        let mut clone = std::pin::pin!(clone);
        loop {
            tokio::select! {
                r = &mut clone => {
                    r.map_err(|e| fail(format!("CLONE INSTANCE failed: {e}")))?;
                    break;
                }
                _ = tokio::time::sleep(crate::progress::EVERY) => progress.update(dir_size(&data)),
            }
        }
    }
    let clone_secs = clone_started.elapsed().as_secs_f64();
    // What crossed the network (compressed, when it was): what the pod's
    // interfaces received meanwhile, as performance_schema may be off.
    let wire_bytes = received_bytes().saturating_sub(received_before);
    drop(conn);
    server
        .shutdown()
        .await
        .map_err(|e| fail(format!("scratch server: {e}")))?;
    std::fs::remove_dir_all(&scratch)
        .map_err(|e| fail(format!("cannot remove {}: {e}", scratch.display())))?;
    info!(donor = %donor, bytes = dir_size(&data), wire_bytes, clone_secs, secs = started.elapsed().as_secs_f64(), "copy received; starting it once to finish recovery");
    let _ = std::fs::remove_dir_all(&run);
    recover(req, data, root, started, wire_bytes).await
}

/// The bytes this pod's network interfaces (all but loopback) received so
/// far, from `/proc/self/net/dev`.
fn received_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/net/dev")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim() != "lo")
        .filter_map(|(_, counters)| counters.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The donor's `--clone-max-rate`, from its sidecar; none when it does not
/// say (an older agent) or cannot be asked now.
async fn donor_max_rate(req: &Request<'_>) -> Option<u64> {
    match Status::fetch(req.http, &req.donor.name, Duration::from_secs(5)).await {
        Ok(st) => st.clone_max_rate,
        Err(e) => {
            warn!(donor = %req.donor.name, error = %e, "cannot read the donor's clone rate cap; cloning uncapped");
            None
        }
    }
}

/// The CLONE plugin's settings for a copy from a donor that sends at most
/// `cap` bytes a second, with `compression`. Its bandwidths are whole MiB a
/// second, at least one (0 is no cap); both the data read and what crosses
/// the network are held to the cap, as a MariaDB donor's stream is. The
/// plugin compresses on the network layer, on or off for the whole copy:
/// `auto` turns it on for a capped donor, where the link and not the disk
/// holds the copy back.
pub fn clone_settings(cap: Option<u64>, compression: Compression) -> Vec<(&'static str, String)> {
    let mib = cap.map_or(0, |b| b.div_ceil(1 << 20).max(1));
    let compress = match compression {
        Compression::Zstd => true,
        Compression::None => false,
        Compression::Auto => cap.is_some(),
    };
    vec![
        ("clone_max_data_bandwidth", mib.to_string()),
        ("clone_max_network_bandwidth", mib.to_string()),
        (
            "clone_enable_compression",
            if compress { "ON" } else { "OFF" }.to_owned(),
        ),
    ]
}

/// Receives a copy framed as a clone stream (a backup in a bucket: an
/// xbstream of a local clone's files) into `<staging>/data`, verifies the
/// trailer, then starts it once as a cloned copy is started.
pub async fn receive(
    req: &Request<'_>,
    root: &Secret,
    body: BoxStream<'_, std::result::Result<Bytes, String>>,
    estimate: Option<u64>,
    started: Instant,
) -> Result<(PathBuf, CloneInfo)> {
    let donor = &req.donor.name;
    let fail = |why: String| req.fail(why);
    let (data, free) = req.data_dir()?;
    let mut files = Extractor::new(&data, Guard::cap_for(estimate, free));
    let mut progress = Progress::new(donor, estimate);
    let (trailer, wire_bytes) = read_framed(body, req.stall_timeout, &mut progress, async |d| {
        tokio::task::block_in_place(|| files.write(&d)).map_err(|r| r.to_string())
    })
    .await
    .map_err(fail)?;
    let count = files.finish().map_err(|r| fail(r.to_string()))?;
    info!(donor = %donor, files = count, bytes = trailer.bytes, "copy received and verified; starting it once to finish recovery");
    if let Some(o) = req.owner {
        crate::datadir::chown_tree(&data, o)?;
    }
    recover(req, data, root, started, wire_bytes).await
}

/// Starts a received copy once (its recovery), reads its GTID set and
/// drops the donor's replication settings.
async fn recover(
    req: &Request<'_>,
    data: PathBuf,
    root: &Secret,
    started: Instant,
    wire_bytes: u64,
) -> Result<(PathBuf, CloneInfo)> {
    let donor = &req.donor.name;
    let fail = |why: String| req.fail(why);
    let run = run_dir_for("recover", req.owner)?;
    let bytes = dir_size(&data);
    // The copy carries the donor's accounts: root has the cluster's root password.
    let server = req
        .binary
        .start(&data, &run, Use::Verify, Some(root.clone()), START_DEADLINE)
        .await
        .map_err(|e| fail(format!("the copy does not start: {e}")))?;
    let mut conn = server.target.connect(Duration::from_secs(10)).await?;
    let gtid = db::scalar(&mut conn, super::GTID_EXECUTED).await?;
    // A donor that is a replica hands over its replication settings, which
    // name relay logs that did not come with the copy: this pod's sidecar
    // sets replication up afresh.
    db::exec(&mut conn, "RESET REPLICA ALL").await?;
    drop(conn);
    server
        .shutdown()
        .await
        .map_err(|e| fail(format!("the copy: {e}")))?;
    let _ = std::fs::remove_dir_all(&run);
    let info = CloneInfo {
        donor: donor.clone(),
        gtid,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        failed_attempts: 0,
        wire_bytes,
    };
    info!(donor = %donor, gtid = %info.gtid, secs = info.seconds, "copy recovered and shut down");
    Ok((data, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_settings_follow_the_donors_cap_and_the_compression() {
        let get = |cap, c| {
            clone_settings(cap, c)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            get(None, Compression::Auto),
            "clone_max_data_bandwidth=0 clone_max_network_bandwidth=0 clone_enable_compression=OFF"
        );
        // 250 Mbit/s is 29.8 MiB/s: 30, never below the cap asked.
        assert_eq!(
            get(Some(31_250_000), Compression::Auto),
            "clone_max_data_bandwidth=30 clone_max_network_bandwidth=30 clone_enable_compression=ON"
        );
        assert_eq!(
            get(Some(1000), Compression::None),
            "clone_max_data_bandwidth=1 clone_max_network_bandwidth=1 clone_enable_compression=OFF"
        );
        assert_eq!(
            get(None, Compression::Zstd),
            "clone_max_data_bandwidth=0 clone_max_network_bandwidth=0 clone_enable_compression=ON"
        );
    }
}
