//! The donor side of a MariaDB clone: run `mariadb-backup --backup
//! --stream=xbstream` against the local server and frame its output for the
//! recipient, ending with a trailer that vouches for every byte (or says why
//! the backup failed). One stream at a time.

use std::collections::VecDeque;
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::ahead::ReadAhead;
use crate::engine::clone::{StreamJob, run_dir};
use crate::error::{Error, IoContext, Result};
use crate::net::wire::{self, Compression, Encoder, FramePool};

/// How the backup's output is taken: its pipe's size, which is also the
/// most one read of it (one frame) holds, and how many frames may wait for
/// the recipient's connection.
struct Pieces {
    size: usize,
    queue: usize,
}

/// Uncapped: a data file comes 10 MB per write, which a pipe of the
/// default 64 KiB takes in 160 pieces, each a switch from the backup to the
/// sidecar and back, and a frame and a send each. A 1 MiB pipe makes an
/// uncapped clone a quarter faster.
const UNCAPPED: Pieces = Pieces {
    size: 1 << 20,
    queue: 4,
};

/// Capped, the pipe keeps its default size: each read and send of a larger
/// piece is a longer stretch of kernel work, which a kernel that does not
/// preempt (`preempt=none`, common on servers) finishes before the server's
/// woken threads may run. On a capped master donor, 23% of its writes took
/// over 2 ms with 1 MiB pieces, 2.5% with these.
const CAPPED: Pieces = Pieces {
    size: 64 << 10,
    queue: 8,
};

/// Starts the backup and returns the receiving end of its framed stream. The
/// backup is killed when the receiver is dropped (the recipient went away) or
/// A recipient that takes no byte for this long is given up: the backup
/// stops (on a master donor, its commit-blocking last phase with it) and the
/// clone slot frees.
const SEND_STALL: Duration = Duration::from_secs(60);

/// the job's shutdown fires.
pub fn start(job: StreamJob) -> Result<mpsc::Receiver<Bytes>> {
    let StreamJob {
        local,
        datadir,
        shutdown,
        permit,
        peer,
        watcher,
        compression,
        max_rate,
    } = job;
    let run = run_dir("backup")?;
    let password = local
        .password
        .as_ref()
        .map(|p| p.expose().to_owned())
        .unwrap_or_default();
    // Credentials go in an option file that exists only in memory, never in
    // argv or on a disk: nothing is left behind when the sidecar is killed.
    let options = client_options(&local.user, &password)?;
    let options_fd = options.as_raw_fd();
    let mut cmd = Command::new("mariadb-backup");
    cmd.arg(format!("--defaults-extra-file=/dev/fd/{options_fd}"))
        .arg("--backup")
        .arg("--stream=xbstream")
        // At its end the backup blocks commits until its redo-log copier has
        // caught up; that thread looks every second by default, which stalls
        // a donor master's writes for up to a second. Look every 10 ms.
        .arg("--log-copy-interval=10")
        .arg(format!("--target-dir={}", run.join("target").display()))
        .arg(format!("--datadir={}", datadir.display()));
    match &local.socket {
        Some(s) => cmd.arg(format!("--socket={}", s.display())),
        None => cmd
            .arg(format!("--host={}", local.host))
            .arg(format!("--port={}", local.port)),
    };
    // Capped, the donor's writes come first: its data files are read
    // through the page cache, where the read-ahead puts them in small reads
    // (10.x's switch, then 11.x's, which 10.x would not know).
    let mut ahead = match max_rate {
        Some(_) => {
            cmd.arg("--innodb-flush-method=fsync")
                .arg("--loose-innodb-data-file-buffering=ON");
            Some(
                ReadAhead::start(datadir.clone())
                    .io_context(|| "starting the clone read-ahead".into())?,
            )
        }
        None => None,
    };
    let capped = max_rate.is_some();
    // The child alone inherits the option file (it is close-on-exec here).
    // Capped, the backup is background work (nice 19), every thread of it:
    // a server thread that wakes runs first.
    // SAFETY: only fcntl and setpriority, async-signal-safe, run between
    // fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let fd = std::os::fd::BorrowedFd::borrow_raw(options_fd);
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            if capped {
                crate::sched::background()?;
            }
            Ok(())
        });
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Error::Other(format!(
                "cannot run mariadb-backup: {e}; is mariadb-backup installed beside the sidecar?"
            ))
        })?;
    let mut stdout = child.stdout.take().expect("piped");
    let pieces = match max_rate {
        Some(_) => CAPPED,
        None => {
            if let Err(e) = rustix::pipe::fcntl_setpipe_size(&stdout, UNCAPPED.size) {
                warn!("the backup's pipe keeps its default size: {e}");
            }
            UNCAPPED
        }
    };
    let stderr = child.stderr.take().expect("piped");
    let tail = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut last = VecDeque::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if last.len() == 8 {
                last.pop_front();
            }
            last.push_back(line);
        }
        Vec::from(last).join(" | ")
    });

    let (tx, rx) = mpsc::channel::<Bytes>(pieces.queue);
    watcher.started(&peer);
    info!(recipient = %peer, "clone stream started");
    tokio::spawn(async move {
        let started = Instant::now();
        let mut enc = Encoder::default();
        let mut sent = 0u64;
        let mut wire = 0u64;
        let mut auto = AutoCompression::default();
        let pool = FramePool::new(pieces.size, pieces.queue + 2);
        let mut memory = PeakMemory::new(child.id());
        let outcome: std::result::Result<(), String> = loop {
            let mut frame = pool.frame();
            let mut room = frame.fill();
            let read = tokio::select! {
                _ = shutdown.cancelled() => break Err("the donor's sidecar is shutting down".into()),
                // Gone while the backup sends nothing (behind a commit that
                // waits, on a master): nothing would notice before its next send.
                _ = tx.closed() => break Err("the recipient went away".into()),
                r = stdout.read_buf(&mut room) => r,
            };
            match read {
                Ok(0) => {
                    memory.sample();
                    let status = child.wait().await;
                    let tail = tail.await.unwrap_or_default();
                    match status {
                        Ok(s) if s.success() => {
                            break send(&tx, enc.end(), SEND_STALL)
                                .await
                                .map_err(|e| format!("sending the trailer: {e}"));
                        }
                        Ok(s) => {
                            let msg = format!("mariadb-backup exited with {s}: {tail}");
                            let _ = send(&tx, Encoder::fail(&msg), SEND_STALL).await;
                            break Err(msg);
                        }
                        Err(e) => break Err(format!("waiting for mariadb-backup: {e}")),
                    }
                }
                Ok(n) => {
                    if let Some(a) = &mut ahead
                        && let Err(why) = a.streamed(frame.data()).await
                    {
                        // Not read as expected: no more read-ahead.
                        warn!(%why, "the clone read-ahead stops");
                        ahead = None;
                    }
                    sent += n as u64;
                    watcher.sent(n as u64, sent, started.elapsed());
                    memory.sample_now_and_then();
                    let compress = match compression {
                        Compression::None => false,
                        Compression::Zstd => true,
                        Compression::Auto => auto.decide(tx.capacity(), tx.max_capacity()),
                    };
                    let frame = if compress {
                        let f = enc.data_compressed(frame.data());
                        auto.compressed(n as u64, f.len() as u64);
                        f
                    } else {
                        enc.seal(frame)
                    };
                    wire += frame.len() as u64;
                    // Capped: the backup is read no faster than the link may
                    // carry, so it also reads the donor's disk no faster.
                    if let Some(wait) =
                        max_rate.and_then(|r| wire::pace(wire, r, started.elapsed()))
                    {
                        tokio::time::sleep(wait).await;
                    }
                    if let Err(e) = send(&tx, frame, SEND_STALL).await {
                        break Err(e);
                    }
                }
                Err(e) => break Err(format!("reading mariadb-backup's output: {e}")),
            }
        };
        let _ = child.kill().await;
        let secs = started.elapsed().as_secs_f64();
        match &outcome {
            Ok(()) => {
                info!(recipient = %peer, bytes = sent, wire_bytes = wire, secs, backup_peak_rss = memory.peak, "clone stream complete")
            }
            Err(why) => {
                warn!(recipient = %peer, bytes = sent, secs, why = %why, "clone stream failed")
            }
        }
        watcher.backup_peak_rss(memory.peak);
        watcher.finished(outcome.is_ok());
        let _ = std::fs::remove_dir_all(&run);
        drop(permit);
    });
    Ok(rx)
}

/// Queues a frame of the stream (data, trailer or failure alike) for the
/// recipient; gives up when it takes nothing for `stall`, so that a
/// recipient that stops reading never holds the backup, and the clone slot,
/// for ever.
async fn send(
    tx: &mpsc::Sender<Bytes>,
    frame: Bytes,
    stall: Duration,
) -> std::result::Result<(), String> {
    match tokio::time::timeout(stall, tx.send(frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("the recipient went away".into()),
        Err(_) => Err(format!(
            "the recipient took nothing for {} s",
            stall.as_secs_f64()
        )),
    }
}

/// `--clone-compression auto`: compress once the link holds the stream back
/// (the frames waiting for the connection fill half the queue), and from then
/// on — compressed frames drain faster, so a queue that empties does not
/// mean the link became fast — unless compression does not pay: when 16
/// compressed frames in a row saved less than a tenth, frames go as they are
/// for the next 256 before it is tried again.
#[derive(Debug, Default)]
struct AutoCompression {
    on: bool,
    /// Raw and compressed bytes of the frames compressed in this trial.
    raw: u64,
    packed: u64,
    tried: u32,
    /// Frames still to send as they are after compression did not pay.
    resting: u32,
}

impl AutoCompression {
    const TRIAL: u32 = 16;
    const REST: u32 = 256;

    /// Whether to compress the next frame, given the queue's free and total slots.
    fn decide(&mut self, free: usize, capacity: usize) -> bool {
        if self.resting > 0 {
            self.resting -= 1;
            return false;
        }
        if !self.on && free <= capacity / 2 {
            self.on = true;
        }
        self.on
    }

    /// What compressing a frame of `raw` bytes made of it (`sent` bytes).
    fn compressed(&mut self, raw: u64, sent: u64) {
        self.raw += raw;
        self.packed += sent;
        self.tried += 1;
        if self.tried == Self::TRIAL {
            if self.packed * 10 > self.raw * 9 {
                self.on = false;
                self.resting = Self::REST;
            }
            (self.raw, self.packed, self.tried) = (0, 0, 0);
        }
    }
}

/// A `[client]` option file in memory (a memfd, mode 0600: MariaDB ignores a
/// world-writable option file), for a child to read as `/dev/fd/<n>`;
/// close-on-exec until a child's `pre_exec` clears that.
fn client_options(user: &str, password: &str) -> Result<std::os::fd::OwnedFd> {
    let fail = |e: rustix::io::Errno| Error::Io {
        what: "cannot make the in-memory option file for mariadb-backup".into(),
        source: e.into(),
    };
    let fd = rustix::fs::memfd_create("mysql-sts-client.cnf", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(fail)?;
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o600)).map_err(fail)?;
    let mut file = std::fs::File::from(fd);
    let quoted = password.replace('\\', "\\\\").replace('"', "\\\"");
    writeln!(file, "[client]\nuser={user}\npassword=\"{quoted}\"")
        .io_context(|| "cannot write the in-memory option file for mariadb-backup".into())?;
    Ok(file.into())
}

/// The backup tool's peak resident memory (its `VmHWM`), read from
/// `/proc` at most once a second while it streams, and at its end: what a
/// donor's container must hold beside the agent.
struct PeakMemory {
    pid: Option<u32>,
    peak: u64,
    sampled: Option<Instant>,
}

impl PeakMemory {
    fn new(pid: Option<u32>) -> PeakMemory {
        PeakMemory {
            pid,
            peak: 0,
            sampled: None,
        }
    }

    fn sample_now_and_then(&mut self) {
        if self
            .sampled
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1))
        {
            self.sample();
        }
    }

    fn sample(&mut self) {
        self.sampled = Some(Instant::now());
        let Some(pid) = self.pid else { return };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return;
        };
        let kib = text
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        if let Some(k) = kib {
            self.peak = self.peak.max(k * 1024);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_the_recipient_never_takes_is_given_up() {
        let (tx, mut rx) = mpsc::channel::<Bytes>(1);
        let stall = Duration::from_millis(50);
        send(&tx, Bytes::from_static(b"data"), stall).await.unwrap();
        // The queue is full and nobody reads: the trailer is given up.
        let started = Instant::now();
        let e = send(&tx, Encoder::default().end(), stall)
            .await
            .unwrap_err();
        assert!(e.contains("took nothing"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // Read, there is room again.
        rx.recv().await.unwrap();
        send(&tx, Encoder::fail("x"), stall).await.unwrap();
        drop(rx);
        let e = send(&tx, Bytes::new(), stall).await.unwrap_err();
        assert!(e.contains("went away"), "{e}");
    }

    #[test]
    fn auto_compression_starts_on_a_backed_up_queue_and_keeps_on_while_it_pays() {
        let mut a = AutoCompression::default();
        // A fast link: the queue stays empty; nothing is compressed.
        assert!((0..20).all(|_| !a.decide(8, 8)));
        // Backed up: compressed, also once compressed frames drain the queue.
        assert!(!a.decide(5, 8));
        assert!(a.decide(4, 8));
        for _ in 0..6 * AutoCompression::TRIAL {
            assert!(a.decide(8, 8));
            a.compressed(1 << 20, 100 << 10);
        }
        // Frames that do not shrink: plain for a while, then tried again.
        for _ in 0..AutoCompression::TRIAL {
            assert!(a.decide(4, 8));
            a.compressed(1 << 20, (1 << 20) - 100);
        }
        assert!((0..AutoCompression::REST).all(|_| !a.decide(0, 8)));
        assert!(a.decide(0, 8));
    }
}
