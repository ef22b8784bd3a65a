//! The one load writer of the tests and the benchmarks: a client inserting
//! rows into the master one at a time, from its own thread and runtime (the
//! benchmarks pin it to a CPU), remembering each acknowledged row with when
//! it was acknowledged and how long it took.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use super::{ROOT_PASSWORD, tcp_opts};

/// One acknowledged write.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub id: u64,
    pub at: Instant,
    pub ms: f64,
}

pub struct Writer {
    stop: Arc<AtomicBool>,
    /// While set, the writer holds off so the pods can be compared at rest.
    pause: Arc<AtomicBool>,
    /// Set by the writer while it has no statement in flight.
    idle: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    /// Starts inserting rows `(id, 'acked')` into `table` (`id BIGINT
    /// PRIMARY KEY, v VARCHAR(16)`) on the server at `ip`, as root, one every
    /// `pace` at most; its thread runs on `cpu` when given.
    pub fn start(ip: String, table: &str, pace: Duration, cpu: Option<usize>) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let pause = Arc::new(AtomicBool::new(false));
        let idle = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let (s, p, i, a) = (stop.clone(), pause.clone(), idle.clone(), acks.clone());
        let insert = format!("INSERT INTO {table} (id, v) VALUES (?, 'acked')");
        let thread = std::thread::spawn(move || {
            if let Some(cpu) = cpu {
                super::pin_self(&cpu.to_string());
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(write(ip, insert, pace, s, p, i, a));
        });
        Writer {
            stop,
            pause,
            idle,
            acks,
            thread,
        }
    }

    /// Holds the writer off until it has no statement in flight.
    pub async fn hold(&self) {
        self.pause.store(true, Ordering::Relaxed);
        while !self.idle.load(Ordering::Relaxed) && !self.thread.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn resume(&self) {
        self.pause.store(false, Ordering::Relaxed);
    }

    /// The ids of the rows acknowledged so far.
    pub fn acked_ids(&self) -> Vec<u64> {
        self.acks.lock().unwrap().iter().map(|a| a.id).collect()
    }

    /// Latencies (ms) of the writes acknowledged between `from` and `to`.
    pub fn window(&self, from: Instant, to: Instant) -> Vec<f64> {
        self.acks_between(from, to).iter().map(|a| a.ms).collect()
    }

    /// The writes acknowledged from `from` to `to`.
    pub fn acks_between(&self, from: Instant, to: Instant) -> Vec<Ack> {
        let acks = self.acks.lock().unwrap();
        acks.iter()
            .filter(|a| a.at >= from && a.at <= to)
            .cloned()
            .collect()
    }

    /// Stops the writer; returns every acknowledged write.
    pub async fn finish(self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
        self.acks.lock().unwrap().clone()
    }
}

async fn write(
    ip: String,
    insert: String,
    pace: Duration,
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
    idle: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
) {
    let opts = tcp_opts(&ip, "root", ROOT_PASSWORD);
    let mut conn: Option<mysql_async::Conn> = None;
    let mut next_id = 1u64;
    while !stop.load(Ordering::Relaxed) {
        if pause.load(Ordering::Relaxed) {
            idle.store(true, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        idle.store(false, Ordering::Relaxed);
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match tokio::time::timeout(
                Duration::from_secs(2),
                mysql_async::Conn::new(opts.clone()),
            )
            .await
            {
                Ok(Ok(c)) => conn.insert(c),
                _ => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let id = next_id;
        next_id += 1;
        let t = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(5), c.exec_drop(&insert, (id,))).await;
        match r {
            Ok(Ok(())) => acks.lock().unwrap().push(Ack {
                id,
                at: Instant::now(),
                ms: t.elapsed().as_secs_f64() * 1000.0,
            }),
            _ => conn = None,
        }
        tokio::time::sleep(pace).await;
    }
}
