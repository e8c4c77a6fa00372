//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, no network)
//! with the tables of `summary.md` and charts:
//!
//! - added cost per rate against the baseline, bars with 95% CI whiskers;
//! - the corrected latency percentile spectrum per rate (x on the "nines" scale, y log µs);
//! - CPU % and RSS MB over time per topology × process, for one rate and round;
//! - throughput over time for the same rate and round.
//!
//! Each topology keeps one colour throughout ([`topology_color`]); each process role
//! one dash style.

use crate::digest;
use crate::model::{roles, Estimate, Results, SummaryRow, Trial};
use crate::svg::{Bar, BarChart, LineChart, Scale, Series};
use crate::terminal::headline;
use crate::units::{self, fmt_rps};
use crate::views;

/// Colours for topologies in plan order (Tableau 10, colour-blind friendly in order).
pub(crate) const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#9c755f",
];

/// Escapes text for HTML and SVG content and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The colour of a topology: by its position in plan order.
pub fn topology_color(results: &Results, topology: &str) -> String {
    let i = results
        .topologies()
        .iter()
        .position(|t| t == topology)
        .unwrap_or(PALETTE.len() - 1);
    PALETTE[i % PALETTE.len()].to_string()
}

/// Dash pattern of a process role in time-series charts.
fn role_dash(role: &str) -> Option<String> {
    match role {
        roles::APP => None,
        roles::PROXY => Some("7 3".to_string()),
        _ => Some("2 3".to_string()),
    }
}

const CSS: &str = r#"
:root { --text:#111827; --muted:#6b7280; --rule:#e5e7eb; --bg:#ffffff; --ns:#9ca3af; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 14px; line-height: 1.45; }
main { max-width: 1220px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 17px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--rule); }
h3 { font-size: 14px; margin: 18px 0 6px; color: #374151; }
p.headline { font-size: 16px; background: #f9fafb; border-left: 4px solid #4e79a7; padding: 10px 14px; margin: 12px 0; }
p.env, p.note { color: var(--muted); margin: 6px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--rule); white-space: nowrap; text-align: left; }
th { font-weight: 600; color: #374151; border-bottom: 2px solid #d1d5db; vertical-align: bottom;
  white-space: normal; min-width: 4em; max-width: 9em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.ns { color: var(--ns); }
tbody tr:hover { background: #f9fafb; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px 20px; }
svg.chart { max-width: 100%; height: auto; display: block; }
ul.warnings li { color: #92400e; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 4px 0 8px; color: #374151; font-size: 13px; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"#;

/// The whole page.
pub fn html(results: &Results) -> String {
    if crate::shapes::is_multi(results) {
        return html_shapes(results);
    }
    let mut out = String::new();
    let title = format!("{} — {}", results.tool.name, results.scenario.name);
    out.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        escape(&title)
    ));
    out.push_str(&format!(
        "<h1>What the proxy costs — scenario <code>{}</code></h1>\n",
        escape(&results.scenario.name)
    ));
    out.push_str(&format!(
        "<p class=\"headline\">{}</p>\n",
        escape(&headline(results))
    ));
    out.push_str(&format!(
        "<p class=\"env\">{}</p>\n",
        escape(&views::environment_line(results))
    ));
    out.push_str(&topology_legend(results));

    let rows = views::summary_rows(results);
    if !rows.is_empty() {
        out.push_str(&format!(
            "<h2>Added cost against <code>{}</code></h2>\n<p class=\"note\">Hodges–Lehmann estimate of the paired per-round difference; whiskers and brackets are exact Wilcoxon signed-rank intervals at the level they really have ({}); pale bars mark differences that are not measurable (n.s.: the interval spans zero; noise: inside the A/A noise floor, drawn as the grey band); ⚑ marks a flagged rate.</p>\n",
            escape(&rows[0].baseline),
            crate::terminal::interval_label(&rows)
        ));
        out.push_str(&added_cost_charts(results, &rows));
        out.push_str("<div class=\"scroll\">\n");
        out.push_str(&views::comparison_table(&rows).html());
        out.push_str("</div>\n");
    }
    let versus = crate::versus::versus_rows(results);
    if !versus.is_empty() {
        out.push_str("<h2>Ours head to head</h2>\n<p class=\"note\">Our proxy minus each other proxy, paired per round (both ran in the same round; a <code>&lt;proxy&gt;-&lt;variant&gt;</code> row against ours of the same variant, <code>proxied-&lt;variant&gt;</code>, where the run has it, and a variant of ours against our nearest shorter one: <code>proxied-tls-new</code> against <code>proxied-tls</code> prices a handshake), with the same exact intervals: negative means ours costs less; n.s. or (noise) means the bench cannot tell the two apart.</p>\n<div class=\"scroll\">\n");
        out.push_str(&crate::versus::versus_table(&versus).html());
        out.push_str("</div>\n");
    }
    if let Some(line) = views::memory_line(results) {
        out.push_str(&format!("<p>{}.</p>\n", escape(&line)));
    }
    if !results.noise_floor.is_empty() {
        out.push_str("<h2>Noise floor (A/A)</h2>\n<p class=\"note\">The baseline against a second run of itself in the same round: the instrument's own noise per metric. A cost inside it is not measurable.</p>\n");
        out.push_str(&views::noise_table(results).html());
    }
    if results
        .results
        .iter()
        .any(|t| !t.loadgen.timestamps.is_empty())
    {
        out.push_str("<h2>The load generator's own share</h2>\n<p class=\"note\">Arrival times are the kernel's receive timestamps. Send lag (actual − intended send on a free connection) is the load generator's part of the corrected latency; read delay (user-space read − kernel timestamp) is in no figure.</p>\n<div class=\"scroll\">\n");
        out.push_str(&views::loadgen_table(results).html());
        out.push_str("</div>\n");
    }

    out.push_str("<h2>Latency percentile spectrum</h2>\n<p class=\"note\">Latency from each request's intended send time (corrected for coordinated omission); x on the nines scale, y logarithmic. One line per round.</p>\n<div class=\"grid\">\n");
    for rate in &results.rates_rps {
        out.push_str(&spectrum_chart(results, *rate));
    }
    out.push_str("</div>\n");

    if let Some((rate, round)) = timeline_choice(results) {
        out.push_str(&format!(
            "<h2>CPU, memory and throughput over time</h2>\n<p class=\"note\">At {}, round {round}: each process tree sampled at 10 Hz over the measured window. Solid: app; dashed: proxy; dotted: load generator. CPU % is of one CPU; memory is PSS.</p>\n<div class=\"grid\">\n",
            escape(&views::rate_label(rate))
        ));
        out.push_str(&timeline_charts(results, rate, round));
        out.push_str("</div>\n");
    }

    out.push_str("<h2>Per rate</h2>\n<p class=\"note\">Medians over rounds. CPU is user + system time per completed request; total is every process but the load generator; vCPU per 1000 rps = total µs/req ÷ 1000. Memory is peak PSS in MB (10<sup>6</sup> bytes): shared pages divided among the processes that map them; RssAnon is what Datadog's docker.mem.rss shows.</p>\n");
    for rate in &results.rates_rps {
        let cells = digest::cells_at(results, *rate);
        if cells.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "<h3>At {}</h3>\n<div class=\"scroll\">\n",
            escape(&views::rate_mark(results.is_clean(*rate), *rate))
        ));
        out.push_str(&views::wide_table(results, &cells).html());
        out.push_str("</div>\n");
    }
    if !results.capacity.is_empty() {
        out.push_str("<h2>Capacity (closed loop)</h2>\n");
        out.push_str(&views::capacity_table(results).html());
    }
    out.push_str("<h2>Warnings</h2>\n");
    if results.warnings.is_empty() {
        out.push_str("<p class=\"note\">None.</p>\n");
    } else {
        out.push_str("<ul class=\"warnings\">\n");
        for w in &results.warnings {
            out.push_str(&format!("<li>{}</li>\n", escape(w)));
        }
        out.push_str("</ul>\n");
    }
    out.push_str(&format!(
        "<footer>Written by {} {} (results schema v{}), started {}, {} s.</footer>\n</main>\n</body>\n</html>\n",
        escape(&results.tool.name),
        escape(&results.tool.version),
        results.schema_version,
        escape(&results.environment.started_at),
        units::fmt_adaptive(results.environment.duration_s)
    ));
    out
}

/// A multi-shape run: the headline, the shapes side by side (table and charts), then each
/// shape's page body under its heading.
fn html_shapes(results: &Results) -> String {
    let title = format!("{} — {}", results.tool.name, results.scenario.name);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n<h1>What the proxy costs, by request shape — scenario <code>{}</code></h1>\n<p class=\"headline\">{}</p>\n<p class=\"env\">{}</p>\n",
        escape(&title),
        escape(&results.scenario.name),
        escape(&headline(results)),
        escape(&crate::shapes::environment_line(results))
    );
    out.push_str("<h2>The shapes side by side</h2>\n<p class=\"note\">Each shape at its highest clean rate; n.m. marks a difference that is not measurable (not significant, or inside the A/A noise floor).</p>\n");
    out.push_str(&crate::shapes::charts(results));
    out.push_str("<div class=\"scroll\">\n");
    out.push_str(&crate::shapes::table(results).html());
    out.push_str("</div>\n");
    if !results.warnings.is_empty() {
        out.push_str("<h2>Warnings</h2>\n<ul class=\"warnings\">\n");
        for w in &results.warnings {
            out.push_str(&format!("<li>{}</li>\n", escape(w)));
        }
        out.push_str("</ul>\n");
    }
    for s in &results.shapes {
        let page = html(&s.results);
        // The shape's page, from its headline to its footer, one level down.
        let body = page
            .split_once("</h1>\n")
            .map_or(page.as_str(), |(_, rest)| rest);
        let body = body.split_once("<footer>").map_or(body, |(b, _)| b);
        out.push_str(&format!(
            "<h2 style=\"margin-top:48px\">{}</h2>\n",
            escape(&crate::shapes::heading(s))
        ));
        out.push_str(&body.replace("<h2>", "<h3>").replace("</h2>", "</h3>"));
    }
    out.push_str(&format!(
        "<footer>Written by {} {} (results schema v{}), started {}, {} s.</footer>\n</main>\n</body>\n</html>\n",
        escape(&results.tool.name),
        escape(&results.tool.version),
        results.schema_version,
        escape(&results.environment.started_at),
        units::fmt_adaptive(results.environment.duration_s)
    ));
    out
}

fn topology_legend(results: &Results) -> String {
    let mut s = String::from("<div class=\"legend\">");
    for t in results.topologies() {
        s.push_str(&format!(
            "<span><span class=\"swatch\" style=\"background:{}\"></span>{}</span>",
            topology_color(results, &t),
            escape(&t)
        ));
    }
    s.push_str("</div>\n");
    s
}

/// Picks one estimate from a summary row.
type Pick = fn(&SummaryRow) -> Estimate;

fn added_cost_charts(results: &Results, rows: &[SummaryRow]) -> String {
    let topologies: Vec<String> = results
        .topologies()
        .into_iter()
        .filter(|t| rows.iter().any(|r| &r.topology == t))
        .collect();
    let categories: Vec<String> = results
        .rates_rps
        .iter()
        .map(|r| views::rate_label(*r))
        .collect();
    let metrics: [(&str, &str, Pick); 4] = [
        ("Added latency at p50", "µs", |r| {
            r.added_latency_us.p50.clone()
        }),
        ("Added latency at p99", "µs", |r| {
            r.added_latency_us.p99.clone()
        }),
        ("Added CPU per request", "CPU µs / request", |r| {
            r.added_cpu_us_per_request.clone()
        }),
        ("Added memory (peak PSS)", "MB", |r| {
            r.added_pss_bytes.scaled(1.0 / units::BYTES_PER_MB)
        }),
    ];
    let mut out = String::from("<div class=\"grid\">\n");
    for (title, unit, get) in metrics {
        let series = topologies
            .iter()
            .map(|t| {
                let bars = results
                    .rates_rps
                    .iter()
                    .map(|rate| {
                        rows.iter()
                            .find(|r| {
                                &r.topology == t && crate::model::same_rate(r.rate_rps, *rate)
                            })
                            .map(|r| {
                                let e = get(r);
                                Bar {
                                    value: e.estimate,
                                    ci: e.ci,
                                    note: not_measurable(&e),
                                }
                            })
                    })
                    .collect();
                (t.clone(), topology_color(results, t), bars)
            })
            .collect();
        let noise = results
            .rates_rps
            .iter()
            .map(|rate| {
                rows.iter()
                    .find(|r| crate::model::same_rate(r.rate_rps, *rate))
                    .and_then(|r| get(r).noise_floor)
            })
            .collect();
        let chart = BarChart {
            title: title.to_string(),
            y_label: unit.to_string(),
            categories: categories.clone(),
            series,
            noise,
            width: 580.0,
            height: 300.0,
        };
        out.push_str(&chart.render());
        out.push('\n');
    }
    out.push_str("</div>\n");
    out
}

/// Why an estimate is not a measured cost, as a bar's label; `None` when it is one.
fn not_measurable(e: &Estimate) -> Option<String> {
    if e.measurable {
        None
    } else if e.ci.is_none() {
        Some("no CI".into())
    } else if !e.significant {
        Some("n.s.".into())
    } else {
        Some("noise".into())
    }
}

fn spectrum_chart(results: &Results, rate: f64) -> String {
    let mut series = Vec::new();
    for t in results.topologies() {
        let color = topology_color(results, &t);
        for (i, trial) in results.trials(&t, rate).enumerate() {
            let mut points: Vec<(f64, f64)> = trial.spectrum.iter().map(|p| (p[0], p[1])).collect();
            if points.is_empty() {
                let l = &trial.latency_us;
                points = vec![(50.0, l.p50), (90.0, l.p90), (99.0, l.p99), (99.9, l.p999)];
            }
            let mut s = Series::new(
                if i == 0 {
                    t.clone()
                } else {
                    format!("{t}, round {}", trial.round)
                },
                color.clone(),
                points,
            );
            s.in_legend = i == 0;
            s.opacity = 0.75;
            series.push(s);
        }
    }
    LineChart {
        title: format!("Latency by percentile at {}", views::rate_label(rate)),
        x_label: "percentile".to_string(),
        y_label: "latency, µs (log)".to_string(),
        x_scale: Scale::Nines,
        y_scale: Scale::Log,
        series,
        width: 580.0,
        height: 340.0,
    }
    .render()
        + "\n"
}

/// The rate and round the time-series charts show: the highest rate, the first round
/// that every topology ran there.
fn timeline_choice(results: &Results) -> Option<(f64, usize)> {
    let rate = results
        .rates_rps
        .iter()
        .copied()
        .filter(|r| {
            results
                .results
                .iter()
                .any(|t| crate::model::same_rate(t.rate_rps, *r))
        })
        .max_by(f64::total_cmp)?;
    let topologies = results.topologies();
    let mut rounds: Vec<usize> = results
        .results
        .iter()
        .filter(|t| crate::model::same_rate(t.rate_rps, rate))
        .map(|t| t.round)
        .collect();
    rounds.sort_unstable();
    rounds.dedup();
    let round = rounds
        .iter()
        .copied()
        .find(|r| {
            topologies.iter().all(|t| {
                results.trials(t, rate).any(|x| x.round == *r)
                    || results.trials(t, rate).next().is_none()
            })
        })
        .or(rounds.first().copied())?;
    Some((rate, round))
}

fn trial_at<'a>(
    results: &'a Results,
    topology: &'a str,
    rate: f64,
    round: usize,
) -> Option<&'a Trial> {
    results.trials(topology, rate).find(|t| t.round == round)
}

fn timeline_charts(results: &Results, rate: f64, round: usize) -> String {
    let role_order = digest::role_order(results);
    let mut cpu = Vec::new();
    let mut mem = Vec::new();
    let mut tput = Vec::new();
    for t in results.topologies() {
        let Some(trial) = trial_at(results, &t, rate, round) else {
            continue;
        };
        let color = topology_color(results, &t);
        for role in &role_order {
            let Some(p) = trial.process(role) else {
                continue;
            };
            let label = format!("{t} {role}");
            let mut c = Series::new(
                label.clone(),
                color.clone(),
                p.samples.iter().map(|s| (s[0], s[1])).collect(),
            );
            c.dash = role_dash(role);
            cpu.push(c);
            let mut m = Series::new(
                label,
                color.clone(),
                p.samples.iter().map(|s| (s[0], units::mb(s[2]))).collect(),
            );
            m.dash = role_dash(role);
            mem.push(m);
        }
        tput.push(Series::new(
            t.clone(),
            color,
            trial.throughput.iter().map(|p| (p[0], p[1])).collect(),
        ));
    }
    let chart = |title: &str, y: &str, series: Vec<Series>, height: f64| {
        LineChart {
            title: title.to_string(),
            x_label: "seconds into the measured window".to_string(),
            y_label: y.to_string(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series,
            width: 580.0,
            height,
        }
        .render()
            + "\n"
    };
    let mut out = chart("CPU by process", "CPU %", cpu, 360.0);
    out.push_str(&chart("Memory by process (PSS)", "PSS, MB", mem, 360.0));
    out.push_str(&chart(
        &format!("Throughput (target {} req/s)", fmt_rps(rate)),
        "completed req/s",
        tput,
        300.0,
    ));
    out
}
