//! Clone progress for humans: bytes done, rate and, when the size is known,
//! an ETA, logged every few seconds so that a clone of many GB never looks hung.

use std::time::{Duration, Instant};

use tracing::info;

/// How often progress is logged.
pub const EVERY: Duration = Duration::from_secs(5);

/// Rate (bytes/s) and ETA (s) of a transfer `done` bytes into `elapsed`,
/// out of `total` when known.
pub fn rate_and_eta(done: u64, total: Option<u64>, elapsed: Duration) -> (f64, Option<f64>) {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let eta = match total {
        Some(t) if rate > 0.0 => Some(t.saturating_sub(done) as f64 / rate),
        _ => None,
    };
    (rate, eta)
}

/// Logs progress at most every [`EVERY`].
pub struct Progress {
    donor: String,
    total: Option<u64>,
    started: Instant,
    last: Instant,
}

impl Progress {
    pub fn new(donor: &str, total: Option<u64>) -> Progress {
        let now = Instant::now();
        Progress {
            donor: donor.to_owned(),
            total,
            started: now,
            last: now,
        }
    }

    pub fn update(&mut self, done: u64) {
        if self.last.elapsed() < EVERY {
            return;
        }
        self.last = Instant::now();
        let (rate, eta) = rate_and_eta(done, self.total, self.started.elapsed());
        info!(
            donor = %self.donor,
            bytes = done,
            total_bytes = self.total,
            mb_per_s = format!("{:.1}", rate / 1e6),
            eta_s = eta.map(|e| e.round() as u64),
            "clone in progress"
        );
    }
}

/// The size of everything under `dir`.
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        let (rate, eta) = rate_and_eta(100, Some(300), Duration::from_secs(2));
        assert_eq!(rate, 50.0);
        assert_eq!(eta, Some(4.0));
        assert_eq!(rate_and_eta(100, None, Duration::from_secs(2)).1, None);
        assert_eq!(rate_and_eta(0, Some(10), Duration::ZERO), (0.0, None));
        // An estimate that turned out low does not give a negative ETA.
        assert_eq!(
            rate_and_eta(400, Some(300), Duration::from_secs(2)).1,
            Some(0.0)
        );
    }
}
