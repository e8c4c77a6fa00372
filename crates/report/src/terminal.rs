//! What the bench prints at the end of a run: aligned plain-text tables and the headline.

use crate::digest;
use crate::model::{Estimate, Results, SummaryRow};
use crate::units::{self, fmt_mb, fmt_us, fmt_vcpu};
use crate::views;

/// The topology name of our proxy.
pub const OURS: &str = "proxied";
/// The topology name of the NGINX comparison row.
pub const NGINX: &str = "nginx";

/// Plain-text tables, at most 120 columns wide for the usual topology names.
pub fn terminal_tables(results: &Results) -> String {
    if crate::shapes::is_multi(results) {
        return terminal_shapes(results);
    }
    let mut out = String::new();
    out.push_str(&wrap(
        &format!(
            "{} {} — {}",
            results.tool.name,
            results.tool.version,
            views::environment_line(results)
        ),
        WIDTH,
        "",
    ));
    if !results.capacity.is_empty() {
        out.push_str("\nCapacity (closed loop, every connection back to back)\n");
        out.push_str(&views::capacity_table(results).plain("  "));
    }
    if let Some(low) = results
        .calibration
        .iter()
        .min_by(|a, b| a.ceiling_rps.total_cmp(&b.ceiling_rps))
    {
        let each: Vec<String> = results
            .calibration
            .iter()
            .map(|c| format!("{} {} req/s", c.topology, units::fmt_rps(c.ceiling_rps)))
            .collect();
        out.push('\n');
        out.push_str(&wrap(
            &format!(
                "Clean-rate ceiling: {} req/s, the lowest of {} (machine < {:.0} % busy, busiest \
                 load generator thread < {:.0} %; {}); the rates are shares of it",
                units::fmt_rps(low.ceiling_rps),
                each.join(", "),
                results.thresholds.machine_busy * 100.0,
                results.thresholds.loadgen_thread_busy * 100.0,
                low.note
            ),
            WIDTH,
            "",
        ));
    }
    for rate in &results.rates_rps {
        let cells = digest::cells_at(results, *rate);
        if cells.is_empty() {
            continue;
        }
        let rounds = cells.iter().map(|c| c.rounds).max().unwrap_or(0);
        out.push_str(&format!(
            "\nAt {} — latency, corrected for coordinated omission (median of {} round{})\n",
            views::rate_mark(results.is_clean(*rate), *rate),
            rounds,
            if rounds == 1 { "" } else { "s" }
        ));
        out.push_str(&views::latency_table(&cells).plain("  "));
        out.push('\n');
        out.push_str(&format!(
            "At {} — CPU and peak memory (PSS; total = every process but the load generator)\n",
            views::rate_mark(results.is_clean(*rate), *rate)
        ));
        out.push_str(&views::resource_table(results, &cells).plain("  "));
    }
    let rows = views::summary_rows(results);
    if !rows.is_empty() {
        let base = rows[0].baseline.clone();
        out.push('\n');
        out.push_str(&wrap(
            &format!(
                "Added cost against {base}: Hodges–Lehmann estimate [{}] over rounds; n.s. = not \
                 significant, (noise) = inside the A/A noise floor, ⚑ = flagged rate (no latency \
                 claim)",
                interval_label(&rows)
            ),
            WIDTH,
            "",
        ));
        out.push_str(&views::added_latency_table(&rows).plain("  "));
        out.push('\n');
        out.push_str(&views::added_resources_table(&rows).plain("  "));
    }
    let versus = crate::versus::versus_rows(results);
    if !versus.is_empty() {
        out.push('\n');
        out.push_str(&wrap(
            &format!(
                "Ours head to head: {OURS} (or {OURS}-<variant> against <proxy>-<variant>) − \
                 the other proxy, paired per round (the same exact intervals); negative = ours costs less; n.s. = cannot be told apart"
            ),
            WIDTH,
            "",
        ));
        out.push_str(&crate::versus::versus_table(&versus).plain("  "));
    }
    if let Some(line) = views::memory_line(results) {
        out.push('\n');
        out.push_str(&wrap(&line, WIDTH, "  "));
    }
    if !results.noise_floor.is_empty() {
        out.push('\n');
        out.push_str(&wrap(
            &format!(
                "Noise floor: {} against itself (it runs twice a round); a cost inside it is not \
                 measurable",
                results.noise_floor[0].topology
            ),
            WIDTH,
            "",
        ));
        out.push_str(&views::noise_table(results).plain("  "));
    }
    if results
        .results
        .iter()
        .any(|t| !t.loadgen.timestamps.is_empty())
    {
        out.push('\n');
        out.push_str(&wrap(
            "The load generator's own share: send lag is in the corrected latency; read delay \
             is in none (arrival = kernel timestamp)",
            WIDTH,
            "",
        ));
        out.push_str(&views::loadgen_table(results).plain("  "));
    }
    if !results.warnings.is_empty() {
        out.push_str("\nWarnings\n");
        for w in &results.warnings {
            out.push_str(&wrap(&format!("! {w}"), WIDTH, "  "));
        }
    }
    out.push('\n');
    out.push_str(&wrap(&headline(results), WIDTH, ""));
    out
}

/// `96.9 %`, or `95 %` when the level is not known.
pub fn level_label(level: f64) -> String {
    if level.is_finite() && level > 0.0 {
        format!("{:.1} %", level * 100.0)
    } else {
        "95 %".to_string()
    }
}

/// What the intervals of `rows` are: `exact 96.9 % interval`, or why there are none.
pub fn interval_label(rows: &[SummaryRow]) -> String {
    let with: Vec<&SummaryRow> = rows
        .iter()
        .filter(|r| r.added_cpu_us_per_request.ci.is_some())
        .collect();
    match with.first() {
        Some(r) => format!(
            "exact {} interval",
            level_label(r.added_cpu_us_per_request.level)
        ),
        None => format!(
            "no interval: {} rounds are too few for 95 % (6 needed)",
            rows.first().map_or(0, |r| r.rounds)
        ),
    }
}

/// A multi-shape run: each shape's tables under its heading, then the shapes side by side.
fn terminal_shapes(results: &Results) -> String {
    let mut out = wrap(
        &format!(
            "{} {} — {}",
            results.tool.name,
            results.tool.version,
            crate::shapes::environment_line(results)
        ),
        WIDTH,
        "",
    );
    for s in &results.shapes {
        let heading = crate::shapes::heading(s);
        out.push_str(&format!(
            "\n{heading}\n{}\n",
            "═".repeat(heading.chars().count())
        ));
        let body = terminal_tables(&s.results);
        // The shape's own environment line repeats the run's: skip it.
        let body = body
            .split_once("\n\n")
            .map_or(body.as_str(), |(_, rest)| rest);
        out.push('\n');
        out.push_str(body);
    }
    out.push_str("\nThe shapes side by side (each at its highest clean rate)\n");
    out.push_str(&crate::shapes::table(results).plain("  "));
    if !results.warnings.is_empty() {
        out.push_str("\nWarnings\n");
        for w in &results.warnings {
            out.push_str(&wrap(&format!("! {w}"), WIDTH, "  "));
        }
    }
    out.push('\n');
    out.push_str(&wrap(&results.headline, WIDTH, ""));
    out
}

/// Widest line [`terminal_tables`] aims for.
pub const WIDTH: usize = 120;

/// Word-wraps `text` to `width` columns; every line gets `indent`, continuation lines two more spaces.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::from(indent);
    let mut empty = true;
    for word in text.split_whitespace() {
        let len = line.chars().count();
        if !empty && len + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = format!("{indent}  ");
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// The rate the headline speaks for: the highest clean rate with a row for `topology`.
fn headline_row<'a>(rows: &'a [SummaryRow], topology: &str) -> Option<&'a SummaryRow> {
    rows.iter()
        .filter(|r| r.topology == topology && r.clean)
        .max_by(|a, b| a.rate_rps.total_cmp(&b.rate_rps))
}

/// One cost in prose: `+35 µs at p50`, or why there is no number to state.
fn phrase(e: &Estimate, fmt: fn(f64) -> String, unit: &str, what: &str) -> String {
    let value = format!("{} {unit}{what}", units::signed(e.estimate, fmt));
    if e.ci.is_none() {
        value
    } else if !e.significant {
        format!("no measurable cost{what} (not significant)")
    } else if !e.measurable {
        let floor = e
            .noise_floor
            .map_or(String::new(), |f| format!(" ±{} {unit}", fmt(f)));
        format!("no measurable cost{what} (inside the{floor} noise floor)")
    } else {
        value
    }
}

fn costs(r: &SummaryRow) -> String {
    let l = &r.added_latency_us;
    let mb = r.added_pss_bytes.scaled(1.0 / units::BYTES_PER_MB);
    format!(
        "{}, {}, {} and {}",
        phrase(
            &r.added_vcpu_per_1000_rps,
            fmt_vcpu,
            "vCPU per 1000 req/s",
            ""
        ),
        phrase(&mb, fmt_mb, "MB", " of memory (PSS)"),
        phrase(&l.p50, fmt_us, "µs", " at p50"),
        phrase(&l.p99, fmt_us, "µs", " at p99"),
    )
}

fn noise_note(results: &Results, rate: f64) -> String {
    let Some(n) = results
        .noise_floor
        .iter()
        .find(|n| crate::model::same_rate(n.rate_rps, rate))
    else {
        return String::new();
    };
    match (n.p50_us.noise_floor, n.cpu_us_per_request.noise_floor) {
        (Some(p), Some(c)) => format!(
            "; A/A noise floor ±{} µs at p50, ±{} µs CPU per request",
            fmt_us(p),
            units::fmt_cpu(c)
        ),
        _ => String::new(),
    }
}

/// One paragraph with the proxy's cost against the baseline at the highest clean rate;
/// compares with NGINX when an `nginx` topology ran.
pub fn headline(results: &Results) -> String {
    if crate::shapes::is_multi(results) {
        return crate::shapes::headline(results);
    }
    let rows = views::summary_rows(results);
    let ours = if rows.iter().any(|r| r.topology == OURS) {
        OURS.to_string()
    } else if let Some(r) = rows.iter().find(|r| r.topology != NGINX).or(rows.first()) {
        r.topology.clone()
    } else {
        return "No proxied topology was measured against a baseline: no proxy cost to report."
            .to_string();
    };
    let Some(row) = headline_row(&rows, &ours) else {
        let flagged: Vec<String> = results
            .rate_checks
            .iter()
            .filter(|c| !c.clean)
            .map(|c| views::rate_label(c.rate_rps))
            .collect();
        return format!(
            "No clean rate: every rate with a row for {ours} was flagged ({}), so the bench makes \
             no claim; see the warnings, and run at lower rates.",
            flagged.join(", ")
        );
    };
    // A topology without a proxy process (e.g. the app against a bare server) is not
    // "behind" anything: say what it costs over its baseline instead.
    let has_proxy = results
        .results
        .iter()
        .any(|t| t.topology == ours && t.process(crate::model::roles::PROXY).is_some());
    let who = if ours == OURS {
        "Behind this proxy, my service pays".to_string()
    } else if has_proxy {
        format!("Behind {ours}, my service pays")
    } else {
        format!("Over {}, {ours} costs", row.baseline)
    };
    let e = &row.added_cpu_us_per_request;
    let mut s = format!(
        "{who} {}{}: {} vs {} at {}, the highest clean rate ({} round{}{}{}).",
        if e.ci.is_none() { "about " } else { "" },
        costs(row),
        row.topology,
        row.baseline,
        views::rate_label(row.rate_rps),
        row.rounds,
        if row.rounds == 1 { "" } else { "s" },
        if e.ci.is_some() {
            format!(", exact {} intervals", level_label(e.level))
        } else {
            ": too few for an interval, so none of these is a finding; run 6 or more".to_string()
        },
        noise_note(results, row.rate_rps),
    );
    if ours != NGINX {
        let nginx = rows
            .iter()
            .find(|r| r.topology == NGINX && units_same_rate(r.rate_rps, row.rate_rps));
        if let Some(n) = nginx {
            s.push_str(&format!(" Behind NGINX it pays {}.", costs(n)));
            let head_to_head = crate::versus::versus_rows(results).into_iter().find(|v| {
                v.topology == ours && v.other == NGINX && units_same_rate(v.rate_rps, row.rate_rps)
            });
            if let Some(v) = head_to_head {
                let cpu = crate::versus::verdict(
                    &v.cpu_us_per_request,
                    units::fmt_cpu,
                    "µs",
                    "CPU per request",
                    "NGINX",
                );
                let p50 = crate::versus::verdict(&v.p50_us, fmt_us, "µs", "p50 latency", "NGINX");
                s.push_str(&format!(
                    " Head to head at {} (paired per round), ours costs {cpu}, and adds {p50}.",
                    views::rate_label(row.rate_rps)
                ));
            }
        }
    }
    s
}

fn units_same_rate(a: f64, b: f64) -> bool {
    crate::model::same_rate(a, b)
}
