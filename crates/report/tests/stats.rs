//! The estimates the report states behave: a clear shift is significant and measurable,
//! noise is not, an effect inside the A/A noise floor is significant but not measurable,
//! too few rounds give no interval, and everything is deterministic.

use report::model::Estimate;
use report::stats::{against_floor, median, noise_floor, paired, unpaired, SplitMix64};

/// Deterministic noise in [-scale, scale].
fn noise(n: usize, scale: f64, seed: u64) -> Vec<f64> {
    let mut r = SplitMix64::new(seed);
    (0..n)
        .map(|_| ((r.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale)
        .collect()
}

fn contains_estimate(e: &Estimate) -> bool {
    e.ci.is_some_and(|[lo, hi]| lo <= e.estimate && e.estimate <= hi)
}

#[test]
fn a_clear_shift_is_significant_and_measurable_and_the_ci_contains_the_estimate() {
    let base: Vec<f64> = noise(7, 5.0, 1).iter().map(|n| 100.0 + n).collect();
    let shifted: Vec<f64> = base
        .iter()
        .zip(noise(7, 3.0, 2))
        .map(|(b, n)| b + 40.0 + n)
        .collect();
    let e = paired(&base, &shifted);
    assert!(e.significant && e.measurable, "{e:?}");
    assert_eq!((e.n, e.method.as_str()), (7, "wilcoxon-signed-rank"));
    assert!(e.level >= 0.95 && e.level < 1.0, "{e:?}");
    let [lo, hi] = e.ci.unwrap();
    assert!(lo > 30.0 && hi < 50.0, "{e:?}");
    assert!(contains_estimate(&e), "{e:?}");
    assert!((e.estimate - 40.0).abs() < 3.0, "{e:?}");
    // All 7 differences positive: the exact two-sided p-value is 2/2^7.
    assert!((e.p_value.unwrap() - 2.0 / 128.0).abs() < 1e-12, "{e:?}");
    assert_eq!(e.noise_floor, None);

    let u = unpaired(&base, &shifted);
    assert!(u.significant && u.measurable, "{u:?}");
    assert_eq!((u.n, u.method.as_str()), (7, "mann-whitney"));
    assert!(contains_estimate(&u), "{u:?}");
    assert!((u.estimate - 40.0).abs() < 5.0, "{u:?}");
}

#[test]
fn a_negative_shift_is_significant_too() {
    let xs = [50.0, 52.0, 49.0, 51.0, 50.5, 49.7];
    let ys = [40.0, 41.0, 39.5, 40.2, 41.1, 40.3];
    let e = paired(&xs, &ys);
    assert!(e.significant && e.ci.unwrap()[1] < 0.0, "{e:?}");
    assert!(e.estimate < -8.0 && e.measurable, "{e:?}");
    let u = unpaired(&xs, &ys);
    assert!(u.significant && u.ci.unwrap()[1] < 0.0, "{u:?}");
}

#[test]
fn zero_mean_noise_is_not_significant() {
    let base: Vec<f64> = vec![100.0; 9];
    let noisy: Vec<f64> = [-3.0, 1.0, 2.0, -1.0, 0.5, -2.0, 1.5, -0.5, 0.2]
        .iter()
        .map(|n| 100.0 + n)
        .collect();
    let e = paired(&base, &noisy);
    assert!(!e.significant && !e.measurable, "{e:?}");
    let [lo, hi] = e.ci.unwrap();
    assert!(lo < 0.0 && hi > 0.0, "{e:?}");
    assert!(contains_estimate(&e), "{e:?}");
    assert!(e.p_value.unwrap() > 0.05, "{e:?}");

    for seed in 0..20 {
        let a = noise(5, 10.0, 100 + seed);
        let b = noise(5, 10.0, 200 + seed);
        let u = unpaired(&a, &b);
        assert!(contains_estimate(&u), "{u:?}");
        assert_eq!(
            u.significant,
            !u.ci.is_some_and(|[lo, hi]| lo <= 0.0 && 0.0 <= hi)
        );
    }
}

#[test]
fn identical_samples_are_not_significant() {
    let xs = [10.0, 12.0, 11.0, 13.0, 10.5, 12.5];
    let e = unpaired(&xs, &xs);
    assert_eq!(e.estimate, 0.0);
    assert!(!e.significant && !e.measurable, "{e:?}");
    let p = paired(&xs, &xs);
    assert_eq!(p.estimate, 0.0);
    assert!(!p.significant, "{p:?}");
    assert_eq!(p.p_value, Some(1.0), "{p:?}");
}

#[test]
fn the_estimates_are_deterministic() {
    let xs = noise(8, 10.0, 3);
    let ys = noise(8, 10.0, 4);
    assert_eq!(paired(&xs, &ys), paired(&xs, &ys));
    assert_eq!(unpaired(&xs, &ys), unpaired(&xs, &ys));
    // The unpaired test does not depend on the order of the values.
    let mut rev = ys.clone();
    rev.reverse();
    assert_eq!(unpaired(&xs, &ys), unpaired(&xs, &rev));
}

#[test]
fn too_few_rounds_give_no_interval() {
    // Two rounds, both differences positive: nothing at 95 % is possible.
    let e = paired(&[100.0, 101.0], &[140.0, 142.0]);
    assert_eq!(e.ci, None, "{e:?}");
    assert!(!e.significant && !e.measurable, "{e:?}");
    assert_eq!(e.n, 2);
    // The best two pairs can do is 1 − 2/2²; the p-value exists.
    assert!((e.level - 0.5).abs() < 1e-12, "{e:?}");
    assert!(e.p_value.is_some());
    assert!((e.estimate - 40.5).abs() < 1e-9, "{e:?}");

    let one = paired(&[1.0], &[5.0]);
    assert_eq!((one.estimate, one.ci, one.significant), (4.0, None, false));

    // Five pairs are still too few; six give [min, max] of the differences at 1 − 2/64.
    let five = paired(&[0.0; 5], &[3.0, 4.0, 5.0, 6.0, 7.0]);
    assert_eq!(five.ci, None, "{five:?}");
    let six = paired(&[0.0; 6], &[3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    assert_eq!(six.ci, Some([3.0, 8.0]), "{six:?}");
    assert!((six.level - (1.0 - 2.0 / 64.0)).abs() < 1e-12, "{six:?}");
    assert!(six.significant);

    // Unpaired: three values a side are too few, four are enough.
    assert_eq!(unpaired(&[1.0, 2.0, 3.0], &[11.0, 12.0, 13.0]).ci, None);
    let four = unpaired(&[1.0, 2.0, 3.0, 4.0], &[11.0, 12.0, 13.0, 14.0]);
    assert!(four.significant, "{four:?}");

    let empty = unpaired(&[], &[1.0, 2.0]);
    assert!(!empty.significant && empty.ci.is_none() && empty.p_value.is_none());
    assert_eq!((empty.n, empty.level), (0, 0.0));
    assert_eq!(median(&[]), None);
}

#[test]
fn the_noise_floor_is_the_larger_bound_of_the_a_a_interval() {
    // A/A differences alternate around zero (the two runs sit first and last in a round).
    let diffs = [9.0, -11.0, 10.5, -9.5, 10.0, -12.0];
    let aa = paired(&[0.0; 6], &diffs);
    assert_eq!(aa.ci, Some([-12.0, 10.5]), "{aa:?}");
    assert!(!aa.significant);
    assert_eq!(noise_floor(&aa, &diffs), 12.0);
    // Without an interval: the largest difference seen (non-finite ones ignored).
    let few = [3.0, -5.0, f64::NAN];
    let aa = paired(&[0.0; 3], &few);
    assert_eq!(aa.ci, None);
    assert_eq!(noise_floor(&aa, &few), 5.0);
    assert_eq!(noise_floor(&paired(&[], &[]), &[]), 0.0);
}

#[test]
fn an_effect_inside_the_a_a_floor_is_significant_but_not_measurable() {
    let diffs = [9.0, -11.0, 10.5, -9.5, 10.0, -12.0];
    let floor = noise_floor(&paired(&[0.0; 6], &diffs), &diffs);
    let base: Vec<f64> = noise(6, 0.5, 7).iter().map(|n| 200.0 + n).collect();
    let small: Vec<f64> = base
        .iter()
        .zip(noise(6, 0.5, 8))
        .map(|(b, n)| b + 5.0 + n)
        .collect();
    let e = against_floor(paired(&base, &small), Some(floor));
    assert!(e.significant, "{e:?}");
    assert!(!e.measurable, "5 µs inside a 12 µs floor: {e:?}");
    assert_eq!(e.noise_floor, Some(12.0));

    let large: Vec<f64> = base.iter().map(|b| b + 30.0).collect();
    let e = against_floor(paired(&base, &large), Some(floor));
    assert!(e.significant && e.measurable, "{e:?}");

    // A negative effect is judged by its size.
    let faster: Vec<f64> = base.iter().map(|b| b - 30.0).collect();
    let e = against_floor(paired(&base, &faster), Some(floor));
    assert!(e.significant && e.measurable, "{e:?}");

    // Exactly at the floor is not larger than it.
    let exact = [200.0, 201.0, 199.5, 200.25, 200.75, 199.0];
    let at: Vec<f64> = exact.iter().map(|b| b + 12.0).collect();
    let e = against_floor(paired(&exact, &at), Some(12.0));
    assert_eq!(e.estimate, 12.0);
    assert!(e.significant && !e.measurable, "{e:?}");

    // Without a floor, measurable is significant; a noise-only difference never is.
    let e = against_floor(paired(&base, &small), None);
    assert!(e.significant && e.measurable && e.noise_floor.is_none());
    let noisy: Vec<f64> = base
        .iter()
        .zip([-0.3, 0.2, 0.1, -0.2, 0.4, -0.1])
        .map(|(b, n)| b + n)
        .collect();
    let e = against_floor(paired(&base, &noisy), Some(0.0));
    assert!(!e.significant && !e.measurable, "{e:?}");
}

#[test]
fn scaling_an_estimate_keeps_its_verdict() {
    let base = [10.0, 11.0, 9.5, 10.2, 10.8, 9.9];
    let ys: Vec<f64> = base.iter().map(|b| b + 3.0).collect();
    let e = against_floor(paired(&base, &ys), Some(1.0));
    let mb = e.scaled(1e-6);
    assert_eq!(
        (mb.significant, mb.measurable, mb.n),
        (e.significant, e.measurable, e.n)
    );
    assert!((mb.estimate - e.estimate * 1e-6).abs() < 1e-15);
    assert!((mb.noise_floor.unwrap() - 1e-6).abs() < 1e-15);
    let neg = e.scaled(-1.0);
    let [lo, hi] = neg.ci.unwrap();
    assert!(
        lo <= hi,
        "a negative factor keeps the interval ordered: {neg:?}"
    );
    assert_eq!(neg.noise_floor, Some(1.0), "a floor is a size");
}
