//! `summary.md`: the run's tables in GitHub-flavoured Markdown, for a pull request or a post.

use crate::digest;
use crate::model::Results;
use crate::terminal::headline;
use crate::views;

/// The whole summary: headline, environment, per-rate tables, comparison, capacity, warnings.
pub fn summary_markdown(results: &Results) -> String {
    if crate::shapes::is_multi(results) {
        return markdown_shapes(results);
    }
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
         total µs/req ÷ 1000. Memory is peak PSS (proportional set size: pages shared between \
         processes divided among them), MB (10⁶ bytes); RssAnon is what Datadog's docker.mem.rss \
         shows. Each figure is the median over rounds. ⚑ marks a flagged rate (a trial crossed \
         a busy threshold): shown, but no latency claim is made there.\n\n",
    );
    for rate in &results.rates_rps {
        let cells = digest::cells_at(results, *rate);
        if cells.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "## At {}\n\n",
            views::rate_mark(results.is_clean(*rate), *rate)
        ));
        out.push_str(&views::wide_table(results, &cells).markdown());
        out.push('\n');
    }
    let rows = views::summary_rows(results);
    if !rows.is_empty() {
        out.push_str(&format!(
            "## Added cost against `{}`\n\nThe Hodges–Lehmann estimate of the paired per-round \
             difference with its exact Wilcoxon signed-rank interval, `estimate [low, high]`, at \
             the level it really has ({}); **n.s.** marks an interval that spans zero, _(noise)_ a \
             significant difference inside the A/A noise floor: neither is a measurable cost. \
             _Proxy internal p50_ is the proxy's own p50 request time minus the app's, from their \
             metrics.\n\n",
            rows[0].baseline,
            crate::terminal::interval_label(&rows)
        ));
        out.push_str(&views::comparison_table(&rows).markdown());
        out.push('\n');
    }
    let versus = crate::versus::versus_rows(results);
    if !versus.is_empty() {
        out.push_str(
            "## Ours head to head

Our proxy minus each other proxy, paired per round (both \
             ran in the same round; a `<proxy>-<variant>` row against ours of the same variant, \
             `proxied-<variant>`, where the run has it, and a variant of ours against our \
             nearest shorter one: `proxied-tls-new` against `proxied-tls` prices a handshake), \
             with the same exact intervals: negative means ours costs \
             less; **n.s.** or _(noise)_ means the bench cannot tell the two apart.\n\n",
        );
        out.push_str(&crate::versus::versus_table(&versus).markdown());
        out.push('\n');
    }
    if let Some(line) = views::memory_line(results) {
        out.push_str(&format!("{line}.\n\n"));
    }
    if !results.noise_floor.is_empty() {
        out.push_str(
            "## Noise floor (A/A)\n\nThe baseline runs twice a round (first and last); the \
             larger bound of the exact interval of their difference is the instrument's own \
             noise per metric. A cost inside it reads \"not measurable\".\n\n",
        );
        out.push_str(&views::noise_table(results).markdown());
        out.push('\n');
    }
    if results
        .results
        .iter()
        .any(|t| !t.loadgen.timestamps.is_empty())
    {
        out.push_str(
            "## The load generator's own share\n\nArrival times are the kernel's receive \
             timestamps. _Send lag_ (actual − intended send, on a free connection) is the load \
             generator's part of the corrected latency; _read delay_ (user-space read − kernel \
             timestamp) is in no figure.\n\n",
        );
        out.push_str(&views::loadgen_table(results).markdown());
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

/// A multi-shape run: the shapes side by side, then each shape's summary one heading down.
fn markdown_shapes(results: &Results) -> String {
    let mut out = format!(
        "# {} results: scenario `{}`\n\n**{}**\n\n_Environment:_ {}\n\n",
        results.tool.name,
        results.scenario.name,
        headline(results),
        crate::shapes::environment_line(results)
    );
    out.push_str("## The shapes side by side\n\nEach shape at its highest clean rate.\n\n");
    out.push_str(&crate::shapes::table(results).markdown());
    out.push('\n');
    for s in &results.shapes {
        out.push_str(&format!("## {}\n\n", crate::shapes::heading(s)));
        let body = summary_markdown(&s.results);
        // Drop the shape's title line and demote its headings under this one.
        let body = body
            .split_once("\n\n")
            .map_or(body.as_str(), |(_, rest)| rest);
        out.push_str(&body.replace("\n## ", "\n### "));
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
