//! One bench run: capacity, then interleaved fixed-rate trials, then the report.
//!
//! ```text
//! scenario ─> capacity (closed loop, each topology) ─> rates (% of the slowest)
//!   for round in rounds:            topologies alternate A B C, C B A, …
//!     for topology:                 up (children on 127.0.0.1, told the embedded agent)
//!       for rate:                   warm-up, then the measured window:
//!                                   loadgen (open loop) + /proc sampling + agent window
//!       down
//! results ─> summary (paired bootstrap over rounds) ─> results.json, summary.md, report.html
//! ```
//!
//! Ctrl-C (SIGINT) or SIGTERM stops at the next check (at most one trial's length),
//! stops every child, writes what was measured with `complete: false`, and the bench
//! exits non-zero. A second Ctrl-C exits at once; children still die with the bench
//! (parent-death signal, see [`crate::child`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use loadgen::{Live, LoadReport, LoadSpec, Mode, Phase};
use report::model::{
    self, roles, Capacity, Environment, Latency, ProcessUsage, Results, ScenarioEcho, ServerSide,
    Trial,
};

use crate::sample::{self, Point, Sampler, Target};
use crate::scenario::{Rate, Scenario, TopologyKind, TopologySpec};
use crate::topology::{self, Running};

/// What to run and where to write.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The scenario, already validated.
    pub scenario: Scenario,
    /// Where it came from (for the report).
    pub scenario_file: Option<PathBuf>,
    /// Whether `--quick` shortened it.
    pub quick: bool,
    /// Output directory.
    pub out: PathBuf,
    /// The executable re-run as `app` and `proxy` (normally `current_exe()`).
    pub exe: PathBuf,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
    /// Run the topologies as compose projects (containers) instead of processes.
    pub compose: bool,
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// What was measured (partial when interrupted).
    pub results: Results,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Whether Ctrl-C / SIGTERM stopped the run.
    pub interrupted: bool,
}

/// Error for an interrupted run (the bench maps it to exit code 130).
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// Build profile facts, from the build script.
pub fn build_profile() -> (&'static str, bool) {
    let profile = match env!("BENCH_PROFILE") {
        "debug" => "dev",
        p => p,
    };
    (profile, env!("BENCH_OPT_LEVEL") != "0")
}

/// Runs the scenario. Results are written even when the run fails part-way or is
/// interrupted; the error (or [`Interrupted`]) is returned after writing them.
pub fn run(opts: &RunOptions, interrupted: Arc<AtomicBool>) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let scenario = &opts.scenario;
    let mut warnings = Vec::new();

    let compose_env = if opts.compose {
        Some(compose_env()?)
    } else {
        None
    };

    // Which topologies can run here.
    let mut topologies: Vec<TopologySpec> = Vec::new();
    for t in &scenario.topologies {
        if opts.compose && !matches!(t.kind, TopologyKind::Direct | TopologyKind::Proxied) {
            let w = format!(
                "skipped topology {}: compose mode runs direct and proxied only",
                t.name
            );
            eprintln!("note: {w}");
            warnings.push(w);
            continue;
        }
        match topology::availability(t) {
            Ok(()) => topologies.push(t.clone()),
            Err(e) if t.optional => {
                let w = format!("skipped topology {}: {e}", t.name);
                eprintln!("note: {w}");
                warnings.push(w);
            }
            Err(e) => return Err(e).context("a topology of the scenario cannot run here"),
        }
    }
    let nginx_version = topologies
        .iter()
        .any(|t| t.kind == TopologyKind::Nginx)
        .then(topology::nginx_version)
        .flatten();

    // The embedded DogStatsD agent.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("agent")
        .enable_all()
        .build()
        .context("cannot start the embedded agent's runtime")?;
    let agent = rt
        .block_on(agent::start(agent::AgentConfig::ephemeral()))
        .context("cannot start the embedded DogStatsD agent")?;

    let scratch = std::env::temp_dir().join(format!("tinyfish-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let env = topology::Env {
        exe: opts.exe.clone(),
        agent: Some(agent.udp_addr()),
        app_threads: scenario.app.threads,
        proxy_threads: scenario.proxy.threads,
        scratch: scratch.clone(),
        dd_env: "bench".into(),
    };

    let (profile, optimized) = build_profile();
    let mut results = Results {
        schema_version: model::SCHEMA_VERSION,
        tool: model::Tool {
            name: "tinyfish-bench".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        environment: environment(profile, optimized, nginx_version),
        scenario: echo(scenario, opts, &topologies),
        capacity: Vec::new(),
        rates_rps: Vec::new(),
        results: Vec::new(),
        summary: Vec::new(),
        headline: String::new(),
        warnings,
        complete: false,
        loadgen_check: None,
    };
    if !optimized {
        results.warnings.push(
            "this bench was built without optimisation: CPU figures are not representative".into(),
        );
    }

    if opts.compose {
        results.environment.mode = "compose".into();
        results.warnings.push(
            "compose mode: CPU and memory are per container (Docker Engine API: cpu total_usage, memory rss), as docker.cpu.usage and docker.mem.rss; the servers' own durations go to the local agent container (http://127.0.0.1:8181/), not into this report".into(),
        );
    }
    let mut runner = Runner {
        scenario,
        env: &env,
        compose: compose_env.as_ref(),
        agent: &agent,
        interrupted: interrupted.clone(),
        progress: Progress::new(opts.progress, plan_len(scenario, topologies.len())),
        sequence: 0,
    };
    let outcome = runner.measure(&topologies, &mut results);
    runner.progress.finish();

    results.environment.duration_s = started.elapsed().as_secs_f64();
    results.summary = report::summary::summarize(&results, report::stats::DEFAULT_RESAMPLES);
    results.complete = outcome.is_ok();
    add_trial_warnings(&mut results);
    results.headline = report::headline(&results);

    let files = report::write_all(&results, &opts.out)
        .with_context(|| format!("cannot write the report into {}", opts.out.display()))?;
    rt.block_on(agent.shutdown());
    let _ = std::fs::remove_dir_all(&scratch);

    match outcome {
        Ok(()) => Ok(Outcome {
            results,
            files,
            interrupted: false,
        }),
        Err(e) if e.is::<Interrupted>() => Ok(Outcome {
            results,
            files,
            interrupted: true,
        }),
        Err(e) => Err(e.context(format!(
            "the run stopped part-way; what was measured is in {}",
            opts.out.display()
        ))),
    }
}

/// Checks the engine, the compose command and the image before anything starts.
fn compose_env() -> anyhow::Result<topology::ComposeEnv> {
    use crate::compose;
    compose::engine_available().context("--compose needs a running Docker engine")?;
    let command = compose::ComposeCommand::detect()
        .context("--compose needs `docker compose` (v2) or docker-compose")?;
    compose::ensure_image(compose::IMAGE).with_context(|| {
        format!(
            "--compose runs the image {}: build it first with deploy/build-offline (or docker compose -f compose/direct.yml build)",
            compose::IMAGE
        )
    })?;
    let sampler = compose::ContainerSampler::connect()
        .context("cannot read container stats from the Docker engine")?;
    Ok(topology::ComposeEnv {
        command,
        sampler: Arc::new(sampler),
        project: format!("tinyfish-bench-{}", std::process::id()),
    })
}

fn plan_len(s: &Scenario, topologies: usize) -> u64 {
    (topologies * (1 + s.rounds * s.rates.len()) + 1) as u64
}

struct Runner<'a> {
    scenario: &'a Scenario,
    env: &'a topology::Env,
    compose: Option<&'a topology::ComposeEnv>,
    agent: &'a agent::AgentHandle,
    interrupted: Arc<AtomicBool>,
    progress: Progress,
    sequence: usize,
}

impl Runner<'_> {
    fn check_interrupt(&self) -> anyhow::Result<()> {
        if self.interrupted.load(Ordering::Relaxed) {
            return Err(Interrupted.into());
        }
        Ok(())
    }

    fn measure(
        &mut self,
        topologies: &[TopologySpec],
        results: &mut Results,
    ) -> anyhow::Result<()> {
        let s = self.scenario;
        // 1. Capacity of each topology, closed loop.
        for t in topologies {
            self.check_interrupt()?;
            self.progress.trial(&format!("capacity of {}", t.name));
            let mut running = self.up(t)?;
            let spec = LoadSpec {
                mode: Mode::Closed,
                connections: s.capacity.connections,
                warmup: s.capacity.warmup,
                duration: s.capacity.measure,
                ..self.load_spec(running.entry)
            };
            let (report, _) = self.load(&spec, &mut running, &[])?;
            running.check_alive("during the capacity probe")?;
            if results.capacity.is_empty() {
                results.loadgen_check =
                    self.check_against_wrk(&spec, &mut running, report.achieved_rps)?;
            }
            running.down();
            if report.completed == 0 {
                bail!(
                    "{}: no request completed during the capacity probe (errors: {:?})",
                    t.name,
                    report.errors
                );
            }
            self.progress.done(&format!(
                "capacity  {:<10} {:>9.0} req/s  (closed loop, {} connections)",
                t.name, report.achieved_rps, s.capacity.connections
            ));
            results.capacity.push(Capacity {
                topology: t.name.clone(),
                achieved_rps: report.achieved_rps,
                latency_us: latency(&report.latency_us),
            });
        }
        let slowest = results
            .capacity
            .iter()
            .map(|c| c.achieved_rps)
            .fold(f64::INFINITY, f64::min);
        results.rates_rps = s
            .rates
            .iter()
            .map(|r| match *r {
                Rate::Absolute(v) => v,
                Rate::Percent(p) => (slowest * p / 100.0).round().max(1.0),
            })
            .collect();
        for r in &s.rates {
            if let Rate::Absolute(v) = r {
                if *v > slowest * 0.9 {
                    results.warnings.push(format!(
                        "rate {v:.0} req/s is above 90% of the slowest topology's capacity ({slowest:.0} req/s): latency there is queueing, not service time"
                    ));
                }
            }
        }

        // 2. Interleaved rounds at the fixed rates.
        for round in 0..s.rounds {
            let order: Vec<&TopologySpec> = if round % 2 == 0 {
                topologies.iter().collect()
            } else {
                topologies.iter().rev().collect()
            };
            for t in order {
                self.check_interrupt()?;
                let mut running = self.up(t)?;
                let rates = results.rates_rps.clone();
                for rate in rates {
                    self.check_interrupt()?;
                    self.progress.trial(&format!(
                        "round {}/{}  {}  at {:.0} req/s",
                        round + 1,
                        s.rounds,
                        t.name,
                        rate
                    ));
                    let trial = self.trial(t, &mut running, rate, round)?;
                    self.progress.done(&format!(
                        "round {}/{}  {:<10} {:>8.0} req/s  p50 {:>8}  p99 {:>8}  server CPU {:>6.1} µs/req{}",
                        round + 1,
                        s.rounds,
                        t.name,
                        trial.achieved_rps,
                        fmt_us(trial.latency_us.p50),
                        fmt_us(trial.latency_us.p99),
                        trial.server_cpu_us_per_request(),
                        if trial.rate_held { "" } else { "  RATE NOT HELD" }
                    ));
                    results.results.push(trial);
                }
                running.down();
            }
        }
        Ok(())
    }

    /// wrk (`-t1`, same connections, same window) against the baseline, between two of
    /// our closed-loop runs (A B A), when wrk is installed.
    fn check_against_wrk(
        &mut self,
        spec: &LoadSpec,
        running: &mut Running,
        ours_first: f64,
    ) -> anyhow::Result<Option<model::LoadgenCheck>> {
        let Some(wrk) = topology::find_program("wrk") else {
            self.progress.println("note: wrk is not installed: the load generator is not compared with it (apt-get install wrk)");
            return Ok(None);
        };
        self.check_interrupt()?;
        self.progress.trial("wrk, for comparison");
        let secs = spec.duration.as_secs_f64().ceil().max(1.0) as u64;
        let url = format!("http://{}{}", running.entry, spec.path_and_query);
        let out = std::process::Command::new(wrk)
            .args([
                "-t1",
                &format!("-c{}", spec.connections),
                &format!("-d{secs}s"),
                &url,
            ])
            .output()
            .context("cannot run wrk")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(wrk_rps) = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse::<f64>().ok())
        else {
            self.progress.warn(&format!(
                "note: could not read wrk's output: {}",
                text.trim()
            ));
            return Ok(None);
        };
        let (second, _) = self.load(spec, running, &[])?;
        let ours = (ours_first + second.achieved_rps) / 2.0;
        let ratio = ours / wrk_rps.max(1.0);
        self.progress.done(&format!(
            "loadgen   ours {ours:>9.0} req/s vs wrk -t1 -c{} {wrk_rps:>9.0} req/s: {ratio:.2}× (closed loop on {})",
            spec.connections, running.name
        ));
        Ok(Some(model::LoadgenCheck {
            topology: running.name.clone(),
            connections: spec.connections,
            duration_s: secs as f64,
            ours_rps: ours,
            wrk_rps,
            ratio,
        }))
    }

    fn up(&self, t: &TopologySpec) -> anyhow::Result<Running> {
        let running = match self.compose {
            Some(c) => topology::up_compose(t, c),
            None => topology::up(t, self.env),
        };
        running.with_context(|| format!("cannot bring up topology {}", t.name))
    }

    fn load_spec(&self, entry: SocketAddr) -> LoadSpec {
        let s = self.scenario;
        LoadSpec {
            addr: entry,
            host_header: entry.to_string(),
            method: s.request.method.clone(),
            path_and_query: s.request.path.clone(),
            body: vec![b'x'; s.request.body_bytes].into(),
            headers: Vec::new(),
            connections: s.load.connections,
            mode: Mode::Closed,
            warmup: s.load.warmup,
            duration: s.load.measure,
            threads: s.load.threads,
            request_timeout: Duration::from_secs(5),
        }
    }

    /// Runs the load generator and, over its measured window exactly, reads the CPU
    /// of `targets` and the embedded agent's aggregates.
    fn load(
        &mut self,
        spec: &LoadSpec,
        running: &mut Running,
        targets: &[Target],
    ) -> anyhow::Result<(LoadReport, Window)> {
        let live = Live::new();
        let mut window = Window::default();
        let report = std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("loadgen-main".into())
                .spawn_scoped(scope, || loadgen::run(spec, &live))
                .context("cannot start the load generator thread")?;
            let mut started = false;
            loop {
                let snap = live.snapshot();
                match snap.phase {
                    Phase::Measuring if !started => {
                        started = true;
                        window.start = Some(Instant::now());
                        window.cpu_start = targets.iter().map(sample::cpu_ns).collect();
                        let _ = self.agent.take_snapshot();
                    }
                    Phase::Draining | Phase::Done if started && window.end.is_none() => {
                        window.end = Some(Instant::now());
                        window.cpu_end = targets.iter().map(sample::cpu_ns).collect();
                        window.agent = Some(self.agent.take_snapshot());
                    }
                    _ => {}
                }
                self.progress.live(&snap);
                if self.interrupted.load(Ordering::Relaxed) {
                    live.cancel();
                }
                if handle.is_finished() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if started && window.end.is_none() {
                // The run ended while the window's start was being read (slow container
                // stats): close the window now.
                window.end = Some(Instant::now());
                window.cpu_end = targets.iter().map(sample::cpu_ns).collect();
                window.agent = Some(self.agent.take_snapshot());
            }
            match handle.join() {
                Ok(r) => r.map_err(anyhow::Error::from),
                Err(_) => Err(anyhow::anyhow!("the load generator panicked")),
            }
        });
        self.check_interrupt()?;
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                running.check_alive("while it was being loaded")?;
                return Err(e.context(format!("loading {} failed", running.name)));
            }
        };
        Ok((report, window))
    }

    fn trial(
        &mut self,
        t: &TopologySpec,
        running: &mut Running,
        rate: f64,
        round: usize,
    ) -> anyhow::Result<Trial> {
        let spec = LoadSpec {
            mode: Mode::Open { rate },
            ..self.load_spec(running.entry)
        };
        let mut targets = running.targets();
        let servers = targets.len();
        targets.push(Target {
            role: roles::LOADGEN.into(),
            program: "bench".into(),
            pid: std::process::id(),
            thread_prefix: Some("loadgen-".into()),
            container: None,
        });
        let sampler = Sampler::start(targets.clone());
        let (report, window) = self.load(&spec, running, &targets[..servers])?;
        let series = sampler.finish();
        running.check_alive("while it was being loaded")?;

        let (w_start, w_end) = match (window.start, window.end) {
            (Some(a), Some(b)) => (a, b),
            _ => bail!(
                "{}: the load generator's measured window was not observed",
                t.name
            ),
        };
        let completed = report.completed.max(1) as f64;
        let mut processes = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            let pts: Vec<&Point> = series[i]
                .iter()
                .filter(|p| p.at >= w_start && p.at <= w_end)
                .collect();
            let (cpu_s, count) = if target.role == roles::LOADGEN {
                (report.cpu.user_s + report.cpu.system_s, 1)
            } else {
                let d = window.cpu_end[i].saturating_sub(window.cpu_start[i]);
                (
                    d as f64 / 1e9,
                    pts.last().map_or(1, |p| p.reading.processes),
                )
            };
            let rss_peak = pts.iter().map(|p| p.reading.rss_bytes).max().unwrap_or(0);
            let rss_mean = if pts.is_empty() {
                0
            } else {
                pts.iter().map(|p| p.reading.rss_bytes).sum::<u64>() / pts.len() as u64
            };
            let samples = pts
                .windows(2)
                .map(|w| {
                    let dt = w[1].at.duration_since(w[0].at).as_secs_f64().max(1e-6);
                    let dns = w[1].reading.cpu_ns.saturating_sub(w[0].reading.cpu_ns);
                    [
                        w[1].at.saturating_duration_since(w_start).as_secs_f64(),
                        100.0 * dns as f64 / 1e9 / dt,
                        w[1].reading.rss_bytes as f64,
                    ]
                })
                .collect();
            processes.push(ProcessUsage {
                role: target.role.clone(),
                program: target.program.clone(),
                process_count: count,
                cpu_s,
                cpu_us_per_request: cpu_s * 1e6 / completed,
                rss_peak_bytes: rss_peak,
                rss_mean_bytes: rss_mean,
                samples,
            });
        }

        let server = window.agent.as_ref().map(server_side).unwrap_or_default();
        let mut errors_by_kind = report.errors.clone();
        let mut non_2xx = 0;
        for (status, n) in &report.status_counts {
            if !(200..300).contains(status) {
                non_2xx += n;
                *errors_by_kind
                    .entry(format!("status_{}xx", status / 100))
                    .or_default() += n;
            }
        }
        let trial = Trial {
            topology: t.name.clone(),
            rate_rps: rate,
            round,
            sequence: self.sequence,
            achieved_rps: report.achieved_rps,
            rate_held: report.rate_held,
            requests: report.completed,
            latency_us: latency(&report.latency_us),
            uncorrected_latency_us: latency(&loadgen::LatencyUs::from_histogram(
                &report.latency_uncorrected,
            )),
            spectrum: report
                .percentile_spectrum()
                .into_iter()
                .map(|(p, us)| [p, us])
                .collect(),
            processes,
            errors: report.error_count() + non_2xx,
            errors_by_kind,
            status_counts: report
                .status_counts
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            late_sends: report.late_sends,
            dropped_sends: report.dropped_sends,
            server,
            throughput: report
                .timeline
                .iter()
                .map(|p| {
                    [
                        p.t_s,
                        p.completed as f64 / loadgen::report::TIMELINE_BUCKET.as_secs_f64(),
                    ]
                })
                .collect(),
        };
        self.sequence += 1;
        if let Some(note) = &report.rate_note {
            if !report.rate_held {
                self.progress.warn(&format!(
                    "WARNING: {} round {} at {rate:.0} req/s: the load generator did not hold the rate: {note}",
                    t.name,
                    round + 1
                ));
            }
        }
        Ok(trial)
    }
}

/// CPU readings and the agent's aggregates at the edges of a measured window.
#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    end: Option<Instant>,
    cpu_start: Vec<u64>,
    cpu_end: Vec<u64>,
    agent: Option<agent::Snapshot>,
}

fn latency(l: &loadgen::LatencyUs) -> Latency {
    Latency {
        p50: l.p50,
        p90: l.p90,
        p99: l.p99,
        p999: l.p999,
        max: l.max,
    }
}

/// The servers' own view of the window, from their DogStatsD metrics (ms → µs).
fn server_side(snap: &agent::Snapshot) -> ServerSide {
    let quantiles = |name: &str| {
        snap.metrics
            .iter()
            .filter(|m| m.name == name && m.count.is_some())
            .max_by(|a, b| a.count.unwrap_or(0.0).total_cmp(&b.count.unwrap_or(0.0)))
            .map(|m| model::Quantiles {
                count: m.count.unwrap_or(0.0),
                p50: m.p50.unwrap_or(0.0) * 1000.0,
                p90: m.p90.unwrap_or(0.0) * 1000.0,
                p99: m.p99.unwrap_or(0.0) * 1000.0,
                max: m.max.unwrap_or(0.0) * 1000.0,
            })
    };
    let total = |name: &str| {
        let t = snap.total(name, &[]);
        (t > 0.0).then_some(t)
    };
    ServerSide {
        app_duration_us: quantiles(telemetry::names::APP_REQUEST_DURATION),
        proxy_duration_us: quantiles(telemetry::names::PROXY_REQUEST_DURATION),
        proxy_upstream_us: quantiles(telemetry::names::PROXY_UPSTREAM_DURATION),
        app_requests: total(telemetry::names::APP_REQUESTS),
        proxy_requests: total(telemetry::names::PROXY_REQUESTS),
        malformed: snap.malformed,
    }
}

fn add_trial_warnings(results: &mut Results) {
    let not_held: Vec<String> = results
        .results
        .iter()
        .filter(|t| !t.rate_held)
        .map(|t| format!("{} @ {:.0} (round {})", t.topology, t.rate_rps, t.round + 1))
        .collect();
    if !not_held.is_empty() {
        results.warnings.push(format!(
            "the load generator did not hold the target rate within 1% in {} trial(s): {}",
            not_held.len(),
            not_held.join(", ")
        ));
    }
    if let Some(w) = saturation_warning(results) {
        results.warnings.push(w);
    }
    let errors: u64 = results.results.iter().map(|t| t.errors).sum();
    if let Some(c) = &results.loadgen_check {
        if c.ratio < 1.0 {
            results.warnings.push(format!(
                "our load generator reached {:.2}× wrk's closed-loop rate on {}: it may be a bottleneck wrk would not be",
                c.ratio, c.topology
            ));
        }
    }
    if errors > 0 {
        results.warnings.push(format!(
            "{errors} request(s) failed across all trials (see errors_by_kind)"
        ));
    }
    if !results.complete {
        results
            .warnings
            .push("the run did not complete: these are partial results".into());
    }
}

/// Share of a trial's window that `roles` kept busy, in units of `cpus` CPUs.
fn busy_share(t: &report::model::Trial, roles: Option<&str>, cpus: usize) -> Option<f64> {
    if t.achieved_rps <= 0.0 || cpus == 0 {
        return None;
    }
    let window_s = t.requests as f64 / t.achieved_rps;
    let cpu_s: f64 = t
        .processes
        .iter()
        .filter(|p| roles.is_none_or(|r| p.role == r))
        .map(|p| p.cpu_s)
        .sum();
    Some(cpu_s / (window_s * cpus as f64))
}

/// Rates at which the machine (or the load generator's threads) was nearly fully busy: there,
/// latency includes waiting for a CPU, for every topology alike, and the load generator may
/// read responses late. CPU per request is still measured; latency is better compared lower.
fn saturation_warning(results: &Results) -> Option<String> {
    const BUSY: f64 = 0.85;
    let cpus = results.environment.cpus;
    let loadgen_threads = results.scenario.loadgen_threads.max(1);
    let mut rates: Vec<f64> = Vec::new();
    for t in &results.results {
        let machine = busy_share(t, None, cpus).unwrap_or(0.0);
        let loadgen = busy_share(t, Some("loadgen"), loadgen_threads).unwrap_or(0.0);
        if (machine >= BUSY || loadgen >= BUSY) && !rates.contains(&t.rate_rps) {
            rates.push(t.rate_rps);
        }
    }
    if rates.is_empty() {
        return None;
    }
    let list: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    Some(format!(
        "at {} req/s the machine's {cpus} CPU(s) or the load generator's {loadgen_threads} thread(s) were ≥ {:.0} % busy in some trials: latency there includes waiting for a CPU (for every topology, and for the load generator reading responses), so compare latency at the lower rates; CPU per request is unaffected",
        list.join(" and "),
        BUSY * 100.0
    ))
}

fn echo(s: &Scenario, opts: &RunOptions, topologies: &[TopologySpec]) -> ScenarioEcho {
    ScenarioEcho {
        name: s.name.clone(),
        file: opts.scenario_file.as_ref().map(|p| p.display().to_string()),
        quick: opts.quick,
        topologies: topologies.iter().map(|t| t.name.clone()).collect(),
        method: s.request.method.clone(),
        path: s.request.path.clone(),
        body_bytes: s.request.body_bytes,
        connections: s.load.connections,
        loadgen_threads: s.load.threads,
        app_threads: s.app.threads,
        proxy_threads: s.proxy.threads,
        warmup_s: s.load.warmup.as_secs_f64(),
        measure_s: s.load.measure.as_secs_f64(),
        rounds: s.rounds,
        seed: s.seed,
    }
}

/// Machine facts for the report.
pub fn environment(profile: &str, optimized: bool, nginx_version: Option<String>) -> Environment {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let memory_bytes = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    Environment {
        build_profile: profile.into(),
        optimized,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        memory_bytes,
        kernel: format!("Linux {}", read("/proc/sys/kernel/osrelease").trim()),
        hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
        started_at: now_rfc3339(),
        duration_s: 0.0,
        nginx_version,
        mode: "process".into(),
    }
}

/// Now, UTC, RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `bench/results/<timestamp>` in the source tree when it is there, else
/// `./bench-results/<timestamp>`.
pub fn default_out_dir() -> PathBuf {
    let stamp = now_rfc3339().replace(':', "-");
    let stamp = stamp
        .split('.')
        .next()
        .unwrap_or(&stamp)
        .trim_end_matches('Z')
        .to_owned()
        + "Z";
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    if Path::new(env!("CARGO_MANIFEST_DIR")).is_dir() {
        tree.join(stamp)
    } else {
        PathBuf::from("bench-results").join(stamp)
    }
}

fn fmt_us(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// Progress bars: the run (trials, ETA) and the current trial (live rate).
struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    current: ProgressBar,
    visible: bool,
}

impl Progress {
    fn new(enabled: bool, len: u64) -> Progress {
        let target = if enabled {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(len));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{elapsed_precise}] {bar:32.cyan/blue} {pos}/{len} trials  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("█▉▊▋▌▍▎▏ "),
        );
        overall.set_prefix("bench");
        let current = multi.add(ProgressBar::new(1000));
        current.set_style(
            ProgressStyle::with_template("  {spinner} {msg:<40} {bar:20} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Progress {
            multi,
            overall,
            current,
            visible: enabled,
        }
    }

    fn trial(&self, what: &str) {
        self.current.set_message(what.to_owned());
        self.current.set_position(0);
    }

    fn live(&self, snap: &loadgen::LiveSnapshot) {
        if !snap.window.is_zero() {
            let frac = snap.elapsed.as_secs_f64() / snap.window.as_secs_f64();
            self.current.set_position((frac * 1000.0) as u64);
        }
        self.current.tick();
    }

    fn done(&self, line: &str) {
        self.overall.inc(1);
        self.println(line);
    }

    fn warn(&self, line: &str) {
        self.println(line);
    }

    pub(crate) fn println(&self, line: &str) {
        if self.visible {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        self.current.finish_and_clear();
        self.overall.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The archived reference run of the earlier proxy (6 149–18 448 req/s, machine at most
    /// about half busy).
    fn reference() -> Results {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/results/reference/2026-11-25-2vcpu-vm-pingora-path/results.json"
        );
        report::load(std::path::Path::new(path)).expect("the archived reference run loads")
    }

    #[test]
    fn no_saturation_warning_when_the_machine_had_room() {
        assert_eq!(saturation_warning(&reference()), None);
    }

    #[test]
    fn saturation_warning_names_the_rate_where_the_load_generator_was_busy() {
        let mut r = reference();
        let t = r.results.iter_mut().find(|t| t.round == 1).unwrap();
        let rate = t.rate_rps;
        let window = t.requests as f64 / t.achieved_rps;
        for p in t.processes.iter_mut().filter(|p| p.role == "loadgen") {
            p.cpu_s = window * 0.95;
        }
        let w = saturation_warning(&r).expect("a warning");
        assert!(w.contains(&format!("at {rate:.0} req/s")), "{w}");
        assert!(w.contains("compare latency at the lower rates"), "{w}");
    }
}
