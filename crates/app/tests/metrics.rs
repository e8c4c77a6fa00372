//! The app's DogStatsD metrics, received by a real UDP listener and read with the agent's
//! parser; and the app keeps serving when the agent is dead or its name does not resolve.

use std::time::{Duration, Instant};

use telemetry::{DatadogEnv, Telemetry};
use testkit::dogstatsd::{Metric, MetricKind};
use testkit::http::{get, request};
use testkit::{scaled, Sink};

const TAGS: [(&str, &str); 3] = [
    ("DD_ENV", "test"),
    ("DD_SERVICE", "fish"),
    ("DD_VERSION", "1.2.3"),
];

fn has_unified_tags(m: &Metric) -> bool {
    m.tag("env") == Some("test")
        && m.tag("service") == Some("fish")
        && m.tag("version") == Some("1.2.3")
}

fn tagged_telemetry(sink: &Sink) -> Telemetry {
    Telemetry::start(&sink.datadog_env(&TAGS), app::DEFAULT_SERVICE).unwrap()
}

#[test]
fn requests_durations_and_inflight_reach_the_agent() {
    let sink = testkit::dogstatsd();
    let telemetry = tagged_telemetry(&sink);
    let app = testkit::app().telemetry(telemetry.clone()).start();
    for _ in 0..3 {
        assert_eq!(get(app.addr(), "/").status, 200);
    }
    assert_eq!(get(app.addr(), "/nope").status, 404);
    assert_eq!(request(app.addr(), "POST", "/", &[], b"").status, 405);
    telemetry.flush();

    let root_2xx = sink.sum_until(3.0, |m| {
        m.name == "tinyfish.app.requests"
            && m.kind == MetricKind::Count
            && m.tag("route") == Some("/")
            && m.tag("status_class") == Some("2xx")
            && has_unified_tags(m)
    });
    assert_eq!(root_2xx, 3.0, "lines: {:#?}", sink.lines());
    let other_4xx = sink.sum_until(1.0, |m| {
        m.name == "tinyfish.app.requests"
            && m.tag("route") == Some("other")
            && m.tag("status_class") == Some("4xx")
    });
    assert_eq!(other_4xx, 1.0, "lines: {:#?}", sink.lines());
    let root_4xx = sink.sum_until(1.0, |m| {
        m.name == "tinyfish.app.requests"
            && m.tag("route") == Some("/")
            && m.tag("status_class") == Some("4xx")
    });
    assert_eq!(root_4xx, 1.0, "lines: {:#?}", sink.lines());

    // Distribution values may be packed several to a line (`name:v1:v2|d`): count values.
    let mut dist_values = 0;
    sink.wait_for(|m| {
        if m.name == "tinyfish.app.request.duration"
            && m.kind == MetricKind::Distribution
            && m.tag("route") == Some("/")
            && m.tag("status_class") == Some("2xx")
            && has_unified_tags(m)
            && m.values.iter().all(|v| (0.0..10_000.0).contains(v))
        {
            dist_values += m.values.len();
        }
        dist_values >= 3
    });
    assert_eq!(dist_values, 3, "lines: {:#?}", sink.lines());

    sink.expect("an inflight gauge of 0 with the unified tags", |m| {
        m.name == "tinyfish.app.inflight"
            && m.kind == MetricKind::Gauge
            && m.value == 0.0
            && has_unified_tags(m)
    });

    // Every line the app sent is well-formed DogStatsD, as the agent reads it.
    sink.assert_well_formed();
}

#[test]
fn inflight_gauge_counts_a_request_being_handled() {
    let sink = testkit::dogstatsd();
    let telemetry = tagged_telemetry(&sink);
    let app = testkit::app().telemetry(telemetry.clone()).start();
    let addr = app.addr();
    // Long enough for the once-a-second gauge to be sent while it waits.
    let delay = scaled(Duration::from_secs(3));
    let slow = std::thread::spawn(move || {
        get(addr, &format!("/work?delay_ms={}", delay.as_millis())).status
    });
    sink.expect("inflight:1 while /work waits", |m| {
        m.name == "tinyfish.app.inflight" && m.value == 1.0
    });
    assert_eq!(slow.join().unwrap(), 200);
    let work = sink.sum_until(1.0, |m| {
        m.name == "tinyfish.app.requests"
            && m.tag("route") == Some("/work")
            && m.tag("status_class") == Some("2xx")
    });
    assert_eq!(work, 1.0);
}

/// Serves `n` requests and returns how long they took.
fn serve_many(app: &testkit::App, n: usize) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        assert_eq!(get(app.addr(), "/").status, 200, "request {i}");
    }
    t.elapsed()
}

#[test]
fn app_keeps_serving_when_the_agent_port_is_dead() {
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let env = DatadogEnv::from_vars([
        ("DD_AGENT_HOST", "127.0.0.1".to_owned()),
        ("DD_DOGSTATSD_PORT", port.to_string()),
    ]);
    let telemetry = Telemetry::start(&env, app::DEFAULT_SERVICE).unwrap();
    assert!(telemetry.is_enabled());
    let app = testkit::app().telemetry(telemetry.clone()).start();
    let took = serve_many(&app, 300);
    telemetry.flush();
    assert!(
        took < scaled(Duration::from_secs(30)),
        "300 requests took {took:?}"
    );
    assert_eq!(get(app.addr(), "/healthz").status, 200);
}

#[test]
fn app_keeps_serving_when_the_agent_host_does_not_resolve() {
    let env = DatadogEnv::from_vars([("DD_AGENT_HOST", "does-not-resolve.invalid")]);
    let telemetry = Telemetry::start(&env, app::DEFAULT_SERVICE).unwrap();
    let app = testkit::app().telemetry(telemetry.clone()).start();
    let took = serve_many(&app, 200);
    assert!(
        took < scaled(Duration::from_secs(30)),
        "200 requests took {took:?}"
    );
    // What could not be sent is counted as dropped, not waited for.
    testkit::wait("drops to be counted")
        .every(Duration::from_millis(100))
        .until(|| {
            telemetry.flush();
            telemetry.dropped() > 0
        });
}
