//! Closed loop basics, status counting and error kinds against misbehaving servers.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use loadgen::{Live, LoadError, LoadSpec, Mode};
use support::{Behaviour, TestServer};
use testkit::{eventually, scaled};

fn closed(url: &str, connections: usize, duration: Duration) -> LoadSpec {
    let mut spec = LoadSpec::from_url(url).unwrap();
    spec.connections = connections;
    spec.mode = Mode::Closed;
    spec.warmup = Duration::from_millis(200);
    spec.duration = duration;
    spec
}

#[test]
fn closed_loop_basics() {
    let server = TestServer::start(Behaviour::Hello);
    let spec = closed(&server.url("/x?y=1"), 4, Duration::from_secs(1));
    let report = loadgen::run(&spec, &Live::new()).unwrap();
    assert_eq!(report.mode, "closed");
    assert!(
        report.completed > 200,
        "only {} responses in 1 s",
        report.completed
    );
    assert_eq!(report.sent, report.completed);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.status_counts.get(&200), Some(&report.completed));
    assert!((report.achieved_rps - report.completed as f64).abs() < 1e-6);
    assert!(report.rate_held && report.target_rps.is_none());
    let l = report.latency_us;
    assert!(l.p50 > 0.0 && l.p50 <= l.p99 && l.p99 <= l.max, "{l:?}");
    assert_eq!(report.latency.len(), report.completed);
    assert_eq!(report.timeline.len(), 10);
    let in_timeline: u64 = report.timeline.iter().map(|p| p.completed).sum();
    assert_eq!(in_timeline, report.completed);
    // Warm-up requests reached the server but were not recorded.
    assert!(server.requests.load(Ordering::Relaxed) > report.completed);
    // Keep-alive: 4 connections, no reconnects.
    assert_eq!(server.accepted.load(Ordering::Relaxed), 4);
    assert_eq!(report.reconnects, 0);
    let spectrum = report.percentile_spectrum();
    assert_eq!(spectrum.first().map(|p| p.0), Some(50.0));
    assert_eq!(spectrum.last().map(|p| p.1), Some(l.max));
    // JSON shape the bench relies on.
    let json = serde_json::to_value(&report).unwrap();
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(json["latency_us"][key].as_f64().unwrap() > 0.0, "{key}");
    }
    assert!(json["achieved_rps"].as_f64().unwrap() > 0.0);
    assert!(json["latency"]["p99_us"].is_number());
    assert!(json["cpu"]["per_request_us"].as_f64().unwrap() > 0.0);
}

#[test]
fn threads_share_the_connections() {
    let server = TestServer::start(Behaviour::Hello);
    let mut spec = closed(&server.url("/"), 6, Duration::from_millis(500));
    spec.threads = 3;
    let report = loadgen::run(&spec, &Live::new()).unwrap();
    assert_eq!(report.threads, 3);
    assert!(report.completed > 50);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(server.accepted.load(Ordering::Relaxed), 6);
}

#[test]
fn counts_statuses() {
    let server = TestServer::start(Behaviour::Statuses(vec![200, 404, 503]));
    let report = loadgen::run(
        &closed(&server.url("/"), 3, Duration::from_millis(500)),
        &Live::new(),
    )
    .unwrap();
    let get = |s: u16| report.status_counts.get(&s).copied().unwrap_or(0);
    assert!(
        get(200) > 10 && get(404) > 10 && get(503) > 10,
        "{:?}",
        report.status_counts
    );
    assert_eq!(get(200) + get(404) + get(503), report.completed);
    assert_eq!(report.status_counts.len(), 3);
    // Every status is a response, not an error.
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[test]
fn chunked_responses_are_read_whole() {
    let server = TestServer::start(Behaviour::Chunked);
    let report = loadgen::run(
        &closed(&server.url("/"), 2, Duration::from_millis(500)),
        &Live::new(),
    )
    .unwrap();
    assert!(report.completed > 50, "{}", report.completed);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        server.accepted.load(Ordering::Relaxed),
        2,
        "keep-alive across chunked bodies"
    );
}

#[test]
fn connection_close_reconnects_without_errors() {
    let server = TestServer::start(Behaviour::CloseAfter(5));
    let report = loadgen::run(
        &closed(&server.url("/"), 2, Duration::from_millis(500)),
        &Live::new(),
    )
    .unwrap();
    assert!(report.completed > 50, "{}", report.completed);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        report.reconnects >= report.completed / 5 - 2,
        "{} reconnects for {}",
        report.reconnects,
        report.completed
    );
    assert_eq!(report.status_counts.get(&200), Some(&report.completed));
}

#[test]
fn server_dropping_connections_is_counted_and_survived() {
    let server = TestServer::start(Behaviour::DropAfter(3));
    let report = loadgen::run(
        &closed(&server.url("/"), 2, Duration::from_millis(500)),
        &Live::new(),
    )
    .unwrap();
    let closed = report.errors.get("closed").copied().unwrap_or(0)
        + report.errors.get("reset").copied().unwrap_or(0);
    assert!(closed > 10, "{:?}", report.errors);
    assert!(
        report.completed > 30,
        "kept going after reconnecting: {}",
        report.completed
    );
    assert!(report.reconnects > 10);
    assert_eq!(report.sent, report.completed + report.error_count());
}

#[test]
fn slow_server_times_out() {
    let server = TestServer::start(Behaviour::Silent);
    let mut spec = closed(&server.url("/"), 2, Duration::from_secs(1));
    spec.warmup = Duration::ZERO;
    spec.request_timeout = Duration::from_millis(200);
    let report = loadgen::run(&spec, &Live::new()).unwrap();
    let timeouts = report.errors.get("timeout").copied().unwrap_or(0);
    // Each connection times out every 200–300 ms.
    assert!((4..=12).contains(&timeouts), "{:?}", report.errors);
    assert_eq!(report.completed, 0);
}

#[test]
fn connection_refused_at_start_is_one_clear_error() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let spec = closed(&format!("http://{addr}/"), 4, Duration::from_secs(1));
    let start = std::time::Instant::now();
    let err = loadgen::run(&spec, &Live::new()).unwrap_err();
    assert!(matches!(err, LoadError::Connect { .. }), "{err:?}");
    let msg = err.to_string();
    assert_eq!(
        msg,
        format!("cannot connect to {addr}: connection refused — is the server running?")
    );
    assert!(start.elapsed() < scaled(Duration::from_secs(5)));
}

#[test]
fn server_going_away_mid_run_counts_refused_reconnects() {
    let mut server = TestServer::start(Behaviour::Hello);
    let mut spec = closed(&server.url("/"), 2, scaled(Duration::from_millis(1500)));
    spec.warmup = Duration::ZERO;
    let live = Live::new();
    let (report, down_for) = std::thread::scope(|s| {
        let run = s.spawn(|| loadgen::run(&spec, &live));
        // Stop the server once the run is well under way.
        eventually("twenty responses in the window", || {
            live.snapshot().completed >= 20
        });
        server.stop();
        let stopped = std::time::Instant::now();
        (run.join().unwrap(), stopped.elapsed())
    });
    let report = report.unwrap();
    assert!(report.completed > 10);
    let refused = report.errors.get("connect_refused").copied().unwrap_or(0);
    assert!(refused > 10, "{:?}", report.errors);
    // Backoff keeps a dead server from being hammered: ~100 attempts/s per connection at
    // most (twice that allowed) for as long as it was down.
    let most = 2.0 * 100.0 * 2.0 * down_for.as_secs_f64().max(1.0);
    assert!((refused as f64) < most, "{refused} in {down_for:?}");
}

#[test]
fn invalid_specs_are_rejected() {
    let mut spec = LoadSpec::from_url("http://127.0.0.1:1/").unwrap();
    spec.connections = 0;
    assert!(loadgen::run(&spec, &Live::new())
        .unwrap_err()
        .to_string()
        .contains("connections"));
    spec.connections = 2;
    spec.threads = 3;
    assert!(loadgen::run(&spec, &Live::new())
        .unwrap_err()
        .to_string()
        .contains("threads"));
    spec.threads = 1;
    spec.mode = Mode::Open { rate: 0.0 };
    assert!(loadgen::run(&spec, &Live::new())
        .unwrap_err()
        .to_string()
        .contains("rate"));
}

#[test]
fn post_bodies_and_headers_are_framed() {
    let server = TestServer::start(Behaviour::Hello);
    let mut spec = closed(&server.url("/upload"), 2, Duration::from_millis(500));
    spec.method = "POST".into();
    spec.body = bytes::Bytes::from(vec![b'x'; 3000]);
    spec.headers.push(("X-Trace".into(), "1".into()));
    let report = loadgen::run(&spec, &Live::new()).unwrap();
    assert!(report.completed > 50, "{}", report.completed);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // One request per response: the body was framed by Content-Length, not taken as requests.
    let served = server.requests.load(Ordering::Relaxed);
    assert!(
        served >= report.completed && served <= report.completed * 2,
        "{served} vs {}",
        report.completed
    );
}

#[test]
fn live_progress_can_be_polled() {
    let server = TestServer::start(Behaviour::Hello);
    let spec = closed(&server.url("/"), 2, Duration::from_millis(1500));
    let live = Live::new();
    let (report, seen) = std::thread::scope(|s| {
        let run = s.spawn(|| loadgen::run(&spec, &live));
        // An observer polling every 50 ms, as the bench's progress bar does.
        let mut seen = Vec::new();
        testkit::wait("the run to be done")
            .every(Duration::from_millis(50))
            .until(|| {
                let snap = live.snapshot();
                seen.push(snap);
                snap.phase == loadgen::Phase::Done
            });
        (run.join().unwrap().unwrap(), seen)
    });
    let measuring: Vec<_> = seen
        .iter()
        .filter(|s| s.phase == loadgen::Phase::Measuring)
        .collect();
    assert!(!measuring.is_empty(), "{seen:?}");
    assert!(measuring.iter().any(|s| s.completed > 0), "{seen:?}");
    assert!(measuring.windows(2).all(|w| w[0].elapsed <= w[1].elapsed));
    let last = live.snapshot();
    assert_eq!(last.phase, loadgen::Phase::Done);
    assert_eq!(last.completed, report.completed);
    assert_eq!(last.window, Duration::from_millis(1500));
}

#[test]
fn cancel_stops_a_run_early() {
    let server = TestServer::start(Behaviour::Hello);
    let spec = closed(&server.url("/"), 2, Duration::from_secs(120));
    let live = Live::new();
    let report = std::thread::scope(|s| {
        let run = s.spawn(|| loadgen::run(&spec, &live));
        eventually("the run to measure a response", || {
            let snap = live.snapshot();
            snap.phase == loadgen::Phase::Measuring && snap.completed > 0
        });
        let t0 = std::time::Instant::now();
        live.cancel();
        let report = run.join().unwrap().unwrap();
        assert!(
            t0.elapsed() < scaled(Duration::from_secs(5)),
            "a 120 s run took {:?} to stop after cancel",
            t0.elapsed()
        );
        report
    });
    assert!(live.is_cancelled());
    assert!(report.completed > 0);
}
