//! What leaves the process: a real UDP (and Unix datagram) DogStatsD sink receives the
//! lines; a dead or unresolvable agent never errors or blocks. Values are recorded as the
//! app and the proxy record them: counters, gauges and distribution handles created once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use telemetry::{names, DatadogEnv, Target, Telemetry};
use testkit::{scaled, Sink};

fn env(pairs: &[(&str, String)]) -> DatadogEnv {
    DatadogEnv::from_vars(pairs.iter().map(|(k, v)| (*k, v.clone())))
}

/// Waits for each of `wanted`, exactly, among the sink's lines.
fn expect_lines(sink: &Sink, wanted: &[&str]) {
    for want in wanted {
        assert!(
            sink.wait_for_line(|l| l == *want).is_some(),
            "missing {want:?} in {:#?}",
            sink.lines()
        );
    }
}

#[test]
fn counts_distributions_and_gauges_arrive_with_unified_tags() {
    let sink = testkit::dogstatsd();
    let port = sink.addr().port();
    let t = Telemetry::start(
        &env(&[
            ("DD_AGENT_HOST", "127.0.0.1".into()),
            ("DD_DOGSTATSD_PORT", port.to_string()),
            ("DD_ENV", "test".into()),
            ("DD_SERVICE", "svc".into()),
            ("DD_VERSION", "1.0.0".into()),
        ]),
        "default-svc",
    )
    .unwrap();
    assert_eq!(
        t.target(),
        &Target::Udp {
            host: "127.0.0.1".into(),
            port
        }
    );
    let c = t.counter(
        names::APP_REQUESTS,
        &[("route", "/"), ("status_class", "2xx")],
    );
    c.incr();
    c.add(4);
    let g = t.gauge(names::APP_INFLIGHT, &[]);
    g.set(7);
    let d = t.distribution_handle(names::APP_REQUEST_DURATION, &[("route", "/")]);
    d.record(0.25);
    t.flush();

    let tags = "env:test,service:svc,version:1.0.0";
    expect_lines(
        &sink,
        &[
            &format!("tinyfish.app.requests:5|c|#{tags},route:/,status_class:2xx"),
            &format!("tinyfish.app.inflight:7|g|#{tags}"),
            &format!("tinyfish.app.request.duration:0.25|d|#{tags},route:/"),
        ],
    );
    sink.assert_well_formed();
    assert_eq!(t.dropped(), 0);
}

#[test]
fn unbuffered_distribution_values_arrive_too() {
    // `Telemetry::distribution`, for occasional values off the request path.
    let sink = testkit::dogstatsd();
    let t = Telemetry::start(&sink.datadog_env(&[]), "svc").unwrap();
    t.distribution("rare.duration", 12.5, &[("k", "v")]);
    t.flush();
    expect_lines(&sink, &["rare.duration:12.5|d|#service:svc,k:v"]);
}

#[test]
fn service_tag_defaults_and_unset_tags_are_left_out() {
    let sink = testkit::dogstatsd();
    let t = Telemetry::start(
        &env(&[("DD_DOGSTATSD_URL", format!("udp://{}", sink.addr()))]),
        "default-svc",
    )
    .unwrap();
    t.counter("x.count", &[]).incr();
    t.flush();
    expect_lines(&sink, &["x.count:1|c|#service:default-svc"]);
}

#[test]
fn counters_are_sent_once_per_increment_not_repeated() {
    let sink = testkit::dogstatsd();
    let t = Telemetry::start(&sink.datadog_env(&[]), "svc").unwrap();
    let c = t.counter("once.count", &[]);
    // Sent by every full flush: shows the flushes that happened.
    t.gauge("once.beat", &[]).set(1);
    c.add(3);
    t.flush();
    t.flush();
    expect_lines(&sink, &["once.count:3|c|#service:svc"]);
    // Give a repeat (a bug) the chance to show up: two more flushes after the count.
    let beats_after_the_count = || {
        let lines = sink.lines();
        let at = lines
            .iter()
            .position(|l| l.starts_with("once.count:"))
            .unwrap();
        lines[at..]
            .iter()
            .filter(|l| l.starts_with("once.beat:"))
            .count()
    };
    // (the count's own flush, the second explicit one, then two of the flusher's own)
    testkit::eventually("two periodic flushes after the count", || {
        beats_after_the_count() >= 4
    });
    let lines = sink.lines();
    let sent: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("once.count:"))
        .collect();
    assert_eq!(sent, vec!["once.count:3|c|#service:svc"], "{lines:#?}");
}

/// Records `n` values the way the app does: a counter per request and a distribution
/// handle's `record`, then flushes; returns how long that took.
fn record_like_the_app(t: &Telemetry, n: u32) -> Duration {
    let c = t.counter("failing.count", &[("route", "/")]);
    let d = t.distribution_handle("failing.duration", &[("route", "/")]);
    let start = Instant::now();
    for i in 0..n {
        c.incr();
        d.record(f64::from(i % 100) / 10.0);
    }
    t.flush();
    start.elapsed()
}

#[test]
fn a_dead_agent_port_never_errors_or_blocks() {
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let t = Telemetry::start(
        &env(&[
            ("DD_AGENT_HOST", "127.0.0.1".into()),
            ("DD_DOGSTATSD_PORT", port.to_string()),
        ]),
        "svc",
    )
    .unwrap();
    let took = record_like_the_app(&t, 50_000);
    // Recording is a buffer push and flushing a queue hand-off: 50k requests' worth in
    // well under the time a blocking send per request would take.
    assert!(took < scaled(Duration::from_secs(3)), "{took:?}");
}

#[test]
fn an_absent_unix_socket_drops_and_counts_instead_of_blocking() {
    // A Unix socket path nobody listens on: every send fails and is counted.
    let path = temp_path("nobody");
    let t = Telemetry::start(
        &env(&[("DD_DOGSTATSD_URL", format!("unix://{}", path.display()))]),
        "svc",
    )
    .unwrap();
    // Fewer values than a distribution buffer holds: what is dropped is what failed to send.
    let took = record_like_the_app(&t, 10_000);
    assert!(took < scaled(Duration::from_secs(5)), "{took:?}");
    testkit::eventually("failed sends to be counted as dropped", || t.dropped() > 0);
}

#[test]
fn an_unresolvable_agent_host_is_not_fatal_and_does_not_block() {
    let t = Telemetry::start(
        &env(&[("DD_AGENT_HOST", "does-not-resolve.invalid".into())]),
        "svc",
    )
    .unwrap();
    assert!(t.is_enabled());
    assert!(
        t.describe().contains("does-not-resolve.invalid"),
        "{}",
        t.describe()
    );
    let took = record_like_the_app(&t, 10_000);
    assert!(took < scaled(Duration::from_secs(3)), "{took:?}");
    testkit::eventually("unsendable metrics to be counted as dropped", || {
        t.dropped() > 0
    });
}

fn temp_path(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::env::temp_dir().join(format!(
        "tinyfish-telemetry-{tag}-{}-{nanos}.sock",
        std::process::id()
    ))
}

#[test]
fn unix_datagram_url_delivers_lines() {
    let path = temp_path("dsd");
    let sink = Sink::unix(&path);
    let t = Telemetry::start(&sink.datadog_env(&[("DD_ENV", "uds")]), "svc").unwrap();
    assert_eq!(t.target(), &Target::Unix(path.clone()));
    t.counter("uds.count", &[("k", "v")]).add(2);
    t.distribution_handle("uds.duration", &[]).record(1.5);
    t.flush();
    expect_lines(
        &sink,
        &[
            "uds.count:2|c|#env:uds,service:svc,k:v",
            "uds.duration:1.5|d|#env:uds,service:svc",
        ],
    );
}

#[test]
fn metrics_off_sends_nothing_and_costs_nothing() {
    let t = Telemetry::start(&DatadogEnv::default(), "svc").unwrap();
    assert!(!t.is_enabled());
    assert_eq!(t.target(), &Target::Off);
    t.counter("off.count", &[]).incr();
    t.distribution_handle("off.duration", &[]).record(1.0);
    t.flush();
    assert_eq!(t.dropped(), 0);
}

#[test]
fn buffered_distributions_arrive_packed_with_every_value() {
    let sink = testkit::dogstatsd();
    let t = Telemetry::start(&sink.datadog_env(&[("DD_SERVICE", "svc")]), "default-svc").unwrap();
    let d = t.distribution_handle(names::APP_REQUEST_DURATION, &[("route", "/")]);
    // More values than fit one line, from two threads (two buffer shards).
    let values: Vec<f64> = (0..250).map(|i| f64::from(i) / 100.0).collect();
    let d2 = d.clone();
    let half = values[125..].to_vec();
    std::thread::spawn(move || half.iter().for_each(|v| d2.record(*v)))
        .join()
        .unwrap();
    values[..125].iter().for_each(|v| d.record(*v));
    t.flush();

    let mut got: Vec<f64> = Vec::new();
    let mut lines = 0;
    sink.wait_for_line(|line| {
        assert!(line.len() <= telemetry::UDP_MAX_PAYLOAD, "{line}");
        let (name, rest) = line.split_once(':').unwrap();
        if name == names::APP_REQUEST_DURATION {
            let (vals, tail) = rest.split_once('|').unwrap();
            assert!(
                tail.starts_with("d|#") && tail.contains("route:/") && tail.contains("service:svc"),
                "{line}"
            );
            got.extend(vals.split(':').map(|v| v.parse::<f64>().unwrap()));
            lines += 1;
        }
        got.len() >= values.len()
    });
    got.sort_by(f64::total_cmp);
    assert_eq!(got, values, "every value arrives exactly once");
    assert!(
        (3..20).contains(&lines),
        "values are packed: {lines} lines for 250 values"
    );
    assert_eq!(t.dropped(), 0);
}
