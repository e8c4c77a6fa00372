//! The proxy's metrics, created once at start-up so that recording one is an atomic add
//! (counters, gauges) or a non-blocking queue push (distributions), never a lookup or a lock.

use telemetry::{names, tags, Counter, Gauge, Telemetry};

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
    /// Creates every handle for these upstreams (`host:port` as written in the config).
    pub fn new(telemetry: Telemetry, upstreams: &[String]) -> Metrics {
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
        Metrics {
            telemetry,
            requests,
            upstream_names: upstreams.to_vec(),
            errors,
            reused,
            fresh,
            downstream,
            upstream_active,
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
        self.telemetry.distribution(
            names::PROXY_REQUEST_DURATION,
            total_ms,
            &[(tags::STATUS_CLASS, CLASSES[ci])],
        );
        if let (Some(ms), Some(name)) = (
            upstream_ms,
            upstream.and_then(|u| self.upstream_names.get(u)),
        ) {
            self.telemetry.distribution(
                names::PROXY_UPSTREAM_DURATION,
                ms,
                &[(tags::UPSTREAM, name.as_str())],
            );
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
