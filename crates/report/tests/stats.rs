//! The bootstrap behaves: clear shifts are significant, noise is not, and it is deterministic.

use report::stats::{
    bootstrap_ci_median, bootstrap_ci_median_diff, bootstrap_ci_median_diff_paired, median,
    SplitMix64, DEFAULT_RESAMPLES,
};

/// Deterministic noise in [-scale, scale].
fn noise(n: usize, scale: f64, seed: u64) -> Vec<f64> {
    let mut r = SplitMix64::new(seed);
    (0..n)
        .map(|_| ((r.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale)
        .collect()
}

#[test]
fn a_clear_shift_is_significant_and_the_ci_contains_the_median() {
    let base: Vec<f64> = noise(7, 5.0, 1).iter().map(|n| 100.0 + n).collect();
    let shifted: Vec<f64> = base
        .iter()
        .zip(noise(7, 3.0, 2))
        .map(|(b, n)| b + 40.0 + n)
        .collect();
    let e = bootstrap_ci_median_diff_paired(&base, &shifted, 42, DEFAULT_RESAMPLES);
    assert!(e.significant, "{e:?}");
    assert!(e.ci95[0] > 30.0 && e.ci95[1] < 50.0, "{e:?}");
    assert!(e.ci95[0] <= e.median && e.median <= e.ci95[1], "{e:?}");
    assert!((e.median - 40.0).abs() < 3.0, "{e:?}");

    let u = bootstrap_ci_median_diff(&base, &shifted, 42, DEFAULT_RESAMPLES);
    assert!(u.significant, "{u:?}");
    assert!(u.ci95[0] <= u.median && u.median <= u.ci95[1], "{u:?}");
}

#[test]
fn a_negative_shift_is_significant_too() {
    let xs = [50.0, 52.0, 49.0, 51.0, 50.5];
    let ys = [40.0, 41.0, 39.5, 40.2, 41.1];
    let e = bootstrap_ci_median_diff_paired(&xs, &ys, 1, DEFAULT_RESAMPLES);
    assert!(e.significant && e.ci95[1] < 0.0, "{e:?}");
}

#[test]
fn zero_mean_noise_is_not_significant() {
    let base: Vec<f64> = vec![100.0; 9];
    let noisy: Vec<f64> = [-3.0, 1.0, 2.0, -1.0, 0.5, -2.0, 1.5, -0.5, 0.2]
        .iter()
        .map(|n| 100.0 + n)
        .collect();
    let e = bootstrap_ci_median_diff_paired(&base, &noisy, 42, DEFAULT_RESAMPLES);
    assert!(!e.significant, "{e:?}");
    assert!(e.ci95[0] < 0.0 && e.ci95[1] > 0.0, "{e:?}");
    assert!(e.ci95[0] <= e.median && e.median <= e.ci95[1]);

    for seed in 0..20 {
        let a = noise(5, 10.0, 100 + seed);
        let b = noise(5, 10.0, 200 + seed);
        let u = bootstrap_ci_median_diff(&a, &b, seed, DEFAULT_RESAMPLES);
        assert!(u.ci95[0] <= u.median && u.median <= u.ci95[1], "{u:?}");
    }
}

#[test]
fn identical_samples_are_not_significant() {
    let xs = [10.0, 12.0, 11.0];
    let e = bootstrap_ci_median_diff(&xs, &xs, 9, DEFAULT_RESAMPLES);
    assert_eq!(e.median, 0.0);
    assert!(!e.significant, "{e:?}");
}

#[test]
fn the_bootstrap_is_deterministic_for_a_seed() {
    let xs = noise(5, 10.0, 3);
    let ys = noise(5, 10.0, 4);
    let a = bootstrap_ci_median_diff_paired(&xs, &ys, 99, DEFAULT_RESAMPLES);
    let b = bootstrap_ci_median_diff_paired(&xs, &ys, 99, DEFAULT_RESAMPLES);
    assert_eq!(a, b);
    let c = bootstrap_ci_median_diff(&xs, &ys, 99, DEFAULT_RESAMPLES);
    assert_eq!(c, bootstrap_ci_median_diff(&xs, &ys, 99, DEFAULT_RESAMPLES));
}

#[test]
fn too_few_rounds_give_no_interval() {
    let e = bootstrap_ci_median_diff_paired(&[1.0], &[5.0], 1, DEFAULT_RESAMPLES);
    assert_eq!(e.median, 4.0);
    assert_eq!(e.ci95, [4.0, 4.0]);
    assert!(!e.significant);
    let empty = bootstrap_ci_median_diff(&[], &[1.0, 2.0], 1, DEFAULT_RESAMPLES);
    assert!(!empty.significant);
    assert_eq!(median(&[]), None);
}

#[test]
fn one_sample_ci_of_the_median() {
    let e = bootstrap_ci_median(&[30.0, 31.0, 29.5, 30.5, 30.2], 5, DEFAULT_RESAMPLES);
    assert_eq!(e.median, 30.2);
    assert!(
        e.significant && e.ci95[0] >= 29.5 && e.ci95[1] <= 31.0,
        "{e:?}"
    );
}
