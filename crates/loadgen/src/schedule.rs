//! Open-loop pacing: each connection's schedule of intended send times, and a [`Pacer`] that
//! sleeps until one with sub-millisecond precision.
//!
//! tokio's timers have 1 ms granularity, which would add up to a millisecond of the load
//! generator's own delay to every latency measured from the intended send time. The pacer
//! uses a `timerfd` per connection (registered with the runtime, so the thread still parks
//! in epoll) and the worker threads lower their timer slack; it falls back to tokio's sleep
//! where a timerfd cannot be created.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

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

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

/// Raw-fd wrapper so a `TimerFd` can be registered with tokio.
#[derive(Debug)]
struct TimerFdIo(TimerFd);

impl AsRawFd for TimerFdIo {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Sleeps until an instant, precisely (timerfd) or, failing that, with tokio's timer.
#[derive(Debug)]
pub struct Pacer {
    fd: Option<AsyncFd<TimerFdIo>>,
}

impl Pacer {
    /// A pacer for the current runtime; never fails (falls back to tokio's timer).
    pub fn new() -> Self {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .ok()
        .and_then(|fd| {
            // `AsyncFd::new` is deprecated because a generic `T` could close or swap its fd;
            // `TimerFdIo` owns its fd and returns the same one until dropped with the
            // `AsyncFd`, which is exactly the contract of the unsafe `register`.
            #[allow(deprecated)]
            let registered = AsyncFd::new(TimerFdIo(fd));
            registered.ok()
        });
        Pacer { fd }
    }

    /// Returns at or shortly after `deadline`.
    pub async fn sleep_until(&mut self, deadline: Instant) {
        let now = Instant::now();
        if deadline <= now {
            return;
        }
        if let Some(fd) = &self.fd {
            if Self::timerfd_sleep(fd, deadline - now).await.is_ok() {
                return;
            }
            self.fd = None;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }

    async fn timerfd_sleep(fd: &AsyncFd<TimerFdIo>, after: Duration) -> std::io::Result<()> {
        fd.get_ref().0.set(
            Expiration::OneShot(TimeSpec::from_duration(after)),
            TimerSetTimeFlags::empty(),
        )?;
        loop {
            let mut guard = fd.readable().await?;
            match guard.try_io(|inner| inner.get_ref().0.wait().map_err(std::io::Error::from)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

/// Lowers the calling thread's timer slack so timer wake-ups are not deferred by the
/// kernel's default 50 µs. Best effort.
pub fn tighten_timer_slack() {
    let _ = nix::sys::prctl::set_timerslack(1_000);
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

    #[tokio::test]
    async fn pacer_wakes_close_to_deadline() {
        let mut p = Pacer::new();
        assert!(p.fd.is_some(), "timerfd should be available on Linux");
        for _ in 0..5 {
            let deadline = Instant::now() + Duration::from_millis(3);
            p.sleep_until(deadline).await;
            let now = Instant::now();
            assert!(now >= deadline);
            // Generous: the machine is loaded; tokio's timer alone would often be 1 ms late.
            assert!(now - deadline < Duration::from_millis(50));
        }
    }
}
