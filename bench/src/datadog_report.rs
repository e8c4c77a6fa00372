//! Reporting a run to the user's Datadog agent while it happens: each trial's figures as
//! `tinyfish.bench.*` gauges and its start and end as DogStatsD events.
//!
//! On when `DD_AGENT_HOST` (with `DD_DOGSTATSD_PORT`) or `DD_DOGSTATSD_URL` is set where the
//! bench starts; the address is parsed by the telemetry crate ([`DatadogEnv::target`]) and
//! the lines go out through its sink ([`telemetry::sink`]): non-blocking, so an agent that
//! is not there costs nothing and never fails the run. This is the *user's* agent: the
//! app and proxy the bench starts report to the bench's embedded agent instead (the
//! bench sets their `DD_AGENT_HOST`, see [`crate::topology`]).
//!
//! Every gauge and event carries `service` (`DD_SERVICE`, default `tinyfish-bench`), `env`
//! (`DD_ENV`, when set), `version`, `scenario`, `run_id` and the trial's `topology`,
//! `rate` (target req/s), `round` (from 1, as the progress lines count), `replicate` (1
//! for the baseline's A/A run) and `shape` (multi-shape scenarios). Events use the
//! DogStatsD event datagram (`_e{title_len,text_len}:title|text|k:…|t:…|#tags`): cadence
//! sends metrics only, so events are formatted here and written to the same socket.

use std::fmt::Write as _;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use cadence::prelude::*;
use cadence::{MetricSink, StatsdClient};
use report::model::{roles, Trial};
use telemetry::{ConfigError, DatadogEnv, DynSink, Target};

/// The names of the gauges, sent once per trial when it ends.
pub mod names {
    /// The target rate, req/s.
    pub const RATE_TARGET: &str = "tinyfish.bench.rate.target";
    /// Completed requests per second over the measured window.
    pub const RATE_ACHIEVED: &str = "tinyfish.bench.rate.achieved";
    /// 1 when the load generator held the target rate, else 0.
    pub const RATE_HELD: &str = "tinyfish.bench.rate.held";
    /// Requests completed in the window.
    pub const REQUESTS: &str = "tinyfish.bench.requests";
    /// Failed requests in the window (connection errors, timeouts, non-2xx).
    pub const ERRORS: &str = "tinyfish.bench.errors";
    /// Latency percentiles from the intended send time (µs), `.p50` … `.max`.
    pub const LATENCY: &str = "tinyfish.bench.latency";
    /// CPU µs per request of one role's process tree (tags `role`, `program`).
    pub const CPU_PER_REQUEST: &str = "tinyfish.bench.cpu.us_per_request";
    /// Peak PSS of one role's process tree, bytes (tags `role`, `program`).
    pub const MEMORY_PSS: &str = "tinyfish.bench.memory.pss";
    /// CPU µs per request of every server process (all roles but the load generator).
    pub const SERVER_CPU_PER_REQUEST: &str = "tinyfish.bench.server.cpu.us_per_request";
    /// Peak PSS of every server process, bytes.
    pub const SERVER_MEMORY_PSS: &str = "tinyfish.bench.server.memory.pss";
    /// Share of all the machine's CPUs busy over the window (0 to 1).
    pub const MACHINE_BUSY: &str = "tinyfish.bench.machine.busy";
    /// Share of one CPU the busiest load generator thread used (0 to 1).
    pub const LOADGEN_THREAD_BUSY: &str = "tinyfish.bench.loadgen.thread_busy";
}

/// The service tag when `DD_SERVICE` is unset.
pub const DEFAULT_SERVICE: &str = "tinyfish-bench";

/// Which trial is starting or ending.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    /// Topology name.
    pub topology: &'a str,
    /// Request shape name (`""` in a single-shape scenario).
    pub shape: &'a str,
    /// Target rate, req/s.
    pub rate: f64,
    /// Round, from 0.
    pub round: usize,
    /// Rounds in the run.
    pub rounds: usize,
    /// 0, or 1 for the baseline's second run in the round (A/A).
    pub replicate: usize,
    /// Position in the run.
    pub sequence: usize,
}

/// Where the run's reports go; off (every call a no-op) unless the environment names an
/// agent. Cheap to clone.
#[derive(Clone, Default)]
pub struct Reporter {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    target: Target,
    /// `key:value` tags of every line: service, env, version, scenario, run_id.
    tags: Vec<String>,
    run_id: String,
    client: StatsdClient,
    sink: Arc<DynSink>,
    failed: AtomicU64,
    warned: AtomicBool,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("Reporter(off)"),
            Some(i) => write!(f, "Reporter({}, {:?})", i.target, i.tags),
        }
    }
}

/// The client's sink and the events' writer are one socket.
struct Shared(Arc<DynSink>);

impl MetricSink for Shared {
    fn emit(&self, line: &str) -> io::Result<usize> {
        self.0.emit(line)
    }
    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Reporter {
    /// Reports to the agent `env` names, or off when it names none. A malformed
    /// variable (`DD_DOGSTATSD_URL=tcp://…`) is the error: check it before anything starts.
    pub fn from_env(env: &DatadogEnv, scenario: &str) -> Result<Reporter, ConfigError> {
        let target = env.target()?;
        match telemetry::sink(&target)? {
            None => Ok(Reporter::default()),
            Some(sink) => Ok(Reporter::with_sink(target, sink, env, scenario, run_id())),
        }
    }

    /// Reports through `sink` (tests give one that records).
    pub fn with_sink(
        target: Target,
        sink: DynSink,
        env: &DatadogEnv,
        scenario: &str,
        run_id: String,
    ) -> Reporter {
        let mut tags = vec![tag(
            "service",
            env.service.as_deref().unwrap_or(DEFAULT_SERVICE),
        )];
        if let Some(e) = &env.env {
            tags.push(tag("env", e));
        }
        tags.push(tag(
            "version",
            env.version.as_deref().unwrap_or(env!("CARGO_PKG_VERSION")),
        ));
        tags.push(tag("scenario", scenario));
        tags.push(tag("run_id", &run_id));
        let sink = Arc::new(sink);
        let client = StatsdClient::from_sink("", Shared(sink.clone()));
        Reporter {
            inner: Some(Arc::new(Inner {
                target,
                tags,
                run_id,
                client,
                sink,
                failed: AtomicU64::new(0),
                warned: AtomicBool::new(false),
            })),
        }
    }

    /// Whether anything is sent.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// One line for stderr at the start, when on: where the reports go.
    pub fn describe(&self) -> Option<String> {
        let i = self.inner.as_ref()?;
        Some(format!(
            "bench: reporting each trial to Datadog at {}: tinyfish.bench.* gauges and start/end events, tagged {}",
            i.target,
            i.tags.join(",")
        ))
    }

    /// Lines that could not be sent so far.
    pub fn failed(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.failed.load(Ordering::Relaxed))
    }

    /// The trial starts: an `info` event, sent now.
    pub fn started(&self, at: &At<'_>) {
        let Some(i) = &self.inner else { return };
        let tags = i.trial_tags(at, "started");
        let text = format!(
            "Trial {} of run {}: an open-loop load at {:.0} req/s, warm-up then the measured window.",
            at.sequence + 1,
            i.run_id,
            at.rate
        );
        let line = event(&title(at, "started"), &text, "info", &i.key(at), &tags);
        i.send_line(&line);
        i.flush();
    }

    /// The trial ended: its gauges, then a `success` event (`warning` when the rate was
    /// not held or requests failed, `error` when the trial failed), sent now.
    pub fn finished(&self, at: &At<'_>, outcome: Result<&Trial, &anyhow::Error>) {
        let Some(i) = &self.inner else { return };
        let (phase, alert, text) = match outcome {
            Ok(trial) => {
                let base = i.trial_tags(at, "");
                for g in gauges(trial) {
                    i.send_gauge(&g, &base);
                }
                let clean = trial.rate_held && trial.errors == 0;
                (
                    "finished",
                    if clean { "success" } else { "warning" },
                    summary(trial),
                )
            }
            Err(e) if e.is::<crate::run::Interrupted>() => (
                "interrupted",
                "warning",
                "Ctrl-C or SIGTERM: the run stops here.".to_owned(),
            ),
            Err(e) => ("failed", "error", format!("{e:#}")),
        };
        let tags = i.trial_tags(at, phase);
        let line = event(&title(at, phase), &text, alert, &i.key(at), &tags);
        i.send_line(&line);
        i.flush();
    }
}

impl Inner {
    /// The run's tags, the trial's, and `trial:<phase>` (events only) when not empty.
    fn trial_tags(&self, at: &At<'_>, phase: &str) -> Vec<String> {
        let mut tags = self.tags.clone();
        tags.push(tag("topology", at.topology));
        tags.push(tag("rate", &format!("{:.0}", at.rate)));
        tags.push(tag("round", &(at.round + 1).to_string()));
        tags.push(tag("replicate", &at.replicate.to_string()));
        if !at.shape.is_empty() {
            tags.push(tag("shape", at.shape));
        }
        if !phase.is_empty() {
            tags.push(tag("trial", phase));
        }
        tags
    }

    /// The aggregation key: a trial's start and end group together.
    fn key(&self, at: &At<'_>) -> String {
        format!("{}-{}", self.run_id, at.sequence)
    }

    fn send_gauge(&self, g: &Gauge, base: &[String]) {
        let mut b = self.client.gauge_with_tags(&g.name, g.value);
        for t in base.iter().chain(&g.tags) {
            b = b.with_tag_value(t);
        }
        if let Err(e) = b.try_send() {
            self.fail(&e.to_string());
        }
    }

    fn send_line(&self, line: &str) {
        if let Err(e) = self.sink.emit(line) {
            self.fail(&e.to_string());
        }
    }

    fn flush(&self) {
        if let Err(e) = self.sink.flush() {
            self.fail(&e.to_string());
        }
    }

    /// Counts a line not sent; says so once (the run goes on).
    fn fail(&self, why: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if !self.warned.swap(true, Ordering::Relaxed) {
            eprintln!(
                "bench: note: cannot send the run's reports to Datadog at {}: {why} (the run goes on; later failures are not shown)",
                self.target
            );
        }
    }
}

/// One gauge of a trial: name, value and the tags it adds to the trial's.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    /// Metric name ([`names`]).
    pub name: String,
    /// Value (units in the name's documentation).
    pub value: f64,
    /// `key:value` tags beyond the trial's (`role`, `program`).
    pub tags: Vec<String>,
}

/// The gauges a dashboard wants from one trial.
pub fn gauges(trial: &Trial) -> Vec<Gauge> {
    let g = |name: &str, value: f64| Gauge {
        name: name.to_owned(),
        value,
        tags: Vec::new(),
    };
    let l = &trial.latency_us;
    let mut out = vec![
        g(names::RATE_TARGET, trial.rate_rps),
        g(names::RATE_ACHIEVED, trial.achieved_rps),
        g(names::RATE_HELD, f64::from(u8::from(trial.rate_held))),
        g(names::REQUESTS, trial.requests as f64),
        g(names::ERRORS, trial.errors as f64),
    ];
    for (p, v) in [
        ("p50", l.p50),
        ("p90", l.p90),
        ("p99", l.p99),
        ("p999", l.p999),
        ("max", l.max),
    ] {
        out.push(g(&format!("{}.{p}", names::LATENCY), v));
    }
    for p in &trial.processes {
        let tags = vec![tag("role", &p.role), tag("program", &p.program)];
        out.push(Gauge {
            tags: tags.clone(),
            ..g(names::CPU_PER_REQUEST, p.cpu_us_per_request)
        });
        out.push(Gauge {
            tags,
            ..g(names::MEMORY_PSS, p.pss_peak_bytes as f64)
        });
    }
    if trial.processes.iter().any(|p| p.role != roles::LOADGEN) {
        out.push(g(
            names::SERVER_CPU_PER_REQUEST,
            trial.server_cpu_us_per_request(),
        ));
        out.push(g(
            names::SERVER_MEMORY_PSS,
            trial.server_pss_peak_bytes() as f64,
        ));
    }
    out.push(g(names::MACHINE_BUSY, trial.machine_busy));
    out.push(g(names::LOADGEN_THREAD_BUSY, trial.loadgen_thread_busy));
    out
}

/// `tinyfish bench: proxied at 4000 req/s, round 2/6 started`.
pub fn title(at: &At<'_>, phase: &str) -> String {
    let mut name = at.topology.to_owned();
    if at.replicate == 1 {
        name.push_str(" (A/A)");
    }
    if !at.shape.is_empty() {
        let _ = write!(name, " {}", at.shape);
    }
    format!(
        "tinyfish bench: {name} at {:.0} req/s, round {}/{} {phase}",
        at.rate,
        at.round + 1,
        at.rounds
    )
}

/// The finished event's text: the trial's headline figures.
fn summary(t: &Trial) -> String {
    let mut s = format!(
        "Achieved {:.0} req/s{}; latency p50 {:.0} µs, p99 {:.0} µs",
        t.achieved_rps,
        if t.rate_held {
            ""
        } else {
            " (the load generator did not hold the rate)"
        },
        t.latency_us.p50,
        t.latency_us.p99
    );
    if t.processes.iter().any(|p| p.role != roles::LOADGEN) {
        let _ = write!(
            s,
            "; server CPU {:.1} µs/request, server PSS {:.1} MiB",
            t.server_cpu_us_per_request(),
            t.server_pss_peak_bytes() as f64 / (1024.0 * 1024.0)
        );
    }
    let _ = write!(
        s,
        "; {} errors of {} requests; machine {:.0} % busy.",
        t.errors,
        t.requests,
        t.machine_busy * 100.0
    );
    s
}

/// A DogStatsD event datagram:
/// `_e{<title bytes>,<text bytes>}:<title>|<text>|k:<key>|t:<alert>|#<tags>`, newlines
/// escaped as `\n` (the lengths are of the escaped text, as the agent reads them).
pub fn event(title: &str, text: &str, alert: &str, key: &str, tags: &[String]) -> String {
    let title = escape(title);
    let text = escape(text);
    let mut line = format!(
        "_e{{{},{}}}:{title}|{text}|k:{}|t:{alert}",
        title.len(),
        text.len(),
        field(key)
    );
    if !tags.is_empty() {
        let _ = write!(line, "|#{}", tags.join(","));
    }
    line
}

fn escape(s: &str) -> String {
    s.replace("\r\n", "\\n").replace(['\n', '\r'], "\\n")
}

/// `key:value`, the value made safe for a tag (Datadog's own rule: letters, digits and
/// `_-:./` kept, anything else `_`).
pub fn tag(key: &str, value: &str) -> String {
    format!("{key}:{}", field(value))
}

fn field(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "_-:./".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// This run's id: its start (UTC, to the second) and the bench's pid,
/// `20250102T030405Z-1234`.
fn run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    format!("{stamp}-{}", std::process::id())
}

#[cfg(test)]
mod tests;
