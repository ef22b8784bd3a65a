//! Secrets rotated under a running sidecar: each round it reads its secret
//! files again; a new root password is set in its own server, a new
//! replication password in its own copy of the account (and replication
//! points again once the master takes it), a new clone token is asked of
//! recipients. A server that was down through a change is logged in to with
//! the value the change replaced.

use std::time::Duration;

use mysql_async::Conn;
use tracing::{debug, info};

use super::{Control, MASTER_CHECK_TIMEOUT};
use crate::engine::Flavor;
use crate::engine::replication::ReplicaStatus;
use crate::error::Result;
use crate::net::sql::Target;
use crate::secret::SecretSource;

/// Where the secrets come from: a Secret changed in place (the kubelet
/// updates its mounted files) takes effect with no restart.
pub struct SecretSources {
    pub root: SecretSource,
    pub replication: SecretSource,
    pub token: SecretSource,
}

impl Control {
    /// Reads the passwords and the clone token again from their files. A
    /// new replication password makes the master set its account (every
    /// pod does, on its own server) and the replicas point replication again
    /// once the master takes it; a new root password is set on this server
    /// in the round; a new clone token is asked of recipients from now on
    /// (the one before it too, while it is kept beside it).
    pub(super) fn reread_secrets(&mut self) {
        let Some(src) = &self.s.sources else {
            return;
        };
        match src.replication.load() {
            Ok(p) if p != self.s.replication_password => {
                info!(
                    "the replication password changed: this server's account is set to it, and replication logs in with it once the master takes it"
                );
                let old = std::mem::replace(&mut self.s.replication_password, p);
                self.pointed_with.get_or_insert(old);
                self.memory.user_ensured = false;
            }
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "cannot read the replication password again; the one held stays")
            }
        }
        match src.root.load() {
            Ok(p) => self.root_wanted = Some(p),
            Err(e) => debug!(error = %e, "cannot read the root password again; the one held stays"),
        }
        if let Ok(t) = src.token.load() {
            self.shared.set_clone_tokens(t, src.token.previous());
        }
    }

    /// Sets root's password on this server to the one now in its file,
    /// when that changed.
    pub(super) async fn set_new_root_password(
        &mut self,
        conn: &mut Conn,
        flavor: Flavor,
    ) -> Result<()> {
        if let Some(wanted) = self.root_wanted.clone()
            && self.shared.local().password.as_ref() != Some(&wanted)
        {
            flavor.set_root_password(conn, wanted.expose()).await?;
            self.shared.set_root_password(wanted);
            info!("root's password on this server set to the one now in the root password's file");
        }
        Ok(())
    }

    /// Connects to the local server as root: with the password it last
    /// took, else the one now in the file, else the one before a rotation
    /// (a server that was down while the change went round; the round then
    /// sets the new one).
    pub(super) async fn connect_local(&mut self) -> Result<Conn> {
        const PATIENCE: Duration = Duration::from_secs(5);
        let target = self.shared.local();
        let refused = match target.connect(PATIENCE).await {
            Ok(c) => return Ok(c),
            Err(e) if e.kind() == "access_denied" => e,
            Err(e) => return Err(e),
        };
        let previous = self.s.sources.as_ref().and_then(|s| s.root.previous());
        for password in [self.root_wanted.clone(), previous].into_iter().flatten() {
            if target.password.as_ref() == Some(&password) {
                continue;
            }
            let t = Target {
                password: Some(password.clone()),
                ..target.clone()
            };
            if let Ok(c) = t.connect(PATIENCE).await {
                info!("the local server refused root's password held but took another known one");
                self.shared.set_root_password(password);
                return Ok(c);
            }
        }
        Err(refused)
    }

    /// Whether replication must be pointed again with the replication
    /// password: it changed since replication was pointed and the master
    /// takes the new one (before, the running link is kept), or, with what
    /// replication was given unknown (this sidecar started after it was
    /// set), the master refuses it.
    pub(super) async fn must_repoint(&self, replica: Option<&ReplicaStatus>) -> bool {
        match &self.pointed_with {
            Some(p) if *p == self.s.replication_password => false,
            Some(_) => match self.master_target().connect(MASTER_CHECK_TIMEOUT).await {
                Ok(c) => {
                    let _ = c.disconnect().await;
                    true
                }
                Err(e) => {
                    debug!(error = %e, "the master does not take the new replication password yet");
                    false
                }
            },
            None => {
                replica.is_some_and(|r| r.io_errno == u32::from(crate::error::ER_ACCESS_DENIED))
            }
        }
    }
}
