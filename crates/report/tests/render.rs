//! The renderings carry the real content: every topology and rate, units, n.s. marks,
//! a self-contained HTML page with SVG charts, and a comparison of two runs.

mod common;

use report::model::{Results, SCHEMA_VERSION};

fn three() -> Results {
    common::fake_results(&["direct", "proxied", "nginx"], &[1000.0, 4000.0], 3, 11)
}

fn rate_labels(r: &Results) -> Vec<String> {
    r.rates_rps
        .iter()
        .map(|x| format!("{x:.0} req/s"))
        .collect()
}

/// Makes one summary estimate not significant, as a real run with overlapping rounds would.
fn with_not_significant(mut r: Results) -> Results {
    let e = &mut r.summary[0].added_rss_bytes;
    e.median = 120_000.0;
    e.ci95 = [-300_000.0, 500_000.0];
    e.significant = false;
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
        "MB",
        "added p99 µs",
    ] {
        assert!(s.contains(unit), "missing {unit}:\n{s}");
    }
    assert!(s.contains("n.s."), "an n.s. estimate must be marked:\n{s}");
    for line in s.lines() {
        assert!(
            line.chars().count() <= 120,
            "line wider than 120 columns: {line:?}"
        );
    }
    assert!(s.contains("Behind this proxy"), "{s}");
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
    let vcpu = format!("{:.3} vCPU", row.added_vcpu_per_1000_rps.median);
    assert!(h.contains(&vcpu), "expected {vcpu} in {h}");

    let alone = common::fake_results(&["direct", "proxied"], &[1000.0], 3, 1);
    let h = report::headline(&alone);
    assert!(
        h.starts_with("Behind this proxy") && !h.contains("NGINX"),
        "{h}"
    );

    let direct_only = common::fake_results(&["direct"], &[1000.0], 2, 1);
    assert!(report::headline(&direct_only).contains("no proxy cost"));
}

#[test]
fn headline_marks_a_not_significant_latency() {
    let mut r = common::fake_results(&["direct", "proxied"], &[1000.0], 3, 1);
    r.summary[0].added_latency_us.p50.significant = false;
    assert!(report::headline(&r).contains("µs at p50 (n.s.)"));
}

#[test]
fn summary_markdown_has_environment_tables_comparison_and_warnings() {
    let r = with_not_significant(three());
    let md = report::summary_markdown(&r);
    assert!(
        md.contains("_Environment:_ bench-host (8 vCPU, AMD EPYC 7B13, 34.4 GB RAM)"),
        "{md}"
    );
    assert!(md.contains("nginx 1.22.1"), "{md}");
    assert!(md.contains("dev build"), "{md}");
    assert!(md.contains("3 rounds"), "{md}");
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
        "proxy peak RSS MB",
        "added p50 µs",
        "added MB",
    ] {
        assert!(md.contains(col), "missing column {col}");
    }
    assert!(md.contains("## Added cost against `direct`"), "{md}");
    assert!(
        md.contains("+0.1 [-0.3, 0.5] n.s."),
        "the n.s. estimate as median [low, high] n.s.:\n{md}"
    );
    assert!(md.contains(&r.warnings[0]));
    assert!(md.contains("| ---"), "markdown tables");
}

#[test]
fn summary_markdown_says_what_was_not_covered() {
    let mut r = common::fake_results(&["direct", "proxied"], &[1000.0], 2, 1);
    r.scenario.topologies.push("nginx".to_string());
    r.results[1].rate_held = false;
    r.complete = false;
    let md = report::summary_markdown(&r);
    assert!(md.contains("not covered: the run did not complete"), "{md}");
    assert!(md.contains("topologies not run: nginx"), "{md}");
    assert!(md.contains("rate not held: proxied at 1000 req/s"), "{md}");
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
    r.summary = report::summary::summarize(&r, 200);
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
    assert!(json.contains("\n  \"schema_version\": 1,"), "pretty JSON");

    let mut bad: serde_json::Value = serde_json::from_str(&json).unwrap();
    bad["schema_version"] = serde_json::Value::from(SCHEMA_VERSION + 1);
    let other = dir.join("other.json");
    std::fs::write(&other, bad.to_string()).unwrap();
    let err = report::load(&other).unwrap_err().to_string();
    assert!(
        err.contains("schema_version 2") && err.contains("reads version 1"),
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
fn summarize_pairs_rounds_and_uses_the_paired_bootstrap() {
    let r = three();
    let row = &r.summary[0];
    assert_eq!(
        (row.topology.as_str(), row.baseline.as_str(), row.rounds),
        ("proxied", "direct", 3)
    );
    let xs: Vec<f64> = r
        .trials("direct", row.rate_rps)
        .map(|t| t.latency_us.p50)
        .collect();
    let ys: Vec<f64> = r
        .trials("proxied", row.rate_rps)
        .map(|t| t.latency_us.p50)
        .collect();
    let expected = report::stats::bootstrap_ci_median_diff_paired(&xs, &ys, r.scenario.seed, 2000);
    assert_eq!(row.added_latency_us.p50, expected);
    assert!(row.proxy_cpu_us_per_request.is_some() && row.proxy_internal_p50_us.is_some());
    let cpu = row.added_cpu_us_per_request.median;
    assert!((row.added_vcpu_per_1000_rps.median - cpu / 1000.0).abs() < 1e-12);
    assert!(
        (25.0..40.0).contains(&cpu),
        "fake proxied adds ~31 µs/req, got {cpu}"
    );
}

#[test]
fn compare_flags_real_changes_and_not_noise() {
    let a = three();
    let same = report::compare(&a, &a);
    assert!(
        same.contains("0 of "),
        "identical runs change nothing:\n{same}"
    );
    assert!(
        !same.contains("worse") && !same.contains("better"),
        "{same}"
    );

    let mut b = common::fake_results(&["direct", "proxied", "nginx"], &[1100.0, 4400.0], 3, 12);
    for t in &mut b.results {
        if t.topology == "proxied" {
            t.latency_us.p50 += 100.0;
        }
    }
    let s = report::compare(&a, &b);
    assert!(s.contains("1000→1100"), "rates matched by position:\n{s}");
    let line = s
        .lines()
        .find(|l| l.contains("proxied") && l.contains("p50 µs"))
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
    assert!(s.contains("(no CI)"), "{s}");
    assert!(
        !s.contains("] n.s."),
        "one round is not 'not significant', it has no interval:\n{s}"
    );
    assert!(report::headline(&r).contains("too few rounds for confidence intervals"));
    let page = report::html(&r);
    assert!(page.contains("+69 (no CI)") || page.contains("(no CI)"));
    assert_eq!(page.matches("<svg").count(), 4 + 1 + 3);
}

#[test]
fn headline_prefers_the_highest_rate_that_held() {
    let mut r = common::fake_results(&["direct", "proxied"], &[1000.0, 4000.0], 3, 2);
    assert!(report::headline(&r).contains("at 4000 req/s"));
    for t in r
        .results
        .iter_mut()
        .filter(|t| t.rate_rps == 4000.0 && t.topology == "proxied")
    {
        t.rate_held = false;
    }
    let h = report::headline(&r);
    assert!(h.contains("at 1000 req/s") && !h.contains("4000"), "{h}");
}
