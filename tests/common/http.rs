//! Plain HTTP GETs to the agents, as a client outside the pods would send.

use std::net::SocketAddr;
use std::time::Duration;

pub async fn http_get(url: &str) -> Result<(u16, String), String> {
    http_get_with(url, None).await
}

pub async fn http_get_with(url: &str, bearer: Option<&str>) -> Result<(u16, String), String> {
    send(plain_client().get(url), bearer).await
}

/// A client for plain HTTP.
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([])
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A client for the agent called `name` at `addr`, over HTTPS only, its
/// certificate verified against the CA `ca_pem` for that name.
pub fn tls_client(name: &str, addr: SocketAddr, ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .https_only(true)
        .resolve(name, addr)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Sends a GET, with a bearer token if given; returns the status and body.
pub async fn send(
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
