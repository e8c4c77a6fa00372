//! The renderings carry the real content: every topology and rate, units, n.s. marks,
//! the noise floor and the load generator's share, a self-contained HTML page with SVG
//! charts, and a comparison of two runs.

mod common;

use report::model::{Results, SCHEMA_VERSION};
use report::units::{fmt_vcpu, signed};
use report::CompareOptions;

/// Three topologies, two rates, six rounds (enough for exact 96.9 % intervals), the
/// baseline twice a round.
fn three() -> Results {
    common::Fake::new(&["direct", "proxied", "nginx"], &[1000.0, 4000.0], 6, 11)
        .warning("loadgen: 3 sends more than 1 ms late at 4000 req/s (proxied, round 1)")
        .build()
}

fn rate_labels(r: &Results) -> Vec<String> {
    r.rates_rps
        .iter()
        .map(|x| format!("{x:.0} req/s"))
        .collect()
}

/// Makes one summary estimate not significant, as a real run with overlapping rounds would.
fn with_not_significant(mut r: Results) -> Results {
    let e = &mut r.summary[0].added_pss_bytes;
    e.estimate = 120_000.0;
    e.ci = Some([-300_000.0, 500_000.0]);
    e.significant = false;
    e.measurable = false;
    r
}

#[test]
fn terminal_tables_show_every_topology_rate_and_unit_within_120_columns() {
    let r = with_not_significant(three());
    let s = report::terminal_tables(&r);
    for t in r.topologies() {
        assert!(s.contains(&t), "missing topology {t}:\n{s}");
    }
    for l in rate_labels(&r) {
        assert!(s.contains(&format!("At {l}")), "missing rate {l}:\n{s}");
    }
    for unit in [
        "p50 µs",
        "p99.9 µs",
        "µs/req",
        "vCPU/1k rps",
        "PSS MB",
        "added p99 µs",
        "added PSS MB",
        "send lag p50 µs",
        "busiest thread",
    ] {
        assert!(s.contains(unit), "missing {unit}:\n{s}");
    }
    assert!(s.contains("n.s."), "an n.s. estimate must be marked:\n{s}");
    assert!(
        s.contains("+0.1 [-0.3, 0.5] n.s."),
        "the n.s. estimate as estimate [low, high] n.s.:\n{s}"
    );
    assert!(
        s.contains("Hodges–Lehmann estimate [exact 96.9 % interval] over rounds"),
        "{s}"
    );
    assert!(
        s.contains("Noise floor: direct against itself (it runs twice a round)"),
        "{s}"
    );
    assert!(s.contains("Clean-rate ceiling: "), "{s}");
    assert!(!s.contains("req/s ⚑"), "no rate is flagged:\n{s}");
    for line in known_wide_lines_left_out(&s) {
        assert!(
            line.chars().count() <= 120,
            "line wider than 120 columns: {line:?}"
        );
    }
    assert!(s.contains("Behind this proxy"), "{s}");
}

/// The terminal output without the two parts that are wider than 120 columns today (a
/// bug in the report crate: the "Added cost against" legend is printed unwrapped, and the
/// load generator's table is 131 columns wide); see
/// [`every_terminal_line_fits_in_120_columns`].
fn known_wide_lines_left_out(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_loadgen = false;
    for line in s.lines() {
        if line.starts_with("The load generator's own share") {
            in_loadgen = true;
        } else if line.is_empty() {
            in_loadgen = false;
        }
        if !in_loadgen && !line.starts_with("Added cost against ") {
            out.push(line);
        }
    }
    out
}

#[test]
fn every_terminal_line_fits_in_120_columns() {
    let s = report::terminal_tables(&three());
    let wide: Vec<&str> = s.lines().filter(|l| l.chars().count() > 120).collect();
    assert!(
        wide.is_empty(),
        "lines wider than 120 columns:\n{}",
        wide.join("\n")
    );
}

#[test]
fn headline_states_the_cost_and_compares_with_nginx() {
    let r = three();
    let h = report::headline(&r);
    assert!(h.starts_with("Behind this proxy, my service pays "), "{h}");
    for part in [
        "vCPU per 1000 req/s",
        " MB",
        "µs at p50",
        "µs at p99",
        "4000 req/s",
        "NGINX",
    ] {
        assert!(h.contains(part), "missing {part:?} in {h}");
    }
    let row = r
        .summary
        .iter()
        .find(|s| s.topology == "proxied" && s.rate_rps == 4000.0)
        .unwrap();
    let vcpu = format!(
        "pays {} vCPU per 1000 req/s",
        signed(row.added_vcpu_per_1000_rps.estimate, fmt_vcpu)
    );
    assert!(h.contains(&vcpu), "expected {vcpu} in {h}");
    assert!(
        h.contains("the highest clean rate (6 rounds, exact 96.9 % intervals"),
        "{h}"
    );
    assert!(h.contains("µs more CPU per request than NGINX"), "{h}");
    assert_eq!(h, r.headline, "the stored headline is the rendered one");

    let alone = common::fake_results(&["direct", "proxied"], &[1000.0], 6, 1);
    let h = report::headline(&alone);
    assert!(
        h.starts_with("Behind this proxy") && !h.contains("NGINX"),
        "{h}"
    );

    let direct_only = common::fake_results(&["direct"], &[1000.0], 2, 1);
    assert_eq!(
        report::headline(&direct_only),
        "No proxied topology was measured against a baseline: no proxy cost to report."
    );
}

#[test]
fn headline_marks_a_not_significant_latency() {
    let mut r = common::fake_results(&["direct", "proxied"], &[1000.0], 6, 1);
    let p50 = &mut r.summary[0].added_latency_us.p50;
    p50.significant = false;
    p50.measurable = false;
    let h = report::headline(&r);
    assert!(
        h.contains("(PSS), no measurable cost at p50 (not significant) and +"),
        "{h}"
    );
}

#[test]
fn summary_markdown_has_environment_tables_comparison_and_warnings() {
    let r = with_not_significant(three());
    let md = report::summary_markdown(&r);
    assert!(
        md.contains("_Environment:_ bench-host (2 vCPU, AMD EPYC 7B13, 8.6 GB RAM)"),
        "{md}"
    );
    assert!(md.contains("nginx 1.22.1"), "{md}");
    assert!(md.contains("dev build"), "{md}");
    assert!(md.contains("6 rounds of 10 s (+3.0 s warm-up)"), "{md}");
    for l in rate_labels(&r) {
        assert!(md.contains(&format!("## At {l}")), "missing {l}");
    }
    for t in r.topologies() {
        assert!(md.contains(&format!("| {t} ")), "missing row for {t}");
    }
    for col in [
        "p99.9 µs",
        "app CPU µs/req",
        "proxy CPU µs/req",
        "total CPU µs/req",
        "vCPU per 1000 rps",
        "proxy peak PSS MB",
        "total RssAnon MB",
        "added p50 µs",
        "added PSS MB",
        "added RssAnon MB",
        "proxy internal p50 µs",
        "send lag p50 µs",
        "read delay p50 µs",
    ] {
        assert!(md.contains(col), "missing column {col}");
    }
    assert!(md.contains("## Added cost against `direct`"), "{md}");
    assert!(
        md.contains("+0.1 [-0.3, 0.5] n.s."),
        "the n.s. estimate as estimate [low, high] n.s.:\n{md}"
    );
    assert!(md.contains("## Noise floor (A/A)"), "{md}");
    assert!(md.contains("## The load generator's own share"), "{md}");
    assert!(md.contains(&format!("- {}\n", r.warnings[0])), "{md}");
    assert!(md.contains("| ---"), "markdown tables");
}

#[test]
fn summary_markdown_says_what_was_not_covered() {
    let mut r = common::Fake::new(&["direct", "proxied"], &[1000.0], 2, 1)
        .not_held(1000.0, "proxied", 0)
        .raw();
    r.scenario.topologies.push("nginx".to_string());
    r.complete = false;
    common::finish(&mut r);
    let md = report::summary_markdown(&r);
    assert!(md.contains("not covered: the run did not complete"), "{md}");
    assert!(md.contains("topologies not run: nginx"), "{md}");
    assert!(md.contains("rate not held: proxied at 1000 req/s"), "{md}");
    assert!(
        md.contains("- the run did not complete: these are partial results\n"),
        "{md}"
    );
}

#[test]
fn html_is_self_contained_with_svg_charts_and_every_topology_and_rate() {
    let r = with_not_significant(three());
    let page = report::html(&r);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.trim_end().ends_with("</html>"));
    for needle in [
        "http://", "https://", "<script", "<link", "src=", "href=", "@import", "url(",
    ] {
        assert!(
            !page.contains(needle),
            "report.html must not reference {needle:?}"
        );
    }
    for t in r.topologies() {
        assert!(
            page.contains(&format!("<td>{t}</td>")),
            "missing table row for {t}"
        );
        assert!(
            page.contains(&format!(">{t}</text>")),
            "missing chart legend for {t}"
        );
    }
    for l in rate_labels(&r) {
        assert!(
            page.contains(&format!("Latency by percentile at {l}")),
            "missing spectrum for {l}"
        );
        assert!(page.contains(&format!("At {l}")), "missing table for {l}");
    }
    let svgs = page.matches("<svg").count();
    // 4 added-cost charts, one spectrum per rate, CPU, memory, throughput.
    assert_eq!(svgs, 4 + r.rates_rps.len() + 3, "svg charts");
    assert_eq!(svgs, page.matches("</svg>").count());
    assert!(page.contains("<path d=\"M"), "lines drawn");
    assert!(page.contains("<rect"), "bars drawn");
    assert!(page.contains(">99.9%</text>"), "nines axis labelled");
    assert!(page.contains("class=\"num ns\""), "n.s. cells marked");
    assert!(page.contains(">n.s.</text>"), "n.s. bars marked");
    assert!(
        page.contains("<h2>Noise floor (A/A)</h2>"),
        "noise floor table"
    );
    assert!(
        page.contains("<h2>The load generator's own share</h2>"),
        "load generator table"
    );
    assert!(
        page.contains("results schema v2"),
        "footer names the schema"
    );
}

#[test]
fn html_escapes_names() {
    let mut r = common::fake_results(&["direct", "proxied"], &[1000.0], 2, 1);
    for t in &mut r.results {
        if t.topology == "proxied" {
            t.topology = "<b>x&y</b>".to_string();
        }
    }
    r.scenario.topologies[1] = "<b>x&y</b>".to_string();
    r.summary = report::summary::summarize(&r);
    let page = report::html(&r);
    assert!(!page.contains("<b>x"), "raw markup leaked");
    assert!(page.contains("&lt;b&gt;x&amp;y&lt;/b&gt;"));
}

#[test]
fn write_all_writes_three_files_that_load_back() {
    let dir = std::env::temp_dir().join(format!("report-test-{}", std::process::id()));
    let r = three();
    let paths = report::write_all(&r, &dir).unwrap();
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["results.json", "summary.md", "report.html"]);
    assert_eq!(report::load(&paths[0]).unwrap(), r);
    let json = std::fs::read_to_string(&paths[0]).unwrap();
    assert!(json.contains("\n  \"schema_version\": 2,"), "pretty JSON");

    let mut bad: serde_json::Value = serde_json::from_str(&json).unwrap();
    bad["schema_version"] = serde_json::Value::from(SCHEMA_VERSION + 1);
    let other = dir.join("other.json");
    std::fs::write(&other, bad.to_string()).unwrap();
    let err = report::load(&other).unwrap_err().to_string();
    assert!(
        err.contains("results schema_version 3, but this bench reads version 2"),
        "{err}"
    );

    std::fs::write(&other, "{\"hello\": 1}").unwrap();
    assert!(report::load(&other)
        .unwrap_err()
        .to_string()
        .contains("no schema_version"));
    let missing = report::load(dir.join("absent.json"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("could not read"), "{missing}");

    let mut nan = three();
    nan.results[0].achieved_rps = f64::NAN;
    let err = report::write_all(&nan, &dir.join("nan"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("NaN"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn summarize_pairs_rounds_against_the_mean_of_the_two_baseline_runs() {
    let r = three();
    let row = &r.summary[0];
    assert_eq!(
        (row.topology.as_str(), row.baseline.as_str(), row.rounds),
        ("proxied", "direct", 6)
    );
    assert!(row.clean);
    let first: Vec<f64> = r
        .trials("direct", row.rate_rps)
        .map(|t| t.latency_us.p50)
        .collect();
    let second: Vec<f64> = r
        .replicates("direct", row.rate_rps)
        .map(|t| t.latency_us.p50)
        .collect();
    assert_eq!((first.len(), second.len()), (6, 6));
    let xs: Vec<f64> = first
        .iter()
        .zip(&second)
        .map(|(a, b)| (a + b) / 2.0)
        .collect();
    let ys: Vec<f64> = r
        .trials("proxied", row.rate_rps)
        .map(|t| t.latency_us.p50)
        .collect();
    let floor = common::noise_row(&r, row.rate_rps).p50_us.noise_floor;
    assert!(floor.is_some());
    let expected = report::stats::against_floor(report::stats::paired(&xs, &ys), floor);
    assert_eq!(row.added_latency_us.p50, expected);
    assert_eq!(row.added_latency_us.p50.method, "wilcoxon-signed-rank");
    assert_eq!(row.added_latency_us.p50.n, 6);
    // Against the first baseline run alone the estimate would differ.
    assert_ne!(
        report::stats::paired(&first, &ys).estimate,
        row.added_latency_us.p50.estimate
    );

    assert!(row.proxy_cpu_us_per_request.is_some() && row.proxy_internal_p50_us.is_some());
    let cpu = &row.added_cpu_us_per_request;
    let vcpu = &row.added_vcpu_per_1000_rps;
    assert!((vcpu.estimate - cpu.estimate / 1000.0).abs() < 1e-12);
    assert!((vcpu.noise_floor.unwrap() - cpu.noise_floor.unwrap() / 1000.0).abs() < 1e-12);
    assert_eq!(
        (vcpu.significant, vcpu.measurable),
        (cpu.significant, cpu.measurable)
    );
    assert!(
        (cpu.estimate - 31.0).abs() < 1.5,
        "fake proxied adds 31 µs/req, got {}",
        cpu.estimate
    );
    assert!(cpu.significant && cpu.measurable, "{cpu:?}");
    let pss = row.added_pss_bytes.estimate;
    assert!(
        (pss - 14.0e6).abs() < 0.5e6,
        "fake proxied adds 14 MB, got {pss}"
    );
    let anon = row.added_anon_bytes.estimate;
    assert!(
        (anon - 6.0e6).abs() < 0.5e6,
        "fake proxied adds 6 MB anon, got {anon}"
    );
    let proxy_pss = row.proxy_pss_bytes.unwrap();
    assert!((proxy_pss - 14.0e6).abs() < 0.2e6, "{proxy_pss}");
    let internal = row.proxy_internal_p50_us.unwrap();
    assert!((internal - 0.6 * 62.0).abs() < 2.0, "{internal}");
}

#[test]
fn compare_flags_real_changes_and_not_noise() {
    let a = three();
    let same = report::compare(&a, &a, &CompareOptions::default())
        .unwrap()
        .text;
    assert!(
        same.contains("0 of 46 comparisons changed significantly"),
        "identical runs change nothing:\n{same}"
    );
    assert!(
        !same.contains("worse") && !same.contains("better"),
        "{same}"
    );
    assert!(
        same.contains("exact Mann–Whitney interval (level 95.9 %)"),
        "{same}"
    );

    let mut b = common::fake_results(&["direct", "proxied", "nginx"], &[1100.0, 4400.0], 6, 12);
    for t in &mut b.results {
        if t.topology == "proxied" {
            t.latency_us.p50 += 100.0;
        }
    }
    let by_position = CompareOptions {
        by_position: true,
        ..CompareOptions::default()
    };
    let s = report::compare(&a, &b, &by_position).unwrap().text;
    assert!(s.contains("1000→1100"), "rates matched by position:\n{s}");
    let line = s
        .lines()
        .find(|l| l.contains("1000→1100") && l.contains("proxied") && l.contains("p50 µs"))
        .expect("a proxied p50 row");
    assert!(line.trim_end().ends_with("worse"), "{line}");
    for line in s.lines() {
        assert!(line.chars().count() <= 120, "too wide: {line}");
    }
}

#[test]
fn a_single_round_says_there_is_no_interval() {
    let r = common::fake_results(&["direct", "proxied"], &[2000.0], 1, 5);
    let s = report::terminal_tables(&r);
    assert!(s.contains("(no CI: 1 rounds)"), "{s}");
    assert!(
        s.contains("no interval: 1 rounds are too few for 95 % (6 needed)"),
        "{s}"
    );
    assert!(
        !s.contains("] n.s."),
        "one round is not 'not significant', it has no interval:\n{s}"
    );
    let h = report::headline(&r);
    assert!(
        h.contains(
            "(1 round: too few for an interval, so none of these is a finding; run 6 or more"
        ),
        "{h}"
    );
    assert!(
        h.starts_with("Behind this proxy, my service pays about +"),
        "{h}"
    );
    assert!(
        r.warnings[0].starts_with("1 round(s) give no 95 % interval"),
        "{:?}",
        r.warnings
    );
    let page = report::html(&r);
    assert!(page.contains("(no CI: 1 rounds)"));
    assert_eq!(page.matches("<svg").count(), 4 + 1 + 3);
}

#[test]
fn headline_prefers_the_highest_rate_that_held() {
    let r = common::fake_results(&["direct", "proxied"], &[1000.0, 4000.0], 6, 2);
    assert!(
        r.headline.contains("at 4000 req/s, the highest clean rate"),
        "{}",
        r.headline
    );
    let r = common::Fake::new(&["direct", "proxied"], &[1000.0, 4000.0], 6, 2)
        .not_held(4000.0, "proxied", 3)
        .build();
    let h = report::headline(&r);
    assert!(
        h.contains("at 1000 req/s, the highest clean rate") && !h.contains("4000"),
        "{h}"
    );
    assert_eq!(
        r.rate_checks[1].reasons,
        ["rate not held in proxied round 4"],
        "{:?}",
        r.rate_checks
    );
}
