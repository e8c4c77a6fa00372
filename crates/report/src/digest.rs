//! Per topology and rate, the medians over rounds that every rendering shows.

use crate::model::{roles, Latency, Results, Trial};
use crate::stats::median;
use crate::units;

/// One role's usage, medians over rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleCell {
    /// `app`, `proxy`, `loadgen`.
    pub role: String,
    /// What ran in that role.
    pub program: String,
    /// CPU µs per request.
    pub cpu_us_per_request: f64,
    /// Peak PSS, MB.
    pub pss_peak_mb: f64,
}

/// One topology at one rate: medians over its rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Topology name.
    pub topology: String,
    /// Target rate.
    pub rate_rps: f64,
    /// Rounds measured.
    pub rounds: usize,
    /// Achieved requests per second.
    pub achieved_rps: f64,
    /// Whether every round held the rate.
    pub rate_held: bool,
    /// Failed requests, summed over rounds.
    pub errors: u64,
    /// Corrected latency, µs.
    pub latency_us: Latency,
    /// Per role, in [`role_order`].
    pub roles: Vec<RoleCell>,
    /// Server-side CPU µs per request (all roles but the load generator).
    pub server_cpu_us_per_request: f64,
    /// Server-side peak PSS, MB.
    pub server_pss_peak_mb: f64,
    /// Server-side peak RssAnon, MB.
    pub server_anon_peak_mb: f64,
}

impl Cell {
    /// The role's usage, if sampled.
    pub fn role(&self, role: &str) -> Option<&RoleCell> {
        self.roles.iter().find(|r| r.role == role)
    }

    /// Server-side vCPU per 1000 requests/s.
    pub fn vcpu_per_1000_rps(&self) -> f64 {
        units::vcpu_per_1000_rps(self.server_cpu_us_per_request)
    }
}

/// Roles in display order: app, proxy, anything else, load generator last.
pub fn role_order(results: &Results) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for t in &results.results {
        for p in &t.processes {
            if !found.contains(&p.role) {
                found.push(p.role.clone());
            }
        }
    }
    let rank = |r: &str| match r {
        roles::APP => 0,
        roles::PROXY => 1,
        roles::LOADGEN => 3,
        _ => 2,
    };
    found.sort_by_key(|r| rank(r));
    found
}

/// The cell of `topology` at `rate`, or `None` when it has no trial there.
pub fn cell(results: &Results, topology: &str, rate: f64) -> Option<Cell> {
    let trials: Vec<&Trial> = results.trials(topology, rate).collect();
    if trials.is_empty() {
        return None;
    }
    let med = |f: &dyn Fn(&Trial) -> f64| {
        median(&trials.iter().map(|t| f(t)).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let latency_us = Latency {
        p50: med(&|t| t.latency_us.p50),
        p90: med(&|t| t.latency_us.p90),
        p99: med(&|t| t.latency_us.p99),
        p999: med(&|t| t.latency_us.p999),
        max: med(&|t| t.latency_us.max),
    };
    let roles = role_order(results)
        .into_iter()
        .filter_map(|role| {
            let usages: Vec<_> = trials.iter().filter_map(|t| t.process(&role)).collect();
            let first = usages.first()?;
            Some(RoleCell {
                program: first.program.clone(),
                cpu_us_per_request: median(
                    &usages
                        .iter()
                        .map(|u| u.cpu_us_per_request)
                        .collect::<Vec<_>>(),
                )
                .unwrap_or(f64::NAN),
                pss_peak_mb: units::mb(
                    median(
                        &usages
                            .iter()
                            .map(|u| u.pss_peak_bytes as f64)
                            .collect::<Vec<_>>(),
                    )
                    .unwrap_or(f64::NAN),
                ),
                role,
            })
        })
        .collect();
    Some(Cell {
        topology: topology.to_string(),
        rate_rps: rate,
        rounds: trials.len(),
        achieved_rps: med(&|t| t.achieved_rps),
        rate_held: trials.iter().all(|t| t.rate_held),
        errors: trials.iter().map(|t| t.errors).sum(),
        latency_us,
        roles,
        server_cpu_us_per_request: med(&|t| t.server_cpu_us_per_request()),
        server_pss_peak_mb: units::mb(med(&|t| t.server_pss_peak_bytes() as f64)),
        server_anon_peak_mb: units::mb(med(&|t| t.server_anon_peak_bytes() as f64)),
    })
}

/// Every cell at `rate`, topologies in plan order.
pub fn cells_at(results: &Results, rate: f64) -> Vec<Cell> {
    results
        .topologies()
        .iter()
        .filter_map(|t| cell(results, t, rate))
        .collect()
}
