//! Open-loop pacing: each connection's schedule of intended send times, and the margin by
//! which a worker thread wakes before a send is due.

use std::time::{Duration, Instant};

/// A send later than this after its intended time counts as a late send.
pub const LATE_THRESHOLD: Duration = Duration::from_millis(1);

/// Intended send times of one connection: `first + k × interval`, k = 0, 1, 2, …
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    first: Instant,
    interval_ns: f64,
}

impl Schedule {
    /// The schedule of connection `index` of `connections` sharing `rate` requests/s from
    /// `start`: each runs at `rate / connections`, offset by `index / connections` of its
    /// interval so the sends are spread evenly.
    pub fn for_connection(start: Instant, rate: f64, connections: usize, index: usize) -> Self {
        let interval_ns = 1e9 * connections as f64 / rate;
        let offset = interval_ns * index as f64 / connections as f64;
        Schedule {
            first: start + Duration::from_nanos(offset as u64),
            interval_ns,
        }
    }

    /// The k-th intended send time.
    pub fn at(&self, k: u64) -> Instant {
        self.first + Duration::from_nanos((self.interval_ns * k as f64) as u64)
    }

    /// Number of intended send times in `[from, to)` with index ≥ `k`.
    pub fn count_from(&self, k: u64, from: Instant, to: Instant) -> u64 {
        // Index of the first time ≥ t.
        let first_at_or_after = |t: Instant| -> u64 {
            if t <= self.first {
                return 0;
            }
            let ns = (t - self.first).as_nanos() as f64;
            let mut i = (ns / self.interval_ns).floor() as u64;
            while i > 0 && self.at(i - 1) >= t {
                i -= 1;
            }
            while self.at(i) < t {
                i += 1;
            }
            i
        };
        let lo = first_at_or_after(from).max(k);
        let hi = first_at_or_after(to);
        hi.saturating_sub(lo)
    }
}

/// How early a worker thread asks to be woken before a send is due, learnt from how late
/// its wake-ups actually come.
///
/// A timed wake-up arrives some microseconds after the deadline (the kernel's timer, the
/// CPU leaving idle, the scheduler). Waking at `due − margin`, with the margin tracking the
/// 90th percentile of that lateness (a streaming quantile: up by 0.9 step when a wake-up was
/// later than the margin, down by 0.1 step otherwise), puts nine sends in ten at or before
/// their intended time instead of tens of microseconds after it. A send is then issued up
/// to `margin` early; its latency counts from its actual send, never from a later intended
/// time, so nothing is measured shorter than it was.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WakeMargin {
    ns: f64,
}

impl WakeMargin {
    const QUANTILE: f64 = 0.9;
    const STEP_NS: f64 = 500.0;
    const INITIAL_NS: f64 = 10_000.0;
    const MAX_NS: f64 = 200_000.0;

    pub fn new() -> Self {
        WakeMargin {
            ns: Self::INITIAL_NS,
        }
    }

    /// The current margin.
    pub fn get(&self) -> Duration {
        Duration::from_nanos(self.ns as u64)
    }

    /// Learns from one timed wake-up that came `late` after its deadline.
    pub fn observe(&mut self, late: Duration) {
        let l = late.as_nanos() as f64;
        if l > self.ns {
            self.ns += Self::STEP_NS * Self::QUANTILE;
        } else {
            self.ns -= Self::STEP_NS * (1.0 - Self::QUANTILE);
        }
        self.ns = self.ns.clamp(0.0, Self::MAX_NS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_counts_and_staggers() {
        let t0 = Instant::now();
        // 1000 req/s over 10 connections: 100 req/s each, 10 ms apart, offsets of 1 ms.
        let s3 = Schedule::for_connection(t0, 1000.0, 10, 3);
        assert_eq!(s3.at(0) - t0, Duration::from_millis(3));
        assert_eq!(s3.at(2) - t0, Duration::from_millis(23));
        let from = t0 + Duration::from_secs(1);
        let to = t0 + Duration::from_secs(2);
        assert_eq!(s3.count_from(0, from, to), 100);
        assert_eq!(s3.count_from(150, from, to), 50);
        assert_eq!(s3.count_from(500, from, to), 0);
        let total: u64 = (0..10)
            .map(|i| Schedule::for_connection(t0, 1000.0, 10, i).count_from(0, from, to))
            .sum();
        assert_eq!(total, 1000);
    }

    #[test]
    fn the_margin_tracks_the_90th_percentile_of_lateness() {
        let mut m = WakeMargin::new();
        // Lateness uniform over 0..100 µs: the margin settles near 90 µs.
        let mut x: u64 = 1;
        for _ in 0..200_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let late = Duration::from_nanos((x >> 33) % 100_000);
            m.observe(late);
        }
        let us = m.get().as_secs_f64() * 1e6;
        assert!((80.0..=98.0).contains(&us), "margin {us} µs");
    }
}
