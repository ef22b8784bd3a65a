//! The framing of the clone stream a donor sidecar serves: data frames, then
//! exactly one trailer that either vouches for the byte count and CRC-32 of
//! everything sent, or says why the donor failed. A stream that ends without a
//! trailer was cut; a trailer that disagrees with what arrived was corrupted.
//! A data frame may be zstd-compressed (when the recipient asked for it); the
//! count and checksum are of the data as it was, so the trailer vouches for
//! the decompressed bytes.

use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// Response header with the size of the donor's datadir, for the recipient's ETA.
pub const ESTIMATE_HEADER: &str = "x-mysql-sts-estimated-bytes";
/// Request header with the compression a recipient asks for, and response
/// header with the one the donor uses (absent: none).
pub const COMPRESSION_HEADER: &str = "x-mysql-sts-compression";

/// zstd's level for the stream: its fast end (hundreds of MB/s per core).
const ZSTD_LEVEL: i32 = 1;

/// How a clone stream's data frames are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Zstd,
    /// zstd while the link is what holds the stream back (the frames wait
    /// to be sent), none while the backup is.
    Auto,
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Compression, String> {
        match s {
            "none" => Ok(Compression::None),
            "zstd" => Ok(Compression::Zstd),
            "auto" => Ok(Compression::Auto),
            other => Err(format!(
                "unknown compression {other:?} (auto, zstd or none)"
            )),
        }
    }
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
            Compression::Auto => "auto",
        }
    }
}

const DATA: u8 = b'D';
const ZDATA: u8 = b'Z';
const END: u8 = b'E';
const FAIL: u8 = b'F';
const HEADER: usize = 5;
/// Larger frames are refused rather than buffered.
pub const MAX_FRAME: usize = 16 << 20;

/// The trailer of a complete stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    pub bytes: u64,
    pub crc32: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data(Bytes),
    End(Trailer),
    Fail(String),
}

/// A frame's header: its kind, then its payload's length (u32, big-endian).
fn header(kind: u8, len: usize) -> [u8; HEADER] {
    let [a, b, c, d] = (len as u32).to_be_bytes();
    [kind, a, b, c, d]
}

fn frame(kind: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER + payload.len());
    b.put_slice(&header(kind, payload.len()));
    b.put_slice(payload);
    b.freeze()
}

/// The buffers of one stream's data frames, each back here once its frame
/// has been sent: a stream fills the same few buffers over and over. A new
/// buffer per frame costs more CPU than the data's copying: a large
/// allocation is a fresh mapping (musl's allocator maps and unmaps each
/// one), every page of it faulted in, then unmapped again, and on a master
/// donor that CPU is the server's.
#[derive(Clone)]
pub struct FramePool {
    free: Arc<Mutex<Vec<Vec<u8>>>>,
    data: usize,
    keep: usize,
}

impl FramePool {
    /// Frames of up to `data` bytes of data; no more than `keep` buffers
    /// are kept for reuse (as many as a stream has frames in flight).
    pub fn new(data: usize, keep: usize) -> FramePool {
        FramePool {
            free: Arc::default(),
            data,
            keep,
        }
    }

    /// An empty data frame, its data to be read in with [`DataFrame::fill`].
    pub fn frame(&self) -> DataFrame {
        let mut buf = self
            .free
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_else(|| Vec::with_capacity(HEADER + self.data));
        buf.resize(HEADER, 0);
        DataFrame {
            buf,
            pool: self.clone(),
        }
    }
}

/// A data frame filled in place: room for its header, then its data. It
/// goes back to its pool when dropped, sent or not.
pub struct DataFrame {
    buf: Vec<u8>,
    pool: FramePool,
}

impl DataFrame {
    /// The room for data, to read into: no more than the pool's frame size
    /// (a read into it never reallocates).
    pub fn fill(&mut self) -> bytes::buf::Limit<&mut Vec<u8>> {
        let room = HEADER + self.pool.data - self.buf.len();
        (&mut self.buf).limit(room)
    }

    /// The data read in so far.
    pub fn data(&self) -> &[u8] {
        &self.buf[HEADER..]
    }
}

impl AsRef<[u8]> for DataFrame {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for DataFrame {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.free.lock()
            && free.len() < self.pool.keep
        {
            free.push(std::mem::take(&mut self.buf));
        }
    }
}

/// Encodes frames and keeps the running count and checksum of the data.
#[derive(Default)]
pub struct Encoder {
    bytes: u64,
    crc: crc32fast::Hasher,
}

impl Encoder {
    pub fn data(&mut self, chunk: &[u8]) -> Bytes {
        debug_assert!(chunk.len() <= MAX_FRAME);
        self.bytes += chunk.len() as u64;
        self.crc.update(chunk);
        frame(DATA, chunk)
    }

    /// `frame`, its data read in, made a data frame in place: no copy, and
    /// its buffer goes back to its pool once the frame has been sent.
    pub fn seal(&mut self, mut frame: DataFrame) -> Bytes {
        let len = frame.data().len();
        self.bytes += len as u64;
        self.crc.update(frame.data());
        frame.buf[..HEADER].copy_from_slice(&header(DATA, len));
        Bytes::from_owner(frame)
    }

    /// A data frame compressed with zstd, or as it is when that would not
    /// make it smaller.
    pub fn data_compressed(&mut self, chunk: &[u8]) -> Bytes {
        match zstd::bulk::compress(chunk, ZSTD_LEVEL) {
            Ok(z) if z.len() < chunk.len() => {
                self.bytes += chunk.len() as u64;
                self.crc.update(chunk);
                frame(ZDATA, &z)
            }
            _ => self.data(chunk),
        }
    }

    pub fn end(self) -> Bytes {
        let t = Trailer {
            bytes: self.bytes,
            crc32: self.crc.finalize(),
        };
        frame(END, &serde_json::to_vec(&t).expect("trailer serialises"))
    }

    pub fn fail(message: &str) -> Bytes {
        frame(FAIL, message.as_bytes())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamError {
    #[error("the stream was cut after {0} bytes, before the donor's trailer")]
    Truncated(u64),
    #[error("frame of unknown kind {0:#04x} at byte {1}: the stream is corrupt")]
    BadKind(u8, u64),
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit: the stream is corrupt")]
    TooLarge(usize),
    #[error("the trailer is unreadable: the stream is corrupt")]
    BadTrailer,
    #[error(
        "received {got_bytes} bytes with CRC-32 {got_crc:08x}, the donor sent {sent_bytes} bytes with CRC-32 {sent_crc:08x}"
    )]
    Mismatch {
        got_bytes: u64,
        got_crc: u32,
        sent_bytes: u64,
        sent_crc: u32,
    },
    #[error("data after the trailer: the stream is corrupt")]
    AfterEnd,
    #[error("a compressed frame at byte {0} does not decompress: the stream is corrupt")]
    BadCompressed(u64),
    #[error("the donor failed: {0}")]
    DonorFailed(String),
}

/// Reassembles frames from arbitrary chunks and verifies the trailer.
#[derive(Default)]
pub struct Decoder {
    buf: BytesMut,
    bytes: u64,
    /// What came over the wire, frames and all.
    wire: u64,
    crc: crc32fast::Hasher,
    done: bool,
}

impl Decoder {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The data received so far (decompressed).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The bytes of the frames received so far, as they came over the wire.
    pub fn wire_bytes(&self) -> u64 {
        self.wire
    }

    /// The next complete frame, `Ok(None)` when more input is needed. A data
    /// frame is returned only once it is whole; the trailer is checked here.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, StreamError> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        if self.done {
            return Err(StreamError::AfterEnd);
        }
        let kind = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if !matches!(kind, DATA | ZDATA | END | FAIL) {
            return Err(StreamError::BadKind(kind, self.bytes));
        }
        if len > MAX_FRAME {
            return Err(StreamError::TooLarge(len));
        }
        if self.buf.len() < HEADER + len {
            self.buf.reserve(HEADER + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER);
        let payload = self.buf.split_to(len).freeze();
        self.wire += (HEADER + len) as u64;
        match kind {
            DATA => {
                self.bytes += len as u64;
                self.crc.update(&payload);
                Ok(Some(Frame::Data(payload)))
            }
            ZDATA => {
                let data = decompress(&payload).ok_or(StreamError::BadCompressed(self.bytes))?;
                self.bytes += data.len() as u64;
                self.crc.update(&data);
                Ok(Some(Frame::Data(data)))
            }
            END => {
                let t: Trailer =
                    serde_json::from_slice(&payload).map_err(|_| StreamError::BadTrailer)?;
                let got_crc = self.crc.clone().finalize();
                if t.bytes != self.bytes || t.crc32 != got_crc {
                    return Err(StreamError::Mismatch {
                        got_bytes: self.bytes,
                        got_crc,
                        sent_bytes: t.bytes,
                        sent_crc: t.crc32,
                    });
                }
                self.done = true;
                Ok(Some(Frame::End(t)))
            }
            _ => Err(StreamError::DonorFailed(
                String::from_utf8_lossy(&payload).into_owned(),
            )),
        }
    }

    /// Call when the transport ended: anything short of a verified trailer is an error.
    pub fn finish(&self) -> Result<(), StreamError> {
        if self.done && self.buf.is_empty() {
            Ok(())
        } else if self.done {
            Err(StreamError::AfterEnd)
        } else {
            Err(StreamError::Truncated(self.bytes))
        }
    }
}

/// A zstd frame's content, if it is one whose stated size is within a
/// frame's limit (a corrupt or hostile size is not allocated).
fn decompress(z: &[u8]) -> Option<Bytes> {
    let size = zstd::zstd_safe::get_frame_content_size(z).ok()??;
    if size > MAX_FRAME as u64 {
        return None;
    }
    let data = zstd::bulk::decompress(z, size as usize).ok()?;
    (data.len() as u64 == size).then(|| Bytes::from(data))
}

/// How long a donor capped at `rate` bytes per second waits before sending
/// on, having sent `sent` bytes in `elapsed`.
pub fn pace(sent: u64, rate: u64, elapsed: std::time::Duration) -> Option<std::time::Duration> {
    let due = std::time::Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
    due.checked_sub(elapsed).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(chunks: &[&[u8]]) -> Vec<u8> {
        let mut enc = Encoder::default();
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&enc.data(c));
        }
        out.extend_from_slice(&enc.end());
        out
    }

    /// Feeds `wire` in pieces of `step` bytes; returns the data and the outcome.
    fn decode(wire: &[u8], step: usize) -> (Vec<u8>, Result<(), StreamError>) {
        let mut dec = Decoder::default();
        let mut data = Vec::new();
        for piece in wire.chunks(step.max(1)) {
            dec.push(piece);
            loop {
                match dec.next_frame() {
                    Ok(Some(Frame::Data(d))) => data.extend_from_slice(&d),
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => return (data, Err(e)),
                }
            }
        }
        let end = dec.finish();
        (data, end)
    }

    #[test]
    fn pooled_frames_decode_as_copied_ones_and_reuse_their_buffers() {
        let pool = FramePool::new(8, 1);
        let mut enc = Encoder::default();
        let mut wire = Vec::new();
        let mut first = None;
        for piece in [&b"hello "[..], b"world", b""] {
            let mut f = pool.frame();
            // Filling is capped at the pool's frame size.
            let mut room = f.fill();
            assert_eq!(room.remaining_mut(), 8);
            room.put_slice(piece);
            let frame = enc.seal(f);
            let at = frame.as_ptr();
            assert_eq!(
                *first.get_or_insert(at),
                at,
                "a sent frame's buffer is reused"
            );
            wire.extend_from_slice(&frame);
        }
        wire.extend_from_slice(&enc.end());
        assert_eq!(wire, encode(&[b"hello ", b"world", b""]));
        assert_eq!(decode(&wire, 3), (b"hello world".to_vec(), Ok(())));

        // A frame still in flight keeps its buffer; no more than `keep` return.
        let (a, b) = (pool.frame(), pool.frame());
        assert_ne!(a.data().as_ptr(), b.data().as_ptr());
        drop((a, b));
        assert_eq!(pool.free.lock().unwrap().len(), 1);
    }

    #[test]
    fn round_trip_in_any_chunking() {
        let wire = encode(&[b"hello ", b"", b"world", &[7u8; 1000]]);
        for step in [1, 2, 5, 6, 7, 64, wire.len()] {
            let (data, res) = decode(&wire, step);
            assert_eq!(res, Ok(()), "step {step}");
            assert_eq!(data.len(), 11 + 1000);
            assert_eq!(&data[..11], b"hello world");
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let wire = encode(&[b"abc", b"defgh"]);
        for cut in 0..wire.len() {
            let (_, res) = decode(&wire[..cut], 3);
            assert!(
                matches!(res, Err(StreamError::Truncated(_))),
                "cut at {cut}: {res:?}"
            );
        }
    }

    #[test]
    fn corruption_is_detected() {
        let wire = encode(&[b"abcdef", b"ghijkl"]);
        for i in 0..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 0x20;
            let (_, res) = decode(&bad, 4);
            assert!(res.is_err(), "flipped byte {i} went unnoticed");
        }
    }

    #[test]
    fn donor_failure_is_reported() {
        let mut enc = Encoder::default();
        let mut wire = enc.data(b"abc").to_vec();
        wire.extend_from_slice(&Encoder::fail("mariabackup exited with status 1"));
        let (_, res) = decode(&wire, 100);
        assert_eq!(
            res,
            Err(StreamError::DonorFailed(
                "mariabackup exited with status 1".into()
            ))
        );
    }

    fn encode_compressed(chunks: &[&[u8]]) -> Vec<u8> {
        let mut enc = Encoder::default();
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&enc.data_compressed(c));
        }
        out.extend_from_slice(&enc.end());
        out
    }

    #[test]
    fn compressed_round_trip_in_any_chunking() {
        let text = b"a clone stream of pages that compress well ".repeat(2000);
        let noise: Vec<u8> = (0u32..5000)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let wire = encode_compressed(&[&text, &noise, b""]);
        // The text went compressed, the noise as it was.
        assert!(
            wire.len() < text.len() / 4 + noise.len() + 100,
            "{}",
            wire.len()
        );
        for step in [1, 7, 4096, wire.len()] {
            let (data, res) = decode(&wire, step);
            assert_eq!(res, Ok(()), "step {step}");
            assert_eq!(data.len(), text.len() + noise.len());
            assert!(data.starts_with(&text) && data.ends_with(&noise));
        }
        let mut dec = Decoder::default();
        dec.push(&wire);
        while let Ok(Some(_)) = dec.next_frame() {}
        assert_eq!(dec.wire_bytes(), wire.len() as u64);
        assert_eq!(dec.bytes(), (text.len() + noise.len()) as u64);
    }

    #[test]
    fn a_corrupt_compressed_frame_is_refused() {
        let wire = encode_compressed(&[&b"compressible ".repeat(500)]);
        assert_eq!(wire[0], ZDATA);
        for i in HEADER..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 0x55;
            let (_, res) = decode(&bad, 64);
            assert!(res.is_err(), "flipped byte {i} went unnoticed");
        }
        // A frame whose content claims more than a frame may hold is not
        // decompressed.
        let big = zstd::bulk::compress(&vec![0u8; MAX_FRAME + 1], 1).unwrap();
        let (_, res) = decode(&frame(ZDATA, &big), 1 << 20);
        assert!(matches!(res, Err(StreamError::BadCompressed(0))), "{res:?}");
    }

    #[test]
    fn pacing_holds_a_donor_to_its_rate() {
        use std::time::Duration;
        let mib = 1 << 20;
        // 10 MiB sent in 1 s at 5 MiB/s: 1 s early.
        assert_eq!(
            pace(10 * mib, 5 * mib, Duration::from_secs(1)),
            Some(Duration::from_secs(1))
        );
        // On time or late: no wait.
        assert_eq!(pace(5 * mib, 5 * mib, Duration::from_secs(1)), None);
        assert_eq!(pace(mib, 5 * mib, Duration::from_secs(3)), None);
    }

    #[test]
    fn compression_names() {
        for c in [Compression::None, Compression::Zstd, Compression::Auto] {
            assert_eq!(c.as_str().parse::<Compression>(), Ok(c));
        }
        assert!("gzip".parse::<Compression>().is_err());
    }

    #[test]
    fn oversized_frame_is_refused() {
        let mut wire = vec![DATA];
        wire.extend_from_slice(&u32::MAX.to_be_bytes());
        let (_, res) = decode(&wire, 100);
        assert!(matches!(res, Err(StreamError::TooLarge(_))));
    }
}
