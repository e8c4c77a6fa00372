//! The proxy's metrics, created once at start-up so that recording one is an atomic add
//! (counters, gauges) or a push onto a short, per-thread-sharded buffer (distributions).
//!
//! Distribution values are not handed to the telemetry queue one by one: a queue fed at the
//! request rate wakes its sending thread for every value, which cost more CPU than the proxy
//! itself. A background thread moves the buffered values to the queue every
//! [`BATCH_INTERVAL`], in bursts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use telemetry::{names, tags, Counter, Gauge, Telemetry};

/// How often buffered distribution values go to the telemetry queue.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Values buffered per shard at most between two batches; more are dropped and counted.
const SHARD_CAPACITY: usize = 8 * 1024;

/// One finished request's distribution values.
#[derive(Debug, Clone, Copy)]
struct Sample {
    class: u8,
    upstream: u16,
    total_ms: f32,
    upstream_ms: f32,
}

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

/// Status classes in index order (`status_index`).
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Kinds of upstream errors (tag `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection was refused or could not be made.
    Connect,
    /// Connect, read or write timed out.
    Timeout,
    /// The upstream closed or reset the connection.
    Reset,
    /// The upstream sent something that is not HTTP/1.
    Protocol,
    /// Anything else.
    Other,
}

const KINDS: [&str; 5] = ["connect", "timeout", "reset", "protocol", "other"];

/// Pre-created metric handles of one proxy process.
#[derive(Debug)]
pub struct Metrics {
    telemetry: Telemetry,
    /// `[upstream index (last = none)][status class]`.
    requests: Vec<[Counter; 5]>,
    upstream_names: Vec<String>,
    errors: [Counter; 5],
    reused: Counter,
    fresh: Counter,
    /// Client connections open now.
    pub downstream: Gauge,
    /// Upstream connections in use by a request now.
    pub upstream_active: Gauge,
    shards: Box<[Mutex<Vec<Sample>>]>,
    dropped: Counter,
}

fn status_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

impl Metrics {
    /// Creates every handle for these upstreams (`host:port` as written in the config) and,
    /// when metrics are on, the thread that batches distribution values to the queue.
    pub fn new(telemetry: Telemetry, upstreams: &[String], threads: usize) -> Arc<Metrics> {
        let mut requests = Vec::with_capacity(upstreams.len() + 1);
        for u in upstreams.iter().map(String::as_str).chain(["none"]) {
            requests.push(CLASSES.map(|c| {
                telemetry.counter(
                    names::PROXY_REQUESTS,
                    &[(tags::STATUS_CLASS, c), (tags::UPSTREAM, u)],
                )
            }));
        }
        let errors =
            KINDS.map(|k| telemetry.counter(names::PROXY_UPSTREAM_ERRORS, &[(tags::KIND, k)]));
        let reused = telemetry.counter(names::PROXY_UPSTREAM_CONNECTIONS, &[("reused", "true")]);
        let fresh = telemetry.counter(names::PROXY_UPSTREAM_CONNECTIONS, &[("reused", "false")]);
        let downstream = telemetry.gauge(names::PROXY_CONNECTIONS, &[(tags::SIDE, "downstream")]);
        let upstream_active =
            telemetry.gauge(names::PROXY_CONNECTIONS, &[(tags::SIDE, "upstream_active")]);
        let dropped = telemetry.counter(names::TELEMETRY_DROPPED, &[]);
        let shards = (0..threads.clamp(1, 64) * 2)
            .map(|_| Mutex::new(Vec::new()))
            .collect();
        let metrics = Arc::new(Metrics {
            telemetry,
            requests,
            upstream_names: upstreams.to_vec(),
            errors,
            reused,
            fresh,
            downstream,
            upstream_active,
            shards,
            dropped,
        });
        if metrics.telemetry.is_enabled() {
            let weak = Arc::downgrade(&metrics);
            let spawned = std::thread::Builder::new()
                .name("proxy-metrics".into())
                .spawn(move || batch_loop(weak));
            if spawned.is_err() {
                metrics.dropped.incr();
            }
        }
        metrics
    }

    /// Hands every buffered distribution value to the telemetry queue now.
    pub fn flush(&self) {
        let mut batch = Vec::new();
        for shard in self.shards.iter() {
            std::mem::swap(&mut *shard.lock(), &mut batch);
            for s in batch.drain(..) {
                self.emit(s);
            }
        }
    }

    fn emit(&self, s: Sample) {
        self.telemetry.distribution(
            names::PROXY_REQUEST_DURATION,
            f64::from(s.total_ms),
            &[(tags::STATUS_CLASS, CLASSES[usize::from(s.class)])],
        );
        if s.upstream_ms >= 0.0 {
            if let Some(name) = self.upstream_names.get(usize::from(s.upstream)) {
                self.telemetry.distribution(
                    names::PROXY_UPSTREAM_DURATION,
                    f64::from(s.upstream_ms),
                    &[(tags::UPSTREAM, name.as_str())],
                );
            }
        }
    }

    /// The telemetry handle (for flushing at exit).
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Records one finished request: its status (0 = no response), the upstream it went to
    /// (`None`: answered by the proxy), its whole duration and the upstream's time to first byte.
    pub fn request(
        &self,
        status: u16,
        upstream: Option<usize>,
        total_ms: f64,
        upstream_ms: Option<f64>,
    ) {
        let ci = status_index(status);
        let ui = upstream.unwrap_or(self.requests.len() - 1);
        if let Some(row) = self.requests.get(ui) {
            row[ci].incr();
        }
        if !self.telemetry.is_enabled() {
            return;
        }
        let sample = Sample {
            class: ci as u8,
            upstream: upstream.map_or(u16::MAX, |u| u as u16),
            total_ms: total_ms as f32,
            upstream_ms: match (upstream, upstream_ms) {
                (Some(_), Some(ms)) => ms as f32,
                _ => -1.0,
            },
        };
        let i = SHARD.with(|s| *s) % self.shards.len();
        let mut shard = self.shards[i].lock();
        if shard.len() < SHARD_CAPACITY {
            shard.push(sample);
        } else {
            drop(shard);
            self.dropped.incr();
        }
    }

    /// Counts an upstream error.
    pub fn upstream_error(&self, kind: ErrorKind) {
        self.errors[kind as usize].incr();
    }

    /// Counts an upstream connection used by a request, new or from the pool.
    pub fn upstream_connection(&self, reused: bool) {
        if reused {
            self.reused.incr();
        } else {
            self.fresh.incr();
        }
    }
}

fn batch_loop(metrics: Weak<Metrics>) {
    loop {
        std::thread::sleep(BATCH_INTERVAL);
        let Some(m) = metrics.upgrade() else { return };
        m.flush();
    }
}
