//! Unit tests of [`super`]: titles, tags, the event datagram and the gauges, read back
//! through the agent crate's own parser.

use std::sync::Mutex;

use report::model::{Latency, ProcessUsage, ServerSide};

use super::*;

fn at(replicate: usize, shape: &'static str) -> At<'static> {
    At {
        topology: "proxied",
        shape,
        rate: 4000.0,
        round: 1,
        rounds: 6,
        replicate,
        sequence: 7,
    }
}

fn usage(role: &str, program: &str, cpu: f64, pss: u64) -> ProcessUsage {
    ProcessUsage {
        role: role.into(),
        program: program.into(),
        process_count: 1,
        cpu_s: 0.0,
        cpu_us_per_request: cpu,
        pss_peak_bytes: pss,
        pss_mean_bytes: pss,
        anon_peak_bytes: 0,
        rss_peak_bytes: 0,
        samples: Vec::new(),
    }
}

fn trial() -> Trial {
    let latency = Latency {
        p50: 120.0,
        p90: 200.0,
        p99: 450.0,
        p999: 900.0,
        max: 1500.0,
    };
    Trial {
        topology: "proxied".into(),
        rate_rps: 4000.0,
        round: 1,
        replicate: 0,
        sequence: 7,
        achieved_rps: 3998.5,
        rate_held: true,
        requests: 5998,
        latency_us: latency,
        uncorrected_latency_us: latency,
        spectrum: Vec::new(),
        processes: vec![
            usage("app", "tinyfish-app", 20.0, 10 << 20),
            usage("proxy", "tinyfish-proxy", 15.0, 6 << 20),
            usage("loadgen", "bench", 9.0, 30 << 20),
        ],
        errors: 0,
        errors_by_kind: Default::default(),
        status_counts: Default::default(),
        late_sends: 0,
        dropped_sends: 0,
        server: ServerSide::default(),
        throughput: Vec::new(),
        machine_busy: 0.4,
        loadgen_thread_busy: 0.2,
        loadgen: Default::default(),
    }
}

/// Records every line, as one datagram each.
#[derive(Default, Clone)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl MetricSink for Lines {
    fn emit(&self, line: &str) -> io::Result<usize> {
        self.0.lock().unwrap().push(line.to_owned());
        Ok(line.len())
    }
}

fn dd(pairs: &[(&str, &str)]) -> DatadogEnv {
    DatadogEnv::from_vars(pairs.iter().map(|(k, v)| (*k, v.to_string())))
}

#[test]
fn titles_count_rounds_from_one_and_name_the_run() {
    assert_eq!(
        title(&at(0, ""), "started"),
        "tinyfish bench: proxied at 4000 req/s, round 2/6 started"
    );
    assert_eq!(
        title(&at(1, "post-1k"), "finished"),
        "tinyfish bench: proxied (A/A) post-1k at 4000 req/s, round 2/6 finished"
    );
}

#[test]
fn tag_values_keep_datadog_characters_only() {
    assert_eq!(tag("topology", "nginx"), "topology:nginx");
    assert_eq!(tag("program", "container app"), "program:container_app");
    assert_eq!(tag("x", "a,b|c#d\ne:f/g.h-i_j"), "x:a_b_c_d_e:f/g.h-i_j");
}

#[test]
fn an_event_is_a_datagram_the_agent_reads() {
    let tags = vec![tag("topology", "proxied"), tag("round", "2")];
    let line = event(
        "tinyfish bench: proxied at 4000 req/s, round 2/6 finished",
        "p50 120 µs\nnext line",
        "success",
        "run 1-7",
        &tags,
    );
    assert!(line.starts_with("_e{57,"), "{line}");
    assert!(line.ends_with("|k:run_1-7|t:success|#topology:proxied,round:2"));
    let items: Vec<_> = agent::parse_packet(line.as_bytes()).collect();
    let [Ok(agent::Item::Event(e))] = items.as_slice() else {
        panic!("{line}: {items:?}");
    };
    assert_eq!(e.text, "p50 120 µs\nnext line");
    assert_eq!(e.aggregation_key, Some("run_1-7"));
    let with_newline = event("t", "a\nb", "info", "k", &[]);
    assert_eq!(with_newline, "_e{1,4}:t|a\\nb|k:k|t:info");
}

#[test]
fn gauges_are_the_trials_headline_figures() {
    let g = gauges(&trial());
    let value = |name: &str, tags: &[&str]| {
        g.iter()
            .find(|x| x.name == name && tags.iter().all(|t| x.tags.iter().any(|y| y == t)))
            .unwrap_or_else(|| panic!("{name} {tags:?} in {g:?}"))
            .value
    };
    assert_eq!(value(names::RATE_ACHIEVED, &[]), 3998.5);
    assert_eq!(value(names::RATE_HELD, &[]), 1.0);
    assert_eq!(value("tinyfish.bench.latency.p50", &[]), 120.0);
    assert_eq!(value("tinyfish.bench.latency.p99", &[]), 450.0);
    assert_eq!(value(names::CPU_PER_REQUEST, &["role:proxy"]), 15.0);
    assert_eq!(
        value(names::MEMORY_PSS, &["role:app", "program:tinyfish-app"]),
        f64::from(10u32 << 20)
    );
    assert_eq!(value(names::SERVER_CPU_PER_REQUEST, &[]), 35.0);
    assert_eq!(value(names::SERVER_MEMORY_PSS, &[]), f64::from(16u32 << 20));
    assert_eq!(value(names::ERRORS, &[]), 0.0);
    assert!(g.iter().all(|x| x.name.starts_with("tinyfish.bench.")));
}

#[test]
fn a_trial_sends_two_events_and_its_gauges_all_tagged() {
    let lines = Lines::default();
    let r = Reporter::with_sink(
        Target::Udp {
            host: "127.0.0.1".into(),
            port: 8125,
        },
        Box::new(lines.clone()),
        &dd(&[("DD_ENV", "ci")]),
        "quick",
        "20250102T030405Z-42".into(),
    );
    let at = at(0, "");
    r.started(&at);
    let t = trial();
    r.finished(&at, Ok(&t));
    let mut agg = agent::Aggregator::new();
    for l in lines.0.lock().unwrap().iter() {
        agg.ingest(l.as_bytes());
    }
    let snap = agg.snapshot();
    assert_eq!(snap.malformed, 0, "{:?}", lines.0.lock().unwrap());
    let titles: Vec<_> = snap.events.iter().map(|e| e.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "tinyfish bench: proxied at 4000 req/s, round 2/6 started",
            "tinyfish bench: proxied at 4000 req/s, round 2/6 finished"
        ]
    );
    let common = [
        "service:tinyfish-bench",
        "env:ci",
        "scenario:quick",
        "run_id:20250102T030405Z-42",
        "topology:proxied",
        "rate:4000",
        "round:2",
    ];
    for e in &snap.events {
        for t in common {
            assert!(e.tags.iter().any(|x| x == t), "{t} in {e:?}");
        }
    }
    assert!(
        snap.events[1].text.contains("3998 req/s"),
        "{:?}",
        snap.events[1]
    );
    let p99 = snap
        .metric("tinyfish.bench.latency.p99", &common)
        .expect("p99 with every tag");
    assert_eq!(p99.value, Some(450.0));
    assert!(snap
        .metric(names::CPU_PER_REQUEST, &["role:app", "topology:proxied"])
        .is_some());
    assert_eq!(r.failed(), 0);
}

#[test]
fn a_failed_trial_is_an_error_event() {
    let lines = Lines::default();
    let r = Reporter::with_sink(
        Target::Off,
        Box::new(lines.clone()),
        &dd(&[]),
        "s",
        "id".into(),
    );
    r.finished(&at(0, ""), Err(&anyhow::anyhow!("the app exited")));
    let l = lines.0.lock().unwrap();
    assert_eq!(l.len(), 1, "no gauges for a failed trial: {l:?}");
    assert!(
        l[0].contains("round 2/6 failed|the app exited|"),
        "{}",
        l[0]
    );
    assert!(l[0].contains("|t:error|"), "{}", l[0]);
}

#[test]
fn off_unless_an_agent_is_named_and_bad_urls_are_errors() {
    let off = Reporter::from_env(&dd(&[("DD_ENV", "x")]), "s").unwrap();
    assert!(!off.is_on() && off.describe().is_none());
    off.started(&at(0, ""));
    let on = Reporter::from_env(
        &dd(&[("DD_AGENT_HOST", "127.0.0.1"), ("DD_DOGSTATSD_PORT", "9")]),
        "s",
    )
    .unwrap();
    let line = on.describe().unwrap();
    assert!(line.contains("udp://127.0.0.1:9"), "{line}");
    assert!(line.contains("service:tinyfish-bench"), "{line}");
    let e = Reporter::from_env(&dd(&[("DD_DOGSTATSD_URL", "tcp://a:1")]), "s").unwrap_err();
    assert!(e.to_string().starts_with("DD_DOGSTATSD_URL"), "{e}");
}
