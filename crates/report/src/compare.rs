//! `bench compare A.json B.json`: what changed between two runs, with significance.
//!
//! Topologies are matched by name and trials by **rate value**: two runs are comparable
//! only at the same absolute rates (percent-of-capacity rates differ run to run; repeat a
//! run's rates with `bench --rates-from A/results.json`). Runs whose rates differ are
//! refused ([`CompareError::RatesDiffer`]) unless `--by-position` pairs them in order.
//! Each metric's per-round values of A and B are compared with the exact Mann–Whitney test
//! ([`crate::stats::unpaired`]): Hodges–Lehmann shift (B − A) and its exact interval at the
//! level it really has; no interval when either run has fewer than 4 rounds.
//! `--fail-on` rules ([`crate::gate`]) turn significant regressions into a failed check.

use std::path::Path;

use crate::error::ReportError;
use crate::gate::FailRule;
use crate::model::{roles, same_rate, Results, Trial, SCHEMA_VERSION};
use crate::stats::{self, median};
use crate::table::{Align, Table};
use crate::terminal::{wrap, WIDTH};
use crate::units::{self, fmt_adaptive, fmt_rps};

/// How to compare.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// Pair the runs' rates by position even when their values differ.
    pub by_position: bool,
    /// Regression thresholds.
    pub fail_on: Vec<FailRule>,
}

/// What a comparison found.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The report to print.
    pub text: String,
    /// One line per `--fail-on` rule that failed (empty: the check passed).
    pub failures: Vec<String>,
}

/// Why two runs cannot be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompareError {
    /// The runs were loaded at different rates.
    #[error(
        "the runs' rates differ (A: {a} req/s; B: {b} req/s): compare runs made at the same \
         rates (bench --rates-from A/results.json) or pass --by-position to pair them in order"
    )]
    RatesDiffer {
        /// A's rates.
        a: String,
        /// B's rates.
        b: String,
    },
}

/// Reads a `results.json`, rejecting another `schema_version` with a clear message.
pub fn load(path: impl AsRef<Path>) -> Result<Results, ReportError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ReportError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
    let found = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| ReportError::MissingVersion {
            path: path.to_path_buf(),
        })?;
    if found != u64::from(SCHEMA_VERSION) {
        return Err(ReportError::SchemaVersion {
            path: path.to_path_buf(),
            found,
            expected: SCHEMA_VERSION,
        });
    }
    serde_json::from_value(value).map_err(|source| ReportError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Which way is better for a metric.
#[derive(Clone, Copy)]
enum Better {
    Lower,
    Higher,
}

struct Metric {
    name: &'static str,
    better: Better,
    fmt: fn(f64) -> String,
    get: fn(&Trial) -> Option<f64>,
}

const METRICS: [Metric; 8] = [
    Metric {
        name: "achieved rps",
        better: Better::Higher,
        fmt: fmt_rps,
        get: |t| Some(t.achieved_rps),
    },
    Metric {
        name: "p50 µs",
        better: Better::Lower,
        fmt: fmt_adaptive,
        get: |t| Some(t.latency_us.p50),
    },
    Metric {
        name: "p90 µs",
        better: Better::Lower,
        fmt: fmt_adaptive,
        get: |t| Some(t.latency_us.p90),
    },
    Metric {
        name: "p99 µs",
        better: Better::Lower,
        fmt: fmt_adaptive,
        get: |t| Some(t.latency_us.p99),
    },
    Metric {
        name: "p99.9 µs",
        better: Better::Lower,
        fmt: fmt_adaptive,
        get: |t| Some(t.latency_us.p999),
    },
    Metric {
        name: "total CPU µs/req",
        better: Better::Lower,
        fmt: units::fmt_cpu,
        get: |t| Some(t.server_cpu_us_per_request()),
    },
    Metric {
        name: "proxy CPU µs/req",
        better: Better::Lower,
        fmt: units::fmt_cpu,
        get: |t| t.process(roles::PROXY).map(|p| p.cpu_us_per_request),
    },
    Metric {
        name: "peak PSS MB",
        better: Better::Lower,
        fmt: units::fmt_mb,
        get: |t| Some(units::mb(t.server_pss_peak_bytes() as f64)),
    },
];

fn describe(r: &Results) -> String {
    let e = &r.environment;
    format!(
        "{} {}, {}, {} ({} vCPU, {}), {} build, scenario {}{} × {} rounds{}",
        r.tool.name,
        r.tool.version,
        e.started_at,
        e.hostname,
        e.cpus,
        e.cpu_model,
        e.build_profile,
        r.scenario.name,
        if r.scenario.quick { " (quick)" } else { "" },
        r.scenario.rounds,
        if r.complete { "" } else { ", INCOMPLETE" }
    )
}

/// The rate pairs to compare: equal values, or by position when asked.
fn rate_pairs(
    a: &Results,
    b: &Results,
    by_position: bool,
) -> Result<Vec<(f64, f64)>, CompareError> {
    if by_position {
        return Ok(a
            .rates_rps
            .iter()
            .copied()
            .zip(b.rates_rps.iter().copied())
            .collect());
    }
    let sorted = |r: &Results| {
        let mut v = r.rates_rps.clone();
        v.sort_by(f64::total_cmp);
        v
    };
    let (sa, sb) = (sorted(a), sorted(b));
    let same = sa.len() == sb.len() && sa.iter().zip(&sb).all(|(x, y)| same_rate(*x, *y));
    if !same {
        let list = |r: &Results| {
            r.rates_rps
                .iter()
                .map(|x| fmt_rps(*x))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(CompareError::RatesDiffer {
            a: list(a),
            b: list(b),
        });
    }
    Ok(a.rates_rps.iter().map(|r| (*r, *r)).collect())
}

/// What changed from run `a` to run `b`, as an aligned plain-text table, and which
/// `--fail-on` rules failed.
pub fn compare(
    a: &Results,
    b: &Results,
    opts: &CompareOptions,
) -> Result<Comparison, CompareError> {
    let rates = rate_pairs(a, b, opts.by_position)?;
    let mut out = wrap(&format!("A: {}", describe(a)), WIDTH, "");
    out.push_str(&wrap(&format!("B: {}", describe(b)), WIDTH, ""));
    let mut notes = environment_notes(a, b);
    if opts.by_position && a.rates_rps.len() != b.rates_rps.len() {
        notes.push(format!(
            "A has {} rates and B {}: only the first {} are compared, by position",
            a.rates_rps.len(),
            b.rates_rps.len(),
            rates.len()
        ));
    }
    let (failures, gate_notes) = crate::gate::check(&opts.fail_on, a, b, &rates);
    notes.extend(gate_notes);
    for n in &notes {
        out.push_str(&wrap(&format!("note: {n}"), WIDTH, ""));
    }

    let mut table = Table::new([
        ("rate", Align::Right),
        ("topology", Align::Left),
        ("metric", Align::Left),
        ("A", Align::Right),
        ("B", Align::Right),
        ("change", Align::Right),
        ("%", Align::Right),
        ("interval of change", Align::Right),
        ("verdict", Align::Left),
    ]);
    let (mut compared, mut changed, mut with_interval) = (0usize, 0usize, 0usize);
    let mut level = f64::NAN;
    for (ra, rb) in &rates {
        let rate = if same_rate(*ra, *rb) {
            fmt_rps(*ra)
        } else {
            format!("{}→{}", fmt_rps(*ra), fmt_rps(*rb))
        };
        for topology in a.topologies().iter().filter(|t| b.topologies().contains(t)) {
            let ta: Vec<&Trial> = a.trials(topology, *ra).collect();
            let tb: Vec<&Trial> = b.trials(topology, *rb).collect();
            if ta.is_empty() || tb.is_empty() {
                continue;
            }
            for m in &METRICS {
                let xs: Vec<f64> = ta.iter().filter_map(|t| (m.get)(t)).collect();
                let ys: Vec<f64> = tb.iter().filter_map(|t| (m.get)(t)).collect();
                let (Some(ma), Some(mb)) = (median(&xs), median(&ys)) else {
                    continue;
                };
                let e = stats::unpaired(&xs, &ys);
                compared += 1;
                if e.ci.is_some() {
                    with_interval += 1;
                    level = e.level;
                }
                let verdict = if e.ci.is_none() {
                    "no interval"
                } else if !e.significant {
                    "n.s."
                } else {
                    changed += 1;
                    match (m.better, e.estimate > 0.0) {
                        (Better::Lower, true) | (Better::Higher, false) => "worse",
                        _ => "better",
                    }
                };
                let pct = if ma.abs() > 1e-12 {
                    format!("{:+.1}%", (mb - ma) / ma.abs() * 100.0)
                } else {
                    "–".to_string()
                };
                table.row(vec![
                    rate.clone(),
                    topology.clone(),
                    m.name.to_string(),
                    (m.fmt)(ma),
                    (m.fmt)(mb),
                    units::signed(e.estimate, m.fmt),
                    pct,
                    e.ci.map_or("–".to_string(), |[lo, hi]| {
                        format!("[{}, {}]", (m.fmt)(lo), (m.fmt)(hi))
                    }),
                    verdict.to_string(),
                ]);
            }
        }
    }
    if table.is_empty() {
        out.push_str("\nNothing to compare: the runs share no topology at any rate.\n");
    } else {
        out.push('\n');
        out.push_str(&wrap(
            &format!(
                "Change = B − A: Hodges–Lehmann shift of the per-round values, with the exact \
                 Mann–Whitney interval ({}); n.s. = not significant; A and B are medians over \
                 rounds.",
                if with_interval > 0 {
                    format!("level {:.1} %", level * 100.0)
                } else {
                    "none: fewer than 4 rounds in a run".to_string()
                }
            ),
            WIDTH,
            "",
        ));
        out.push_str(&table.plain(""));
        out.push_str(&format!(
            "\n{changed} of {compared} comparisons changed significantly (about {:.1} would by chance \
             alone when nothing changed).\n",
            with_interval as f64 * (1.0 - if level.is_finite() { level } else { 0.95 })
        ));
    }
    if !opts.fail_on.is_empty() {
        if failures.is_empty() {
            out.push_str(&format!(
                "fail-on: all {} rule(s) passed.\n",
                opts.fail_on.len()
            ));
        } else {
            for f in &failures {
                out.push_str(&wrap(&format!("FAIL: {f}"), WIDTH, ""));
            }
        }
    }
    Ok(Comparison {
        text: out,
        failures,
    })
}

fn environment_notes(a: &Results, b: &Results) -> Vec<String> {
    let mut notes = Vec::new();
    let (ea, eb) = (&a.environment, &b.environment);
    for (what, x, y) in [
        ("CPU model", ea.cpu_model.clone(), eb.cpu_model.clone()),
        ("logical CPUs", ea.cpus.to_string(), eb.cpus.to_string()),
        (
            "build profile",
            ea.build_profile.clone(),
            eb.build_profile.clone(),
        ),
        ("mode", ea.mode.clone(), eb.mode.clone()),
        ("kernel", ea.kernel.clone(), eb.kernel.clone()),
        (
            "request path",
            a.scenario.path.clone(),
            b.scenario.path.clone(),
        ),
        (
            "connections",
            a.scenario.connections.to_string(),
            b.scenario.connections.to_string(),
        ),
        (
            "measured window s",
            a.scenario.measure_s.to_string(),
            b.scenario.measure_s.to_string(),
        ),
    ] {
        if x != y {
            notes.push(format!("{what} differs: {x} → {y}"));
        }
    }
    let only = |x: &Results, y: &Results| -> Vec<String> {
        x.topologies()
            .into_iter()
            .filter(|t| !y.topologies().contains(t))
            .collect()
    };
    let (only_a, only_b) = (only(a, b), only(b, a));
    if !only_a.is_empty() {
        notes.push(format!("only in A (not compared): {}", only_a.join(", ")));
    }
    if !only_b.is_empty() {
        notes.push(format!("only in B (not compared): {}", only_b.join(", ")));
    }
    for (name, r) in [("A", a), ("B", b)] {
        let flagged: Vec<String> = r
            .rate_checks
            .iter()
            .filter(|c| !c.clean)
            .map(|c| fmt_rps(c.rate_rps))
            .collect();
        if !flagged.is_empty() {
            notes.push(format!(
                "{name} has flagged (saturated) rates: {} req/s; their latency reflects waiting for a CPU",
                flagged.join(", ")
            ));
        }
    }
    notes
}
