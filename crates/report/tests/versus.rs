//! Ours against NGINX head to head: paired per round, exact intervals, judged against the
//! noise floor; the headline says "less" or "more" only when the bench can measure it, and
//! with no true difference it says so at most as often as the stated level allows.

mod common;

use common::{Fake, Metrics};
use report::model::Results;

const RATE: f64 = 4000.0;

/// direct, proxied and nginx, where ours costs `cpu_us` CPU per request over direct and
/// NGINX 24 µs (the fake's default), everything else as the fake has it.
fn with_ours_cpu(cpu_us: f64, rounds: usize, seed: u64) -> Results {
    Fake::new(&["direct", "proxied", "nginx"], &[RATE], rounds, seed)
        .shift(
            "proxied",
            Metrics {
                cpu_us,
                ..common::default_shift("nginx")
            },
        )
        .build()
}

#[test]
fn ours_measurably_cheaper_than_nginx_is_stated_with_its_interval() {
    let r = with_ours_cpu(14.0, 6, 3);
    let v = r
        .versus
        .iter()
        .find(|v| v.other == "nginx" && v.rate_rps == RATE)
        .expect("a head-to-head row for nginx");
    assert_eq!((v.topology.as_str(), v.rounds), ("proxied", 6));
    let cpu = &v.cpu_us_per_request;
    assert!(cpu.measurable, "{cpu:?}");
    // The true difference is 14 − 24 = −10 µs: estimated near it, the interval below zero.
    let [lo, hi] = cpu.ci.expect("6 rounds give an interval");
    assert!(
        (cpu.estimate + 10.0).abs() < 1.5 && lo < hi && hi < 0.0,
        "{cpu:?}"
    );
    assert!(
        r.headline
            .contains("Head to head at 4000 req/s (paired per round), ours costs"),
        "{}",
        r.headline
    );
    assert!(
        r.headline.contains("µs less CPU per request than NGINX ["),
        "{}",
        r.headline
    );
    // The same shifts at p50: the two cannot be told apart there.
    assert!(
        r.headline
            .contains("adds the same p50 latency as NGINX within the instrument"),
        "{}",
        r.headline
    );
    let table = report::terminal_tables(&r);
    let row = table
        .lines()
        .skip_while(|l| !l.contains("Ours head to head: proxied (or proxied-<variant>"))
        .find(|l| l.contains("4000 req/s") && l.contains("nginx"));
    assert!(
        row.is_some_and(|l| l.contains(" [-") && l.contains("n.s.")),
        "a head-to-head row (CPU measured, p50 n.s.) in:\n{table}"
    );
}

#[test]
fn with_no_true_difference_cheaper_or_dearer_is_claimed_at_most_at_the_stated_rate() {
    // The same costs for ours and NGINX, 2000 seeded runs of 6 rounds: a claim either way
    // is a false positive. The exact level is 96.9 %, so at most 3.1 % plus the binomial
    // margin (3 standard deviations).
    const RUNS: u64 = 2000;
    let mut claims = 0;
    let mut rounds = 0;
    for seed in 0..RUNS {
        let r = with_ours_cpu(24.0, 6, 1000 + seed);
        let v = &r.versus[0];
        rounds = v.rounds;
        if v.cpu_us_per_request.significant {
            claims += 1;
        }
    }
    assert_eq!(rounds, 6);
    let alpha = 1.0 - 0.96875;
    let margin = 3.0 * (alpha * (1.0 - alpha) / RUNS as f64).sqrt();
    let rate = claims as f64 / RUNS as f64;
    assert!(
        rate <= alpha + margin,
        "false claims {claims} of {RUNS} ({:.2} %), allowed {:.2} %",
        rate * 100.0,
        (alpha + margin) * 100.0
    );
}

#[test]
fn a_run_without_our_proxy_or_another_proxy_has_no_head_to_head() {
    let only_ours = Fake::new(&["direct", "proxied"], &[RATE], 6, 1).build();
    assert!(only_ours.versus.is_empty());
    assert!(!only_ours.headline.contains("Head to head"));
    let no_ours = Fake::new(&["direct", "nginx"], &[RATE], 6, 1).build();
    assert!(no_ours.versus.is_empty());
}

#[test]
fn a_proxy_variant_is_paired_with_ours_of_the_same_variant() {
    // tls.toml's naming: nginx-tls against proxied-tls, nginx-tls-new against
    // proxied-tls-new, a variant ours lacks (caddy-h2) against plain proxied, and our own
    // variants against our nearest shorter one (proxied-tls-new against proxied-tls: the
    // price of a handshake per request, with its interval).
    let names: Vec<String> = [
        "direct",
        "proxied",
        "nginx",
        "proxied-tls",
        "nginx-tls",
        "haproxy-tls",
        "proxied-tls-new",
        "nginx-tls-new",
        "caddy-h2",
    ]
    .map(String::from)
    .to_vec();
    let pairs: Vec<(&str, &str)> = names[1..]
        .iter()
        .map(|o| (o.as_str(), report::versus::ours_for(o, &names)))
        .collect();
    assert_eq!(
        pairs,
        [
            ("proxied", "proxied"),
            ("nginx", "proxied"),
            ("proxied-tls", "proxied"),
            ("nginx-tls", "proxied-tls"),
            ("haproxy-tls", "proxied-tls"),
            ("proxied-tls-new", "proxied-tls"),
            ("nginx-tls-new", "proxied-tls-new"),
            ("caddy-h2", "proxied"),
        ]
    );
    // And in a run's rows: each other row paired with ours of its variant.
    let r = Fake::new(
        &["direct", "proxied", "nginx", "proxied-tls", "nginx-tls"],
        &[RATE],
        6,
        5,
    )
    .build();
    let by_other: Vec<(&str, &str)> = r
        .versus
        .iter()
        .map(|v| (v.other.as_str(), v.topology.as_str()))
        .collect();
    assert!(
        by_other.contains(&("nginx-tls", "proxied-tls")),
        "{by_other:?}"
    );
    assert!(by_other.contains(&("nginx", "proxied")), "{by_other:?}");
    assert!(
        by_other.contains(&("proxied-tls", "proxied")),
        "{by_other:?}"
    );
}
