//! The proxy binary over real sockets, when something goes wrong or ends: upstreams that
//! refuse, stall, reset or die; clients too slow with their head or body; error metrics; and
//! shutdown by SIGTERM and SIGINT. One behaviour each.

use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use testkit::dogstatsd::MetricKind;
use testkit::http::{self, Conn, ReadError};
use testkit::tcp::closed_port;
use testkit::{eventually, scaled, upstream};

/// A proxy in front of `up` with the test settings.
fn proxy_to(up: &testkit::Upstream) -> testkit::Process {
    testkit::proxy().to(up).start()
}

// ------------------------------------------------------------------ upstream failures

#[test]
fn refused_upstream_gets_502_with_a_body_quickly() {
    let px = testkit::proxy().to_addr(closed_port()).start();
    let t = Instant::now();
    let r = http::get(px.addr(), "/");
    assert_eq!(r.status, 502);
    assert!(!r.body.is_empty());
    // Well within the 1 s connect timeout (scaled): a refusal is not waited out.
    assert!(
        t.elapsed() < scaled(Duration::from_secs(2)),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn slow_upstream_gets_504_at_the_read_timeout() {
    let up = upstream().start();
    let px = testkit::proxy()
        .to(&up)
        .read_timeout(Duration::from_millis(500))
        .start();
    let t = Instant::now();
    let r = http::get(px.addr(), "/slow?ms=4000");
    let took = t.elapsed();
    assert_eq!(r.status, 504);
    assert!(
        took >= Duration::from_millis(450) && took < scaled(Duration::from_secs(3)),
        "{took:?}"
    );
}

#[test]
fn bytes_a_client_pipelines_do_not_stretch_the_upstream_read_timeout() {
    // The upstream reads the request and stays silent; the client sends one byte of its
    // next request every 100 ms. The 500 ms read timeout is the upstream's silence, so the
    // 504 comes at about 500 ms, not never.
    let up = upstream()
        .script(|c| {
            let _ = c.next_request();
            c.wait_closed();
        })
        .start();
    let px = testkit::proxy()
        .to(&up)
        .read_timeout(Duration::from_millis(500))
        .start();
    let mut conn = Conn::open(px.addr());
    let t = Instant::now();
    conn.send(b"GET /silent HTTP/1.1\r\nHost: a\r\n\r\n");
    let trickle = conn.stream().try_clone().expect("clone the client socket");
    let give_up = scaled(Duration::from_secs(5));
    let writer = std::thread::spawn(move || {
        let mut trickle = trickle;
        // The scenario: a pipelining client's next head, a byte every 100 ms.
        for b in b"GET /next HTTP/1.1\r\nHost: a\r\n".iter().cycle() {
            if t.elapsed() > give_up || trickle.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let r = conn.response().expect("a response");
    let took = t.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        took >= Duration::from_millis(450) && took < scaled(Duration::from_secs(3)),
        "{took:?}"
    );
    drop(conn);
    writer.join().unwrap();
}

#[test]
fn upstream_reset_mid_response_closes_client_without_a_complete_looking_response() {
    // The upstream sends a head and 10 of 100 body bytes, waits until the proxy has read
    // them, and resets the connection.
    let up = upstream()
        .script(|c| {
            if c.next_request().is_some() {
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
                c.reset();
            }
        })
        .start();
    let px = testkit::proxy().to(&up).start();
    match http::try_get(px.addr(), "/") {
        Err(ReadError::Truncated { status: 200, got }) => assert!(got < 100),
        Err(ReadError::ClosedBeforeResponse) => {}
        other => panic!("expected a cut response, got {other:?}"),
    }
}

#[test]
fn upstream_reset_mid_chunked_response_never_sends_the_last_chunk() {
    let up = upstream()
        .script(|c| {
            if c.next_request().is_some() {
                c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
                c.reset();
            }
        })
        .start();
    let px = testkit::proxy().to(&up).start();
    match http::try_get(px.addr(), "/") {
        Err(ReadError::Truncated { .. }) | Err(ReadError::ClosedBeforeResponse) => {}
        other => panic!("expected a cut response, got {other:?}"),
    }
}

/// One request of a steady flow: when it was sent, when it ended, its status (0: no response).
#[derive(Debug, Clone, Copy)]
struct Exchange {
    sent: Instant,
    done: Instant,
    status: u16,
}

#[test]
fn upstream_killed_and_restarted_recovers_without_restarting_the_proxy() {
    let up = upstream().start();
    let addr = up.addr();
    let px = testkit::proxy().to(&up).start();
    assert_eq!(http::get(px.addr(), "/").status, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::<Exchange>::new()));
    let (s2, l2, paddr) = (stop.clone(), log.clone(), px.addr());
    let client = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            let sent = Instant::now();
            let status = http::try_get(paddr, "/flow").map_or(0, |r| r.status);
            l2.lock().unwrap().push(Exchange {
                sent,
                done: Instant::now(),
                status,
            });
            // The scenario: a client sending about 50 requests a second, not a flood.
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let count = |f: &dyn Fn(&Exchange) -> bool| log.lock().unwrap().iter().filter(|e| f(e)).count();

    eventually("five answers before the kill", || count(&|_| true) >= 5);
    up.kill();
    let killed = Instant::now();
    eventually("five requests sent while the upstream is down", || {
        count(&|e| e.sent > killed) >= 5
    });
    let up2 = upstream().on(addr).start();
    let restarted = Instant::now();
    let settled = restarted + scaled(Duration::from_secs(1));
    eventually("five requests sent a second after the restart", || {
        count(&|e| e.sent > settled) >= 5
    });
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();

    let log = log.lock().unwrap();
    let before: Vec<_> = log.iter().filter(|e| e.done < killed).collect();
    let down: Vec<_> = log
        .iter()
        .filter(|e| e.sent > killed && e.done < restarted)
        .collect();
    assert!(
        !before.is_empty() && before.iter().all(|e| e.status == 200),
        "failures before the kill: {before:?}"
    );
    assert!(
        !down.is_empty() && down.iter().all(|e| e.status == 502),
        "while down: {down:?}"
    );
    let first_ok = log
        .iter()
        .find(|e| e.sent >= restarted && e.status == 200)
        .map(|e| e.done - restarted)
        .expect("no success after the restart");
    assert!(
        first_ok < scaled(Duration::from_secs(1)),
        "recovered after {first_ok:?}"
    );
    let after: Vec<_> = log.iter().filter(|e| e.sent > settled).collect();
    assert!(
        !after.is_empty() && after.iter().all(|e| e.status == 200),
        "after: {after:?}"
    );
    assert!(up2.count() > 0);
}

#[test]
fn round_robin_over_two_upstreams_and_skips_a_dead_one() {
    let a = upstream().start();
    let b = upstream().start();
    let px = testkit::proxy().to(&a).to(&b).start();
    for _ in 0..10 {
        assert_eq!(http::get(px.addr(), "/").status, 200);
    }
    assert!(
        a.count() >= 3 && b.count() >= 3,
        "{} / {}",
        a.count(),
        b.count()
    );
    b.kill();
    for _ in 0..10 {
        assert_eq!(
            http::get(px.addr(), "/").status,
            200,
            "a dead upstream must be skipped"
        );
    }
}

// ------------------------------------------------------------------ timeouts, both sides

#[test]
fn upstream_not_accepting_gets_504_at_the_connect_timeout() {
    // A listener whose accept queue is full: the kernel drops further SYNs, connect hangs.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let _g = rt.enter();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let listener = sock.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(s);
        }
    }
    let px = testkit::proxy()
        .to_addr(addr)
        .connect_timeout(Duration::from_millis(300))
        .start();
    let t = Instant::now();
    let r = http::get(px.addr(), "/");
    let took = t.elapsed();
    assert_eq!(r.status, 504, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(
        took >= Duration::from_millis(250) && took < scaled(Duration::from_secs(3)),
        "{took:?}"
    );
    drop(listener);
}

#[test]
fn client_too_slow_sending_its_body_gets_408() {
    let up = upstream().start();
    let px = testkit::proxy()
        .to(&up)
        .client_read_timeout(Duration::from_millis(500))
        .start();
    let mut conn = Conn::open(px.addr());
    conn.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    let t = Instant::now();
    let r = conn.response();
    let took = t.elapsed();
    assert_eq!(r.unwrap().status, 408);
    assert!(
        took >= Duration::from_millis(400) && took < scaled(Duration::from_secs(3)),
        "{took:?}"
    );
    assert_eq!(
        up.count(),
        0,
        "an incomplete request was completed upstream"
    );
}

#[test]
fn disconnects_a_client_sending_its_head_too_slowly() {
    let up = upstream().start();
    let px = testkit::proxy()
        .to(&up)
        .client_header_timeout(Duration::from_secs(1))
        .start();
    let mut conn = Conn::open(px.addr());
    let t = Instant::now();
    conn.send(b"GET / HTTP/1.1\r\n");
    // The scenario: a client trickling its head one byte every 100 ms, never finishing it.
    let give_up = scaled(Duration::from_secs(6));
    let mut closed = false;
    while t.elapsed() < give_up {
        std::thread::sleep(Duration::from_millis(100));
        if conn.try_send(b"X").is_err() {
            closed = true;
            break;
        }
    }
    let took = t.elapsed();
    assert!(closed, "still connected after {took:?}");
    assert!(took < scaled(Duration::from_secs(4)), "{took:?}");
    assert_eq!(up.count(), 0);
    assert_eq!(http::get(px.addr(), "/").status, 200);
}

// ------------------------------------------------------------------ metrics of failures

#[test]
fn upstream_errors_are_counted_by_kind() {
    let sink = testkit::dogstatsd();
    let px = testkit::proxy()
        .to_addr(closed_port())
        .metrics_to(&sink)
        .start();
    assert_eq!(http::get(px.addr(), "/").status, 502);
    sink.expect("one upstream connect error", |m| {
        m.name == "tinyfish.proxy.upstream.errors"
            && m.kind == MetricKind::Count
            && m.value == 1.0
            && m.tag("kind") == Some("connect")
    });
    sink.expect("a 5xx request count", |m| {
        m.name == "tinyfish.proxy.requests" && m.tag("status_class") == Some("5xx")
    });
}

/// A client that goes away before its response is counted 4xx (499, as NGINX logs it) on
/// both paths, never as a server error.
#[test]
fn a_client_that_goes_away_before_its_response_is_counted_4xx_on_both_paths() {
    for fast_path in [true, false] {
        let up = upstream()
            .script(|c| {
                if c.next_request().is_some() {
                    std::thread::sleep(Duration::from_millis(1500));
                    c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                }
            })
            .start();
        let sink = testkit::dogstatsd();
        let px = testkit::proxy()
            .to(&up)
            .fast_path(fast_path)
            .metrics_to(&sink)
            .start();
        let mut c = Conn::open(px.addr());
        c.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
        eventually("the request to reach the upstream", || up.count() == 1);
        drop(c);
        sink.expect("a 4xx request count for the client that left", |m| {
            m.name == "tinyfish.proxy.requests" && m.tag("status_class") == Some("4xx")
        });
        let five = sink
            .metrics()
            .into_iter()
            .filter(|m| {
                m.name == "tinyfish.proxy.requests"
                    && m.tag("status_class") == Some("5xx")
                    && m.value > 0.0
            })
            .count();
        assert_eq!(
            five, 0,
            "fast_path {fast_path}: the abort was counted as a server error"
        );
    }
}

// ------------------------------------------------------------------ shutdown

#[test]
fn sigterm_finishes_requests_in_flight_and_exits_zero() {
    let up = upstream().start();
    let mut px = proxy_to(&up);
    let addr = px.addr();
    let handles: Vec<_> = (0..10)
        .map(|_| std::thread::spawn(move || http::try_get(addr, "/slow?ms=800")))
        .collect();
    eventually("ten requests in flight at the upstream", || {
        up.started() == 10
    });
    px.signal(Signal::SIGTERM);
    for h in handles {
        let r = h.join().unwrap().expect("in-flight request lost");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"upstream:/slow");
    }
    assert_eq!(
        px.wait_exit(Duration::from_secs(5)),
        Some(0),
        "{}",
        px.stderr()
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting"
    );
    assert_eq!(px.stdout_at_exit(), "", "stdout must hold exactly one line");
}

#[test]
fn graceful_shutdown_under_load_loses_no_accepted_request() {
    let up = upstream().start();
    let mut px = proxy_to(&up);
    let addr = px.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (stop, ok) = (stop.clone(), ok.clone());
            std::thread::spawn(move || {
                let mut problems = Vec::new();
                for _ in 0..5000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
                        break;
                    };
                    s.set_read_timeout(Some(scaled(http::TIMEOUT))).unwrap();
                    if s.write_all(
                        b"GET /slow?ms=20 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                    )
                    .is_err()
                    {
                        break;
                    }
                    match http::read_response(&mut BufReader::new(s), false) {
                        Ok(r) if r.status == 200 && r.body == b"upstream:/slow" => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        // the listener closed between connect and accept: not accepted
                        Err(ReadError::ClosedBeforeResponse) => break,
                        other => problems.push(format!("{other:?}")),
                    }
                }
                problems
            })
        })
        .collect();
    eventually("fifty answers under load", || {
        ok.load(Ordering::Relaxed) >= 50
    });
    px.signal(Signal::SIGTERM);
    assert_eq!(
        px.wait_exit(Duration::from_secs(8)),
        Some(0),
        "{}",
        px.stderr()
    );
    stop.store(true, Ordering::Relaxed);
    let mut problems = Vec::new();
    for w in workers {
        problems.extend(w.join().unwrap());
    }
    assert!(problems.is_empty(), "{problems:?}");
    // every request the upstream saw was answered completely
    assert_eq!(up.count(), ok.load(Ordering::Relaxed));
}

#[test]
fn sigint_exits_fast_even_with_requests_in_flight() {
    // A minute-long request and a minute of grace: waiting for either would be seen.
    let up = upstream().start();
    let mut px = testkit::proxy()
        .to(&up)
        .with(|c| c.timeouts.shutdown_grace = Duration::from_secs(60))
        .read_timeout(Duration::from_secs(90))
        .start();
    let addr = px.addr();
    let h = std::thread::spawn(move || http::try_get(addr, "/slow?ms=60000"));
    eventually("the request in flight at the upstream", || {
        up.started() == 1
    });
    let t = Instant::now();
    px.signal(Signal::SIGINT);
    assert_eq!(px.wait_exit(Duration::from_secs(3)), Some(0));
    assert!(
        t.elapsed() < scaled(Duration::from_secs(2)),
        "{:?}",
        t.elapsed()
    );
    assert!(h.join().unwrap().is_err());
}

#[test]
fn sigterm_with_idle_keepalive_connections_exits_without_waiting_the_grace_period() {
    // A minute of grace: an exit that waited for the idle connection would be seen.
    let up = upstream().start();
    let mut px = testkit::proxy()
        .to(&up)
        .with(|c| c.timeouts.shutdown_grace = Duration::from_secs(60))
        .start();
    let mut conn = Conn::open(px.addr());
    assert_eq!(conn.get("/").status, 200);
    let t = Instant::now();
    px.signal(Signal::SIGTERM);
    assert_eq!(px.wait_exit(Duration::from_secs(4)), Some(0));
    assert!(
        t.elapsed() < scaled(Duration::from_secs(2)),
        "{:?}",
        t.elapsed()
    );
    // the idle connection was closed, not left hanging
    assert!(matches!(
        conn.response(),
        Err(ReadError::ClosedBeforeResponse)
    ));
}
