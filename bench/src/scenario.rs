//! Scenario files: what to run, how hard, how long and how often.
//!
//! About 630 lines of code and 80 of tests: every key's type, default and check sit side
//! by side, so a key's meaning and its validation are read together.
//!
//! A scenario is TOML (see `bench/scenarios/default.toml` for every key with its
//! meaning). It is parsed with `deny_unknown_fields` and validated once, before any
//! process starts; every error names the file and the key path.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::service::{self, Listen, ServiceSpec, Services};

/// The default scenario, compiled in so `cargo run -p bench` works from any directory.
pub const DEFAULT_TOML: &str = include_str!("../scenarios/default.toml");

/// A whole scenario.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in reports.
    pub name: String,
    /// One line for the report.
    #[serde(default)]
    pub description: String,
    /// Recorded in the report (the statistics are exact and need no randomness).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Rounds of interleaved trials: 6 or more for a 95 % interval (exact signed-rank).
    pub rounds: usize,
    /// Fixed rates: absolute (`2000`) or a share (`"50%"`) of what `rates_of` says.
    pub rates: Vec<Rate>,
    /// What percentage rates are a share of: `"ceiling"` (the highest clean rate, found by a
    /// short calibration ramp; the default) or `"capacity"` (the slowest topology's
    /// closed-loop capacity, which saturates the machine).
    #[serde(default)]
    pub rates_of: RatesOf,
    /// Run the baseline twice a round (first and last): the A/A noise floor.
    #[serde(default = "yes")]
    pub baseline_twice: bool,
    /// Busy shares above which a trial is saturated and its rate flagged.
    #[serde(default)]
    pub thresholds: ThresholdSettings,
    /// The request every connection sends.
    #[serde(default)]
    pub request: RequestSpec,
    /// Several request shapes instead of one (`[[shape]]`, each a named `[request]`): every
    /// shape gets its own capacity, ceiling, rates, tables and summary, measured in the same
    /// interleaved rounds, and the report compares the shapes.
    #[serde(default, rename = "shape", skip_serializing_if = "Vec::is_empty")]
    pub shapes: Vec<RequestSpec>,
    /// The fixed-rate trials.
    pub load: LoadSettings,
    /// The closed-loop capacity probe.
    #[serde(default)]
    pub capacity: CapacitySettings,
    /// The open-loop ramp that finds the clean-rate ceiling (`rates_of = "ceiling"`).
    #[serde(default)]
    pub calibration: CalibrationSettings,
    /// The app's settings.
    #[serde(default)]
    pub app: WorkerSettings,
    /// The proxies' settings (ours, NGINX and external proxies get the same worker count).
    #[serde(default)]
    pub proxy: WorkerSettings,
    /// The service of every topology that names none (a key of `[services]`); the TinyFish
    /// app when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Services to measure or to put proxies in front of (see [`crate::service`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, ServiceSpec>,
    /// Topologies in order; the first is the baseline the others are compared with.
    #[serde(rename = "topology")]
    pub topologies: Vec<TopologySpec>,
}

fn default_seed() -> u64 {
    1
}

fn yes() -> bool {
    true
}

/// What percentage rates are a share of.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RatesOf {
    /// The clean-rate ceiling from the calibration ramp.
    #[default]
    Ceiling,
    /// The slowest topology's closed-loop capacity.
    Capacity,
}

/// Saturation thresholds (shares of a CPU, 0 to 1).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ThresholdSettings {
    /// Share of all the machine's CPUs busy over a window (/proc/stat).
    pub machine_busy: f64,
    /// Share of one CPU the busiest load generator thread used.
    pub loadgen_thread_busy: f64,
}

impl Default for ThresholdSettings {
    fn default() -> Self {
        let t = report::model::Thresholds::default();
        ThresholdSettings {
            machine_busy: t.machine_busy,
            loadgen_thread_busy: t.loadgen_thread_busy,
        }
    }
}

/// A target rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Requests per second.
    Absolute(f64),
    /// Percent of the clean-rate ceiling (or of the slowest capacity, see `rates_of`).
    Percent(f64),
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Absolute(r) => write!(f, "{r} req/s"),
            Rate::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Rate::Absolute(r) => s.serialize_f64(*r),
            Rate::Percent(p) => s.serialize_str(&format!("{p}%")),
        }
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of requests per second or a percentage like \"50%\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Rate, E> {
                Ok(Rate::Absolute(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                let bad = || {
                    E::custom(format!(
                        "expected a number of requests per second or a percentage like \"50%\", got {v:?}"
                    ))
                };
                let p = v.trim().strip_suffix('%').ok_or_else(bad)?;
                p.trim()
                    .parse::<f64>()
                    .map(Rate::Percent)
                    .map_err(|_| bad())
            }
        }
        d.deserialize_any(V)
    }
}

/// The request the load generator sends.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RequestSpec {
    /// HTTP method.
    pub method: String,
    /// Path and query, e.g. `/` or `/work?cpu_us=50&bytes=4096`.
    pub path: String,
    /// Request body size in bytes (sent with Content-Length; use POST /echo to echo it).
    pub body_bytes: usize,
    /// Send the body with chunked transfer coding instead of a Content-Length.
    #[serde(skip_serializing_if = "is_false")]
    pub chunked: bool,
    /// A shape's name in the report (`[[shape]]` entries; empty for `[request]`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
}

impl Default for RequestSpec {
    fn default() -> Self {
        RequestSpec {
            method: "GET".into(),
            path: "/".into(),
            body_bytes: 0,
            chunked: false,
            name: String::new(),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Fixed-rate trial settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadSettings {
    /// Keep-alive connections.
    pub connections: usize,
    /// Load generator threads.
    #[serde(default = "one")]
    pub threads: usize,
    /// Warm-up before each measured window (not recorded, not sampled).
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
    /// The measured window.
    #[serde(with = "humantime_serde")]
    pub measure: Duration,
    /// The load generator's send window (sends due within it go out in one wake-up);
    /// default: automatic (room for 4 sends per wake-up, at most 1 ms). `"0s"`: one
    /// wake-up per send.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub send_window: Option<Duration>,
}

/// Closed-loop capacity probe settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CapacitySettings {
    /// Connections (each sends back to back).
    pub connections: usize,
    /// Warm-up before measuring.
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
    /// Measured window per topology.
    #[serde(with = "humantime_serde")]
    pub measure: Duration,
}

impl Default for CapacitySettings {
    fn default() -> Self {
        CapacitySettings {
            connections: 32,
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(2),
        }
    }
}

/// Calibration ramp settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CalibrationSettings {
    /// Warm-up before each step.
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
    /// Measured window of each step.
    #[serde(with = "humantime_serde")]
    pub measure: Duration,
}

impl Default for CalibrationSettings {
    fn default() -> Self {
        CalibrationSettings {
            warmup: Duration::from_millis(200),
            measure: Duration::from_secs(1),
        }
    }
}

/// Worker threads of a server role.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Worker threads (NGINX: `worker_processes`).
    pub threads: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings { threads: 1 }
    }
}

/// What kind of topology.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TopologyKind {
    /// The app alone.
    Direct,
    /// A minimal hyper server answering the app's greeting, alone: the floor the app's
    /// own CPU per request is compared with (`bench/scenarios/app-vs-hyper.toml`).
    Hyper,
    /// The app behind our proxy.
    Proxied,
    /// The app behind NGINX (Debian's nginx, process mode, `deploy/nginx/nginx.conf`).
    Nginx,
    /// The app behind any proxy started from a command template.
    External,
}

/// One topology of the comparison.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    /// Name in reports (`direct`, `proxied`, `nginx`, `haproxy`, …).
    pub name: String,
    /// Kind.
    pub kind: TopologyKind,
    /// Skip with a message (instead of failing) when the program is not installed.
    #[serde(default)]
    pub optional: bool,
    /// External: the command, with `{listen}`, `{upstream}`, `{threads}` and `{config}`
    /// placeholders (`{config}` is the rendered `config_template`).
    #[serde(default)]
    pub command: Option<String>,
    /// External: a config file template rendered to a temporary file for `{config}`;
    /// NGINX: a template used instead of `deploy/nginx/nginx.conf` (e.g.
    /// `deploy/nginx/uwsgi.conf`).
    #[serde(default)]
    pub config_template: Option<PathBuf>,
    /// The service it serves or puts its proxy in front of (a key of `[services]`, or
    /// `"app"`); the scenario's `service` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// How the proxy reaches the TinyFish app: `"tcp"` (the default) or `"unix"` (a Unix
    /// socket: the same-host sidecar case). A `[services]` entry says it with its `listen`.
    #[serde(default)]
    pub upstream: Listen,
    /// External: how to install the program, said when it is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Proxied: extra flags for our proxy (e.g. `["--no-fast-path"]`, every request through
    /// pingora's proxy).
    #[serde(default)]
    pub proxy_args: Vec<String>,
    /// External: how long to wait for the listen port to answer.
    #[serde(default = "default_ready_timeout", with = "humantime_serde")]
    pub ready_timeout: Duration,
    /// How the load generator talks to the front of the topology: `"h1"` (plain HTTP/1.1,
    /// the default), `"h1+tls"` (HTTPS/1.1: the proxy terminates TLS 1.3 with the run's
    /// own certificate; the app behind it still speaks plain HTTP/1.1) or `"h2+tls"`
    /// (HTTP/2 over TLS 1.3, ALPN `h2`, `streams` concurrent streams per connection).
    #[serde(default)]
    pub protocol: Protocol,
    /// `h2+tls`: concurrent streams per connection (each a sequential client).
    #[serde(default = "one")]
    pub streams: usize,
    /// Load connections for this row, instead of `[load]`/`[capacity]` `connections`
    /// (e.g. fewer HTTP/2 connections, each multiplexing `streams`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    /// Open a new connection after this many requests (with TLS, a new handshake each
    /// time: a handshake-heavy load). Unset: keep-alive for the whole trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_connection: Option<u64>,
    /// TLS: whether the load generator resumes sessions (tickets) on new connections.
    /// `false`: every new connection makes a full handshake (how one is priced).
    #[serde(default = "yes")]
    pub tls_resumption: bool,
}

/// How the load generator talks to a topology's front.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum Protocol {
    /// Plain HTTP/1.1.
    #[default]
    #[serde(rename = "h1")]
    H1,
    /// HTTP/1.1 over TLS 1.3.
    #[serde(rename = "h1+tls")]
    H1Tls,
    /// HTTP/2 over TLS 1.3 (ALPN `h2`).
    #[serde(rename = "h2+tls")]
    H2Tls,
}

impl Protocol {
    /// Whether the front speaks TLS.
    pub fn tls(self) -> bool {
        matches!(self, Protocol::H1Tls | Protocol::H2Tls)
    }
}

fn one() -> usize {
    1
}

fn default_ready_timeout() -> Duration {
    Duration::from_secs(10)
}

/// A scenario that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: cannot read the scenario: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type.
    #[error("{origin}: {message}")]
    Parse {
        /// The file.
        origin: String,
        /// toml's message, which names the key and line.
        message: String,
    },
    /// A value that parses but cannot be run.
    #[error("{origin}: {key}: {message}")]
    Invalid {
        /// The file.
        origin: String,
        /// Key path such as `rates[2]`.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The built-in default scenario.
    pub fn default_scenario() -> Scenario {
        Self::from_toml(DEFAULT_TOML, "bench/scenarios/default.toml")
            .expect("the built-in default scenario is valid (tested)")
    }

    /// Parses and validates scenario TOML; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        s.validate(origin)?;
        Ok(s)
    }

    /// Checks what types cannot: ranges, names, templates.
    pub fn validate(&self, origin: &str) -> Result<(), ScenarioError> {
        let bad = |key: String, message: String| {
            Err(ScenarioError::Invalid {
                origin: origin.to_owned(),
                key,
                message,
            })
        };
        if self.rounds == 0 || self.rounds > 1000 {
            return bad(
                "rounds".into(),
                format!("expected 1 to 1000 rounds, got {}", self.rounds),
            );
        }
        if self.rates.is_empty() {
            return bad(
                "rates".into(),
                "give at least one rate, e.g. rates = [\"50%\"]".into(),
            );
        }
        for (i, r) in self.rates.iter().enumerate() {
            match *r {
                Rate::Absolute(v) if !(v.is_finite() && v > 0.0 && v <= 10_000_000.0) => {
                    return bad(
                        format!("rates[{i}]"),
                        format!("expected a rate from 1 to 10000000 req/s, got {v}"),
                    );
                }
                Rate::Percent(p) if !(p.is_finite() && p > 0.0 && p <= 100.0) => {
                    return bad(
                        format!("rates[{i}]"),
                        format!("expected a percentage above 0% and at most 100%, got {p}%"),
                    );
                }
                _ => {}
            }
        }
        let requests: Vec<(String, &RequestSpec)> = if self.shapes.is_empty() {
            vec![("request".to_string(), &self.request)]
        } else {
            self.shapes
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("shape[{i}]"), r))
                .collect()
        };
        for (i, (key, r)) in requests.iter().enumerate() {
            if !r.path.starts_with('/') {
                return bad(
                    format!("{key}.path"),
                    format!("expected a path starting with /, got {:?}", r.path),
                );
            }
            if r.method.is_empty() || !r.method.bytes().all(|b| b.is_ascii_uppercase()) {
                return bad(
                    format!("{key}.method"),
                    format!(
                        "expected an HTTP method such as GET or POST, got {:?}",
                        r.method
                    ),
                );
            }
            if r.body_bytes > 16 * 1024 * 1024 {
                return bad(
                    format!("{key}.body_bytes"),
                    "expected at most 16 MiB".into(),
                );
            }
            if r.chunked && r.body_bytes == 0 {
                return bad(
                    format!("{key}.chunked"),
                    "a chunked request needs a body: set body_bytes".into(),
                );
            }
            if !self.shapes.is_empty() {
                if r.name.is_empty()
                    || !r
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return bad(
                        format!("{key}.name"),
                        format!("expected letters, digits, - or _, got {:?}", r.name),
                    );
                }
                if requests[..i].iter().any(|(_, o)| o.name == r.name) {
                    return bad(
                        format!("{key}.name"),
                        format!("{:?} is used twice; shape names must be unique", r.name),
                    );
                }
            }
        }
        for (key, v) in [
            ("thresholds.machine_busy", self.thresholds.machine_busy),
            (
                "thresholds.loadgen_thread_busy",
                self.thresholds.loadgen_thread_busy,
            ),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 1.0) {
                return bad(
                    key.into(),
                    format!("expected a share of a CPU above 0 and at most 1, got {v}"),
                );
            }
        }
        for (key, n, max) in [
            ("load.connections", self.load.connections, 10_000),
            ("load.threads", self.load.threads, 64),
            ("capacity.connections", self.capacity.connections, 10_000),
            ("app.threads", self.app.threads, 256),
            ("proxy.threads", self.proxy.threads, 256),
        ] {
            if n == 0 || n > max {
                return bad(key.into(), format!("expected 1 to {max}, got {n}"));
            }
        }
        for (key, d) in [
            ("load.measure", self.load.measure),
            ("capacity.measure", self.capacity.measure),
            ("calibration.measure", self.calibration.measure),
        ] {
            if d < Duration::from_millis(200) || d > Duration::from_secs(3600) {
                return bad(
                    key.into(),
                    format!(
                        "expected a window from 200ms to 1h, got {}",
                        humantime::format_duration(d)
                    ),
                );
            }
        }
        if self.topologies.is_empty() {
            return bad("topology".into(), "add at least one [[topology]]".into());
        }
        for (i, t) in self.topologies.iter().enumerate() {
            let key = |k: &str| format!("topology[{i}].{k}");
            if t.name.is_empty()
                || !t
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return bad(
                    key("name"),
                    format!("expected letters, digits, - or _, got {:?}", t.name),
                );
            }
            if self.topologies[..i].iter().any(|o| o.name == t.name) {
                return bad(
                    key("name"),
                    format!("{:?} is used twice; names must be unique", t.name),
                );
            }
            match (t.kind, &t.command) {
                (TopologyKind::External, None) => {
                    return bad(key("command"), "an external topology needs a command template with {listen} and {upstream} (or {config})".into());
                }
                (TopologyKind::External, Some(c)) => {
                    let has_cfg = c.contains("{config}");
                    if has_cfg != t.config_template.is_some() {
                        return bad(
                            key("command"),
                            "use {config} in the command exactly when config_template is set"
                                .into(),
                        );
                    }
                    let placeholders = c.contains("{listen}") && c.contains("{upstream}");
                    if !has_cfg && !placeholders {
                        return bad(key("command"), "the command must contain {listen} and {upstream} (or {config} with a config_template that does)".into());
                    }
                }
                (_, Some(_)) => {
                    return bad(
                        key("command"),
                        "only external topologies take a command".into(),
                    );
                }
                _ => {}
            }
            if t.protocol.tls() && matches!(t.kind, TopologyKind::Direct | TopologyKind::Hyper) {
                return bad(
                    key("protocol"),
                    "the app serves plain HTTP/1.1: TLS is terminated by a proxy (use it on a proxied, nginx or external topology)".into(),
                );
            }
            if t.streams == 0 || t.streams > 1000 {
                return bad(
                    key("streams"),
                    format!("expected 1 to 1000, got {}", t.streams),
                );
            }
            if t.streams != 1 && t.protocol != Protocol::H2Tls {
                return bad(
                    key("streams"),
                    "streams are HTTP/2's: set protocol = \"h2+tls\"".into(),
                );
            }
            if t.connections.is_some_and(|c| c == 0 || c > 10_000) {
                return bad(key("connections"), "expected 1 to 10000".into());
            }
            if t.protocol == Protocol::H2Tls && t.requests_per_connection.is_some() {
                return bad(
                    key("requests_per_connection"),
                    "HTTP/2 connections stay open: new connections per request are HTTP/1.1's (protocol = \"h1+tls\")".into(),
                );
            }
            if t.requests_per_connection == Some(0) {
                return bad(
                    key("requests_per_connection"),
                    "expected at least 1 (unset: keep-alive)".into(),
                );
            }
            if !t.proxy_args.is_empty() && t.kind != TopologyKind::Proxied {
                return bad(
                    key("proxy_args"),
                    "only proxied topologies take proxy_args (flags of our proxy)".into(),
                );
            }
        }
        let baseline_kinds = [TopologyKind::Direct, TopologyKind::Hyper];
        if !baseline_kinds.contains(&self.topologies[0].kind) {
            return bad(
                "topology[0]".into(),
                "the first topology is the baseline: kind = \"direct\" (or \"hyper\")".into(),
            );
        }
        if self
            .topologies
            .iter()
            .filter(|t| t.kind == TopologyKind::Hyper)
            .count()
            > 1
        {
            return bad(
                "topology".into(),
                "at most one topology of kind Hyper".into(),
            );
        }
        service::validate(self).map_err(|(key, message)| ScenarioError::Invalid {
            origin: origin.to_owned(),
            key,
            message,
        })
    }

    /// The scenario's services.
    pub fn services(&self) -> Services {
        Services {
            default: self.service.clone(),
            named: self.services.clone(),
        }
    }

    /// The request shapes to run: the `[[shape]]` entries, or the one `[request]`.
    pub fn requests(&self) -> Vec<RequestSpec> {
        if self.shapes.is_empty() {
            vec![self.request.clone()]
        } else {
            self.shapes.clone()
        }
    }

    /// The `--quick` variant: same topologies and request, fewer and shorter trials (the
    /// middle rate, two rounds: too few for an interval, which the report says).
    pub fn quick(mut self) -> Scenario {
        self.rounds = 2;
        let mid = self.rates[self.rates.len() / 2];
        self.rates = vec![mid];
        self.load.warmup = Duration::from_millis(300);
        self.load.measure = Duration::from_millis(1500);
        self.capacity.warmup = Duration::from_millis(200);
        self.capacity.measure = Duration::from_millis(1000);
        self.calibration.warmup = Duration::from_millis(100);
        self.calibration.measure = Duration::from_millis(500);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scenario_is_valid_and_round_trips() {
        let s = Scenario::default_scenario();
        assert_eq!(s.topologies[0].kind, TopologyKind::Direct);
        let text = toml::to_string(&s).unwrap();
        let back = Scenario::from_toml(&text, "round-trip").unwrap();
        assert_eq!(s, back);
    }

    #[test]
    fn scenario_files_in_the_repo_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                Scenario::from_file(&p).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 1);
    }

    fn with(replace: &str, by: &str) -> Result<Scenario, ScenarioError> {
        assert!(DEFAULT_TOML.contains(replace), "{replace}");
        Scenario::from_toml(&DEFAULT_TOML.replacen(replace, by, 1), "s.toml")
    }

    #[test]
    fn a_bad_rate_names_its_index() {
        let e = with("rates = [", "rates = [\"fast\", ")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("s.toml") && e.contains("fast") && e.contains("percentage"),
            "{e}"
        );
        let e = with("rates = [", "rates = [\"150%\", ")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rates[0]"), "{e}");
    }

    #[test]
    fn tls_and_http2_rows_are_checked_where_they_are_written() {
        let s = with(
            "kind = \"proxied\"",
            "kind = \"proxied\"\nprotocol = \"h2+tls\"\nstreams = 8",
        )
        .unwrap();
        assert_eq!(s.topologies[1].protocol, Protocol::H2Tls);
        assert_eq!(s.topologies[1].streams, 8);
        for (replace, by, want) in [
            (
                "kind = \"direct\"",
                "kind = \"direct\"\nprotocol = \"h1+tls\"",
                "TLS is terminated by a proxy",
            ),
            (
                "kind = \"proxied\"",
                "kind = \"proxied\"\nstreams = 4",
                "set protocol = \"h2+tls\"",
            ),
            (
                "kind = \"proxied\"",
                "kind = \"proxied\"\nprotocol = \"h2\"",
                "unknown variant",
            ),
            (
                "kind = \"proxied\"",
                "kind = \"proxied\"\nprotocol = \"h2+tls\"\nrequests_per_connection = 1",
                "HTTP/2 connections stay open",
            ),
            (
                "kind = \"proxied\"",
                "kind = \"proxied\"\nrequests_per_connection = 0",
                "at least 1",
            ),
        ] {
            let e = with(replace, by).unwrap_err().to_string();
            assert!(e.contains("s.toml") && e.contains(want), "{by}: {e}");
        }
    }

    #[test]
    fn an_unknown_key_is_named() {
        let e = with("[load]", "[load]\nconections = 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("conections"), "{e}");
    }

    #[test]
    fn bad_durations_and_counts() {
        let e = with("rounds = ", "rounds = 0 #").unwrap_err().to_string();
        assert!(e.contains("rounds"), "{e}");
        let e = with("measure = \"", "measure = \"1 fortnight\" #")
            .unwrap_err()
            .to_string();
        assert!(e.contains("measure"), "{e}");
    }

    #[test]
    fn external_needs_placeholders() {
        let e = with(
            "kind = \"proxied\"",
            "kind = \"proxied\"\n\n[[topology]]\nname = \"x\"\nkind = \"external\"\ncommand = \"x --port 1\"",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("topology[") && e.contains("{listen}"), "{e}");
    }

    #[test]
    fn quick_shortens() {
        let q = Scenario::default_scenario().quick();
        assert_eq!(q.rates.len(), 1);
        assert_eq!(q.rounds, 2);
    }
}
