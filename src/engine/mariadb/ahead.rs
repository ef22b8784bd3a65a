//! A capped donor's reads of its own datadir, made small. `mariadb-backup`
//! reads a data file 10 MB per `pread` (a cursor of 640 pages, fixed in its
//! source), and a commit whose write reaches the disk behind such a read
//! waits for all of it: a cap on the stream's rate spaces those reads out
//! but cannot make one smaller. So a capped backup reads through the page
//! cache, and this reads ahead of it: as the header of each chunk the backup
//! streams passes, the next two chunks of the same file are read into the
//! cache a small piece at a time (a `readahead(2)` request, which copies
//! nothing out), one request in flight, and the chunk just
//! streamed leaves the cache. The stream takes no more of the chunk until
//! the next one is in: the backup, blocked on its pipe until then, never
//! overtakes its read-ahead, whatever the cap, and its next read finds its
//! pages in the cache. The disk sees small reads only, but for the first
//! chunk of each file, which the backup reads itself: the order of the files
//! is its own. The read-ahead is background work (nice 19) and its reads
//! are in the idle I/O class, behind the server's; the stream waits no more
//! than [`CATCH_UP_MAX`] for one.

use std::fs::File;
use std::num::NonZeroU64;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rustix::fs::Advice;
use tokio::sync::watch;
use tracing::debug;

use crate::engine::xbstream::{Chunk, Guard, Refusal};

/// One read of the look-ahead: no longer than a commit should wait behind.
const PIECE: usize = 128 << 10;
/// What `mariadb-backup` reads at once and streams as one chunk.
const BACKUP_READ: u64 = 10 << 20;
/// How far past the chunk just streamed the cache is kept filled: the
/// backup's next read, and the one after, so that a look-ahead slowed down
/// for a moment is still ahead.
const LEAD: u64 = 2 * BACKUP_READ;

/// The longest a stream waits for the read-ahead before it goes on (a
/// read-ahead that cannot keep up must not stop the clone).
const CATCH_UP_MAX: Duration = Duration::from_secs(1);

/// A chunk the backup streams, numbered in order.
type Notice = (u64, Chunk);

/// The look-ahead of one stream; it stops when dropped.
pub struct ReadAhead {
    /// Reads the backup's output for the chunks it streams.
    stream: Guard,
    chunks: mpsc::Sender<Notice>,
    told: u64,
    /// The number of the newest notice the read-ahead has done.
    done: watch::Receiver<u64>,
}

impl ReadAhead {
    /// Reads ahead in `datadir`, on a thread of its own.
    pub fn start(datadir: PathBuf) -> std::io::Result<ReadAhead> {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done) = watch::channel(0);
        std::thread::Builder::new()
            .name("clone-read-ahead".into())
            .spawn(move || {
                if let Err(e) = crate::sched::background() {
                    debug!("the read-ahead keeps its priority: {e}");
                }
                if let Err(e) = crate::sched::idle_io() {
                    debug!("the read-ahead keeps its I/O class: {e}");
                }
                run(&datadir, &rx, &done_tx)
            })?;
        Ok(ReadAhead {
            stream: Guard::new(u64::MAX),
            chunks: tx,
            told: 0,
            done,
        })
    }

    /// The backup's output, `bytes` at a time, as it is taken from its pipe:
    /// returns once the read-ahead is ahead of what the backup reads next.
    /// An error when the output is not read as an xbstream.
    pub async fn streamed(&mut self, bytes: &[u8]) -> Result<(), Refusal> {
        self.stream.check(bytes)?;
        if let Some(chunk) = self.stream.take_latest() {
            self.streaming(chunk).await;
        }
        Ok(())
    }

    /// The backup streams `chunk`: it has read it, and reads what follows
    /// once the chunk has left its pipe. Returns when the read-ahead has
    /// that in the cache (or after [`CATCH_UP_MAX`]), so that a stream held
    /// here, before the rest of the chunk is taken, keeps the backup behind
    /// its read-ahead at any rate: a backup that overtook it would read the
    /// disk in its own large reads again.
    async fn streaming(&mut self, chunk: Chunk) {
        if !tablespace(&chunk.path) {
            return;
        }
        self.told += 1;
        if self.chunks.send((self.told, chunk)).is_err() {
            return;
        }
        let told = self.told;
        let _ = tokio::time::timeout(CATCH_UP_MAX, self.done.wait_for(|d| *d >= told)).await;
    }
}

/// Whether the backup streams `path` as an InnoDB tablespace, read 10 MB
/// per `pread` in the file's order: a table's `.ibd`, the system
/// tablespace (`ibdata1`), an undo tablespace (`undo001`). Nothing else is
/// read ahead, nor does the stream wait for it: the redo log's chunks are
/// records the backup copied itself, their offsets are the copy's, not the
/// file's (read ahead, each one held the stream for 20 MB of the server's
/// log, the last one while the backup blocked commits); the other engines'
/// files are copied in the backup's locked phases, where a wait would hold
/// commits longer.
fn tablespace(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    name.ends_with(".ibd") || numbered("ibdata") || numbered("undo")
}

/// The file being read ahead, and how far.
struct Reading {
    path: String,
    file: File,
    to: u64,
}

fn run(datadir: &Path, chunks: &mpsc::Receiver<Notice>, done: &watch::Sender<u64>) {
    let mut reading: Option<Reading> = None;
    let mut pending = None;
    loop {
        let Some((mut told, mut chunk)) = pending.take().or_else(|| chunks.recv().ok()) else {
            return;
        };
        // Only the newest counts: the backup has moved past the others.
        while let Ok(newer) = chunks.try_recv() {
            (told, chunk) = newer;
        }
        read_ahead(datadir, &mut reading, &chunk, chunks, &mut pending);
        done.send_replace(told);
    }
}

/// Reads ahead of `chunk`, until done or a newer notice comes (left in
/// `pending`).
fn read_ahead(
    datadir: &Path,
    reading: &mut Option<Reading>,
    chunk: &Chunk,
    chunks: &mpsc::Receiver<Notice>,
    pending: &mut Option<Notice>,
) {
    if reading.as_ref().is_none_or(|r| r.path != chunk.path) {
        *reading = open_file(datadir, &chunk.path).map(|file| Reading {
            path: chunk.path.clone(),
            file,
            to: 0,
        });
    }
    let Some(r) = reading else {
        // Not a file of the datadir (the backup's own metadata).
        return;
    };
    // Streamed: its pages may go.
    let _ = rustix::fs::fadvise(
        &r.file,
        chunk.offset,
        NonZeroU64::new(chunk.len),
        Advice::DontNeed,
    );
    r.to = r.to.max(chunk.end());
    let end = chunk.end() + LEAD;
    while r.to < end {
        match fetch(&r.file, r.to, PIECE.min((end - r.to) as usize)) {
            Ok(0) | Err(_) => break,
            Ok(n) => r.to += n as u64,
        }
        if let Ok(newer) = chunks.try_recv() {
            *pending = Some(newer);
            break;
        }
    }
}

/// Brings `len` bytes of `file` from `at` into the page cache and waits
/// until they are in; returns how many the file had (0 past its end). One
/// `readahead(2)` request asks for them, and a read of the request's last
/// byte waits for them: the pages come in together, and none is copied out
/// to be thrown away, as a read of the whole piece would.
fn fetch(file: &File, at: u64, len: usize) -> std::io::Result<usize> {
    // SAFETY: readahead takes no pointer; the descriptor is open.
    if unsafe { libc::readahead(file.as_raw_fd(), at as libc::off64_t, len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut byte = [0u8; 1];
    if file.read_at(&mut byte, at + len as u64 - 1)? == 1 {
        return Ok(len);
    }
    // The file ends inside the piece.
    let size = file.metadata()?.len();
    if size <= at {
        return Ok(0);
    }
    file.read_at(&mut byte, size - 1)?;
    Ok((size - at) as usize)
}

/// The datadir's file at `path`, for reads that fetch what they ask and
/// no more (the kernel's own read-ahead would make them large again).
fn open_file(datadir: &Path, path: &str) -> Option<File> {
    let file = File::open(datadir.join(path))
        .inspect_err(|e| debug!(path, error = %e, "not read ahead"))
        .ok()?;
    rustix::fs::fadvise(&file, 0, None, Advice::Random).ok()?;
    Some(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::time::Instant;

    const MB: u64 = 1 << 20;

    /// Whether the file's bytes from `from` for `len` are all in the page
    /// cache (asking does not bring them in).
    fn cached(file: &File, from: u64, len: u64) -> bool {
        use std::os::fd::AsRawFd as _;
        let len = len as usize;
        // SAFETY: a fresh read-only mapping of the file, only asked about
        // and unmapped before return; `pages` holds one byte per page.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                from as libc::off_t,
            );
            assert_ne!(map, libc::MAP_FAILED);
            let mut pages = vec![0u8; len.div_ceil(4096)];
            let r = libc::mincore(map, len, pages.as_mut_ptr());
            libc::munmap(map, len);
            assert_eq!(r, 0);
            pages.iter().all(|p| p & 1 == 1)
        }
    }

    fn drop_cache(file: &File) {
        rustix::fs::fadvise(file, 0, None, Advice::DontNeed).unwrap();
    }

    /// A directory holding file `name` of `mb` MiB, none of it in the page
    /// cache; on the disk, not a tmpfs, so that its pages can leave it.
    fn uncached_file(name: &str, mb: u8) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join(name);
        let mut f = File::create(&path).unwrap();
        for i in 0..mb {
            f.write_all(&[i; MB as usize]).unwrap();
        }
        f.sync_all().unwrap();
        let file = File::open(&path).unwrap();
        drop_cache(&file);
        (dir, file)
    }

    fn chunk(offset: u64) -> Chunk {
        Chunk {
            path: "t.ibd".into(),
            offset,
            len: 10 * MB,
        }
    }

    #[test]
    fn only_tablespaces_are_read_ahead() {
        for path in ["ibdata1", "undo001", "app/t.ibd", "app/t#P#p1.ibd"] {
            assert!(tablespace(path), "{path}");
        }
        for path in [
            "ib_logfile0",
            "aria_log.00000001",
            "app/t.frm",
            "app/t.MYD",
            "ibdata",
            "undo_x",
            "xtrabackup_info",
        ] {
            assert!(!tablespace(path), "{path}");
        }
    }

    #[tokio::test]
    async fn the_redo_log_is_not_read_ahead() {
        let (dir, file) = uncached_file("ib_logfile0", 25);
        let mut ahead = ReadAhead::start(dir.path().to_owned()).unwrap();
        ahead
            .streaming(Chunk {
                path: "ib_logfile0".into(),
                offset: 0,
                len: MB,
            })
            .await;
        // Give a read-ahead that was asked time to start.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!cached(&file, MB, MB), "the redo log was read ahead");
        assert_eq!(ahead.told, 0, "the stream waited on the read-ahead");
    }

    #[tokio::test]
    async fn the_next_two_chunks_come_into_the_cache_before_the_stream_goes_on() {
        let (dir, file) = uncached_file("t.ibd", 45);
        assert!(!cached(&file, 0, MB), "the page cache keeps this file");
        // The backup has read its first chunk (exactly that: no read-ahead
        // of the kernel's here).
        rustix::fs::fadvise(&file, 0, None, Advice::Random).unwrap();
        std::io::Read::read_exact(&mut &file, &mut vec![0; (10 * MB) as usize]).unwrap();
        assert!(cached(&file, 0, 10 * MB));

        let mut ahead = ReadAhead::start(dir.path().to_owned()).unwrap();
        let started = Instant::now();
        ahead.streaming(chunk(0)).await;
        assert!(
            started.elapsed() < CATCH_UP_MAX,
            "the read-ahead took too long"
        );
        assert!(cached(&file, 10 * MB, 20 * MB), "the stream went on first");
        assert!(!cached(&file, 0, MB), "the streamed chunk stayed");
        assert!(!cached(&file, 30 * MB, MB), "read past the lead");
        // The backup streams its second chunk: the lead moves on by one.
        ahead.streaming(chunk(10 * MB)).await;
        assert!(cached(&file, 30 * MB, 10 * MB), "the stream went on first");
        drop(ahead);
        assert!(!cached(&file, 10 * MB, MB), "the streamed chunk stayed");
        assert!(cached(&file, 20 * MB, 10 * MB), "the next chunk left");
        assert!(!cached(&file, 40 * MB, MB), "read past the lead");
        // Names that are not the datadir's files are passed over.
        let mut ahead = ReadAhead::start(dir.path().to_owned()).unwrap();
        let started = Instant::now();
        ahead
            .streaming(Chunk {
                path: "xtrabackup_info".into(),
                offset: 0,
                len: 10,
            })
            .await;
        assert!(started.elapsed() < CATCH_UP_MAX);
    }
}
