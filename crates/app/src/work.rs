//! `GET /work?cpu_us=N&bytes=M&delay_ms=D`: a request shape heavier than hello, so that a
//! proxy's cost can be seen at realistic sizes. Parameters, their limits, and the work.

use std::fmt;
use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

/// Largest `cpu_us`: one second of CPU spun on a worker.
pub const MAX_CPU_US: u64 = 1_000_000;
/// Largest `bytes`: a 16 MiB response body.
pub const MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Largest `delay_ms`: one minute of waiting (a timer, not a blocked worker).
pub const MAX_DELAY_MS: u64 = 60_000;

/// What one `/work` request asks for; every field defaults to 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkParams {
    /// Microseconds of CPU to spin on the worker thread (0..=[`MAX_CPU_US`]).
    pub cpu_us: u64,
    /// Size of the response body in bytes (0..=[`MAX_BYTES`]).
    pub bytes: u64,
    /// Milliseconds to wait before answering, without blocking a worker (0..=[`MAX_DELAY_MS`]).
    pub delay_ms: u64,
}

/// A query that `/work` cannot serve; its `Display` is the one-line 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkParamError {
    /// A known parameter with a value that is not an integer in range.
    #[error("{name}: expected an integer from 0 to {max}, got {value:?}")]
    Value {
        /// The parameter's name.
        name: &'static str,
        /// Its largest accepted value.
        max: u64,
        /// What was sent.
        value: String,
    },
    /// A parameter `/work` does not know.
    #[error("{0}: unknown parameter; /work takes cpu_us, bytes and delay_ms")]
    Unknown(String),
}

impl WorkParams {
    /// Parses the query string of a `/work` request (`None`: no query).
    pub fn parse(query: Option<&str>) -> Result<Self, WorkParamError> {
        let mut p = WorkParams::default();
        for pair in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (slot, name, max) = match key {
                "cpu_us" => (&mut p.cpu_us, "cpu_us", MAX_CPU_US),
                "bytes" => (&mut p.bytes, "bytes", MAX_BYTES),
                "delay_ms" => (&mut p.delay_ms, "delay_ms", MAX_DELAY_MS),
                other => return Err(WorkParamError::Unknown(truncate(other))),
            };
            *slot = value
                .parse::<u64>()
                .ok()
                .filter(|v| *v <= max && value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| WorkParamError::Value {
                    name,
                    max,
                    value: truncate(value),
                })?;
        }
        Ok(p)
    }

    /// The wait before answering.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms)
    }
}

/// Keeps error bodies one short line whatever the client sent.
fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(MAX).collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}

impl fmt::Display for WorkParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cpu_us={} bytes={} delay_ms={}",
            self.cpu_us, self.bytes, self.delay_ms
        )
    }
}

/// Spins the calling thread until it has used about `us` microseconds of CPU (its own
/// CPU clock, so time the thread spends descheduled does not count).
pub fn spin_cpu(us: u64) {
    if us == 0 {
        return;
    }
    let Some(start) = thread_cpu() else { return };
    let target = Duration::from_micros(us);
    let mut x = 0u64;
    loop {
        for i in 0..256u64 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
        }
        match thread_cpu() {
            Some(now) if now.saturating_sub(start) < target => {}
            _ => break,
        }
    }
    std::hint::black_box(x);
}

fn thread_cpu() -> Option<Duration> {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .ok()
        .map(Duration::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_query_is_no_work() {
        assert_eq!(WorkParams::parse(None).unwrap(), WorkParams::default());
        assert_eq!(WorkParams::parse(Some("")).unwrap(), WorkParams::default());
        assert_eq!(
            WorkParams::parse(Some("&&")).unwrap(),
            WorkParams::default()
        );
    }

    #[test]
    fn all_parameters_parse() {
        let p = WorkParams::parse(Some("cpu_us=250&bytes=4096&delay_ms=7")).unwrap();
        assert_eq!(
            p,
            WorkParams {
                cpu_us: 250,
                bytes: 4096,
                delay_ms: 7
            }
        );
        let max = format!("cpu_us={MAX_CPU_US}&bytes={MAX_BYTES}&delay_ms={MAX_DELAY_MS}");
        assert!(WorkParams::parse(Some(&max)).is_ok());
    }

    #[test]
    fn errors_name_the_parameter_on_one_line() {
        for (q, name) in [
            ("cpu_us=abc", "cpu_us"),
            ("cpu_us=-1", "cpu_us"),
            ("cpu_us=+5", "cpu_us"),
            ("cpu_us=1000001", "cpu_us"),
            ("bytes=16777217", "bytes"),
            ("bytes=", "bytes"),
            ("delay_ms=60001", "delay_ms"),
            ("delay_ms=99999999999999999999999", "delay_ms"),
            ("bytes=1&delay_ms=1.5", "delay_ms"),
            ("colour=red", "colour"),
        ] {
            let e = WorkParams::parse(Some(q)).unwrap_err().to_string();
            assert!(e.starts_with(name), "{q}: {e}");
            assert!(!e.contains('\n'), "{q}: {e}");
        }
        let long = "x".repeat(10_000);
        let e = WorkParams::parse(Some(&format!("bytes={long}")))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn spin_uses_about_the_cpu_asked_for() {
        let before = thread_cpu().unwrap();
        spin_cpu(20_000);
        let used = thread_cpu().unwrap() - before;
        assert!(used >= Duration::from_millis(20), "{used:?}");
        assert!(used < Duration::from_secs(2), "{used:?}");
    }
}
