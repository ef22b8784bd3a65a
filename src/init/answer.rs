//! While init waits, it answers on the agent port with the `/status` its
//! sidecar serves later. A replica's init waiting for a donor says its
//! datadir is empty, so that an empty master's init, asking every peer
//! before it dares to start empty, hears "empty" rather than nothing. An
//! empty master's init says which peers it waits for, and why.

use std::sync::Arc;

use tracing::{info, warn};

use crate::config::InitConfig;
use crate::net::sql::Target;
use crate::sidecar::readiness::{Cause, Readiness};
use crate::sidecar::shared::Shared;
use crate::status::Phase;

/// Serves what init is waiting for, until dropped.
pub struct Answer {
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Its connections: a peer's client keeps one open between requests,
    /// and init lives on as the server's parent, so they are closed too
    /// (else a peer would hear this init's "waiting" for ever).
    handle: axum_server::Handle<std::net::SocketAddr>,
    shared: Arc<Shared>,
}

impl Answer {
    /// What `/readyz` (and `/status`) say init waits for.
    pub fn waiting(&self, reason: String) {
        self.shared.update(|st| {
            st.ready = Readiness {
                ready: false,
                cause: Cause::Starting,
                reason,
            }
        });
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.handle.shutdown();
        self.task.abort();
    }
}

/// Starts answering in `phase`; `None` (with a warning) when the port cannot
/// be had: init goes on (and an empty master waits for this pod instead).
pub async fn serve(cfg: &InitConfig, phase: Phase) -> Option<Answer> {
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
        None,
    );
    shared.update(|st| {
        st.phase = phase;
        // An empty datadir: a replica about to clone holds nothing yet, but
        // for the copies a re-clone set aside, which it says it holds.
        st.gtid_executed = (phase == Phase::WaitingForDonor).then(String::new);
    });
    let handle = axum_server::Handle::new();
    let started = async {
        let listener = crate::sidecar::bind(cfg.agent_listen)?;
        crate::sidecar::spawn_api(shared.clone(), listener, cfg.tls.as_ref(), &handle)
            .await
            .map(|(task, _)| task)
    };
    let task = match started.await {
        Ok(task) => task,
        Err(e) => {
            warn!(error = %e, "cannot answer on the agent port while waiting");
            return None;
        }
    };
    info!(listen = %cfg.agent_listen, phase = ?phase, "answering on the agent port while waiting");
    Some(Answer {
        task,
        handle,
        shared,
    })
}
