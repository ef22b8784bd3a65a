//! HTTP between agents — readiness checks, status queries, the clone stream,
//! the probe — plain or TLS. With a CA file the peers are spoken to over
//! HTTPS and must present a certificate for their DNS name, which is resolved
//! through the same resolver as everything else (hickory).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;

use crate::error::{Error, IoContext, Result};

/// How long a connection to a peer's agent may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before TCP keepalive probes a connection.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// How long sent data may stay unacknowledged before the connection is
/// closed (`TCP_USER_TIMEOUT`).
pub const UNACKED_TIMEOUT: Duration = Duration::from_secs(30);

/// How this agent reaches other agents. Clones share one client, which
/// [`AgentClient::reload`] replaces when the CA file changes.
#[derive(Clone)]
pub struct AgentClient {
    current: Arc<std::sync::RwLock<reqwest::Client>>,
    build: Arc<Build>,
    scheme: &'static str,
    port: u16,
}

/// What the client is made from, to make it again.
struct Build {
    ca: Option<std::path::PathBuf>,
    resolver: Option<TokioResolver>,
    pin: Option<(String, SocketAddr)>,
}

impl AgentClient {
    /// `ca`: verify peers against this CA bundle (PEM) and use HTTPS.
    /// `resolver`: resolve peer names with it. `pin`: send this one name to
    /// this address instead (the probe asks its own sidecar by its name).
    pub fn new(
        ca: Option<&Path>,
        port: u16,
        resolver: Option<TokioResolver>,
        pin: Option<(&str, SocketAddr)>,
    ) -> Result<AgentClient> {
        let build = Build {
            ca: ca.map(Path::to_path_buf),
            resolver,
            pin: pin.map(|(n, a)| (n.to_owned(), a)),
        };
        let client = build.client()?;
        Ok(AgentClient {
            current: Arc::new(std::sync::RwLock::new(client)),
            build: Arc::new(build),
            scheme: if ca.is_some() { "https" } else { "http" },
            port,
        })
    }

    /// The client as it is now (cheap: a shared handle).
    pub fn client(&self) -> reqwest::Client {
        self.current.read().expect("client lock").clone()
    }

    /// Makes the client again from the CA file as it is now, for every clone.
    pub fn reload(&self) -> Result<()> {
        let client = self.build.client()?;
        *self.current.write().expect("client lock") = client;
        Ok(())
    }

    /// GET `path` from the agent of `host`, giving up after `timeout`.
    pub async fn get(
        &self,
        host: &str,
        path: &str,
        timeout: std::time::Duration,
    ) -> std::result::Result<reqwest::Response, reqwest::Error> {
        self.client()
            .get(self.url(host, path))
            .timeout(timeout)
            .send()
            .await
    }

    /// The URL of `path` on the agent of `host`.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("{}://{host}:{}{path}", self.scheme, self.port)
    }
}

impl Build {
    fn client(&self) -> Result<reqwest::Client> {
        // A peer that vanishes without a reset (a node gone, packets
        // dropped) is given up within seconds, not TCP's quarter of an hour.
        let mut b = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_keepalive(KEEPALIVE)
            .tcp_user_timeout(UNACKED_TIMEOUT);
        b = match &self.ca {
            Some(path) => {
                let pem = std::fs::read(path)
                    .io_context(|| format!("cannot read --tls-ca-file {}", path.display()))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    Error::config(format!(
                        "--tls-ca-file {}: not a PEM CA bundle: {e}",
                        path.display()
                    ))
                })?;
                if certs.is_empty() {
                    return Err(Error::config(format!(
                        "--tls-ca-file {} holds no certificate",
                        path.display()
                    )));
                }
                b.tls_certs_only(certs).https_only(true)
            }
            // No trust store is loaded for plain HTTP: none may exist (scratch image).
            None => b.tls_certs_only([]),
        };
        if let Some(r) = &self.resolver {
            b = b.dns_resolver(Arc::new(Hickory(r.clone())));
        }
        if let Some((name, addr)) = &self.pin {
            b = b.resolve(name, *addr);
        }
        b.build()
            .map_err(|e| Error::Other(format!("cannot build the HTTP client: {e}")))
    }
}

struct Hickory(TokioResolver);

impl reqwest::dns::Resolve for Hickory {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let ip = crate::net::dns::resolve(&resolver, &name)
                .await
                .map_err(|why| format!("{name} {why}"))?;
            let addrs: reqwest::dns::Addrs = Box::new(std::iter::once(SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}
