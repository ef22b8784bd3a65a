//! Finding peers by name: one resolver on the system configuration (the
//! headless Service's records), built the same way for every caller.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;

use crate::error::{Error, Result};

/// A look-up gives up after this long.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

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

/// Why a name gave no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The name does not exist (yet): an authoritative answer.
    NoSuchName,
    /// DNS did not answer, or failed: nothing is known of the name.
    Unknown(String),
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::NoSuchName => f.write_str("does not resolve (no such name)"),
            LookupError::Unknown(why) => f.write_str(why),
        }
    }
}

/// The first address of `name`.
pub async fn resolve(resolver: &TokioResolver, name: &str) -> Result<IpAddr, LookupError> {
    // A trailing dot keeps search domains from turning a missing pod into some other name.
    let fq = if name.contains('.') && !name.ends_with('.') {
        format!("{name}.")
    } else {
        name.to_owned()
    };
    match tokio::time::timeout(LOOKUP_TIMEOUT, resolver.lookup_ip(fq.as_str())).await {
        Err(_) => Err(LookupError::Unknown("DNS did not answer".to_owned())),
        Ok(Err(e)) if e.is_no_records_found() => Err(LookupError::NoSuchName),
        Ok(Err(e)) => Err(LookupError::Unknown(format!("does not resolve ({e})"))),
        Ok(Ok(lookup)) => lookup
            .iter()
            .next()
            .ok_or_else(|| LookupError::Unknown("resolves to no address".to_owned())),
    }
}

/// A peer pod, as far as DNS could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    /// `None`: its name gave no address now (and it may exist).
    pub ip: Option<IpAddr>,
}

/// The peers `<statefulset>-1`, `-2`, ... to ask: the first `expected - 1`
/// of them in any case (a name that does not resolve yet is a peer not
/// heard from), and past those the pods that exist (a scale-up the count
/// does not know of yet): they are numbered without gaps, so the scan stops
/// at the first "no such name"; a DNS failure also stops it, with that name
/// as a peer not heard from.
pub async fn peers(
    resolver: &TokioResolver,
    names: impl Fn(u32) -> String,
    expected: u32,
) -> Vec<Peer> {
    let mut found = Vec::new();
    for n in 1..=1000 {
        let name = names(n);
        match resolve(resolver, &name).await {
            Ok(ip) => found.push(Peer { name, ip: Some(ip) }),
            // A pod that must exist: not resolving yet is not absent.
            Err(_) if n < expected => found.push(Peer { name, ip: None }),
            Err(LookupError::NoSuchName) => break,
            Err(LookupError::Unknown(why)) => {
                tracing::warn!(peer = %name, why = %why, "cannot tell whether this peer exists");
                found.push(Peer { name, ip: None });
                break;
            }
        }
    }
    found
}
