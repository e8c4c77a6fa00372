//! The A/A noise floor: the baseline against a second run of itself in the same round,
//! one row per rate; each floor is the larger bound (in absolute value) of the exact
//! interval of the A/A difference; the summary judges every cost against it.

mod common;

use common::Fake;
use report::model::{Estimate, Results, Trial};

const RATES: [f64; 3] = [1000.0, 4000.0, 8000.0];

fn run(rounds: usize) -> Results {
    Fake::new(&["direct", "proxied", "nginx"], &RATES, rounds, 17).build()
}

/// Per round, the second baseline run minus the first (rounds in order).
fn aa_differences(r: &Results, rate: f64, f: Metric) -> Vec<f64> {
    let first: Vec<&Trial> = r.trials("direct", rate).collect();
    let second: Vec<&Trial> = r.replicates("direct", rate).collect();
    assert_eq!(first.len(), second.len());
    first
        .iter()
        .zip(&second)
        .map(|(a, b)| {
            assert_eq!(a.round, b.round);
            f(b) - f(a)
        })
        .collect()
}

/// A per-round value of a trial.
type Metric = fn(&Trial) -> f64;

const METRICS: [(&str, Metric); 5] = [
    ("p50", |t| t.latency_us.p50),
    ("p90", |t| t.latency_us.p90),
    ("p99", |t| t.latency_us.p99),
    ("cpu", |t| t.server_cpu_us_per_request()),
    ("pss", |t| t.server_pss_peak_bytes() as f64),
];

fn of<'a>(n: &'a report::model::NoiseRow, metric: &str) -> &'a Estimate {
    match metric {
        "p50" => &n.p50_us,
        "p90" => &n.p90_us,
        "p99" => &n.p99_us,
        "cpu" => &n.cpu_us_per_request,
        "pss" => &n.pss_bytes,
        _ => unreachable!(),
    }
}

#[test]
fn one_row_per_rate_with_its_rounds() {
    for rounds in [2, 6, 8] {
        let r = run(rounds);
        assert_eq!(r.noise_floor, report::summary::noise_floor(&r));
        assert_eq!(r.noise_floor.len(), RATES.len(), "{rounds} rounds");
        for (n, rate) in r.noise_floor.iter().zip(RATES) {
            assert_eq!(n.topology, "direct");
            assert_eq!(n.rate_rps, rate);
            assert_eq!(n.rounds, rounds);
            for (name, _) in METRICS {
                let e = of(n, name);
                assert_eq!((e.n, e.method.as_str()), (rounds, "wilcoxon-signed-rank"));
                assert!(e.noise_floor.is_some(), "{name}: {e:?}");
            }
        }
    }
}

#[test]
fn with_six_rounds_the_floor_is_the_largest_a_a_difference() {
    // With 6 pairs the exact 96.9 % signed-rank interval is [min d, max d].
    let r = run(6);
    for rate in RATES {
        let n = common::noise_row(&r, rate);
        for (name, f) in METRICS {
            let d = aa_differences(&r, rate, f);
            let lo = d.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = d.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e = of(n, name);
            assert_eq!(e.ci, Some([lo, hi]), "{name} at {rate}");
            assert!((e.level - 0.96875).abs() < 1e-12);
            assert_eq!(
                e.noise_floor,
                Some(lo.abs().max(hi.abs())),
                "{name} at {rate}"
            );
        }
    }
}

#[test]
fn with_eight_rounds_the_floor_is_the_larger_bound_of_a_narrower_interval() {
    // 8 pairs: the interval is [W(4), W(33)] of the 36 sorted Walsh averages (P(T+ ≤ 3) =
    // 5/256 ≤ 2.5 % < P(T+ ≤ 4) = 7/256), at level 1 − 10/256.
    let r = run(8);
    let mut narrower = 0;
    for rate in RATES {
        let n = common::noise_row(&r, rate);
        for (name, f) in METRICS {
            let d = aa_differences(&r, rate, f);
            let mut walsh = Vec::new();
            for i in 0..d.len() {
                for j in i..d.len() {
                    walsh.push((d[i] + d[j]) / 2.0);
                }
            }
            walsh.sort_by(f64::total_cmp);
            assert_eq!(walsh.len(), 36);
            let (lo, hi) = (walsh[3], walsh[32]);
            let e = of(n, name);
            let [elo, ehi] = e.ci.unwrap();
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(1.0);
            assert!(
                close(elo, lo) && close(ehi, hi),
                "{name} at {rate}: {e:?} vs [{lo}, {hi}]"
            );
            assert!((e.level - (1.0 - 10.0 / 256.0)).abs() < 1e-12, "{e:?}");
            let floor = e.noise_floor.unwrap();
            assert_eq!(floor, elo.abs().max(ehi.abs()), "{name} at {rate}");
            let largest = d.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert!(floor <= largest);
            if floor < largest {
                narrower += 1;
            }
        }
    }
    assert!(
        narrower > 0,
        "some interval is narrower than the widest difference"
    );
}

#[test]
fn with_two_rounds_there_is_no_interval_and_the_floor_is_the_largest_difference() {
    let r = run(2);
    for rate in RATES {
        let n = common::noise_row(&r, rate);
        for (name, f) in METRICS {
            let e = of(n, name);
            assert_eq!(e.ci, None, "{name}");
            let largest = aa_differences(&r, rate, f)
                .iter()
                .fold(0.0f64, |m, x| m.max(x.abs()));
            assert_eq!(e.noise_floor, Some(largest), "{name} at {rate}");
        }
    }
}

#[test]
fn the_position_drift_is_what_the_floor_sees() {
    // The two baseline runs are first and last in a round (4 slots: 3 positions apart),
    // in alternating order, so with drift δ per position the A/A differences are ±3δ.
    let r = Fake::new(&["direct", "proxied", "nginx"], &[1000.0], 6, 3)
        .drift(common::Metrics {
            p50_us: 10.0,
            ..common::DEFAULT_DRIFT
        })
        .build();
    let d = aa_differences(&r, 1000.0, |t| t.latency_us.p50);
    for (round, x) in d.iter().enumerate() {
        let sign = if round % 2 == 0 { 1.0 } else { -1.0 };
        assert!((x - sign * 30.0).abs() <= 4.0, "round {round}: {x}");
    }
    let floor = common::noise_row(&r, 1000.0).p50_us.noise_floor.unwrap();
    assert!((26.0..=34.0).contains(&floor), "{floor}");
}

#[test]
fn the_summary_judges_every_cost_against_its_floor() {
    let r = run(6);
    for s in &r.summary {
        let n = common::noise_row(&r, s.rate_rps);
        for (e, floor) in [
            (&s.added_latency_us.p50, n.p50_us.noise_floor),
            (&s.added_latency_us.p90, n.p90_us.noise_floor),
            (&s.added_latency_us.p99, n.p99_us.noise_floor),
            (
                &s.added_cpu_us_per_request,
                n.cpu_us_per_request.noise_floor,
            ),
            (&s.added_pss_bytes, n.pss_bytes.noise_floor),
        ] {
            assert_eq!(e.noise_floor, floor, "{} at {}", s.topology, s.rate_rps);
            let f = floor.unwrap();
            assert_eq!(e.measurable, e.significant && e.estimate.abs() > f, "{e:?}");
            assert!(
                e.measurable,
                "the default costs are far above the floor: {e:?}"
            );
        }
        // RssAnon has no row of its own but a floor all the same.
        assert!(s.added_anon_bytes.noise_floor.is_some());
    }
}

#[test]
fn without_a_a_runs_there_is_no_floor() {
    let r = Fake::new(&["direct", "proxied"], &RATES, 6, 17)
        .baseline_twice(false)
        .build();
    assert!(r.results.iter().all(|t| t.replicate == 0));
    assert!(r.noise_floor.is_empty());
    assert!(!r.scenario.baseline_twice);
    for s in &r.summary {
        let e = &s.added_latency_us.p50;
        assert_eq!(e.noise_floor, None);
        assert_eq!(e.measurable, e.significant);
    }
    let t = report::terminal_tables(&r);
    assert!(!t.contains("Noise floor:"), "{t}");
    assert!(!report::summary_markdown(&r).contains("## Noise floor"));
}

#[test]
fn the_noise_table_shows_each_floor() {
    let r = run(6);
    let s = report::terminal_tables(&r);
    let n = common::noise_row(&r, 4000.0);
    let line = s
        .lines()
        .skip_while(|l| !l.starts_with("Noise floor: direct against itself"))
        .find(|l| l.trim_start().starts_with("4000 req/s"))
        .expect("a noise row at 4000");
    let floor = |e: &Estimate, f: fn(f64) -> String| format!("±{}", f(e.noise_floor.unwrap()));
    use report::units::{fmt_cpu, fmt_mb, fmt_us};
    assert_eq!(
        common::cells(line),
        [
            "4000 req/s".to_string(),
            "6".to_string(),
            floor(&n.p50_us, fmt_us),
            floor(&n.p90_us, fmt_us),
            floor(&n.p99_us, fmt_us),
            floor(&n.cpu_us_per_request, fmt_cpu),
            floor(&n.pss_bytes.scaled(1e-6), fmt_mb),
        ]
    );
}
