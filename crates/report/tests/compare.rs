//! `bench compare`: runs are matched by rate value (refused when the rates differ unless
//! `--by-position`), and `--fail-on` rules turn significant regressions into failures.

mod common;

use common::{Fake, Metrics};
use report::gate::FailRule;
use report::model::Results;
use report::{compare, CompareError, CompareOptions};

const TOPOLOGIES: [&str; 3] = ["direct", "proxied", "nginx"];

fn run(seed: u64, rates: &[f64]) -> Results {
    Fake::new(&TOPOLOGIES, rates, 6, seed).build()
}

fn by_position() -> CompareOptions {
    CompareOptions {
        by_position: true,
        ..CompareOptions::default()
    }
}

fn rules(rules: &[&str]) -> CompareOptions {
    CompareOptions {
        by_position: false,
        fail_on: rules
            .iter()
            .map(|r| r.parse::<FailRule>().unwrap())
            .collect(),
    }
}

/// The cells of the comparison row for `rate`, `topology` and `metric`.
fn cells_of(text: &str, rate: &str, topology: &str, metric: &str) -> Vec<String> {
    text.lines()
        .map(common::cells)
        .find(|c| c.len() == 9 && c[0] == rate && c[1] == topology && c[2] == metric)
        .unwrap_or_else(|| panic!("no row {rate} {topology} {metric} in:\n{text}"))
}

#[test]
fn runs_at_different_rates_are_refused() {
    let a = run(1, &[1000.0, 4000.0]);
    let b = run(2, &[1100.0, 4400.0]);
    let err = compare(&a, &b, &CompareOptions::default()).unwrap_err();
    assert_eq!(
        err,
        CompareError::RatesDiffer {
            a: "1000, 4000".into(),
            b: "1100, 4400".into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "the runs' rates differ (A: 1000, 4000 req/s; B: 1100, 4400 req/s): compare runs made at \
         the same rates (bench --rates-from A/results.json) or pass --by-position to pair them in \
         order"
    );
    // One rate more, or one rate fewer, is a difference too.
    let more = run(2, &[1000.0, 4000.0, 8000.0]);
    assert!(matches!(
        compare(&a, &more, &CompareOptions::default()),
        Err(CompareError::RatesDiffer { .. })
    ));
    assert!(matches!(
        compare(&more, &a, &CompareOptions::default()),
        Err(CompareError::RatesDiffer { .. })
    ));
}

#[test]
fn by_position_pairs_different_rates_in_order() {
    let a = run(1, &[1000.0, 4000.0]);
    let b = run(2, &[1100.0, 4400.0]);
    let c = compare(&a, &b, &by_position()).unwrap();
    assert!(c.failures.is_empty());
    let achieved = cells_of(&c.text, "1000→1100", "direct", "achieved rps");
    let (ma, mb): (f64, f64) = (achieved[3].parse().unwrap(), achieved[4].parse().unwrap());
    assert!(
        (ma - 1000.0).abs() < 5.0 && (mb - 1100.0).abs() < 5.0,
        "{achieved:?}"
    );
    assert_eq!(
        achieved[8], "better",
        "more requests per second: {achieved:?}"
    );
    cells_of(&c.text, "4000→4400", "nginx", "p50 µs");

    let more = run(2, &[1100.0, 4400.0, 8800.0]);
    let c = compare(&a, &more, &by_position()).unwrap();
    assert!(
        c.text
            .contains("note: A has 2 rates and B 3: only the first 2 are compared, by position"),
        "{}",
        c.text
    );
    assert!(!c.text.contains("8800"), "{}", c.text);
}

#[test]
fn the_same_rates_in_another_order_are_matched_by_value() {
    let a = run(1, &[1000.0, 4000.0]);
    let b = run(2, &[4000.0, 1000.0]);
    let c = compare(&a, &b, &CompareOptions::default()).unwrap();
    assert!(
        !c.text.contains('→'),
        "matched by value, not position:\n{}",
        c.text
    );
    for (rate, target) in [("1000", 1000.0), ("4000", 4000.0)] {
        let row = cells_of(&c.text, rate, "direct", "achieved rps");
        for v in [&row[3], &row[4]] {
            let v: f64 = v.parse().unwrap();
            assert!((v - target).abs() < 0.01 * target, "{row:?}");
        }
        assert_eq!(row[8], "n.s.", "{row:?}");
    }
    // By position the same two runs pair 1000 with 4000, and it shows.
    let c = compare(&a, &b, &by_position()).unwrap();
    let row = cells_of(&c.text, "1000→4000", "direct", "p50 µs");
    assert_eq!(row[8], "worse", "{row:?}");
}

#[test]
fn identical_runs_change_nothing_and_pass_every_rule() {
    let a = run(1, &[1000.0, 4000.0]);
    let c = compare(
        &a,
        &a,
        &rules(&[
            "proxied.cpu_us_per_request=+5%",
            "proxied.added_cpu_us_per_request=+5%",
            "nginx.p99_us=+0",
        ]),
    )
    .unwrap();
    assert_eq!(c.failures, Vec::<String>::new());
    assert!(
        c.text
            .contains("\n0 of 46 comparisons changed significantly"),
        "{}",
        c.text
    );
    assert!(
        c.text.ends_with("fail-on: all 3 rule(s) passed.\n"),
        "{}",
        c.text
    );
}

/// Run B: our proxy's own CPU per request 20 % higher (31 → 37.2 µs), everything else as
/// in A, with its own noise.
fn regressed(rounds: usize) -> (Results, Results) {
    let a = Fake::new(&TOPOLOGIES, &[1000.0, 4000.0], rounds, 1).build();
    let proxied = common::default_shift("proxied");
    let b = Fake::new(&TOPOLOGIES, &[1000.0, 4000.0], rounds, 2)
        .shift(
            "proxied",
            Metrics {
                cpu_us: proxied.cpu_us * 1.2,
                ..proxied
            },
        )
        .build();
    (a, b)
}

/// The `+x` of "B is worse by +x" in a failure line.
fn worse_by(line: &str) -> f64 {
    let rest = line.split("B is worse by +").nth(1).expect(line);
    rest.split(' ').next().unwrap().parse().expect(line)
}

#[test]
fn a_20_percent_cpu_regression_fails_a_5_percent_rule() {
    let (a, b) = regressed(6);
    let c = compare(
        &a,
        &b,
        &rules(&[
            "proxied.cpu_us_per_request=+5%",
            "proxied.added_cpu_us_per_request=+5%",
        ]),
    )
    .unwrap();
    assert_eq!(c.failures.len(), 4, "2 rules × 2 rates: {:?}", c.failures);
    for (i, (rule, rate)) in [
        ("proxied.cpu_us_per_request=+5%", "1000"),
        ("proxied.cpu_us_per_request=+5%", "4000"),
        ("proxied.added_cpu_us_per_request=+5%", "1000"),
        ("proxied.added_cpu_us_per_request=+5%", "4000"),
    ]
    .into_iter()
    .enumerate()
    {
        let line = &c.failures[i];
        let head = format!("{rule} failed at {rate} req/s: B is worse by +");
        assert!(line.starts_with(&head), "expected {head:?}, got {line:?}");
        assert!(
            line.contains(" at 95.9 %), more than the allowed "),
            "{line}"
        );
        // The true regression is 6.2 µs of server CPU per request, A's median about 69
        // (total) or 31 (added): 5 % of those is 3.45 or 1.55.
        let by = worse_by(line);
        assert!((4.5..8.0).contains(&by), "{line}");
        assert!(c.text.contains(&format!("FAIL: {head}")), "{}", c.text);
    }
    // The allowed regression is 5 % of A's median at that rate.
    let cpu: Vec<f64> = a
        .trials("proxied", 1000.0)
        .map(|t| t.server_cpu_us_per_request())
        .collect();
    let allowed = 0.05 * report::stats::median(&cpu).unwrap();
    assert!(
        c.failures[0].ends_with(&format!("more than the allowed {allowed:.2}")),
        "{}",
        c.failures[0]
    );
    // The table says the same.
    let row = cells_of(&c.text, "4000", "proxied", "proxy CPU µs/req");
    assert_eq!(row[8], "worse", "{row:?}");
    let row = cells_of(&c.text, "4000", "nginx", "total CPU µs/req");
    assert_eq!(row[8], "n.s.", "nginx did not change: {row:?}");
}

#[test]
fn the_same_regression_passes_a_50_percent_rule() {
    let (a, b) = regressed(6);
    let c = compare(
        &a,
        &b,
        &rules(&[
            "proxied.cpu_us_per_request=+50%",
            "proxied.added_cpu_us_per_request=+50%",
            "proxied.added_cpu_us_per_request=+10",
        ]),
    )
    .unwrap();
    assert_eq!(c.failures, Vec::<String>::new());
    assert!(
        c.text.ends_with("fail-on: all 3 rule(s) passed.\n"),
        "{}",
        c.text
    );
    // +15 % tells the two apart: the proxy's 20 % is about 9 % of the total server CPU.
    let c = compare(
        &a,
        &b,
        &rules(&[
            "proxied.cpu_us_per_request=+15%",
            "proxied.added_cpu_us_per_request=+15%",
        ]),
    )
    .unwrap();
    assert_eq!(c.failures.len(), 2, "{:?}", c.failures);
    assert!(
        c.failures
            .iter()
            .all(|f| f.starts_with("proxied.added_cpu_us_per_request=+15% failed at ")),
        "{:?}",
        c.failures
    );
    // An absolute limit below the regression fails.
    let c = compare(&a, &b, &rules(&["proxied.proxy_cpu_us_per_request=+3"])).unwrap();
    assert_eq!(c.failures.len(), 2, "{:?}", c.failures);
    assert!(
        c.failures[1].starts_with("proxied.proxy_cpu_us_per_request=+3 failed at 4000 req/s"),
        "{:?}",
        c.failures
    );
}

#[test]
fn noise_alone_does_not_fail_a_rule() {
    let a = run(1, &[1000.0, 4000.0]);
    let b = run(3, &[1000.0, 4000.0]);
    let c = compare(
        &a,
        &b,
        &rules(&[
            "proxied.cpu_us_per_request=+5%",
            "proxied.added_cpu_us_per_request=+5%",
            "nginx.added_p50_us=+5%",
            "proxied.pss_bytes=+5%",
        ]),
    )
    .unwrap();
    assert_eq!(c.failures, Vec::<String>::new(), "{}", c.text);
}

#[test]
fn a_rule_for_an_unknown_topology_is_a_note_not_a_failure() {
    let (a, b) = regressed(6);
    let c = compare(&a, &b, &rules(&["haproxy.p99_us=+200"])).unwrap();
    assert_eq!(c.failures, Vec::<String>::new());
    assert!(
        c.text.contains(
            "\nnote: --fail-on haproxy.p99_us=+200: no rate where both runs have p99_us (topology \
             not in both runs?)\n"
        ),
        "{}",
        c.text
    );
    assert!(
        c.text.ends_with("fail-on: all 1 rule(s) passed.\n"),
        "{}",
        c.text
    );
}

#[test]
fn a_regression_beyond_the_limit_fails_only_when_significant() {
    let a = run(1, &[1000.0, 4000.0]);
    let slower = |by: f64| {
        let mut b = a.clone();
        for t in b.results.iter_mut().filter(|t| t.topology == "proxied") {
            for p in t.processes.iter_mut().filter(|p| p.role == "proxy") {
                p.cpu_us_per_request += by;
            }
        }
        b
    };
    // +0.1 µs against a round-to-round spread of about ±0.6 µs: the estimate is above
    // the allowed 0, but its interval spans zero.
    let b = slower(0.1);
    let c = compare(&a, &b, &rules(&["proxied.proxy_cpu_us_per_request=+0"])).unwrap();
    let row = cells_of(&c.text, "1000", "proxied", "proxy CPU µs/req");
    assert_eq!(
        (row[5].as_str(), row[8].as_str()),
        ("+0.1", "n.s."),
        "{row:?}"
    );
    assert_eq!(c.failures, Vec::<String>::new(), "{}", c.text);
    // +5 µs is significant and fails the same rule at both rates.
    let b = slower(5.0);
    let c = compare(&a, &b, &rules(&["proxied.proxy_cpu_us_per_request=+0"])).unwrap();
    assert_eq!(c.failures.len(), 2, "{:?}", c.failures);
    assert!(
        c.failures[0].starts_with(
            "proxied.proxy_cpu_us_per_request=+0 failed at 1000 req/s: B is worse by +5.00 (A "
        ),
        "{}",
        c.failures[0]
    );
}
