//! A multi-shape run: the request shapes side by side.
//!
//! Each shape has complete results of its own (rendered as a single-shape run is); this
//! module adds what only the comparison of shapes shows: one row per shape and topology at
//! the shape's highest clean rate, charts of added CPU and added p50 by shape (shapes in
//! the order the scenario lists them, smallest bodies first in the shipped scenario), and a
//! headline on how our proxy compares with NGINX across the shapes.

use crate::model::{Results, ShapeResults, SummaryRow};
use crate::svg::{Bar, BarChart};
use crate::table::{Align, Table};
use crate::terminal::{NGINX, OURS};
use crate::units::{fmt_cpu, fmt_estimate, fmt_rps, fmt_us};
use crate::views;

/// `GET /work?bytes=4096`, `POST /echo, 16384 B body, chunked`.
pub fn describe(s: &ShapeResults) -> String {
    let mut d = format!("{} {}", s.method, s.path);
    if s.body_bytes > 0 {
        d.push_str(&format!(", {} B body", s.body_bytes));
        if s.chunked {
            d.push_str(", chunked");
        }
    }
    d
}

/// The summary row a shape speaks through for `topology`: its highest clean rate.
pub fn row<'a>(s: &'a ShapeResults, topology: &str) -> Option<&'a SummaryRow> {
    s.results
        .summary
        .iter()
        .filter(|r| r.topology == topology && r.clean)
        .max_by(|a, b| a.rate_rps.total_cmp(&b.rate_rps))
}

/// One row per shape and compared topology at the shape's highest clean rate.
pub fn table(results: &Results) -> Table {
    let mut t = Table::new([
        ("shape", Align::Left),
        ("rate", Align::Right),
        ("topology", Align::Left),
        ("added CPU µs/req", Align::Right),
        ("proxy CPU µs/req", Align::Right),
        ("added p50 µs", Align::Right),
        ("added p99 µs", Align::Right),
    ]);
    for s in &results.shapes {
        for topology in s.results.topologies().iter().skip(1) {
            let Some(r) = row(s, topology) else {
                continue;
            };
            t.row(vec![
                s.name.clone(),
                fmt_rps(r.rate_rps),
                topology.clone(),
                fmt_estimate(&r.added_cpu_us_per_request, fmt_cpu),
                r.proxy_cpu_us_per_request.map_or("–".into(), fmt_cpu),
                fmt_estimate(&r.added_latency_us.p50, fmt_us),
                fmt_estimate(&r.added_latency_us.p99, fmt_us),
            ]);
        }
    }
    t
}

/// One charted quantity of a summary row.
type Metric = fn(&SummaryRow) -> crate::model::Estimate;

/// Added CPU per request and added p50 by shape, one bar per compared topology.
pub fn charts(results: &Results) -> String {
    let topologies: Vec<String> = results
        .shapes
        .first()
        .map(|s| s.results.topologies().into_iter().skip(1).collect())
        .unwrap_or_default();
    let categories: Vec<String> = results.shapes.iter().map(|s| s.name.clone()).collect();
    let mut out = String::from("<div class=\"grid\">\n");
    let metrics: [(&str, &str, Metric); 2] = [
        (
            "Added CPU per request, by shape",
            "CPU µs / request",
            |r| r.added_cpu_us_per_request.clone(),
        ),
        ("Added latency at p50, by shape", "µs", |r| {
            r.added_latency_us.p50.clone()
        }),
    ];
    for (title, unit, get) in metrics {
        let series = topologies
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let bars = results
                    .shapes
                    .iter()
                    .map(|s| {
                        row(s, t).map(|r| {
                            let e = get(r);
                            Bar {
                                value: e.estimate,
                                ci: e.ci,
                                note: (!e.measurable).then(|| "n.m.".to_string()),
                            }
                        })
                    })
                    .collect();
                (
                    t.clone(),
                    crate::html::PALETTE[(i + 1) % crate::html::PALETTE.len()].to_string(),
                    bars,
                )
            })
            .collect();
        let chart = BarChart {
            title: title.to_string(),
            y_label: unit.to_string(),
            categories: categories.clone(),
            series,
            noise: Vec::new(),
            width: 580.0,
            height: 300.0,
        };
        out.push_str(&chart.render());
        out.push('\n');
    }
    out.push_str("</div>\n");
    out
}

/// One paragraph across the shapes: at how many our proxy adds at most NGINX's CPU per
/// request and p50 (by the estimates, with the intervals in the table), and where not.
pub fn headline(results: &Results) -> String {
    let n = results.shapes.len();
    let mut compared = 0;
    let mut cpu_ok = 0;
    let mut p50_ok = 0;
    let mut worse = Vec::new();
    for s in &results.shapes {
        let (Some(ours), Some(nginx)) = (row(s, OURS), row(s, NGINX)) else {
            continue;
        };
        compared += 1;
        let dc = ours.added_cpu_us_per_request.estimate - nginx.added_cpu_us_per_request.estimate;
        let dp = ours.added_latency_us.p50.estimate - nginx.added_latency_us.p50.estimate;
        cpu_ok += usize::from(dc <= 0.0);
        p50_ok += usize::from(dp <= 0.0);
        if dc > 0.0 || dp > 0.0 {
            worse.push(format!(
                "{} ({:+.1} µs CPU, {:+.0} µs p50 against NGINX)",
                s.name, dc, dp
            ));
        }
    }
    if compared == 0 {
        let first = results
            .shapes
            .first()
            .map_or(String::new(), |s| s.results.headline.clone());
        return format!("{n} request shapes. {first}");
    }
    let mut h = format!(
        "Across {n} request shapes, each at its highest clean rate: our proxy adds at most NGINX's \
         CPU per request at {cpu_ok} of {compared} and at most its p50 at {p50_ok} of {compared} \
         (estimates; the intervals are in the table)."
    );
    if !worse.is_empty() {
        h.push_str(&format!(" More than NGINX at: {}.", worse.join(", ")));
    }
    h
}

/// The section heading of a shape.
pub fn heading(s: &ShapeResults) -> String {
    format!("Shape {}: {}", s.name, describe(s))
}

/// The rates each shape ran at, for the environment line.
pub fn rates(results: &Results) -> String {
    results
        .shapes
        .iter()
        .map(|s| {
            let r: Vec<String> = s.results.rates_rps.iter().map(|r| fmt_rps(*r)).collect();
            format!("{} {}", s.name, r.join("/"))
        })
        .collect::<Vec<_>>()
        .join("; ")
        + " req/s"
}

/// Whether `results` is a multi-shape run.
pub fn is_multi(results: &Results) -> bool {
    !results.shapes.is_empty()
}

/// The run's environment line with the shapes' rates.
pub fn environment_line(results: &Results) -> String {
    views::environment_line(results).replace("rates  req/s", &format!("rates {}", rates(results)))
}
