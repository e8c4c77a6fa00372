//! One trial's record: what the load generator measured, what each process used and what
//! the servers reported, as a [`Trial`] of the results.

use loadgen::LoadReport;
use report::model::{self, LoadgenAccuracy, ProcessUsage, ServerSide, Trial};

use crate::window::Window;

/// Which trial this is.
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    /// Topology name.
    pub topology: &'a str,
    /// Target rate.
    pub rate: f64,
    /// Round, from 0.
    pub round: usize,
    /// 0, or 1 for the baseline's second run in the round.
    pub replicate: usize,
    /// Position in the run.
    pub sequence: usize,
}

/// The trial's record.
pub fn build(
    at: Position<'_>,
    report: &LoadReport,
    processes: Vec<ProcessUsage>,
    window: &Window,
) -> Trial {
    let server = window.agent.as_ref().map(server_side).unwrap_or_default();
    let mut errors_by_kind = report.errors.clone();
    let mut non_2xx = 0;
    for (status, n) in &report.status_counts {
        if !(200..300).contains(status) {
            non_2xx += n;
            *errors_by_kind
                .entry(format!("status_{}xx", status / 100))
                .or_default() += n;
        }
    }
    Trial {
        topology: at.topology.to_owned(),
        rate_rps: at.rate,
        round: at.round,
        replicate: at.replicate,
        sequence: at.sequence,
        achieved_rps: report.achieved_rps,
        rate_held: report.rate_held,
        requests: report.completed,
        latency_us: latency(&report.latency_us),
        uncorrected_latency_us: latency(&loadgen::LatencyUs::from_histogram(
            &report.latency_uncorrected,
        )),
        spectrum: report
            .percentile_spectrum()
            .into_iter()
            .map(|(p, us)| [p, us])
            .collect(),
        processes,
        errors: report.error_count() + non_2xx,
        errors_by_kind,
        status_counts: report
            .status_counts
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        late_sends: report.late_sends,
        dropped_sends: report.dropped_sends,
        server,
        throughput: report
            .timeline
            .iter()
            .map(|p| {
                [
                    p.t_s,
                    p.completed as f64 / loadgen::report::TIMELINE_BUCKET.as_secs_f64(),
                ]
            })
            .collect(),
        machine_busy: window.machine_busy(),
        loadgen_thread_busy: report.cpu.busiest_thread,
        loadgen: LoadgenAccuracy {
            timestamps: match report.timestamps {
                loadgen::TimestampSource::Kernel => "kernel".into(),
                loadgen::TimestampSource::UserSpace => "user_space".into(),
            },
            kernel_timestamped: report.kernel_timestamped,
            send_lag_us: latency(&report.send_lag_us),
            read_delay_us: latency(&report.read_delay_us),
            early_sends: report.early_sends,
            tls_handshakes: report.tls.map(|t| model::Handshakes {
                count: t.handshakes,
                resumed: t.resumed,
                p50_us: t.handshake_us.p50,
                p99_us: t.handshake_us.p99,
            }),
        },
    }
}

/// Percentiles in the results' shape.
pub fn latency(l: &loadgen::LatencyUs) -> model::Latency {
    model::Latency {
        p50: l.p50,
        p90: l.p90,
        p99: l.p99,
        p999: l.p999,
        max: l.max,
    }
}

/// The servers' own view of the window, from their DogStatsD metrics (ms → µs).
pub fn server_side(snap: &agent::Snapshot) -> ServerSide {
    let quantiles = |name: &str| {
        snap.metrics
            .iter()
            .filter(|m| m.name == name && m.count.is_some())
            .max_by(|a, b| a.count.unwrap_or(0.0).total_cmp(&b.count.unwrap_or(0.0)))
            .map(|m| model::Quantiles {
                count: m.count.unwrap_or(0.0),
                p50: m.p50.unwrap_or(0.0) * 1000.0,
                p90: m.p90.unwrap_or(0.0) * 1000.0,
                p99: m.p99.unwrap_or(0.0) * 1000.0,
                max: m.max.unwrap_or(0.0) * 1000.0,
            })
    };
    let total = |name: &str| {
        let t = snap.total(name, &[]);
        (t > 0.0).then_some(t)
    };
    ServerSide {
        app_duration_us: quantiles(telemetry::names::APP_REQUEST_DURATION),
        proxy_duration_us: quantiles(telemetry::names::PROXY_REQUEST_DURATION),
        proxy_upstream_us: quantiles(telemetry::names::PROXY_UPSTREAM_DURATION),
        app_requests: total(telemetry::names::APP_REQUESTS),
        proxy_requests: total(telemetry::names::PROXY_REQUESTS),
        malformed: snap.malformed,
    }
}
