//! The sidecar beside the server: the control loop that keeps replication
//! and read-only right ([`control`]: observe → [`plan`] → [`apply`],
//! [`readiness`]), and the HTTP endpoints ([`api`], [`metrics`]) over the
//! state they share ([`shared`]). [`run`] serves both until shut down: the
//! first stop request drains (an outgoing clone stream may finish within the
//! grace), a second one or the end of the grace aborts.

pub mod api;
pub mod apply;
pub mod archive;
pub mod backups;
pub mod control;
pub mod fence;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod plan;
pub mod readiness;
pub mod retention;
pub mod shared;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use tracing::{info, warn};

use crate::error::{Error, IoContext, Result};
use crate::shutdown::Shutdown;
use control::LoopSettings;
use shared::Shared;

/// How long the first stop request waits for in-flight requests and streams.
pub const DRAIN_GRACE: Duration = Duration::from_secs(20);

/// Binds the sidecar's port, with an error that says which flag sets it.
pub fn bind(listen: SocketAddr) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(listen)
        .io_context(|| format!("cannot listen on {listen}; is --agent-port free?"))?;
    listener
        .set_nonblocking(true)
        .io_context(|| format!("cannot listen on {listen}"))?;
    Ok(listener)
}

/// How long the sidecar waits for its port while something else holds it.
pub const PORT_WAIT: Duration = Duration::from_secs(600);

/// Binds the sidecar's port, waiting up to `patience` while it is in use.
///
/// In a pod the containers share one network, and the server container's
/// `init` answers its peers on this port while it waits for them (an empty
/// master asking what each holds); it frees the port when it is done. On a
/// real kubelet the sidecar starts meanwhile: exiting on the busy port cost
/// the master's pod two restarts and their back-off at every new install.
pub async fn bind_when_free(
    listen: SocketAddr,
    patience: Duration,
) -> Result<std::net::TcpListener> {
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        match bind(listen) {
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse
                    && started.elapsed() < patience =>
            {
                if !said {
                    info!(
                        listen = %listen,
                        "the agent port is in use, by the server container's init answering its peers while it waits; waiting for it"
                    );
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            bound => return bound,
        }
    }
}

/// Runs a sidecar with `cfg` on `listener` until `shutdown`.
pub async fn serve(
    cfg: crate::config::SidecarConfig,
    listener: std::net::TcpListener,
    shutdown: Shutdown,
) -> Result<()> {
    let shared = Shared::new(
        cfg.identity,
        cfg.flavor,
        cfg.local,
        cfg.datadir,
        cfg.clone_token,
        cfg.clone_max_rate,
    );
    if let Some(a) = cfg.archive {
        tokio::spawn(archive::run(shared.clone(), a, shared.shutdown.clone()));
    }
    if let Some(b) = cfg.backups {
        let _ = shared.store.set(b.store.clone());
        tokio::spawn(backups::run(shared.clone(), b, shared.shutdown.clone()));
    }
    run(
        shared,
        listener,
        cfg.tls,
        cfg.control,
        cfg.retention,
        shutdown,
    )
    .await
}

/// The agent port's HTTP endpoints over `shared`, served on `listener`
/// (HTTPS with `tls` = (cert, key)) by a task of their own, stopped through
/// `handle`; with HTTPS, its configuration, to load renewed files into.
pub async fn spawn_api(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    tls: Option<&(PathBuf, PathBuf)>,
    handle: &axum_server::Handle<SocketAddr>,
) -> Result<(
    tokio::task::JoinHandle<std::io::Result<()>>,
    Option<RustlsConfig>,
)> {
    let listen = listener.local_addr().io_context(|| "the listener".into())?;
    let app = api::router(shared).into_make_service_with_connect_info::<SocketAddr>();
    limits::raise_open_files();
    let limit = limits::ConnectionLimit::new(limits::MAX_CONNECTIONS);
    Ok(match tls {
        Some((cert, key)) => {
            let config = RustlsConfig::from_pem_file(cert, key).await.map_err(|e| {
                Error::config(format!(
                    "cannot load --tls-cert-file {} / --tls-key-file {}: {e}",
                    cert.display(),
                    key.display()
                ))
            })?;
            let mut server = axum_server::from_tcp_rustls(listener, config.clone())
                .io_context(|| format!("cannot serve on {listen}"))?
                .map(|tls| tls.acceptor(limit));
            limits::configure(server.http_builder());
            (
                tokio::spawn(server.handle(handle.clone()).serve(app)),
                Some(config),
            )
        }
        None => {
            let mut server = axum_server::from_tcp(listener)
                .io_context(|| format!("cannot serve on {listen}"))?
                .acceptor(limit);
            limits::configure(server.http_builder());
            (tokio::spawn(server.handle(handle.clone()).serve(app)), None)
        }
    })
}

/// Serves the endpoints on `listener` (HTTPS with `tls` = (cert, key)) and
/// runs the control loop, until `shutdown`.
pub async fn run(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    tls: Option<(PathBuf, PathBuf)>,
    settings: LoopSettings,
    retention: Option<retention::RetentionSettings>,
    shutdown: Shutdown,
) -> Result<()> {
    let listen = listener.local_addr().io_context(|| "the listener".into())?;
    let handle = axum_server::Handle::<SocketAddr>::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (server, https) = spawn_api(shared.clone(), listener, tls.as_ref(), &handle).await?;
    let mut server = std::pin::pin!(server);
    if let Some((cert, key)) = &tls {
        let files = tls::Files {
            cert: cert.clone(),
            key: key.clone(),
            ca: settings.tls_ca.clone(),
        };
        tokio::spawn(tls::run(
            shared.clone(),
            files,
            https,
            settings.http.clone(),
            shared.shutdown.clone(),
        ));
    }
    info!(listen = %listen, scheme, pod = %shared.identity.hostname, role = %shared.identity.role, "sidecar serving");
    let control = tokio::spawn(control::run(
        shared.clone(),
        settings,
        shutdown.clone(),
        shared.shutdown.clone(),
    ));
    if let Some(r) = retention {
        tokio::spawn(retention::run(shared.clone(), r, shared.shutdown.clone()));
    }

    tokio::select! {
        r = &mut server => {
            let r = r.map_err(|e| Error::Other(e.to_string()))?;
            return r.io_context(|| "the HTTP server failed".into());
        }
        _ = shutdown.requested() => {}
    }
    info!(
        grace_s = DRAIN_GRACE.as_secs(),
        "stopping: draining requests and streams"
    );
    handle.graceful_shutdown(Some(DRAIN_GRACE));
    tokio::select! {
        _ = &mut server => {}
        _ = shutdown.forced() => warn!("aborting the drain"),
    }
    handle.shutdown();
    shared.shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), control).await;
    info!("sidecar stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_port_is_taken_once_its_holder_lets_go() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            drop(held);
        });
        let started = std::time::Instant::now();
        let listener = bind_when_free(addr, Duration::from_secs(10)).await.unwrap();
        assert_eq!(listener.local_addr().unwrap(), addr);
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "it bound while the port was held"
        );
        release.await.unwrap();
    }

    #[tokio::test]
    async fn a_port_held_past_the_patience_names_the_port() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let err = bind_when_free(addr, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        assert!(err.to_string().contains("--agent-port"), "{err}");
        drop(held);
    }
}
