//! What a run measured: the per-thread recorder on the hot path, and the merged
//! [`LoadReport`] (serialisable) with latency summaries and helpers for charts.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};

use crate::cpu::CpuUsage;
use crate::error::ErrorKind;

/// Width of one [`TimelinePoint`] bucket.
pub const TIMELINE_BUCKET: Duration = Duration::from_millis(100);

/// Highest latency the histograms track exactly (larger values are clamped): 1 hour in ns.
const HIST_MAX_NS: u64 = 3_600_000_000_000;

/// A new latency histogram: nanoseconds, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("static histogram bounds are valid")
}

/// Counts of one 100 ms slice of the measured window, by completion time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Start of the slice, seconds into the measured window.
    pub t_s: f64,
    /// Responses completed in the slice.
    pub completed: u64,
    /// Requests that failed in the slice.
    pub errors: u64,
}

/// Latency percentiles in µs, the shape the bench's JSON uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyUs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
}

impl LatencyUs {
    /// Summarises a nanosecond histogram.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        LatencyUs {
            p50: pct_us(h, 50.0),
            p90: pct_us(h, 90.0),
            p99: pct_us(h, 99.0),
            p999: pct_us(h, 99.9),
            max: ns_to_us(h.max()),
        }
    }
}

/// How a nanosecond histogram is written in JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of recorded latencies.
    pub count: u64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Maximum, µs.
    pub max_us: f64,
}

impl LatencySummary {
    /// Summarises a nanosecond histogram.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        let l = LatencyUs::from_histogram(h);
        LatencySummary {
            count: h.len(),
            mean_us: if h.is_empty() { 0.0 } else { h.mean() / 1e3 },
            p50_us: l.p50,
            p90_us: l.p90,
            p99_us: l.p99,
            p999_us: l.p999,
            max_us: l.max,
        }
    }
}

fn ns_to_us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

fn pct_us(h: &Histogram<u64>, p: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        ns_to_us(h.value_at_quantile(p / 100.0))
    }
}

fn summarise<S: Serializer>(h: &Histogram<u64>, s: S) -> Result<S::Ok, S::Error> {
    LatencySummary::from_histogram(h).serialize(s)
}

/// Percentiles at which [`percentile_spectrum`] samples a histogram.
pub const SPECTRUM_PERCENTILES: [f64; 24] = [
    50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0, 96.0, 97.0, 97.5, 98.0, 98.5, 99.0,
    99.25, 99.5, 99.75, 99.9, 99.95, 99.99, 99.995, 99.999, 100.0,
];

/// (percentile, latency in µs) points of a nanosecond histogram, for latency-spectrum charts.
pub fn percentile_spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    SPECTRUM_PERCENTILES
        .iter()
        .map(|&p| {
            let us = if p >= 100.0 {
                ns_to_us(h.max())
            } else {
                pct_us(h, p)
            };
            (p, us)
        })
        .collect()
}

/// Everything one run measured. `Serialize` writes histograms as [`LatencySummary`].
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// `"open"` or `"closed"`.
    pub mode: &'static str,
    /// Connections used.
    pub connections: usize,
    /// Worker threads used.
    pub threads: usize,
    /// Open loop: the target rate; closed loop: none.
    pub target_rps: Option<f64>,
    /// Completed responses per second over the measured window.
    pub achieved_rps: f64,
    /// Requests attempted in the measured window (open loop: those whose intended send time
    /// fell in the window and that were issued): `sent = completed + error_count() + abandoned`.
    pub sent: u64,
    /// Responses received for those requests (any status).
    pub completed: u64,
    /// Length of the measured window, seconds.
    pub duration_s: f64,
    /// Latency in ns. Open loop: from the intended send time (coordinated omission
    /// corrected, as wrk2 does). Closed loop: from the actual send time.
    #[serde(serialize_with = "summarise")]
    pub latency: Histogram<u64>,
    /// Latency in ns from the actual send time (what a naive client reports). In closed loop
    /// identical to `latency`.
    #[serde(serialize_with = "summarise")]
    pub latency_uncorrected: Histogram<u64>,
    /// `latency` summarised in µs: {p50, p90, p99, p999, max}.
    pub latency_us: LatencyUs,
    /// Where response arrival times came from: `kernel` (every response's arrival is the
    /// kernel's receive timestamp) or `user_space` (some or all were the read's own time).
    pub timestamps: crate::socket::TimestampSource,
    /// Responses whose arrival time is the kernel's receive timestamp.
    pub kernel_timestamped: u64,
    /// How long after arriving responses were read (user-space read time − kernel
    /// timestamp), µs. Part of no latency figure: latency ends at the kernel's timestamp.
    /// Responses of small size are read on purpose when their connection's next send is
    /// due (one wake-up per request, not two), so this is large by design in open loop.
    pub read_delay_us: LatencyUs,
    /// Open loop, sends on a connection that was free: actual − intended send time, µs
    /// (early sends count as 0). This is the load generator's own share of the corrected
    /// latency.
    pub send_lag_us: LatencyUs,
    /// Open loop: sends issued before their intended time (batched into an earlier
    /// wake-up, at most the wake margin early); measured from their actual send.
    pub early_sends: u64,
    /// The earliest of those, µs before the intended time.
    pub max_early_us: f64,
    /// Responses by status code.
    pub status_counts: BTreeMap<u16, u64>,
    /// Failed requests by kind (`connect_refused`, `reset`, `closed`, `timeout`, `parse`, …).
    pub errors: BTreeMap<String, u64>,
    /// Open loop: sends issued more than 1 ms ([`LATE_THRESHOLD`](crate::LATE_THRESHOLD))
    /// after their intended time. Their latency still counts from the intended time.
    pub late_sends: u64,
    /// Open loop: the late sends whose connection was free at the intended time, i.e. the
    /// load generator's own lateness (timer, CPU, scheduling) rather than a slow server.
    pub pacing_late_sends: u64,
    /// Open loop: intended sends in the window never issued (the connection was still busy
    /// when the window ended).
    pub dropped_sends: u64,
    /// Requests still in flight when the drain after the window ran out (not errors).
    pub abandoned: u64,
    /// Connections re-established (after `Connection: close` or an error).
    pub reconnects: u64,
    /// Open loop: whether the achieved rate was within 1 % of the target. Always true in
    /// closed loop.
    pub rate_held: bool,
    /// Why the rate was not held (or a warning about the load generator itself).
    pub rate_note: Option<String>,
    /// Completed and failed requests per 100 ms of the measured window.
    pub timeline: Vec<TimelinePoint>,
    /// The load generator's own CPU over the measured window.
    pub cpu: CpuUsage,
    /// TLS runs: the handshakes made for requests in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsHandshakes>,
}

/// What a TLS run's handshakes cost the client side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TlsHandshakes {
    /// Handshakes completed for requests in the measured window (a new connection's first
    /// request pays for one).
    pub handshakes: u64,
    /// Of those, resumed with a session ticket.
    pub resumed: u64,
    /// From the ClientHello's send to the server's Finished's arrival (kernel timestamp), µs.
    pub handshake_us: LatencyUs,
}

impl LoadReport {
    /// (percentile, µs) points of the corrected latency for charts.
    pub fn percentile_spectrum(&self) -> Vec<(f64, f64)> {
        percentile_spectrum(&self.latency)
    }

    /// Failed requests of all kinds.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Per-thread counters and histograms written on the hot path (no allocation, no atomics).
#[derive(Debug)]
pub(crate) struct Recorder {
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    /// Open loop, sends on a free connection: actual − intended send time (0 when early).
    pub send_lag: Histogram<u64>,
    /// How long after a response's arrival (kernel timestamp) it was read.
    pub read_delay: Histogram<u64>,
    pub early_sends: u64,
    pub max_early_ns: u64,
    pub kernel_stamped: u64,
    /// Lazily read responses not complete at their connection's next send.
    pub lazy_late: u64,
    pub status: Box<[u64; 600]>,
    pub errors: [u64; ErrorKind::COUNT],
    pub sent: u64,
    pub completed: u64,
    pub late: u64,
    pub pacing_late: u64,
    pub dropped: u64,
    pub abandoned: u64,
    pub reconnects: u64,
    pub timeline: Vec<[u64; 2]>,
    /// TLS handshakes completed in the window, how many resumed, and their times (ns).
    pub handshakes: u64,
    pub resumed: u64,
    pub handshake: Histogram<u64>,
    /// The first TLS failure, in rustls's words.
    pub tls_error: Option<String>,
}

impl Recorder {
    pub fn new(window: Duration) -> Self {
        let buckets = window
            .as_nanos()
            .div_ceil(TIMELINE_BUCKET.as_nanos())
            .max(1) as usize;
        Recorder {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            send_lag: new_histogram(),
            read_delay: new_histogram(),
            early_sends: 0,
            max_early_ns: 0,
            kernel_stamped: 0,
            lazy_late: 0,
            status: Box::new([0; 600]),
            errors: [0; ErrorKind::COUNT],
            sent: 0,
            completed: 0,
            late: 0,
            pacing_late: 0,
            dropped: 0,
            abandoned: 0,
            reconnects: 0,
            timeline: vec![[0; 2]; buckets],
            handshakes: 0,
            resumed: 0,
            handshake: new_histogram(),
            tls_error: None,
        }
    }

    fn bucket(&mut self, since_start: Duration) -> &mut [u64; 2] {
        let i = (since_start.as_nanos() / TIMELINE_BUCKET.as_nanos()) as usize;
        let last = self.timeline.len() - 1;
        &mut self.timeline[i.min(last)]
    }

    /// A response in the window; `since_start`: completion time into the window.
    pub fn response(
        &mut self,
        status: u16,
        corrected_ns: u64,
        uncorrected_ns: Option<u64>,
        since_start: Duration,
    ) {
        self.completed += 1;
        self.corrected.saturating_record(corrected_ns.max(1));
        if let Some(u) = uncorrected_ns {
            self.uncorrected.saturating_record(u.max(1));
        }
        let s = usize::from(status).min(599);
        self.status[s] += 1;
        self.bucket(since_start)[0] += 1;
    }

    /// An open-loop send on a connection that was free at `intended`: how far from its
    /// intended time it went out (the load generator's own pacing error).
    pub fn send_offset(&mut self, intended: std::time::Instant, sent: std::time::Instant) {
        if sent >= intended {
            self.send_lag
                .saturating_record(((sent - intended).as_nanos() as u64).max(1));
        } else {
            self.early_sends += 1;
            self.send_lag.saturating_record(1);
            self.max_early_ns = self.max_early_ns.max((intended - sent).as_nanos() as u64);
        }
    }

    /// A completed response's read: how long after its arrival it was read, and whether
    /// the arrival time was the kernel's.
    pub fn read(&mut self, delay: Duration, kernel: bool) {
        if kernel {
            self.kernel_stamped += 1;
            self.read_delay
                .saturating_record((delay.as_nanos() as u64).max(1));
        }
    }

    /// A TLS handshake completed for a request in the window.
    pub fn handshake(&mut self, took: Duration, resumed: bool) {
        self.handshakes += 1;
        self.resumed += u64::from(resumed);
        self.handshake
            .saturating_record((took.as_nanos() as u64).max(1));
    }

    /// A failed request in the window.
    pub fn error(&mut self, kind: ErrorKind, since_start: Duration) {
        self.errors[kind.index()] += 1;
        self.bucket(since_start)[1] += 1;
    }

    /// Adds another thread's recordings.
    pub fn merge(&mut self, other: &Recorder) {
        // Same bounds on both sides: `add` cannot fail.
        let _ = self.corrected.add(&other.corrected);
        let _ = self.uncorrected.add(&other.uncorrected);
        let _ = self.send_lag.add(&other.send_lag);
        let _ = self.read_delay.add(&other.read_delay);
        self.early_sends += other.early_sends;
        self.max_early_ns = self.max_early_ns.max(other.max_early_ns);
        self.kernel_stamped += other.kernel_stamped;
        self.lazy_late += other.lazy_late;
        for (a, b) in self.status.iter_mut().zip(other.status.iter()) {
            *a += b;
        }
        for (a, b) in self.errors.iter_mut().zip(other.errors.iter()) {
            *a += b;
        }
        self.sent += other.sent;
        self.completed += other.completed;
        self.late += other.late;
        self.pacing_late += other.pacing_late;
        self.dropped += other.dropped;
        self.abandoned += other.abandoned;
        self.reconnects += other.reconnects;
        self.handshakes += other.handshakes;
        self.resumed += other.resumed;
        let _ = self.handshake.add(&other.handshake);
        if self.tls_error.is_none() {
            self.tls_error.clone_from(&other.tls_error);
        }
        for (a, b) in self.timeline.iter_mut().zip(other.timeline.iter()) {
            a[0] += b[0];
            a[1] += b[1];
        }
    }

    pub fn status_counts(&self) -> BTreeMap<u16, u64> {
        self.status
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| (s as u16, *n))
            .collect()
    }

    pub fn error_counts(&self) -> BTreeMap<String, u64> {
        ErrorKind::ALL
            .iter()
            .filter(|k| self.errors[k.index()] > 0)
            .map(|k| (k.as_str().to_owned(), self.errors[k.index()]))
            .collect()
    }

    pub fn timeline_points(&self) -> Vec<TimelinePoint> {
        self.timeline
            .iter()
            .enumerate()
            .map(|(i, [c, e])| TimelinePoint {
                t_s: (TIMELINE_BUCKET * i as u32).as_secs_f64(),
                completed: *c,
                errors: *e,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_and_spectrum() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let l = LatencyUs::from_histogram(&h);
        assert!((l.p50 - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() < 1.0, "{l:?}");
        assert!((l.max - 1000.0).abs() < 1.0, "{l:?}");
        let spec = percentile_spectrum(&h);
        assert_eq!(spec.len(), SPECTRUM_PERCENTILES.len());
        assert!(spec.windows(2).all(|w| w[0].1 <= w[1].1));
        let s = LatencySummary::from_histogram(&new_histogram());
        assert_eq!(s.count, 0);
        assert_eq!(s.p99_us, 0.0);
    }

    #[test]
    fn recorder_buckets_and_merges() {
        let mut a = Recorder::new(Duration::from_millis(250));
        assert_eq!(a.timeline.len(), 3);
        a.response(200, 1000, Some(500), Duration::from_millis(10));
        a.response(503, 1000, None, Duration::from_millis(900));
        a.error(ErrorKind::Reset, Duration::from_millis(150));
        let mut b = Recorder::new(Duration::from_millis(250));
        b.response(200, 2000, Some(2000), Duration::from_millis(120));
        b.merge(&a);
        assert_eq!(b.completed, 3);
        assert_eq!(b.status_counts(), BTreeMap::from([(200, 2), (503, 1)]));
        assert_eq!(b.error_counts(), BTreeMap::from([("reset".to_owned(), 1)]));
        let t = b.timeline_points();
        assert_eq!(
            (t[0].completed, t[1].completed, t[1].errors, t[2].completed),
            (1, 1, 1, 1)
        );
        assert_eq!(b.corrected.len(), 3);
        assert_eq!(b.uncorrected.len(), 2);
    }
}
