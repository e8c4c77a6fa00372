//! The datagram formats of the DogStatsD documentation ("datagram shell"), each sent
//! over a real UDP socket to a running agent, with the aggregate it must produce.

mod common;

use agent::parse::{AlertType, CheckStatus, Priority};
use agent::{Malformed, MetricKind, Snapshot};

/// What one datagram must leave in a fresh window.
enum Expect {
    Metric {
        name: &'static str,
        kind: MetricKind,
        tags: &'static [&'static str],
        /// Count: scaled sum; gauge: last; set: distinct members.
        value: Option<f64>,
        /// Sketches: scaled count and (approximate) median.
        count: Option<f64>,
        p50: Option<f64>,
        samples: u64,
    },
    Event {
        title: &'static str,
        text: &'static str,
        tags: &'static [&'static str],
        priority: Priority,
        alert_type: AlertType,
    },
    Check {
        name: &'static str,
        status: CheckStatus,
        tags: &'static [&'static str],
        message: Option<&'static str>,
    },
    Malformed(Malformed),
}

use Expect::*;

fn metric(
    name: &'static str,
    kind: MetricKind,
    tags: &'static [&'static str],
    value: f64,
    samples: u64,
) -> Expect {
    Metric {
        name,
        kind,
        tags,
        value: Some(value),
        count: None,
        p50: None,
        samples,
    }
}

fn sketch(
    name: &'static str,
    kind: MetricKind,
    tags: &'static [&'static str],
    count: f64,
    p50: f64,
    samples: u64,
) -> Expect {
    Metric {
        name,
        kind,
        tags,
        value: None,
        count: Some(count),
        p50: Some(p50),
        samples,
    }
}

fn table() -> Vec<(&'static [u8], Expect)> {
    use MetricKind::*;
    vec![
        // Metrics: <METRIC_NAME>:<VALUE>|<TYPE>|@<SAMPLE_RATE>|#<TAGS>|c:<CONTAINER_ID>|T<TIMESTAMP>
        (b"page.views:1|c", metric("page.views", Count, &[], 1.0, 1)),
        (b"fuel.level:0.5|g", metric("fuel.level", Gauge, &[], 0.5, 1)),
        (b"song.length:240|h|@0.5", sketch("song.length", Histogram, &[], 2.0, 240.0, 1)),
        (b"users.uniques:1234|s", metric("users.uniques", Set, &[], 1.0, 1)),
        (
            b"users.online:1|c|#country:china",
            metric("users.online", Count, &["country:china"], 1.0, 1),
        ),
        (
            b"users.online:1|c|@0.5|#country:china",
            metric("users.online", Count, &["country:china"], 2.0, 1),
        ),
        (
            b"page.views:1|c|#env:dev,route:/|T1656581400",
            metric("page.views", Count, &["env:dev", "route:/"], 1.0, 1),
        ),
        (
            b"page.views:15|c|#env:dev|c:83c0a99c0a54c0c187f461c7980e9b57f3f6a8b0c918c8d93df19a9de6f3fe1d",
            metric("page.views", Count, &["env:dev"], 15.0, 1),
        ),
        (
            b"page.views:2|c|@0.25|#env:dev|c:abc|T1656581400|e:it-false,cn-x|card:high",
            metric("page.views", Count, &["env:dev"], 8.0, 1),
        ),
        (
            b"request.latency:0.9:1.2:1.4|d|#env:dev",
            sketch("request.latency", Distribution, &["env:dev"], 3.0, 1.2, 3),
        ),
        (b"request.time:320|ms|#route:/", sketch("request.time", Timing, &["route:/"], 1.0, 320.0, 1)),
        (b"queue.size:3:5:4|g", metric("queue.size", Gauge, &[], 4.0, 3)),
        (b"hits:1|c\nhits:2|c\r\nhits:3|c\n", metric("hits", Count, &[], 6.0, 3)),
        (b"tagged:1|c|#b:2,a:1,b:2", metric("tagged", Count, &["a:1", "b:2"], 1.0, 1)),
        // Events: _e{<TITLE_UTF8_LENGTH>,<TEXT_UTF8_LENGTH>}:<TITLE>|<TEXT>|d:|h:|p:|t:|#
        (
            b"_e{21,36}:An exception occurred|Cannot parse CSV file from 10.0.0.17|t:warning|#err_type:bad_file",
            Event {
                title: "An exception occurred",
                text: "Cannot parse CSV file from 10.0.0.17",
                tags: &["err_type:bad_file"],
                priority: Priority::Normal,
                alert_type: AlertType::Warning,
            },
        ),
        (
            br#"_e{21,41}:An exception occurred|Cannot parse JSON request:\n{"foo: "bar"}|p:low|#err_type:bad_request"#,
            Event {
                title: "An exception occurred",
                text: "Cannot parse JSON request:\n{\"foo: \"bar\"}",
                tags: &["err_type:bad_request"],
                priority: Priority::Low,
                alert_type: AlertType::Info,
            },
        ),
        (
            "_e{6,7}:héllo|wörld!|d:1656581400|h:host-1|t:error".as_bytes(),
            Event {
                title: "héllo",
                text: "wörld!",
                tags: &[],
                priority: Priority::Normal,
                alert_type: AlertType::Error,
            },
        ),
        // Service checks: _sc|<NAME>|<STATUS>|d:|h:|#|m:
        (
            b"_sc|Redis connection|2|#env:dev|m:Redis connection timed out after 10s",
            Check {
                name: "Redis connection",
                status: CheckStatus::Critical,
                tags: &["env:dev"],
                message: Some("Redis connection timed out after 10s"),
            },
        ),
        (
            b"_sc|my.check|0|d:1656581400|h:web-1",
            Check { name: "my.check", status: CheckStatus::Ok, tags: &[], message: None },
        ),
        // Malformed
        (b"page.views:1", Malformed(Malformed::NoType)),
        (b"page.views:1|", Malformed(Malformed::NoType)),
        (b"page.views:1|x", Malformed(Malformed::UnknownType)),
        (b":1|c", Malformed(Malformed::EmptyName)),
        (b"page.views|c", Malformed(Malformed::NoValue)),
        (b"page.views:|c", Malformed(Malformed::NoValue)),
        (b"page.views:abc|c", Malformed(Malformed::BadValue)),
        (b"page.views:1|c|@fast", Malformed(Malformed::BadSampleRate)),
        (b"page.views:1|c|Tyesterday", Malformed(Malformed::BadTimestamp)),
        (b"page.\xff\xfeviews:1|c", Malformed(Malformed::InvalidUtf8)),
        (b"_e{21,36}:An exception occurred|short", Malformed(Malformed::EventLengthMismatch)),
        (b"_e{5,4}:title|text-too-long", Malformed(Malformed::EventLengthMismatch)),
        (b"_e{x,4}:title|text", Malformed(Malformed::BadEventHeader)),
        (b"_e{0,4}:|text", Malformed(Malformed::BadEventHeader)),
        (b"_sc|my.check|9", Malformed(Malformed::BadServiceCheckStatus)),
        (b"_sc|my.check", Malformed(Malformed::BadServiceCheck)),
        (b"_sc||0", Malformed(Malformed::EmptyName)),
    ]
}

fn check(datagram: &[u8], expect: &Expect, s: &Snapshot) {
    let shown = String::from_utf8_lossy(datagram);
    match expect {
        Metric {
            name,
            kind,
            tags,
            value,
            count,
            p50,
            samples,
        } => {
            assert_eq!(s.malformed, 0, "{shown}: {s:#?}");
            assert_eq!(s.metrics.len(), 1, "{shown}: {s:#?}");
            let m = &s.metrics[0];
            assert_eq!((&*m.name, m.kind), (*name, *kind), "{shown}");
            assert_eq!(m.tags, *tags, "{shown}");
            assert_eq!(m.samples, *samples, "{shown}");
            assert_eq!(m.value, *value, "{shown}");
            assert_eq!(m.count, *count, "{shown}");
            if let (Some(want), Some(got)) = (p50, m.p50) {
                assert!(
                    (got - want).abs() <= want * 0.01,
                    "{shown}: p50 {got} not within 1% of {want}"
                );
            } else {
                assert_eq!(m.p50.is_some(), p50.is_some(), "{shown}");
            }
        }
        Event {
            title,
            text,
            tags,
            priority,
            alert_type,
        } => {
            assert_eq!(
                (s.malformed, s.events.len(), s.metrics.len()),
                (0, 1, 0),
                "{shown}: {s:#?}"
            );
            let e = &s.events[0];
            assert_eq!((&*e.title, &*e.text), (*title, *text), "{shown}");
            assert_eq!(e.tags, *tags, "{shown}");
            assert_eq!(
                (e.priority, e.alert_type),
                (*priority, *alert_type),
                "{shown}"
            );
        }
        Check {
            name,
            status,
            tags,
            message,
        } => {
            assert_eq!(
                (s.malformed, s.service_checks.len()),
                (0, 1),
                "{shown}: {s:#?}"
            );
            let c = &s.service_checks[0];
            assert_eq!((&*c.name, c.status), (*name, *status), "{shown}");
            assert_eq!(c.tags, *tags, "{shown}");
            assert_eq!(c.message.as_deref(), *message, "{shown}");
        }
        Malformed(kind) => {
            assert_eq!(s.malformed, 1, "{shown}: {s:#?}");
            assert_eq!(
                s.malformed_of(*kind),
                1,
                "{shown}: {:?}",
                s.malformed_by_kind
            );
            assert!(
                s.metrics.is_empty() && s.events.is_empty() && s.service_checks.is_empty(),
                "{shown}"
            );
        }
    }
}

#[tokio::test]
async fn documented_datagrams_aggregate_as_the_agent_does() {
    let agent = common::agent().await;
    let client = common::client(&agent);
    for (datagram, expect) in table() {
        client.send(datagram).unwrap();
        common::wait_for(&agent, "the datagram", |s| s.packets >= 1).await;
        let s = agent.take_snapshot();
        assert_eq!(s.packets, 1);
        assert_eq!(s.bytes, datagram.len() as u64);
        check(datagram, &expect, &s);
    }
    agent.shutdown().await;
}

#[tokio::test]
async fn one_packet_of_many_kinds_and_a_bad_line_in_the_middle() {
    let agent = common::agent().await;
    let client = common::client(&agent);
    client
        .send(b"a:1|c\nnot a metric\n_e{1,1}:t|x\n_sc|s|1\nb:2|g\nc:1:2|d\n")
        .unwrap();
    let s = common::wait_for(&agent, "one packet", |s| s.packets >= 1).await;
    assert_eq!(s.lines, 6);
    assert_eq!(s.malformed, 1);
    assert_eq!(s.malformed_of(Malformed::NoType), 1);
    assert_eq!(s.metrics.len(), 3);
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.service_checks.len(), 1);
    assert_eq!(s.metric("c", &[]).unwrap().count, Some(2.0));
    // The receiver goes on after garbage.
    client.send(b"\xff\xff\xff").unwrap();
    client.send(b"a:1|c").unwrap();
    let s = common::wait_for(&agent, "two more packets", |s| s.packets >= 3).await;
    assert_eq!(s.metric("a", &[]).unwrap().value, Some(2.0));
    assert_eq!(s.malformed_of(Malformed::InvalidUtf8), 1);
    agent.shutdown().await;
}

#[tokio::test]
async fn port_in_use_is_an_error_naming_the_address() {
    let agent = common::agent().await;
    let err = agent::start(agent::AgentConfig {
        udp: agent.udp_addr(),
        ..agent::AgentConfig::ephemeral()
    })
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&agent.udp_addr().to_string()), "{msg}");
    assert!(msg.contains("--listen"), "{msg}");
    let err = agent::start(agent::AgentConfig {
        http: agent.http_addr(),
        ..agent::AgentConfig::ephemeral()
    })
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains(&agent.http_addr().unwrap().to_string()),
        "{err}"
    );
    agent.shutdown().await;
}
