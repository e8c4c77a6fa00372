//! Patience, not sleeps: wait for a state a test can observe, within a bound that one
//! environment variable stretches on a slow machine.
//!
//! `TINYFISH_TEST_PATIENCE` is a multiplier (a positive number, `1` when unset), read once
//! per test process. It multiplies every bound testkit waits with ([`eventually`],
//! [`wait`], the DogStatsD sink's waits, a process's start and exit, the HTTP client's socket
//! timeouts) and every timing bound a test writes as [`scaled`]`(d)`. It never changes the
//! behaviour under test (a configured timeout, a server's deliberate stall) nor a lower
//! bound ("took at least the 500 ms timeout"): only how long a test is willing to wait
//! before it fails.
//!
//! ```
//! use std::time::Duration;
//! let mut polls = 0;
//! testkit::eventually("the third poll", || {
//!     polls += 1;
//!     polls == 3
//! });
//! assert!(testkit::scaled(Duration::from_secs(2)) >= Duration::from_secs(2));
//! ```

use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable: a multiplier for every bound (default 1).
pub const VAR: &str = "TINYFISH_TEST_PATIENCE";

/// How long [`eventually`] waits (before [`scaled`]): things a test waits for happen in
/// milliseconds on an idle machine; this is for a loaded one.
pub const WAIT: Duration = Duration::from_secs(15);

/// How often [`Wait::until`] checks its condition unless told otherwise.
pub const POLL: Duration = Duration::from_millis(10);

/// The multiplier from [`VAR`], read once. Panics (naming the variable) when it is set to
/// anything but a positive finite number: a typo must not silently mean "no patience".
#[allow(
    clippy::disallowed_methods,
    reason = "the test process's one patience setting, read once: this is its edge"
)]
pub fn factor() -> f64 {
    static FACTOR: OnceLock<f64> = OnceLock::new();
    *FACTOR.get_or_init(|| match std::env::var(VAR) {
        Err(std::env::VarError::NotPresent) => 1.0,
        Ok(v) if v.trim().is_empty() => 1.0,
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => f,
            _ => panic!("{VAR}={v:?}: expected a positive number (a multiplier, e.g. 3)"),
        },
        Err(e) => panic!("{VAR}: {e}"),
    })
}

/// `bound` stretched by [`factor`]: write every timing assertion's upper bound with it
/// (`assert!(took < scaled(Duration::from_secs(2)))`).
pub fn scaled(bound: Duration) -> Duration {
    bound.mul_f64(factor())
}

/// A bounded wait for `what` (a phrase for the failure message: "the upstream to close").
pub fn wait(what: impl fmt::Display) -> Wait {
    Wait {
        what: what.to_string(),
        within: WAIT,
        every: POLL,
    }
}

/// Waits until `condition` holds, checking every 10 ms for at most [`WAIT`] (scaled);
/// panics naming `what` if it never does.
pub fn eventually(what: impl fmt::Display, condition: impl FnMut() -> bool) {
    wait(what).until(condition)
}

/// A wait in the making: [`wait`]`(what).within(d).every(p).until(|| …)`.
#[derive(Debug, Clone)]
pub struct Wait {
    what: String,
    within: Duration,
    every: Duration,
}

impl Wait {
    /// The bound before [`scaled`] (default [`WAIT`]).
    pub fn within(mut self, bound: Duration) -> Wait {
        self.within = bound;
        self
    }

    /// How often to check (default [`POLL`]); for conditions that cost something to check.
    pub fn every(mut self, period: Duration) -> Wait {
        self.every = period;
        self
    }

    /// The bound this wait really uses: [`Wait::within`] scaled.
    pub fn bound(&self) -> Duration {
        scaled(self.within)
    }

    /// Waits until `condition` holds; panics naming what was awaited if it never does.
    pub fn until(self, mut condition: impl FnMut() -> bool) {
        self.until_some(|| condition().then_some(()))
    }

    /// Waits until `probe` returns `Some` and returns it; panics if it never does.
    pub fn until_some<T>(self, probe: impl FnMut() -> Option<T>) -> T {
        let bound = self.bound();
        self.poll(probe).unwrap_or_else(|| {
            panic!(
                "waited {bound:?} for {} ({VAR}={} stretches the bound)",
                self.what,
                factor()
            )
        })
    }

    /// Like [`Wait::until_some`] but `None` at the bound, for a test that explains the
    /// failure itself.
    pub fn poll<T>(&self, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + self.bound();
        loop {
            if let Some(v) = probe() {
                return Some(v);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            std::thread::sleep(self.every.min(deadline - now));
        }
    }

    /// Whether `condition` holds within the bound (no panic).
    pub fn holds(&self, mut condition: impl FnMut() -> bool) -> bool {
        self.poll(|| condition().then_some(())).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_until_the_condition_holds() {
        let start = Instant::now();
        eventually("50 ms to pass", || {
            start.elapsed() >= Duration::from_millis(50)
        });
        assert!(start.elapsed() >= Duration::from_millis(50));
        let n = wait("a value").until_some({
            let mut i = 0;
            move || {
                i += 1;
                (i == 3).then_some(i)
            }
        });
        assert_eq!(n, 3);
    }

    #[test]
    fn gives_up_at_the_bound_and_says_what_it_waited_for() {
        let w = wait("nothing").within(Duration::from_millis(30));
        assert!(!w.holds(|| false));
        let err = std::panic::catch_unwind(|| w.until(|| false)).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("for nothing") && msg.contains(VAR), "{msg}");
    }

    #[test]
    fn scaled_is_at_least_the_bound_by_default() {
        // The variable is unset in CI; when a developer sets it, bounds only grow or shrink
        // by the factor.
        let d = Duration::from_millis(100);
        assert_eq!(scaled(d), d.mul_f64(factor()));
    }
}
