//! The plan of a run: which topology runs when, and at which rates.
//!
//! Rounds interleave the topologies so drift on the machine cancels out: round 1 runs
//! `A B C A'`, round 2 `A' C B A`, and so on, where `A` is the baseline and `A'` its second
//! run in the same round (A/A), whose difference from `A` is the instrument's own noise.
//! Each slot brings its topology up, runs every rate, and takes it down, so the two
//! baseline runs are two separate instances, as two topologies are.

use crate::scenario::{Rate, RatesOf};

/// One topology's turn in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Index into the run's topologies (0 is the baseline).
    pub topology: usize,
    /// 0, or 1 for the baseline's second run in the round.
    pub replicate: usize,
}

/// The slots of round `round` (from 0) for `topologies` topologies.
pub fn round_order(topologies: usize, round: usize, baseline_twice: bool) -> Vec<Slot> {
    let mut slots: Vec<Slot> = (0..topologies)
        .map(|topology| Slot {
            topology,
            replicate: 0,
        })
        .collect();
    if baseline_twice && topologies > 0 {
        slots.push(Slot {
            topology: 0,
            replicate: 1,
        });
    }
    if round % 2 == 1 {
        slots.reverse();
    }
    slots
}

/// Trials in the whole run (for the progress bar): capacity probes, the wrk check, one
/// calibration ramp per topology but the baseline, and every slot × rate.
pub fn trial_count(
    topologies: usize,
    rounds: usize,
    rates: usize,
    baseline_twice: bool,
    calibrate: bool,
) -> u64 {
    let slots = topologies + usize::from(baseline_twice && topologies > 0);
    let ramps = if calibrate {
        topologies.saturating_sub(1).max(1)
    } else {
        0
    };
    (topologies + ramps + rounds * slots * rates + 1) as u64
}

/// Absolute rates from the scenario's: percentages apply to `of` (the clean-rate ceiling
/// or the slowest capacity, per `rates_of`), rounded to whole requests per second.
pub fn resolve_rates(rates: &[Rate], of: f64) -> Vec<f64> {
    rates
        .iter()
        .map(|r| match *r {
            Rate::Absolute(v) => v,
            Rate::Percent(p) => (of * p / 100.0).round().max(1.0),
        })
        .collect()
}

/// What the percentages of a scenario refer to, in words, for the report.
pub fn describe_base(of: RatesOf) -> &'static str {
    match of {
        RatesOf::Ceiling => "the clean-rate ceiling",
        RatesOf::Capacity => "the slowest topology's closed-loop capacity",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(slots: &[Slot]) -> String {
        slots
            .iter()
            .map(|s| {
                let c = (b'A' + s.topology as u8) as char;
                if s.replicate == 1 {
                    format!("{c}'")
                } else {
                    c.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn rounds_alternate_and_the_baseline_brackets_each_round() {
        assert_eq!(names(&round_order(3, 0, true)), "A B C A'");
        assert_eq!(names(&round_order(3, 1, true)), "A' C B A");
        assert_eq!(names(&round_order(3, 2, false)), "A B C");
        assert_eq!(names(&round_order(3, 3, false)), "C B A");
        // Over two rounds each position is held by each baseline run once.
        assert_eq!(
            trial_count(3, 6, 3, true, true),
            (3 + 2 + 6 * 4 * 3 + 1) as u64
        );
    }

    #[test]
    fn percentages_apply_to_their_base() {
        let r = resolve_rates(
            &[
                Rate::Percent(50.0),
                Rate::Absolute(1234.0),
                Rate::Percent(0.001),
            ],
            10_000.0,
        );
        assert_eq!(r, vec![5000.0, 1234.0, 1.0]);
    }
}
