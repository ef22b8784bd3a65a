//! The framing of the clone stream a donor sidecar serves: data frames, then
//! exactly one trailer that either vouches for the byte count and CRC-32 of
//! everything sent, or says why the donor failed. A stream that ends without a
//! trailer was cut; a trailer that disagrees with what arrived was corrupted.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// Response header with the size of the donor's datadir, for the recipient's ETA.
pub const ESTIMATE_HEADER: &str = "x-mysql-sts-estimated-bytes";

const DATA: u8 = b'D';
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

fn frame(kind: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER + payload.len());
    b.put_u8(kind);
    b.put_u32(payload.len() as u32);
    b.put_slice(payload);
    b.freeze()
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
    #[error("the donor failed: {0}")]
    DonorFailed(String),
}

/// Reassembles frames from arbitrary chunks and verifies the trailer.
#[derive(Default)]
pub struct Decoder {
    buf: BytesMut,
    bytes: u64,
    crc: crc32fast::Hasher,
    done: bool,
}

impl Decoder {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The data received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
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
        if !matches!(kind, DATA | END | FAIL) {
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
        match kind {
            DATA => {
                self.bytes += len as u64;
                self.crc.update(&payload);
                Ok(Some(Frame::Data(payload)))
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

    #[test]
    fn oversized_frame_is_refused() {
        let mut wire = vec![DATA];
        wire.extend_from_slice(&u32::MAX.to_be_bytes());
        let (_, res) = decode(&wire, 100);
        assert!(matches!(res, Err(StreamError::TooLarge(_))));
    }
}
