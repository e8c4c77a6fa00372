//! One bench run: capacity, the clean-rate ceiling, then interleaved fixed-rate trials,
//! then the report.
//!
//! Over 600 lines: this file is the run's phases in their order and the hand-offs between
//! them; each phase's work is a module of its own (calibrate, plan, load, window, trial,
//! usage), so what is left here is the sequence, read top to bottom.
//!
//! ```text
//! scenario ─> capacity (closed loop, each topology; wrk beside ours on the baseline)
//!          ─> calibration (open-loop ramp on each proxied topology) ─> rates (plan)
//!   for round in rounds:            A B C A', A' C B A, … (A' = the baseline again: A/A)
//!     for slot:                     up (children on 127.0.0.1, told the embedded agent)
//!       for rate:                   warm-up, then the measured window read at the load
//!                                   generator's own edges (window): CPU, /proc/stat,
//!                                   the servers' flushed metrics; 10 Hz samples (sample)
//!       down
//! results ─> summary, noise floor, rate checks (report crate) ─> results.json, summary.md,
//!            report.html
//! ```
//!
//! Ctrl-C (SIGINT) or SIGTERM stops at the next check (at most one trial's length),
//! stops every child, writes what was measured with `complete: false`, and the bench
//! exits non-zero. A second Ctrl-C exits at once; children still die with the bench
//! (parent-death signal, see [`crate::child`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use loadgen::{LoadReport, LoadSpec, Mode};
use report::model::{self, CalibrationStep, Capacity, Results, ScenarioEcho, Thresholds, Trial};

use crate::datadog_report;
use crate::environment;
use crate::load::{self, Observed};
use crate::plan;
use crate::progress::{fmt_us, Progress};
use crate::scenario::{Rate, RatesOf, RequestSpec, Scenario, TopologyKind, TopologySpec};
use crate::topology::{self, Running};
use crate::trial;
use crate::usage;
use crate::wrk::{self, WrkRun};

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
    /// Repeat these absolute rates (from another run's results.json) instead of deriving
    /// rates: (the file, each shape's name and rates; `""` for a single-shape run).
    pub rates_from: Option<(PathBuf, RatesByShape)>,
    /// Each trial's figures and boundaries to the user's Datadog agent (off unless set).
    pub datadog: datadog_report::Reporter,
}

/// Each shape's name and its rates, req/s (`""` names a single-shape run's rates).
pub type RatesByShape = Vec<(String, Vec<f64>)>;

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

/// Runs the scenario. Results are written even when the run fails part-way or is
/// interrupted; the error (or [`Interrupted`]) is returned after writing them.
pub fn run(opts: &RunOptions, interrupted: Arc<AtomicBool>) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let scenario = &opts.scenario;
    let mut warnings = Vec::new();

    let compose_env = if opts.compose {
        Some(topology::compose_env()?)
    } else {
        None
    };

    // Which topologies can run here.
    let mut topologies: Vec<TopologySpec> = Vec::new();
    for t in &scenario.topologies {
        let compose_runs = matches!(t.kind, TopologyKind::Direct | TopologyKind::Proxied)
            && scenario.services().of(t.service.as_ref()).is_none()
            && t.upstream == crate::service::Listen::Tcp;
        if opts.compose && !compose_runs {
            let w = format!(
                "skipped topology {}: compose mode runs direct and proxied with the TinyFish \
                 app's containers over TCP only",
                t.name
            );
            eprintln!("note: {w}");
            warnings.push(w);
            continue;
        }
        match topology::availability(t, &scenario.services()) {
            Ok(()) => topologies.push(t.clone()),
            Err(e) if t.optional => {
                let w = format!("skipped topology {}: {e}", t.name);
                eprintln!("note: {w}");
                warnings.push(w);
            }
            Err(e) => return Err(e).context("a topology of the scenario cannot run here"),
        }
    }
    for w in crate::service::notes(scenario, &topologies) {
        eprintln!("note: {w}");
        warnings.push(w);
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
        services: scenario.services(),
        cert: if scenario.topologies.iter().any(|t| t.protocol.tls()) {
            Some(crate::certs::RunCert::make(&scratch)?)
        } else {
            None
        },
    };

    let thresholds = Thresholds {
        machine_busy: scenario.thresholds.machine_busy,
        loadgen_thread_busy: scenario.thresholds.loadgen_thread_busy,
    };
    let mut results = Results {
        schema_version: model::SCHEMA_VERSION,
        tool: model::Tool {
            name: "tinyfish-bench".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        environment: environment::environment(
            nginx_version,
            environment::versions(scenario, &topologies),
        ),
        scenario: echo(scenario, opts, &topologies),
        capacity: Vec::new(),
        rates_rps: Vec::new(),
        results: Vec::new(),
        summary: Vec::new(),
        headline: String::new(),
        warnings,
        complete: false,
        loadgen_check: None,
        noise_floor: Vec::new(),
        calibration: Vec::new(),
        thresholds,
        rate_checks: Vec::new(),
        rates_from: opts
            .rates_from
            .as_ref()
            .map(|(p, _)| p.display().to_string()),
        versus: Vec::new(),
        shapes: Vec::new(),
    };
    if !results.environment.optimized {
        results.warnings.push(
            "this bench was built without optimisation: CPU figures are not representative".into(),
        );
    }
    if scenario.rounds < report::exact::min_paired_rounds() {
        results.warnings.push(format!(
            "{} round(s) give no 95 % interval (the exact signed-rank test needs {}): differences are shown without one and none is called significant",
            scenario.rounds,
            report::exact::min_paired_rounds()
        ));
    }
    if opts.compose {
        results.environment.mode = "compose".into();
        results.warnings.push(
            "compose mode: CPU and anonymous memory are per container (cgroup counters: cpuacct/cpu.stat, memory.stat rss/anon, as docker.cpu.usage and docker.mem.rss), PSS from the containers' processes; the servers' own durations go to the local agent container (http://127.0.0.1:8181/), not into this report".into(),
        );
    }
    let calibrate = opts.rates_from.is_none()
        && scenario.rates_of == RatesOf::Ceiling
        && scenario.rates.iter().any(|r| matches!(r, Rate::Percent(_)));
    let shapes = scenario.requests();
    let multi = !scenario.shapes.is_empty();
    let mut parts: Vec<Results> = shapes
        .iter()
        .map(|shape| {
            let mut part = results.clone();
            part.warnings.clear();
            part.scenario.method = shape.method.clone();
            part.scenario.path = shape.path.clone();
            part.scenario.body_bytes = shape.body_bytes;
            part
        })
        .collect();
    let mut runner = Runner {
        scenario,
        request: shapes[0].clone(),
        wrk_checked: None,
        env: &env,
        compose: compose_env.as_ref(),
        agent: &agent,
        interrupted: interrupted.clone(),
        progress: Progress::new(
            opts.progress,
            plan::trial_count(
                topologies.len(),
                scenario.rounds,
                scenario.rates.len(),
                scenario.baseline_twice,
                calibrate,
            ) * shapes.len() as u64,
        ),
        sequence: 0,
    };
    let outcome = runner.measure(&topologies, opts, calibrate, &shapes, &mut parts);
    runner.progress.finish();
    let loadgen_check = runner.wrk_checked.take().flatten();

    results.environment.duration_s = started.elapsed().as_secs_f64();
    results.complete = outcome.is_ok();
    for part in &mut parts {
        part.environment.duration_s = results.environment.duration_s;
        part.complete = results.complete;
        part.loadgen_check = loadgen_check.clone();
        report::finish(part);
    }
    if multi {
        results.loadgen_check = loadgen_check;
        results.shapes = shapes
            .iter()
            .zip(parts)
            .map(|(shape, part)| model::ShapeResults {
                name: shape.name.clone(),
                method: shape.method.clone(),
                path: shape.path.clone(),
                body_bytes: shape.body_bytes,
                chunked: shape.chunked,
                results: part,
            })
            .collect();
        report::finish(&mut results);
    } else {
        let setup_warnings = std::mem::take(&mut results.warnings);
        results = parts.pop().context("no shape was measured")?;
        results.warnings.splice(0..0, setup_warnings);
    }

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

struct Runner<'a> {
    scenario: &'a Scenario,
    /// The request shape being measured.
    request: RequestSpec,
    /// The wrk cross-check, once done (on the first shape's baseline).
    wrk_checked: Option<Option<model::LoadgenCheck>>,
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

    /// Measures every shape: `parts[i]` collects shape `shapes[i]`'s capacity, ceiling,
    /// rates and trials. The rounds interleave the shapes too: a topology comes up once per
    /// slot and runs every shape at every rate.
    fn measure(
        &mut self,
        topologies: &[TopologySpec],
        opts: &RunOptions,
        calibrate: bool,
        shapes: &[RequestSpec],
        parts: &mut [Results],
    ) -> anyhow::Result<()> {
        let s = self.scenario;
        for (shape, results) in shapes.iter().zip(parts.iter_mut()) {
            self.request = shape.clone();
            self.rates_for(topologies, opts, calibrate, results)?;
        }
        // Interleaved rounds at the fixed rates.
        for round in 0..s.rounds {
            for slot in plan::round_order(topologies.len(), round, s.baseline_twice) {
                let t = &topologies[slot.topology];
                self.check_interrupt()?;
                let mut running = self.up(t)?;
                for (shape, results) in shapes.iter().zip(parts.iter_mut()) {
                    self.request = shape.clone();
                    for rate in results.rates_rps.clone() {
                        self.check_interrupt()?;
                        let mut name = if slot.replicate == 1 {
                            format!("{} (A/A)", t.name)
                        } else {
                            t.name.clone()
                        };
                        if !shape.name.is_empty() {
                            name = format!("{name} {}", shape.name);
                        }
                        self.progress.trial(&format!(
                            "round {}/{}  {name}  at {rate:.0} req/s",
                            round + 1,
                            s.rounds,
                        ));
                        let at = datadog_report::At {
                            topology: &t.name,
                            shape: &shape.name,
                            rate,
                            round,
                            rounds: s.rounds,
                            replicate: slot.replicate,
                            sequence: self.sequence,
                        };
                        opts.datadog.started(&at);
                        let trial = self.trial(t, &mut running, rate, round, slot.replicate);
                        opts.datadog.finished(&at, trial.as_ref());
                        let trial = trial?;
                        self.progress.done(&format!(
                            "round {}/{}  {:<14} {:>8.0} req/s  p50 {:>8}  p99 {:>8}  server CPU {:>6.1} µs/req  machine {:>3.0} %{}",
                            round + 1,
                            s.rounds,
                            name,
                            trial.achieved_rps,
                            fmt_us(trial.latency_us.p50),
                            fmt_us(trial.latency_us.p99),
                            trial.server_cpu_us_per_request(),
                            trial.machine_busy * 100.0,
                            if trial.rate_held { "" } else { "  RATE NOT HELD" }
                        ));
                        results.results.push(trial);
                    }
                }
                running.down();
            }
        }
        Ok(())
    }

    /// The current shape's capacity per topology (closed loop), then its rates: repeated
    /// from another run, from the clean-rate ceiling, or from capacity.
    fn rates_for(
        &mut self,
        topologies: &[TopologySpec],
        opts: &RunOptions,
        calibrate: bool,
        results: &mut Results,
    ) -> anyhow::Result<()> {
        let s = self.scenario;
        let label = |t: &TopologySpec, shape: &str| {
            if shape.is_empty() {
                t.name.clone()
            } else {
                format!("{} {shape}", t.name)
            }
        };
        for t in topologies {
            self.check_interrupt()?;
            self.progress
                .trial(&format!("capacity of {}", label(t, &self.request.name)));
            let mut running = self.up(t)?;
            let spec = LoadSpec {
                mode: Mode::Closed,
                connections: t.connections.unwrap_or(s.capacity.connections),
                warmup: s.capacity.warmup,
                duration: s.capacity.measure,
                ..self.load_spec(t, &running)
            };
            let report = self.closed_loop(&spec, &mut running)?;
            if results.capacity.is_empty() && self.wrk_checked.is_none() && spec.tls.is_none() {
                self.wrk_checked =
                    Some(self.check_against_wrk(&spec, &mut running, report.achieved_rps)?);
            }
            running.down();
            if report.completed == 0 {
                bail!(
                    "{}: no request completed during the capacity probe (errors: {:?})",
                    label(t, &self.request.name),
                    report.errors
                );
            }
            self.progress.done(&format!(
                "capacity  {:<10} {:>9.0} req/s  (closed loop, {} connections)",
                label(t, &self.request.name),
                report.achieved_rps,
                s.capacity.connections
            ));
            results.capacity.push(Capacity {
                topology: t.name.clone(),
                achieved_rps: report.achieved_rps,
                latency_us: trial::latency(&report.latency_us),
            });
        }
        let slowest = results
            .capacity
            .iter()
            .min_by(|a, b| a.achieved_rps.total_cmp(&b.achieved_rps))
            .cloned()
            .context("no topology to measure")?;
        results.rates_rps = if let Some((file, by_shape)) = &opts.rates_from {
            by_shape
                .iter()
                .find(|(name, _)| *name == self.request.name)
                .map(|(_, r)| r.clone())
                .with_context(|| {
                    format!(
                        "--rates-from {}: it has no rates for shape {:?}",
                        file.display(),
                        self.request.name
                    )
                })?
        } else if calibrate {
            // Every topology but the baseline (the cheapest) is ramped: which one is the
            // costliest at a fixed rate is what the run measures, not what capacity says.
            let ramped: Vec<&TopologySpec> = if topologies.len() > 1 {
                topologies[1..].iter().collect()
            } else {
                topologies.iter().collect()
            };
            for t in ramped {
                let capacity = results
                    .capacity
                    .iter()
                    .find(|c| c.topology == t.name)
                    .map_or(slowest.achieved_rps, |c| c.achieved_rps);
                let c = self.calibrate(t, capacity, &results.thresholds)?;
                results.calibration.push(c);
            }
            let ramped_ceiling = results
                .calibration
                .iter()
                .map(|c| c.ceiling_rps)
                .fold(f64::INFINITY, f64::min);
            let (ceiling, capped) =
                crate::calibrate::cap(ramped_ceiling, &slowest.topology, slowest.achieved_rps);
            if let Some(w) = capped {
                self.progress.done(&format!("ceiling   {w}"));
                results.warnings.push(w);
                // In the calibration record too, so "the lowest of" names what bound it.
                match results
                    .calibration
                    .iter_mut()
                    .find(|c| c.topology == slowest.topology)
                {
                    Some(c) => {
                        c.ceiling_rps = ceiling;
                        c.note = format!("{}; capped at its closed-loop capacity", c.note);
                    }
                    None => results.calibration.push(model::Calibration {
                        topology: slowest.topology.clone(),
                        steps: Vec::new(),
                        ceiling_rps: ceiling,
                        note: "not ramped: its closed-loop capacity, lower than every ramp's \
                               ceiling"
                            .into(),
                    }),
                }
            }
            plan::resolve_rates(&s.rates, ceiling)
        } else {
            plan::resolve_rates(&s.rates, slowest.achieved_rps)
        };
        for r in &results.rates_rps {
            if *r > slowest.achieved_rps * 0.9 {
                results.warnings.push(format!(
                    "rate {r:.0} req/s is above 90% of the slowest topology's capacity ({:.0} req/s): latency there is queueing, not service time",
                    slowest.achieved_rps
                ));
            }
        }
        Ok(())
    }

    /// The clean-rate ceiling on `t` (see [`crate::calibrate`]).
    fn calibrate(
        &mut self,
        t: &TopologySpec,
        capacity: f64,
        th: &Thresholds,
    ) -> anyhow::Result<model::Calibration> {
        self.check_interrupt()?;
        self.progress
            .trial(&format!("clean-rate ceiling on {}", t.name));
        let mut running = self.up(t)?;
        let c = crate::calibrate::ramp(&t.name, capacity, th, |rate| {
            self.check_interrupt()?;
            let spec = LoadSpec {
                mode: Mode::Open { rate },
                warmup: self.scenario.calibration.warmup,
                duration: self.scenario.calibration.measure,
                ..self.load_spec(t, &running)
            };
            let o = self.open_loop(&spec, &mut running)?;
            let step = CalibrationStep {
                rate_rps: rate,
                achieved_rps: o.report.achieved_rps,
                machine_busy: o.window.machine_busy(),
                loadgen_thread_busy: o.report.cpu.busiest_thread,
                p50_us: o.report.latency_us.p50,
            };
            self.progress.println(&format!(
                "ceiling   {:<10} {:>9.0} req/s  machine {:>3.0} %  load generator thread {:>3.0} %  p50 {}",
                t.name,
                rate,
                step.machine_busy * 100.0,
                step.loadgen_thread_busy * 100.0,
                fmt_us(step.p50_us)
            ));
            Ok::<_, anyhow::Error>(step)
        })?;
        running.down();
        self.progress.done(&format!(
            "ceiling   {:<10} {:>9.0} req/s  ({})",
            t.name, c.ceiling_rps, c.note
        ));
        Ok(c)
    }

    /// wrk (`-t1`, same connections, same window) against the baseline, alternating with
    /// ours (ours wrk ours wrk ours, the first of ours being the capacity probe), when wrk
    /// is installed: the median of each, so one noisy second decides nothing.
    fn check_against_wrk(
        &mut self,
        spec: &LoadSpec,
        running: &mut Running,
        ours_first: f64,
    ) -> anyhow::Result<Option<model::LoadgenCheck>> {
        let secs = spec.duration.as_secs_f64().ceil().max(1.0);
        let mut ours = vec![ours_first];
        let mut theirs = Vec::new();
        for _ in 0..2 {
            self.check_interrupt()?;
            self.progress.trial("wrk, for comparison");
            match wrk::run(
                running.entry,
                &spec.path_and_query,
                spec.connections,
                spec.duration,
            )? {
                WrkRun::Rate(r) => theirs.push(r),
                WrkRun::Skipped(note) => {
                    self.progress.println(&format!("note: {note}"));
                    return Ok(None);
                }
            }
            ours.push(self.closed_loop(spec, running)?.achieved_rps);
        }
        let ours = report::stats::median(&ours).unwrap_or(0.0);
        let wrk_rps = report::stats::median(&theirs).unwrap_or(0.0);
        let ratio = ours / wrk_rps.max(1.0);
        self.progress.done(&format!(
            "loadgen   ours {ours:>9.0} req/s vs wrk -t1 -c{} {wrk_rps:>9.0} req/s: {ratio:.2}× (closed loop on {}, medians of 3 and 2 runs)",
            spec.connections, running.name
        ));
        Ok(Some(model::LoadgenCheck {
            topology: running.name.clone(),
            connections: spec.connections,
            duration_s: secs,
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

    fn load_spec(&self, t: &TopologySpec, running: &Running) -> LoadSpec {
        let s = self.scenario;
        let r = &self.request;
        let entry = running.entry;
        LoadSpec {
            addr: entry,
            host_header: match running.tls {
                Some(_) => format!("{}:{}", crate::certs::SERVER_NAME, entry.port()),
                None => entry.to_string(),
            },
            method: r.method.clone(),
            path_and_query: r.path.clone(),
            body: vec![b'x'; r.body_bytes].into(),
            chunked: r.chunked,
            headers: Vec::new(),
            connections: t.connections.unwrap_or(s.load.connections),
            mode: Mode::Closed,
            warmup: s.load.warmup,
            duration: s.load.measure,
            threads: s.load.threads,
            request_timeout: Duration::from_secs(5),
            send_window: s.load.send_window,
            tls: running.tls.clone(),
            requests_per_connection: t.requests_per_connection,
            h2_streams: (t.protocol == crate::scenario::Protocol::H2Tls).then_some(t.streams),
        }
    }

    /// A closed-loop load (capacity): only the load generator's own figures.
    fn closed_loop(
        &mut self,
        spec: &LoadSpec,
        running: &mut Running,
    ) -> anyhow::Result<LoadReport> {
        let report = load::closed(spec, &self.progress, &self.interrupted);
        self.check_interrupt()?;
        report.or_else(|e| {
            running.check_alive("while it was being loaded")?;
            Err(e.context(format!("loading {} failed", running.name)))
        })
    }

    /// An open-loop load with every server process sampled and the window read at the
    /// load generator's own edges.
    fn open_loop(&mut self, spec: &LoadSpec, running: &mut Running) -> anyhow::Result<Observed> {
        let flush = if self.compose.is_some() {
            Vec::new()
        } else {
            running.flushable()
        };
        let observed = load::open(
            spec,
            running.targets(),
            &flush,
            self.agent,
            &self.progress,
            &self.interrupted,
        );
        self.check_interrupt()?;
        let observed = match observed {
            Ok(o) => o,
            Err(e) => {
                running.check_alive("while it was being loaded")?;
                return Err(e.context(format!("loading {} failed", running.name)));
            }
        };
        running.check_alive("while it was being loaded")?;
        if let Some(note) = &observed.window.note {
            self.progress
                .warn(&format!("note: {}: {note}", running.name));
        }
        Ok(observed)
    }

    fn trial(
        &mut self,
        t: &TopologySpec,
        running: &mut Running,
        rate: f64,
        round: usize,
        replicate: usize,
    ) -> anyhow::Result<Trial> {
        let spec = LoadSpec {
            mode: Mode::Open { rate },
            ..self.load_spec(t, running)
        };
        let o = self.open_loop(&spec, running)?;
        let processes = usage::processes(&o.targets, &o.series, &o.window, &o.report);
        let trial = trial::build(
            trial::Position {
                topology: &t.name,
                rate,
                round,
                replicate,
                sequence: self.sequence,
            },
            &o.report,
            processes,
            &o.window,
        );
        self.sequence += 1;
        if let Some(note) = &o.report.rate_note {
            if !o.report.rate_held {
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
        baseline_twice: s.baseline_twice,
        send_window_us: s.load.send_window.map(|w| w.as_secs_f64() * 1e6),
        services: crate::service::describe(s, topologies),
    }
}
