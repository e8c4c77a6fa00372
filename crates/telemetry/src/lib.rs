//! DogStatsD emission shared by the TinyFish app and proxy.
//!
//! About 820 lines of code and 90 of tests, in one file on purpose: the crate is one
//! small public surface (environment, client, metric handles, names, the buffered
//! distributions) and its documentation reads as one page.
//!
//! This crate is the one place that knows:
//! - the Datadog conventions for finding the agent ([`DatadogEnv`]: `DD_AGENT_HOST`,
//!   `DD_DOGSTATSD_PORT`, `DD_DOGSTATSD_URL`) and for unified service tagging
//!   (`DD_ENV`, `DD_SERVICE`, `DD_VERSION`);
//! - the metric names ([`names`]) and tag keys ([`tags`]) of the whole project;
//! - how metrics leave the process ([`Telemetry`]): a cadence client over a bounded
//!   [`cadence::QueuingMetricSink`] whose worker thread writes into a buffered UDP
//!   (at most 1432 bytes a datagram) or Unix datagram (at most 8192 bytes) sink.
//!
//! Metrics never sit on a request's critical path. Counters and gauges are
//! aggregated in-process in atomics ([`Counter`], [`Gauge`]) and emitted by a
//! flusher thread once per flush interval (1 s), as the official Datadog clients do
//! with client-side aggregation. Distribution values ([`Distribution`]) are buffered
//! per thread and sent every [`DISTRIBUTION_FLUSH`] as packed lines
//! (`name:v1:v2:…|d`, DogStatsD protocol v1.1, which the Datadog agent reads since
//! 6.25/7.25): every value still reaches the agent, in a few datagrams instead of one
//! send per request. When
//! the queue is full or the agent is gone, metrics are dropped and counted
//! ([`Telemetry::dropped`]): never an error, a stall or a log line per request.
//! An agent host that does not resolve yet (compose starts the agent after the app)
//! is retried from the queue's worker thread, at most once a second.
//!
//! **SIGUSR1 flushes now.** While metrics are on, the process flushes everything it holds
//! when it receives SIGUSR1 and then sends one `tinyfish.telemetry.flushes` count. The bench
//! does this at the edges of each measured window, so the servers' own request counts and
//! durations cover the window exactly instead of to the nearest flush interval.
//!
//! ```no_run
//! let env = telemetry::DatadogEnv::from_process_env();
//! let telemetry = telemetry::Telemetry::start(&env, "tinyfish-app").unwrap();
//! eprintln!("{}", telemetry.describe());
//! let requests = telemetry.counter(telemetry::names::APP_REQUESTS, &[("route", "/")]);
//! requests.incr();
//! let duration = telemetry.distribution_handle(telemetry::names::APP_REQUEST_DURATION, &[("route", "/")]);
//! duration.record(0.042);
//! ```

use std::fmt;
use std::io;
use std::net::{ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cadence::prelude::*;
use cadence::{
    BufferedUdpMetricSink, BufferedUnixMetricSink, MetricSink, QueuingMetricSink, StatsdClient,
};

/// Metric names: the project's one vocabulary (see README, "Metrics").
pub mod names {
    /// Requests answered by the app (count; tags `route`, `status_class`).
    pub const APP_REQUESTS: &str = "tinyfish.app.requests";
    /// Time from request head to response head in the app (distribution, ms).
    pub const APP_REQUEST_DURATION: &str = "tinyfish.app.request.duration";
    /// Requests being handled by the app right now (gauge).
    pub const APP_INFLIGHT: &str = "tinyfish.app.inflight";
    /// Requests answered by the proxy (count; tags `status_class`, `upstream`).
    pub const PROXY_REQUESTS: &str = "tinyfish.proxy.requests";
    /// Whole request time inside the proxy (distribution, ms; tag `status_class`).
    pub const PROXY_REQUEST_DURATION: &str = "tinyfish.proxy.request.duration";
    /// Time from sending upstream to the upstream's response head (distribution, ms; tag `upstream`).
    pub const PROXY_UPSTREAM_DURATION: &str = "tinyfish.proxy.upstream.duration";
    /// Upstream failures (count; tag `kind`: connect, timeout, reset, protocol, …).
    pub const PROXY_UPSTREAM_ERRORS: &str = "tinyfish.proxy.upstream.errors";
    /// Connections (gauge; tag `side`: downstream, upstream_active).
    pub const PROXY_CONNECTIONS: &str = "tinyfish.proxy.connections";
    /// TLS handshakes that failed or timed out, the connection closed (count).
    pub const PROXY_TLS_HANDSHAKE_FAILURES: &str = "tinyfish.proxy.tls.handshake_failures";
    /// Upstream connections by reuse (count; tag `reused`: true, false).
    pub const PROXY_UPSTREAM_CONNECTIONS: &str = "tinyfish.proxy.upstream.connections";
    /// Metrics this process dropped since the last flush (count); sent when non-zero.
    pub const TELEMETRY_DROPPED: &str = "tinyfish.telemetry.dropped";
    /// Flushes asked for with SIGUSR1 (count, one per signal): sent after everything the
    /// flush emitted, so an agent that has seen it has seen the flush.
    pub const TELEMETRY_FLUSHES: &str = "tinyfish.telemetry.flushes";
}

/// Tag keys used with the metrics in [`names`].
pub mod tags {
    /// The route pattern (`/`, `/work`, `/echo`, `/healthz`, `other`).
    pub const ROUTE: &str = "route";
    /// `1xx` … `5xx`.
    pub const STATUS_CLASS: &str = "status_class";
    /// The upstream peer (`host:port`).
    pub const UPSTREAM: &str = "upstream";
    /// The kind of an error.
    pub const KIND: &str = "kind";
    /// The side of a connection gauge.
    pub const SIDE: &str = "side";
    /// What a client spoke to the proxy: `h1`, `h1+tls`, `h2+tls` (the scenario's names).
    pub const PROTOCOL: &str = "protocol";
}

/// The status class tag values, in order: index with [`status_class_index`], so a
/// server can pre-create one counter per class and pick it with an array index.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Index into [`STATUS_CLASSES`] for a status code; anything outside 100–499 (a
/// malformed or missing status) counts as `5xx`.
#[inline]
pub fn status_class_index(status: u16) -> usize {
    match status {
        100..=499 => usize::from(status / 100) - 1,
        _ => 4,
    }
}

/// The status class tag value for a status code: `"2xx"` for 204.
pub fn status_class(status: u16) -> &'static str {
    STATUS_CLASSES[status_class_index(status)]
}

/// The default DogStatsD port.
pub const DEFAULT_DOGSTATSD_PORT: u16 = 8125;
/// Largest UDP payload: fits a 1500-byte Ethernet MTU with IP and UDP headers.
pub const UDP_MAX_PAYLOAD: usize = 1432;
/// Largest Unix datagram payload the agent's default buffer accepts.
pub const UDS_MAX_PAYLOAD: usize = 8192;
/// Capacity of the queue between the request path and the sending thread.
pub const QUEUE_CAPACITY: usize = 16 * 1024;
/// How often aggregated counters and gauges are emitted and buffers flushed.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often buffered distribution values are sent.
pub const DISTRIBUTION_FLUSH: Duration = Duration::from_millis(100);
/// Buffered values per distribution and thread shard before new ones are dropped and
/// counted (at 100k values/s on one thread: ten flushes' worth).
pub const DISTRIBUTION_SHARD_CAPACITY: usize = 64 * 1024;
/// Values packed into one line, so a line stays within a UDP datagram.
const PACKED_VALUES: usize = 96;
const SHARDS: usize = 16;

/// The Datadog environment variables this crate understands, read once at the edge
/// (a binary's `main`) and passed down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatadogEnv {
    /// `DD_AGENT_HOST`: host name or address of the agent.
    pub agent_host: Option<String>,
    /// `DD_DOGSTATSD_PORT`: the agent's DogStatsD UDP port (default 8125).
    pub dogstatsd_port: Option<String>,
    /// `DD_DOGSTATSD_URL`: `udp://host:port` or `unix:///path/dsd.socket`; wins over the two above.
    pub dogstatsd_url: Option<String>,
    /// `DD_ENV`: the `env` tag.
    pub env: Option<String>,
    /// `DD_SERVICE`: the `service` tag.
    pub service: Option<String>,
    /// `DD_VERSION`: the `version` tag.
    pub version: Option<String>,
}

impl DatadogEnv {
    /// Reads the variables from the process environment. Call once, in `main`.
    // clippy.toml: the one place the Datadog variables are read; main passes them down.
    #[allow(clippy::disallowed_methods)]
    pub fn from_process_env() -> Self {
        Self::from_vars(std::env::vars())
    }

    /// Builds from `(name, value)` pairs; empty values count as unset.
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut env = DatadogEnv::default();
        for (k, v) in vars {
            let v: String = v.into();
            if v.trim().is_empty() {
                continue;
            }
            let slot = match k.as_ref() {
                "DD_AGENT_HOST" => &mut env.agent_host,
                "DD_DOGSTATSD_PORT" => &mut env.dogstatsd_port,
                "DD_DOGSTATSD_URL" => &mut env.dogstatsd_url,
                "DD_ENV" => &mut env.env,
                "DD_SERVICE" => &mut env.service,
                "DD_VERSION" => &mut env.version,
                _ => continue,
            };
            *slot = Some(v.trim().to_owned());
        }
        env
    }

    /// Where metrics go, or [`Target::Off`] when nothing is set.
    pub fn target(&self) -> Result<Target, ConfigError> {
        if let Some(url) = &self.dogstatsd_url {
            return parse_url(url);
        }
        let Some(host) = &self.agent_host else {
            return Ok(Target::Off);
        };
        let port = match &self.dogstatsd_port {
            None => DEFAULT_DOGSTATSD_PORT,
            Some(p) => parse_port(p).ok_or_else(|| ConfigError::Port(p.clone()))?,
        };
        Ok(Target::Udp {
            host: host.clone(),
            port,
        })
    }
}

fn parse_port(p: &str) -> Option<u16> {
    p.parse::<u16>().ok().filter(|p| *p != 0)
}

fn parse_url(url: &str) -> Result<Target, ConfigError> {
    if let Some(path) = url.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(ConfigError::Url(url.to_owned()));
        }
        return Ok(Target::Unix(PathBuf::from(path)));
    }
    let Some(rest) = url.strip_prefix("udp://") else {
        return Err(ConfigError::Url(url.to_owned()));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.ends_with(':') => (
            h,
            parse_port(p).ok_or_else(|| ConfigError::Url(url.to_owned()))?,
        ),
        _ if !rest.is_empty() && !rest.contains(':') => (rest, DEFAULT_DOGSTATSD_PORT),
        _ => return Err(ConfigError::Url(url.to_owned())),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(Target::Udp {
        host: host.to_owned(),
        port,
    })
}

/// Where metrics are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Metrics off: no agent configured.
    Off,
    /// DogStatsD over UDP.
    Udp {
        /// Host name or address (resolved lazily and retried).
        host: String,
        /// UDP port.
        port: u16,
    },
    /// DogStatsD over a Unix datagram socket (the agent's `dsd.socket`).
    Unix(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Off => f.write_str("off"),
            Target::Udp { host, port } if host.contains(':') => write!(f, "udp://[{host}]:{port}"),
            Target::Udp { host, port } => write!(f, "udp://{host}:{port}"),
            Target::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// A Datadog variable that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `DD_DOGSTATSD_PORT` is not a port number.
    #[error("DD_DOGSTATSD_PORT: expected a port number from 1 to 65535, got {0:?}")]
    Port(String),
    /// `DD_DOGSTATSD_URL` is neither `udp://host:port` nor `unix:///path`.
    #[error("DD_DOGSTATSD_URL: expected udp://host:port or unix:///path/to/dsd.socket, got {0:?}")]
    Url(String),
    /// The local socket for sending could not be created.
    #[error("cannot create a socket for sending metrics: {0}")]
    Socket(#[from] io::Error),
}

/// A handle on the process's metrics; cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("target", &self.inner.target)
            .field("dropped", &self.dropped())
            .finish()
    }
}

struct Inner {
    target: Target,
    tags: Vec<(String, String)>,
    client: Option<StatsdClient>,
    dropped: Arc<AtomicU64>,
    registry: Mutex<Registry>,
    /// Held by whoever flushes, so what one flush takes out of the counters and buffers
    /// is sent before another flush's marker (the SIGUSR1 flush's ordering guarantee).
    flushing: Mutex<()>,
}

type OwnedTags = Vec<(String, String)>;

#[derive(Default)]
struct Registry {
    counters: Vec<(String, OwnedTags, Arc<AtomicU64>)>,
    gauges: Vec<(String, OwnedTags, Arc<AtomicI64>)>,
    distributions: Vec<Arc<DistributionInner>>,
    dropped_reported: u64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.client.is_some() {
            flush_once(self);
        }
    }
}

impl Telemetry {
    /// Metrics off: every call is a no-op.
    pub fn off() -> Self {
        Self::with_parts(Target::Off, Vec::new(), None, Arc::default())
    }

    /// Starts sending to the agent that `env` names, tagging every metric with
    /// `env`, `service` (`default_service` when `DD_SERVICE` is unset) and `version`.
    /// Nothing configured: metrics off. Only a malformed variable is an error; an
    /// agent that is not there (yet) is not.
    pub fn start(env: &DatadogEnv, default_service: &str) -> Result<Self, ConfigError> {
        let target = env.target()?;
        let mut tags = Vec::new();
        if let Some(e) = &env.env {
            tags.push(("env".to_owned(), e.clone()));
        }
        tags.push((
            "service".to_owned(),
            env.service
                .clone()
                .unwrap_or_else(|| default_service.to_owned()),
        ));
        if let Some(v) = &env.version {
            tags.push(("version".to_owned(), v.clone()));
        }
        let dropped = Arc::new(AtomicU64::new(0));
        let Some(sink) = sink(&target)? else {
            return Ok(Self::with_parts(Target::Off, tags, None, dropped));
        };
        let d = dropped.clone();
        let queue = QueuingMetricSink::builder()
            .with_capacity(QUEUE_CAPACITY)
            .with_error_handler(move |_e| {
                d.fetch_add(1, Ordering::Relaxed);
            })
            .build(BoxSink(sink));
        let d = dropped.clone();
        let mut builder = StatsdClient::builder("", queue).with_error_handler(move |_e| {
            d.fetch_add(1, Ordering::Relaxed);
        });
        for (k, v) in &tags {
            builder = builder.with_tag(k.clone(), v.clone());
        }
        let telemetry = Self::with_parts(target, tags, Some(builder.build()), dropped);
        telemetry.spawn_flusher();
        telemetry.spawn_signal_flusher();
        Ok(telemetry)
    }

    fn with_parts(
        target: Target,
        tags: Vec<(String, String)>,
        client: Option<StatsdClient>,
        dropped: Arc<AtomicU64>,
    ) -> Self {
        Telemetry {
            inner: Arc::new(Inner {
                target,
                tags,
                client,
                dropped,
                registry: Mutex::new(Registry::default()),
                flushing: Mutex::new(()),
            }),
        }
    }

    fn spawn_flusher(&self) {
        let weak = Arc::downgrade(&self.inner);
        let spawned = thread::Builder::new()
            .name("telemetry-flush".into())
            .spawn(move || {
                let mut last_full = Instant::now();
                loop {
                    thread::sleep(DISTRIBUTION_FLUSH);
                    let Some(inner) = weak.upgrade() else { return };
                    let _flushing = inner.flushing.lock().unwrap_or_else(|p| p.into_inner());
                    if last_full.elapsed() >= FLUSH_INTERVAL {
                        last_full = Instant::now();
                        flush_once(&inner);
                    } else {
                        flush_distributions(&inner);
                        let _ = inner.client.as_ref().map(|c| c.flush());
                    }
                }
            });
        if spawned.is_err() {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Flushes on SIGUSR1 (see the crate docs), from a thread of its own.
    fn spawn_signal_flusher(&self) {
        let weak = Arc::downgrade(&self.inner);
        let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])
        else {
            return;
        };
        let spawned = thread::Builder::new()
            .name("telemetry-signal".into())
            .spawn(move || {
                for _ in signals.forever() {
                    let Some(inner) = weak.upgrade() else { return };
                    let _flushing = inner.flushing.lock().unwrap_or_else(|p| p.into_inner());
                    flush_once(&inner);
                    if let Some(client) = &inner.client {
                        if client.count(names::TELEMETRY_FLUSHES, 1).is_err() {
                            inner.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = client.flush();
                    }
                }
            });
        if spawned.is_err() {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether metrics are being sent anywhere.
    pub fn is_enabled(&self) -> bool {
        self.inner.client.is_some()
    }

    /// Where metrics go.
    pub fn target(&self) -> &Target {
        &self.inner.target
    }

    /// The tags every metric carries (`env`, `service`, `version`).
    pub fn default_tags(&self) -> &[(String, String)] {
        &self.inner.tags
    }

    /// One line for the start-up log: where metrics go, or how to turn them on.
    pub fn describe(&self) -> String {
        let tags: Vec<String> = self
            .inner
            .tags
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        match &self.inner.target {
            Target::Off => "metrics off: set DD_AGENT_HOST (and DD_DOGSTATSD_PORT) or DD_DOGSTATSD_URL to send DogStatsD metrics".to_owned(),
            t => format!("metrics to {t} (tags {})", tags.join(",")),
        }
    }

    /// Metrics dropped so far (queue full, agent unreachable or unresolvable).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Adds to the registry the flusher emits from (nothing to emit when metrics are off).
    fn register(&self, f: impl FnOnce(&mut Registry)) {
        if self.is_enabled() {
            f(&mut self
                .inner
                .registry
                .lock()
                .unwrap_or_else(|p| p.into_inner()));
        }
    }

    /// A counter aggregated in-process and emitted as a DogStatsD count every
    /// flush interval (when non-zero). Create counters once, at start-up.
    pub fn counter(&self, name: &str, tags: &[(&str, &str)]) -> Counter {
        let value = Arc::new(AtomicU64::new(0));
        self.register(|reg| {
            reg.counters
                .push((name.to_owned(), own_tags(tags), value.clone()))
        });
        Counter { value }
    }

    /// A gauge whose current value is emitted every flush interval.
    pub fn gauge(&self, name: &str, tags: &[(&str, &str)]) -> Gauge {
        let value = Arc::new(AtomicI64::new(0));
        self.register(|reg| {
            reg.gauges
                .push((name.to_owned(), own_tags(tags), value.clone()))
        });
        Gauge { value }
    }

    /// A distribution whose values are buffered per thread and sent packed every
    /// [`DISTRIBUTION_FLUSH`]; `record` is an uncontended lock and a push. Create
    /// handles once, at start-up, for each name and tag set.
    pub fn distribution_handle(&self, name: &str, tags: &[(&str, &str)]) -> Distribution {
        let inner = Arc::new(DistributionInner {
            name: name.to_owned(),
            tags: own_tags(tags),
            shards: std::array::from_fn(|_| Mutex::new(Vec::new())),
            enabled: self.is_enabled(),
            dropped: self.inner.dropped.clone(),
        });
        self.register(|reg| reg.distributions.push(inner.clone()));
        Distribution { inner }
    }

    /// Queues one distribution value in milliseconds (sub-millisecond values survive),
    /// unbuffered: for occasional values. On a request path use
    /// [`Telemetry::distribution_handle`]. Never blocks: when the queue is full the
    /// value is dropped and counted.
    pub fn distribution(&self, name: &str, value_ms: f64, tags: &[(&str, &str)]) {
        let Some(client) = &self.inner.client else {
            return;
        };
        let mut b = client.distribution_with_tags(name, value_ms);
        for (k, v) in tags {
            b = b.with_tag(k, v);
        }
        if b.try_send().is_err() {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Emits aggregated counters and gauges and flushes buffers now (also done every
    /// second by a background thread). For tests and shutdown.
    pub fn flush(&self) {
        if self.is_enabled() {
            flush_once(&self.inner);
        }
    }
}

fn own_tags(tags: &[(&str, &str)]) -> OwnedTags {
    tags.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Sends every buffered distribution value, packed.
fn flush_distributions(inner: &Inner) {
    let Some(client) = &inner.client else { return };
    let dists: Vec<Arc<DistributionInner>> = {
        let reg = inner.registry.lock().unwrap_or_else(|p| p.into_inner());
        reg.distributions.clone()
    };
    let mut batch = Vec::new();
    let mut failed = 0u64;
    for d in &dists {
        for shard in &d.shards {
            {
                let mut buf = shard.lock().unwrap_or_else(|p| p.into_inner());
                if buf.is_empty() {
                    continue;
                }
                // Swap so the shard keeps a warm allocation for the next values.
                std::mem::swap(&mut *buf, &mut batch);
            }
            for chunk in batch.chunks(PACKED_VALUES) {
                let mut b = client.distribution_with_tags(&d.name, chunk.to_vec());
                for (k, v) in &d.tags {
                    b = b.with_tag(k, v);
                }
                if b.try_send().is_err() {
                    failed += chunk.len() as u64;
                }
            }
            batch.clear();
        }
    }
    if failed > 0 {
        inner.dropped.fetch_add(failed, Ordering::Relaxed);
    }
}

fn flush_once(inner: &Inner) {
    let Some(client) = &inner.client else { return };
    flush_distributions(inner);
    let mut reg = inner.registry.lock().unwrap_or_else(|p| p.into_inner());
    let mut failed = 0u64;
    for (name, tags, value) in &reg.counters {
        let n = value.swap(0, Ordering::Relaxed);
        if n == 0 {
            continue;
        }
        let mut b = client.count_with_tags(name, n);
        for (k, v) in tags {
            b = b.with_tag(k, v);
        }
        failed += u64::from(b.try_send().is_err());
    }
    for (name, tags, value) in &reg.gauges {
        let v = value.load(Ordering::Relaxed);
        let mut b = client.gauge_with_tags(name, v as f64);
        for (k, t) in tags {
            b = b.with_tag(k, t);
        }
        failed += u64::from(b.try_send().is_err());
    }
    let dropped = inner.dropped.load(Ordering::Relaxed);
    if dropped > reg.dropped_reported {
        let n = dropped - reg.dropped_reported;
        reg.dropped_reported = dropped;
        failed += u64::from(client.count(names::TELEMETRY_DROPPED, n).is_err());
    }
    drop(reg);
    if failed > 0 {
        inner.dropped.fetch_add(failed, Ordering::Relaxed);
    }
    // Errors here were counted by the sink's handler or mean nothing was buffered.
    let _ = client.flush();
}

/// An in-process counter; `incr` is one relaxed atomic add.
#[derive(Debug, Clone)]
pub struct Counter {
    value: Arc<AtomicU64>,
}

impl Counter {
    /// Adds one.
    #[inline]
    pub fn incr(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }
}

/// An in-process gauge; emitted with its current value every flush interval.
#[derive(Debug, Clone)]
pub struct Gauge {
    value: Arc<AtomicI64>,
}

impl Gauge {
    /// Adds `n` (may be negative).
    #[inline]
    pub fn add(&self, n: i64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, n: i64) {
        self.value.store(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// A distribution (ms values) buffered per thread and sent packed; see
/// [`Telemetry::distribution_handle`].
#[derive(Debug, Clone)]
pub struct Distribution {
    inner: Arc<DistributionInner>,
}

#[derive(Debug)]
struct DistributionInner {
    name: String,
    tags: OwnedTags,
    shards: [Mutex<Vec<f64>>; SHARDS],
    enabled: bool,
    dropped: Arc<AtomicU64>,
}

impl Distribution {
    /// Buffers one value in milliseconds: this thread's shard lock (uncontended) and a
    /// push. A full shard (the flusher fell behind) drops the value and counts it.
    #[inline]
    pub fn record(&self, value_ms: f64) {
        if !self.inner.enabled {
            return;
        }
        let shard = &self.inner.shards[shard_index()];
        let mut buf = shard.lock().unwrap_or_else(|p| p.into_inner());
        if buf.len() < DISTRIBUTION_SHARD_CAPACITY {
            buf.push(value_ms);
        } else {
            drop(buf);
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// This thread's shard: assigned round-robin on first use, so up to [`SHARDS`]
/// threads never share a lock.
fn shard_index() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// A sink that writes DogStatsD lines to a [`Target`], whatever its kind.
pub type DynSink = Box<dyn MetricSink + Send + Sync + std::panic::RefUnwindSafe>;

/// The sink [`Telemetry`] writes through, for a process that sends lines of its own (the
/// bench's reports, events): buffered UDP whose agent host is resolved on first use and
/// retried at most once a second while it does not resolve, or a buffered Unix datagram
/// socket; non-blocking, so a missing agent never stalls the caller. Lines are sent when a
/// datagram is full and on [`MetricSink::flush`]. `None` when the target is off.
pub fn sink(target: &Target) -> Result<Option<DynSink>, ConfigError> {
    Ok(Some(match target {
        Target::Off => return Ok(None),
        Target::Udp { host, port } => Box::new(LateUdpSink::new(host.clone(), *port)?),
        Target::Unix(path) => {
            let socket = UnixDatagram::unbound()?;
            socket.set_nonblocking(true)?;
            Box::new(BufferedUnixMetricSink::with_capacity(
                path,
                socket,
                UDS_MAX_PAYLOAD,
            ))
        }
    }))
}

/// Lets the queue own a boxed sink.
struct BoxSink(DynSink);

impl MetricSink for BoxSink {
    fn emit(&self, metric: &str) -> io::Result<usize> {
        self.0.emit(metric)
    }
    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A buffered UDP sink whose agent address is resolved on first use and, while it
/// does not resolve, retried at most once a second; metrics meanwhile are dropped
/// (the error is counted by the queue's handler). Runs on the queue's worker thread
/// and the flusher thread, never on a request's.
struct LateUdpSink {
    host: String,
    port: u16,
    state: Mutex<LateState>,
}

struct LateState {
    sink: Option<BufferedUdpMetricSink>,
    last_attempt: Option<Instant>,
}

impl LateUdpSink {
    fn new(host: String, port: u16) -> io::Result<Self> {
        let s = LateUdpSink {
            host,
            port,
            state: Mutex::new(LateState {
                sink: None,
                last_attempt: None,
            }),
        };
        Ok(s)
    }

    fn with_sink<R>(
        &self,
        f: impl FnOnce(&BufferedUdpMetricSink) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.sink.is_none() {
            let due = st
                .last_attempt
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if !due {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "agent host not resolved yet",
                ));
            }
            st.last_attempt = Some(Instant::now());
            st.sink = Some(self.connect()?);
        }
        match &st.sink {
            Some(sink) => f(sink),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "agent host not resolved yet",
            )),
        }
    }

    fn connect(&self) -> io::Result<BufferedUdpMetricSink> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "agent host has no address"))?;
        let bind = if addr.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let socket = UdpSocket::bind(bind)?;
        socket.set_nonblocking(true)?;
        // Re-resolve periodically: an agent container that restarts may get a new address.
        BufferedUdpMetricSink::builder()
            .with_capacity(UDP_MAX_PAYLOAD)
            .with_resolver_period(Duration::from_secs(30))
            .build((self.host.clone(), self.port), socket)
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

impl MetricSink for LateUdpSink {
    fn emit(&self, metric: &str) -> io::Result<usize> {
        self.with_sink(|s| s.emit(metric))
    }
    fn flush(&self) -> io::Result<()> {
        self.with_sink(|s| s.flush())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> DatadogEnv {
        DatadogEnv::from_vars(pairs.iter().map(|(k, v)| (*k, v.to_string())))
    }

    #[test]
    fn nothing_set_is_off() {
        assert_eq!(env(&[]).target().unwrap(), Target::Off);
        assert_eq!(
            env(&[("DD_AGENT_HOST", "  ")]).target().unwrap(),
            Target::Off
        );
    }

    #[test]
    fn host_and_port() {
        let t = env(&[("DD_AGENT_HOST", "agent"), ("DD_DOGSTATSD_PORT", "9125")]);
        assert_eq!(
            t.target().unwrap(),
            Target::Udp {
                host: "agent".into(),
                port: 9125
            }
        );
        let t = env(&[("DD_AGENT_HOST", "agent")]);
        assert_eq!(t.target().unwrap().to_string(), "udp://agent:8125");
    }

    #[test]
    fn url_wins_and_parses() {
        let t = env(&[
            ("DD_AGENT_HOST", "agent"),
            ("DD_DOGSTATSD_URL", "unix:///var/run/datadog/dsd.socket"),
        ]);
        assert_eq!(
            t.target().unwrap(),
            Target::Unix("/var/run/datadog/dsd.socket".into())
        );
        let t = env(&[("DD_DOGSTATSD_URL", "udp://[::1]:8126")]);
        assert_eq!(
            t.target().unwrap(),
            Target::Udp {
                host: "::1".into(),
                port: 8126
            }
        );
        let t = env(&[("DD_DOGSTATSD_URL", "udp://localhost")]);
        assert_eq!(t.target().unwrap().to_string(), "udp://localhost:8125");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = env(&[("DD_AGENT_HOST", "a"), ("DD_DOGSTATSD_PORT", "eighty")])
            .target()
            .unwrap_err();
        assert!(e.to_string().starts_with("DD_DOGSTATSD_PORT"), "{e}");
        for bad in ["tcp://a:1", "udp://", "udp://a:0", "unix://", "udp://a:x"] {
            let e = env(&[("DD_DOGSTATSD_URL", bad)]).target().unwrap_err();
            assert!(e.to_string().starts_with("DD_DOGSTATSD_URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(101), "1xx");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(304), "3xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(0), "5xx", "no status is a server-side failure");
        assert_eq!(status_class(600), "5xx");
        assert_eq!(STATUS_CLASSES[status_class_index(299)], "2xx");
    }

    #[test]
    fn off_is_silent_and_counts_nothing() {
        let t = Telemetry::off();
        t.counter(names::APP_REQUESTS, &[]).incr();
        t.distribution(names::APP_REQUEST_DURATION, 1.0, &[]);
        t.flush();
        assert!(!t.is_enabled());
        assert_eq!(t.dropped(), 0);
        assert!(t.describe().contains("DD_AGENT_HOST"));
    }
}
