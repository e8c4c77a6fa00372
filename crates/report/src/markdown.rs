//! `summary.md`: the run's tables in GitHub-flavoured Markdown, for a pull request or a post.

use crate::digest;
use crate::model::Results;
use crate::terminal::headline;
use crate::views;

/// The whole summary: headline, environment, per-rate tables, comparison, capacity, warnings.
pub fn summary_markdown(results: &Results) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# {} results: scenario `{}`\n\n",
        results.tool.name, results.scenario.name
    ));
    out.push_str(&format!("**{}**\n\n", headline(results)));
    out.push_str(&format!(
        "_Environment:_ {}\n\n",
        views::environment_line(results)
    ));
    out.push_str(
        "Latency is measured from each request's intended send time (corrected for coordinated \
         omission), in µs. CPU is user + system time of each process tree over the measured window, \
         per completed request; _total_ is every process but the load generator. vCPU per 1000 rps = \
         total µs/req ÷ 1000. Memory is peak resident set size, MB (10⁶ bytes). Each figure is the \
         median over rounds.\n\n",
    );
    for rate in &results.rates_rps {
        let cells = digest::cells_at(results, *rate);
        if cells.is_empty() {
            continue;
        }
        out.push_str(&format!("## At {}\n\n", views::rate_label(*rate)));
        out.push_str(&views::wide_table(results, &cells).markdown());
        out.push('\n');
    }
    let rows = views::summary_rows(results);
    if !rows.is_empty() {
        out.push_str(&format!(
            "## Added cost against `{}`\n\nMedian over rounds of the paired per-round difference, \
             with its bootstrap 95% confidence interval as `median [low, high]`; **n.s.** marks a \
             difference whose interval spans zero (not significant). _Proxy internal p50_ is the \
             proxy's own p50 request time minus the app's, from their metrics.\n\n",
            rows[0].baseline
        ));
        out.push_str(&views::comparison_table(&rows).markdown());
        out.push('\n');
    }
    if !results.capacity.is_empty() {
        out.push_str("## Capacity (closed loop)\n\n");
        out.push_str(&views::capacity_table(results).markdown());
        out.push('\n');
    }
    out.push_str("## Warnings\n\n");
    if results.warnings.is_empty() {
        out.push_str("None.\n");
    } else {
        for w in &results.warnings {
            out.push_str(&format!("- {w}\n"));
        }
    }
    out
}
