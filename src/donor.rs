//! Finding a clone donor: resolve the peers through DNS (the headless Service),
//! nearest ordinal first, and take the first whose sidecar says it is ready.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use tracing::{info, warn};

use crate::error::{Error, Result};

/// Each DNS or HTTP check gives up after this long.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// A donor that resolved and answered ready.
#[derive(Debug, Clone)]
pub struct Donor {
    pub name: String,
    pub ip: IpAddr,
}

impl Donor {
    pub fn agent(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip, port)
    }
}

/// A resolver on the system configuration that does not hold on to "no such
/// name" answers: a donor pod that appears must be seen within seconds.
pub fn resolver() -> Result<TokioResolver> {
    let mut builder = TokioResolver::builder_tokio()
        .map_err(|e| Error::config(format!("cannot read the DNS configuration: {e}")))?;
    let opts = builder.options_mut();
    opts.negative_max_ttl = Some(Duration::from_secs(1));
    opts.positive_max_ttl = Some(Duration::from_secs(5));
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 1;
    builder
        .build()
        .map_err(|e| Error::config(format!("cannot build the DNS resolver: {e}")))
}

pub async fn resolve(resolver: &TokioResolver, name: &str) -> std::result::Result<IpAddr, String> {
    // A trailing dot keeps search domains from turning a missing pod into some other name.
    let fq = if name.contains('.') && !name.ends_with('.') {
        format!("{name}.")
    } else {
        name.to_owned()
    };
    match tokio::time::timeout(CHECK_TIMEOUT, resolver.lookup_ip(fq.as_str())).await {
        Err(_) => Err("DNS did not answer".to_owned()),
        Ok(Err(e)) => Err(format!("does not resolve ({e})")),
        Ok(Ok(lookup)) => lookup
            .iter()
            .next()
            .ok_or_else(|| "resolves to no address".to_owned()),
    }
}

async fn check(
    resolver: &TokioResolver,
    http: &reqwest::Client,
    name: &str,
    agent_port: u16,
) -> std::result::Result<Donor, String> {
    let ip = resolve(resolver, name).await?;
    let url = format!("http://{}/readyz", SocketAddr::new(ip, agent_port));
    let resp = http
        .get(&url)
        .timeout(CHECK_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("sidecar at {url} does not answer ({e})"))?;
    if resp.status().is_success() {
        Ok(Donor {
            name: name.to_owned(),
            ip,
        })
    } else {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Err(format!("not ready ({status}: {})", body.trim()))
    }
}

/// Waits until one of `donors` (in order of preference) is ready, for at most `timeout`.
pub async fn wait_for_donor(
    donors: &[String],
    agent_port: u16,
    timeout: Duration,
) -> Result<Donor> {
    let resolver = resolver()?;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times();
    let mut delays = backon::BackoffBuilder::build(backoff);
    let mut last: Vec<String> = Vec::new();
    loop {
        last.clear();
        for name in donors {
            match check(&resolver, &http, name, agent_port).await {
                Ok(d) => {
                    info!(donor = %d.name, ip = %d.ip, skipped = ?last, "donor is ready");
                    return Ok(d);
                }
                Err(why) => last.push(format!("{name}: {why}")),
            }
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        if started.elapsed() + delay >= timeout {
            return Err(Error::NoDonor {
                waited: Duration::from_secs(started.elapsed().as_secs()),
                detail: format!(
                    "{}; is the headless Service named by --service (or --peer-domain) right, and are the donors' sidecars up?",
                    last.join("; ")
                ),
            });
        }
        warn!(waited_s = started.elapsed().as_secs(), donors = ?last, "no donor ready yet");
        tokio::time::sleep(delay).await;
    }
}
