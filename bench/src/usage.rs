//! Usage arithmetic: what each process tree used over a trial's window, from the edge
//! readings (CPU) and the 10 Hz series (memory, charts).

use loadgen::LoadReport;
use report::model::{roles, ProcessUsage};

use crate::sample::{Point, Target};
use crate::window::Window;

/// Per target: CPU over the window exactly (edges; the load generator's from its own
/// threads), memory peaks and means over the samples inside the window.
pub fn processes(
    targets: &[Target],
    series: &[Vec<Point>],
    window: &Window,
    report: &LoadReport,
) -> Vec<ProcessUsage> {
    let (w_start, w_end) = (window.start.at, window.end.at);
    let completed = report.completed.max(1) as f64;
    targets
        .iter()
        .enumerate()
        .map(|(i, target)| {
            let pts: Vec<&Point> = series
                .get(i)
                .map(|s| {
                    s.iter()
                        .filter(|p| p.at >= w_start && p.at <= w_end)
                        .collect()
                })
                .unwrap_or_default();
            let (cpu_s, count) = if target.role == roles::LOADGEN {
                (report.cpu.user_s + report.cpu.system_s, 1)
            } else {
                (
                    window.cpu_s(i),
                    pts.last().map_or(1, |p| p.reading.processes),
                )
            };
            let peak = |f: fn(&Point) -> u64| pts.iter().map(|p| f(p)).max().unwrap_or(0);
            let pss_mean = if pts.is_empty() {
                0
            } else {
                pts.iter().map(|p| p.reading.pss_bytes).sum::<u64>() / pts.len() as u64
            };
            let samples = pts
                .windows(2)
                .map(|w| {
                    let dt = w[1].at.duration_since(w[0].at).as_secs_f64().max(1e-6);
                    let dns = w[1].reading.cpu_ns.saturating_sub(w[0].reading.cpu_ns);
                    [
                        w[1].at.saturating_duration_since(w_start).as_secs_f64(),
                        100.0 * dns as f64 / 1e9 / dt,
                        w[1].reading.pss_bytes as f64,
                        w[1].reading.anon_bytes as f64,
                    ]
                })
                .collect();
            ProcessUsage {
                role: target.role.clone(),
                program: target.program.clone(),
                process_count: count,
                cpu_s,
                cpu_us_per_request: cpu_s * 1e6 / completed,
                pss_peak_bytes: peak(|p| p.reading.pss_bytes),
                pss_mean_bytes: pss_mean,
                anon_peak_bytes: peak(|p| p.reading.anon_bytes),
                rss_peak_bytes: peak(|p| p.reading.rss_bytes),
                samples,
            }
        })
        .collect()
}
