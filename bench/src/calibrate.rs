//! The clean-rate ceiling: the highest rate at which the costliest topology leaves the
//! machine room.
//!
//! The closed loop saturates every core, so a share of closed-loop capacity says little
//! about where latency is still service time. Instead a short open-loop ramp loads the
//! costliest topology (the one with the lowest capacity) at rising shares of its capacity
//! and reads, per step, how busy the machine's CPUs were (`/proc/stat`, every process) and
//! how busy the load generator's busiest thread was. The ceiling is where the first of the
//! two reaches its threshold, interpolated between the steps around it (busy shares grow
//! about linearly with the rate). The scenario's percentage rates are shares of it.

use report::model::{Calibration, CalibrationStep, Thresholds};

/// Shares of the costliest topology's capacity the ramp tries, in order.
pub const RAMP: [f64; 7] = [0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9];

/// How close a step is to the thresholds: 1.0 at the first threshold reached.
pub fn pressure(step: &CalibrationStep, th: &Thresholds) -> f64 {
    let held = step.achieved_rps >= 0.99 * step.rate_rps;
    let p = (step.machine_busy / th.machine_busy)
        .max(step.loadgen_thread_busy / th.loadgen_thread_busy);
    if held {
        p
    } else {
        p.max(1.0)
    }
}

/// Runs the ramp on a topology of closed-loop `capacity`: `measure(rate)` loads it at
/// `rate` and reports the step. Stops at the first step at or above a threshold.
pub fn ramp<E>(
    topology: &str,
    capacity: f64,
    th: &Thresholds,
    mut measure: impl FnMut(f64) -> Result<CalibrationStep, E>,
) -> Result<Calibration, E> {
    let mut steps: Vec<CalibrationStep> = Vec::new();
    for share in RAMP {
        let step = measure((capacity * share).round().max(1.0))?;
        steps.push(step);
        if pressure(&step, th) >= 1.0 {
            break;
        }
    }
    let (ceiling_rps, note) = ceiling(&steps, th);
    Ok(Calibration {
        topology: topology.to_owned(),
        steps,
        ceiling_rps,
        note,
    })
}

/// The ceiling from the ramp's steps, with how it was found.
pub fn ceiling(steps: &[CalibrationStep], th: &Thresholds) -> (f64, String) {
    let Some(last) = steps.last() else {
        return (1.0, "no calibration step ran".into());
    };
    let crossed = steps.iter().position(|s| pressure(s, th) >= 1.0);
    match crossed {
        None => (
            last.rate_rps,
            format!(
                "the thresholds were not reached up to {} req/s ({:.0} % of capacity): that is the ceiling",
                last.rate_rps.round(),
                RAMP[steps.len() - 1] * 100.0
            ),
        ),
        Some(0) => {
            let p = pressure(&steps[0], th).max(1.0);
            (
                (steps[0].rate_rps / p).max(1.0).round(),
                format!(
                    "already at the first step ({} req/s) a threshold was reached: ceiling \
                     scaled down in proportion",
                    steps[0].rate_rps.round()
                ),
            )
        }
        Some(j) if steps[j].achieved_rps < 0.99 * steps[j].rate_rps => (
            steps[j - 1].rate_rps,
            format!(
                "the load generator did not hold {} req/s: the ceiling is the step below",
                steps[j].rate_rps.round()
            ),
        ),
        Some(j) => {
            let (a, b) = (&steps[j - 1], &steps[j]);
            let (pa, pb) = (pressure(a, th), pressure(b, th));
            let t = if pb > pa { (1.0 - pa) / (pb - pa) } else { 0.0 };
            let r = a.rate_rps + t.clamp(0.0, 1.0) * (b.rate_rps - a.rate_rps);
            (
                r.round(),
                format!(
                    "interpolated between {} req/s (below the thresholds) and {} req/s (at or above)",
                    a.rate_rps.round(),
                    b.rate_rps.round()
                ),
            )
        }
    }
}

/// The ceiling the rates are shares of: the ramps' lowest, but never above the slowest
/// topology's closed-loop capacity. The ramp watches the machine and the load generator,
/// not a service that saturates alone (a Python server bound by its interpreter lock, a
/// baseline slower than the proxies in front of it, which is not ramped): no rate can be
/// held above what a topology serves back to back. Returns the ceiling, and the warning
/// when the capacity bound it.
pub fn cap(ramped: f64, slowest: &str, capacity: f64) -> (f64, Option<String>) {
    if capacity >= ramped {
        return (ramped, None);
    }
    (
        capacity,
        Some(format!(
            "the clean-rate ceiling is {capacity:.0} req/s, the closed-loop capacity of {slowest} \
             (below the ramps' {ramped:.0} req/s): no topology is asked for more than it can \
             serve back to back"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine whose busy share grows linearly with the rate.
    fn linear(rate: f64) -> CalibrationStep {
        CalibrationStep {
            rate_rps: rate,
            achieved_rps: rate,
            machine_busy: 0.05 + rate / 100_000.0,
            loadgen_thread_busy: rate / 200_000.0,
            p50_us: 30.0,
        }
    }

    #[test]
    fn the_ceiling_is_where_the_first_threshold_is_reached() {
        let th = Thresholds {
            machine_busy: 0.6,
            loadgen_thread_busy: 0.6,
        };
        let c = ramp("proxied", 100_000.0, &th, |r| Ok::<_, ()>(linear(r))).unwrap();
        // machine 0.6 at 55 000 req/s; the ramp stops at 60 000 (0.65 ≥ 0.6).
        assert_eq!(c.steps.len(), 5, "{c:?}");
        assert!((c.ceiling_rps - 55_000.0).abs() < 1.0, "{c:?}");
        assert!(c.note.contains("interpolated"), "{}", c.note);
    }

    #[test]
    fn a_rate_not_held_counts_as_saturated() {
        let th = Thresholds::default();
        let c = ramp("proxied", 100_000.0, &th, |r| {
            let mut s = linear(r / 10.0);
            s.rate_rps = r;
            s.achieved_rps = if r > 25_000.0 { r * 0.9 } else { r };
            Ok::<_, ()>(s)
        })
        .unwrap();
        assert_eq!(c.steps.len(), 3);
        assert_eq!(c.ceiling_rps, 20_000.0, "{c:?}");
        assert!(c.note.contains("did not hold"), "{}", c.note);
    }

    #[test]
    fn thresholds_never_reached_give_the_last_step() {
        let th = Thresholds {
            machine_busy: 1.0,
            loadgen_thread_busy: 1.0,
        };
        let c = ramp("proxied", 10_000.0, &th, |r| Ok::<_, ()>(linear(r))).unwrap();
        assert_eq!(c.steps.len(), RAMP.len());
        assert_eq!(c.ceiling_rps, 9000.0);
        assert!(c.note.contains("not reached"), "{}", c.note);
    }

    #[test]
    fn saturated_from_the_start_scales_down() {
        let th = Thresholds {
            machine_busy: 0.6,
            loadgen_thread_busy: 0.6,
        };
        let c = ramp("proxied", 100_000.0, &th, |r| {
            let mut s = linear(r);
            s.machine_busy = 1.2;
            Ok::<_, ()>(s)
        })
        .unwrap();
        assert_eq!(c.steps.len(), 1);
        assert_eq!(c.ceiling_rps, 5000.0);
    }

    #[test]
    fn the_ceiling_never_exceeds_the_slowest_capacity() {
        assert_eq!(cap(5000.0, "direct", 90_000.0), (5000.0, None));
        let (c, w) = cap(3821.0, "flask", 1965.0);
        assert_eq!(c, 1965.0);
        let w = w.unwrap();
        assert!(
            w.contains("closed-loop capacity of flask") && w.contains("3821"),
            "{w}"
        );
        // With no ramp at all (infinity), the capacity is the ceiling.
        assert_eq!(cap(f64::INFINITY, "direct", 1000.0).0, 1000.0);
    }
}
