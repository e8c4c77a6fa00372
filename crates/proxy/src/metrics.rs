//! The proxy's metrics, created once at start-up so that recording one is an atomic add
//! (counters, gauges) or a push onto a per-thread buffer (distributions, see
//! [`telemetry::Distribution`]: the telemetry crate sends them packed, every 100 ms).
//!
//! Every tag set is known at start-up (status classes, configured upstreams), so each
//! distribution has one pre-created handle: nothing is formatted or allocated per request.

use telemetry::{names, tags, Counter, Distribution, Gauge, Telemetry};

/// Status classes in index order (`status_index`).
use telemetry::{status_class_index as status_index, STATUS_CLASSES as CLASSES};

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

/// What a client speaks to the proxy (tag `protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.x over plain TCP.
    H1,
    /// HTTP/1.1 over TLS.
    H1Tls,
    /// HTTP/2 over TLS.
    H2Tls,
}

/// Tag values in [`Protocol`] order.
pub const PROTOCOLS: [&str; 3] = ["h1", "h1+tls", "h2+tls"];

/// Pre-created metric handles of one proxy process.
#[derive(Debug)]
pub struct Metrics {
    telemetry: Telemetry,
    /// `[upstream index (last = none)][protocol][status class]`.
    requests: Vec<[[Counter; 5]; 3]>,
    /// Whole request duration, by status class.
    durations: [Distribution; 5],
    /// Upstream time to first byte, by upstream index.
    upstream_durations: Vec<Distribution>,
    errors: [Counter; 5],
    handshake_failures: Counter,
    reused: Counter,
    fresh: Counter,
    /// Client connections open now.
    pub downstream: Gauge,
    /// Upstream connections in use by a request now.
    pub upstream_active: Gauge,
}

impl Metrics {
    /// Creates every handle for these upstreams (`host:port` as written in the config).
    pub fn new(telemetry: Telemetry, upstreams: &[String]) -> Metrics {
        let mut requests = Vec::with_capacity(upstreams.len() + 1);
        for u in upstreams.iter().map(String::as_str).chain(["none"]) {
            requests.push(PROTOCOLS.map(|p| {
                CLASSES.map(|c| {
                    telemetry.counter(
                        names::PROXY_REQUESTS,
                        &[
                            (tags::STATUS_CLASS, c),
                            (tags::UPSTREAM, u),
                            (tags::PROTOCOL, p),
                        ],
                    )
                })
            }));
        }
        let durations = CLASSES.map(|c| {
            telemetry.distribution_handle(names::PROXY_REQUEST_DURATION, &[(tags::STATUS_CLASS, c)])
        });
        let upstream_durations = upstreams
            .iter()
            .map(|u| {
                telemetry.distribution_handle(
                    names::PROXY_UPSTREAM_DURATION,
                    &[(tags::UPSTREAM, u.as_str())],
                )
            })
            .collect();
        let errors =
            KINDS.map(|k| telemetry.counter(names::PROXY_UPSTREAM_ERRORS, &[(tags::KIND, k)]));
        let handshake_failures = telemetry.counter(names::PROXY_TLS_HANDSHAKE_FAILURES, &[]);
        let reused = telemetry.counter(names::PROXY_UPSTREAM_CONNECTIONS, &[("reused", "true")]);
        let fresh = telemetry.counter(names::PROXY_UPSTREAM_CONNECTIONS, &[("reused", "false")]);
        let downstream = telemetry.gauge(names::PROXY_CONNECTIONS, &[(tags::SIDE, "downstream")]);
        let upstream_active =
            telemetry.gauge(names::PROXY_CONNECTIONS, &[(tags::SIDE, "upstream_active")]);
        Metrics {
            telemetry,
            requests,
            durations,
            upstream_durations,
            errors,
            handshake_failures,
            reused,
            fresh,
            downstream,
            upstream_active,
        }
    }

    /// Whether metrics are sent anywhere (when not, request timings need not be taken).
    pub fn is_enabled(&self) -> bool {
        self.telemetry.is_enabled()
    }

    /// The telemetry handle (for flushing at exit).
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Records one finished request: what the client spoke, its status (0 = no response),
    /// the upstream it went to (`None`: answered by the proxy), its whole duration and the
    /// upstream's time to first byte.
    pub fn request(
        &self,
        protocol: Protocol,
        status: u16,
        upstream: Option<usize>,
        total_ms: f64,
        upstream_ms: Option<f64>,
    ) {
        let ci = status_index(status);
        let ui = upstream.unwrap_or(self.requests.len() - 1);
        if let Some(row) = self.requests.get(ui) {
            row[protocol as usize][ci].incr();
        }
        self.durations[ci].record(total_ms);
        if let (Some(u), Some(ms)) = (upstream, upstream_ms) {
            if let Some(d) = self.upstream_durations.get(u) {
                d.record(ms);
            }
        }
    }

    /// Counts a TLS handshake that failed or timed out (the connection was closed).
    pub fn handshake_failed(&self) {
        self.handshake_failures.incr();
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

/// One unit of a gauge, held while the guard lives and given back when it is dropped: a
/// task that ends early, or panics, cannot leave a connection counted.
#[must_use = "the unit is given back when the guard is dropped"]
pub struct Held<'a>(&'a Gauge);

impl<'a> Held<'a> {
    /// Adds one to `gauge` until the guard is dropped.
    pub fn new(gauge: &'a Gauge) -> Held<'a> {
        gauge.add(1);
        Held(gauge)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(CLASSES[status_index(101)], "1xx");
        assert_eq!(CLASSES[status_index(204)], "2xx");
        assert_eq!(CLASSES[status_index(302)], "3xx");
        assert_eq!(CLASSES[status_index(431)], "4xx");
        assert_eq!(CLASSES[status_index(504)], "5xx");
        assert_eq!(CLASSES[status_index(0)], "5xx");
    }

    #[test]
    fn off_metrics_still_count() {
        let m = Metrics::new(Telemetry::off(), &["a:1".to_owned()]);
        assert!(!m.is_enabled());
        m.request(Protocol::H1, 200, Some(0), 1.0, Some(0.5));
        m.request(Protocol::H2Tls, 502, None, 1.0, None);
        m.request(Protocol::H1Tls, 200, Some(7), 1.0, Some(0.5)); // unknown upstream: ignored, no panic
        m.downstream.add(1);
        assert_eq!(m.downstream.get(), 1);
    }
}
