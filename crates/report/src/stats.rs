//! Statistics over rounds: medians and seeded bootstrap confidence intervals.
//!
//! A bench run repeats every trial for a few rounds; each metric gives one value per
//! round. The report states a difference as the median with a percentile-bootstrap
//! 95% confidence interval, and calls it significant only when the interval
//! excludes zero. Everything here is deterministic: the resampling uses a small
//! seeded generator ([`SplitMix64`]), so the same input and seed always give the
//! same interval (the bench's `summary` and `bench compare` agree to the digit).

use crate::model::Estimate;

/// Resamples used when the caller has no reason to choose otherwise.
pub const DEFAULT_RESAMPLES: usize = 2000;

/// Coverage of the confidence intervals.
pub const CONFIDENCE: f64 = 0.95;

/// Median of `values` (mean of the two middle values for an even count).
///
/// Returns `None` for an empty slice. NaNs are ordered last (they do not panic).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(median_sorted(&sorted))
}

/// Median of an already sorted, non-empty slice.
fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The `q` quantile (0 ≤ q ≤ 1) of a sorted, non-empty slice, linearly interpolated.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// A small, fast, seeded generator (SplitMix64, Steele et al. 2014).
///
/// Good enough for bootstrap resampling and, unlike `rand`'s `StdRng`, its output
/// is fixed forever, so stored seeds keep reproducing the same intervals.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index in `0..n` (`n > 0`), by multiply-shift.
    pub fn index(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Paired comparison: the median over rounds of `ys[i] − xs[i]`, with a percentile
/// bootstrap 95% CI obtained by resampling rounds (pairs) with replacement.
///
/// `xs` is the baseline and `ys` the topology compared, one value per round, in the
/// same round order; extra values in the longer slice are ignored. With fewer than
/// two pairs no interval can be estimated: the CI collapses to the median and the
/// estimate is marked not significant (an empty input gives a zero estimate).
pub fn bootstrap_ci_median_diff_paired(
    xs: &[f64],
    ys: &[f64],
    seed: u64,
    resamples: usize,
) -> Estimate {
    let diffs: Vec<f64> = xs.iter().zip(ys).map(|(x, y)| y - x).collect();
    let Some(point) = median(&diffs) else {
        return undetermined(0.0);
    };
    if diffs.len() < 2 || resamples == 0 {
        return undetermined(point);
    }
    let mut rng = SplitMix64::new(seed);
    let mut sample = vec![0.0; diffs.len()];
    let mut medians = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for slot in &mut sample {
            *slot = diffs[rng.index(diffs.len())];
        }
        sample.sort_by(f64::total_cmp);
        medians.push(median_sorted(&sample));
    }
    interval(point, medians)
}

/// Unpaired comparison: `median(ys) − median(xs)`, with a percentile bootstrap 95% CI
/// obtained by resampling each side independently with replacement.
///
/// Used by `bench compare` (two runs share no rounds). With fewer than two values on
/// either side the CI collapses to the point and the estimate is not significant.
pub fn bootstrap_ci_median_diff(xs: &[f64], ys: &[f64], seed: u64, resamples: usize) -> Estimate {
    let (Some(mx), Some(my)) = (median(xs), median(ys)) else {
        return undetermined(0.0);
    };
    let point = my - mx;
    if xs.len() < 2 || ys.len() < 2 || resamples == 0 {
        return undetermined(point);
    }
    let mut rng = SplitMix64::new(seed);
    let mut sx = vec![0.0; xs.len()];
    let mut sy = vec![0.0; ys.len()];
    let mut medians = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for slot in &mut sx {
            *slot = xs[rng.index(xs.len())];
        }
        for slot in &mut sy {
            *slot = ys[rng.index(ys.len())];
        }
        sx.sort_by(f64::total_cmp);
        sy.sort_by(f64::total_cmp);
        medians.push(median_sorted(&sy) - median_sorted(&sx));
    }
    interval(point, medians)
}

/// Median with a bootstrap CI of the median itself (one sample, no comparison).
///
/// `significant` says whether the interval excludes zero.
pub fn bootstrap_ci_median(values: &[f64], seed: u64, resamples: usize) -> Estimate {
    let zeros = vec![0.0; values.len()];
    bootstrap_ci_median_diff_paired(&zeros, values, seed, resamples)
}

/// Percentile interval from bootstrap replicates.
fn interval(point: f64, mut replicates: Vec<f64>) -> Estimate {
    replicates.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    let lo = quantile_sorted(&replicates, tail);
    let hi = quantile_sorted(&replicates, 1.0 - tail);
    Estimate {
        median: point,
        ci95: [lo, hi],
        significant: !(lo <= 0.0 && hi >= 0.0),
    }
}

/// An estimate without an interval.
fn undetermined(point: f64) -> Estimate {
    Estimate {
        median: point,
        ci95: [point, point],
        significant: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn quantiles_interpolate() {
        let s = [0.0, 10.0, 20.0];
        assert_eq!(quantile_sorted(&s, 0.0), 0.0);
        assert_eq!(quantile_sorted(&s, 0.25), 5.0);
        assert_eq!(quantile_sorted(&s, 1.0), 20.0);
    }

    #[test]
    fn generator_is_seeded_and_indices_in_range() {
        let a: Vec<u64> = {
            let mut r = SplitMix64::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = SplitMix64::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        let mut r = SplitMix64::new(8);
        assert_ne!(a[0], r.next_u64());
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            counts[r.index(3)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
