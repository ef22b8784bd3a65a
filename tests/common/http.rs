//! Plain HTTP GETs to the agents, as a client outside the pods would send.

use std::time::Duration;

pub async fn http_get(url: &str) -> Result<(u16, String), String> {
    http_get_with(url, None).await
}

pub async fn http_get_with(url: &str, bearer: Option<&str>) -> Result<(u16, String), String> {
    let client = reqwest::Client::builder()
        .tls_certs_only([])
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    send(client.get(url), bearer).await
}

/// Sends a GET, with a bearer token if given; returns the status and body.
async fn send(
    mut req: reqwest::RequestBuilder,
    bearer: Option<&str>,
) -> Result<(u16, String), String> {
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let code = resp.status().as_u16();
    let body = resp.text().await.map_err(|e| e.to_string())?;
    Ok((code, body))
}
