//! What the datadir holds, and the one rule that makes a half-finished clone
//! impossible to mistake for data: a marker file is written (and synced)
//! before the first byte of a clone lands, the clone is staged in a hidden
//! directory, moved into place, and only then is the marker removed. A datadir
//! with the marker is wiped and cloned again, whenever the process died.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// What the names of the agent's own files in a datadir begin with.
pub const AGENT_PREFIX: &str = ".mysql-sts";
/// Present while a clone is under way; its presence means "not data".
pub const MARKER: &str = ".mysql-sts-clone-in-progress";
/// Where a clone is assembled before it is moved into the datadir.
pub const STAGING: &str = ".mysql-sts-staging";
/// What the last clone was: donor and the GTID position the copy holds.
pub const CLONE_INFO: &str = ".mysql-sts-clone.json";
/// Present when an operator asked for this datadir to be cloned again.
pub const RECLONE_REQUEST: &str = ".mysql-sts-reclone";
/// Present once the sidecar found this replica's data diverged from the
/// master's (errant transactions): it holds them, and keeps replication off
/// until the data is cloned again.
pub const DIVERGED: &str = ".mysql-sts-diverged";
/// The master's own `server_id`, chosen when it started a new history (an
/// empty start by `--fresh-master`, or a re-seed): a MariaDB GTID names its
/// server, so the new history's transactions never take the names of
/// transactions a peer holds from the old one.
pub const SERVER_ID: &str = ".mysql-sts-server-id";
/// On the master: what each replica had executed when last heard from, so
/// that the binary log retention fence holds for a replica that is down,
/// across restarts of the sidecar.
pub const REPLICA_POSITIONS: &str = ".mysql-sts-replica-positions.json";
/// On the master: the GTID position its oldest binary log starts from, as
/// its sidecar last read it (at start-up, while still read-only, and after
/// each purge). Replicas compare with it: on MariaDB, listing the binary logs
/// waits while a commit waits for a semi-synchronous acknowledgement, which
/// only a replica that compared can give.
pub const BINLOG_START: &str = ".mysql-sts-binlog-start";
/// Where old datadirs are moved aside to, one directory per move (unix time).
pub const OLD_DIR: &str = ".mysql-sts-old";
/// Where a MySQL backup's local copy is made before it goes to the bucket:
/// beside the datadir (the server refuses a place inside it), on the same
/// volume when the datadir is a directory in it, as the chart makes it.
pub const BACKUP_DIR: &str = ".mysql-sts-backup";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Nothing but hidden files and `lost+found`.
    Empty,
    /// A clone this tool started and did not finish.
    UnfinishedClone,
    /// Anything else: real data, never cloned over.
    Initialised,
}

/// Entries that a fresh volume may hold and that are not data.
fn ignorable(name: &str) -> bool {
    name == "lost+found" || name.starts_with('.')
}

/// Classifies a datadir from the names of its entries.
pub fn classify<S: AsRef<str>>(entries: &[S]) -> State {
    if entries.iter().any(|e| e.as_ref() == MARKER) {
        State::UnfinishedClone
    } else if entries.iter().all(|e| ignorable(e.as_ref())) {
        State::Empty
    } else {
        State::Initialised
    }
}

/// Recorded in [`CLONE_INFO`] when a clone completes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloneInfo {
    pub donor: String,
    /// The GTID position the copy holds (MariaDB `gtid_slave_pos` to start from;
    /// MySQL `gtid_executed`).
    pub gtid: String,
    pub bytes: u64,
    pub seconds: f64,
    /// Attempts that failed before this one (each left the datadir empty).
    #[serde(default)]
    pub failed_attempts: u32,
    /// What came over the network for it (compressed, framed); 0 where not
    /// counted (the MySQL clone).
    #[serde(default)]
    pub wire_bytes: u64,
}

/// Why a replica's sidecar asked for its data to be cloned again
/// (`--auto-reclone`): kept in the request file, which goes aside with the
/// old data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecloneRecord {
    /// Unix time of the request.
    pub at: u64,
    /// What was wrong: `errant transactions` or `purged transactions`.
    pub why: String,
    /// Transactions this data held that the master did not.
    pub errant: Option<String>,
    /// Transactions the master had purged that this data lacked.
    pub missing: Option<String>,
    /// What this data had executed.
    pub executed: String,
    /// The master, and its GTID state then.
    pub master: String,
    pub master_gtid: Option<String>,
}

/// A copy of old data that a re-clone moved aside: its place in the
/// datadir (`.mysql-sts-old/<unix time>`), and the record of why, if the
/// re-clone kept one (one requested by hand does not). The data it holds is
/// nobody else's until proven otherwise: a pod whose datadir is empty but
/// for such a copy is not empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsideCopy {
    pub dir: String,
    pub record: Option<RecloneRecord>,
    /// The bytes it takes on the volume.
    #[serde(default)]
    pub bytes: u64,
}

impl AsideCopy {
    /// When it was set aside (unix seconds: its directory's name).
    pub fn at(&self) -> Option<u64> {
        self.dir.rsplit('/').next()?.parse().ok()
    }
}

/// The records the `copies` kept of their re-clones, oldest first.
pub fn records(copies: &[AsideCopy]) -> Vec<RecloneRecord> {
    let mut out: Vec<RecloneRecord> = copies.iter().filter_map(|c| c.record.clone()).collect();
    out.sort_by_key(|r| r.at);
    out
}

/// A datadir on disk.
#[derive(Debug, Clone)]
pub struct Datadir {
    pub path: PathBuf,
}

impl Datadir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Datadir { path: path.into() }
    }

    fn err(&self, why: impl Into<String>) -> Error {
        Error::Datadir {
            path: self.path.clone(),
            why: why.into(),
        }
    }

    pub fn staging(&self) -> PathBuf {
        self.path.join(STAGING)
    }

    fn entries(&self) -> Result<Vec<String>> {
        let rd = fs::read_dir(&self.path)
            .io_context(|| format!("cannot list datadir {}", self.path.display()))?;
        let mut names = Vec::new();
        for e in rd {
            let e = e.io_context(|| format!("cannot list datadir {}", self.path.display()))?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    pub fn state(&self) -> Result<State> {
        if !self.path.exists() {
            return Err(self.err("does not exist: mount the data volume there or set --datadir"));
        }
        Ok(classify(&self.entries()?))
    }

    /// Marks the datadir as "clone in progress" and prepares an empty staging
    /// directory. Call only on an [`State::Empty`] or [`State::UnfinishedClone`] datadir.
    pub fn begin_clone(&self) -> Result<PathBuf> {
        let marker = self.path.join(MARKER);
        fs::write(
            &marker,
            b"a clone into this datadir did not finish; mysql-sts init wipes it\n",
        )
        .io_context(|| format!("cannot write {}", marker.display()))?;
        sync_path(&marker)?;
        sync_path(&self.path)?;
        self.wipe_partial()?;
        let staging = self.staging();
        fs::create_dir(&staging).io_context(|| format!("cannot create {}", staging.display()))?;
        Ok(staging)
    }

    /// Removes what an unfinished clone left: the staging directory, the clone
    /// record and every non-hidden entry (which only a clone can have put there,
    /// since the marker is written into an empty datadir only). Keeps the marker.
    pub fn wipe_partial(&self) -> Result<()> {
        for name in self.entries()? {
            if name == MARKER || name == "lost+found" {
                continue;
            }
            if name.starts_with('.') && name != STAGING && name != CLONE_INFO {
                continue;
            }
            let p = self.path.join(&name);
            let res = if p.is_dir() && !p.is_symlink() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            res.io_context(|| format!("cannot remove {} of an unfinished clone", p.display()))?;
        }
        sync_path(&self.path)
    }

    /// Makes the verified staged copy durable, moves it into place, records
    /// it, and removes the marker last: from that instant on the datadir
    /// counts as data, so every byte of it must be on disk by then (the tools
    /// that wrote it did not sync it).
    pub fn commit_clone(&self, from: &Path, info: &CloneInfo) -> Result<()> {
        sync_tree(from)?;
        for e in fs::read_dir(from).io_context(|| format!("cannot list {}", from.display()))? {
            let e = e.io_context(|| format!("cannot list {}", from.display()))?;
            let to = self.path.join(e.file_name());
            fs::rename(e.path(), &to)
                .io_context(|| format!("cannot move {} into place", e.path().display()))?;
        }
        sync_path(&self.path)?;
        let staging = self.staging();
        if staging.exists() {
            fs::remove_dir_all(&staging)
                .io_context(|| format!("cannot remove {}", staging.display()))?;
        }
        let record = self.path.join(CLONE_INFO);
        let json = serde_json::to_vec_pretty(info).expect("CloneInfo serialises");
        fs::write(&record, json).io_context(|| format!("cannot write {}", record.display()))?;
        sync_path(&record)?;
        let marker = self.path.join(MARKER);
        fs::remove_file(&marker).io_context(|| format!("cannot remove {}", marker.display()))?;
        sync_path(&self.path)
    }

    /// Leaves the datadir empty after a failed clone (but for the marker's removal).
    pub fn abandon_clone(&self) -> Result<()> {
        self.wipe_partial()?;
        let marker = self.path.join(MARKER);
        match fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).io_context(|| format!("cannot remove {}", marker.display()));
            }
        }
        sync_path(&self.path)
    }

    /// Moves the data aside (never deletes it) into the hidden directory
    /// `.mysql-sts-old/<unix time>` inside the datadir, leaving it empty for a
    /// new clone; returns that directory. The operator removes it when done.
    pub fn move_aside(&self) -> Result<PathBuf> {
        let aside = self.path.join(OLD_DIR).join(unix_now().to_string());
        fs::create_dir_all(&aside).io_context(|| format!("cannot create {}", aside.display()))?;
        for name in self.entries()? {
            if ignorable(&name) && name != CLONE_INFO && name != DIVERGED {
                continue;
            }
            fs::rename(self.path.join(&name), aside.join(&name))
                .io_context(|| format!("cannot move {name} aside to {}", aside.display()))?;
        }
        // The request goes with the old data: it records why it was moved.
        let request = self.path.join(RECLONE_REQUEST);
        if request.exists() {
            fs::rename(&request, aside.join(RECLONE_REQUEST))
                .io_context(|| format!("cannot move {} aside", request.display()))?;
        }
        sync_path(&self.path)?;
        Ok(aside)
    }

    /// Asks for a re-clone at the next start of init, with why, durably.
    pub fn request_reclone(&self, record: &RecloneRecord) -> Result<()> {
        self.write_record(
            RECLONE_REQUEST,
            &serde_json::to_vec_pretty(record).expect("record serialises"),
        )
    }

    /// The records of the re-clones that moved data aside, oldest first (a
    /// request made by hand, an empty file, has none).
    pub fn reclones(&self) -> Vec<RecloneRecord> {
        records(&self.aside_copies())
    }

    /// The copies of old data moved aside for a re-clone, oldest first, each
    /// with the record of why where one was kept.
    pub fn aside_copies(&self) -> Vec<AsideCopy> {
        let Ok(rd) = fs::read_dir(self.path.join(OLD_DIR)) else {
            return Vec::new();
        };
        let mut out: Vec<AsideCopy> = rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| AsideCopy {
                dir: format!("{OLD_DIR}/{}", e.file_name().to_string_lossy()),
                record: fs::read(e.path().join(RECLONE_REQUEST))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok()),
                bytes: crate::progress::dir_size(&e.path()),
            })
            .collect();
        out.sort_by(|a, b| a.dir.cmp(&b.dir));
        out
    }

    /// The errant transactions recorded when this data was found diverged.
    pub fn diverged(&self) -> Option<String> {
        fs::read_to_string(self.path.join(DIVERGED)).ok()
    }

    /// Records that this data diverged from the master's, durably.
    pub fn record_divergence(&self, errant: &str) -> Result<()> {
        self.write_record(DIVERGED, errant.as_bytes())
    }

    /// The position recorded by [`Datadir::record_binlog_start`].
    pub fn binlog_start(&self) -> Option<String> {
        fs::read_to_string(self.path.join(BINLOG_START)).ok()
    }

    /// Records the position the oldest binary log starts from.
    pub fn record_binlog_start(&self, start: &str) -> Result<()> {
        self.write_record(BINLOG_START, start.as_bytes())
    }

    /// The replicas' positions recorded by [`Datadir::record_replica_positions`].
    pub fn replica_positions(&self) -> BTreeMap<String, String> {
        fs::read(self.path.join(REPLICA_POSITIONS))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Records the replicas' positions.
    pub fn record_replica_positions(&self, positions: &BTreeMap<String, String>) -> Result<()> {
        self.write_record(
            REPLICA_POSITIONS,
            &serde_json::to_vec_pretty(positions).expect("positions serialise"),
        )
    }

    /// Holds the datadir for this process alone until the hold is dropped:
    /// a volume mounted by two pods on one node must not get two inits.
    pub fn lock(&self) -> Result<Lock> {
        if !self.path.exists() {
            return Err(self.err("does not exist: mount the data volume there"));
        }
        let dir = fs::File::open(&self.path)
            .io_context(|| format!("cannot open datadir {}", self.path.display()))?;
        match rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Lock { _dir: dir }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(self.err(
                "another mysql-sts init is working on it (is the volume mounted by two pods at once?); nothing was done",
            )),
            Err(e) => Err(self.err(format!("cannot lock it: {e}"))),
        }
    }

    /// The bytes of the data itself: everything but the copies set aside.
    pub fn live_bytes(&self) -> Result<u64> {
        let mut live = 0;
        for name in self.entries()? {
            if name == OLD_DIR {
                continue;
            }
            let p = self.path.join(&name);
            live += match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => crate::progress::dir_size(&p),
                Ok(m) => m.len(),
                Err(_) => 0,
            };
        }
        Ok(live)
    }

    /// Deletes the copy set aside in `dir` (as [`AsideCopy::dir`] names it).
    pub fn remove_aside(&self, dir: &str) -> Result<()> {
        let name = dir.strip_prefix(&format!("{OLD_DIR}/")).unwrap_or(dir);
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(self.err(format!("{dir:?} is not a copy set aside")));
        }
        let p = self.path.join(OLD_DIR).join(name);
        fs::remove_dir_all(&p).io_context(|| format!("cannot delete {}", p.display()))
    }

    /// Checks that a clone fits beside the data a re-clone moves aside
    /// (which stays on the volume): about the live data's size, plus a
    /// tenth and 64 MiB. Refused, the data stays where it is.
    pub fn room_for_reclone(&self) -> Result<()> {
        let live = self.live_bytes()?;
        let need = live + live / 10 + (64 << 20);
        let free = free_bytes(&self.path)?;
        if free < need {
            return Err(self.err(format!(
                "a re-clone needs about {} MiB free beside the {} MiB it moves aside, and the volume has {} MiB: \
                 the data stays in place. Grow the volume, or delete old copies in {OLD_DIR}/",
                need >> 20,
                live >> 20,
                free >> 20
            )));
        }
        Ok(())
    }

    /// The `server_id` recorded by [`Datadir::record_server_id`], if any.
    pub fn server_id(&self) -> Option<u32> {
        fs::read_to_string(self.path.join(SERVER_ID))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Records the `server_id` this data is served under from now on, durably.
    pub fn record_server_id(&self, id: u32) -> Result<()> {
        self.write_record(SERVER_ID, format!("{id}\n").as_bytes())
    }

    /// Writes the agent's record `name` in the datadir durably and whole: a
    /// crash leaves the old record or the new one, never part of one.
    fn write_record(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path.join(name);
        let tmp = self.path.join(format!("{name}.tmp"));
        fs::write(&tmp, bytes).io_context(|| format!("cannot write {}", tmp.display()))?;
        sync_path(&tmp)?;
        fs::rename(&tmp, &path).io_context(|| format!("cannot write {}", path.display()))?;
        sync_path(&self.path)
    }

    pub fn reclone_requested(&self) -> bool {
        self.path.join(RECLONE_REQUEST).exists()
    }

    /// The owner of the datadir itself: who the server runs as.
    pub fn owner(&self) -> Result<(u32, u32)> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(&self.path)
            .io_context(|| format!("cannot stat {}", self.path.display()))?;
        Ok((m.uid(), m.gid()))
    }

    pub fn clone_info(&self) -> Option<CloneInfo> {
        let bytes = fs::read(self.path.join(CLONE_INFO)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Makes `datadir`, a directory in the volume root `root`, ready for init:
/// creates it (owned as the root is), and moves into it the data an earlier
/// layout kept at the root itself — everything but `lost+found`, the
/// datadir, and hidden entries not of this agent (`.snapshot`, say). Each
/// entry is renamed on the one filesystem: a crash half way leaves entries
/// on both sides, and the next start moves the rest. Returns what it moved.
pub fn adopt_volume_root(root: &Path, datadir: &Path) -> Result<Vec<String>> {
    let name = match (datadir.parent(), datadir.file_name()) {
        (Some(parent), Some(name)) if parent == root => name.to_string_lossy().into_owned(),
        _ => {
            return Err(Error::config(format!(
                "--datadir {} must be a directory directly in --volume-root {}",
                datadir.display(),
                root.display()
            )));
        }
    };
    let volume = Datadir::new(root);
    if !datadir.exists() {
        fs::create_dir(datadir)
            .io_context(|| format!("cannot create datadir {}", datadir.display()))?;
        if rustix::process::geteuid().is_root() {
            chown_tree(datadir, volume.owner()?)?;
        }
    }
    let entries = volume.entries()?;
    let legacy: Vec<&String> = entries
        .iter()
        .filter(|n| **n != name && n.as_str() != "lost+found")
        .filter(|n| !n.starts_with('.') || n.starts_with(".mysql-sts"))
        .collect();
    let mut moved = Vec::new();
    for n in legacy {
        let to = datadir.join(n);
        if to.exists() {
            return Err(Datadir::new(datadir).err(format!(
                "{n} is both in it and at the volume root {}: move one of them by hand",
                root.display()
            )));
        }
        fs::rename(root.join(n), &to)
            .io_context(|| format!("cannot move {n} into {}", datadir.display()))?;
        moved.push(n.clone());
    }
    sync_path(datadir)?;
    sync_path(root)?;
    Ok(moved)
}

/// The hold of [`Datadir::lock`]; released when dropped (or the process ends).
pub struct Lock {
    _dir: fs::File,
}

/// Seconds since the Unix epoch: the time the datadir's records carry.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Bytes an unprivileged writer may still put on the filesystem of `path`.
pub fn free_bytes(path: &Path) -> Result<u64> {
    let s = rustix::fs::statvfs(path).map_err(|e| Error::Io {
        what: format!("cannot read the free space of {}", path.display()),
        source: e.into(),
    })?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Gives `path` and everything under it to `owner` (uid, gid).
pub fn chown_tree(path: &Path, owner: (u32, u32)) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(owner.0), Some(owner.1))
        .io_context(|| format!("cannot chown {}", path.display()))?;
    let m = fs::symlink_metadata(path).io_context(|| format!("cannot stat {}", path.display()))?;
    if m.is_dir() {
        for e in fs::read_dir(path).io_context(|| format!("cannot list {}", path.display()))? {
            let e = e.io_context(|| format!("cannot list {}", path.display()))?;
            chown_tree(&e.path(), owner)?;
        }
    }
    Ok(())
}

/// Syncs every file and directory under `root`, and `root` itself; returns
/// how many it synced.
pub fn sync_tree(root: &Path) -> Result<u64> {
    let mut synced = 0;
    let m = fs::symlink_metadata(root).io_context(|| format!("cannot stat {}", root.display()))?;
    if m.is_dir() {
        for e in fs::read_dir(root).io_context(|| format!("cannot list {}", root.display()))? {
            let e = e.io_context(|| format!("cannot list {}", root.display()))?;
            synced += sync_tree(&e.path())?;
        }
    } else if !m.is_file() {
        return Ok(0);
    }
    sync_path(root)?;
    Ok(synced + 1)
}

fn sync_path(p: &Path) -> Result<()> {
    fs::File::open(p)
        .and_then(|f| f.sync_all())
        .io_context(|| format!("cannot sync {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_tree_reaches_every_file_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("copy");
        fs::create_dir_all(root.join("mysql/deep")).unwrap();
        for f in [
            "ibdata1",
            "mysql/user.frm",
            "mysql/deep/x.MAI",
            "binlog.000001",
        ] {
            fs::write(root.join(f), b"data").unwrap();
        }
        std::os::unix::fs::symlink("ibdata1", root.join("link")).unwrap();
        // 4 files, 3 directories (copy, mysql, deep); the link is not followed.
        assert_eq!(sync_tree(&root).unwrap(), 7);
    }

    #[test]
    fn a_volume_root_with_lost_found_and_an_earlier_layout() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let datadir = root.join("mysql-data");
        // A new volume: lost+found at its root stays there, the datadir is made.
        fs::create_dir(root.join("lost+found")).unwrap();
        assert!(adopt_volume_root(root, &datadir).unwrap().is_empty());
        assert!(datadir.is_dir());
        assert_eq!(Datadir::new(&datadir).state().unwrap(), State::Empty);
        // An earlier layout: the data at the root itself, with this agent's
        // records; someone else's hidden entry stays.
        for d in ["mysql", "app"] {
            fs::create_dir(root.join(d)).unwrap();
        }
        for f in ["ibdata1", CLONE_INFO, ".snapshot"] {
            fs::write(root.join(f), b"x").unwrap();
        }
        let mut moved = adopt_volume_root(root, &datadir).unwrap();
        moved.sort();
        assert_eq!(moved, [CLONE_INFO, "app", "ibdata1", "mysql"]);
        assert_eq!(Datadir::new(&datadir).state().unwrap(), State::Initialised);
        let mut left: Vec<String> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".snapshot", "lost+found", "mysql-data"]);
        // Nothing more to move the next time; a name on both sides is refused.
        assert!(adopt_volume_root(root, &datadir).unwrap().is_empty());
        fs::write(root.join("ibdata1"), b"y").unwrap();
        let err = adopt_volume_root(root, &datadir).unwrap_err().to_string();
        assert!(err.contains("both in it and at the volume root"), "{err}");
        // The datadir must sit directly in the root.
        assert!(adopt_volume_root(root, &root.join("a/b")).is_err());
    }

    #[test]
    fn one_init_at_a_time() {
        let dd = tmp("lock");
        let held = dd.lock().unwrap();
        // Another open of the same directory (as a second pod's init would
        // have) is turned away, and may go once the first is done.
        let again = Datadir::new(dd.path.clone());
        let err = again.lock().err().expect("a second hold");
        assert!(err.to_string().contains("another mysql-sts init"), "{err}");
        drop(held);
        again.lock().unwrap();
        fs::remove_dir_all(&dd.path).unwrap();
    }

    #[test]
    fn classification() {
        let none: [&str; 0] = [];
        assert_eq!(classify(&none), State::Empty);
        assert_eq!(classify(&["lost+found"]), State::Empty);
        assert_eq!(classify(&[".snapshot", "lost+found"]), State::Empty);
        assert_eq!(classify(&[STAGING]), State::Empty);
        assert_eq!(classify(&["mysql"]), State::Initialised);
        assert_eq!(classify(&["ibdata1", "lost+found"]), State::Initialised);
        assert_eq!(classify(&[MARKER]), State::UnfinishedClone);
        assert_eq!(
            classify(&[MARKER, "mysql", "ibdata1", STAGING]),
            State::UnfinishedClone
        );
    }

    fn tmp(name: &str) -> Datadir {
        let p = std::env::temp_dir().join(format!("mysql-sts-dd-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Datadir::new(p)
    }

    #[test]
    fn clone_lifecycle() {
        let dd = tmp("life");
        fs::create_dir(dd.path.join("lost+found")).unwrap();
        assert_eq!(dd.state().unwrap(), State::Empty);
        let staging = dd.begin_clone().unwrap();
        fs::create_dir(staging.join("mysql")).unwrap();
        fs::write(staging.join("ibdata1"), b"x").unwrap();
        // Dying here leaves a datadir that is not mistaken for data.
        assert_eq!(dd.state().unwrap(), State::UnfinishedClone);
        let info = CloneInfo {
            donor: "mysql-0".into(),
            gtid: "0-100-7".into(),
            bytes: 1,
            seconds: 0.5,
            failed_attempts: 0,
            wire_bytes: 1,
        };
        dd.commit_clone(&staging, &info).unwrap();
        assert_eq!(dd.state().unwrap(), State::Initialised);
        assert!(dd.path.join("mysql").is_dir());
        assert!(!dd.staging().exists());
        assert!(dd.path.join("lost+found").is_dir());
        assert_eq!(dd.clone_info(), Some(info));
        fs::remove_dir_all(&dd.path).unwrap();
    }

    #[test]
    fn a_crash_mid_move_is_wiped() {
        let dd = tmp("crash");
        fs::write(dd.path.join(".keep-me"), b"foreign").unwrap();
        let staging = dd.begin_clone().unwrap();
        fs::write(staging.join("ibdata1"), b"x").unwrap();
        // As if the process died after moving one entry into place.
        fs::rename(staging.join("ibdata1"), dd.path.join("ibdata1")).unwrap();
        assert_eq!(dd.state().unwrap(), State::UnfinishedClone);
        let staging = dd.begin_clone().unwrap();
        assert!(!dd.path.join("ibdata1").exists());
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);
        dd.abandon_clone().unwrap();
        assert_eq!(dd.state().unwrap(), State::Empty);
        assert!(
            dd.path.join(".keep-me").exists(),
            "foreign hidden files stay"
        );
        assert!(!dd.staging().exists());
        fs::remove_dir_all(&dd.path).unwrap();
    }

    #[test]
    fn move_aside_keeps_everything() {
        let dd = tmp("aside");
        fs::create_dir(dd.path.join("mysql")).unwrap();
        fs::write(dd.path.join("ibdata1"), b"x").unwrap();
        fs::write(dd.path.join(CLONE_INFO), b"{}").unwrap();
        fs::write(dd.path.join(RECLONE_REQUEST), b"").unwrap();
        assert!(dd.reclone_requested());
        let aside = dd.move_aside().unwrap();
        assert_eq!(dd.state().unwrap(), State::Empty);
        assert!(!dd.reclone_requested());
        assert!(aside.join("mysql").is_dir());
        assert_eq!(fs::read(aside.join("ibdata1")).unwrap(), b"x");
        assert!(aside.join(CLONE_INFO).exists());
        // A request made by hand is kept, and records nothing.
        assert!(aside.join(RECLONE_REQUEST).exists());
        assert_eq!(dd.reclones(), []);
        // ... but the copy is listed, without a record.
        let copies = dd.aside_copies();
        assert_eq!(copies.len(), 1);
        assert_eq!(dd.path.join(&copies[0].dir), aside);
        assert_eq!(copies[0].record, None);
        // Its bytes are counted apart from the live data's, and it can go.
        assert_eq!(copies[0].bytes, 3);
        fs::write(dd.path.join("ibdata1"), b"live").unwrap();
        assert_eq!(dd.live_bytes().unwrap(), 4);
        assert!(copies[0].at().is_some());
        for bad in [".mysql-sts-old/../mysql", ".mysql-sts-old/", "a/b"] {
            assert!(dd.remove_aside(bad).is_err(), "{bad}");
        }
        dd.remove_aside(&copies[0].dir).unwrap();
        assert_eq!(dd.aside_copies(), []);
        assert!(dd.path.join("ibdata1").exists());
        fs::remove_dir_all(&dd.path).unwrap();
    }

    #[test]
    fn a_reclone_record_goes_aside_with_the_data() {
        let dd = tmp("record");
        fs::create_dir(dd.path.join("mysql")).unwrap();
        let record = RecloneRecord {
            at: 1_700_000_000,
            why: "errant transactions".into(),
            errant: Some("0-102-1".into()),
            missing: None,
            executed: "0-102-1".into(),
            master: "mysql-0.h".into(),
            master_gtid: Some("0-100-9".into()),
        };
        dd.request_reclone(&record).unwrap();
        assert!(dd.reclone_requested());
        let aside = dd.move_aside().unwrap();
        assert!(!dd.reclone_requested() && aside.join("mysql").is_dir());
        assert_eq!(dd.reclones(), [record]);
        fs::remove_dir_all(&dd.path).unwrap();
    }

    #[test]
    fn missing_datadir_is_an_error() {
        let dd = Datadir::new("/nonexistent/mysql-sts/datadir");
        assert!(
            dd.state()
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
    }
}
