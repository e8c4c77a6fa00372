//! Realistic fake results for the tests and the `render` example.
//!
//! Each topology has a cost model (added latency, CPU and memory over `direct`);
//! rounds get seeded noise, so estimates are significant where the model says so.
#![allow(dead_code)]

use std::collections::BTreeMap;

use report::model::*;
use report::stats::SplitMix64;

/// What a topology costs over the app alone.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    /// Added p50 latency, µs.
    pub p50_us: f64,
    /// Proxy CPU µs per request.
    pub proxy_cpu_us: f64,
    /// Proxy RSS, MB.
    pub proxy_mb: f64,
}

/// The cost model by topology name.
pub fn cost_of(topology: &str) -> Option<Cost> {
    match topology {
        "direct" => None,
        "proxied" => Some(Cost {
            p50_us: 62.0,
            proxy_cpu_us: 31.0,
            proxy_mb: 14.0,
        }),
        "nginx" => Some(Cost {
            p50_us: 48.0,
            proxy_cpu_us: 24.0,
            proxy_mb: 6.5,
        }),
        _ => Some(Cost {
            p50_us: 80.0,
            proxy_cpu_us: 40.0,
            proxy_mb: 20.0,
        }),
    }
}

fn noise(rng: &mut SplitMix64, scale: f64) -> f64 {
    // Sum of uniforms, roughly normal, in [-scale, scale] with most mass near 0.
    let u = |r: &mut SplitMix64| (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((u(rng) + u(rng) + u(rng)) / 1.5 - 1.0) * scale
}

fn latency_at(p50: f64, percentile: f64) -> f64 {
    // Flat body, steepening tail: log latency quadratic in the number of nines.
    let n = -(1.0 - percentile / 100.0).max(1e-6).log10() - 0.5f64.log10().abs();
    p50 * (0.12 * n + 0.09 * n * n.abs()).exp()
}

/// A results file with `topologies` × `rates` × `rounds` trials, interleaved by round.
pub fn fake_results(topologies: &[&str], rates: &[f64], rounds: usize, seed: u64) -> Results {
    let mut rng = SplitMix64::new(seed);
    let measure_s = 10.0;
    let mut trials = Vec::new();
    let mut sequence = 0;
    for round in 0..rounds {
        for rate in rates {
            for topology in topologies {
                let cost = cost_of(topology);
                let load_factor = 1.0 + rate / 20_000.0;
                let app_p50 = 95.0 * load_factor + noise(&mut rng, 4.0);
                let p50 =
                    app_p50 + cost.map_or(0.0, |c| c.p50_us * load_factor) + noise(&mut rng, 5.0);
                let spectrum: Vec<[f64; 2]> = (0..=36)
                    .map(|k| {
                        let p = 100.0 * (1.0 - 0.5f64.powf(f64::from(k) / 2.0));
                        [p, latency_at(p50, p)]
                    })
                    .chain(std::iter::once([100.0, latency_at(p50, 99.9999) * 1.3]))
                    .collect();
                let latency = Latency {
                    p50,
                    p90: latency_at(p50, 90.0),
                    p99: latency_at(p50, 99.0) + noise(&mut rng, 10.0),
                    p999: latency_at(p50, 99.9) + noise(&mut rng, 30.0),
                    max: latency_at(p50, 99.9999) * 1.3,
                };
                let uncorrected = Latency {
                    p99: latency.p99 * 0.8,
                    p999: latency.p999 * 0.7,
                    max: latency.max * 0.9,
                    ..latency
                };
                let achieved = rate * (1.0 + noise(&mut rng, 0.002));
                let requests = (achieved * measure_s) as u64;
                let mut processes = Vec::new();
                let mut usage = |role: &str,
                                 program: &str,
                                 count: usize,
                                 cpu_us: f64,
                                 mb: f64,
                                 rng: &mut SplitMix64| {
                    let cpu_us = cpu_us + noise(rng, cpu_us * 0.04);
                    let bytes = mb * 1e6 + noise(rng, 0.3e6);
                    let samples: Vec<[f64; 3]> = (0..(measure_s * 10.0) as usize)
                        .map(|i| {
                            let t = i as f64 / 10.0;
                            let cpu_pct = rate * cpu_us / 1e4 + noise(rng, rate * cpu_us / 1e5);
                            [t, cpu_pct.max(0.0), bytes * (0.97 + 0.03 * t / measure_s)]
                        })
                        .collect();
                    processes.push(ProcessUsage {
                        role: role.to_string(),
                        program: program.to_string(),
                        process_count: count,
                        cpu_s: cpu_us * requests as f64 / 1e6,
                        cpu_us_per_request: cpu_us,
                        rss_peak_bytes: bytes as u64,
                        rss_mean_bytes: (bytes * 0.985) as u64,
                        samples,
                    });
                };
                usage(roles::APP, "tinyfish-app", 1, 38.0, 9.5, &mut rng);
                if let Some(c) = cost {
                    let (program, count) = if *topology == "nginx" {
                        ("nginx", 3)
                    } else {
                        ("tinyfish-proxy", 1)
                    };
                    usage(
                        roles::PROXY,
                        program,
                        count,
                        c.proxy_cpu_us,
                        c.proxy_mb,
                        &mut rng,
                    );
                }
                usage(roles::LOADGEN, "bench", 1, 12.0, 22.0, &mut rng);
                let throughput = (0..(measure_s * 10.0) as usize)
                    .map(|i| [i as f64 / 10.0, rate * (1.0 + noise(&mut rng, 0.03))])
                    .collect();
                let q = |p50: f64| Quantiles {
                    count: requests as f64,
                    p50,
                    p90: p50 * 1.3,
                    p99: p50 * 2.1,
                    max: p50 * 5.0,
                };
                let app_internal = 21.0 + noise(&mut rng, 1.0);
                let server = ServerSide {
                    app_duration_us: Some(q(app_internal)),
                    proxy_duration_us: cost.map(|c| q(app_internal + c.p50_us * 0.4 + 60.0)),
                    proxy_upstream_us: cost.map(|_| q(app_internal + 55.0)),
                    app_requests: Some(requests as f64),
                    proxy_requests: cost.map(|_| requests as f64),
                    malformed: 0,
                };
                trials.push(Trial {
                    topology: topology.to_string(),
                    rate_rps: *rate,
                    round,
                    sequence,
                    achieved_rps: achieved,
                    rate_held: true,
                    requests,
                    latency_us: latency,
                    uncorrected_latency_us: uncorrected,
                    spectrum,
                    processes,
                    errors: 0,
                    errors_by_kind: BTreeMap::new(),
                    status_counts: BTreeMap::from([("200".to_string(), requests)]),
                    late_sends: 3,
                    dropped_sends: 0,
                    server,
                    throughput,
                });
                sequence += 1;
            }
        }
    }
    let mut results = Results {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "tinyfish-bench".to_string(),
            version: "0.1.0".to_string(),
        },
        environment: Environment {
            build_profile: "dev".to_string(),
            optimized: true,
            cpus: 8,
            cpu_model: "AMD EPYC 7B13".to_string(),
            memory_bytes: 32 * 1024 * 1024 * 1024,
            kernel: "Linux 6.1.0".to_string(),
            hostname: "bench-host".to_string(),
            started_at: "2026-11-24T22:00:00Z".to_string(),
            duration_s: 612.5,
            nginx_version: topologies.contains(&"nginx").then(|| "1.22.1".to_string()),
            mode: "process".to_string(),
        },
        scenario: ScenarioEcho {
            name: "default".to_string(),
            file: Some("bench/scenarios/default.toml".to_string()),
            quick: false,
            topologies: topologies.iter().map(|t| t.to_string()).collect(),
            method: "GET".to_string(),
            path: "/hello".to_string(),
            body_bytes: 0,
            connections: 64,
            loadgen_threads: 2,
            app_threads: 2,
            proxy_threads: 2,
            warmup_s: 3.0,
            measure_s,
            rounds,
            seed,
        },
        capacity: topologies
            .iter()
            .map(|t| Capacity {
                topology: t.to_string(),
                achieved_rps: 52_000.0 / (1.0 + cost_of(t).map_or(0.0, |c| c.proxy_cpu_us / 38.0)),
                latency_us: Latency {
                    p50: 900.0,
                    p90: 1400.0,
                    p99: 2600.0,
                    p999: 4100.0,
                    max: 9000.0,
                },
            })
            .collect(),
        rates_rps: rates.to_vec(),
        results: trials,
        summary: Vec::new(),
        headline: String::new(),
        warnings: vec![
            "loadgen: 3 sends more than 1 ms late at 8000 req/s (proxied, round 1)".to_string(),
        ],
        complete: true,
        loadgen_check: None,
    };
    results.summary = report::summary::summarize(&results, report::stats::DEFAULT_RESAMPLES);
    results.headline = report::headline(&results);
    results
}
