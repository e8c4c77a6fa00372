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

/// Whether the estimate has a confidence interval (a single round gives none: the
/// statistics collapse the interval to the median and mark it not significant).
pub fn has_interval(e: &Estimate) -> bool {
    e.significant || e.ci95[0] != e.ci95[1]
}

/// An estimate as `median [low, high]`, followed by ` n.s.` when not significant,
/// or `median (no CI)` when there was no interval to estimate (one round).
pub fn fmt_estimate(e: &Estimate, fmt: fn(f64) -> String) -> String {
    if !has_interval(e) {
        return format!("{} (no CI)", signed(e.median, fmt));
    }
    let mut s = format!(
        "{} [{}, {}]",
        signed(e.median, fmt),
        fmt(e.ci95[0]),
        fmt(e.ci95[1])
    );
    if !e.significant {
        s.push_str(" n.s.");
    }
    s
}

/// An estimate scaled by `factor` first (e.g. bytes to MB).
pub fn scale(e: &Estimate, factor: f64) -> Estimate {
    Estimate {
        median: e.median * factor,
        ci95: [e.ci95[0] * factor, e.ci95[1] * factor],
        significant: e.significant,
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
        let e = Estimate {
            median: 2.0,
            ci95: [-1.0, 4.0],
            significant: false,
        };
        assert_eq!(fmt_estimate(&e, fmt_cpu), "+2.0 [-1.0, 4.0] n.s.");
    }
}
