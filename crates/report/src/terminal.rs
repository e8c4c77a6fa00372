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
    for rate in &results.rates_rps {
        let cells = digest::cells_at(results, *rate);
        if cells.is_empty() {
            continue;
        }
        let rounds = cells.iter().map(|c| c.rounds).max().unwrap_or(0);
        out.push_str(&format!(
            "\nAt {} — latency, corrected for coordinated omission (median of {} round{})\n",
            views::rate_label(*rate),
            rounds,
            if rounds == 1 { "" } else { "s" }
        ));
        out.push_str(&views::latency_table(&cells).plain("  "));
        out.push('\n');
        out.push_str(&format!(
            "At {} — CPU and peak memory (total = every process but the load generator)\n",
            views::rate_label(*rate)
        ));
        out.push_str(&views::resource_table(results, &cells).plain("  "));
    }
    let rows = views::summary_rows(results);
    if !rows.is_empty() {
        let base = rows[0].baseline.clone();
        out.push_str(&format!(
            "\nAdded cost against {base}: median [95% CI] over rounds; n.s. = not significant\n"
        ));
        out.push_str(&views::added_latency_table(&rows).plain("  "));
        out.push('\n');
        out.push_str(&views::added_resources_table(&rows).plain("  "));
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

/// The rate the headline speaks for: the highest at which `topology` and the
/// baseline both held the rate, else the highest with a row.
fn headline_row<'a>(
    results: &Results,
    rows: &'a [SummaryRow],
    topology: &str,
) -> Option<&'a SummaryRow> {
    let held = |r: &SummaryRow| {
        [&r.topology, &r.baseline]
            .iter()
            .all(|t| digest::cell(results, t, r.rate_rps).is_none_or(|c| c.rate_held))
    };
    let candidates: Vec<&SummaryRow> = rows.iter().filter(|r| r.topology == topology).collect();
    let highest = |rs: &[&'a SummaryRow]| {
        rs.iter()
            .copied()
            .max_by(|a, b| a.rate_rps.total_cmp(&b.rate_rps))
    };
    let held_rows: Vec<&SummaryRow> = candidates.iter().copied().filter(|r| held(r)).collect();
    highest(&held_rows).or_else(|| highest(&candidates))
}

fn ns(e: &Estimate) -> &'static str {
    if e.significant || !units::has_interval(e) {
        ""
    } else {
        " (n.s.)"
    }
}

fn costs(r: &SummaryRow) -> String {
    let l = &r.added_latency_us;
    let mb = units::scale(&r.added_rss_bytes, 1.0 / units::BYTES_PER_MB);
    format!(
        "{} vCPU per 1000 req/s{}, {} MB{}, and {} µs at p50{} / {} µs at p99{}",
        fmt_vcpu(r.added_vcpu_per_1000_rps.median),
        ns(&r.added_vcpu_per_1000_rps),
        fmt_mb(mb.median),
        ns(&mb),
        fmt_us(l.p50.median),
        ns(&l.p50),
        fmt_us(l.p99.median),
        ns(&l.p99),
    )
}

/// One sentence with the proxy's cost against the baseline; compares with NGINX
/// when an `nginx` topology ran.
pub fn headline(results: &Results) -> String {
    let rows = views::summary_rows(results);
    let ours = if rows.iter().any(|r| r.topology == OURS) {
        OURS.to_string()
    } else if let Some(r) = rows.iter().find(|r| r.topology != NGINX).or(rows.first()) {
        r.topology.clone()
    } else {
        return "No proxied topology was measured against a baseline: no proxy cost to report."
            .to_string();
    };
    let Some(row) = headline_row(results, &rows, &ours) else {
        return "No proxied topology was measured against a baseline: no proxy cost to report."
            .to_string();
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
    let mut s = format!(
        "{who} {}: {} vs {} at {} (median of {} round{}",
        costs(row),
        row.topology,
        row.baseline,
        views::rate_label(row.rate_rps),
        row.rounds,
        if row.rounds == 1 { "" } else { "s" },
    );
    let estimates = [
        &row.added_vcpu_per_1000_rps,
        &row.added_rss_bytes,
        &row.added_latency_us.p50,
        &row.added_latency_us.p99,
    ];
    s.push_str(if estimates.iter().any(|e| !units::has_interval(e)) {
        "; too few rounds for confidence intervals)."
    } else if estimates.iter().any(|e| !e.significant) {
        "; n.s. = not significant at 95%)."
    } else {
        ")."
    });
    if ours != NGINX {
        let nginx = rows
            .iter()
            .find(|r| r.topology == NGINX && units_same_rate(r.rate_rps, row.rate_rps));
        if let Some(n) = nginx {
            s.push_str(&format!(" Behind NGINX it pays {}.", costs(n)));
            let d = row.added_cpu_us_per_request.median - n.added_cpu_us_per_request.median;
            let verdict = if d.abs() < 0.05 * n.added_cpu_us_per_request.median.abs().max(1.0) {
                "about the same CPU as NGINX".to_string()
            } else if d < 0.0 {
                format!("{} µs less CPU per request than NGINX", units::fmt_cpu(-d))
            } else {
                format!("{} µs more CPU per request than NGINX", units::fmt_cpu(d))
            };
            s.push_str(&format!(
                " Ours uses {verdict} at {}.",
                views::rate_label(row.rate_rps)
            ));
        }
    }
    s
}

fn units_same_rate(a: f64, b: f64) -> bool {
    crate::model::same_rate(a, b)
}
