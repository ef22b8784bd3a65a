//! The init container: identity, server config, and what the datadir needs
//! before the server starts: kept, wiped, moved aside, cloned, or re-seeded
//! from the most advanced peer. The decision is [`plan`] (pure); finding a
//! donor is [`donor`]; the clone under the datadir rule is [`clone`].

pub mod answer;
pub mod clone;
pub mod donor;
pub mod plan;
pub mod restore;
pub mod server;

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::config::InitConfig;
use crate::datadir::{Datadir, State};
use crate::engine::CloneCredentials;
use crate::error::{Error, IoContext, Result};
use crate::pod::{Role, peer_name};
use crate::shutdown::Shutdown;
use crate::status::Phase;
use plan::Then;

/// Name of the file init writes in `--conf-dir`.
pub const CNF_NAME: &str = "mysql-sts.cnf";

/// What init did, for its last log line and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    KeptData,
    LeftEmptyForMaster,
    /// A replica's clone, or the master's re-seed from the most advanced peer.
    Cloned,
    /// The master of a new release, restored from a backup and the archive.
    Restored,
}

/// Writes `<conf-dir>/mysql-sts.cnf` atomically.
pub fn write_cnf(conf_dir: &Path, text: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(conf_dir)
        .io_context(|| format!("cannot create --conf-dir {}", conf_dir.display()))?;
    let path = conf_dir.join(CNF_NAME);
    let tmp = conf_dir.join(format!(".{CNF_NAME}.tmp"));
    std::fs::write(&tmp, text).io_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).io_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Runs init until it is done or `shutdown` asks it to stop; a clone cut
/// short leaves its marker and is wiped by the next start.
pub async fn run(cfg: InitConfig, shutdown: Shutdown) -> Result<Outcome> {
    tokio::select! {
        r = work(&cfg) => r,
        _ = shutdown.requested() => Err(Error::Stopped),
    }
}

async fn work(cfg: &InitConfig) -> Result<Outcome> {
    let id = &cfg.identity;
    let dd = Datadir::new(&cfg.datadir);
    // One init at a time on a volume; a datadir in the volume (not its root,
    // where a filesystem may keep lost+found) is made ready first.
    let _lock = match &cfg.volume_root {
        Some(root) => {
            let lock = Datadir::new(root).lock()?;
            let moved = crate::datadir::adopt_volume_root(root, &cfg.datadir)?;
            if !moved.is_empty() {
                warn!(moved = ?moved, datadir = %cfg.datadir.display(), "moved the data kept at the volume's root into the datadir, a directory in it");
            }
            lock
        }
        None => dd.lock()?,
    };
    // Check the datadir before writing anything, so a wrong mount fails cleanly.
    let state = dd.state()?;
    let reclone = cfg.reclone || dd.reclone_requested();
    if let Some(errant) = dd
        .diverged()
        .filter(|_| state == State::Initialised && !reclone)
    {
        warn!(errant = %errant.trim(), "this data diverged from the master's: replication stays off until it is cloned again (README: errant transactions)");
    }
    let own_id = match id.role {
        Role::Master => dd.server_id(),
        Role::Replica => None,
    };
    let holds_data = state == State::Initialised && !reclone;
    let cnf = write_server_cnf(cfg, own_id, holds_data)?;
    info!(pod = %id.hostname, role = %id.role, server_id = own_id.unwrap_or(id.server_id), flavor = %cfg.flavor, cnf = %cnf.display(), "server config written");

    let p = plan::plan(id.role, state, reclone, cfg.fresh_master);
    if p.move_aside {
        dd.room_for_reclone()?;
        let aside = dd.move_aside()?;
        warn!(moved_to = %aside.display(), "re-clone requested: the old data was moved aside (delete it once the new copy serves)");
    }
    if p.wipe_unfinished {
        warn!(datadir = %cfg.datadir.display(), "an earlier clone did not finish; wiping what it left");
        dd.abandon_clone()?;
    }
    let donor = match p.then {
        Then::KeepData => {
            info!(datadir = %cfg.datadir.display(), "datadir holds data; keeping it");
            return Ok(Outcome::KeptData);
        }
        Then::StartEmpty => {
            warn!("--fresh-master: starting an empty master without asking the peers");
            begin_history(cfg, &dd, "", false)?;
            return Ok(Outcome::LeftEmptyForMaster);
        }
        Then::AskPeers => {
            let names = |n: u32| peer_name(&format!("{}-{n}", id.statefulset), &cfg.peer_domain);
            let answer = answer::serve(cfg, Phase::WaitingForPeers).await;
            let source = donor::reseed_source(
                names,
                cfg.replicas,
                &cfg.resolver,
                &cfg.http,
                cfg.flavor,
                cfg.reseed_timeout,
                &|why| {
                    if let Some(a) = &answer {
                        a.waiting(why)
                    }
                },
            )
            .await?;
            // The port is the sidecar's (or the clone's) from here on.
            drop(answer);
            if source.is_none() {
                // This pod's own old data, set aside by a re-clone, is not
                // for an empty start to ignore either.
                let own = dd.aside_copies();
                if !own.is_empty() {
                    let copies: Vec<String> = own
                        .iter()
                        .map(|c| format!("this pod holds {}", c.dir))
                        .collect();
                    return Err(Error::SetAside {
                        detail: donor::set_aside_refusal(&copies),
                    });
                }
                if let Some(r) = &cfg.restore {
                    // No peer holds data: a new release, made from a backup.
                    restore::restore(cfg, credentials(cfg, "restore")?, &dd, r).await?;
                    master_history(cfg, &dd)?;
                    return Ok(Outcome::Restored);
                }
                info!("empty datadir on the master: the server image initialises it");
                return Ok(Outcome::LeftEmptyForMaster);
            }
            source
        }
        Then::Clone => None,
    };
    let credentials = credentials(cfg, "re-seed")?;
    // A replica waiting for its donor tells an empty master it holds nothing.
    let _answer = match p.then {
        Then::Clone => answer::serve(cfg, Phase::WaitingForDonor).await,
        _ => None,
    };
    let from_backup = match p.then {
        Then::Clone => clone::backup_to_seed_from(cfg).await?,
        _ => None,
    };
    match from_backup {
        Some((store, m)) => clone::seed_from_backup(cfg, credentials, &dd, store, &m).await?,
        None => clone::clone_with_retries(cfg, credentials, &dd, donor).await?,
    }
    if id.role == Role::Master {
        master_history(cfg, &dd)?;
    }
    Ok(Outcome::Cloned)
}

/// What a copy needs to prove who it is; the error of a missing one says
/// that `work` (a re-seed, a restore) needs it.
fn credentials<'a>(cfg: &'a InitConfig, work: &str) -> Result<&'a CloneCredentials> {
    match &cfg.credentials {
        Ok(c) => Ok(c),
        Err(Error::MissingSecret { what }) => Err(Error::MissingSecret {
            what: format!("{what} (the {work} needs it)"),
        }),
        Err(e) => Err(Error::config(e.to_string())),
    }
}

/// A master whose data is a copy (a re-seed, a restore) takes its server
/// config for data it holds, and a history of its own over that copy.
fn master_history(cfg: &InitConfig, dd: &Datadir) -> Result<()> {
    write_server_cnf(cfg, None, true)?;
    let held = dd.clone_info().map(|i| i.gtid).unwrap_or_default();
    begin_history(cfg, dd, &held, true)
}

/// Writes the server config, under `server_id` when the master's data has
/// its own. No server starts replicating by itself: a replica's sidecar
/// first compares it with the master, so diverged data takes nothing from
/// it; a master re-seeded from a replica's copy, which still says where that
/// replica replicated from, must not replicate at all.
/// `holds_data`: the server starts on data of its own (see
/// [`Flavor::render_cnf`](crate::engine::Flavor::render_cnf)).
fn write_server_cnf(cfg: &InitConfig, server_id: Option<u32>, holds_data: bool) -> Result<PathBuf> {
    let mut id = cfg.identity.clone();
    if let Some(s) = server_id {
        id.server_id = s;
    }
    let mut text = cfg
        .flavor
        .render_cnf(&id, cfg.semi_sync.as_ref(), holds_data);
    text.push_str(cfg.flavor.skip_replica_start());
    // The server serves its clients (replicas, the MySQL clone's
    // recipients) over TLS with the agents' certificate, which names every pod.
    if let Some((cert, key)) = &cfg.tls {
        text.push_str(&format!(
            "ssl_cert={}\nssl_key={}\n",
            cert.display(),
            key.display()
        ));
        if let Some(ca) = &cfg.tls_ca {
            text.push_str(&format!("ssl_ca={}\n", ca.display()));
        }
    }
    // A datadir inside the volume is not where the server looks by default.
    if cfg.volume_root.is_some() {
        text.push_str(&format!("datadir={}\n", cfg.datadir.display()));
    }
    write_cnf(&cfg.conf_dir, &text)
}

/// A master starting a new history (empty by `--fresh-master`, or re-seeded)
/// takes a `server_id` of its own where the engine's GTIDs name the server,
/// so that its transactions never take the names of ones a peer holds for
/// other data; recorded in the datadir for its later starts.
fn begin_history(cfg: &InitConfig, dd: &Datadir, held: &str, holds_data: bool) -> Result<()> {
    if let Some(server_id) = cfg
        .flavor
        .new_history_server_id(crate::datadir::unix_now(), held)
    {
        dd.record_server_id(server_id)?;
        write_server_cnf(cfg, Some(server_id), holds_data)?;
        info!(
            server_id,
            "a new history: this master's transactions take a server_id that no peer's data names"
        );
    }
    Ok(())
}
