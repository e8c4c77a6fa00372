//! What a reader must know before trusting a figure: which rates are clean, and the run's
//! warnings (rates not held, saturated trials, errors, the load generator's own limits).
//!
//! A rate is **clean** when, in every trial at it, the machine's CPUs and the busiest load
//! generator thread stayed below [`Thresholds`] and the load generator held the rate.
//! Above those shares latency is mostly waiting for a CPU (on a 2-core machine the load
//! generator, the app and the proxy compete for the same cores), so a flagged rate is still
//! shown but makes no latency claim and is never the headline's.

use crate::model::{RateCheck, Results, Thresholds, Trial};
use crate::units::fmt_rps;

/// Checks every rate of the run against its thresholds.
pub fn rate_checks(results: &Results) -> Vec<RateCheck> {
    results
        .rates_rps
        .iter()
        .map(|rate| {
            let trials: Vec<&Trial> = results
                .results
                .iter()
                .filter(|t| crate::model::same_rate(t.rate_rps, *rate))
                .collect();
            let reasons = reasons(&trials, &results.thresholds);
            RateCheck {
                rate_rps: *rate,
                clean: reasons.is_empty(),
                reasons,
            }
        })
        .collect()
}

/// `direct round 3`, or `direct (A/A) round 3` for the baseline's second run.
fn trial_name(t: &Trial) -> String {
    if t.replicate == 1 {
        format!("{} (A/A) round {}", t.topology, t.round + 1)
    } else {
        format!("{} round {}", t.topology, t.round + 1)
    }
}

fn reasons(trials: &[&Trial], th: &Thresholds) -> Vec<String> {
    let mut out = Vec::new();
    let worst = |f: fn(&Trial) -> f64| {
        trials
            .iter()
            .copied()
            .max_by(|a, b| f(a).total_cmp(&f(b)))
            .filter(|t| f(t) > 0.0)
    };
    if let Some(t) = worst(|t| t.machine_busy).filter(|t| t.machine_busy >= th.machine_busy) {
        out.push(format!(
            "the machine's CPUs were {:.0} % busy ({}; threshold {:.0} %)",
            t.machine_busy * 100.0,
            trial_name(t),
            th.machine_busy * 100.0
        ));
    }
    if let Some(t) =
        worst(|t| t.loadgen_thread_busy).filter(|t| t.loadgen_thread_busy >= th.loadgen_thread_busy)
    {
        out.push(format!(
            "a load generator thread was {:.0} % busy ({}; threshold {:.0} %)",
            t.loadgen_thread_busy * 100.0,
            trial_name(t),
            th.loadgen_thread_busy * 100.0
        ));
    }
    let not_held: Vec<String> = trials
        .iter()
        .filter(|t| !t.rate_held)
        .map(|t| trial_name(t))
        .collect();
    if !not_held.is_empty() {
        out.push(format!("rate not held in {}", not_held.join(", ")));
    }
    out
}

/// The run's warnings, from its trials (the bench adds those about set-up itself).
pub fn trial_warnings(results: &Results) -> Vec<String> {
    let mut w = Vec::new();
    for c in results.rate_checks.iter().filter(|c| !c.clean) {
        w.push(format!(
            "{} req/s is flagged: {}. Latency there includes waiting for a CPU; it is shown but \
             not used for latency claims (CPU per request is still measured)",
            fmt_rps(c.rate_rps),
            c.reasons.join("; ")
        ));
    }
    let errors: u64 = results.results.iter().map(|t| t.errors).sum();
    if errors > 0 {
        w.push(format!(
            "{errors} request(s) failed across all trials (see errors_by_kind)"
        ));
    }
    let user: Vec<String> = results
        .results
        .iter()
        .filter(|t| !t.loadgen.timestamps.is_empty() && t.loadgen.timestamps != "kernel")
        .map(|t| format!("{} @ {}", t.topology, fmt_rps(t.rate_rps)))
        .collect();
    if !user.is_empty() {
        w.push(format!(
            "kernel receive timestamps were missing in {} trial(s) ({}): their latency includes \
             the load generator's own wake-up",
            user.len(),
            user.join(", ")
        ));
    }
    if let Some(c) = &results.loadgen_check {
        // The check's own noise is a few per cent (medians of 1 s runs): below 0.95 the
        // load generator is the likely limit.
        if c.ratio < 0.95 {
            w.push(format!(
                "our load generator reached {:.2}× wrk's closed-loop rate on {}: it may be a \
                 bottleneck wrk would not be",
                c.ratio, c.topology
            ));
        }
    }
    if !results.complete {
        w.push("the run did not complete: these are partial results".into());
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_worst_trial_and_the_threshold() {
        let t: Trial = serde_json::from_value(serde_json::json!({
            "topology": "direct", "rate_rps": 100.0, "round": 2, "sequence": 0,
            "achieved_rps": 100.0, "rate_held": false, "requests": 10,
            "latency_us": {"p50":1.0,"p90":1.0,"p99":1.0,"p999":1.0,"max":1.0},
            "uncorrected_latency_us": {"p50":1.0,"p90":1.0,"p99":1.0,"p999":1.0,"max":1.0},
            "spectrum": [], "processes": [], "errors": 0, "errors_by_kind": {},
            "status_counts": {}, "late_sends": 0, "dropped_sends": 0, "server": {"malformed": 0},
            "throughput": [], "machine_busy": 0.7, "loadgen_thread_busy": 0.2
        }))
        .unwrap();
        let r = reasons(&[&t], &Thresholds::default());
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[0].contains("70 %") && r[0].contains("round 3"), "{r:?}");
        assert!(r[1].contains("rate not held in direct round 3"), "{r:?}");
    }
}
