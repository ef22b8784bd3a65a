//! The xbstream format, the one both engines' copies travel in (MariaDB's
//! `mariadb-backup --stream`, a MySQL backup's files written by
//! [`file_chunk`]). A guard on a stream, read as it passes to `mbstream -x`
//! or to [`Extractor`]: every chunk header is parsed before the chunk is
//! handed on, and the whole stream is refused on a name that would land
//! outside the datadir (absolute, a `..` component, a NUL, empty), on bytes
//! that are not xbstream, or once it grows past a cap. The donor is not
//! trusted to send only its datadir, nor a bucket to hold only backups.
//!
//! A chunk: the magic `XBSTCK01`, a flags byte, a type byte (`P` payload, `E`
//! end of a file), the path's length (u32, little-endian) and the path; a
//! payload chunk then has its length and offset (u64 each), a CRC-32 and the
//! payload. `mbstream` checks the CRCs; this guard checks what it would write
//! where.

use std::fmt;

const MAGIC: &[u8; 8] = b"XBSTCK01";
/// Magic, flags, type, path length.
const FIXED: usize = 8 + 1 + 1 + 4;
/// Payload length, payload offset, checksum.
const PAYLOAD_HEADER: usize = 8 + 8 + 4;
/// The longest path `mbstream` takes (FN_REFLEN).
const MAX_PATH: usize = 512;
/// An unknown chunk type that may be skipped (the flags' ignorable bit).
const IGNORABLE: u8 = 0x01;
/// This agent's directory chunk, sent ignorable: xbstream itself has none,
/// and a MySQL datadir holds directories a server needs even when empty.
const DIRECTORY: u8 = b'D';

/// Why a stream was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotXbstream {
        offset: u64,
    },
    UnknownChunk {
        kind: u8,
        offset: u64,
    },
    UnsafePath {
        path: String,
    },
    AgentFile {
        path: String,
    },
    TooLarge {
        cap: u64,
    },
    Truncated {
        offset: u64,
    },
    /// A payload whose bytes do not match its chunk's CRC-32.
    Checksum {
        path: String,
        offset: u64,
    },
    /// The extractor could not write what the stream holds.
    Write {
        path: String,
        why: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotXbstream { offset } => {
                write!(f, "not an xbstream: no chunk header at byte {offset}")
            }
            Refusal::UnknownChunk { kind, offset } => {
                write!(
                    f,
                    "unknown xbstream chunk type 0x{kind:02x} at byte {offset}"
                )
            }
            Refusal::UnsafePath { path } => write!(
                f,
                "the stream names {path:?}, which would land outside the datadir: refused whole"
            ),
            Refusal::AgentFile { path } => write!(
                f,
                "the stream names {path:?}, a file of the agent's own (a donor's record, or its copy set aside by a re-clone), which only the recipient writes: refused whole"
            ),
            Refusal::TooLarge { cap } => write!(
                f,
                "the stream grew past {cap} bytes (twice the donor's datadir plus 256 MiB, at most the volume's free space): refused"
            ),
            Refusal::Truncated { offset } => {
                write!(f, "the stream ends inside a chunk, at byte {offset}")
            }
            Refusal::Checksum { path, offset } => write!(
                f,
                "the bytes of {path:?} at offset {offset} do not match their checksum"
            ),
            Refusal::Write { path, why } => write!(f, "cannot write {path:?}: {why}"),
        }
    }
}

/// Where the guard is inside the current chunk.
#[derive(Debug)]
enum At {
    /// Collecting the fixed header, then the path, then (payload chunks)
    /// the payload header: `need` bytes in all so far.
    Header { need: usize },
    /// Inside a payload: this many bytes to go.
    Payload(u64),
    /// Inside the payload of an ignorable chunk: this many bytes to go.
    Skip(u64),
}

/// A payload chunk's place: `len` bytes of the file at `path` (relative to
/// the datadir), from `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub path: String,
    pub offset: u64,
    pub len: u64,
}

impl Chunk {
    /// Where the file's next chunk starts.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }
}

/// Checks a stream chunk by chunk; feed it every byte in order.
#[derive(Debug)]
pub struct Guard {
    at: At,
    header: Vec<u8>,
    seen: u64,
    cap: u64,
    /// The newest payload chunk whose header has passed, until taken.
    latest: Option<Chunk>,
}

/// What [`Guard::scan`] tells of a stream, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A payload chunk starts: `chunk.len` bytes of data follow, whose
    /// CRC-32 is `crc32`.
    Payload { chunk: &'a Chunk, crc32: u32 },
    /// Bytes of the current payload, in order.
    Data(&'a [u8]),
    /// The file at this path is complete.
    EndOfFile(&'a str),
    /// A directory (this agent's own chunk, which `mbstream` skips): made
    /// even when no file of the stream is in it.
    Directory(&'a str),
}

impl Guard {
    /// A guard refusing streams longer than `cap` bytes.
    pub fn new(cap: u64) -> Guard {
        Guard {
            at: At::Header { need: FIXED },
            header: Vec::with_capacity(FIXED + MAX_PATH + PAYLOAD_HEADER),
            seen: 0,
            cap,
            latest: None,
        }
    }

    /// The newest payload chunk whose header has passed since the last
    /// call, if any: the donor reads its datadir ahead of the backup by it.
    pub fn take_latest(&mut self) -> Option<Chunk> {
        self.latest.take()
    }

    /// The cap for a donor whose datadir is `estimate` bytes on a volume
    /// with `free` bytes: twice the estimate (the redo log a busy donor
    /// writes during the copy comes on top of its files) plus 256 MiB, never
    /// more than the free space.
    pub fn cap_for(estimate: Option<u64>, free: u64) -> u64 {
        match estimate {
            Some(e) => e.saturating_mul(2).saturating_add(256 << 20).min(free),
            None => free,
        }
    }

    /// Checks the next bytes of the stream. An error comes at the latest
    /// with the header of a chunk that must not be written, before any of
    /// its payload.
    pub fn check(&mut self, data: &[u8]) -> Result<(), Refusal> {
        self.scan(data, &mut |_| Ok(()))
    }

    /// Checks the next bytes of the stream as [`Guard::check`] does, and
    /// tells `on` what they hold; an error from `on` ends the scan.
    pub fn scan(
        &mut self,
        mut data: &[u8],
        on: &mut dyn FnMut(Piece<'_>) -> Result<(), Refusal>,
    ) -> Result<(), Refusal> {
        if self.seen.saturating_add(data.len() as u64) > self.cap {
            return Err(Refusal::TooLarge { cap: self.cap });
        }
        while !data.is_empty() {
            match self.at {
                At::Payload(left) | At::Skip(left) => {
                    let n = left.min(data.len() as u64) as usize;
                    let skip = matches!(self.at, At::Skip(_));
                    if !skip {
                        on(Piece::Data(&data[..n]))?;
                    }
                    self.advance(n);
                    data = &data[n..];
                    if left == n as u64 {
                        self.next_chunk();
                    } else if skip {
                        self.at = At::Skip(left - n as u64);
                    } else {
                        self.at = At::Payload(left - n as u64);
                    }
                }
                At::Header { need } => {
                    let n = (need - self.header.len()).min(data.len());
                    self.header.extend_from_slice(&data[..n]);
                    self.advance(n);
                    data = &data[n..];
                    if self.header.len() == need {
                        self.header_step(on)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The stream ended: it must end between chunks.
    pub fn finish(&self) -> Result<(), Refusal> {
        match self.at {
            At::Header { .. } if self.header.is_empty() => Ok(()),
            _ => Err(Refusal::Truncated { offset: self.seen }),
        }
    }

    fn advance(&mut self, n: usize) {
        self.seen += n as u64;
    }

    fn next_chunk(&mut self) {
        self.header.clear();
        self.at = At::Header { need: FIXED };
    }

    /// The header has `need` bytes: check them, and say what comes next.
    fn header_step(
        &mut self,
        on: &mut dyn FnMut(Piece<'_>) -> Result<(), Refusal>,
    ) -> Result<(), Refusal> {
        let start = self.seen - self.header.len() as u64;
        let h = &self.header;
        if h.len() == FIXED {
            if &h[..8] != MAGIC {
                return Err(Refusal::NotXbstream { offset: start });
            }
            let path_len = u32::from_le_bytes([h[10], h[11], h[12], h[13]]) as usize;
            if path_len == 0 || path_len >= MAX_PATH {
                return Err(Refusal::UnsafePath {
                    path: format!("<a name of {path_len} bytes>"),
                });
            }
            self.at = At::Header {
                need: FIXED + path_len,
            };
            return Ok(());
        }
        let (flags, kind) = (h[8], h[9]);
        let path_end = FIXED + u32::from_le_bytes([h[10], h[11], h[12], h[13]]) as usize;
        if h.len() == path_end {
            check_path(&h[FIXED..path_end])?;
            match kind {
                b'E' => {
                    on(Piece::EndOfFile(&String::from_utf8_lossy(
                        &h[FIXED..path_end],
                    )))?;
                    self.next_chunk()
                }
                b'P' => {
                    self.at = At::Header {
                        need: path_end + PAYLOAD_HEADER,
                    }
                }
                _ if flags & IGNORABLE != 0 => {
                    self.at = At::Header {
                        need: path_end + PAYLOAD_HEADER,
                    }
                }
                _ => {
                    return Err(Refusal::UnknownChunk {
                        kind,
                        offset: start,
                    });
                }
            }
            return Ok(());
        }
        let len = u64::from_le_bytes(h[path_end..path_end + 8].try_into().expect("8 bytes"));
        if len > self.cap {
            return Err(Refusal::TooLarge { cap: self.cap });
        }
        if kind == b'P' {
            let at = path_end + 8;
            let chunk = Chunk {
                path: String::from_utf8_lossy(&h[FIXED..path_end]).into_owned(),
                offset: u64::from_le_bytes(h[at..at + 8].try_into().expect("8 bytes")),
                len,
            };
            let crc32 = u32::from_le_bytes(h[at + 8..at + 12].try_into().expect("4 bytes"));
            on(Piece::Payload {
                chunk: &chunk,
                crc32,
            })?;
            self.latest = Some(chunk);
        } else {
            if kind == DIRECTORY {
                on(Piece::Directory(&String::from_utf8_lossy(
                    &h[FIXED..path_end],
                )))?;
            }
            // An ignorable chunk of another kind: its payload is skipped.
            if len > 0 {
                self.at = At::Skip(len);
                return Ok(());
            }
        }
        if len == 0 {
            self.next_chunk();
        } else {
            self.at = At::Payload(len);
        }
        Ok(())
    }
}

/// A payload chunk of the file at `path`: `payload` is its bytes from
/// `offset`, as `mariadb-backup --stream=xbstream` writes them.
pub fn file_chunk(path: &str, offset: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED + path.len() + PAYLOAD_HEADER + payload.len());
    chunk_head(&mut out, b'P', path);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The chunk that makes the directory `path` (skipped by `mbstream`).
pub fn directory(path: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED + path.len() + PAYLOAD_HEADER);
    chunk_head(&mut out, DIRECTORY, path);
    out[8] = IGNORABLE;
    out.extend_from_slice(&[0; PAYLOAD_HEADER]);
    out
}

/// The chunk that ends the file at `path`.
pub fn end_of_file(path: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED + path.len());
    chunk_head(&mut out, b'E', path);
    out
}

fn chunk_head(out: &mut Vec<u8>, kind: u8, path: &str) {
    out.extend_from_slice(MAGIC);
    out.push(0);
    out.push(kind);
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path.as_bytes());
}

/// Writes the files of an xbstream into a directory, as `mbstream -x -C`
/// does, behind the [`Guard`]: every payload's CRC-32 is checked once its
/// last byte has been written (the copy is not used before the stream's
/// trailer vouches for all of it anyway).
pub struct Extractor {
    guard: Guard,
    files: Files,
}

struct Files {
    dir: std::path::PathBuf,
    /// The file being written and where the next data goes.
    open: Option<(String, std::fs::File)>,
    at: u64,
    /// The current payload's end, its expected CRC-32 and the CRC so far.
    expect: Option<(Chunk, u32, crc32fast::Hasher)>,
    files: u64,
}

impl Extractor {
    /// Files go into `dir` (which exists); the stream may be `cap` bytes.
    pub fn new(dir: &std::path::Path, cap: u64) -> Extractor {
        Extractor {
            guard: Guard::new(cap),
            files: Files {
                dir: dir.to_owned(),
                open: None,
                at: 0,
                expect: None,
                files: 0,
            },
        }
    }

    /// Writes the next bytes of the stream.
    pub fn write(&mut self, data: &[u8]) -> Result<(), Refusal> {
        let files = &mut self.files;
        self.guard.scan(data, &mut |piece| files.take(piece))
    }

    /// The stream ended: it must end between chunks. Returns how many files
    /// it held.
    pub fn finish(self) -> Result<u64, Refusal> {
        self.guard.finish()?;
        Ok(self.files.files)
    }
}

impl Files {
    fn take(&mut self, piece: Piece<'_>) -> Result<(), Refusal> {
        match piece {
            Piece::Payload { chunk, crc32 } => {
                self.open_file(&chunk.path)?;
                self.at = chunk.offset;
                self.expect = Some((chunk.clone(), crc32, crc32fast::Hasher::new()));
                if chunk.len == 0 {
                    self.payload_done()?;
                }
            }
            Piece::Data(bytes) => {
                let Some((path, file)) = &self.open else {
                    return Ok(());
                };
                std::os::unix::fs::FileExt::write_all_at(file, bytes, self.at).map_err(|e| {
                    Refusal::Write {
                        path: path.clone(),
                        why: e.to_string(),
                    }
                })?;
                self.at += bytes.len() as u64;
                if let Some((chunk, _, crc)) = &mut self.expect {
                    crc.update(bytes);
                    if self.at == chunk.end() {
                        self.payload_done()?;
                    }
                }
            }
            Piece::EndOfFile(path) => {
                self.open_file(path)?;
                self.open = None;
            }
            Piece::Directory(path) => {
                std::fs::create_dir_all(self.dir.join(path)).map_err(|e| Refusal::Write {
                    path: path.to_owned(),
                    why: e.to_string(),
                })?;
            }
        }
        Ok(())
    }

    fn payload_done(&mut self) -> Result<(), Refusal> {
        if let Some((chunk, want, crc)) = self.expect.take()
            && crc.finalize() != want
        {
            return Err(Refusal::Checksum {
                path: chunk.path,
                offset: chunk.offset,
            });
        }
        Ok(())
    }

    /// Makes `path` the file being written, creating it (and its folders).
    fn open_file(&mut self, path: &str) -> Result<(), Refusal> {
        if self.open.as_ref().is_some_and(|(p, _)| p == path) {
            return Ok(());
        }
        let full = self.dir.join(path);
        let write = |e: std::io::Error| Refusal::Write {
            path: path.to_owned(),
            why: e.to_string(),
        };
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(write)?;
        }
        let new = !full.exists();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&full)
            .map_err(write)?;
        self.files += u64::from(new);
        self.open = Some((path.to_owned(), file));
        Ok(())
    }
}

/// A name `mbstream -x -C <dir>` may create: relative, inside the directory.
fn check_path(raw: &[u8]) -> Result<(), Refusal> {
    let unsafe_path = || Refusal::UnsafePath {
        path: String::from_utf8_lossy(raw).into_owned(),
    };
    if raw.first() == Some(&b'/') || raw.contains(&0) {
        return Err(unsafe_path());
    }
    for c in raw.split(|b| *b == b'/') {
        if c == b".." {
            return Err(unsafe_path());
        }
        // The agent's records (what a clone was, a re-clone request, a
        // divergence, a master's server_id, copies set aside) are written
        // by the recipient alone: a donor that sends one would plant it.
        if c.starts_with(crate::datadir::AGENT_PREFIX.as_bytes()) {
            return Err(Refusal::AgentFile {
                path: String::from_utf8_lossy(raw).into_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One file as `mariadb-backup --stream=xbstream` writes it.
    fn file(path: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = file_chunk(path, 0, payload);
        out.extend(end_of_file(path));
        out
    }

    #[test]
    fn the_extractor_writes_every_file_from_any_pieces() {
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let mut s = file_chunk("ibdata1", 0, &big[..40_000]);
        s.extend(file_chunk("ibdata1", 40_000, &big[40_000..]));
        s.extend(end_of_file("ibdata1"));
        s.extend(file("app/t.ibd", b"rows"));
        s.extend(end_of_file("empty"));
        s.extend(directory("mysql"));
        for piece in [1, 7, 4096, 1 << 20] {
            let dir = tempfile::tempdir().unwrap();
            let mut x = Extractor::new(dir.path(), 1 << 20);
            for part in s.chunks(piece) {
                x.write(part).unwrap();
            }
            assert_eq!(x.finish(), Ok(3), "pieces of {piece}");
            assert_eq!(std::fs::read(dir.path().join("ibdata1")).unwrap(), big);
            assert_eq!(
                std::fs::read(dir.path().join("app/t.ibd")).unwrap(),
                b"rows"
            );
            assert_eq!(std::fs::read(dir.path().join("empty")).unwrap(), b"");
            assert!(dir.path().join("mysql").is_dir());
        }
    }

    #[test]
    fn the_extractor_refuses_a_payload_its_checksum_does_not_match() {
        let mut s = file("ibdata1", b"good bytes");
        let last = s.len() - (FIXED + "ibdata1".len()) - 1;
        s[last] ^= 1;
        let dir = tempfile::tempdir().unwrap();
        let mut x = Extractor::new(dir.path(), 1 << 20);
        assert_eq!(
            x.write(&s),
            Err(Refusal::Checksum {
                path: "ibdata1".into(),
                offset: 0
            })
        );
        // And a name outside the directory is refused before it is made.
        let mut x = Extractor::new(dir.path(), 1 << 20);
        assert!(matches!(
            x.write(&file("../evil", b"x")),
            Err(Refusal::UnsafePath { .. })
        ));
        assert!(!dir.path().parent().unwrap().join("evil").exists());
    }

    fn run(stream: &[u8], piece: usize, cap: u64) -> Result<(), Refusal> {
        let mut g = Guard::new(cap);
        for part in stream.chunks(piece) {
            g.check(part)?;
        }
        g.finish()
    }

    #[test]
    fn a_backup_passes_in_any_pieces() {
        let mut s = file("ibdata1", &[7; 5000]);
        s.extend(file("app/t.ibd", b"rows"));
        s.extend(file("xtrabackup_binlog_info", b""));
        for piece in [1, 3, 14, 100, 1 << 20] {
            assert_eq!(run(&s, piece, 1 << 20), Ok(()), "pieces of {piece}");
        }
    }

    #[test]
    fn the_newest_payload_chunk_is_told_once() {
        let mut s = file("ibdata1", &[7; 5000]);
        let second = s.len();
        s.extend(file("app/t.ibd", b"rows"));
        // The second file's payload at offset 4096, as a later chunk is.
        let offset_at = second + FIXED + "app/t.ibd".len() + 8;
        s[offset_at..offset_at + 8].copy_from_slice(&4096u64.to_le_bytes());
        let mut g = Guard::new(1 << 20);
        g.check(&s[..100]).unwrap();
        let first = Chunk {
            path: "ibdata1".into(),
            offset: 0,
            len: 5000,
        };
        assert_eq!(g.take_latest(), Some(first));
        assert_eq!(g.take_latest(), None);
        for piece in s[100..].chunks(3) {
            g.check(piece).unwrap();
        }
        let t = Chunk {
            path: "app/t.ibd".into(),
            offset: 4096,
            len: 4,
        };
        assert_eq!(g.take_latest(), Some(t));
    }

    #[test]
    fn names_outside_the_datadir_are_refused() {
        for bad in [
            "../zz-evil.cnf",
            "/etc/passwd",
            "app/../../x",
            "..",
            "a/\0b",
        ] {
            let mut s = file("ibdata1", b"ok");
            s.extend(file(bad, b"evil"));
            let got = run(&s, 7, 1 << 20);
            assert!(
                matches!(got, Err(Refusal::UnsafePath { .. })),
                "{bad:?}: {got:?}"
            );
        }
        // Dots inside a name are only a name.
        assert_eq!(run(&file("app/..t.ibd", b"x"), 5, 1 << 20), Ok(()));
        // The agent's own records are never a donor's to send.
        for planted in [
            ".mysql-sts-server-id",
            ".mysql-sts-diverged",
            ".mysql-sts-old/1796000000/ibdata1",
            "app/.mysql-sts-clone.json",
        ] {
            let got = run(&file(planted, b"x"), 5, 1 << 20);
            assert!(
                matches!(got, Err(Refusal::AgentFile { .. })),
                "{planted:?}: {got:?}"
            );
        }
    }

    #[test]
    fn the_bad_chunk_is_refused_before_its_payload() {
        let good = file("ibdata1", b"ok");
        let mut s = good.clone();
        s.extend(file("../evil", b"payload"));
        let mut g = Guard::new(1 << 20);
        g.check(&good).unwrap();
        // Its header (magic, flags, type, length, name) is enough.
        let header = FIXED + "../evil".len();
        assert!(g.check(&s[good.len()..good.len() + header]).is_err());
    }

    #[test]
    fn not_xbstream_unknown_chunks_truncation_and_size() {
        assert_eq!(
            run(b"GET / HTTP/1.1\r\n\r\n", 4, 1 << 20),
            Err(Refusal::NotXbstream { offset: 0 })
        );
        let mut odd = file("a", b"x");
        odd[9] = b'Z';
        assert!(matches!(
            run(&odd, 64, 1 << 20),
            Err(Refusal::UnknownChunk { kind: b'Z', .. })
        ));
        // An unknown type marked ignorable passes (mbstream skips it).
        odd[8] = IGNORABLE;
        let mut ignorable = odd[..odd.len() - (FIXED + 1)].to_vec();
        ignorable.extend(file("b", b"y"));
        assert_eq!(run(&ignorable, 64, 1 << 20), Ok(()));
        let s = file("ibdata1", &[1; 100]);
        assert!(matches!(
            run(&s[..s.len() - 3], 64, 1 << 20),
            Err(Refusal::Truncated { .. })
        ));
        assert_eq!(run(&s, 64, 50), Err(Refusal::TooLarge { cap: 50 }));
        // A chunk that claims more than the cap is refused at its header.
        let mut g = Guard::new(1000);
        let mut big = file("x", &[0; 10]);
        big[FIXED + 1..FIXED + 9].copy_from_slice(&5000u64.to_le_bytes());
        assert_eq!(
            g.check(&big[..FIXED + 1 + PAYLOAD_HEADER]),
            Err(Refusal::TooLarge { cap: 1000 })
        );
    }

    #[test]
    fn the_cap_follows_the_estimate_and_the_free_space() {
        assert_eq!(
            Guard::cap_for(Some(1 << 30), u64::MAX),
            (2 << 30) + (256 << 20)
        );
        assert_eq!(Guard::cap_for(Some(1 << 30), 1 << 30), 1 << 30);
        assert_eq!(Guard::cap_for(None, 5 << 30), 5 << 30);
    }
}
