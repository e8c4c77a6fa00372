//! Progress a caller can poll while [`run`](crate::run) blocks: phase and counters in atomics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening connections.
    Connecting,
    /// Loading, not recording.
    Warmup,
    /// Loading and recording.
    Measuring,
    /// Waiting (bounded) for in-flight responses after the window.
    Draining,
    /// Finished.
    Done,
}

#[derive(Debug, Clone, Copy)]
struct Windows {
    measure_start: Instant,
    measure_end: Instant,
}

/// Shared progress of one run. Share it by reference with a thread that draws a progress bar.
#[derive(Debug, Default)]
pub struct Live {
    completed: AtomicU64,
    errors: AtomicU64,
    windows: OnceLock<Windows>,
    done: AtomicBool,
    cancelled: AtomicBool,
}

/// A consistent-enough view of [`Live`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveSnapshot {
    /// Current phase.
    pub phase: Phase,
    /// Responses recorded in the measured window so far.
    pub completed: u64,
    /// Failed requests recorded in the measured window so far.
    pub errors: u64,
    /// Time into the measured window (zero before it starts, the window length after).
    pub elapsed: Duration,
    /// Length of the measured window (zero until connected).
    pub window: Duration,
}

impl Live {
    /// Fresh progress (phase `Connecting`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the current progress.
    pub fn snapshot(&self) -> LiveSnapshot {
        let completed = self.completed.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        let Some(w) = self.windows.get() else {
            return LiveSnapshot {
                phase: if self.done.load(Ordering::Acquire) {
                    Phase::Done
                } else {
                    Phase::Connecting
                },
                completed,
                errors,
                elapsed: Duration::ZERO,
                window: Duration::ZERO,
            };
        };
        let now = Instant::now();
        let window = w.measure_end - w.measure_start;
        let phase = if self.done.load(Ordering::Acquire) {
            Phase::Done
        } else if now < w.measure_start {
            Phase::Warmup
        } else if now < w.measure_end {
            Phase::Measuring
        } else {
            Phase::Draining
        };
        LiveSnapshot {
            phase,
            completed,
            errors,
            elapsed: now.saturating_duration_since(w.measure_start).min(window),
            window,
        }
    }

    /// The measured window `[start, end)`, once the run has fixed it (right after every
    /// connection is open). A caller that samples other processes over the same window
    /// sleeps until these instants instead of polling the phase.
    pub fn window(&self) -> Option<(Instant, Instant)> {
        self.windows.get().map(|w| (w.measure_start, w.measure_end))
    }

    /// Whether the run has finished (or failed).
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Asks a running [`run`](crate::run) to stop early (e.g. on Ctrl-C): requests in
    /// flight are abandoned and `run` returns what was recorded so far within ~20 ms.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether [`Live::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    pub(crate) fn start(&self, measure_start: Instant, measure_end: Instant) {
        let _ = self.windows.set(Windows {
            measure_start,
            measure_end,
        });
    }

    pub(crate) fn add_completed(&self, n: u64) {
        self.completed.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_errors(&self, n: u64) {
        self.errors.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn finish(&self) {
        self.done.store(true, Ordering::Release);
    }
}
