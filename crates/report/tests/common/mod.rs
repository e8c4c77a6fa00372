//! Deterministic synthetic results for the tests and the examples.
//!
//! Kept in one file (over 600 lines) on purpose: the trial order, the noise and the
//! finishing steps below mirror the bench's run step by step and change together.
//!
//! [`Fake`] records a run the way the bench does (`bench/src/run.rs`, `bench/src/plan.rs`):
//! rounds of interleaved trials, the baseline first and, when it runs twice (A/A), last
//! as well, every other round in reverse order, and every rate of a slot back to back.
//! Each topology has a known true cost over the baseline ([`Metrics`], see
//! [`default_shift`]); on top of it every value gets seeded noise
//! ([`report::stats::SplitMix64`]) of three kinds:
//!
//! - a per-round effect shared by every trial of the round (`round_effect`): machine
//!   drift, which pairing by round cancels;
//! - a per-position effect inside a round (`drift` per slot: later trials slower), which
//!   the two baseline runs, first and last, see the most of; it is what the A/A noise
//!   floor measures;
//! - independent noise per trial (`noise`), bounded: every draw is within ±scale.
//!
//! Busy shares follow the CPU the trial used; single trials can be pushed over the
//! thresholds. [`Fake::build`] then fills `rate_checks`, `noise_floor`, `summary`,
//! `warnings` and `headline` in the bench's order ([`finish`]).
#![allow(dead_code)]

use std::collections::BTreeMap;

use report::model::*;
use report::stats::SplitMix64;

/// One value per metric the summary states: a true shift, a noise scale or a drift.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metrics {
    /// p50 latency, µs.
    pub p50_us: f64,
    /// p90 latency, µs.
    pub p90_us: f64,
    /// p99 latency, µs.
    pub p99_us: f64,
    /// Server CPU per request, µs (a shift goes to the proxy process).
    pub cpu_us: f64,
    /// Server peak PSS, bytes (a shift goes to the proxy process).
    pub pss_bytes: f64,
    /// Server peak RssAnon, bytes (a shift goes to the proxy process).
    pub anon_bytes: f64,
}

impl Metrics {
    /// Every metric 0.
    pub const ZERO: Metrics = Metrics {
        p50_us: 0.0,
        p90_us: 0.0,
        p99_us: 0.0,
        cpu_us: 0.0,
        pss_bytes: 0.0,
        anon_bytes: 0.0,
    };

    /// Every metric times `k`.
    pub fn scaled(self, k: f64) -> Metrics {
        Metrics {
            p50_us: self.p50_us * k,
            p90_us: self.p90_us * k,
            p99_us: self.p99_us * k,
            cpu_us: self.cpu_us * k,
            pss_bytes: self.pss_bytes * k,
            anon_bytes: self.anon_bytes * k,
        }
    }
}

/// What a topology costs over the baseline (`direct`) unless a test says otherwise.
pub fn default_shift(topology: &str) -> Metrics {
    match topology {
        "direct" => Metrics::ZERO,
        "proxied" => Metrics {
            p50_us: 62.0,
            p90_us: 70.0,
            p99_us: 95.0,
            cpu_us: 31.0,
            pss_bytes: 14.0e6,
            anon_bytes: 6.0e6,
        },
        "nginx" => Metrics {
            p50_us: 48.0,
            p90_us: 55.0,
            p99_us: 80.0,
            cpu_us: 24.0,
            pss_bytes: 6.5e6,
            anon_bytes: 3.0e6,
        },
        _ => Metrics {
            p50_us: 80.0,
            p90_us: 90.0,
            p99_us: 120.0,
            cpu_us: 40.0,
            pss_bytes: 20.0e6,
            anon_bytes: 9.0e6,
        },
    }
}

/// Independent per-trial noise (each draw within ±scale).
pub const DEFAULT_NOISE: Metrics = Metrics {
    p50_us: 2.0,
    p90_us: 3.0,
    p99_us: 8.0,
    cpu_us: 0.6,
    pss_bytes: 0.15e6,
    anon_bytes: 0.1e6,
};

/// Added per slot position inside a round.
pub const DEFAULT_DRIFT: Metrics = Metrics {
    p50_us: 1.0,
    p90_us: 1.5,
    p99_us: 3.0,
    cpu_us: 0.15,
    pss_bytes: 0.03e6,
    anon_bytes: 0.02e6,
};

/// Shared by every trial of a round (within ±scale).
pub const DEFAULT_ROUND_EFFECT: Metrics = Metrics {
    p50_us: 4.0,
    p90_us: 6.0,
    p99_us: 15.0,
    cpu_us: 1.0,
    pss_bytes: 0.3e6,
    anon_bytes: 0.2e6,
};

/// The app's own CPU per request, µs.
pub const APP_CPU_US: f64 = 38.0;
/// The load generator's CPU per request, µs.
pub const LOADGEN_CPU_US: f64 = 12.0;
/// Logical CPUs of the fake machine.
pub const CPUS: usize = 2;
/// Load generator threads.
pub const LOADGEN_THREADS: usize = 2;

/// One busy share forced on one trial (replicate 0) of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Busy {
    /// Target rate of the trial.
    pub rate_rps: f64,
    /// Its topology.
    pub topology: String,
    /// Its round, from 0.
    pub round: usize,
    /// Share of the machine's CPUs, if forced.
    pub machine_busy: Option<f64>,
    /// Share of the busiest load generator thread, if forced.
    pub loadgen_thread_busy: Option<f64>,
}

/// A synthetic run, built step by step.
#[derive(Debug, Clone)]
pub struct Fake {
    /// Topologies in plan order; the first is the baseline.
    pub topologies: Vec<String>,
    /// Target rates in run order.
    pub rates: Vec<f64>,
    /// Rounds.
    pub rounds: usize,
    /// Seed of the noise (and the scenario's recorded seed).
    pub seed: u64,
    /// Whether the baseline runs twice a round (A/A).
    pub baseline_twice: bool,
    /// True shifts that replace [`default_shift`].
    pub shifts: BTreeMap<String, Metrics>,
    /// Per-trial noise scales.
    pub noise: Metrics,
    /// Per-position drift inside a round.
    pub drift: Metrics,
    /// Per-round shared effect scales.
    pub round_effect: Metrics,
    /// The run's thresholds.
    pub thresholds: Thresholds,
    /// Busy shares forced on single trials.
    pub busy: Vec<Busy>,
    /// Trials (rate, topology, round) whose rate was not held.
    pub not_held: Vec<(f64, String, usize)>,
    /// Trials (rate, topology, round) whose arrivals were timed in user space.
    pub user_space: Vec<(f64, String, usize)>,
    /// Whether the rates came from a calibration ramp (fills `calibration`).
    pub calibrated: bool,
    /// Warnings the bench adds about set-up, before the trials' own.
    pub warnings: Vec<String>,
}

impl Fake {
    /// `topologies` × `rates` × `rounds`, the baseline twice a round, default costs and noise.
    pub fn new(topologies: &[&str], rates: &[f64], rounds: usize, seed: u64) -> Fake {
        Fake {
            topologies: topologies.iter().map(|t| t.to_string()).collect(),
            rates: rates.to_vec(),
            rounds,
            seed,
            baseline_twice: true,
            shifts: BTreeMap::new(),
            noise: DEFAULT_NOISE,
            drift: DEFAULT_DRIFT,
            round_effect: DEFAULT_ROUND_EFFECT,
            thresholds: Thresholds::default(),
            busy: Vec::new(),
            not_held: Vec::new(),
            user_space: Vec::new(),
            calibrated: true,
            warnings: Vec::new(),
        }
    }

    /// Whether the baseline runs twice a round.
    pub fn baseline_twice(mut self, yes: bool) -> Fake {
        self.baseline_twice = yes;
        self
    }

    /// The true cost of `topology` over the baseline.
    pub fn shift(mut self, topology: &str, shift: Metrics) -> Fake {
        self.shifts.insert(topology.to_string(), shift);
        self
    }

    /// Per-trial noise scales.
    pub fn noise(mut self, noise: Metrics) -> Fake {
        self.noise = noise;
        self
    }

    /// Per-position drift inside a round.
    pub fn drift(mut self, drift: Metrics) -> Fake {
        self.drift = drift;
        self
    }

    /// Per-round shared effect scales.
    pub fn round_effect(mut self, effect: Metrics) -> Fake {
        self.round_effect = effect;
        self
    }

    /// The run's thresholds.
    pub fn thresholds(mut self, thresholds: Thresholds) -> Fake {
        self.thresholds = thresholds;
        self
    }

    /// Forces the machine's busy share of one trial.
    pub fn machine_busy(mut self, rate: f64, topology: &str, round: usize, share: f64) -> Fake {
        self.busy.push(Busy {
            rate_rps: rate,
            topology: topology.to_string(),
            round,
            machine_busy: Some(share),
            loadgen_thread_busy: None,
        });
        self
    }

    /// Forces the busiest load generator thread's share of one trial.
    pub fn loadgen_thread_busy(
        mut self,
        rate: f64,
        topology: &str,
        round: usize,
        share: f64,
    ) -> Fake {
        self.busy.push(Busy {
            rate_rps: rate,
            topology: topology.to_string(),
            round,
            machine_busy: None,
            loadgen_thread_busy: Some(share),
        });
        self
    }

    /// One trial missed its rate.
    pub fn not_held(mut self, rate: f64, topology: &str, round: usize) -> Fake {
        self.not_held.push((rate, topology.to_string(), round));
        self
    }

    /// One trial's arrivals were timed in user space (no kernel timestamps).
    pub fn user_space(mut self, rate: f64, topology: &str, round: usize) -> Fake {
        self.user_space.push((rate, topology.to_string(), round));
        self
    }

    /// Whether `calibration` is filled.
    pub fn calibrated(mut self, yes: bool) -> Fake {
        self.calibrated = yes;
        self
    }

    /// A set-up warning (the bench's own, before the trials' warnings).
    pub fn warning(mut self, text: &str) -> Fake {
        self.warnings.push(text.to_string());
        self
    }

    /// The true cost of `topology` in this run.
    pub fn shift_of(&self, topology: &str) -> Metrics {
        if self.topologies.first().is_some_and(|b| b == topology) {
            return Metrics::ZERO;
        }
        self.shifts
            .get(topology)
            .copied()
            .unwrap_or_else(|| default_shift(topology))
    }

    /// The slots of one round as `(topology index, replicate)`, as `bench/src/plan.rs`
    /// orders them: topologies in plan order, then the baseline again; odd rounds reversed.
    pub fn round_order(&self, round: usize) -> Vec<(usize, usize)> {
        let mut slots: Vec<(usize, usize)> = (0..self.topologies.len()).map(|t| (t, 0)).collect();
        if self.baseline_twice && !self.topologies.is_empty() {
            slots.push((0, 1));
        }
        if round % 2 == 1 {
            slots.reverse();
        }
        slots
    }

    /// The run with its trials only: no summary, checks, noise floor, warnings of trials
    /// or headline (see [`finish`]).
    pub fn raw(&self) -> Results {
        let mut rng = SplitMix64::new(self.seed);
        let measure_s = 10.0;
        let mut trials = Vec::new();
        let mut sequence = 0;
        for round in 0..self.rounds {
            let effect = Metrics {
                p50_us: noise(&mut rng, self.round_effect.p50_us),
                p90_us: noise(&mut rng, self.round_effect.p90_us),
                p99_us: noise(&mut rng, self.round_effect.p99_us),
                cpu_us: noise(&mut rng, self.round_effect.cpu_us),
                pss_bytes: noise(&mut rng, self.round_effect.pss_bytes),
                anon_bytes: noise(&mut rng, self.round_effect.anon_bytes),
            };
            for (position, (index, replicate)) in self.round_order(round).into_iter().enumerate() {
                let topology = self.topologies[index].clone();
                let at = self.drift.scaled(position as f64);
                for &rate in &self.rates {
                    let slot = Slot {
                        topology: &topology,
                        baseline: index == 0,
                        rate,
                        round,
                        replicate,
                        sequence,
                        measure_s,
                        offset: Metrics {
                            p50_us: effect.p50_us + at.p50_us,
                            p90_us: effect.p90_us + at.p90_us,
                            p99_us: effect.p99_us + at.p99_us,
                            cpu_us: effect.cpu_us + at.cpu_us,
                            pss_bytes: effect.pss_bytes + at.pss_bytes,
                            anon_bytes: effect.anon_bytes + at.anon_bytes,
                        },
                    };
                    trials.push(self.trial(&slot, &mut rng));
                    sequence += 1;
                }
            }
        }
        let mut warnings = self.warnings.clone();
        if self.rounds < report::exact::min_paired_rounds() {
            // As the bench warns before it starts.
            warnings.push(format!(
                "{} round(s) give no 95 % interval (the exact signed-rank test needs {}): differences are shown without one and none is called significant",
                self.rounds,
                report::exact::min_paired_rounds()
            ));
        }
        Results {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: "tinyfish-bench".to_string(),
                version: "0.1.0".to_string(),
            },
            environment: Environment {
                build_profile: "dev".to_string(),
                optimized: true,
                cpus: CPUS,
                cpu_model: "AMD EPYC 7B13".to_string(),
                memory_bytes: 8 * 1024 * 1024 * 1024,
                kernel: "Linux 6.1.0".to_string(),
                hostname: "bench-host".to_string(),
                started_at: "2026-11-24T22:00:00Z".to_string(),
                duration_s: 612.5,
                nginx_version: self
                    .topologies
                    .iter()
                    .any(|t| t == "nginx")
                    .then(|| "1.22.1".to_string()),
                mode: "process".to_string(),
                timed_wakeup_cpu_us: Some(6.5),
                versions: Default::default(),
            },
            scenario: ScenarioEcho {
                name: "default".to_string(),
                file: Some("bench/scenarios/default.toml".to_string()),
                quick: false,
                topologies: self.topologies.clone(),
                method: "GET".to_string(),
                path: "/hello".to_string(),
                body_bytes: 0,
                connections: 64,
                loadgen_threads: LOADGEN_THREADS,
                app_threads: 2,
                proxy_threads: 2,
                warmup_s: 3.0,
                measure_s,
                rounds: self.rounds,
                seed: self.seed,
                baseline_twice: self.baseline_twice,
                send_window_us: None,
                services: Default::default(),
            },
            capacity: self
                .topologies
                .iter()
                .map(|t| Capacity {
                    topology: t.clone(),
                    achieved_rps: 52_000.0 / (1.0 + self.shift_of(t).cpu_us / APP_CPU_US),
                    latency_us: Latency {
                        p50: 900.0,
                        p90: 1400.0,
                        p99: 2600.0,
                        p999: 4100.0,
                        max: 9000.0,
                    },
                })
                .collect(),
            rates_rps: self.rates.clone(),
            results: trials,
            summary: Vec::new(),
            headline: String::new(),
            warnings,
            complete: true,
            loadgen_check: Some(LoadgenCheck {
                topology: self.topologies.first().cloned().unwrap_or_default(),
                connections: 64,
                duration_s: 1.0,
                ours_rps: 52_000.0,
                wrk_rps: 51_000.0,
                ratio: 52_000.0 / 51_000.0,
            }),
            noise_floor: Vec::new(),
            calibration: if self.calibrated {
                self.calibration()
            } else {
                Vec::new()
            },
            thresholds: self.thresholds,
            rate_checks: Vec::new(),
            rates_from: None,
            versus: Vec::new(),
            shapes: Vec::new(),
        }
    }

    /// The run with everything the bench derives from its trials.
    pub fn build(&self) -> Results {
        let mut r = self.raw();
        finish(&mut r);
        r
    }

    /// One ramp per topology behind a proxy: the machine's busy share grows with the rate.
    fn calibration(&self) -> Vec<Calibration> {
        self.topologies
            .iter()
            .skip(1)
            .map(|t| {
                let s = self.shift_of(t);
                let busy = |rate: f64| machine_busy(rate, APP_CPU_US + s.cpu_us);
                let steps: Vec<CalibrationStep> = [2000.0, 4000.0, 8000.0, 16000.0]
                    .into_iter()
                    .map(|rate| CalibrationStep {
                        rate_rps: rate,
                        achieved_rps: rate,
                        machine_busy: busy(rate),
                        loadgen_thread_busy: loadgen_thread_busy(rate),
                        p50_us: 95.0 * (1.0 + rate / 20_000.0) + s.p50_us,
                    })
                    .collect();
                // The share is linear in the rate: solve for the threshold.
                let per_rps = busy(1.0) - busy(0.0);
                let ceiling = (self.thresholds.machine_busy - busy(0.0)) / per_rps;
                Calibration {
                    topology: t.clone(),
                    steps,
                    ceiling_rps: ceiling.round(),
                    note: "the machine's CPUs reached the threshold between steps".to_string(),
                }
            })
            .collect()
    }

    fn forced(&self, slot: &Slot<'_>) -> (Option<f64>, Option<f64>) {
        let mut out = (None, None);
        if slot.replicate != 0 {
            return out;
        }
        for b in self.busy.iter().filter(|b| {
            same_rate(b.rate_rps, slot.rate) && b.topology == slot.topology && b.round == slot.round
        }) {
            out.0 = b.machine_busy.or(out.0);
            out.1 = b.loadgen_thread_busy.or(out.1);
        }
        out
    }

    fn marked(list: &[(f64, String, usize)], slot: &Slot<'_>) -> bool {
        slot.replicate == 0
            && list.iter().any(|(rate, topology, round)| {
                same_rate(*rate, slot.rate) && topology == slot.topology && *round == slot.round
            })
    }

    fn trial(&self, slot: &Slot<'_>, rng: &mut SplitMix64) -> Trial {
        let (rate, measure_s) = (slot.rate, slot.measure_s);
        let shift = self.shift_of(slot.topology);
        let n = self.noise;
        let o = slot.offset;
        let load = 1.0 + rate / 20_000.0;
        let p50 = 95.0 * load + o.p50_us + shift.p50_us + noise(rng, n.p50_us);
        let p90 = (128.0 * load + o.p90_us + shift.p90_us + noise(rng, n.p90_us)).max(p50 + 1.0);
        let p99 = (210.0 * load + o.p99_us + shift.p99_us + noise(rng, n.p99_us)).max(p90 + 1.0);
        let latency = Latency {
            p50,
            p90,
            p99,
            p999: p99 * 1.6,
            max: p99 * 4.0,
        };
        let uncorrected = Latency {
            p90: p90 * 0.98,
            p99: p99 * 0.85,
            p999: latency.p999 * 0.7,
            max: latency.max * 0.9,
            ..latency
        };
        let held = !Self::marked(&self.not_held, slot);
        // Every draw is made whatever is forced, so a forced value changes nothing else.
        let wobble = noise(rng, 0.002);
        let achieved = if held {
            rate * (1.0 + wobble)
        } else {
            rate * 0.9
        };
        let requests = (achieved * measure_s) as u64;

        let mut processes = Vec::new();
        let app_cpu = APP_CPU_US + o.cpu_us + noise(rng, n.cpu_us);
        let app_pss = 9.5e6 + o.pss_bytes + noise(rng, n.pss_bytes);
        let app_anon = 6.0e6 + o.anon_bytes + noise(rng, n.anon_bytes);
        processes.push(usage(
            roles::APP,
            "tinyfish-app",
            1,
            (app_cpu, app_pss, app_anon),
            rate,
            requests,
            measure_s,
            rng,
        ));
        if !slot.baseline {
            let (program, count) = if slot.topology == "nginx" {
                ("nginx", 3)
            } else {
                ("tinyfish-proxy", 1)
            };
            let cpu = (shift.cpu_us + noise(rng, n.cpu_us)).max(0.0);
            let pss = (shift.pss_bytes + noise(rng, n.pss_bytes)).max(0.0);
            let anon = (shift.anon_bytes + noise(rng, n.anon_bytes)).max(0.0);
            processes.push(usage(
                roles::PROXY,
                program,
                count,
                (cpu, pss, anon),
                rate,
                requests,
                measure_s,
                rng,
            ));
        }
        let loadgen_cpu = LOADGEN_CPU_US + noise(rng, 0.3);
        processes.push(usage(
            roles::LOADGEN,
            "bench",
            1,
            (loadgen_cpu, 22.0e6, 20.0e6),
            rate,
            requests,
            measure_s,
            rng,
        ));
        let server_cpu: f64 = processes
            .iter()
            .filter(|p| p.role != roles::LOADGEN)
            .map(|p| p.cpu_us_per_request)
            .sum();

        let throughput = (0..(measure_s * 10.0) as usize)
            .map(|i| [i as f64 / 10.0, rate * (1.0 + noise(rng, 0.03))])
            .collect();
        let q = |p50: f64| Quantiles {
            count: requests as f64,
            p50,
            p90: p50 * 1.3,
            p99: p50 * 2.1,
            max: p50 * 5.0,
        };
        let app_internal = 21.0 + noise(rng, 1.0);
        let proxied = !slot.baseline;
        let server = ServerSide {
            app_duration_us: Some(q(app_internal)),
            proxy_duration_us: proxied.then(|| q(app_internal + 0.6 * shift.p50_us)),
            proxy_upstream_us: proxied.then(|| q(app_internal + 0.2 * shift.p50_us)),
            app_requests: Some(requests as f64),
            proxy_requests: proxied.then_some(requests as f64),
            malformed: 0,
        };
        let natural_machine = machine_busy(rate, server_cpu) + noise(rng, 0.01).abs();
        let natural_thread = loadgen_thread_busy(rate) + noise(rng, 0.005).abs();
        let (forced_machine, forced_loadgen) = self.forced(slot);
        let machine = forced_machine.unwrap_or(natural_machine);
        let thread = forced_loadgen.unwrap_or(natural_thread);
        let user_space = Self::marked(&self.user_space, slot);
        let lag = 4.0 + noise(rng, 1.0);
        Trial {
            topology: slot.topology.to_string(),
            rate_rps: rate,
            round: slot.round,
            replicate: slot.replicate,
            sequence: slot.sequence,
            achieved_rps: achieved,
            rate_held: held,
            requests,
            latency_us: latency,
            uncorrected_latency_us: uncorrected,
            spectrum: spectrum(&latency),
            processes,
            errors: 0,
            errors_by_kind: BTreeMap::new(),
            status_counts: BTreeMap::from([("200".to_string(), requests)]),
            late_sends: 3,
            dropped_sends: 0,
            server,
            throughput,
            machine_busy: machine,
            loadgen_thread_busy: thread,
            loadgen: LoadgenAccuracy {
                timestamps: if user_space { "user_space" } else { "kernel" }.to_string(),
                kernel_timestamped: if user_space { requests / 2 } else { requests },
                send_lag_us: Latency {
                    p50: lag,
                    p90: lag * 2.0,
                    p99: lag * 6.0,
                    p999: lag * 15.0,
                    max: lag * 80.0,
                },
                read_delay_us: Latency {
                    p50: 6.0,
                    p90: 12.0,
                    p99: 30.0,
                    p999: 80.0,
                    max: 400.0,
                },
                early_sends: 0,
                tls_handshakes: Some(Handshakes {
                    count: requests / 100,
                    resumed: requests / 200,
                    p50_us: 180.0,
                    p99_us: 420.0,
                }),
            },
        }
    }
}

/// Where one trial sits in the run.
struct Slot<'a> {
    topology: &'a str,
    baseline: bool,
    rate: f64,
    round: usize,
    replicate: usize,
    sequence: usize,
    measure_s: f64,
    /// Round effect plus drift at this slot's position.
    offset: Metrics,
}

/// Share of the machine's CPUs busy at `rate` with `server_cpu_us` per request (plus the
/// load generator's, plus a little background).
pub fn machine_busy(rate: f64, server_cpu_us: f64) -> f64 {
    0.03 + rate * (server_cpu_us + LOADGEN_CPU_US) / 1e6 / CPUS as f64
}

/// Share of one CPU the busiest load generator thread uses at `rate`.
pub fn loadgen_thread_busy(rate: f64) -> f64 {
    0.01 + rate * LOADGEN_CPU_US / 1e6 / LOADGEN_THREADS as f64
}

#[allow(clippy::too_many_arguments)]
fn usage(
    role: &str,
    program: &str,
    count: usize,
    (cpu_us, pss, anon): (f64, f64, f64),
    rate: f64,
    requests: u64,
    measure_s: f64,
    rng: &mut SplitMix64,
) -> ProcessUsage {
    let n = (measure_s * 10.0) as usize;
    // Memory grows to its peak over the window; CPU wobbles around its mean.
    let samples: Vec<[f64; 4]> = (0..n)
        .map(|i| {
            let t = i as f64 / 10.0;
            let grow = 0.97 + 0.03 * (i + 1) as f64 / n as f64;
            let cpu_pct = rate * cpu_us / 1e4 + noise(rng, rate * cpu_us / 1e5);
            [t, cpu_pct.max(0.0), pss * grow, anon * grow]
        })
        .collect();
    let mean_pss = samples.iter().map(|s| s[2]).sum::<f64>() / n.max(1) as f64;
    ProcessUsage {
        role: role.to_string(),
        program: program.to_string(),
        process_count: count,
        cpu_s: cpu_us * requests as f64 / 1e6,
        cpu_us_per_request: cpu_us,
        pss_peak_bytes: pss as u64,
        pss_mean_bytes: mean_pss as u64,
        anon_peak_bytes: anon as u64,
        // VmRSS counts shared pages once per process.
        rss_peak_bytes: (pss * (1.0 + 0.3 * count as f64)) as u64,
        samples,
    }
}

/// Bounded noise in [-scale, scale], most mass near 0 (a sum of three uniforms).
pub fn noise(rng: &mut SplitMix64, scale: f64) -> f64 {
    let u = |r: &mut SplitMix64| (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((u(rng) + u(rng) + u(rng)) / 1.5 - 1.0) * scale
}

/// The corrected spectrum through the trial's percentiles: log latency linear in the
/// number of nines between them.
fn spectrum(l: &Latency) -> Vec<[f64; 2]> {
    let nines = |p: f64| -(1.0 - p / 100.0).log10();
    let anchors = [
        (0.0, l.p50 * 0.6),
        (nines(50.0), l.p50),
        (1.0, l.p90),
        (2.0, l.p99),
        (3.0, l.p999),
        (5.5, l.max),
    ];
    let at = |x: f64| {
        let i = anchors
            .windows(2)
            .position(|w| x <= w[1].0)
            .unwrap_or(anchors.len() - 2);
        let ((x0, y0), (x1, y1)) = (anchors[i], anchors[i + 1]);
        let f = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0);
        (y0.ln() + (y1.ln() - y0.ln()) * f).exp()
    };
    (0..=36)
        .map(|k| {
            let p = 100.0 * (1.0 - 0.5f64.powf(f64::from(k) / 2.0));
            [p, at(nines(p))]
        })
        .chain(std::iter::once([100.0, l.max]))
        .collect()
}

/// Fills what the bench derives from the trials, as the bench does ([`report::finish`]):
/// rate checks, the noise floor, the summary, ours head to head, the trials' warnings
/// (appended to those already there), the headline.
pub fn finish(r: &mut Results) {
    report::finish(r);
}

/// `topologies` × `rates` × `rounds` with the default costs, the baseline twice a round.
pub fn fake_results(topologies: &[&str], rates: &[f64], rounds: usize, seed: u64) -> Results {
    Fake::new(topologies, rates, rounds, seed).build()
}

/// The summary row of `topology` at `rate`.
pub fn row<'a>(r: &'a Results, topology: &str, rate: f64) -> &'a SummaryRow {
    r.summary
        .iter()
        .find(|s| s.topology == topology && same_rate(s.rate_rps, rate))
        .unwrap_or_else(|| panic!("no summary row for {topology} at {rate}"))
}

/// The A/A row at `rate`.
pub fn noise_row(r: &Results, rate: f64) -> &NoiseRow {
    r.noise_floor
        .iter()
        .find(|n| same_rate(n.rate_rps, rate))
        .unwrap_or_else(|| panic!("no noise floor row at {rate}"))
}

/// The cells of a plain-text table line (columns are two or more spaces apart).
pub fn cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}
