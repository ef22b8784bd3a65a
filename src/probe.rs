//! The probe client for exec probes: asks the local sidecar's endpoint.

use std::time::Duration;

use crate::cli::ProbeKind;

/// Returns whether the sidecar said OK, and what it said.
pub async fn run(agent_port: u16, what: ProbeKind, timeout: Duration) -> (bool, String) {
    let path = match what {
        ProbeKind::Ready => "readyz",
        ProbeKind::Live => "livez",
    };
    let url = format!("http://127.0.0.1:{agent_port}/{path}");
    let resp = reqwest::Client::new()
        .get(&url)
        .timeout(timeout)
        .send()
        .await;
    match resp {
        Ok(r) => {
            let ok = r.status().is_success();
            let body = r.text().await.unwrap_or_default();
            (ok, body.trim().to_owned())
        }
        Err(e) => (false, format!("the sidecar at {url} does not answer: {e}")),
    }
}
