//! `bench compare A.json B.json`: what changed between two runs, with significance.
//!
//! Topologies are matched by name, rates by position in `rates_rps` (so runs whose
//! absolute rates differ, e.g. percentages of a measured capacity, still line up).
//! For each metric, the per-round values of A and B are compared with an unpaired
//! bootstrap 95% CI of the difference of medians (B − A), seeded and deterministic.

use std::path::Path;

use crate::error::ReportError;
use crate::model::{roles, Results, Trial, SCHEMA_VERSION};
use crate::stats::{self, median};
use crate::table::{Align, Table};
use crate::terminal::{wrap, WIDTH};
use crate::units::{self, fmt_adaptive, fmt_rps};

/// Seed of the comparison bootstrap (fixed so the same two files always print the same).
pub const COMPARE_SEED: u64 = 0x7157_F15E;

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
        name: "peak RSS MB",
        better: Better::Lower,
        fmt: units::fmt_mb,
        get: |t| Some(units::mb(t.server_rss_peak_bytes() as f64)),
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

/// What changed from run `a` to run `b`, as an aligned plain-text table.
pub fn compare(a: &Results, b: &Results) -> String {
    let mut out = wrap(&format!("A: {}", describe(a)), WIDTH, "");
    out.push_str(&wrap(&format!("B: {}", describe(b)), WIDTH, ""));
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
    if a.rates_rps.len() != b.rates_rps.len() {
        notes.push(format!(
            "A has {} rates and B {}: only the first {} are compared, by position",
            a.rates_rps.len(),
            b.rates_rps.len(),
            a.rates_rps.len().min(b.rates_rps.len())
        ));
    }
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
        ("95% CI of change", Align::Right),
        ("verdict", Align::Left),
    ]);
    let (mut compared, mut changed) = (0usize, 0usize);
    for (ra, rb) in a.rates_rps.iter().zip(&b.rates_rps) {
        let rate = if crate::model::same_rate(*ra, *rb) {
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
                let e = stats::bootstrap_ci_median_diff(
                    &xs,
                    &ys,
                    COMPARE_SEED,
                    stats::DEFAULT_RESAMPLES,
                );
                compared += 1;
                let verdict = if !e.significant {
                    "n.s."
                } else {
                    changed += 1;
                    match (m.better, e.median > 0.0) {
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
                    units::signed(e.median, m.fmt),
                    pct,
                    format!("[{}, {}]", (m.fmt)(e.ci95[0]), (m.fmt)(e.ci95[1])),
                    verdict.to_string(),
                ]);
            }
        }
    }
    if table.is_empty() {
        out.push_str("\nNothing to compare: the runs share no topology at any rate position.\n");
        return out;
    }
    out.push('\n');
    out.push_str(&wrap(&format!(
        "Change = B − A of the medians over rounds (rates matched by position); 95% CI by bootstrap \
         ({} resamples); n.s. = not significant.\n",
        stats::DEFAULT_RESAMPLES
    ), WIDTH, ""));
    out.push_str(&table.plain(""));
    out.push_str(&format!(
        "\n{changed} of {compared} comparisons changed significantly (about {:.0} would by chance alone at 95%).\n",
        compared as f64 * 0.05
    ));
    out
}
