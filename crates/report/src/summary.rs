//! Each topology against the baseline, per rate (the `summary` of `results.json`), and the
//! baseline against itself (the `noise_floor`).
//!
//! Trials are paired by round: the same round ran every topology back to back, so drift
//! cancels. When the baseline ran twice in a round (A/A, first and last), its value for the
//! round is the mean of the two runs, and the difference between them is the instrument's
//! own noise: a topology's cost is *measurable* only when its exact interval excludes zero
//! and the estimate is larger than that noise ([`stats::against_floor`]).

use crate::model::{roles, AddedLatency, Estimate, NoiseRow, Results, SummaryRow, Trial};
use crate::stats::{self, median};
use crate::units;

/// The baseline topology: the first in plan order (`direct` in the shipped scenarios).
pub fn baseline(results: &Results) -> Option<String> {
    results.topologies().into_iter().next()
}

/// A per-round value of a trial.
pub(crate) type Metric = fn(&Trial) -> f64;

pub(crate) const P50: Metric = |t| t.latency_us.p50;
pub(crate) const P90: Metric = |t| t.latency_us.p90;
pub(crate) const P99: Metric = |t| t.latency_us.p99;
pub(crate) const CPU: Metric = |t| t.server_cpu_us_per_request();
pub(crate) const PSS: Metric = |t| t.server_pss_peak_bytes() as f64;
pub(crate) const ANON: Metric = |t| t.server_anon_peak_bytes() as f64;

/// The baseline's value per round at `rate` (mean of its A/A runs where it ran twice),
/// keyed by round.
fn baseline_rounds(results: &Results, base: &str, rate: f64, f: Metric) -> Vec<(usize, f64)> {
    results
        .trials(base, rate)
        .map(|a| {
            let v = match results.replicates(base, rate).find(|b| b.round == a.round) {
                Some(b) => (f(a) + f(b)) / 2.0,
                None => f(a),
            };
            (a.round, v)
        })
        .collect()
}

/// The A/A comparison of one metric at one rate: (estimate with its `noise_floor` set,
/// per-round differences).
fn aa(results: &Results, base: &str, rate: f64, f: Metric) -> Option<(Estimate, Vec<f64>)> {
    let pairs: Vec<(f64, f64)> = results
        .trials(base, rate)
        .filter_map(|a| {
            results
                .replicates(base, rate)
                .find(|b| b.round == a.round)
                .map(|b| (f(a), f(b)))
        })
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let (xs, ys): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    let diffs: Vec<f64> = pairs.iter().map(|(a, b)| b - a).collect();
    let mut e = stats::paired(&xs, &ys);
    // An A/A estimate carries its own floor, so readers of `noise_floor` need no rounds.
    e.noise_floor = Some(stats::noise_floor(&e, &diffs));
    Some((e, diffs))
}

/// The baseline against itself at every rate where it ran twice in some round.
pub fn noise_floor(results: &Results) -> Vec<NoiseRow> {
    let Some(base) = baseline(results) else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for rate in &results.rates_rps {
        let Some((p50, _)) = aa(results, &base, *rate, P50) else {
            continue;
        };
        let get = |f: Metric| aa(results, &base, *rate, f).map(|(e, _)| e);
        let (Some(p90), Some(p99), Some(cpu), Some(pss)) = (get(P90), get(P99), get(CPU), get(PSS))
        else {
            continue;
        };
        rows.push(NoiseRow {
            topology: base.clone(),
            rate_rps: *rate,
            rounds: p50.n,
            p50_us: p50,
            p90_us: p90,
            p99_us: p99,
            cpu_us_per_request: cpu,
            pss_bytes: pss,
        });
    }
    rows
}

/// The noise floor of one metric at one rate, if the baseline ran twice.
pub(crate) fn floor(results: &Results, base: &str, rate: f64, f: Metric) -> Option<f64> {
    aa(results, base, rate, f).and_then(|(e, _)| e.noise_floor)
}

/// Summary rows for every non-baseline topology at every rate with paired rounds.
pub fn summarize(results: &Results) -> Vec<SummaryRow> {
    let Some(base) = baseline(results) else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for rate in &results.rates_rps {
        for topology in results.topologies().iter().filter(|t| **t != base) {
            let trials: Vec<&Trial> = results.trials(topology, *rate).collect();
            let rounds = |f: Metric| -> (Vec<f64>, Vec<f64>) {
                baseline_rounds(results, &base, *rate, f)
                    .into_iter()
                    .filter_map(|(round, b)| {
                        trials.iter().find(|t| t.round == round).map(|t| (b, f(t)))
                    })
                    .unzip()
            };
            let est = |f: Metric| -> Estimate {
                let (xs, ys) = rounds(f);
                stats::against_floor(stats::paired(&xs, &ys), floor(results, &base, *rate, f))
            };
            let (paired_base, _) = rounds(CPU);
            if paired_base.is_empty() {
                continue;
            }
            let cpu = est(CPU);
            let proxy = |f: fn(&crate::model::ProcessUsage) -> f64| {
                let vs: Vec<f64> = trials
                    .iter()
                    .filter_map(|t| t.process(roles::PROXY).map(f))
                    .collect();
                median(&vs)
            };
            let internal: Vec<f64> = trials
                .iter()
                .filter_map(|t| {
                    Some(t.server.proxy_duration_us?.p50 - t.server.app_duration_us?.p50)
                })
                .collect();
            rows.push(SummaryRow {
                topology: topology.clone(),
                baseline: base.clone(),
                rate_rps: *rate,
                rounds: paired_base.len(),
                added_latency_us: AddedLatency {
                    p50: est(P50),
                    p90: est(P90),
                    p99: est(P99),
                },
                added_vcpu_per_1000_rps: cpu.scaled(units::vcpu_per_1000_rps(1.0)),
                added_cpu_us_per_request: cpu,
                added_pss_bytes: est(PSS),
                added_anon_bytes: est(ANON),
                proxy_cpu_us_per_request: proxy(|p| p.cpu_us_per_request),
                proxy_pss_bytes: proxy(|p| p.pss_peak_bytes as f64),
                proxy_internal_p50_us: median(&internal),
                clean: results.is_clean(*rate),
            });
        }
    }
    rows
}
