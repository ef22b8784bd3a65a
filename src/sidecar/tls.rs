//! Certificates renewed in place (cert-manager rewrites the Secret the pod
//! mounts): the sidecar's HTTPS certificate, the CA its client verifies
//! peers with, and the local server's TLS are loaded again when the files
//! change, with no restart; each certificate's expiry is a metric.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::net::agent_client::AgentClient;
use crate::net::sql;
use crate::sidecar::shared::Shared;

/// How often the files are read for a change.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);

/// The TLS files the sidecar serves and verifies with.
#[derive(Debug, Clone)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
}

impl Files {
    /// What the files hold now, to tell a change (their whole contents: a
    /// Secret volume swaps a symbolic link, so times say little).
    fn contents(&self) -> Vec<Vec<u8>> {
        [Some(&self.cert), Some(&self.key), self.ca.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| std::fs::read(p).unwrap_or_default())
            .collect()
    }
}

/// Watches `files` until `stop`: on a change, loads them again into the
/// HTTPS server (`https`), the agent client (`http`) and the local server.
pub async fn run(
    shared: Arc<Shared>,
    files: Files,
    https: Option<RustlsConfig>,
    http: Option<AgentClient>,
    stop: CancellationToken,
) {
    let mut loaded = files.contents();
    let mut server_behind = false;
    publish_expiry(&shared, &files);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        let now = files.contents();
        if now != loaded {
            if let Some(c) = &https {
                match c.reload_from_pem_file(&files.cert, &files.key).await {
                    Ok(()) => {
                        info!(cert = %files.cert.display(), "certificate changed: the sidecar serves the new one")
                    }
                    Err(e) => {
                        // Half-written files (a renewal in progress): next time.
                        warn!(error = %e, "the changed certificate does not load yet");
                        continue;
                    }
                }
            }
            if let Some(h) = &http {
                match h.reload() {
                    Ok(()) => info!("CA changed: peers are verified against the new one"),
                    Err(e) => warn!(error = %e, "the changed CA does not load"),
                }
            }
            loaded = now;
            server_behind = true;
            publish_expiry(&shared, &files);
        }
        if server_behind {
            match reload_server(&shared).await {
                Ok(()) => {
                    info!("the server loaded the new certificate");
                    server_behind = false;
                }
                Err(e) => warn!(error = %e, "the server has not loaded the new certificate yet"),
            }
        }
    }
}

async fn reload_server(shared: &Shared) -> crate::error::Result<()> {
    let Some(flavor) = shared.flavor() else {
        return Err(crate::error::Error::Other(
            "the server's flavour is not known yet".into(),
        ));
    };
    let mut conn = shared.local().connect(Duration::from_secs(5)).await?;
    // MariaDB logs a FLUSH: on a replica, a transaction of its own.
    let r = match sql::exec(&mut conn, "SET SESSION sql_log_bin = 0").await {
        Ok(()) => sql::exec(&mut conn, flavor.reload_tls()).await,
        Err(e) => Err(e),
    };
    let _ = conn.disconnect().await;
    r
}

fn publish_expiry(shared: &Shared, files: &Files) {
    for (which, path) in [("cert", Some(&files.cert)), ("ca", files.ca.as_ref())] {
        let Some(path) = path else { continue };
        let at = std::fs::read(path).ok().and_then(|pem| not_after_pem(&pem));
        shared.metrics.tls_expiry(which, at.unwrap_or(0));
    }
}

/// The expiry (unix seconds) of the first certificate in `pem`.
pub fn not_after_pem(pem: &[u8]) -> Option<i64> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    not_after(&der)
}

/// A DER element: (tag, contents, the rest after it).
fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&first, mut b) = b.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let (l, rest) = b.split_at(n);
        b = rest;
        l.iter().fold(0usize, |acc, &x| (acc << 8) | usize::from(x))
    };
    (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
}

/// `notAfter` of an X.509 certificate: Certificate → tbsCertificate →
/// [version], serial, signature, issuer, validity → notAfter.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert, _) = element(der)?;
    let (_, tbs, _) = element(cert)?;
    let mut rest = tbs;
    let (tag, _, r) = element(rest)?;
    if tag == 0xa0 {
        rest = r; // explicit version
    }
    for _ in 0..3 {
        rest = element(rest)?.2; // serial, signature, issuer
    }
    let (_, validity, _) = element(rest)?;
    let (_, _, after) = element(validity)?;
    let (tag, time, _) = element(after)?;
    let text = std::str::from_utf8(time).ok()?;
    let (year, rest) = match tag {
        0x17 => {
            let y: i64 = text.get(..2)?.parse().ok()?;
            (if y < 50 { 2000 + y } else { 1900 + y }, text.get(2..)?)
        }
        0x18 => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    let num = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, h, m, s) = (num(0)?, num(2)?, num(4)?, num(6)?, num(8)?);
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 12, 7), 20_794);
    }

    #[test]
    fn expiry_of_a_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["mysql-0".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 2, 3);
        let cert = params.self_signed(&key).unwrap();
        let want = days_from_civil(2031, 2, 3) * 86_400;
        assert_eq!(not_after_pem(cert.pem().as_bytes()), Some(want));
        // GeneralizedTime, past 2049.
        params.not_after = rcgen::date_time_ymd(2051, 6, 30);
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            not_after(cert.der()),
            Some(days_from_civil(2051, 6, 30) * 86_400)
        );
    }

    #[test]
    fn bad_der_is_none() {
        assert_eq!(not_after(&[]), None);
        assert_eq!(not_after(&[0x30, 0x85, 1, 2, 3, 4, 5]), None);
        assert_eq!(not_after_pem(b"not a certificate"), None);
    }
}
