//! Exact, distribution-free rank statistics for a handful of rounds.
//!
//! About 600 lines of code and 370 of tests (brute-force checks of every table): the
//! exact distributions and the intervals built on them change together.
//!
//! The bench repeats every trial for a few rounds (typically 6–12, sometimes 2–5) and
//! states each difference with an estimate and a confidence interval. Over so few rounds a
//! percentile bootstrap is roughly `[min, max]` of the differences and covers less than it
//! prints (87.5 % with 4 rounds). The methods here are exact instead: the level they state
//! is the level they have, whatever the distribution of the per-round values.
//!
//! # Methods
//!
//! - [`paired`] (and [`location`], its one-sample form): the **Wilcoxon signed-rank** test
//!   on the per-round differences `d_i = ys[i] − xs[i]`. The estimate is the
//!   Hodges–Lehmann pseudo-median, the median of the `M = n(n+1)/2` Walsh averages
//!   `(d_i + d_j)/2, i ≤ j`. The interval is `[W_(k), W_(M+1−k)]` of the sorted Walsh
//!   averages, where `k` is the largest integer with `P(T+ ≤ k−1) ≤ (1 − CONFIDENCE)/2`
//!   under the exact null distribution of the signed-rank statistic `T+` (counts of the
//!   subset sums of `1..=n` over the `2^n` sign assignments, by dynamic programming).
//! - [`unpaired`]: the **Mann–Whitney** (Wilcoxon rank-sum) test for two independent runs.
//!   The estimate is the median of the `m·n` differences `y_j − x_i`; the interval is
//!   `[D_(k), D_(mn+1−k)]` with `k` the largest integer with `P(U ≤ k−1) ≤ (1−CONFIDENCE)/2`
//!   under the exact null distribution of `U` (the coefficients of the Gaussian binomial
//!   `[m+n choose m]_q`, computed exactly in integers).
//!
//! Both intervals are the inversion of the test: the interval excludes 0 exactly when the
//! test rejects "no shift" at the interval's level, so [`Shift::significant`] is read off
//! the interval and the two never disagree.
//!
//! # The achieved level
//!
//! Rank statistics take finitely many values, so only some levels are attainable: with 6
//! pairs the choice is between 100 % (no interval) and `1 − 2/64 = 96.875 %`
//! (`[min d, max d]`); 95 % itself is not available. Each [`Shift`] carries the **achieved**
//! level, the smallest attainable level that is at least [`CONFIDENCE`] (e.g. 0.96875 for
//! 6 pairs, `1 − 10/256` for 8). With too few rounds no interval reaches [`CONFIDENCE`]
//! (fewer than [`min_paired_rounds`] pairs, or fewer than [`min_unpaired_rounds`] values
//! per side for equal sizes): then `ci` is `None` and `level` is the best level those
//! rounds could give (0.875 with 4 pairs), so a caller can say why there is no interval.
//!
//! # Assumptions
//!
//! - Paired: rounds are independent, and under "no shift" each difference is symmetric
//!   about 0; for the interval, symmetric about the true shift. This holds by construction
//!   when the two arms of a round are exchangeable (e.g. interleaved A/B rounds): a shared
//!   per-round effect (drift, a noisy neighbour) cancels in the difference. No normality,
//!   no equal variances across rounds.
//! - Unpaired: two independent samples of independent values; the test of "no
//!   difference" needs only that all values are exchangeable under it, and the interval
//!   assumes a shift model (the two distributions differ only in location).
//! - Exactness of the levels assumes continuous values (no ties). With ties (rounded
//!   values) the closed intervals are conservative, never liberal: the achieved level is
//!   then a lower bound on the coverage.
//!
//! # p-values, ties and zeros
//!
//! The p-value is exact and two-sided, `min(1, 2·min(P(S ≤ s_obs), P(S ≥ s_obs)))`, from
//! the permutation distribution conditional on the observed values, with midranks for
//! ties:
//!
//! - signed-rank: **Pratt's treatment of zeros** — all `|d_i|` are ranked, zeros included,
//!   and zeros then contribute nothing; the null distribution is that of the sum of the
//!   (mid)ranks of the non-zero differences under independent random signs. It is computed
//!   exactly by dynamic programming over doubled midranks (identical to enumerating all
//!   `2^n` sign flips, but cheap), for up to 100 non-zero differences;
//! - rank-sum: the distribution of the (mid)rank sum of one sample over all `C(m+n, m)`
//!   equally likely assignments of the pooled values; without ties it is the exact `U`
//!   distribution above, with ties it is computed by dynamic programming over doubled
//!   midranks when that is cheap (about 10⁸ steps at most).
//!
//! Beyond those sizes (more than 100 pairs; `C(m+n, m) > 2^120`; or ties in large
//! samples) the distributions are replaced by the normal approximation with continuity
//! correction, using the exact conditional mean and variance of the midrank statistic
//! (which is the usual tie correction). Then levels and p-values are approximate. The
//! bench's round counts never get there.
//!
//! # Inputs and cost
//!
//! Non-finite values are ignored: [`location`] and [`unpaired`] drop NaNs and infinities,
//! and [`paired`] drops a round whose difference is not finite (either value NaN or
//! infinite, or the difference overflowing), keeping the other rounds paired. An empty
//! input gives estimate 0, no interval, no p-value, level 0. Everything is deterministic
//! (no randomness). The cost is quadratic in the number of values (all Walsh averages or
//! all pairwise differences are sorted), meant for tens to hundreds of rounds.

use std::f64::consts::SQRT_2;

/// Two-sided confidence level the bench asks for.
pub const CONFIDENCE: f64 = 0.95;

/// Pairs (or non-zero differences) up to which the signed-rank distributions are exact
/// (counts up to `2^100` fit in `u128`).
const EXACT_MAX_PAIRS: usize = 100;

/// Largest number of arrangements `C(m+n, min(m, n))` for which the rank-sum
/// distributions are computed exactly in integers.
const EXACT_MAX_ARRANGEMENTS: u128 = 1 << 120;

/// Work budget (table cells visited) of the exact rank-sum p-value with ties.
const TIE_DP_BUDGET: u128 = 100_000_000;

/// Which test produced a [`Shift`]; written in results as its [`Method::as_str`] name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Method {
    /// Wilcoxon signed-rank on paired differences (or one sample): [`paired`], [`location`].
    #[serde(rename = "wilcoxon-signed-rank")]
    SignedRank,
    /// Mann–Whitney / Wilcoxon rank-sum on two independent samples: [`unpaired`].
    #[serde(rename = "mann-whitney")]
    RankSum,
}

impl PartialEq<&str> for Method {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Method {
    /// The method's name as written in results: `wilcoxon-signed-rank` or `mann-whitney`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::SignedRank => "wilcoxon-signed-rank",
            Method::RankSum => "mann-whitney",
        }
    }
}

/// A location shift with its exact interval (in results.json, the fields of every
/// `Estimate`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Shift {
    /// Hodges–Lehmann estimate (paired: median of Walsh averages of the differences;
    /// unpaired: median of all pairwise differences y_j − x_i).
    pub estimate: f64,
    /// Exact confidence interval at `level`, or None when no interval of at least
    /// `CONFIDENCE` exists for this n (too few rounds).
    pub ci: Option<[f64; 2]>,
    /// Achieved (exact) confidence level of `ci`: the smallest level ≥ CONFIDENCE
    /// attainable for this n, e.g. 0.96875 for n = 6 paired; when `ci` is None, the best
    /// level attainable with this n (e.g. 0.875 for n = 4) so a caller can say why.
    pub level: f64,
    /// Exact two-sided p-value of "no shift" (None when n == 0).
    pub p_value: Option<f64>,
    /// True iff `ci` is Some and excludes 0.
    pub significant: bool,
    /// Pairs (paired) or the smaller sample size (unpaired) used.
    pub n: usize,
    /// The test behind the estimate, interval and p-value.
    pub method: Method,
}

impl Shift {
    /// The result for an empty input.
    fn empty(method: Method) -> Shift {
        Shift {
            estimate: 0.0,
            ci: None,
            level: 0.0,
            p_value: None,
            significant: false,
            n: 0,
            method,
        }
    }
}

/// Paired comparison of ys against xs (same order, one value per round; extra values of
/// the longer slice ignored): Wilcoxon signed-rank on `d_i = ys[i] − xs[i]`.
///
/// A round whose difference is not finite is dropped (see the module docs).
pub fn paired(xs: &[f64], ys: &[f64]) -> Shift {
    let diffs: Vec<f64> = xs
        .iter()
        .zip(ys)
        .map(|(x, y)| y - x)
        .filter(|d| d.is_finite())
        .collect();
    signed_rank(&diffs)
}

/// One-sample location (HL pseudo-median and signed-rank interval) of `values` — used for
/// "is this quantity different from 0".
///
/// Assumes the values are symmetric about their centre; non-finite values are ignored.
pub fn location(values: &[f64]) -> Shift {
    signed_rank(&finite(values))
}

/// Unpaired comparison (two independent runs): Mann–Whitney / Wilcoxon rank-sum, HL shift
/// of ys over xs and its exact interval.
///
/// Non-finite values are ignored on each side; `n` is the smaller of the two sizes.
pub fn unpaired(xs: &[f64], ys: &[f64]) -> Shift {
    let (xs, ys) = (finite(xs), finite(ys));
    let (m, n) = (xs.len(), ys.len());
    if m == 0 || n == 0 {
        return Shift::empty(Method::RankSum);
    }
    let mut diffs = Vec::with_capacity(m * n);
    for &y in &ys {
        diffs.extend(xs.iter().map(|&x| y - x));
    }
    diffs.sort_by(f64::total_cmp);
    let null = RankSumNull::new(m, n);
    let (k, level) = null.pick_k();
    let ci = k.map(|k| [diffs[k - 1], diffs[m * n - k]]);
    let p = rank_sum_p(&xs, &ys, &null);
    finish(
        median_sorted(&diffs),
        ci,
        level,
        p,
        m.min(n),
        Method::RankSum,
    )
}

/// The fewest pairs for which `paired` can give a two-sided interval at CONFIDENCE (6).
pub fn min_paired_rounds() -> usize {
    (1..)
        .find(|&n| signed_rank_k(n).0.is_some())
        .expect("some n reaches CONFIDENCE")
}

/// The fewest values per side for which `unpaired` can give one (4 each: C(8,4)=70 →
/// 2/70 < 0.05).
pub fn min_unpaired_rounds() -> usize {
    (1..)
        .find(|&s| RankSumNull::new(s, s).pick_k().0.is_some())
        .expect("some size reaches CONFIDENCE")
}

/// The finite values of `values`, in order.
fn finite(values: &[f64]) -> Vec<f64> {
    values.iter().copied().filter(|v| v.is_finite()).collect()
}

/// One tail of the two-sided level.
fn tail() -> f64 {
    (1.0 - CONFIDENCE) / 2.0
}

/// Assembles a [`Shift`]; `significant` is read off the interval.
fn finish(
    estimate: f64,
    ci: Option<[f64; 2]>,
    level: f64,
    p: f64,
    n: usize,
    method: Method,
) -> Shift {
    let significant = matches!(ci, Some([lo, hi]) if lo > 0.0 || hi < 0.0);
    Shift {
        estimate,
        ci,
        level,
        p_value: Some(p),
        significant,
        n,
        method,
    }
}

/// Median of a sorted, non-empty slice.
fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        sorted[n / 2 - 1] / 2.0 + sorted[n / 2] / 2.0
    }
}

/// Signed-rank estimate, interval and p-value of the (finite) differences `d`.
fn signed_rank(d: &[f64]) -> Shift {
    let n = d.len();
    if n == 0 {
        return Shift::empty(Method::SignedRank);
    }
    let mut walsh = Vec::with_capacity(n * (n + 1) / 2);
    for (i, &a) in d.iter().enumerate() {
        // a/2 + b/2 equals (a + b)/2 but cannot overflow.
        walsh.extend(d[i..].iter().map(|&b| a / 2.0 + b / 2.0));
    }
    walsh.sort_by(f64::total_cmp);
    let (k, level) = signed_rank_k(n);
    let ci = k.map(|k| [walsh[k - 1], walsh[walsh.len() - k]]);
    finish(
        median_sorted(&walsh),
        ci,
        level,
        signed_rank_p(d),
        n,
        Method::SignedRank,
    )
}

/// The interval's order-statistic index `k` (1-based) for `n` pairs and its achieved
/// level; or `None` with the best attainable level.
fn signed_rank_k(n: usize) -> (Option<usize>, f64) {
    let walsh = n * (n + 1) / 2;
    if n <= EXACT_MAX_PAIRS {
        let weights: Vec<usize> = (1..=n).collect();
        let cdf = cumulative(&subset_sum_counts(&weights));
        let total = (1u128 << n) as f64;
        pick_k(walsh / 2, |c| cdf[c] as f64 / total)
    } else {
        let mean = walsh as f64 / 2.0;
        let sd = ((n * (n + 1) * (2 * n + 1)) as f64 / 24.0).sqrt();
        pick_k(walsh / 2, |c| normal_cdf((c as f64 + 0.5 - mean) / sd))
    }
}

/// Largest `k` with `lower(k − 1) ≤ tail`, where `lower(c) = P(S ≤ c)` is the lower tail of
/// a null distribution symmetric about `half`-ish (so `lower(half) ≥ 1/2`), with the
/// achieved level `1 − 2·lower(k − 1)`; or `None` and `1 − 2·lower(0)` when even `k = 1`
/// fails.
fn pick_k(half: usize, lower: impl Fn(usize) -> f64) -> (Option<usize>, f64) {
    let tail = tail();
    let p0 = lower(0);
    if p0 > tail {
        return (None, (1.0 - 2.0 * p0).max(0.0));
    }
    // Invariant: lower(lo) ≤ tail < lower(hi) (the latter as lower(half) ≥ 1/2).
    let (mut lo, mut hi) = (0, half);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if lower(mid) <= tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (Some(lo + 1), 1.0 - 2.0 * lower(lo))
}

/// `counts[s]` = number of subsets of `weights` summing to `s` (0 ≤ s ≤ Σ weights).
fn subset_sum_counts(weights: &[usize]) -> Vec<u128> {
    let total: usize = weights.iter().sum();
    let mut counts = vec![0u128; total + 1];
    counts[0] = 1;
    let mut reach = 0;
    for &w in weights {
        for s in (0..=reach).rev() {
            let c = counts[s];
            if c != 0 {
                counts[s + w] += c;
            }
        }
        reach += w;
    }
    counts
}

/// Running sums of `counts`.
fn cumulative(counts: &[u128]) -> Vec<u128> {
    counts
        .iter()
        .scan(0u128, |acc, &c| {
            *acc += c;
            Some(*acc)
        })
        .collect()
}

/// `min(1, 2·min(P(S ≤ obs), P(S ≥ obs)))` for `P(S = s) = counts[s] / total`.
fn two_sided_from_counts(counts: &[u128], obs: usize, total: u128) -> f64 {
    let obs = obs.min(counts.len() - 1);
    let lower: u128 = counts[..=obs].iter().sum();
    let upper: u128 = counts[obs..].iter().sum();
    let p = (2 * lower.min(upper)) as f64 / total as f64;
    p.min(1.0)
}

/// Two-sided normal-approximation p-value of `obs` against `mean` and `var`, with
/// continuity correction `cc` (in the statistic's units).
fn two_sided_normal(obs: f64, mean: f64, var: f64, cc: f64) -> f64 {
    if var <= 0.0 {
        return 1.0;
    }
    let z = ((obs - mean).abs() - cc).max(0.0) / var.sqrt();
    erfc(z / SQRT_2).min(1.0)
}

/// Doubled midranks (1-based ranks, ties sharing the mean rank, times two so they stay
/// integers) of `values`, and whether there were any ties.
fn doubled_midranks(values: &[f64]) -> (Vec<usize>, bool) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0; values.len()];
    let mut ties = false;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        // total_cmp puts −0.0 right before +0.0, so equal values are adjacent.
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        ties |= end - start > 1;
        // Positions start..end hold ranks start+1 ..= end; doubled mean = start + 1 + end.
        for &i in &order[start..end] {
            ranks[i] = start + 1 + end;
        }
        start = end;
    }
    (ranks, ties)
}

/// Exact two-sided signed-rank p-value (Pratt's treatment of zeros, midranks for ties).
fn signed_rank_p(d: &[f64]) -> f64 {
    let abs: Vec<f64> = d.iter().map(|v| v.abs()).collect();
    let (ranks, _) = doubled_midranks(&abs);
    let mut weights = Vec::with_capacity(d.len());
    let mut t_obs = 0;
    for (&v, &r) in d.iter().zip(&ranks) {
        if v != 0.0 {
            weights.push(r);
            if v > 0.0 {
                t_obs += r;
            }
        }
    }
    if weights.is_empty() {
        return 1.0;
    }
    if weights.len() <= EXACT_MAX_PAIRS {
        let counts = subset_sum_counts(&weights);
        two_sided_from_counts(&counts, t_obs, 1u128 << weights.len())
    } else {
        let mean = weights.iter().sum::<usize>() as f64 / 2.0;
        let var = weights.iter().map(|&w| (w as f64).powi(2)).sum::<f64>() / 4.0;
        // Doubled units: a continuity correction of half a rank is 1.
        two_sided_normal(t_obs as f64, mean, var, 1.0)
    }
}

/// The null distribution of the Mann–Whitney `U` for sizes `m` and `n` (no ties).
struct RankSumNull {
    /// Smaller and larger sample sizes.
    small: usize,
    large: usize,
    /// `counts[u]` = arrangements with `U = u`, and their total `C(m+n, small)`; `None`
    /// when too many for exact integers (then the normal approximation is used).
    exact: Option<(Vec<u128>, u128)>,
}

impl RankSumNull {
    fn new(m: usize, n: usize) -> RankSumNull {
        let (small, large) = (m.min(n), m.max(n));
        let exact = binomial(small + large, small)
            .filter(|&total| total <= EXACT_MAX_ARRANGEMENTS)
            .map(|total| (gaussian_binomial(small, large), total));
        RankSumNull {
            small,
            large,
            exact,
        }
    }

    /// See [`pick_k`]: the interval's index into the sorted differences and its level.
    fn pick_k(&self) -> (Option<usize>, f64) {
        let mn = self.small * self.large;
        match &self.exact {
            Some((counts, total)) => {
                let cdf = cumulative(counts);
                let total = *total as f64;
                pick_k(mn / 2, |c| cdf[c] as f64 / total)
            }
            None => {
                let mean = mn as f64 / 2.0;
                let sd = (mn as f64 * (self.small + self.large + 1) as f64 / 12.0).sqrt();
                pick_k(mn / 2, |c| normal_cdf((c as f64 + 0.5 - mean) / sd))
            }
        }
    }
}

/// `C(n, k)`, or `None` if it overflows `u128`.
fn binomial(n: usize, k: usize) -> Option<u128> {
    let k = k.min(n - k);
    let mut c: u128 = 1;
    for i in 1..=k {
        // c = C(n − k + i − 1, i − 1), so c·(n − k + i) is divisible by i.
        c = c.checked_mul((n - k + i) as u128)? / i as u128;
    }
    Some(c)
}

/// Coefficients of the Gaussian binomial `[small + large choose small]_q`: entry `u` is the
/// number of arrangements of the two samples with Mann–Whitney `U = u`. Computed as
/// `∏_{i=1..small} (1 − q^(large+i)) / (1 − q^i)`, each division exact; intermediate values
/// stay below twice the final total, which the caller bounds by 2^120.
fn gaussian_binomial(small: usize, large: usize) -> Vec<u128> {
    let degree = small * large;
    let mut poly = vec![0i128; degree + small + 1];
    poly[0] = 1;
    let mut d = 0;
    for i in 1..=small {
        let a = large + i;
        for k in (a..=d + a).rev() {
            poly[k] -= poly[k - a];
        }
        for k in i..=d + a {
            poly[k] += poly[k - i];
        }
        d += large;
        debug_assert!(poly[d + 1..].iter().all(|&c| c == 0));
    }
    poly.truncate(degree + 1);
    poly.into_iter().map(|c| c as u128).collect()
}

/// Exact (or, for large samples, normal-approximation) two-sided rank-sum p-value.
fn rank_sum_p(xs: &[f64], ys: &[f64], null: &RankSumNull) -> f64 {
    // Count the smaller sample's rank sum; the two-sided p-value is the same either way.
    let (small, large) = if xs.len() <= ys.len() {
        (xs, ys)
    } else {
        (ys, xs)
    };
    let s = small.len();
    let pooled: Vec<f64> = small.iter().chain(large).copied().collect();
    let n_all = pooled.len();
    let (ranks, ties) = doubled_midranks(&pooled);
    let r_obs: usize = ranks[..s].iter().sum();
    if !ties {
        if let Some((counts, total)) = &null.exact {
            // Doubled rank sum = 2·(U + s(s+1)/2).
            let u = r_obs / 2 - s * (s + 1) / 2;
            return two_sided_from_counts(counts, u, *total);
        }
    }
    let max_sum = 2 * s * n_all;
    let cost = (n_all as u128) * (s as u128 + 1) * (max_sum as u128 + 1);
    if let (Some((_, total)), true) = (&null.exact, cost <= TIE_DP_BUDGET) {
        let counts = rank_sum_tie_counts(&ranks, s, max_sum);
        return two_sided_from_counts(&counts, r_obs, *total);
    }
    let mean = (s * (n_all + 1)) as f64;
    let spread: f64 = ranks
        .iter()
        .map(|&r| (r as f64 - (n_all + 1) as f64).powi(2))
        .sum();
    let var = (s * (n_all - s)) as f64 / (n_all * (n_all - 1)) as f64 * spread;
    two_sided_normal(r_obs as f64, mean, var, 1.0)
}

/// `counts[t]` = number of `s`-subsets of the pooled values whose doubled midranks sum to
/// `t` (the permutation distribution of the rank sum given the ties).
fn rank_sum_tie_counts(ranks: &[usize], s: usize, max_sum: usize) -> Vec<u128> {
    let mut dp = vec![vec![0u128; max_sum + 1]; s + 1];
    dp[0][0] = 1;
    let mut reach = 0;
    for (i, &w) in ranks.iter().enumerate() {
        for j in (1..=s.min(i + 1)).rev() {
            let (below, here) = dp.split_at_mut(j);
            let (from, to) = (&below[j - 1], &mut here[0]);
            for t in 0..=reach {
                if from[t] != 0 {
                    to[t + w] += from[t];
                }
            }
        }
        // Any j-subset sums to at most 2N·j ≤ max_sum, so `t + w` above stays in range.
        reach = (reach + w).min(max_sum);
    }
    dp.swap_remove(s)
}

/// The standard normal distribution function.
fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / SQRT_2)
}

/// Complementary error function (Numerical Recipes' `erfcc`, fractional error < 1.2e-7),
/// used only by the large-sample normal approximations.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    /// Sorted Walsh averages, computed the obvious way.
    fn walsh(d: &[f64]) -> Vec<f64> {
        let mut w = Vec::new();
        for i in 0..d.len() {
            for j in i..d.len() {
                w.push((d[i] + d[j]) / 2.0);
            }
        }
        w.sort_by(f64::total_cmp);
        w
    }

    /// Deterministic, tie-free pseudo-random values.
    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut r = crate::stats::SplitMix64::new(seed);
        (0..n)
            .map(|_| (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 10.0 - 4.0)
            .collect()
    }

    /// Two-sided signed-rank p-value by enumerating all 2^n sign flips (Pratt, midranks).
    fn brute_signed_rank_p(d: &[f64]) -> f64 {
        let abs: Vec<f64> = d.iter().map(|v| v.abs()).collect();
        let (ranks, _) = doubled_midranks(&abs);
        let stat = |signs: &dyn Fn(usize) -> bool| -> usize {
            (0..d.len())
                .filter(|&i| d[i] != 0.0 && signs(i))
                .map(|i| ranks[i])
                .sum()
        };
        let obs = stat(&|i| d[i] > 0.0);
        let nz: Vec<usize> = (0..d.len()).filter(|&i| d[i] != 0.0).collect();
        let (mut le, mut ge, total) = (0u64, 0u64, 1u64 << nz.len());
        for mask in 0..total {
            let t = stat(&|i| {
                let pos = nz.iter().position(|&j| j == i).unwrap();
                mask >> pos & 1 == 1
            });
            le += u64::from(t <= obs);
            ge += u64::from(t >= obs);
        }
        (2.0 * le.min(ge) as f64 / total as f64).min(1.0)
    }

    /// Two-sided rank-sum p-value by enumerating all assignments of the pooled values.
    fn brute_rank_sum_p(xs: &[f64], ys: &[f64]) -> f64 {
        let pooled: Vec<f64> = xs.iter().chain(ys).copied().collect();
        let (ranks, _) = doubled_midranks(&pooled);
        let obs: usize = ranks[..xs.len()].iter().sum();
        let (mut le, mut ge, mut total) = (0u64, 0u64, 0u64);
        for mask in 0u32..1 << pooled.len() {
            if mask.count_ones() as usize != xs.len() {
                continue;
            }
            let t: usize = (0..pooled.len())
                .filter(|&i| mask >> i & 1 == 1)
                .map(|i| ranks[i])
                .sum();
            le += u64::from(t <= obs);
            ge += u64::from(t >= obs);
            total += 1;
        }
        (2.0 * le.min(ge) as f64 / total as f64).min(1.0)
    }

    #[test]
    fn method_names() {
        assert_eq!(Method::SignedRank.as_str(), "wilcoxon-signed-rank");
        assert_eq!(Method::RankSum.as_str(), "mann-whitney");
    }

    #[test]
    fn signed_rank_null_counts_for_small_n() {
        let counts = |n: usize| subset_sum_counts(&(1..=n).collect::<Vec<_>>());
        assert_eq!(counts(3), [1, 1, 1, 2, 1, 1, 1]);
        assert_eq!(counts(4), [1, 1, 1, 2, 2, 2, 2, 2, 1, 1, 1]);
        for n in [10, 60, 100] {
            let c = counts(n);
            assert_eq!(c.len(), n * (n + 1) / 2 + 1);
            assert_eq!(c.iter().sum::<u128>(), 1u128 << n, "n = {n}");
            assert!(c.iter().eq(c.iter().rev()), "symmetric, n = {n}");
        }
    }

    #[test]
    fn rank_sum_null_counts() {
        assert_eq!(gaussian_binomial(2, 2), [1, 1, 2, 1, 1]);
        assert_eq!(gaussian_binomial(1, 3), [1, 1, 1, 1]);
        for (s, l) in [(4, 4), (3, 9), (8, 8), (50, 50)] {
            let c = gaussian_binomial(s, l);
            assert_eq!(c.len(), s * l + 1);
            assert_eq!(
                c.iter().sum::<u128>(),
                binomial(s + l, s).unwrap(),
                "{s}+{l}"
            );
            assert!(c.iter().eq(c.iter().rev()), "symmetric, {s}+{l}");
        }
        // Without ties the rank-sum DP is the same distribution, indexed by 2·(U + s(s+1)/2).
        let ranks: Vec<usize> = (1..=11).map(|r| 2 * r).collect();
        let dp = rank_sum_tie_counts(&ranks, 4, 2 * 4 * 11);
        let u = gaussian_binomial(4, 7);
        for (k, &c) in u.iter().enumerate() {
            assert_eq!(dp[2 * (k + 10)], c, "U = {k}");
        }
        assert_eq!(dp.iter().sum::<u128>(), 330);
        assert_eq!(binomial(8, 4), Some(70));
        assert_eq!(binomial(200, 100), None);
    }

    #[test]
    fn six_pairs_give_the_range_at_96_875_percent() {
        let xs = [10.0, 11.0, 9.0, 10.5, 12.0, 8.0];
        let d = [1.0, -2.0, 3.5, 0.5, 4.0, -1.0];
        let ys: Vec<f64> = xs.iter().zip(d).map(|(x, d)| x + d).collect();
        let s = paired(&xs, &ys);
        assert_eq!(s.level, 1.0 - 2.0 / 64.0);
        assert_eq!(s.level, 0.96875);
        let [lo, hi] = s.ci.unwrap();
        assert!(close(lo, -2.0) && close(hi, 4.0), "{:?}", s.ci);
        assert!(!s.significant);
        assert_eq!((s.n, s.method), (6, Method::SignedRank));
        assert_eq!(min_paired_rounds(), 6);
    }

    #[test]
    fn six_positive_differences_are_significant_at_p_2_over_64() {
        let d = [0.3, 1.2, 0.7, 2.5, 0.1, 0.9];
        let s = location(&d);
        assert_eq!(s.p_value, Some(2.0 / 64.0));
        assert_eq!(s.ci, Some([0.1, 2.5]));
        assert!(s.significant);
        // The same as a paired comparison against zeros.
        assert_eq!(paired(&[0.0; 6], &d), s);
    }

    #[test]
    fn eight_pairs_use_the_4th_and_33rd_walsh_averages() {
        let d = values(8, 3);
        let s = location(&d);
        assert_eq!(s.level, 1.0 - 10.0 / 256.0);
        let w = walsh(&d);
        assert_eq!(w.len(), 36);
        let [lo, hi] = s.ci.unwrap();
        assert!(close(lo, w[3]) && close(hi, w[32]), "{:?} vs {w:?}", s.ci);
        assert!(close(s.estimate, (w[17] + w[18]) / 2.0));
    }

    #[test]
    fn ten_pairs_reach_95_12_percent() {
        let s = location(&values(10, 4));
        assert_eq!(s.level, 1.0 - 50.0 / 1024.0);
        let w = walsh(&values(10, 4));
        let [lo, hi] = s.ci.unwrap();
        assert!(close(lo, w[8]) && close(hi, w[55 - 9]));
    }

    #[test]
    fn too_few_pairs_give_no_interval_but_say_the_best_level() {
        for (n, level) in [(1, 0.0), (2, 0.5), (3, 0.75), (4, 0.875), (5, 0.9375)] {
            let s = location(&(1..=n).map(|i| i as f64).collect::<Vec<_>>());
            assert_eq!(s.ci, None, "n = {n}");
            assert_eq!(s.level, level, "n = {n}");
            assert!(!s.significant);
            assert!(s.p_value.is_some());
        }
        // All positive with 4 pairs: the smallest possible p-value, still no interval.
        assert_eq!(location(&[1.0, 2.0, 3.0, 4.0]).p_value, Some(0.125));
    }

    #[test]
    fn hodges_lehmann_on_worked_examples() {
        // Walsh averages of [1, 2, 4]: 1, 1.5, 2, 2.5, 3, 4 → median 2.25.
        assert_eq!(location(&[1.0, 2.0, 4.0]).estimate, 2.25);
        // Differences y − x: 3−1, 3−2, 5−1, 5−2 = 2, 1, 4, 3 → median 2.5.
        let s = unpaired(&[1.0, 2.0], &[3.0, 5.0]);
        assert_eq!(s.estimate, 2.5);
        assert_eq!((s.n, s.method), (2, Method::RankSum));
        // Paired: d = [2, −1, 5] → Walsh 2, 0.5, 3.5, −1, 2, 5 → median 2.
        assert_eq!(paired(&[1.0, 1.0, 0.0], &[3.0, 0.0, 5.0]).estimate, 2.0);
    }

    #[test]
    fn four_against_four_fully_separated() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        let ys = [5.0, 6.5, 7.0, 9.0];
        let s = unpaired(&xs, &ys);
        assert_eq!(s.p_value, Some(2.0 / 70.0));
        assert_eq!(s.level, 1.0 - 2.0 / 70.0);
        assert_eq!(s.ci, Some([1.0, 8.0]));
        assert!(s.significant);
        assert_eq!(s.n, 4);
        assert_eq!(min_unpaired_rounds(), 4);
        // Reversed: the same p-value, the negated interval.
        let r = unpaired(&ys, &xs);
        assert_eq!(r.p_value, s.p_value);
        assert_eq!(r.ci, Some([-8.0, -1.0]));
    }

    #[test]
    fn three_against_three_has_no_interval() {
        let s = unpaired(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert_eq!(s.ci, None);
        assert_eq!(s.level, 0.9);
        assert!(!s.significant);
        assert_eq!(s.p_value, Some(0.1));
        // Unequal sizes: 3 against 5 (C(8,3) = 56) has one.
        let s = unpaired(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0, 7.0, 8.0]);
        assert_eq!(s.level, 1.0 - 2.0 / 56.0);
        assert!(s.significant);
    }

    #[test]
    fn interval_and_p_value_agree_without_ties() {
        for seed in 0..200 {
            let n = 6 + (seed as usize % 9);
            let x = values(n, seed);
            let y: Vec<f64> = values(n, seed + 1000)
                .iter()
                .map(|v| v + (seed % 5) as f64)
                .collect();
            for s in [paired(&x, &y), unpaired(&x, &y[..n - seed as usize % 3])] {
                let p = s.p_value.unwrap();
                let alpha = 1.0 - s.level;
                assert_eq!(s.significant, p <= alpha + 1e-9, "seed {seed}: {s:?}");
                assert!(s.level >= CONFIDENCE);
                let [lo, hi] = s.ci.unwrap();
                assert!(lo <= s.estimate && s.estimate <= hi);
            }
        }
    }

    #[test]
    fn p_values_with_ties_and_zeros_match_enumeration() {
        let cases: [&[f64]; 5] = [
            &[0.0, 1.0, -1.0, 2.0, 2.0, 3.0, -0.0, 5.0],
            &[1.0, 1.0, 1.0, 1.0, -1.0],
            &[0.0, 0.0, 0.0],
            &[2.0, -2.0, 2.0, 4.0, 4.0, -4.0, 1.0, 6.0, 7.0, 7.0],
            &[0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.5],
        ];
        for d in cases {
            let s = location(d);
            let p = s.p_value.unwrap();
            assert!(close(p, brute_signed_rank_p(d)), "{d:?}: {p}");
            assert!((0.0..=1.0).contains(&p));
        }
        assert_eq!(location(&[0.0, 0.0, 0.0]).p_value, Some(1.0));
        let pairs: [(&[f64], &[f64]); 4] = [
            (&[1.0, 2.0, 2.0, 3.0], &[2.0, 3.0, 3.0, 4.0, 5.0]),
            (&[1.0, 1.0, 1.0], &[1.0, 1.0, 1.0, 1.0]),
            (
                &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                &[3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            ),
            (
                &[5.0, 5.0, 6.0, 1.0, 9.0],
                &[5.0, 7.0, 7.0, 7.0, 2.0, 9.0, 9.0],
            ),
        ];
        for (x, y) in pairs {
            let s = unpaired(x, y);
            let p = s.p_value.unwrap();
            assert!(close(p, brute_rank_sum_p(x, y)), "{x:?} {y:?}: {p}");
            assert!(close(p, brute_rank_sum_p(y, x)));
        }
        assert_eq!(unpaired(&[1.0; 3], &[1.0; 4]).p_value, Some(1.0));
    }

    #[test]
    fn ties_and_zeros_do_not_panic() {
        let s = paired(&[1.0; 8], &[1.0; 8]);
        assert_eq!(
            (s.estimate, s.ci, s.p_value),
            (0.0, Some([0.0, 0.0]), Some(1.0))
        );
        assert!(!s.significant);
        let s = location(&[0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 0.0]);
        assert!(!s.significant, "zeros keep the interval at 0: {s:?}");
        let s = unpaired(&[3.0; 6], &[3.0; 6]);
        assert_eq!(
            (s.estimate, s.ci, s.p_value),
            (0.0, Some([0.0, 0.0]), Some(1.0))
        );
        let s = unpaired(&[1.0, 1.0, 2.0, 2.0, 2.0], &[2.0, 3.0, 3.0, 3.0, 3.0]);
        assert!(s.p_value.unwrap() < 0.05);
    }

    #[test]
    fn empty_and_non_finite_inputs() {
        for s in [paired(&[], &[]), location(&[]), unpaired(&[], &[1.0])] {
            assert_eq!(s.estimate, 0.0);
            assert_eq!(
                (s.ci, s.p_value, s.level, s.significant, s.n),
                (None, None, 0.0, false, 0)
            );
        }
        assert_eq!(unpaired(&[], &[1.0]).method, Method::RankSum);
        assert_eq!(location(&[f64::NAN, f64::INFINITY]).n, 0);
        // A NaN or infinite round is dropped, the others stay paired.
        let xs = [1.0, f64::NAN, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0];
        let ys = [2.0, 1.0, 3.5, 3.0, 7.0, 6.0, 8.0, f64::NEG_INFINITY];
        let clean = paired(
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            &[2.0, 3.5, 3.0, 7.0, 6.0, 8.0],
        );
        assert_eq!(paired(&xs, &ys), clean);
        assert_eq!(clean.n, 6);
        // Extra values of the longer slice are ignored.
        assert_eq!(paired(&xs[..7], &ys[..6]), paired(&xs[..6], &ys[..6]));
        let u = unpaired(
            &[1.0, f64::NAN, 2.0, 3.0, 4.0],
            &[5.0, 6.0, f64::INFINITY, 7.0, 8.0],
        );
        assert_eq!(u, unpaired(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0]));
        // Differences that overflow are dropped rather than propagated.
        assert_eq!(paired(&[-f64::MAX], &[f64::MAX]).n, 0);
    }

    #[test]
    fn deterministic() {
        let x = values(9, 11);
        let y = values(9, 12);
        assert_eq!(paired(&x, &y), paired(&x, &y));
        assert_eq!(unpaired(&x, &y), unpaired(&x, &y));
    }

    #[test]
    fn large_samples_use_a_sound_normal_approximation() {
        // Exact at 100 pairs, normal at 101: the levels are both just above 95 %.
        let (k100, l100) = signed_rank_k(100);
        let (k101, l101) = signed_rank_k(101);
        assert!((CONFIDENCE..0.951).contains(&l100), "{l100}");
        assert!((CONFIDENCE..0.951).contains(&l101), "{l101}");
        assert!(k101.unwrap() >= k100.unwrap());
        let d: Vec<f64> = values(150, 5).iter().map(|v| v + 3.0).collect();
        let s = location(&d);
        assert!(s.significant && s.p_value.unwrap() < 1e-6, "{s:?}");
        let [lo, hi] = s.ci.unwrap();
        assert!(lo < s.estimate && s.estimate < hi);
        // Rank sum: 70 + 70 is beyond the exact range (C(140, 70) > 2^120).
        let null = RankSumNull::new(70, 70);
        assert!(null.exact.is_none());
        let (_, level) = null.pick_k();
        assert!((CONFIDENCE..0.951).contains(&level), "{level}");
        let a = values(70, 6);
        let b: Vec<f64> = values(70, 7).iter().map(|v| (v * 2.0).round()).collect();
        let s = unpaired(&a, &b);
        assert!(s.p_value.unwrap() > 0.0 && s.p_value.unwrap() <= 1.0);
        // 50 + 50 is exact, with and without ties.
        let b: Vec<f64> = values(50, 9).iter().map(|v| (v + 1.0).round()).collect();
        let s = unpaired(&values(50, 8), &b);
        assert!(s.p_value.unwrap() > 0.0 && s.ci.is_some());
    }

    #[test]
    fn normal_distribution_function() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(-1.0) - 0.158_655_253_931_457).abs() < 1e-7);
        assert!((normal_cdf(-1.959_963_985) - 0.025).abs() < 1e-7);
        assert!((normal_cdf(3.0) - 0.998_650_101_968_37).abs() < 1e-7);
        assert!((erfc(1.0) - 0.157_299_207_050_285).abs() < 1e-7);
    }
}
