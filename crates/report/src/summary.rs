//! Each topology against the baseline, per rate: the `summary` of `results.json`.
//!
//! Trials are paired by round (the same round ran both topologies back to back, so
//! drift cancels); each metric's per-round differences go through
//! [`stats::bootstrap_ci_median_diff_paired`] with the scenario's seed.

use crate::model::{roles, AddedLatency, Estimate, Results, SummaryRow, Trial};
use crate::stats::{self, median};
use crate::units;

/// The baseline topology: the first in plan order (`direct` in the shipped scenarios).
pub fn baseline(results: &Results) -> Option<String> {
    results.topologies().into_iter().next()
}

/// Summary rows for every non-baseline topology at every rate with paired rounds.
///
/// `resamples` is normally [`stats::DEFAULT_RESAMPLES`]; the seed is `scenario.seed`.
pub fn summarize(results: &Results, resamples: usize) -> Vec<SummaryRow> {
    let Some(base) = baseline(results) else {
        return Vec::new();
    };
    let seed = results.scenario.seed;
    let mut rows = Vec::new();
    for rate in &results.rates_rps {
        for topology in results.topologies().iter().filter(|t| **t != base) {
            let pairs: Vec<(&Trial, &Trial)> = results
                .trials(&base, *rate)
                .filter_map(|b| {
                    results
                        .trials(topology, *rate)
                        .find(|t| t.round == b.round)
                        .map(|t| (b, t))
                })
                .collect();
            if pairs.is_empty() {
                continue;
            }
            let est = |f: &dyn Fn(&Trial) -> f64| -> Estimate {
                let xs: Vec<f64> = pairs.iter().map(|(b, _)| f(b)).collect();
                let ys: Vec<f64> = pairs.iter().map(|(_, t)| f(t)).collect();
                stats::bootstrap_ci_median_diff_paired(&xs, &ys, seed, resamples)
            };
            let cpu = est(&|t| t.server_cpu_us_per_request());
            let topo_trials: Vec<&Trial> = pairs.iter().map(|(_, t)| *t).collect();
            let proxy_values = |f: &dyn Fn(&Trial) -> Option<f64>| -> Option<Estimate> {
                let vs: Vec<f64> = topo_trials.iter().filter_map(|t| f(t)).collect();
                (!vs.is_empty()).then(|| stats::bootstrap_ci_median(&vs, seed, resamples))
            };
            let internal: Vec<f64> = topo_trials
                .iter()
                .filter_map(|t| {
                    Some(t.server.proxy_duration_us?.p50 - t.server.app_duration_us?.p50)
                })
                .collect();
            rows.push(SummaryRow {
                topology: topology.clone(),
                baseline: base.clone(),
                rate_rps: *rate,
                rounds: pairs.len(),
                added_latency_us: AddedLatency {
                    p50: est(&|t| t.latency_us.p50),
                    p90: est(&|t| t.latency_us.p90),
                    p99: est(&|t| t.latency_us.p99),
                },
                added_cpu_us_per_request: cpu,
                added_vcpu_per_1000_rps: units::scale(&cpu, units::vcpu_per_1000_rps(1.0)),
                added_rss_bytes: est(&|t| t.server_rss_peak_bytes() as f64),
                proxy_cpu_us_per_request: proxy_values(&|t| {
                    t.process(roles::PROXY).map(|p| p.cpu_us_per_request)
                }),
                proxy_rss_bytes: proxy_values(&|t| {
                    t.process(roles::PROXY).map(|p| p.rss_peak_bytes as f64)
                }),
                proxy_internal_p50_us: median(&internal),
            });
        }
    }
    rows
}
