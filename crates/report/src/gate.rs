//! `bench compare --fail-on`: thresholds that turn a significant regression into a failed
//! check, so the bench can gate a CI pipeline (as k6's thresholds do).
//!
//! A rule is `TOPOLOGY.METRIC=+LIMIT`, the limit either relative (`+5%` of run A's value)
//! or absolute in the metric's unit (`+3`): `proxied.added_cpu_us_per_request=+5%`,
//! `nginx.p99_us=+200`. A rule fails when B is worse than A at some rate, the difference is
//! significant (its exact Mann–Whitney interval excludes zero) and its estimate exceeds the
//! limit. For every metric here, lower is better.

use std::fmt;

use crate::model::{Results, Trial};

/// A metric a rule can name: how to read it per round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateMetric {
    /// Corrected p50, µs.
    P50Us,
    /// Corrected p90, µs.
    P90Us,
    /// Corrected p99, µs.
    P99Us,
    /// Server CPU per request (every process but the load generator), µs.
    CpuUsPerRequest,
    /// The proxy process tree's CPU per request, µs.
    ProxyCpuUsPerRequest,
    /// Server peak PSS, bytes.
    PssBytes,
    /// Server CPU per request minus the baseline's in the same round, µs.
    AddedCpuUsPerRequest,
    /// p50 minus the baseline's in the same round, µs.
    AddedP50Us,
    /// p99 minus the baseline's in the same round, µs.
    AddedP99Us,
    /// Peak PSS minus the baseline's in the same round, bytes.
    AddedPssBytes,
}

impl GateMetric {
    /// Every metric, with the name a rule uses.
    pub const ALL: [(&'static str, GateMetric); 10] = [
        ("p50_us", GateMetric::P50Us),
        ("p90_us", GateMetric::P90Us),
        ("p99_us", GateMetric::P99Us),
        ("cpu_us_per_request", GateMetric::CpuUsPerRequest),
        ("proxy_cpu_us_per_request", GateMetric::ProxyCpuUsPerRequest),
        ("pss_bytes", GateMetric::PssBytes),
        ("added_cpu_us_per_request", GateMetric::AddedCpuUsPerRequest),
        ("added_p50_us", GateMetric::AddedP50Us),
        ("added_p99_us", GateMetric::AddedP99Us),
        ("added_pss_bytes", GateMetric::AddedPssBytes),
    ];

    /// The rule name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(n, _)| n)
    }

    fn direct(self, t: &Trial) -> Option<f64> {
        match self {
            GateMetric::P50Us | GateMetric::AddedP50Us => Some(t.latency_us.p50),
            GateMetric::P90Us => Some(t.latency_us.p90),
            GateMetric::P99Us | GateMetric::AddedP99Us => Some(t.latency_us.p99),
            GateMetric::CpuUsPerRequest | GateMetric::AddedCpuUsPerRequest => {
                Some(t.server_cpu_us_per_request())
            }
            GateMetric::ProxyCpuUsPerRequest => t
                .process(crate::model::roles::PROXY)
                .map(|p| p.cpu_us_per_request),
            GateMetric::PssBytes | GateMetric::AddedPssBytes => {
                Some(t.server_pss_peak_bytes() as f64)
            }
        }
    }

    fn is_added(self) -> bool {
        matches!(
            self,
            GateMetric::AddedCpuUsPerRequest
                | GateMetric::AddedP50Us
                | GateMetric::AddedP99Us
                | GateMetric::AddedPssBytes
        )
    }

    /// One value per round of `topology` at `rate` in `r` (added metrics: minus the
    /// baseline in the same round, the mean of its two runs where it ran twice).
    pub fn per_round(self, r: &Results, topology: &str, rate: f64) -> Vec<f64> {
        let base = crate::summary::baseline(r).unwrap_or_default();
        r.trials(topology, rate)
            .filter_map(|t| {
                let v = self.direct(t)?;
                if !self.is_added() {
                    return Some(v);
                }
                // The baseline of the round, as the summary takes it: the mean of its two
                // runs where it ran twice.
                let first = self.direct(r.trials(&base, rate).find(|b| b.round == t.round)?)?;
                let base_value = match r
                    .replicates(&base, rate)
                    .find(|b| b.round == t.round)
                    .and_then(|b| self.direct(b))
                {
                    Some(second) => (first + second) / 2.0,
                    None => first,
                };
                Some(v - base_value)
            })
            .collect()
    }
}

/// How much worse B may be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// A share of A's median (0.05 for `+5%`).
    Relative(f64),
    /// In the metric's unit.
    Absolute(f64),
}

/// One `--fail-on` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct FailRule {
    /// The topology it watches.
    pub topology: String,
    /// The metric.
    pub metric: GateMetric,
    /// The regression it tolerates.
    pub limit: Limit,
}

impl fmt::Display for FailRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.limit {
            Limit::Relative(x) => write!(
                f,
                "{}.{}=+{}%",
                self.topology,
                self.metric.name(),
                (x * 100.0 * 1e6).round() / 1e6
            ),
            Limit::Absolute(x) => write!(f, "{}.{}=+{x}", self.topology, self.metric.name()),
        }
    }
}

impl std::str::FromStr for FailRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "--fail-on {s:?}: expected TOPOLOGY.METRIC=+LIMIT, e.g. \
                 proxied.added_cpu_us_per_request=+5% or nginx.p99_us=+200; metrics: {}",
                GateMetric::ALL
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let (lhs, limit) = s.split_once('=').ok_or_else(usage)?;
        let (topology, metric) = lhs.rsplit_once('.').ok_or_else(usage)?;
        let metric = GateMetric::ALL
            .iter()
            .find(|(n, _)| *n == metric.trim())
            .map(|(_, m)| *m)
            .ok_or_else(usage)?;
        let limit = limit.trim();
        let number = limit.strip_prefix('+').unwrap_or(limit);
        let parsed = match number.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map(|v| Limit::Relative(v / 100.0)),
            None => number.trim().parse::<f64>().map(Limit::Absolute),
        };
        let limit = parsed.ok().filter(|l| match l {
            Limit::Relative(v) | Limit::Absolute(v) => v.is_finite() && *v >= 0.0,
        });
        if topology.trim().is_empty() {
            return Err(usage());
        }
        Ok(FailRule {
            topology: topology.trim().to_owned(),
            metric,
            limit: limit.ok_or_else(usage)?,
        })
    }
}

/// Checks every rule against runs `a` and `b` at the rate pairs `rates` (A's, B's);
/// returns one line per failed rule and rate, and notes on rules that matched nothing.
pub fn check(
    rules: &[FailRule],
    a: &Results,
    b: &Results,
    rates: &[(f64, f64)],
) -> (Vec<String>, Vec<String>) {
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for rule in rules {
        let mut compared = 0;
        let mut judged = 0;
        for (ra, rb) in rates {
            let xs = rule.metric.per_round(a, &rule.topology, *ra);
            let ys = rule.metric.per_round(b, &rule.topology, *rb);
            if xs.is_empty() || ys.is_empty() {
                continue;
            }
            compared += 1;
            let e = crate::stats::unpaired(&xs, &ys);
            judged += usize::from(e.ci.is_some());
            let base = crate::stats::median(&xs).unwrap_or(0.0);
            let allowed = match rule.limit {
                Limit::Relative(x) => x * base.abs(),
                Limit::Absolute(x) => x,
            };
            if e.significant && e.estimate > allowed {
                failures.push(format!(
                    "{rule} failed at {} req/s: B is worse by {:+.2} (A {:.2}, interval [{:.2}, \
                     {:.2}] at {:.1} %), more than the allowed {:.2}",
                    crate::units::fmt_rps(*ra),
                    e.estimate,
                    base,
                    e.ci.map_or(f64::NAN, |c| c[0]),
                    e.ci.map_or(f64::NAN, |c| c[1]),
                    e.level * 100.0,
                    allowed
                ));
            }
        }
        if compared == 0 {
            notes.push(format!(
                "--fail-on {rule}: no rate where both runs have {} (topology not in both runs?)",
                rule.metric.name()
            ));
        } else if judged == 0 {
            notes.push(format!(
                "--fail-on {rule}: could not judge: a run has fewer than {} rounds, too few for \
                 an interval, so no regression can be significant",
                crate::exact::min_unpaired_rounds()
            ));
        }
    }
    (failures, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print() {
        let r: FailRule = "proxied.added_cpu_us_per_request=+5%".parse().unwrap();
        assert_eq!(r.topology, "proxied");
        assert_eq!(r.metric, GateMetric::AddedCpuUsPerRequest);
        assert_eq!(r.limit, Limit::Relative(0.05));
        assert_eq!(r.to_string(), "proxied.added_cpu_us_per_request=+5%");
        let r: FailRule = "nginx.p99_us=200".parse().unwrap();
        assert_eq!(r.limit, Limit::Absolute(200.0));
        for bad in [
            "proxied",
            "proxied.nope=+5%",
            "proxied.p50_us=fast",
            ".p50_us=1",
            "x.p50_us=-3",
        ] {
            let e = bad.parse::<FailRule>().unwrap_err();
            assert!(e.contains("expected TOPOLOGY.METRIC=+LIMIT"), "{bad}: {e}");
        }
    }
}
