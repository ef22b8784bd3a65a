//! A capped donor's reads of its own datadir, made small. `mariadb-backup`
//! reads a data file 10 MB per `pread` (a cursor of 640 pages, fixed in its
//! source), and a commit whose write reaches the disk behind such a read
//! waits for all of it: a cap on the stream's rate spaces those reads out
//! but cannot make one smaller. So a capped backup reads through the page
//! cache, and this reads ahead of it: as the header of each chunk the backup
//! streams passes, the next two chunks of the same file are read into the
//! cache a small piece at a time, one read in flight, and the chunk just
//! streamed leaves the cache. The backup's next read finds its pages there, and the
//! disk sees small reads only. The first chunk of each file is the backup's
//! own read: the order of the files is its own.

use std::fs::File;
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rustix::fs::Advice;
use tracing::debug;

use super::xbstream::Chunk;

/// One read of the look-ahead: no longer than a commit should wait behind.
const PIECE: usize = 128 << 10;
/// What `mariadb-backup` reads at once and streams as one chunk.
const BACKUP_READ: u64 = 10 << 20;
/// How far past the chunk just streamed the cache is kept filled: the
/// backup's next read, and the one after, so that a look-ahead slowed down
/// for a moment is still ahead.
const LEAD: u64 = 2 * BACKUP_READ;

/// The look-ahead of one stream; it stops when dropped.
pub struct ReadAhead {
    chunks: mpsc::Sender<Chunk>,
}

impl ReadAhead {
    /// Reads ahead in `datadir`, on a thread of its own.
    pub fn start(datadir: PathBuf) -> std::io::Result<ReadAhead> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("clone-read-ahead".into())
            .spawn(move || run(&datadir, &rx))?;
        Ok(ReadAhead { chunks: tx })
    }

    /// The backup streams `chunk`: it has read it, and reads what follows
    /// next. Never waits: a look-ahead that is behind skips to the newest.
    pub fn streaming(&self, chunk: Chunk) {
        let _ = self.chunks.send(chunk);
    }
}

/// The file being read ahead, and how far.
struct Reading {
    path: String,
    file: File,
    to: u64,
}

fn run(datadir: &Path, chunks: &mpsc::Receiver<Chunk>) {
    let mut buf = vec![0u8; PIECE];
    let mut reading: Option<Reading> = None;
    let mut pending = None;
    loop {
        let Some(mut chunk) = pending.take().or_else(|| chunks.recv().ok()) else {
            return;
        };
        // Only the newest counts: the backup has moved past the others.
        while let Ok(newer) = chunks.try_recv() {
            chunk = newer;
        }
        if reading.as_ref().is_none_or(|r| r.path != chunk.path) {
            reading = open_file(datadir, &chunk.path).map(|file| Reading {
                path: chunk.path.clone(),
                file,
                to: 0,
            });
        }
        let Some(r) = &mut reading else {
            // Not a file of the datadir (the backup's own metadata).
            continue;
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
            match r
                .file
                .read_at(&mut buf[..PIECE.min((end - r.to) as usize)], r.to)
            {
                Ok(0) | Err(_) => break,
                Ok(n) => r.to += n as u64,
            }
            if let Ok(newer) = chunks.try_recv() {
                pending = Some(newer);
                break;
            }
        }
    }
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
    use std::time::{Duration, Instant};

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

    /// Waits until the file's bytes from `from` for `len` are in the cache.
    fn comes_in(file: &File, from: u64, len: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cached(file, from, len) {
            assert!(
                Instant::now() < deadline,
                "{from}..{} never came in",
                from + len
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn the_next_two_chunks_come_into_the_cache_and_the_streamed_one_leaves() {
        // On the disk, not a tmpfs: its pages can leave the cache.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("t.ibd");
        let mut f = File::create(&path).unwrap();
        for i in 0..45u8 {
            f.write_all(&[i; MB as usize]).unwrap();
        }
        f.sync_all().unwrap();
        let file = File::open(&path).unwrap();
        drop_cache(&file);
        assert!(!cached(&file, 0, MB), "the page cache keeps this file");
        // The backup has read its first chunk (exactly that: no read-ahead
        // of the kernel's here).
        rustix::fs::fadvise(&file, 0, None, Advice::Random).unwrap();
        std::io::Read::read_exact(&mut &file, &mut vec![0; (10 * MB) as usize]).unwrap();
        assert!(cached(&file, 0, 10 * MB));

        let ahead = ReadAhead::start(dir.path().to_owned()).unwrap();
        let streams = |offset| {
            ahead.streaming(Chunk {
                path: "t.ibd".into(),
                offset,
                len: 10 * MB,
            })
        };
        streams(0);
        comes_in(&file, 10 * MB, 20 * MB);
        assert!(!cached(&file, 0, MB), "the streamed chunk stayed");
        assert!(!cached(&file, 30 * MB, MB), "read past the lead");
        // The backup streams its second chunk: the lead moves on by one.
        streams(10 * MB);
        comes_in(&file, 30 * MB, 10 * MB);
        drop(ahead);
        assert!(!cached(&file, 10 * MB, MB), "the streamed chunk stayed");
        assert!(cached(&file, 20 * MB, 10 * MB), "the next chunk left");
        assert!(!cached(&file, 40 * MB, MB), "read past the lead");
        // Names that are not the datadir's files are passed over.
        let ahead = ReadAhead::start(dir.path().to_owned()).unwrap();
        ahead.streaming(Chunk {
            path: "xtrabackup_info".into(),
            offset: 0,
            len: 10,
        });
    }
}
