//! The probe client for exec probes: asks the local sidecar's endpoint.

use crate::config::{ProbeConfig, ProbeKind};

/// Returns whether the sidecar said OK, and what it said.
pub async fn run(cfg: &ProbeConfig) -> (bool, String) {
    let path = match cfg.what {
        ProbeKind::Ready => "/readyz",
        ProbeKind::Live => "/livez",
    };
    let url = cfg.http.url(&cfg.host, path);
    match cfg
        .http
        .client()
        .get(&url)
        .timeout(cfg.timeout)
        .send()
        .await
    {
        Ok(r) => {
            let ok = r.status().is_success();
            let body = r.text().await.unwrap_or_default();
            (ok, body.trim().to_owned())
        }
        Err(e) => (false, format!("the sidecar at {url} does not answer: {e}")),
    }
}
