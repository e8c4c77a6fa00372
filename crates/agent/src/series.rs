//! Per-second series for the live page (`GET /dashboard`, fed by `GET /series`): every
//! second the agent takes a one-second window of what it received and keeps one
//! [`Point`] per second, per service, in a bounded ring ([`MAX_POINTS`]):
//!
//! - `cpu_vcpu`: the sum of the service's containers' `container.cpu.usage` (nanocores,
//!   the container check's gauge) / 10⁹: cores in use;
//! - `rss_mib`: the sum of their `container.memory.rss`, MiB;
//! - `requests_per_s`: requests answered per second over the last [`RATE_SECONDS`] s,
//!   counted as the values of the request-duration distributions below (one per
//!   request). The `tinyfish.*.requests` counts hold the same total, but each client
//!   flushes them once a second, so a one-second window holds zero, one or two flushes
//!   and the rate would jump by half; distributions are flushed every 100 ms;
//! - `p50_ms`, `p99_ms`: quantiles of the second's `tinyfish.app.request.duration` and
//!   `tinyfish.proxy.request.duration` values, all of a service's contexts merged (the
//!   DDSketch of each context, 1% relative error).
//!
//! A metric belongs to the service of its `service` tag (unified service tagging: the
//! container check takes it from `com.datadoghq.tags.service`), else its
//! `compose_service`, else its `container_name`. A container gauge missing from one
//! second (the check runs on its own one-second clock) is carried for up to
//! [`GAUGE_HOLD`] seconds, so a service's sum does not dip when one sample is late.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sketches_ddsketch::DDSketch;

use crate::aggregate::Aggregator;
use crate::parse::MetricKind;

/// Points kept: ten minutes at one a second.
pub const MAX_POINTS: usize = 600;
/// Seconds a container gauge is carried when a second had no sample of it.
pub const GAUGE_HOLD: u64 = 3;
/// Seconds the request rate is averaged over.
pub const RATE_SECONDS: usize = 2;
/// Most services followed (one line each on the page); others are left out.
pub const MAX_SERVICES: usize = 32;

/// The container check's CPU gauge, nanocores.
pub const CPU_USAGE: &str = "container.cpu.usage";
/// The container check's resident-memory gauge, bytes.
pub const MEMORY_RSS: &str = "container.memory.rss";
/// Request-duration distributions (ms; one value per request).
pub const DURATIONS: [&str; 2] = [
    "tinyfish.app.request.duration",
    "tinyfish.proxy.request.duration",
];

/// One service in one second; a figure is absent when the second had no data for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePoint {
    /// Cores in use by the service's containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_vcpu: Option<f64>,
    /// Resident memory of the service's containers, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_mib: Option<f64>,
    /// Requests answered per second (over the last [`RATE_SECONDS`] s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_s: Option<f64>,
    /// Median request duration in this second, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// 99th percentile request duration in this second, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

/// One second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// End of the second, Unix seconds (millisecond precision).
    pub t: f64,
    /// By service name.
    pub services: BTreeMap<String, ServicePoint>,
}

/// The answer of `GET /series[?since=T]`: the points after `since`, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesPage {
    /// Seconds between points.
    pub interval_secs: f64,
    /// Points kept at most (older ones are dropped).
    pub max_points: usize,
    /// The points.
    pub points: Vec<Point>,
}

/// A container gauge as last seen.
#[derive(Debug)]
struct HeldGauge {
    cpu: bool,
    service: String,
    value: f64,
    tick: u64,
}

/// The ring of points and what carries over from one second to the next.
#[derive(Debug, Default)]
pub struct Series {
    points: VecDeque<Point>,
    tick: u64,
    /// By metric name and tag set.
    gauges: HashMap<(bool, Vec<String>), HeldGauge>,
    /// The last [`RATE_SECONDS`] windows: their length and request counts by service.
    recent: VecDeque<(f64, BTreeMap<String, f64>)>,
    /// Services that have reported requests: their rate is 0, not absent, when idle.
    request_services: BTreeSet<String>,
}

/// The service a metric with these tags belongs to (see the module docs).
pub fn service_of<S: AsRef<str>>(tags: &[S]) -> Option<&str> {
    ["service", "compose_service", "container_name"]
        .iter()
        .find_map(|key| {
            tags.iter().find_map(|t| {
                let (k, v) = t.as_ref().split_once(':')?;
                (k == *key && !v.is_empty()).then_some(v)
            })
        })
}

/// The service of `tags`, or `untagged`.
fn service_name<S: AsRef<str>>(tags: &[S]) -> String {
    service_of(tags).unwrap_or("untagged").to_owned()
}

impl Series {
    /// An empty ring.
    pub fn new() -> Self {
        Series::default()
    }

    /// Adds the point of a one-second `window` that ended at `t` (Unix seconds).
    pub fn push(&mut self, window: &Aggregator, t: f64) {
        self.tick += 1;
        let snap = window.snapshot();
        let secs = snap.window_secs.max(1e-3);
        let mut counts: BTreeMap<String, f64> = BTreeMap::new();
        for m in &snap.metrics {
            match m.kind {
                MetricKind::Gauge if m.name == CPU_USAGE || m.name == MEMORY_RSS => {
                    let Some(value) = m.value else { continue };
                    let cpu = m.name == CPU_USAGE;
                    self.gauges.insert(
                        (cpu, m.tags.clone()),
                        HeldGauge {
                            cpu,
                            service: service_name(&m.tags),
                            value,
                            tick: self.tick,
                        },
                    );
                }
                MetricKind::Distribution if DURATIONS.contains(&m.name.as_str()) => {
                    *counts.entry(service_name(&m.tags)).or_default() += m.total();
                }
                _ => {}
            }
        }
        let tick = self.tick;
        self.gauges.retain(|_, g| tick - g.tick <= GAUGE_HOLD);

        let mut services: BTreeMap<String, ServicePoint> = BTreeMap::new();
        for g in self.gauges.values() {
            let p = services.entry(g.service.clone()).or_default();
            if g.cpu {
                *p.cpu_vcpu.get_or_insert(0.0) += g.value / 1e9;
            } else {
                *p.rss_mib.get_or_insert(0.0) += g.value / (1024.0 * 1024.0);
            }
        }

        for s in counts.keys() {
            if self.request_services.len() < MAX_SERVICES {
                self.request_services.insert(s.clone());
            }
        }
        self.recent.push_back((secs, counts));
        while self.recent.len() > RATE_SECONDS {
            self.recent.pop_front();
        }
        let span: f64 = self.recent.iter().map(|(s, _)| s).sum();
        for s in &self.request_services {
            let n: f64 = self.recent.iter().filter_map(|(_, c)| c.get(s)).sum();
            services.entry(s.clone()).or_default().requests_per_s = Some(n / span);
        }

        let mut merged: BTreeMap<String, DDSketch> = BTreeMap::new();
        for name in DURATIONS {
            for (tags, sketch) in window.sketches(name) {
                let service = service_name(tags);
                match merged.get_mut(&service) {
                    // Every sketch has the aggregator's one configuration.
                    Some(m) => {
                        let _ = m.merge(sketch);
                    }
                    None => {
                        merged.insert(service, sketch.clone());
                    }
                }
            }
        }
        for (service, sketch) in merged {
            let (Some(min), Some(max)) = (sketch.min(), sketch.max()) else {
                continue;
            };
            let q = |q: f64| sketch.quantile(q).ok().flatten().map(|v| v.clamp(min, max));
            let p = services.entry(service).or_default();
            p.p50_ms = q(0.5);
            p.p99_ms = q(0.99);
        }

        while services.len() > MAX_SERVICES {
            services.pop_last();
        }
        self.points.push_back(Point {
            t: (t * 1000.0).round() / 1000.0,
            services,
        });
        while self.points.len() > MAX_POINTS {
            self.points.pop_front();
        }
    }

    /// The points after `since` (all without it), oldest first.
    pub fn page(&self, since: Option<f64>) -> SeriesPage {
        SeriesPage {
            interval_secs: 1.0,
            max_points: MAX_POINTS,
            points: self
                .points
                .iter()
                .filter(|p| since.is_none_or(|s| p.t > s))
                .cloned()
                .collect(),
        }
    }

    /// Points kept.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no point is kept yet.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(lines: &[&str]) -> Aggregator {
        let mut a = Aggregator::new();
        for l in lines {
            a.ingest(l.as_bytes());
        }
        a
    }

    fn last(s: &Series, service: &str) -> ServicePoint {
        s.points.back().unwrap().services[service].clone()
    }

    #[test]
    fn the_service_comes_from_service_then_compose_service_then_container_name() {
        assert_eq!(service_of(&["env:dev", "service:app"]), Some("app"));
        assert_eq!(
            service_of(&["compose_service:web", "container_name:x-web-1"]),
            Some("web")
        );
        assert_eq!(service_of(&["container_name:x-web-1"]), Some("x-web-1"));
        assert_eq!(service_of(&["service:", "env:dev"]), None);
    }

    #[test]
    fn container_gauges_sum_per_service_in_vcpu_and_mib_and_are_held_briefly() {
        let mut s = Series::new();
        s.push(
            &window(&[
                "container.cpu.usage:250000000|g|#service:app,container_id:a",
                "container.cpu.usage:500000000|g|#service:app,container_id:b",
                "container.memory.rss:1048576|g|#service:app,container_id:a",
                "container.memory.rss:3145728|g|#service:app,container_id:b",
                "container.cpu.usage:1000000000|g|#compose_service:agent,container_id:c",
            ]),
            100.0,
        );
        let app = last(&s, "app");
        assert_eq!(app.cpu_vcpu, Some(0.75));
        assert_eq!(app.rss_mib, Some(4.0));
        assert_eq!(last(&s, "agent").cpu_vcpu, Some(1.0));
        // Only container b is sampled in the next second: a's last value is held.
        s.push(
            &window(&["container.cpu.usage:100000000|g|#service:app,container_id:b"]),
            101.0,
        );
        assert_eq!(last(&s, "app").cpu_vcpu, Some(0.35));
        for t in 0..=GAUGE_HOLD {
            s.push(&window(&[]), 102.0 + t as f64);
        }
        assert!(s.points.back().unwrap().services.is_empty());
    }

    #[test]
    fn request_rates_count_durations_over_the_last_seconds_and_fall_to_zero() {
        let mut s = Series::new();
        s.push(
            &window(&["tinyfish.app.request.duration:1:2:3|d|#service:app,status_class:2xx"]),
            1.0,
        );
        let r = last(&s, "app").requests_per_s.unwrap();
        // A window of a few microseconds: the rate is over its real length.
        assert!(r > 1000.0, "{r}");
        let mut s = Series::new();
        let w = |n: usize| {
            let values = vec!["1"; n].join(":");
            let mut a = window(&[]);
            a.ingest(
                format!("tinyfish.app.request.duration:{values}|d|#service:app,status_class:2xx")
                    .as_bytes(),
            );
            a.ingest(b"tinyfish.app.request.duration:1|d|@0.5|#service:app,status_class:5xx");
            a.ingest(
                format!("tinyfish.proxy.request.duration:{values}|d|#service:proxy").as_bytes(),
            );
            // Counts are not what the rate is made of (they come once a second).
            a.ingest(b"tinyfish.app.requests:1000|c|#service:app");
            a
        };
        for n in [10, 20, 30] {
            s.push(&w(n), 1.0);
        }
        let (a, p) = (last(&s, "app"), last(&s, "proxy"));
        let span: f64 = s.recent.iter().map(|(secs, _)| secs).sum();
        assert_eq!(s.recent.len(), RATE_SECONDS);
        // The last two windows: 20 + 30 values, and 2 × 2 for the sampled 5xx.
        assert!(
            (a.requests_per_s.unwrap() - 54.0 / span).abs() < 1e-6,
            "{a:?}"
        );
        assert!(
            (p.requests_per_s.unwrap() - 50.0 / span).abs() < 1e-6,
            "{p:?}"
        );
        for _ in 0..RATE_SECONDS {
            s.push(&window(&[]), 2.0);
        }
        assert_eq!(last(&s, "app").requests_per_s, Some(0.0));
        assert_eq!(last(&s, "app").p50_ms, None);
    }

    #[test]
    fn quantiles_merge_every_context_of_a_service() {
        let mut s = Series::new();
        let mut a = Aggregator::new();
        for i in 1..=100 {
            // Two contexts (status classes) of one service, one of another.
            let class = if i % 2 == 0 { "2xx" } else { "4xx" };
            a.ingest(
                format!("tinyfish.app.request.duration:{i}|d|#service:app,status_class:{class}")
                    .as_bytes(),
            );
            a.ingest(
                format!(
                    "tinyfish.proxy.request.duration:{}|d|#service:proxy",
                    i * 10
                )
                .as_bytes(),
            );
        }
        s.push(&a, 5.0);
        let near = |v: Option<f64>, x: f64| (v.unwrap() - x).abs() <= x * 0.03;
        let app = last(&s, "app");
        assert!(near(app.p50_ms, 50.0), "{app:?}");
        assert!(near(app.p99_ms, 99.0), "{app:?}");
        let proxy = last(&s, "proxy");
        assert!(near(proxy.p99_ms, 990.0), "{proxy:?}");
        assert!(proxy.p99_ms.unwrap() <= 1000.0);
    }

    #[test]
    fn the_ring_is_bounded_and_pages_after_since() {
        let mut s = Series::new();
        for t in 0..MAX_POINTS + 10 {
            s.push(&window(&[]), t as f64);
        }
        assert_eq!(s.len(), MAX_POINTS);
        let all = s.page(None);
        assert_eq!(all.points.first().unwrap().t, 10.0);
        let after = s.page(Some((MAX_POINTS + 7) as f64));
        assert_eq!(after.points.len(), 2);
        let json = serde_json::to_string(&after).unwrap();
        let back: SeriesPage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, after);
    }
}
