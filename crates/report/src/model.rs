//! The results model: what one bench run measured, serialised as `results.json`.
//!
//! Over 600 lines on purpose: every type of `results.json` in one file, each beside the
//! types it nests in, so the model reads as the schema does and the two are compared in
//! one place.
//!
//! The shape is versioned ([`SCHEMA_VERSION`]) and described by the committed JSON
//! Schema `bench/schema/results.schema.json`; a test validates real output against
//! it. Add fields freely (readers ignore unknown ones); renaming or removing one
//! bumps the version.
//!
//! Units are in the field names: `_us` microseconds, `_ms` milliseconds, `_s`
//! seconds, `_bytes` bytes, `_rps` requests per second.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::exact::Shift;

/// Version of the `results.json` shape.
pub const SCHEMA_VERSION: u32 = 2;

/// Roles of the processes a trial samples.
pub mod roles {
    /// The TinyFish app.
    pub const APP: &str = "app";
    /// The proxy in front of it (ours, NGINX or an external one).
    pub const PROXY: &str = "proxy";
    /// The load generator (the bench's own load threads).
    pub const LOADGEN: &str = "loadgen";
}

/// One bench run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Results {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The tool that wrote this file.
    pub tool: Tool,
    /// Where and how it ran.
    pub environment: Environment,
    /// The scenario as run (after `--quick` and other overrides).
    pub scenario: ScenarioEcho,
    /// Closed-loop capacity found per topology before the fixed-rate trials.
    pub capacity: Vec<Capacity>,
    /// The fixed rates every topology was loaded at.
    pub rates_rps: Vec<f64>,
    /// One entry per trial (topology × rate × round), in the order run.
    pub results: Vec<Trial>,
    /// Each topology against the baseline, per rate: medians over rounds with 95% CIs.
    pub summary: Vec<SummaryRow>,
    /// One sentence with the proxy's cost, as printed at the end of the run.
    pub headline: String,
    /// Things a reader must know: rates not held, errors, skipped topologies.
    pub warnings: Vec<String>,
    /// False when the run was interrupted or failed part-way (partial results).
    pub complete: bool,
    /// Our load generator against wrk on the baseline, when wrk is installed.
    #[serde(default)]
    pub loadgen_check: Option<LoadgenCheck>,
    /// The instrument's own noise per rate: the baseline against itself (it runs twice a
    /// round, A/A). A cost inside it is "not measurable".
    #[serde(default)]
    pub noise_floor: Vec<NoiseRow>,
    /// How the clean-rate ceiling was found, one ramp per topology behind a proxy (the
    /// lowest ceiling is the run's), when rates were derived from it.
    #[serde(default)]
    pub calibration: Vec<Calibration>,
    /// Busy shares above which a trial is saturated (its rate is flagged).
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Per rate: clean, or flagged with the reasons. Flagged rates are shown but left out
    /// of the headline and of latency claims.
    #[serde(default)]
    pub rate_checks: Vec<RateCheck>,
    /// The results.json whose absolute rates this run repeated (`--rates-from`).
    #[serde(default)]
    pub rates_from: Option<String>,
    /// Our proxy against every other topology behind a proxy, head to head per rate:
    /// paired per round (both ran in the same round), ours − other, with exact intervals.
    #[serde(default)]
    pub versus: Vec<VersusRow>,
    /// A multi-shape run (`[[shape]]` in the scenario): each request shape with its own
    /// complete results (capacity, ceiling, rates, trials, summary, noise floor, checks,
    /// warnings, headline). The top level then keeps the run's environment, scenario,
    /// warnings and a headline across the shapes; its own rates and trials are empty.
    #[serde(default)]
    pub shapes: Vec<ShapeResults>,
}

/// One request shape of a multi-shape run and what it measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShapeResults {
    /// The shape's name.
    pub name: String,
    /// Request method.
    pub method: String,
    /// Request path and query.
    pub path: String,
    /// Request body size.
    pub body_bytes: usize,
    /// Whether the body was sent chunked.
    pub chunked: bool,
    /// Everything measured with this shape, as a single-shape run has it.
    pub results: Results,
}

/// Busy shares that make a trial saturated.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Thresholds {
    /// Share of all the machine's CPUs busy (from /proc/stat) over the window.
    pub machine_busy: f64,
    /// Share of one CPU the busiest load generator thread used over the window.
    pub loadgen_thread_busy: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        // Chosen from a sweep on a 2-vCPU VM (README, "Clean rates"): p50 stayed flat to
        // 70 % machine busy, but the proxied topologies' p99 doubled beyond about 45 %.
        Thresholds {
            machine_busy: 0.5,
            loadgen_thread_busy: 0.5,
        }
    }
}

/// Whether one rate's trials stayed below the thresholds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RateCheck {
    /// The rate.
    pub rate_rps: f64,
    /// No trial crossed a threshold or missed its rate.
    pub clean: bool,
    /// Why not, one line each.
    pub reasons: Vec<String>,
}

/// The short open-loop ramp that found the highest clean rate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    /// The topology ramped.
    pub topology: String,
    /// Each step of the ramp.
    pub steps: Vec<CalibrationStep>,
    /// The highest rate at which both busy shares stayed below the thresholds
    /// (interpolated between steps); the scenario's percentages apply to it.
    pub ceiling_rps: f64,
    /// Why the ramp stopped.
    pub note: String,
}

/// One rate of the calibration ramp.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct CalibrationStep {
    /// Target rate.
    pub rate_rps: f64,
    /// Achieved rate.
    pub achieved_rps: f64,
    /// Share of the machine's CPUs busy.
    pub machine_busy: f64,
    /// Share of one CPU the busiest load generator thread used.
    pub loadgen_thread_busy: f64,
    /// Corrected p50, µs.
    pub p50_us: f64,
}

/// Our proxy against another proxy at one rate, head to head: ours − other, paired by
/// round, each estimate judged against the A/A noise floor of its metric at that rate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VersusRow {
    /// Our proxy's topology (`proxied`).
    pub topology: String,
    /// The topology it is compared with (e.g. `nginx`).
    pub other: String,
    /// Target rate.
    pub rate_rps: f64,
    /// Rounds that ran both.
    pub rounds: usize,
    /// Server CPU per request, ours − other, µs (negative: ours is cheaper).
    pub cpu_us_per_request: Estimate,
    /// p50 latency, ours − other, µs.
    pub p50_us: Estimate,
    /// p99 latency, ours − other, µs.
    pub p99_us: Estimate,
    /// Server memory (peak PSS), ours − other, bytes.
    pub pss_bytes: Estimate,
    /// Whether the rate is clean (latency is compared only at clean rates).
    pub clean: bool,
}

/// The baseline against itself at one rate (second run − first run, paired by round).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NoiseRow {
    /// The baseline topology.
    pub topology: String,
    /// Target rate.
    pub rate_rps: f64,
    /// Rounds with both runs.
    pub rounds: usize,
    /// A/A difference of p50, µs.
    pub p50_us: Estimate,
    /// A/A difference of p90, µs.
    pub p90_us: Estimate,
    /// A/A difference of p99, µs.
    pub p99_us: Estimate,
    /// A/A difference of server CPU per request, µs.
    pub cpu_us_per_request: Estimate,
    /// A/A difference of server memory (peak PSS), bytes.
    pub pss_bytes: Estimate,
}

/// Our load generator's closed-loop capacity against wrk's (`-t1`), back to back on
/// the same topology: the load generator must never be the bottleneck wrk would not be.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadgenCheck {
    /// The topology both loaded (the baseline).
    pub topology: String,
    /// Connections of both.
    pub connections: usize,
    /// Measured window of each.
    pub duration_s: f64,
    /// Our capacity.
    pub ours_rps: f64,
    /// wrk's `Requests/sec`.
    pub wrk_rps: f64,
    /// `ours_rps / wrk_rps`.
    pub ratio: f64,
}

/// The writing tool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tool {
    /// `tinyfish-bench`.
    pub name: String,
    /// Crate version.
    pub version: String,
}

/// Machine and build facts, so numbers can be compared honestly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    /// `dev` or `release`: the profile the bench (and so the app and proxy it re-executes) was built with.
    pub build_profile: String,
    /// Whether that profile is optimised (the workspace's dev profile is).
    pub optimized: bool,
    /// Logical CPUs.
    pub cpus: usize,
    /// `/proc/cpuinfo` model name.
    pub cpu_model: String,
    /// Total memory.
    pub memory_bytes: u64,
    /// `uname -sr`.
    pub kernel: String,
    /// Host name.
    pub hostname: String,
    /// RFC 3339 UTC start time.
    pub started_at: String,
    /// Wall-clock duration of the whole run.
    pub duration_s: f64,
    /// Version of nginx when it was run, else null.
    pub nginx_version: Option<String>,
    /// Where the topologies ran: `process` or `compose`.
    pub mode: String,
    /// CPU one timed wake-up of a sleeping thread costs on this machine, µs (a probe of
    /// 400 sleeps of 250 µs at start): the floor of an open-loop load generator's cost per
    /// wake-up. Virtual machines can charge 20 µs and more; bare metal a few.
    #[serde(default)]
    pub timed_wakeup_cpu_us: Option<f64>,
    /// Versions of the programs the topologies ran, by program (`haproxy`, `caddy`,
    /// `uwsgi`, …): the first line each prints for its version flag.
    #[serde(default)]
    pub versions: std::collections::BTreeMap<String, String>,
}

/// The scenario settings that shape the numbers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioEcho {
    /// Scenario name.
    pub name: String,
    /// Scenario file, if any.
    pub file: Option<String>,
    /// Whether `--quick` shortened it.
    pub quick: bool,
    /// Topology names in plan order; the first is the baseline.
    pub topologies: Vec<String>,
    /// Request method.
    pub method: String,
    /// Request path and query.
    pub path: String,
    /// Request body size.
    pub body_bytes: usize,
    /// Load connections.
    pub connections: usize,
    /// Load generator threads.
    pub loadgen_threads: usize,
    /// App worker threads.
    pub app_threads: usize,
    /// Proxy worker threads (our proxy and NGINX's worker_processes alike).
    pub proxy_threads: usize,
    /// Warm-up before each measured window.
    pub warmup_s: f64,
    /// Measured window per trial.
    pub measure_s: f64,
    /// Rounds of interleaved trials.
    pub rounds: usize,
    /// Seed recorded for reproducibility (the exact statistics need no randomness).
    pub seed: u64,
    /// Whether the baseline ran twice per round (A/A), giving the noise floor.
    #[serde(default)]
    pub baseline_twice: bool,
    /// Open loop: the load generator's send window, µs (0: one wake-up per send).
    #[serde(default)]
    pub send_window_us: Option<f64>,
    /// What each topology served or put its proxy in front of, by topology: `tinyfish-app`,
    /// or a `[services]` entry with its command or address.
    #[serde(default)]
    pub services: std::collections::BTreeMap<String, String>,
}

/// Closed-loop capacity of one topology.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Capacity {
    /// Topology name.
    pub topology: String,
    /// Requests per second with every connection sending back to back.
    pub achieved_rps: f64,
    /// Latency at saturation (not a latency measurement; for context only).
    pub latency_us: Latency,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
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

/// One measured window: one topology at one rate in one round.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Trial {
    /// Topology name.
    pub topology: String,
    /// Target rate.
    pub rate_rps: f64,
    /// Round number, from 0.
    pub round: usize,
    /// Which run of this topology in the round: 0, or 1 for the baseline's second (A/A) run.
    #[serde(default)]
    pub replicate: usize,
    /// Position in the run (0, 1, …), to see interleaving and drift.
    pub sequence: usize,
    /// Completed requests per second over the measured window.
    pub achieved_rps: f64,
    /// Whether the load generator held the target rate (within 1%).
    pub rate_held: bool,
    /// Requests completed in the window.
    pub requests: u64,
    /// Latency from the intended send time (coordinated omission corrected).
    pub latency_us: Latency,
    /// Latency from the actual send time (the uncorrected view), for comparison.
    pub uncorrected_latency_us: Latency,
    /// Corrected latency percentile spectrum: `[percentile, µs]` points.
    pub spectrum: Vec<[f64; 2]>,
    /// Per process: CPU and memory over the measured window.
    pub processes: Vec<ProcessUsage>,
    /// Failed requests (connection errors, timeouts, non-2xx).
    pub errors: u64,
    /// Failures by kind (`connect`, `timeout`, `status_5xx`, …).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Responses by status code.
    pub status_counts: BTreeMap<String, u64>,
    /// Sends issued more than 1 ms after their intended time.
    pub late_sends: u64,
    /// Intended sends never issued before the window closed.
    pub dropped_sends: u64,
    /// What the app and proxy measured themselves, from their DogStatsD metrics.
    pub server: ServerSide,
    /// Completed requests per second over the window, per 100 ms.
    pub throughput: Vec<[f64; 2]>,
    /// Share of all the machine's CPUs busy over the window (/proc/stat, every process).
    #[serde(default)]
    pub machine_busy: f64,
    /// Share of one CPU the busiest load generator thread used over the window.
    #[serde(default)]
    pub loadgen_thread_busy: f64,
    /// The load generator's view of its own accuracy.
    #[serde(default)]
    pub loadgen: LoadgenAccuracy,
}

/// How much of a trial's latency is the load generator's own doing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoadgenAccuracy {
    /// `kernel`: every response's arrival is the kernel's receive timestamp;
    /// `user_space`: some were the read's own time (includes the load generator's wake-up).
    pub timestamps: String,
    /// Responses timed by the kernel.
    pub kernel_timestamped: u64,
    /// Sends on a free connection: actual − intended send time, µs (early sends as 0).
    /// This is the part of the corrected latency that is the load generator's.
    pub send_lag_us: Latency,
    /// How long after arrival responses were read (user-space read − kernel timestamp),
    /// µs. In no latency figure: latency ends at the kernel's timestamp.
    pub read_delay_us: Latency,
    /// Sends issued before their intended time (batched into an earlier wake-up).
    pub early_sends: u64,
    /// TLS trials: the handshakes new connections made for requests in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshakes: Option<Handshakes>,
}

/// A TLS trial's handshakes, as the load generator saw them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Handshakes {
    /// Handshakes completed (a new connection's first request pays for one).
    pub count: u64,
    /// Of those, resumed with a session ticket.
    pub resumed: u64,
    /// ClientHello sent to the server's Finished arriving (kernel timestamp), µs.
    pub p50_us: f64,
    /// 99th percentile of the same.
    pub p99_us: f64,
}

/// CPU and memory of one role's process tree over a trial's measured window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessUsage {
    /// `app`, `proxy` or `loadgen`.
    pub role: String,
    /// What ran in that role (`tinyfish-app`, `tinyfish-proxy`, `nginx`, `haproxy`, `bench`).
    pub program: String,
    /// Processes in the tree (NGINX: master and workers).
    pub process_count: usize,
    /// CPU seconds (user + system) over the window.
    pub cpu_s: f64,
    /// CPU microseconds per completed request.
    pub cpu_us_per_request: f64,
    /// Highest proportional set size sampled in the window (tree total: shared pages
    /// divided among the processes that map them). The bench's memory figure.
    pub pss_peak_bytes: u64,
    /// Mean PSS over the window (tree total).
    pub pss_mean_bytes: u64,
    /// Highest anonymous resident memory (RssAnon; containers: cgroup anon), tree total:
    /// what Datadog's `docker.mem.rss` reports.
    pub anon_peak_bytes: u64,
    /// Highest VmRSS summed over the tree: counts shared pages once per process, so it
    /// overstates a multi-process tree (NGINX's master and workers). For reference.
    pub rss_peak_bytes: u64,
    /// Samples at 10 Hz: `[seconds into the window, CPU %, PSS bytes, RssAnon bytes]`.
    pub samples: Vec<[f64; 4]>,
}

/// Durations the servers reported through DogStatsD during a trial.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerSide {
    /// `tinyfish.app.request.duration`, in µs.
    pub app_duration_us: Option<Quantiles>,
    /// `tinyfish.proxy.request.duration`, in µs.
    pub proxy_duration_us: Option<Quantiles>,
    /// `tinyfish.proxy.upstream.duration`, in µs.
    pub proxy_upstream_us: Option<Quantiles>,
    /// `tinyfish.app.requests` summed.
    pub app_requests: Option<f64>,
    /// `tinyfish.proxy.requests` summed.
    pub proxy_requests: Option<f64>,
    /// Metric lines the embedded agent could not parse.
    pub malformed: u64,
}

/// Quantiles of a distribution.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Quantiles {
    /// Values seen.
    pub count: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// A difference over rounds: the exact rank-based [`Shift`] (estimate, interval at the
/// level it really has, p-value, method; its fields are this object's fields in JSON) and
/// its verdict against the instrument's noise floor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Estimate {
    /// Estimate, interval, level, p-value, significance, rounds, method.
    #[serde(flatten)]
    pub shift: Shift,
    /// The instrument's own noise for this metric at this rate (from the A/A runs).
    #[serde(default)]
    pub noise_floor: Option<f64>,
    /// Significant and larger than the noise floor: a cost the bench can measure.
    #[serde(default)]
    pub measurable: bool,
}

impl std::ops::Deref for Estimate {
    type Target = Shift;
    fn deref(&self) -> &Shift {
        &self.shift
    }
}

impl std::ops::DerefMut for Estimate {
    fn deref_mut(&mut self) -> &mut Shift {
        &mut self.shift
    }
}

impl Estimate {
    /// The estimate with every value multiplied by `factor` (e.g. bytes to MB).
    pub fn scaled(&self, factor: f64) -> Estimate {
        Estimate {
            shift: Shift {
                estimate: self.estimate * factor,
                ci: self.ci.map(|[a, b]| {
                    let (x, y) = (a * factor, b * factor);
                    if x <= y {
                        [x, y]
                    } else {
                        [y, x]
                    }
                }),
                ..self.shift
            },
            noise_floor: self.noise_floor.map(|f| f * factor.abs()),
            measurable: self.measurable,
        }
    }
}

/// Added latency at three percentiles.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AddedLatency {
    /// At p50.
    pub p50: Estimate,
    /// At p90.
    pub p90: Estimate,
    /// At p99.
    pub p99: Estimate,
}

/// One topology against the baseline at one rate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SummaryRow {
    /// The topology compared.
    pub topology: String,
    /// The baseline (`direct`).
    pub baseline: String,
    /// Target rate.
    pub rate_rps: f64,
    /// Rounds that had both trials.
    pub rounds: usize,
    /// Client-side latency difference (topology − baseline), µs.
    pub added_latency_us: AddedLatency,
    /// Server-side CPU per request difference (every process but the load generator), µs.
    pub added_cpu_us_per_request: Estimate,
    /// The same as vCPU per 1000 requests/s.
    pub added_vcpu_per_1000_rps: Estimate,
    /// Server-side peak PSS difference, bytes.
    pub added_pss_bytes: Estimate,
    /// Server-side peak RssAnon difference, bytes (Datadog's docker.mem.rss view).
    pub added_anon_bytes: Estimate,
    /// CPU per request of the proxy role alone, µs: median over rounds (absent for the
    /// baseline).
    pub proxy_cpu_us_per_request: Option<f64>,
    /// Peak PSS of the proxy role alone, bytes: median over rounds.
    pub proxy_pss_bytes: Option<f64>,
    /// Whether the rate is clean (see [`Results::rate_checks`]); latency claims are made
    /// only at clean rates.
    #[serde(default = "yes")]
    pub clean: bool,
    /// Median over rounds of the proxy's own p50 request time minus the app's (µs),
    /// from their metrics: the part of the added p50 spent inside the proxy.
    pub proxy_internal_p50_us: Option<f64>,
}

impl Results {
    /// Trials of one topology at one rate, in round order (the baseline's second A/A
    /// runs excluded: see [`Results::replicates`]).
    pub fn trials<'a>(
        &'a self,
        topology: &'a str,
        rate: f64,
    ) -> impl Iterator<Item = &'a Trial> + 'a {
        self.results.iter().filter(move |t| {
            t.topology == topology && t.replicate == 0 && same_rate(t.rate_rps, rate)
        })
    }

    /// The baseline's second runs (A/A) at one rate, in round order.
    pub fn replicates<'a>(
        &'a self,
        topology: &'a str,
        rate: f64,
    ) -> impl Iterator<Item = &'a Trial> + 'a {
        self.results.iter().filter(move |t| {
            t.topology == topology && t.replicate == 1 && same_rate(t.rate_rps, rate)
        })
    }

    /// Whether `rate` passed its check (true when unchecked).
    pub fn is_clean(&self, rate: f64) -> bool {
        self.rate_checks
            .iter()
            .find(|c| same_rate(c.rate_rps, rate))
            .is_none_or(|c| c.clean)
    }

    /// Topology names in plan order.
    pub fn topologies(&self) -> Vec<String> {
        let mut names: Vec<String> = self.scenario.topologies.clone();
        for t in &self.results {
            if !names.contains(&t.topology) {
                names.push(t.topology.clone());
            }
        }
        names
    }
}

impl Trial {
    /// Usage of one role, if sampled.
    pub fn process(&self, role: &str) -> Option<&ProcessUsage> {
        self.processes.iter().find(|p| p.role == role)
    }

    /// Server-side CPU per request: every process but the load generator.
    pub fn server_cpu_us_per_request(&self) -> f64 {
        self.processes
            .iter()
            .filter(|p| p.role != roles::LOADGEN)
            .map(|p| p.cpu_us_per_request)
            .sum()
    }

    /// Server-side peak PSS: every process but the load generator.
    pub fn server_pss_peak_bytes(&self) -> u64 {
        self.processes
            .iter()
            .filter(|p| p.role != roles::LOADGEN)
            .map(|p| p.pss_peak_bytes)
            .sum()
    }

    /// Server-side peak RssAnon: every process but the load generator.
    pub fn server_anon_peak_bytes(&self) -> u64 {
        self.processes
            .iter()
            .filter(|p| p.role != roles::LOADGEN)
            .map(|p| p.anon_peak_bytes)
            .sum()
    }
}

fn yes() -> bool {
    true
}

/// Rates are compared with a relative tolerance (they come from percentages of a
/// measured capacity and round-trip through JSON).
pub fn same_rate(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}
