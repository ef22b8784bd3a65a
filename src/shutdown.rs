//! One way to stop, for init and the sidecar alike: the first SIGTERM or
//! SIGINT asks for a graceful stop (the sidecar drains; init stops its work,
//! and a clone cut short leaves its marker for the next start to wipe), a
//! second one for an immediate stop. Tests trigger the same handle by hand.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::error::{IoContext, Result};

#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    graceful: CancellationToken,
    now: CancellationToken,
}

impl Shutdown {
    /// A handle no signal triggers: only [`Shutdown::begin`] and [`Shutdown::force`].
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// A handle the process's SIGTERM and SIGINT trigger: the first begins a
    /// graceful stop, the second forces it.
    pub fn on_signals() -> Result<Shutdown> {
        let mut term = signal(SignalKind::terminate()).io_context(|| "SIGTERM handler".into())?;
        let mut int = signal(SignalKind::interrupt()).io_context(|| "SIGINT handler".into())?;
        let s = Shutdown::new();
        let handle = s.clone();
        tokio::spawn(async move {
            for _ in 0..2 {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                if handle.graceful.is_cancelled() {
                    tracing::warn!(signal = name, "second signal: stopping now");
                    handle.force();
                } else {
                    tracing::info!(signal = name, "stopping");
                    handle.begin();
                }
            }
        });
        Ok(s)
    }

    /// Asks for a graceful stop.
    pub fn begin(&self) {
        self.graceful.cancel();
    }

    /// Asks for an immediate stop (implies a graceful one).
    pub fn force(&self) {
        self.graceful.cancel();
        self.now.cancel();
    }

    /// Resolves once a stop was asked for.
    pub async fn requested(&self) {
        self.graceful.cancelled().await
    }

    /// Whether a stop was asked for.
    pub fn is_requested(&self) -> bool {
        self.graceful.is_cancelled()
    }

    /// Resolves once an immediate stop was asked for.
    pub async fn forced(&self) {
        self.now.cancelled().await
    }

    /// A token that fires on an immediate stop, for work that must end then.
    pub fn force_token(&self) -> CancellationToken {
        self.now.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::Shutdown;
    use std::time::Duration;

    #[tokio::test]
    async fn begin_then_force() {
        let s = Shutdown::new();
        let t = s.force_token();
        let waiting = tokio::time::timeout(Duration::from_millis(50), s.requested()).await;
        assert!(waiting.is_err(), "nothing was asked yet");
        s.begin();
        s.requested().await;
        assert!(!t.is_cancelled(), "a graceful stop is not a forced one");
        s.force();
        s.forced().await;
        assert!(t.is_cancelled());
    }
}
