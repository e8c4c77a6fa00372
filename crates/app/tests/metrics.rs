//! The app's DogStatsD metrics, received by a real UDP listener; and the app keeps
//! serving when the agent is dead or its name does not resolve.

use std::time::{Duration, Instant};

use telemetry::{DatadogEnv, Telemetry};
use testkit::dogstatsd::Metric;
use testkit::http::{get, request};
use testkit::{App, UdpSink};

const WAIT: Duration = Duration::from_secs(15);

fn tagged_env(sink: &UdpSink) -> DatadogEnv {
    sink.datadog_env(&[
        ("DD_ENV", "test"),
        ("DD_SERVICE", "fish"),
        ("DD_VERSION", "1.2.3"),
    ])
}

fn has_unified_tags(m: &Metric) -> bool {
    m.tag("env") == Some("test")
        && m.tag("service") == Some("fish")
        && m.tag("version") == Some("1.2.3")
}

/// Adds up the values of lines matching `pred` until they reach `want` (counts may be
/// split over several flushes); returns the sum reached.
fn count_until(sink: &UdpSink, want: f64, mut pred: impl FnMut(&Metric) -> bool) -> f64 {
    let mut sum = 0.0;
    sink.wait_for(
        |line| {
            if let Some(m) = Metric::parse(line).filter(|m| pred(m)) {
                sum += m.value;
            }
            sum >= want
        },
        WAIT,
    );
    sum
}

#[test]
fn requests_durations_and_inflight_reach_the_agent() {
    let sink = UdpSink::bind();
    let telemetry = Telemetry::start(&tagged_env(&sink), app::DEFAULT_SERVICE).unwrap();
    let app = App::start_with(telemetry.clone());
    for _ in 0..3 {
        assert_eq!(get(app.addr(), "/").0, 200);
    }
    assert_eq!(get(app.addr(), "/nope").0, 404);
    assert_eq!(request(app.addr(), "POST", "/", &[], b"").0, 405);
    telemetry.flush();

    let root_2xx = count_until(&sink, 3.0, |m| {
        m.name == "tinyfish.app.requests"
            && m.kind == "c"
            && m.tag("route") == Some("/")
            && m.tag("status_class") == Some("2xx")
            && has_unified_tags(m)
    });
    assert_eq!(root_2xx, 3.0, "lines: {:#?}", sink.lines());
    let other_4xx = count_until(&sink, 1.0, |m| {
        m.name == "tinyfish.app.requests"
            && m.tag("route") == Some("other")
            && m.tag("status_class") == Some("4xx")
    });
    assert_eq!(other_4xx, 1.0, "lines: {:#?}", sink.lines());
    let root_4xx = count_until(&sink, 1.0, |m| {
        m.name == "tinyfish.app.requests"
            && m.tag("route") == Some("/")
            && m.tag("status_class") == Some("4xx")
    });
    assert_eq!(root_4xx, 1.0, "lines: {:#?}", sink.lines());

    // Distribution values may be packed several to a line (`name:v1:v2|d`): count values.
    let mut dist_values = 0;
    sink.wait_for(
        |l| {
            if let Some(m) = Metric::parse(l).filter(|m| {
                m.name == "tinyfish.app.request.duration"
                    && m.kind == "d"
                    && m.tag("route") == Some("/")
                    && m.tag("status_class") == Some("2xx")
                    && has_unified_tags(m)
                    && m.values.iter().all(|v| (0.0..10_000.0).contains(v))
            }) {
                dist_values += m.values.len();
            }
            dist_values >= 3
        },
        WAIT,
    );
    assert_eq!(dist_values, 3, "lines: {:#?}", sink.lines());

    let gauge = sink.wait_for(
        |l| {
            Metric::parse(l).is_some_and(|m| {
                m.name == "tinyfish.app.inflight"
                    && m.kind == "g"
                    && m.value == 0.0
                    && has_unified_tags(&m)
            })
        },
        WAIT,
    );
    assert!(
        gauge.is_some(),
        "no inflight gauge; lines: {:#?}",
        sink.lines()
    );

    // Every line the app sent is well-formed DogStatsD.
    for line in sink.lines() {
        assert!(Metric::parse(&line).is_some(), "malformed line {line:?}");
    }
}

#[test]
fn inflight_gauge_counts_a_request_being_handled() {
    let sink = UdpSink::bind();
    let telemetry = Telemetry::start(&tagged_env(&sink), app::DEFAULT_SERVICE).unwrap();
    let app = App::start_with(telemetry.clone());
    let addr = app.addr();
    let slow = std::thread::spawn(move || get(addr, "/work?delay_ms=3000").0);
    let one = sink.wait_for(
        |l| Metric::parse(l).is_some_and(|m| m.name == "tinyfish.app.inflight" && m.value == 1.0),
        WAIT,
    );
    assert!(
        one.is_some(),
        "no inflight:1 while /work waits; lines: {:#?}",
        sink.lines()
    );
    assert_eq!(slow.join().unwrap(), 200);
    let work = count_until(&sink, 1.0, |m| {
        m.name == "tinyfish.app.requests"
            && m.tag("route") == Some("/work")
            && m.tag("status_class") == Some("2xx")
    });
    assert_eq!(work, 1.0);
}

/// Serves `n` requests and returns how long they took.
fn serve_many(app: &App, n: usize) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        let (status, _, _) = get(app.addr(), "/");
        assert_eq!(status, 200, "request {i}");
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
    let app = App::start_with(telemetry.clone());
    let took = serve_many(&app, 300);
    telemetry.flush();
    assert!(took < Duration::from_secs(30), "300 requests took {took:?}");
    assert_eq!(get(app.addr(), "/healthz").0, 200);
}

#[test]
fn app_keeps_serving_when_the_agent_host_does_not_resolve() {
    let env = DatadogEnv::from_vars([("DD_AGENT_HOST", "does-not-resolve.invalid")]);
    let telemetry = Telemetry::start(&env, app::DEFAULT_SERVICE).unwrap();
    let app = App::start_with(telemetry.clone());
    let took = serve_many(&app, 200);
    assert!(took < Duration::from_secs(30), "200 requests took {took:?}");
    // What could not be sent is counted as dropped, not waited for.
    let deadline = Instant::now() + WAIT;
    while telemetry.dropped() == 0 && Instant::now() < deadline {
        telemetry.flush();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(telemetry.dropped() > 0, "drops were not counted");
}
