//! Open loop: coordinated-omission correction (wrk2's demonstration) and holding a rate.

mod support;

use std::time::Duration;

use loadgen::{Live, LoadSpec, Mode};
use support::{Behaviour, TestServer};
use testkit::scaled;

#[test]
fn stall_shows_in_corrected_latency_but_not_uncorrected() {
    // The server freezes once for 500 ms, 1.5 s into a 1000 req/s run over 10 connections.
    let server = TestServer::start(Behaviour::StallOnce {
        after: Duration::from_millis(1500),
        stall: Duration::from_millis(500),
    });
    let mut spec = LoadSpec::from_url(&server.url("/")).unwrap();
    spec.connections = 10;
    spec.mode = Mode::Open { rate: 1000.0 };
    spec.warmup = Duration::from_millis(500);
    spec.duration = Duration::from_secs(4);
    let report = loadgen::run(&spec, &Live::new()).unwrap();

    let corrected_p99_ms = report.latency_us.p99 / 1e3;
    let uncorrected = loadgen::LatencyUs::from_histogram(&report.latency_uncorrected);
    let uncorrected_p99_ms = uncorrected.p99 / 1e3;
    eprintln!(
        "corrected p99 {corrected_p99_ms:.1} ms, uncorrected p99 {uncorrected_p99_ms:.1} ms, \
         max {:.1} ms, completed {}",
        report.latency_us.max / 1e3,
        report.completed
    );
    // ~500 of ~4000 requests were held up by the stall, from 500 ms down to 0.
    assert!(
        corrected_p99_ms >= 100.0,
        "corrected p99 {corrected_p99_ms} ms should show the 500 ms stall"
    );
    assert!(
        report.latency_us.max / 1e3 >= 400.0,
        "{:?}",
        report.latency_us
    );
    // Only the 10 requests in flight when it froze (0.25 %) saw it from their actual send:
    // the uncorrected p99 is an ordinary response time (bounded as a time, so scaled), far
    // below the corrected one.
    let ordinary_ms = scaled(Duration::from_millis(50)).as_secs_f64() * 1e3;
    assert!(
        uncorrected_p99_ms * 4.0 < corrected_p99_ms && uncorrected_p99_ms < ordinary_ms,
        "uncorrected p99 {uncorrected_p99_ms} ms should be far lower than corrected {corrected_p99_ms} ms"
    );
    assert!(
        uncorrected.max / 1e3 >= 400.0,
        "the stalled requests themselves: {uncorrected:?}"
    );
    // The backlog was sent once the server recovered: the rate still holds.
    assert!(report.rate_held, "{:?}", report.rate_note);
    assert!(
        report.late_sends >= 100,
        "sends queued behind the stall are late: {}",
        report.late_sends
    );
    // …and they are blamed on the server, not on the load generator's pacing.
    assert!(
        report.pacing_late_sends * 2 < report.late_sends,
        "{} of {} late sends attributed to pacing",
        report.pacing_late_sends,
        report.late_sends
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[test]
fn holds_2000_rps_within_one_percent() {
    let server = TestServer::start(Behaviour::Hello);
    let mut spec = LoadSpec::from_url(&server.url("/")).unwrap();
    spec.connections = 20;
    spec.mode = Mode::Open { rate: 2000.0 };
    spec.warmup = Duration::from_millis(500);
    spec.duration = Duration::from_secs(5);
    let live = Live::new();
    let report = loadgen::run(&spec, &live).unwrap();
    eprintln!(
        "achieved {:.1} req/s, sent {}, late {}, dropped {}, p50 {:.0} µs, p99 {:.0} µs, cpu {:?}",
        report.achieved_rps,
        report.sent,
        report.late_sends,
        report.dropped_sends,
        report.latency_us.p50,
        report.latency_us.p99,
        report.cpu
    );
    let err = (report.achieved_rps - 2000.0).abs() / 2000.0;
    assert!(
        err <= 0.01,
        "achieved {} req/s, {:.2} % off",
        report.achieved_rps,
        err * 100.0
    );
    assert!(report.rate_held, "{:?}", report.rate_note);
    assert_eq!(report.target_rps, Some(2000.0));
    assert_eq!(report.status_counts.get(&200), Some(&report.completed));
    // Sends are spread across the window: every 100 ms slice got about 200.
    assert_eq!(report.timeline.len(), 50);
    let busy = report
        .timeline
        .iter()
        .filter(|p| p.completed >= 150)
        .count();
    assert!(busy >= 45, "{:?}", report.timeline);
    assert!(
        report.cpu.user_s + report.cpu.system_s > 0.0,
        "{:?}",
        report.cpu
    );
    assert_eq!(live.snapshot().phase, loadgen::Phase::Done);
    assert_eq!(live.snapshot().completed, report.completed);
}

#[test]
fn unreachable_rate_is_flagged() {
    // A server that never answers: every connection stays busy, sends are dropped.
    let server = TestServer::start(Behaviour::Silent);
    let mut spec = LoadSpec::from_url(&server.url("/")).unwrap();
    spec.connections = 2;
    spec.mode = Mode::Open { rate: 100.0 };
    spec.warmup = Duration::ZERO;
    spec.duration = Duration::from_secs(1);
    spec.request_timeout = Duration::from_secs(5);
    let report = loadgen::run(&spec, &Live::new()).unwrap();
    assert!(!report.rate_held);
    assert!(
        report.dropped_sends >= 90,
        "dropped {}",
        report.dropped_sends
    );
    let note = report.rate_note.unwrap_or_default();
    assert!(note.contains("dropped"), "{note}");
    assert_eq!(report.completed, 0);
}

#[test]
fn a_server_closing_after_every_response_costs_no_busy_loop_and_no_errors() {
    // Every response says `Connection: close`: a reconnect per request, each finished by a
    // non-blocking connect. A reconnected idle socket is always writable; watching it for
    // that would spin the thread until its next send.
    let server = TestServer::start(Behaviour::CloseAfter(1));
    let mut spec = LoadSpec::from_url(&server.url("/")).unwrap();
    spec.connections = 4;
    spec.mode = Mode::Open { rate: 200.0 };
    spec.warmup = Duration::from_millis(200);
    spec.duration = Duration::from_secs(2);
    let report = loadgen::run(&spec, &Live::new()).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.rate_held, "{:?}", report.rate_note);
    assert!(report.reconnects >= 300, "reconnects {}", report.reconnects);
    assert!(
        report.cpu.utilisation < 0.3,
        "the load generator's thread was {:.0} % busy for 200 req/s: a busy loop",
        report.cpu.utilisation * 100.0
    );
}

#[test]
fn a_server_closing_silently_after_a_response_costs_no_request() {
    // The server closes every connection right after its third response, which does not
    // say so. A small response is read when its connection's next send is due; the FIN
    // behind it must be seen then, and the next request go on a new connection, not fail.
    let server = TestServer::start(Behaviour::CloseSilentlyAfter(3));
    let mut spec = LoadSpec::from_url(&server.url("/")).unwrap();
    spec.connections = 2;
    spec.mode = Mode::Open { rate: 50.0 };
    spec.warmup = Duration::from_millis(200);
    spec.duration = Duration::from_secs(2);
    let report = loadgen::run(&spec, &Live::new()).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.rate_held, "{:?}", report.rate_note);
    assert!(report.completed >= 95, "completed {}", report.completed);
    assert!(report.reconnects >= 25, "reconnects {}", report.reconnects);
}
