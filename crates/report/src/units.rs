//! Quantities as the reader sees them: conversions and number formatting.
//!
//! - CPU: µs of CPU per request; `vCPU per 1000 req/s` is the same figure / 1000
//!   (1000 req/s × c µs/req = c ms of CPU per second = c / 1000 of one CPU).
//! - Memory: MB, 10^6 bytes.
//! - Latency: µs; values under 10 keep one decimal.

use crate::model::Estimate;

/// Bytes in one MB (decimal, as the report labels it).
pub const BYTES_PER_MB: f64 = 1_000_000.0;

/// vCPU used per 1000 requests/s for a cost of `cpu_us_per_request` µs of CPU per request.
pub fn vcpu_per_1000_rps(cpu_us_per_request: f64) -> f64 {
    cpu_us_per_request / 1000.0
}

/// Bytes as MB.
pub fn mb(bytes: f64) -> f64 {
    bytes / BYTES_PER_MB
}

/// A latency in µs: one decimal under 10, else whole µs.
pub fn fmt_us(v: f64) -> String {
    fmt_adaptive(v)
}

/// A rate in requests per second, whole.
pub fn fmt_rps(v: f64) -> String {
    fixed(v, 0)
}

/// CPU µs per request, one decimal.
pub fn fmt_cpu(v: f64) -> String {
    fixed(v, 1)
}

/// vCPU per 1000 req/s, three decimals (four under 0.01).
pub fn fmt_vcpu(v: f64) -> String {
    if v.abs() < 0.01 && v != 0.0 {
        fixed(v, 4)
    } else {
        fixed(v, 3)
    }
}

/// MB, one decimal.
pub fn fmt_mb(v: f64) -> String {
    fixed(v, 1)
}

/// A number with `decimals` places, `–` when not finite.
pub fn fixed(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "–".to_string();
    }
    let s = format!("{v:.decimals$}");
    // "-0.0" reads as a sign error; show zero plainly.
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// Whole numbers from 10 on, one decimal below (two below 1).
pub fn fmt_adaptive(v: f64) -> String {
    let a = v.abs();
    if a >= 10.0 {
        fixed(v, 0)
    } else if a >= 1.0 {
        fixed(v, 1)
    } else {
        fixed(v, 2)
    }
}

/// A signed number (`+12`, `-3.4`) in the given format.
pub fn signed(v: f64, fmt: fn(f64) -> String) -> String {
    let s = fmt(v);
    if v > 0.0 && !s.starts_with('-') && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
        format!("+{s}")
    } else {
        s
    }
}

/// Whether the estimate has a confidence interval (too few rounds give none).
pub fn has_interval(e: &Estimate) -> bool {
    e.ci.is_some()
}

/// An estimate as `estimate [low, high]` with a verdict: ` n.s.` when the interval spans
/// zero, ` (noise)` when significant but inside the noise floor, `(no CI: n rounds)` when
/// the rounds were too few for a 95 % interval. The level is said once per table.
pub fn fmt_estimate(e: &Estimate, fmt: fn(f64) -> String) -> String {
    let Some([lo, hi]) = e.ci else {
        return format!("{} (no CI: {} rounds)", signed(e.estimate, fmt), e.n);
    };
    let mut s = format!("{} [{}, {}]", signed(e.estimate, fmt), fmt(lo), fmt(hi));
    if !e.significant {
        s.push_str(" n.s.");
    } else if !e.measurable {
        s.push_str(" (noise)");
    }
    s
}

/// A cost in prose: the number when measurable, else why not.
pub fn fmt_cost(e: &Estimate, fmt: fn(f64) -> String, unit: &str) -> String {
    if e.measurable {
        format!("{} {unit}", signed(e.estimate, fmt))
    } else if e.ci.is_none() {
        format!(
            "{} {unit} (no interval: too few rounds)",
            signed(e.estimate, fmt)
        )
    } else {
        format!("no measurable {unit}")
    }
}

/// Bytes as a short human size for prose (`1.2 GB`, `16.0 MB`).
pub fn fmt_bytes_human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else {
        format!("{:.1} MB", b / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_us(1234.4), "1234");
        assert_eq!(fmt_us(5.55), "5.5");
        assert_eq!(fmt_us(0.123), "0.12");
        assert_eq!(fixed(-0.01, 1), "0.0");
        assert_eq!(fixed(f64::NAN, 1), "–");
        assert_eq!(signed(3.0, fmt_cpu), "+3.0");
        assert_eq!(signed(-3.0, fmt_cpu), "-3.0");
        assert_eq!(signed(0.0, fmt_cpu), "0.0");
        assert_eq!(fmt_vcpu(vcpu_per_1000_rps(52.0)), "0.052");
        let mut e = Estimate {
            shift: crate::exact::Shift {
                estimate: 2.0,
                ci: Some([-1.0, 4.0]),
                level: 0.96875,
                p_value: Some(0.4),
                significant: false,
                n: 6,
                method: crate::exact::Method::SignedRank,
            },
            noise_floor: None,
            measurable: false,
        };
        assert_eq!(fmt_estimate(&e, fmt_cpu), "+2.0 [-1.0, 4.0] n.s.");
        assert_eq!(fmt_cost(&e, fmt_cpu, "µs"), "no measurable µs");
        e.ci = Some([1.0, 4.0]);
        e.significant = true;
        e.noise_floor = Some(3.0);
        assert_eq!(fmt_estimate(&e, fmt_cpu), "+2.0 [1.0, 4.0] (noise)");
        e.measurable = true;
        assert_eq!(fmt_cost(&e, fmt_cpu, "µs"), "+2.0 µs");
        e.ci = None;
        assert_eq!(fmt_estimate(&e, fmt_cpu), "+2.0 (no CI: 6 rounds)");
    }
}
