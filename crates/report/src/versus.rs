//! Our proxy against each other proxy, head to head (the `versus` of `results.json`).
//!
//! Every round runs every topology back to back, so ours and NGINX are paired by round just
//! as each is paired with the baseline: the per-round difference ours − other, its
//! Hodges–Lehmann estimate and exact Wilcoxon interval (the same statistic, and the same
//! calibration, as the added costs). Subtracting two added-cost estimates instead would
//! give a number with no interval: "ours adds 3 µs less" could be noise. Each estimate is
//! judged against the baseline's A/A noise floor of its metric at that rate.

use crate::model::{Estimate, Results, Trial, VersusRow};
use crate::stats;
use crate::summary::{self, Metric, CPU, P50, P99, PSS};
use crate::table::{Align, Table};
use crate::terminal::OURS;
use crate::units::{self, fmt_cpu, fmt_estimate, fmt_mb, fmt_us};
use crate::views::rate_mark;

/// Which of our rows a topology is compared with: a row named `<proxy>-<variant>`
/// (`nginx-tls`, `nginx-unix`) with ours of the same variant (`proxied-tls`,
/// `proxied-unix`) when the run has it, every other row with `proxied`; a variant of ours
/// with the nearest shorter variant of ours the run has (`proxied-tls-new` with
/// `proxied-tls`: what a handshake per request adds; `proxied-tls` with `proxied`).
pub fn ours_for<'a>(other: &str, topologies: &'a [String]) -> &'a str {
    let present = |name: &str| topologies.iter().find(|t| *t == name).map(String::as_str);
    let plain = || present(OURS).unwrap_or(OURS);
    if let Some(mut variant) = other.strip_prefix(&format!("{OURS}-")) {
        while let Some((shorter, _)) = variant.rsplit_once('-') {
            if let Some(t) = present(&format!("{OURS}-{shorter}")) {
                return t;
            }
            variant = shorter;
        }
        return plain();
    }
    other
        .split_once('-')
        .and_then(|(_, variant)| present(&format!("{OURS}-{variant}")))
        .unwrap_or_else(plain)
}

/// Ours against every other non-baseline topology that has a proxy process, at every rate
/// where both ran in some round: each against ours of the same variant ([`ours_for`]).
pub fn versus(results: &Results) -> Vec<VersusRow> {
    let Some(base) = summary::baseline(results) else {
        return Vec::new();
    };
    let topologies = results.topologies();
    let others: Vec<&String> = topologies
        .iter()
        .filter(|t| **t != base)
        .filter(|t| {
            results
                .results
                .iter()
                .any(|x| &x.topology == *t && x.process(crate::model::roles::PROXY).is_some())
        })
        .collect();
    let mut rows = Vec::new();
    for &rate in &results.rates_rps {
        for other in &others {
            let ours_name = ours_for(other, &topologies);
            if ours_name == other.as_str() || !topologies.iter().any(|t| t == ours_name) {
                continue;
            }
            let ours: Vec<&Trial> = results.trials(ours_name, rate).collect();
            let pairs: Vec<(&Trial, &Trial)> = results
                .trials(other, rate)
                .filter_map(|o| ours.iter().find(|t| t.round == o.round).map(|t| (o, *t)))
                .collect();
            if pairs.is_empty() {
                continue;
            }
            let est = |f: Metric| -> Estimate {
                let (xs, ys): (Vec<f64>, Vec<f64>) =
                    pairs.iter().map(|(o, t)| (f(o), f(t))).unzip();
                stats::against_floor(
                    stats::paired(&xs, &ys),
                    summary::floor(results, &base, rate, f),
                )
            };
            rows.push(VersusRow {
                topology: ours_name.to_string(),
                other: (*other).clone(),
                rate_rps: rate,
                rounds: pairs.len(),
                cpu_us_per_request: est(CPU),
                p50_us: est(P50),
                p99_us: est(P99),
                pss_bytes: est(PSS),
                clean: results.is_clean(rate),
            });
        }
    }
    rows
}

/// The rows of `results` (computed when an older file has none).
pub fn versus_rows(results: &Results) -> Vec<VersusRow> {
    if results.versus.is_empty() {
        versus(results)
    } else {
        results.versus.clone()
    }
}

/// The head-to-head table: one row per rate and other proxy.
pub fn versus_table(rows: &[VersusRow]) -> Table {
    let mut t = Table::new([
        ("rate", Align::Right),
        ("ours", Align::Left),
        ("against", Align::Left),
        ("CPU µs/req", Align::Right),
        ("p50 µs", Align::Right),
        ("p99 µs", Align::Right),
        ("PSS MB", Align::Right),
    ]);
    for r in rows {
        t.row(vec![
            rate_mark(r.clean, r.rate_rps),
            r.topology.clone(),
            r.other.clone(),
            fmt_estimate(&r.cpu_us_per_request, fmt_cpu),
            fmt_estimate(&r.p50_us, fmt_us),
            fmt_estimate(&r.p99_us, fmt_us),
            fmt_estimate(&r.pss_bytes.scaled(1.0 / units::BYTES_PER_MB), fmt_mb),
        ]);
    }
    t
}

/// One metric of a head-to-head row in prose: "3.3 µs less CPU per request than NGINX
/// [−5.1, −1.2]", or that the instrument cannot tell the two apart, and why.
pub fn verdict(
    e: &Estimate,
    fmt: fn(f64) -> String,
    unit: &str,
    what: &str,
    other: &str,
) -> String {
    let interval =
        e.ci.map(|[lo, hi]| format!(" [{}, {}]", fmt(lo), fmt(hi)))
            .unwrap_or_default();
    if !e.measurable {
        let why = if e.ci.is_none() {
            "too few rounds for an interval"
        } else if !e.significant {
            "not significant"
        } else {
            "inside the noise floor"
        };
        return format!(
            "the same {what} as {other} within the instrument ({} {unit}{interval}, {why})",
            units::signed(e.estimate, fmt)
        );
    }
    let (amount, way) = if e.estimate < 0.0 {
        (-e.estimate, "less")
    } else {
        (e.estimate, "more")
    };
    format!("{} {unit} {way} {what} than {other}{interval}", fmt(amount))
}
