//! The load generator's own CPU time, per worker thread (`getrusage(RUSAGE_THREAD)` read
//! inside each thread at the start and end of the measured window).

use std::time::Duration;

use nix::sys::resource::{getrusage, UsageWho};
use serde::Serialize;

/// CPU used by the load generator's worker threads during the measured window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuUsage {
    /// User CPU seconds.
    pub user_s: f64,
    /// System (kernel) CPU seconds.
    pub system_s: f64,
    /// (user + system) / completed responses, in µs.
    pub per_request_us: f64,
    /// (user + system) / (window × threads): 1.0 means every worker thread was busy all the
    /// time, so the load generator itself may have been the bottleneck.
    pub utilisation: f64,
    /// The busiest worker thread's (user + system) / window: one thread near 1.0 is a
    /// bottleneck even when the average is not.
    pub busiest_thread: f64,
}

/// A thread's cumulative CPU times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ThreadCpu {
    pub user: Duration,
    pub system: Duration,
}

impl ThreadCpu {
    /// CPU used by the calling thread so far (zero if the kernel will not say).
    pub fn now() -> Self {
        match getrusage(UsageWho::RUSAGE_THREAD) {
            Ok(u) => ThreadCpu {
                user: timeval(u.user_time()),
                system: timeval(u.system_time()),
            },
            Err(_) => ThreadCpu::default(),
        }
    }

    /// CPU used between `earlier` and `self`.
    pub fn since(self, earlier: ThreadCpu) -> ThreadCpu {
        ThreadCpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

fn timeval(t: nix::sys::time::TimeVal) -> Duration {
    Duration::from_secs(t.tv_sec().max(0) as u64) + Duration::from_micros(t.tv_usec().max(0) as u64)
}

impl CpuUsage {
    /// Sums per-thread usage over a window.
    pub(crate) fn from_threads(threads: &[ThreadCpu], completed: u64, window: Duration) -> Self {
        let user: Duration = threads.iter().map(|t| t.user).sum();
        let system: Duration = threads.iter().map(|t| t.system).sum();
        let total = (user + system).as_secs_f64();
        let capacity = window.as_secs_f64() * threads.len().max(1) as f64;
        let busiest = threads
            .iter()
            .map(|t| (t.user + t.system).as_secs_f64())
            .fold(0.0, f64::max);
        CpuUsage {
            user_s: user.as_secs_f64(),
            system_s: system.as_secs_f64(),
            per_request_us: if completed == 0 {
                0.0
            } else {
                total * 1e6 / completed as f64
            },
            utilisation: if capacity > 0.0 {
                total / capacity
            } else {
                0.0
            },
            busiest_thread: if window.is_zero() {
                0.0
            } else {
                busiest / window.as_secs_f64()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_grows_with_work() {
        let before = ThreadCpu::now();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
            std::hint::black_box(x);
        }
        let used = ThreadCpu::now().since(before);
        assert!(
            used.user + used.system >= Duration::from_millis(10),
            "{used:?}"
        );
    }
}
