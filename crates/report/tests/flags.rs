//! Saturated rates are flagged: `rate_checks` marks them, the warnings say why (rate,
//! trial, threshold), the tables mark them with ⚑, and the headline speaks for the
//! highest clean rate only.

mod common;

use common::Fake;
use report::model::{RateCheck, Results, Thresholds};

const RATES: [f64; 3] = [1000.0, 4000.0, 8000.0];

/// nginx in round 3 at the top rate had the machine 72 % busy.
fn top_rate_saturated() -> Results {
    Fake::new(&["direct", "proxied", "nginx"], &RATES, 6, 21)
        .machine_busy(8000.0, "nginx", 2, 0.72)
        .build()
}

const FLAGGED_8000: &str = "8000 req/s is flagged: the machine's CPUs were 72 % busy (nginx \
     round 3; threshold 50 %). Latency there includes waiting for a CPU; it is shown but not \
     used for latency claims (CPU per request is still measured)";

#[test]
fn the_fixture_stays_below_the_thresholds_unless_told() {
    let r = Fake::new(&["direct", "proxied", "nginx"], &RATES, 6, 21).build();
    assert!(r.rate_checks.iter().all(|c| c.clean), "{:?}", r.rate_checks);
    assert!(r.summary.iter().all(|s| s.clean));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let busiest = r.results.iter().map(|t| t.machine_busy).fold(0.0, f64::max);
    assert!(busiest > 0.2 && busiest < 0.5, "{busiest}");
}

#[test]
fn rate_checks_flag_the_saturated_rate_only() {
    let r = top_rate_saturated();
    assert_eq!(
        r.rate_checks,
        vec![
            RateCheck {
                rate_rps: 1000.0,
                clean: true,
                reasons: vec![],
            },
            RateCheck {
                rate_rps: 4000.0,
                clean: true,
                reasons: vec![],
            },
            RateCheck {
                rate_rps: 8000.0,
                clean: false,
                reasons: vec![
                    "the machine's CPUs were 72 % busy (nginx round 3; threshold 50 %)".into()
                ],
            },
        ]
    );
    assert!(r.is_clean(4000.0) && !r.is_clean(8000.0));
    for s in &r.summary {
        assert_eq!(
            s.clean,
            s.rate_rps != 8000.0,
            "{} at {}",
            s.topology,
            s.rate_rps
        );
    }
}

#[test]
fn the_warning_names_the_rate_the_trial_and_the_threshold() {
    let r = top_rate_saturated();
    assert_eq!(r.warnings, vec![FLAGGED_8000.to_string()]);
}

#[test]
fn a_share_at_the_threshold_flags_and_one_below_does_not() {
    let at = Fake::new(&["direct", "proxied"], &[1000.0], 6, 4)
        .machine_busy(1000.0, "direct", 0, 0.5)
        .build();
    assert!(!at.rate_checks[0].clean, "{:?}", at.rate_checks);
    let below = Fake::new(&["direct", "proxied"], &[1000.0], 6, 4)
        .machine_busy(1000.0, "direct", 0, 0.499)
        .build();
    assert!(below.rate_checks[0].clean, "{:?}", below.rate_checks);
}

#[test]
fn the_busiest_load_generator_thread_and_the_run_s_own_thresholds_count() {
    let r = Fake::new(&["direct", "proxied"], &[1000.0, 4000.0], 6, 4)
        .loadgen_thread_busy(4000.0, "proxied", 5, 0.61)
        .machine_busy(4000.0, "direct", 1, 0.7)
        .thresholds(Thresholds {
            machine_busy: 0.8,
            loadgen_thread_busy: 0.6,
        })
        .build();
    assert!(r.rate_checks[0].clean);
    // 70 % is below this run's 80 %; the thread's 61 % is above its 60 %.
    assert_eq!(
        r.rate_checks[1].reasons,
        ["a load generator thread was 61 % busy (proxied round 6; threshold 60 %)"]
    );
    // The worst trial is named when several cross.
    let r = Fake::new(&["direct", "proxied"], &[1000.0], 6, 4)
        .machine_busy(1000.0, "direct", 1, 0.6)
        .machine_busy(1000.0, "proxied", 4, 0.9)
        .machine_busy(1000.0, "direct", 5, 0.7)
        .build();
    assert_eq!(
        r.rate_checks[0].reasons,
        ["the machine's CPUs were 90 % busy (proxied round 5; threshold 50 %)"]
    );
}

#[test]
fn the_terminal_marks_the_flagged_rate() {
    let s = report::terminal_tables(&top_rate_saturated());
    assert!(
        s.contains(
            "\nAt 8000 req/s ⚑ — latency, corrected for coordinated omission (median of 6 rounds)\n"
        ),
        "{s}"
    );
    assert!(
        s.contains("\nAt 8000 req/s ⚑ — CPU and peak memory (PSS; total = every process but the load generator)\n"),
        "{s}"
    );
    assert!(
        s.contains("\nAt 4000 req/s — latency, corrected for coordinated omission"),
        "a clean rate is not marked:\n{s}"
    );
    assert!(
        !s.contains("4000 req/s ⚑") && !s.contains("1000 req/s ⚑"),
        "{s}"
    );
    // Every added-cost row, noise floor row and load generator row at 8000 is marked.
    let rows = |prefix: &str| {
        s.lines()
            .filter(|l| l.trim_start().starts_with(prefix))
            .count()
    };
    // 2 added-latency rows + 2 added-resource rows + 1 head-to-head row + 1 noise row + 3
    // load generator rows.
    assert_eq!(rows("8000 req/s ⚑"), 2 + 2 + 1 + 1 + 3, "{s}");
    assert_eq!(rows("8000 req/s  "), 0, "{s}");
    let line = s
        .lines()
        .find(|l| l.trim_start().starts_with("8000 req/s ⚑  proxied"))
        .expect("a flagged proxied row");
    assert_eq!(common::cells(line)[0], "8000 req/s ⚑", "{line}");
    assert!(s.contains(&format!("! {}", &FLAGGED_8000[..60])), "{s}");
}

#[test]
fn the_markdown_and_html_mark_the_flagged_rate() {
    let r = top_rate_saturated();
    let md = report::summary_markdown(&r);
    assert!(md.contains("\n## At 8000 req/s ⚑\n"), "{md}");
    assert!(md.contains("\n## At 4000 req/s\n"), "{md}");
    assert!(md.contains("| 8000 req/s ⚑ | proxied "), "{md}");
    assert!(md.contains("| 8000 req/s ⚑ | nginx "), "{md}");
    assert!(md.contains("|   4000 req/s | proxied "), "{md}");
    assert!(md.contains(&format!("- {FLAGGED_8000}\n")), "{md}");
    let page = report::html(&r);
    assert!(
        page.contains("<h3>At 8000 req/s ⚑</h3>"),
        "flagged per-rate table"
    );
    assert!(page.contains("<td class=\"num\">8000 req/s ⚑</td>"));
    assert!(page.contains(&report::html::escape(FLAGGED_8000)));
}

#[test]
fn the_headline_speaks_for_the_highest_clean_rate() {
    let r = top_rate_saturated();
    let h = &r.headline;
    assert!(
        h.contains(": proxied vs direct at 4000 req/s, the highest clean rate (6 rounds"),
        "{h}"
    );
    assert!(!h.contains("8000"), "the flagged rate makes no claim: {h}");
    assert!(
        h.contains("Head to head at 4000 req/s (paired per round), ours costs"),
        "{h}"
    );
    // Without the flag the same run speaks for 8000.
    let clean = Fake::new(&["direct", "proxied", "nginx"], &RATES, 6, 21).build();
    assert!(
        clean
            .headline
            .contains("at 8000 req/s, the highest clean rate"),
        "{}",
        clean.headline
    );
}

#[test]
fn with_every_rate_flagged_the_headline_says_there_is_no_clean_rate() {
    let r = Fake::new(&["direct", "proxied"], &[1000.0, 4000.0], 6, 9)
        .machine_busy(1000.0, "direct", 0, 0.55)
        .loadgen_thread_busy(4000.0, "proxied", 5, 0.6)
        .build();
    assert!(
        r.rate_checks.iter().all(|c| !c.clean),
        "{:?}",
        r.rate_checks
    );
    assert_eq!(
        r.headline,
        "No clean rate: every rate with a row for proxied was flagged (1000 req/s, 4000 req/s), \
         so the bench makes no claim; see the warnings, and run at lower rates."
    );
    assert_eq!(
        r.warnings,
        [
            "1000 req/s is flagged: the machine's CPUs were 55 % busy (direct round 1; threshold \
             50 %). Latency there includes waiting for a CPU; it is shown but not used for latency \
             claims (CPU per request is still measured)",
            "4000 req/s is flagged: a load generator thread was 60 % busy (proxied round 6; \
             threshold 50 %). Latency there includes waiting for a CPU; it is shown but not used \
             for latency claims (CPU per request is still measured)",
        ]
    );
}

#[test]
fn a_rate_not_held_is_flagged_with_every_trial_named() {
    let r = Fake::new(&["direct", "proxied"], &[1000.0, 4000.0], 6, 9)
        .not_held(4000.0, "proxied", 0)
        .not_held(4000.0, "direct", 3)
        .build();
    assert_eq!(
        r.rate_checks[1].reasons,
        ["rate not held in proxied round 1, direct round 4"]
    );
    assert!(r.headline.contains("at 1000 req/s, the highest clean rate"));
}
