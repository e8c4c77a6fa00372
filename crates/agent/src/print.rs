//! `--print`: every flush interval, one aligned line per metric that received values
//! in that interval, for someone watching their metrics arrive:
//!
//! ```text
//! 12:00:01  tinyfish.app.requests{env:dev,route:/,service:tinyfish-app,status_class:2xx}  count=312
//! 12:00:01  tinyfish.app.request.duration{route:/,status_class:2xx}                       n=312 min=0.021 p50=0.042 p90=0.06 p99=0.11 max=0.3 avg=0.045
//! ```
//!
//! Counts are the interval's (scaled) sum, gauges the last value, sketches the
//! interval's values, sets the interval's distinct members. Events, service checks
//! and malformed lines get a line each. Times are UTC.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::parse::MetricKind;
use crate::receive::Shared;
use crate::snapshot::{MetricSnapshot, Snapshot};

/// Starts the printer thread; it prints every `interval` and once more when `stop`
/// receives or its sender is dropped.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    interval: Duration,
    stop: mpsc::Receiver<()>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("dogstatsd-print".into())
        .spawn(move || loop {
            let last = !matches!(
                stop.recv_timeout(interval),
                Err(mpsc::RecvTimeoutError::Timeout)
            );
            if let Some(window) = shared.take_print() {
                let lines = format_interval(&window.snapshot(), SystemTime::now());
                if !lines.is_empty() {
                    let mut out = std::io::stdout().lock();
                    for l in lines {
                        // A closed stdout is not a reason to stop receiving.
                        let _ = writeln!(out, "{l}");
                    }
                    let _ = out.flush();
                }
            }
            if last {
                return;
            }
        })
}

/// A number as a person reads it: integers without decimals, others with four
/// significant digits, trailing zeros trimmed.
pub fn human(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    if !v.is_finite() {
        return v.to_string();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 9) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn clock(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

fn series(m: &MetricSnapshot) -> String {
    if m.tags.is_empty() {
        m.name.clone()
    } else {
        format!("{}{{{}}}", m.name, m.tags.join(","))
    }
}

fn values(m: &MetricSnapshot) -> String {
    let h = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), human);
    match m.kind {
        MetricKind::Count => format!("count={}", h(m.value)),
        MetricKind::Gauge => format!("gauge={}", h(m.value)),
        MetricKind::Set => format!("unique={}", h(m.value)),
        _ => {
            let mut s = format!("n={}", h(m.count));
            for (k, v) in [
                ("min", m.min),
                ("p50", m.p50),
                ("p90", m.p90),
                ("p99", m.p99),
                ("max", m.max),
                ("avg", m.avg),
            ] {
                let _ = write!(s, " {k}={}", h(v));
            }
            if m.kind == MetricKind::Timing {
                s.push_str(" (ms)");
            }
            s
        }
    }
}

/// The lines for one interval's window, the series column aligned.
pub fn format_interval(window: &Snapshot, now: SystemTime) -> Vec<String> {
    let t = clock(now);
    let names: Vec<String> = window.metrics.iter().map(series).collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let mut lines: Vec<String> = names
        .iter()
        .zip(&window.metrics)
        .map(|(n, m)| format!("{t}  {n:<width$}  {}", values(m)))
        .collect();
    for e in &window.events {
        let tags = if e.tags.is_empty() {
            String::new()
        } else {
            format!(" {{{}}}", e.tags.join(","))
        };
        lines.push(format!(
            "{t}  event [{:?}] {:?}{tags}: {:?}",
            e.alert_type, e.title, e.text
        ));
    }
    for c in &window.service_checks {
        let tags = if c.tags.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", c.tags.join(","))
        };
        let msg = c
            .message
            .as_deref()
            .map(|m| format!(" {m:?}"))
            .unwrap_or_default();
        lines.push(format!("{t}  check {}{tags} {:?}{msg}", c.name, c.status));
    }
    if window.malformed > 0 {
        let kinds: Vec<String> = window
            .malformed_by_kind
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        lines.push(format!(
            "{t}  malformed={} ({})",
            window.malformed,
            kinds.join(", ")
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Aggregator;

    #[test]
    fn numbers_read_well() {
        assert_eq!(human(312.0), "312");
        assert_eq!(human(0.042), "0.042");
        assert_eq!(human(0.0421234), "0.04212");
        assert_eq!(human(12.5), "12.5");
        assert_eq!(human(1234.5678), "1235");
        assert_eq!(human(0.5), "0.5");
        assert_eq!(human(-2.0), "-2");
    }

    #[test]
    fn lines_are_aligned_and_complete() {
        let mut a = Aggregator::new();
        a.ingest(b"tinyfish.app.requests:312|c|#service:tinyfish-app,env:dev\nlat:1:2:3|d|#r:/\nx:1\n_e{2,2}:hi|yo\n_sc|db|0|m:fine");
        let now = UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 12 * 3600 + 61);
        let lines = format_interval(&a.snapshot(), now);
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert!(lines[0].starts_with("12:01:01  lat{r:/}  "), "{}", lines[0]);
        assert!(lines[0].contains("n=3 min=1 p50="), "{}", lines[0]);
        assert!(lines[0].ends_with("max=3 avg=2"), "{}", lines[0]);
        assert!(lines[1].contains("tinyfish.app.requests{env:dev,service:tinyfish-app}  count=312"));
        let col = |l: &str| l.find("  n=").or_else(|| l.find("  count=")).unwrap();
        assert_eq!(col(&lines[0]), col(&lines[1]));
        assert!(lines[2].contains("event [Info] \"hi\""), "{}", lines[2]);
        assert!(lines[3].contains("check db Ok \"fine\""), "{}", lines[3]);
        assert!(lines[4].contains("malformed=1 (no_type=1)"), "{}", lines[4]);
    }
}
