//! The headline states a cost only where the bench can measure it: larger than the A/A
//! noise floor and significant; otherwise it says why not, and with too few rounds that
//! there is no interval.

mod common;

use common::{Fake, Metrics};
use report::model::Results;
use report::units::{fmt_cpu, fmt_mb, fmt_us, fmt_vcpu, signed};

/// direct, proxied, direct again every round: proxied sits in the middle of each round, so
/// the position drift cancels in its difference against the mean of the two baseline runs,
/// while the two baseline runs (first and last) differ by ±2 × 10 µs at p50. Per-trial
/// noise is small (±0.5 µs) and the round effect cancels in pairs.
fn with_p50_shift(p50_us: f64, rounds: usize) -> Results {
    Fake::new(&["direct", "proxied"], &[1000.0, 4000.0], rounds, 5)
        .drift(Metrics {
            p50_us: 10.0,
            ..common::DEFAULT_DRIFT
        })
        .noise(Metrics {
            p50_us: 0.5,
            ..common::DEFAULT_NOISE
        })
        .shift(
            "proxied",
            Metrics {
                p50_us,
                ..common::default_shift("proxied")
            },
        )
        .build()
}

#[test]
fn a_shift_inside_the_a_a_floor_is_no_measurable_cost() {
    let r = with_p50_shift(8.0, 6);
    let row = common::row(&r, "proxied", 4000.0);
    let p50 = &row.added_latency_us.p50;
    // The fixture does what it says: the A/A floor is about 2 × 10 µs, the shift 8 µs and
    // clearly significant.
    let floor = p50.noise_floor.expect("a floor from the A/A runs");
    assert!((19.0..22.0).contains(&floor), "{p50:?}");
    assert_eq!(
        Some(floor),
        common::noise_row(&r, 4000.0).p50_us.noise_floor
    );
    assert!((p50.estimate - 8.0).abs() < 1.0, "{p50:?}");
    assert!(p50.significant && !p50.measurable, "{p50:?}");

    let phrase = format!(
        "no measurable cost at p50 (inside the ±{} µs noise floor)",
        fmt_us(floor)
    );
    assert!(
        r.headline.contains(&phrase),
        "expected {phrase:?} in {}",
        r.headline
    );
    assert!(
        r.headline.contains(&format!(
            "(PSS), {phrase} and {} µs at p99",
            signed(row.added_latency_us.p99.estimate, fmt_us)
        )),
        "{}",
        r.headline
    );
    assert!(!r.headline.contains("+8 µs at p50"), "{}", r.headline);
    // The tables say the same: significant, but noise.
    let s = report::terminal_tables(&r);
    assert!(s.contains(" (noise)"), "{s}");
}

#[test]
fn a_shift_larger_than_the_floor_is_stated() {
    let r = with_p50_shift(60.0, 6);
    let row = common::row(&r, "proxied", 4000.0);
    let p50 = &row.added_latency_us.p50;
    assert!(p50.measurable && p50.noise_floor.unwrap() < 22.0, "{p50:?}");
    assert!((p50.estimate - 60.0).abs() < 1.0, "{p50:?}");
    let stated = format!("(PSS), {} µs at p50 and", signed(p50.estimate, fmt_us));
    assert!(
        r.headline.contains(&stated),
        "expected {stated:?} in {}",
        r.headline
    );
    assert!(
        !r.headline.contains("no measurable cost at p50"),
        "{}",
        r.headline
    );
}

#[test]
fn a_zero_shift_is_not_significant() {
    let r = with_p50_shift(0.0, 6);
    let p50 = &common::row(&r, "proxied", 4000.0).added_latency_us.p50;
    assert!(!p50.significant && !p50.measurable, "{p50:?}");
    assert!(
        r.headline
            .contains("(PSS), no measurable cost at p50 (not significant) and +"),
        "{}",
        r.headline
    );
}

#[test]
fn the_whole_headline_reads_as_intended() {
    let r = with_p50_shift(60.0, 6);
    let row = common::row(&r, "proxied", 4000.0);
    let noise = common::noise_row(&r, 4000.0);
    let expected = format!(
        "Behind this proxy, my service pays {} vCPU per 1000 req/s, {} MB of memory (PSS), {} µs \
         at p50 and {} µs at p99: proxied vs direct at 4000 req/s, the highest clean rate (6 \
         rounds, exact 96.9 % intervals; A/A noise floor ±{} µs at p50, ±{} µs CPU per request).",
        signed(row.added_vcpu_per_1000_rps.estimate, fmt_vcpu),
        signed(row.added_pss_bytes.estimate / 1e6, fmt_mb),
        signed(row.added_latency_us.p50.estimate, fmt_us),
        signed(row.added_latency_us.p99.estimate, fmt_us),
        fmt_us(noise.p50_us.noise_floor.unwrap()),
        fmt_cpu(noise.cpu_us_per_request.noise_floor.unwrap()),
    );
    assert_eq!(r.headline, expected);
    assert!(r
        .headline
        .starts_with("Behind this proxy, my service pays +0.031 vCPU"));
}

#[test]
fn without_a_a_runs_a_significant_shift_is_a_cost() {
    let r = Fake::new(&["direct", "proxied"], &[1000.0], 6, 5)
        .baseline_twice(false)
        .shift(
            "proxied",
            Metrics {
                p50_us: 8.0,
                ..common::default_shift("proxied")
            },
        )
        .build();
    assert!(r.noise_floor.is_empty());
    let p50 = &common::row(&r, "proxied", 1000.0).added_latency_us.p50;
    assert_eq!(p50.noise_floor, None);
    assert!(p50.significant && p50.measurable, "{p50:?}");
    assert!(
        r.headline.contains(&format!(
            "(PSS), {} µs at p50 and",
            signed(p50.estimate, fmt_us)
        )),
        "{}",
        r.headline
    );
    assert!(!r.headline.contains("noise floor"), "{}", r.headline);
}

#[test]
fn with_fewer_than_six_rounds_the_headline_says_there_is_no_interval() {
    let r = with_p50_shift(60.0, 5);
    let row = common::row(&r, "proxied", 4000.0);
    assert!(row.added_latency_us.p50.ci.is_none());
    assert!(row.added_cpu_us_per_request.ci.is_none());
    let h = &r.headline;
    assert!(
        h.starts_with(&format!(
            "Behind this proxy, my service pays about {} vCPU per 1000 req/s, ",
            signed(row.added_vcpu_per_1000_rps.estimate, fmt_vcpu)
        )),
        "{h}"
    );
    assert!(
        h.contains(
            ": proxied vs direct at 4000 req/s, the highest clean rate (5 rounds: too few for an \
             interval, so none of these is a finding; run 6 or more; A/A noise floor ±"
        ),
        "{h}"
    );
    // No interval is not "not significant" and not "noise": the estimate is shown as is.
    assert!(!h.contains("no measurable cost"), "{h}");
    assert!(
        h.contains(&format!(
            "{} µs at p50",
            signed(row.added_latency_us.p50.estimate, fmt_us)
        )),
        "{h}"
    );
    let s = report::terminal_tables(&r);
    assert!(
        s.contains("no interval: 5 rounds are too few for 95 % (6 needed)"),
        "{s}"
    );
    assert!(s.contains("(no CI: 5 rounds)"), "{s}");
    assert!(
        r.warnings.iter().any(|w| w
            == "5 round(s) give no 95 % interval (the exact signed-rank test needs 6): \
                differences are shown without one and none is called significant"),
        "{:?}",
        r.warnings
    );
}

/// The original post's question in one line: each topology's memory as a multiple of the
/// baseline's, from the same trials the tables show.
#[test]
fn the_memory_line_gives_each_topology_as_a_multiple_of_the_baseline() {
    let r = Fake::new(&["flask", "uwsgi", "nginx"], &[500.0, 1000.0], 6, 9).build();
    let line = report::memory_line(&r).expect("three topologies have a memory line");
    let mb = |t: &str| {
        let v: Vec<f64> = r
            .trials(t, 500.0)
            .map(|x| x.server_pss_peak_bytes() as f64)
            .collect();
        report::units::mb(report::stats::median(&v).unwrap())
    };
    assert!(line.starts_with("Memory against flask"), "{line}");
    assert!(line.contains("at 500 req/s"), "{line}");
    for t in ["uwsgi", "nginx"] {
        let want = format!("{t} {} MB ({:.2}×)", fmt_mb(mb(t)), mb(t) / mb("flask"));
        assert!(line.contains(&want), "{want:?} not in {line}");
    }
    assert!(report::terminal_tables(&r).contains("Memory against flask"));
    assert!(report::summary_markdown(&r).contains(&format!("{line}.")));
    assert!(report::html(&r).contains("<p>Memory against flask"));
    let one = Fake::new(&["direct"], &[500.0], 6, 9).build();
    assert_eq!(report::memory_line(&one), None);
}
