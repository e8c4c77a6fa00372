//! The report's tables, built from a [`Results`]; each rendering picks its layout.
//!
//! The terminal gets narrow tables (≤ 120 columns: latency and resources apart);
//! `summary.md` and `report.html` get one wide table per rate.

use crate::digest::{self, Cell};
use crate::model::{roles, Results, SummaryRow};
use crate::table::{Align, Table};
use crate::units::{self, fmt_cpu, fmt_estimate, fmt_mb, fmt_rps, fmt_us, fmt_vcpu};

/// Rates in run order, labelled as the tables label them.
pub fn rate_label(rate: f64) -> String {
    format!("{} req/s", fmt_rps(rate))
}

/// The summary rows to show: the stored ones, or computed when the file has none.
pub fn summary_rows(results: &Results) -> Vec<SummaryRow> {
    if results.summary.is_empty() {
        crate::summary::summarize(results)
    } else {
        results.summary.clone()
    }
}

fn server_roles(results: &Results) -> Vec<String> {
    digest::role_order(results)
        .into_iter()
        .filter(|r| r != roles::LOADGEN)
        .collect()
}

fn has_loadgen(results: &Results) -> bool {
    digest::role_order(results)
        .iter()
        .any(|r| r == roles::LOADGEN)
}

fn held(c: &Cell) -> String {
    if c.rate_held {
        "yes".to_string()
    } else {
        "NO".to_string()
    }
}

/// Latency at one rate: achieved rps, corrected percentiles, errors, whether the rate held.
pub fn latency_table(cells: &[Cell]) -> Table {
    let mut t = Table::new([
        ("topology", Align::Left),
        ("achieved rps", Align::Right),
        ("p50 µs", Align::Right),
        ("p90 µs", Align::Right),
        ("p99 µs", Align::Right),
        ("p99.9 µs", Align::Right),
        ("max µs", Align::Right),
        ("errors", Align::Right),
        ("rate held", Align::Left),
    ]);
    for c in cells {
        let l = &c.latency_us;
        t.row(vec![
            c.topology.clone(),
            fmt_rps(c.achieved_rps),
            fmt_us(l.p50),
            fmt_us(l.p90),
            fmt_us(l.p99),
            fmt_us(l.p999),
            fmt_us(l.max),
            c.errors.to_string(),
            held(c),
        ]);
    }
    t
}

/// CPU and memory at one rate: µs/req per process and total, vCPU per 1000 rps, peak RSS MB.
pub fn resource_table(results: &Results, cells: &[Cell]) -> Table {
    let server = server_roles(results);
    let loadgen = has_loadgen(results);
    let mut cols: Vec<(String, Align)> = vec![("topology".into(), Align::Left)];
    cols.extend(server.iter().map(|r| (format!("{r} µs/req"), Align::Right)));
    cols.push(("total µs/req".into(), Align::Right));
    cols.push(("vCPU/1k rps".into(), Align::Right));
    cols.extend(server.iter().map(|r| (format!("{r} PSS MB"), Align::Right)));
    if loadgen {
        cols.push(("loadgen µs/req".into(), Align::Right));
        cols.push(("loadgen MB".into(), Align::Right));
    }
    let mut t = Table::new(cols);
    for c in cells {
        let mut row = vec![c.topology.clone()];
        let cpu = |r: &str| {
            c.role(r)
                .map_or("–".to_string(), |x| fmt_cpu(x.cpu_us_per_request))
        };
        let mem = |r: &str| c.role(r).map_or("–".to_string(), |x| fmt_mb(x.pss_peak_mb));
        row.extend(server.iter().map(|r| cpu(r)));
        row.push(fmt_cpu(c.server_cpu_us_per_request));
        row.push(fmt_vcpu(c.vcpu_per_1000_rps()));
        row.extend(server.iter().map(|r| mem(r)));
        if loadgen {
            row.push(cpu(roles::LOADGEN));
            row.push(mem(roles::LOADGEN));
        }
        t.row(row);
    }
    t
}

/// Latency and resources in one wide table (Markdown and HTML).
pub fn wide_table(results: &Results, cells: &[Cell]) -> Table {
    let server = server_roles(results);
    let mut cols: Vec<(String, Align)> = vec![
        ("topology".into(), Align::Left),
        ("achieved rps".into(), Align::Right),
        ("p50 µs".into(), Align::Right),
        ("p90 µs".into(), Align::Right),
        ("p99 µs".into(), Align::Right),
        ("p99.9 µs".into(), Align::Right),
    ];
    cols.extend(
        server
            .iter()
            .map(|r| (format!("{r} CPU µs/req"), Align::Right)),
    );
    cols.push(("total CPU µs/req".into(), Align::Right));
    cols.push(("vCPU per 1000 rps".into(), Align::Right));
    cols.extend(
        server
            .iter()
            .map(|r| (format!("{r} peak PSS MB"), Align::Right)),
    );
    let loadgen = has_loadgen(results);
    if loadgen {
        cols.push(("loadgen CPU µs/req".into(), Align::Right));
    }
    cols.push(("total RssAnon MB".into(), Align::Right));
    cols.push(("errors".into(), Align::Right));
    let mut t = Table::new(cols);
    for c in cells {
        let l = &c.latency_us;
        let mut row = vec![
            c.topology.clone(),
            if c.rate_held {
                fmt_rps(c.achieved_rps)
            } else {
                format!("{} (not held)", fmt_rps(c.achieved_rps))
            },
            fmt_us(l.p50),
            fmt_us(l.p90),
            fmt_us(l.p99),
            fmt_us(l.p999),
        ];
        row.extend(server.iter().map(|r| {
            c.role(r)
                .map_or("–".to_string(), |x| fmt_cpu(x.cpu_us_per_request))
        }));
        row.push(fmt_cpu(c.server_cpu_us_per_request));
        row.push(fmt_vcpu(c.vcpu_per_1000_rps()));
        row.extend(
            server
                .iter()
                .map(|r| c.role(r).map_or("–".to_string(), |x| fmt_mb(x.pss_peak_mb))),
        );
        if loadgen {
            row.push(
                c.role(roles::LOADGEN)
                    .map_or("–".to_string(), |x| fmt_cpu(x.cpu_us_per_request)),
            );
        }
        row.push(fmt_mb(c.server_anon_peak_mb));
        row.push(c.errors.to_string());
        t.row(row);
    }
    t
}

/// `12 345 req/s`, or `12 345 req/s ⚑` when the rate is flagged (not clean).
pub fn rate_mark(results_clean: bool, rate: f64) -> String {
    if results_clean {
        rate_label(rate)
    } else {
        format!("{} ⚑", rate_label(rate))
    }
}

/// Added latency against the baseline (terminal layout).
pub fn added_latency_table(rows: &[SummaryRow]) -> Table {
    let mut t = Table::new([
        ("rate", Align::Right),
        ("topology", Align::Left),
        ("added p50 µs", Align::Right),
        ("added p90 µs", Align::Right),
        ("added p99 µs", Align::Right),
    ]);
    for r in rows {
        t.row(vec![
            rate_mark(r.clean, r.rate_rps),
            r.topology.clone(),
            fmt_estimate(&r.added_latency_us.p50, fmt_us),
            fmt_estimate(&r.added_latency_us.p90, fmt_us),
            fmt_estimate(&r.added_latency_us.p99, fmt_us),
        ]);
    }
    t
}

/// Added CPU and memory against the baseline (terminal layout).
pub fn added_resources_table(rows: &[SummaryRow]) -> Table {
    let mut t = Table::new([
        ("rate", Align::Right),
        ("topology", Align::Left),
        ("added CPU µs/req", Align::Right),
        ("added vCPU/1k rps", Align::Right),
        ("added PSS MB", Align::Right),
    ]);
    for r in rows {
        t.row(vec![
            rate_mark(r.clean, r.rate_rps),
            r.topology.clone(),
            fmt_estimate(&r.added_cpu_us_per_request, fmt_cpu),
            fmt_estimate(&r.added_vcpu_per_1000_rps, fmt_vcpu),
            fmt_estimate(&r.added_pss_bytes.scaled(1.0 / units::BYTES_PER_MB), fmt_mb),
        ]);
    }
    t
}

/// Everything added against the baseline in one table (Markdown and HTML).
pub fn comparison_table(rows: &[SummaryRow]) -> Table {
    let mut t = Table::new([
        ("rate", Align::Right),
        ("topology", Align::Left),
        ("rounds", Align::Right),
        ("added p50 µs", Align::Right),
        ("added p90 µs", Align::Right),
        ("added p99 µs", Align::Right),
        ("added CPU µs/req", Align::Right),
        ("added vCPU/1000 rps", Align::Right),
        ("added PSS MB", Align::Right),
        ("added RssAnon MB", Align::Right),
        ("proxy internal p50 µs", Align::Right),
    ]);
    for r in rows {
        t.row(vec![
            rate_mark(r.clean, r.rate_rps),
            r.topology.clone(),
            r.rounds.to_string(),
            fmt_estimate(&r.added_latency_us.p50, fmt_us),
            fmt_estimate(&r.added_latency_us.p90, fmt_us),
            fmt_estimate(&r.added_latency_us.p99, fmt_us),
            fmt_estimate(&r.added_cpu_us_per_request, fmt_cpu),
            fmt_estimate(&r.added_vcpu_per_1000_rps, fmt_vcpu),
            fmt_estimate(&r.added_pss_bytes.scaled(1.0 / units::BYTES_PER_MB), fmt_mb),
            fmt_estimate(
                &r.added_anon_bytes.scaled(1.0 / units::BYTES_PER_MB),
                fmt_mb,
            ),
            r.proxy_internal_p50_us.map_or("–".to_string(), fmt_us),
        ]);
    }
    t
}

/// The instrument's noise floor per rate: the baseline against itself (A/A).
pub fn noise_table(results: &Results) -> Table {
    let mut t = Table::new([
        ("rate", Align::Right),
        ("rounds", Align::Right),
        ("p50 µs", Align::Right),
        ("p90 µs", Align::Right),
        ("p99 µs", Align::Right),
        ("CPU µs/req", Align::Right),
        ("PSS MB", Align::Right),
    ]);
    let floor = |e: &crate::model::Estimate, _: &[f64], f: fn(f64) -> String| {
        e.noise_floor
            .map_or("–".to_string(), |v| format!("±{}", f(v)))
    };
    for n in &results.noise_floor {
        t.row(vec![
            rate_mark(results.is_clean(n.rate_rps), n.rate_rps),
            n.rounds.to_string(),
            floor(&n.p50_us, &[], fmt_us),
            floor(&n.p90_us, &[], fmt_us),
            floor(&n.p99_us, &[], fmt_us),
            floor(&n.cpu_us_per_request, &[], fmt_cpu),
            floor(&n.pss_bytes.scaled(1.0 / units::BYTES_PER_MB), &[], fmt_mb),
        ]);
    }
    t
}

/// The load generator's own share of the figures, per topology and rate (medians over
/// rounds): its send lag (part of the corrected latency) and read delay (part of none).
pub fn loadgen_table(results: &Results) -> Table {
    let mut t = Table::new([
        ("rate", Align::Right),
        ("topology", Align::Left),
        ("send lag p50 µs", Align::Right),
        ("send lag p99 µs", Align::Right),
        ("read delay p50 µs", Align::Right),
        ("CPU µs/req", Align::Right),
        ("busiest thread", Align::Right),
        ("machine", Align::Right),
    ]);
    for rate in &results.rates_rps {
        for topo in results.topologies() {
            let trials: Vec<_> = results.trials(&topo, *rate).collect();
            if trials.is_empty() {
                continue;
            }
            let med = |f: &dyn Fn(&crate::model::Trial) -> f64| {
                crate::stats::median(&trials.iter().map(|t| f(t)).collect::<Vec<_>>())
                    .unwrap_or(f64::NAN)
            };
            // Without kernel timestamps the read delay is part of the latency: say so in
            // the cell (the run also warns).
            let kernel = trials.iter().all(|t| t.loadgen.timestamps == "kernel");
            let read = fmt_us(med(&|t| t.loadgen.read_delay_us.p50));
            t.row(vec![
                rate_mark(results.is_clean(*rate), *rate),
                topo.clone(),
                fmt_us(med(&|t| t.loadgen.send_lag_us.p50)),
                fmt_us(med(&|t| t.loadgen.send_lag_us.p99)),
                if kernel {
                    read
                } else {
                    "no kernel ts".to_string()
                },
                fmt_cpu(med(&|t| {
                    t.process(roles::LOADGEN)
                        .map_or(f64::NAN, |p| p.cpu_us_per_request)
                })),
                format!("{:.0} %", 100.0 * med(&|t| t.loadgen_thread_busy)),
                format!("{:.0} %", 100.0 * med(&|t| t.machine_busy)),
            ]);
        }
    }
    t
}

/// Closed-loop capacity per topology.
pub fn capacity_table(results: &Results) -> Table {
    let mut t = Table::new([
        ("topology", Align::Left),
        ("capacity rps", Align::Right),
        ("p50 µs at saturation", Align::Right),
        ("p99 µs at saturation", Align::Right),
    ]);
    for c in &results.capacity {
        t.row(vec![
            c.topology.clone(),
            fmt_rps(c.achieved_rps),
            fmt_us(c.latency_us.p50),
            fmt_us(c.latency_us.p99),
        ]);
    }
    t
}

/// One line on where and how the run happened, and what it did not cover.
pub fn environment_line(results: &Results) -> String {
    let e = &results.environment;
    let s = &results.scenario;
    let rates: Vec<String> = results.rates_rps.iter().map(|r| fmt_rps(*r)).collect();
    let mut line = format!(
        "{} ({} vCPU, {}, {} RAM), {}, {} build{}, {} mode; scenario {}{}; rates {} req/s; {} round{} of {} s (+{} s warm-up); {} connections",
        e.hostname,
        e.cpus,
        e.cpu_model,
        units::fmt_bytes_human(e.memory_bytes),
        e.kernel,
        e.build_profile,
        if e.optimized { " (optimised)" } else { " (NOT optimised)" },
        e.mode,
        s.name,
        if s.quick { " (quick)" } else { "" },
        rates.join(" / "),
        s.rounds,
        if s.rounds == 1 { "" } else { "s" },
        units::fmt_adaptive(s.measure_s),
        units::fmt_adaptive(s.warmup_s),
        s.connections,
    );
    if let Some(v) = &e.nginx_version {
        line.push_str(&format!("; nginx {v}"));
    }
    for (program, v) in e.versions.iter().filter(|(p, _)| p.as_str() != "nginx") {
        line.push_str(&format!("; {program}: {v}"));
    }
    let gaps = not_covered(results);
    if gaps.is_empty() {
        line.push('.');
    } else {
        line.push_str(&format!("; not covered: {}.", gaps.join("; ")));
    }
    line
}

/// What the run did not cover: planned topologies without trials, cells with fewer
/// rounds than planned, rates not held, an interrupted run.
pub fn not_covered(results: &Results) -> Vec<String> {
    let mut gaps = Vec::new();
    if !results.complete {
        gaps.push("the run did not complete (partial results)".to_string());
    }
    let skipped: Vec<&String> = results
        .scenario
        .topologies
        .iter()
        .filter(|t| {
            // A multi-shape run keeps its trials in each shape's results.
            let ran = |rs: &Results| rs.results.iter().any(|r| &r.topology == *t);
            !ran(results) && !results.shapes.iter().any(|s| ran(&s.results))
        })
        .collect();
    if !skipped.is_empty() {
        let names: Vec<&str> = skipped.iter().map(|s| s.as_str()).collect();
        gaps.push(format!("topologies not run: {}", names.join(", ")));
    }
    let mut short = Vec::new();
    let mut not_held = Vec::new();
    for rate in &results.rates_rps {
        for c in digest::cells_at(results, *rate) {
            if c.rounds < results.scenario.rounds {
                short.push(format!("{} at {}", c.topology, rate_label(*rate)));
            }
            if !c.rate_held {
                not_held.push(format!("{} at {}", c.topology, rate_label(*rate)));
            }
        }
    }
    if !short.is_empty() {
        gaps.push(format!("fewer rounds than planned: {}", short.join(", ")));
    }
    if !not_held.is_empty() {
        gaps.push(format!("rate not held: {}", not_held.join(", ")));
    }
    gaps
}

/// Memory of each topology against the baseline's, in one sentence (the original post's
/// question, "memory more than doubled?"): the median over rounds of each trial's peak PSS,
/// summed over every process tree but the load generator, at the lowest rate every
/// topology ran (memory there is least the load's). `None` with fewer than two topologies.
pub fn memory_line(results: &Results) -> Option<String> {
    let topologies = results.topologies();
    let rate = results
        .rates_rps
        .iter()
        .copied()
        .filter(|r| {
            let cells = digest::cells_at(results, *r);
            topologies
                .iter()
                .all(|t| cells.iter().any(|c| &c.topology == t))
        })
        .min_by(f64::total_cmp)?;
    let cells = digest::cells_at(results, rate);
    let base = cells.iter().find(|c| c.topology == topologies[0])?;
    if cells.len() < 2 || base.server_pss_peak_mb <= 0.0 {
        return None;
    }
    let each: Vec<String> = cells
        .iter()
        .map(|c| {
            if c.topology == base.topology {
                format!("{} {} MB", c.topology, fmt_mb(c.server_pss_peak_mb))
            } else {
                format!(
                    "{} {} MB ({:.2}×)",
                    c.topology,
                    fmt_mb(c.server_pss_peak_mb),
                    c.server_pss_peak_mb / base.server_pss_peak_mb
                )
            }
        })
        .collect();
    Some(format!(
        "Memory against {} (peak PSS of every process but the load generator, median of rounds \
         at {}): {}",
        base.topology,
        rate_label(rate),
        each.join(", ")
    ))
}
