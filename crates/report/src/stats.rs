//! Statistics over rounds: medians for tables, and exact rank-based estimates for every
//! difference the report states.
//!
//! A bench run repeats every trial for a few rounds; each metric gives one value per round.
//! A difference is stated with [`crate::exact`]: the Hodges–Lehmann estimate and the
//! exact distribution-free interval of the Wilcoxon signed-rank test (rounds paired) or the
//! Mann–Whitney test (two runs), at the level that interval really has (e.g. 96.9 % with 6
//! rounds), and none at all when the rounds are too few for 95 %. A percentile bootstrap
//! over so few rounds is about [min, max] of the differences and covers less than it says
//! (87.5 % with 4 rounds); `tests/calibration.rs` shows both by simulation.
//!
//! A cost is **measurable** when its interval excludes zero and the estimate is larger
//! than the instrument's own noise floor: the same difference for the baseline against a
//! second run of itself (A/A), see [`noise_floor`].

use crate::exact;
use crate::model::Estimate;

/// The level the bench asks of every interval.
pub const CONFIDENCE: f64 = exact::CONFIDENCE;
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

/// Paired comparison over rounds: `ys[i] − xs[i]` (xs the baseline, same round order).
pub fn paired(xs: &[f64], ys: &[f64]) -> Estimate {
    from_shift(exact::paired(xs, ys))
}

/// Two independent sets of rounds (two runs): the shift of `ys` over `xs`.
pub fn unpaired(xs: &[f64], ys: &[f64]) -> Estimate {
    from_shift(exact::unpaired(xs, ys))
}

fn from_shift(shift: exact::Shift) -> Estimate {
    Estimate {
        shift,
        noise_floor: None,
        measurable: shift.significant,
    }
}

/// The noise floor an A/A comparison gives: the largest difference its interval leaves
/// plausible (the larger bound in absolute value), or without an interval the largest
/// per-round difference seen.
pub fn noise_floor(aa: &Estimate, differences: &[f64]) -> f64 {
    match aa.ci {
        Some([lo, hi]) => lo.abs().max(hi.abs()),
        None => differences
            .iter()
            .filter(|d| d.is_finite())
            .fold(0.0, |m, d| m.max(d.abs())),
    }
}

/// `e` judged against a noise floor: measurable when significant and larger than it.
pub fn against_floor(mut e: Estimate, floor: Option<f64>) -> Estimate {
    e.noise_floor = floor;
    e.measurable = e.significant && floor.is_none_or(|f| e.estimate.abs() > f);
    e
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
