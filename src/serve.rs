//! Running the sidecar: the HTTP server and the control loop under one
//! shutdown: the first SIGTERM drains (an outgoing clone stream may finish
//! within the grace), a second one or the end of the grace aborts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::api;
use crate::error::{Error, IoContext, Result};
use crate::sidecar::{self, LoopSettings, Shared};

/// How long the first SIGTERM waits for in-flight requests and streams.
pub const DRAIN_GRACE: Duration = Duration::from_secs(20);

pub async fn run(
    shared: Arc<Shared>,
    listen: SocketAddr,
    tls: Option<(PathBuf, PathBuf)>,
    settings: LoopSettings,
) -> Result<()> {
    let handle = axum_server::Handle::<SocketAddr>::new();
    let app = api::router(shared.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = match tls {
        Some((cert, key)) => {
            let config = RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|e| {
                    Error::config(format!(
                        "cannot load --tls-cert-file {} / --tls-key-file {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?;
            tokio::spawn(
                axum_server::bind_rustls(listen, config)
                    .handle(handle.clone())
                    .serve(app),
            )
        }
        None => tokio::spawn(axum_server::bind(listen).handle(handle.clone()).serve(app)),
    };
    let mut server = std::pin::pin!(server);
    tokio::select! {
        bound = handle.listening() => if bound.is_none() {
            let e = (&mut server).await.map_err(|e| Error::Other(e.to_string()))?.err();
            return Err(Error::Io {
                what: format!("cannot listen on {listen}; is --agent-port free?"),
                source: e.unwrap_or_else(|| std::io::Error::other("bind failed")),
            });
        },
        r = &mut server => {
            let r = r.map_err(|e| Error::Other(e.to_string()))?;
            return r.io_context(|| format!("the HTTP server on {listen} failed"));
        }
    }
    info!(listen = %listen, scheme, pod = %shared.identity.hostname, role = %shared.identity.role, "sidecar serving");
    let control = tokio::spawn(sidecar::run(shared.clone(), settings));

    let mut term = signal(SignalKind::terminate()).io_context(|| "SIGTERM handler".into())?;
    let mut int = signal(SignalKind::interrupt()).io_context(|| "SIGINT handler".into())?;
    tokio::select! {
        r = &mut server => {
            let r = r.map_err(|e| Error::Other(e.to_string()))?;
            return r.io_context(|| "the HTTP server failed".into());
        }
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    info!(
        grace_s = DRAIN_GRACE.as_secs(),
        "stopping: draining requests and streams"
    );
    handle.graceful_shutdown(Some(DRAIN_GRACE));
    tokio::select! {
        _ = &mut server => {}
        _ = term.recv() => warn!("second signal: aborting"),
        _ = int.recv() => warn!("second signal: aborting"),
    }
    handle.shutdown();
    shared.shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), control).await;
    info!("sidecar stopped");
    Ok(())
}
