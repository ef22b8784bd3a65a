//! While a replica's init waits for a donor, its datadir is empty: it says
//! so on the agent port, with the `/status` its sidecar serves later, so
//! that an empty master's init, asking every peer before it dares to start
//! empty, hears "empty" rather than nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use tracing::{info, warn};

use crate::config::InitConfig;
use crate::net::sql::Target;
use crate::sidecar::api;
use crate::sidecar::shared::Shared;
use crate::status::Phase;

/// Serves "this pod's datadir is empty" until dropped.
pub struct EmptyAnswer(tokio::task::JoinHandle<()>);

impl Drop for EmptyAnswer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts answering; `None` (with a warning) when the port cannot be had:
/// the clone goes on, and an empty master waits for this pod instead.
pub async fn serve(cfg: &InitConfig) -> Option<EmptyAnswer> {
    let no_server = Target {
        host: "127.0.0.1".into(),
        port: cfg.mysql_port,
        socket: None,
        user: "root".into(),
        password: None,
    };
    let shared = Shared::new(
        cfg.identity.clone(),
        Some(cfg.flavor),
        no_server,
        cfg.datadir.clone(),
        None,
    );
    shared.update(|st| {
        st.phase = Phase::WaitingForDonor;
        st.gtid_executed = Some(String::new());
    });
    let app = api::router(Arc::clone(&shared)).into_make_service_with_connect_info::<SocketAddr>();
    let listener = match crate::sidecar::bind(cfg.agent_listen) {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "cannot tell peers this datadir is empty");
            return None;
        }
    };
    let task = match &cfg.tls {
        Some((cert, key)) => {
            let tls = match RustlsConfig::from_pem_file(cert, key).await {
                Ok(t) => t,
                Err(e) => {
                    warn!(error = %e, "cannot load the TLS certificate; not answering peers");
                    return None;
                }
            };
            let server = axum_server::from_tcp_rustls(listener, tls).ok()?;
            tokio::spawn(async move {
                let _ = server.serve(app).await;
            })
        }
        None => {
            let server = axum_server::from_tcp(listener).ok()?;
            tokio::spawn(async move {
                let _ = server.serve(app).await;
            })
        }
    };
    info!(listen = %cfg.agent_listen, "telling peers this datadir is empty while waiting for a donor");
    Some(EmptyAnswer(task))
}
