//! While a replica's init waits for a donor, its datadir is empty: it says
//! so on the agent port, with the `/status` its sidecar serves later, so
//! that an empty master's init, asking every peer before it dares to start
//! empty, hears "empty" rather than nothing.

use tracing::{info, warn};

use crate::config::InitConfig;
use crate::net::sql::Target;
use crate::sidecar::shared::Shared;
use crate::status::Phase;

/// Serves "this pod's datadir is empty" until dropped.
pub struct EmptyAnswer(tokio::task::JoinHandle<std::io::Result<()>>);

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
    let started = async {
        let listener = crate::sidecar::bind(cfg.agent_listen)?;
        let handle = axum_server::Handle::new();
        crate::sidecar::spawn_api(shared, listener, cfg.tls.as_ref(), &handle).await
    };
    let task = match started.await {
        Ok(task) => task,
        Err(e) => {
            warn!(error = %e, "cannot tell peers this datadir is empty");
            return None;
        }
    };
    info!(listen = %cfg.agent_listen, "telling peers this datadir is empty while waiting for a donor");
    Some(EmptyAnswer(task))
}
