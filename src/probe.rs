//! The probe client for exec probes: asks the local sidecar's endpoint.

use std::time::Duration;

use crate::cli::ProbeKind;
use crate::http::AgentClient;

/// Returns whether the sidecar at `host` said OK, and what it said.
pub async fn run(
    http: &AgentClient,
    host: &str,
    what: ProbeKind,
    timeout: Duration,
) -> (bool, String) {
    let path = match what {
        ProbeKind::Ready => "/readyz",
        ProbeKind::Live => "/livez",
    };
    let url = http.url(host, path);
    match http.client.get(&url).timeout(timeout).send().await {
        Ok(r) => {
            let ok = r.status().is_success();
            let body = r.text().await.unwrap_or_default();
            (ok, body.trim().to_owned())
        }
        Err(e) => (false, format!("the sidecar at {url} does not answer: {e}")),
    }
}
