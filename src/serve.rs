//! Running the sidecar: the HTTP server and the control loop under one
//! shutdown: the first SIGTERM drains (an outgoing clone stream may finish
//! within the grace), a second one or the end of the grace aborts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::api;
use crate::error::{IoContext, Result};
use crate::sidecar::{self, LoopSettings, Shared};

/// How long the first SIGTERM waits for in-flight requests and streams.
pub const DRAIN_GRACE: Duration = Duration::from_secs(20);

pub async fn run(shared: Arc<Shared>, listen: SocketAddr, settings: LoopSettings) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .io_context(|| format!("cannot listen on {listen}; is --agent-port free?"))?;
    info!(listen = %listen, pod = %shared.identity.hostname, role = %shared.identity.role, "sidecar serving");
    let control = tokio::spawn(sidecar::run(shared.clone(), settings));

    let mut term = signal(SignalKind::terminate()).io_context(|| "SIGTERM handler".into())?;
    let mut int = signal(SignalKind::interrupt()).io_context(|| "SIGINT handler".into())?;
    let drain = tokio_util::sync::CancellationToken::new();
    let app = api::router(shared.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown({
        let drain = drain.clone();
        async move { drain.cancelled().await }
    });
    let mut server = std::pin::pin!(server.into_future());

    tokio::select! {
        r = &mut server => return r.io_context(|| "the HTTP server failed".into()),
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    info!(
        grace_s = DRAIN_GRACE.as_secs(),
        "stopping: draining requests and streams"
    );
    drain.cancel();
    tokio::select! {
        _ = &mut server => {}
        _ = term.recv() => warn!("second signal: aborting"),
        _ = int.recv() => warn!("second signal: aborting"),
        _ = tokio::time::sleep(DRAIN_GRACE) => warn!("grace over: aborting"),
    }
    shared.shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), control).await;
    info!("sidecar stopped");
    Ok(())
}
