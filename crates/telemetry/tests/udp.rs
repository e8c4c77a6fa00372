//! What leaves the process: a real UDP (and Unix datagram) listener receives the
//! DogStatsD lines; a dead or unresolvable agent never errors or blocks.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use telemetry::{names, DatadogEnv, Target, Telemetry};

const WAIT: Duration = Duration::from_secs(15);

fn env(pairs: &[(&str, String)]) -> DatadogEnv {
    DatadogEnv::from_vars(pairs.iter().map(|(k, v)| (*k, v.clone())))
}

/// Reads datagrams until every one of `wanted` has been seen as a line (or `WAIT` passes);
/// returns all lines received.
fn receive_until(recv: impl Fn(&mut [u8]) -> Option<usize>, wanted: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline && !wanted.iter().all(|w| lines.iter().any(|l: &String| l == w))
    {
        if let Some(n) = recv(&mut buf) {
            let text = String::from_utf8(buf[..n].to_vec()).expect("UTF-8 datagram");
            lines.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
        }
    }
    lines
}

fn udp_listener() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s
}

#[test]
fn counts_distributions_and_gauges_arrive_with_unified_tags() {
    let listener = udp_listener();
    let port = listener.local_addr().unwrap().port();
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
    t.distribution(names::APP_REQUEST_DURATION, 0.25, &[("route", "/")]);
    t.flush();

    let tags = "env:test,service:svc,version:1.0.0";
    let count = format!("tinyfish.app.requests:5|c|#{tags},route:/,status_class:2xx");
    let gauge = format!("tinyfish.app.inflight:7|g|#{tags}");
    let dist = format!("tinyfish.app.request.duration:0.25|d|#{tags},route:/");
    let lines = receive_until(|b| listener.recv(b).ok(), &[&count, &gauge, &dist]);
    for want in [&count, &gauge, &dist] {
        assert!(lines.contains(want), "missing {want:?} in {lines:#?}");
    }
    assert_eq!(t.dropped(), 0);
}

#[test]
fn service_tag_defaults_and_unset_tags_are_left_out() {
    let listener = udp_listener();
    let url = format!("udp://{}", listener.local_addr().unwrap());
    let t = Telemetry::start(&env(&[("DD_DOGSTATSD_URL", url)]), "default-svc").unwrap();
    t.counter("x.count", &[]).incr();
    t.flush();
    let lines = receive_until(
        |b| listener.recv(b).ok(),
        &["x.count:1|c|#service:default-svc"],
    );
    assert!(
        lines.contains(&"x.count:1|c|#service:default-svc".to_owned()),
        "{lines:#?}"
    );
}

#[test]
fn counters_are_sent_once_per_increment_not_repeated() {
    let listener = udp_listener();
    let port = listener.local_addr().unwrap().port();
    let t = Telemetry::start(
        &env(&[
            ("DD_AGENT_HOST", "127.0.0.1".into()),
            ("DD_DOGSTATSD_PORT", port.to_string()),
        ]),
        "svc",
    )
    .unwrap();
    let c = t.counter("once.count", &[]);
    c.add(3);
    t.flush();
    t.flush();
    let mut lines = receive_until(|b| listener.recv(b).ok(), &["once.count:3|c|#service:svc"]);
    // Give a repeat (a bug) time to show up: two more flush intervals.
    let until = Instant::now() + Duration::from_millis(2500);
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < until {
        if let Ok(n) = listener.recv(&mut buf) {
            lines.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_owned),
            );
        }
    }
    let sent: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("once.count:"))
        .collect();
    assert_eq!(sent, vec!["once.count:3|c|#service:svc"], "{lines:#?}");
}

#[test]
fn a_dead_agent_port_never_errors_or_blocks() {
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
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
    let c = t.counter("dead.count", &[]);
    let start = Instant::now();
    for i in 0..50_000u32 {
        c.incr();
        t.distribution(
            "dead.duration",
            f64::from(i % 100) / 10.0,
            &[("route", "/")],
        );
    }
    t.flush();
    // 50k sends that blocked even 100 µs each would take 5 s.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
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
    let start = Instant::now();
    for i in 0..100_000u32 {
        t.distribution("full.duration", f64::from(i), &[]);
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let deadline = Instant::now() + WAIT;
    while t.dropped() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(t.dropped() > 0, "failed sends were not counted");
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
    let c = t.counter("nores.count", &[]);
    let start = Instant::now();
    for _ in 0..10_000 {
        c.incr();
        t.distribution("nores.duration", 1.0, &[]);
    }
    t.flush();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let deadline = Instant::now() + WAIT;
    while t.dropped() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(t.dropped() > 0, "unsendable metrics were not counted");
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
    let listener = UnixDatagram::bind(&path).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let t = Telemetry::start(
        &env(&[
            ("DD_DOGSTATSD_URL", format!("unix://{}", path.display())),
            ("DD_ENV", "uds".into()),
        ]),
        "svc",
    )
    .unwrap();
    assert_eq!(t.target(), &Target::Unix(path.clone()));
    t.counter("uds.count", &[("k", "v")]).add(2);
    t.distribution("uds.duration", 1.5, &[]);
    t.flush();
    let count = "uds.count:2|c|#env:uds,service:svc,k:v";
    let dist = "uds.duration:1.5|d|#env:uds,service:svc";
    let lines = receive_until(|b| listener.recv(b).ok(), &[count, dist]);
    let _ = std::fs::remove_file(&path);
    assert!(lines.iter().any(|l| l == count), "{lines:#?}");
    assert!(lines.iter().any(|l| l == dist), "{lines:#?}");
}

#[test]
fn metrics_off_sends_nothing_and_costs_nothing() {
    let t = Telemetry::start(&DatadogEnv::default(), "svc").unwrap();
    assert!(!t.is_enabled());
    assert_eq!(t.target(), &Target::Off);
    t.counter("off.count", &[]).incr();
    t.distribution("off.duration", 1.0, &[]);
    t.flush();
    assert_eq!(t.dropped(), 0);
}

#[test]
fn buffered_distributions_arrive_packed_with_every_value() {
    let listener = udp_listener();
    let port = listener.local_addr().unwrap().port();
    let t = Telemetry::start(
        &env(&[
            ("DD_AGENT_HOST", "127.0.0.1".into()),
            ("DD_DOGSTATSD_PORT", port.to_string()),
            ("DD_SERVICE", "svc".into()),
        ]),
        "default-svc",
    )
    .unwrap();
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

    let deadline = Instant::now() + WAIT;
    let mut got: Vec<f64> = Vec::new();
    let mut lines = 0;
    let mut buf = vec![0u8; 65_536];
    while got.len() < values.len() && Instant::now() < deadline {
        let Ok(n) = listener.recv(&mut buf) else {
            continue;
        };
        for line in std::str::from_utf8(&buf[..n]).unwrap().lines() {
            assert!(line.len() <= telemetry::UDP_MAX_PAYLOAD, "{line}");
            let (name, rest) = line.split_once(':').unwrap();
            if name != names::APP_REQUEST_DURATION {
                continue;
            }
            let (vals, tail) = rest.split_once('|').unwrap();
            assert!(
                tail.starts_with("d|#") && tail.contains("route:/") && tail.contains("service:svc"),
                "{line}"
            );
            got.extend(vals.split(':').map(|v| v.parse::<f64>().unwrap()));
            lines += 1;
        }
    }
    got.sort_by(f64::total_cmp);
    assert_eq!(got, values, "every value arrives exactly once");
    assert!(
        (3..20).contains(&lines),
        "values are packed: {lines} lines for 250 values"
    );
    assert_eq!(t.dropped(), 0);
}
