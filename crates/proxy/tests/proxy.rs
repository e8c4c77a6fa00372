//! The proxy binary over real sockets: forwarding, header rules, pooling, upstream failures,
//! malformed requests, slow clients, shutdown and configuration checking. One behaviour each.

mod support;

use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::*;

fn proxy_to(up: &Upstream) -> Proxy {
    Proxy::start(&config_for(&[up.addr], ""))
}

// ------------------------------------------------------------------ forwarding

#[test]
fn forwards_method_path_query_headers_and_body() {
    let up = Upstream::start();
    let px = proxy_to(&up);
    let r = send_raw(
        px.addr,
        b"PUT /items/7?x=1&y=two HTTP/1.1\r\nHost: shop.example\r\nX-Custom: yes\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"upstream:/items/7hello");
    let rec = up.requests();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].method, "PUT");
    assert_eq!(rec[0].uri, "/items/7?x=1&y=two");
    assert_eq!(rec[0].header("host"), Some("shop.example"));
    assert_eq!(rec[0].header("x-custom"), Some("yes"));
    assert_eq!(rec[0].body, b"hello");
}

#[test]
fn streams_chunked_request_body_to_upstream() {
    let up = Upstream::start();
    let px = proxy_to(&up);
    let r = send_raw(
        px.addr,
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(up.requests()[0].body, b"hello world");
    assert_eq!(r.body, b"upstream:/uphello world");
}

#[test]
fn streams_large_chunked_response_to_client() {
    let up = Upstream::start();
    let px = proxy_to(&up);
    let r = get(px.addr, "/stream?chunks=2048").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 2048 * 1024);
    assert!(r.body.iter().all(|b| *b == b'x'));
}

#[test]
fn large_request_body_with_content_length_arrives_whole() {
    let up = Upstream::start();
    let px = proxy_to(&up);
    let body = vec![b'y'; 3 * 1024 * 1024];
    let mut req = format!(
        "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let r = send_raw(px.addr, &req).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(up.requests()[0].body.len(), body.len());
    assert_eq!(r.body.len(), "upstream:/big".len() + body.len());
}

#[test]
fn adds_forwarded_headers_appending_the_client_address() {
    let up = Upstream::start();
    let px = proxy_to(&up);
    send_raw(
        px.addr,
        b"GET / HTTP/1.1\r\nHost: shop.example:8080\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let rec = &up.requests()[0];
    assert_eq!(
        rec.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(rec.header("x-forwarded-proto"), Some("http"));
    assert_eq!(rec.header("x-forwarded-host"), Some("shop.example:8080"));
}

#[test]
fn replace_policy_drops_client_supplied_forwarded_for() {
    let up = Upstream::start();
    let px = Proxy::start(&format!(
        "forwarded = \"replace\"\n{}",
        config_for(&[up.addr], "")
    ));
    send_raw(
        px.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        up.requests()[0].header("x-forwarded-for"),
        Some("127.0.0.1")
    );
}

#[test]
fn adds_request_id_when_absent_and_keeps_it_when_present() {
    let up = Upstream::start();
    let px = proxy_to(&up);
    get(px.addr, "/a").unwrap();
    get(px.addr, "/b").unwrap();
    send_raw(
        px.addr,
        b"GET /c HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc-123\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let rec = up.requests();
    let a = rec[0].header("x-request-id").expect("id added");
    let b = rec[1].header("x-request-id").expect("id added");
    assert!(a.len() >= 16 && a != b, "{a} {b}");
    assert_eq!(rec[2].header_all("x-request-id"), vec!["abc-123"]);
}

#[test]
fn removes_hop_by_hop_headers_and_those_named_in_connection() {
    let up = Upstream::start();
    let px = proxy_to(&up);
    let r = send_raw(
        px.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nTE: trailers\r\nX-Kept: 1\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let rec = &up.requests()[0];
    for h in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "te",
    ] {
        assert!(
            rec.header(h).is_none(),
            "{h} was forwarded: {:?}",
            rec.headers
        );
    }
    assert_eq!(rec.header("x-kept"), Some("1"));
}

#[test]
fn health_path_is_answered_by_the_proxy() {
    let up = Upstream::start();
    let px = proxy_to(&up);
    let r = get(px.addr, "/.proxy/health").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"ok\n");
    assert_eq!(up.count(), 0);
}

// ------------------------------------------------------------------ pooling and metrics

#[test]
fn reuses_upstream_connections_and_reports_reuse() {
    let up = Upstream::start();
    let sink = UdpSink::bind();
    let px = Proxy::start_with_env(&config_for(&[up.addr], ""), &sink.env());
    let s = connect(px.addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    for i in 0..20 {
        write!(w, "GET /n{i} HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut r).unwrap().status, 200);
    }
    let rec = up.requests();
    assert_eq!(rec.len(), 20);
    let mut peers: Vec<_> = rec.iter().map(|r| r.peer).collect();
    peers.dedup();
    assert!(
        peers.len() <= 2,
        "upstream connections not reused: {peers:?}"
    );
    let seen = eventually(Duration::from_secs(5), || {
        sink.lines().iter().any(|l| {
            l.starts_with("tinyfish.proxy.upstream.connections:") && l.contains("reused:true")
        })
    });
    assert!(seen, "no reuse metric; got {:?}", sink.lines());
    let lines = sink.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("tinyfish.proxy.requests:") && l.contains("status_class:2xx")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("tinyfish.proxy.request.duration:") && l.contains("|d")),
        "{lines:?}"
    );
    let upstream_tag = format!("upstream:{}", up.addr);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("tinyfish.proxy.upstream.duration:")
                && l.contains("|d")
                && l.contains(&upstream_tag)),
        "{lines:?}"
    );
}

// ------------------------------------------------------------------ upstream failures

fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

#[test]
fn refused_upstream_gets_502_with_a_body_quickly() {
    let px = Proxy::start(&config_for(&[closed_port()], ""));
    let t = Instant::now();
    let r = get(px.addr, "/").unwrap();
    assert_eq!(r.status, 502);
    assert!(!r.body.is_empty());
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn slow_upstream_gets_504_at_the_read_timeout() {
    let up = Upstream::start();
    let px = Proxy::start(&config_for(&[up.addr], "").replace("read = \"5s\"", "read = \"500ms\""));
    let t = Instant::now();
    let r = get(px.addr, "/slow?ms=4000").unwrap();
    let took = t.elapsed();
    assert_eq!(r.status, 504);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn upstream_reset_mid_response_closes_client_without_a_complete_looking_response() {
    let raw = RawUpstream::start(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    let px = Proxy::start(&config_for(&[raw.addr], ""));
    match get(px.addr, "/") {
        Err(ReadError::Truncated { status: 200, got }) => assert!(got < 100),
        Err(ReadError::ClosedBeforeResponse) => {}
        other => panic!("expected a cut response, got {other:?}"),
    }
}

#[test]
fn upstream_reset_mid_chunked_response_never_sends_the_last_chunk() {
    let raw =
        RawUpstream::start(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    let px = Proxy::start(&config_for(&[raw.addr], ""));
    match get(px.addr, "/") {
        Err(ReadError::Truncated { .. }) | Err(ReadError::ClosedBeforeResponse) => {}
        other => panic!("expected a cut response, got {other:?}"),
    }
}

#[test]
fn upstream_killed_and_restarted_recovers_without_restarting_the_proxy() {
    let up = Upstream::start();
    let addr = up.addr;
    let px = Proxy::start(&config_for(&[addr], ""));
    assert_eq!(get(px.addr, "/").unwrap().status, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(std::sync::Mutex::new(Vec::<(Instant, u16)>::new()));
    let (s2, l2, paddr) = (stop.clone(), log.clone(), px.addr);
    let client = std::thread::spawn(move || {
        for _ in 0..2000 {
            if s2.load(Ordering::Relaxed) {
                break;
            }
            let status = match get(paddr, "/flow") {
                Ok(r) => r.status,
                Err(_) => 0,
            };
            l2.lock().unwrap().push((Instant::now(), status));
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    up.kill();
    let killed = Instant::now();
    std::thread::sleep(Duration::from_millis(700));
    let up2 = Upstream::start_on(addr);
    let restarted = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();

    let log = log.lock().unwrap();
    let before: Vec<_> = log.iter().filter(|(t, _)| *t < killed).collect();
    let down: Vec<_> = log
        .iter()
        .filter(|(t, _)| *t > killed + Duration::from_millis(100) && *t < restarted)
        .collect();
    assert!(
        before.iter().all(|(_, s)| *s == 200),
        "failures before the kill: {before:?}"
    );
    assert!(
        !down.is_empty() && down.iter().all(|(_, s)| *s == 502),
        "while down: {down:?}"
    );
    let first_ok = log
        .iter()
        .find(|(t, s)| *t >= restarted && *s == 200)
        .map(|(t, _)| *t - restarted)
        .expect("no success after the restart");
    assert!(
        first_ok < Duration::from_secs(1),
        "recovered after {first_ok:?}"
    );
    let after: Vec<_> = log
        .iter()
        .filter(|(t, _)| *t > restarted + Duration::from_secs(1))
        .collect();
    assert!(
        !after.is_empty() && after.iter().all(|(_, s)| *s == 200),
        "after: {after:?}"
    );
    assert!(up2.count() > 0);
}

#[test]
fn round_robin_over_two_upstreams_and_skips_a_dead_one() {
    let a = Upstream::start();
    let b = Upstream::start();
    let px = Proxy::start(&config_for(&[a.addr, b.addr], ""));
    for _ in 0..10 {
        assert_eq!(get(px.addr, "/").unwrap().status, 200);
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
            get(px.addr, "/").unwrap().status,
            200,
            "a dead upstream must be skipped"
        );
    }
}

// ------------------------------------------------------------------ malformed requests

/// Sends `bytes`; the proxy must answer 4xx or close, forward nothing, and serve the next client.
fn assert_rejected(bytes: &[u8]) {
    let up = Upstream::start();
    let px = proxy_to(&up);
    match send_raw(px.addr, bytes) {
        Ok(r) => assert!(
            (400..500).contains(&r.status),
            "got {} for {:?}",
            r.status,
            String::from_utf8_lossy(bytes)
        ),
        Err(ReadError::ClosedBeforeResponse) => {}
        Err(e) => panic!("neither 4xx nor a clean close: {e:?}"),
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(up.count(), 0, "forwarded: {:?}", up.requests());
    let next = get(px.addr, "/next").unwrap();
    assert_eq!(next.status, 200);
    assert_eq!(up.count(), 1);
}

#[test]
fn rejects_bad_request_line() {
    assert_rejected(b"GARBAGE\r\n\r\n");
    assert_rejected(b"GET / HTTP/9.9\r\nHost: a\r\n\r\n");
}

#[test]
fn rejects_header_over_the_limit() {
    let big = "a".repeat(70 * 1024);
    assert_rejected(format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes());
}

#[test]
fn rejects_content_length_with_transfer_encoding() {
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nhello",
    );
}

#[test]
fn rejects_conflicting_content_lengths() {
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
}

#[test]
fn rejects_obfuscated_transfer_encoding() {
    for te in [
        "Transfer-Encoding: xchunked",
        "Transfer-Encoding: chunked, identity",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: x",
        "Transfer-Encoding : chunked",
        "Transfer-Encoding:\x0bchunked",
    ] {
        assert_rejected(
            format!("POST / HTTP/1.1\r\nHost: a\r\n{te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n").as_bytes(),
        );
    }
}

#[test]
fn rejects_invalid_chunk_sizes() {
    for body in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    ] {
        assert_rejected(
            format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
                .as_bytes(),
        );
    }
}

#[test]
fn rejects_control_characters_in_headers() {
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\x01b\r\n\r\n");
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\x00b\r\n\r\n");
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a\r\nX-B\x7fad: ab\r\n\r\n");
}

#[test]
fn disconnects_a_client_sending_its_head_too_slowly() {
    let up = Upstream::start();
    let px = Proxy::start(&config_for(&[up.addr], "client_header = \"1s\""));
    let mut s = connect(px.addr);
    let t = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut closed = false;
    for _ in 0..60 {
        std::thread::sleep(Duration::from_millis(100));
        if s.write_all(b"X").is_err() {
            closed = true;
            break;
        }
    }
    let took = t.elapsed();
    assert!(closed, "still connected after {took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(up.count(), 0);
    assert_eq!(get(px.addr, "/").unwrap().status, 200);
}

// ------------------------------------------------------------------ shutdown

#[test]
fn sigterm_finishes_requests_in_flight_and_exits_zero() {
    let up = Upstream::start();
    let mut px = proxy_to(&up);
    let addr = px.addr;
    let handles: Vec<_> = (0..10)
        .map(|_| std::thread::spawn(move || get(addr, "/slow?ms=800")))
        .collect();
    assert!(eventually(WAIT, || up.started.load(Ordering::SeqCst) == 10));
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
    assert_eq!(
        px.stdout_after_first_line().as_deref(),
        Some(""),
        "stdout must hold exactly one line"
    );
}

#[test]
fn graceful_shutdown_under_load_loses_no_accepted_request() {
    let up = Upstream::start();
    let mut px = proxy_to(&up);
    let addr = px.addr;
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
                    s.set_read_timeout(Some(WAIT)).unwrap();
                    if s.write_all(
                        b"GET /slow?ms=20 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                    )
                    .is_err()
                    {
                        break;
                    }
                    match read_response(&mut BufReader::new(s)) {
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
    assert!(eventually(WAIT, || ok.load(Ordering::Relaxed) >= 50));
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
    let up = Upstream::start();
    let mut px = proxy_to(&up);
    let addr = px.addr;
    let h = std::thread::spawn(move || get(addr, "/slow?ms=5000"));
    assert!(eventually(WAIT, || up.started.load(Ordering::SeqCst) == 1));
    let t = Instant::now();
    px.signal(Signal::SIGINT);
    assert_eq!(px.wait_exit(Duration::from_secs(3)), Some(0));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(h.join().unwrap().is_err());
}

// ------------------------------------------------------------------ configuration

#[test]
fn check_accepts_the_example_config() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/proxy.toml");
    let out = proxy_command()
        .args(["--check", "-c", path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_rejects_an_unknown_key_naming_it_and_its_line() {
    let f = TempFile::new(
        "bad.toml",
        "listen = \"127.0.0.1:0\"\n[timeouts]\nconect = \"1s\"\n",
    );
    let out = proxy_command()
        .arg("--check")
        .arg("-c")
        .arg(&f.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":3") && err.contains("conect"), "{err}");
}

#[test]
fn check_rejects_a_bad_value_naming_the_key() {
    let f = TempFile::new("bad.toml", "[timeouts]\nread = \"soon\"\n");
    let out = proxy_command()
        .arg("--check")
        .arg("-c")
        .arg(&f.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timeouts.read") && err.contains(":2"), "{err}");
}

#[test]
fn flags_override_the_file() {
    let up = Upstream::start();
    // the file names a closed port; --upstream wins
    let f = TempFile::new("p.toml", &config_for(&[closed_port()], ""));
    let mut child = proxy_command()
        .arg("-c")
        .arg(&f.path)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up.addr.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut BufReader::new(child.stdout.take().unwrap()), &mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .parse()
        .unwrap();
    let r = get(addr, "/");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.unwrap().status, 200);
}

// ------------------------------------------------------------------ more timeouts and metrics

#[test]
fn upstream_not_accepting_gets_504_at_the_connect_timeout() {
    // A listener whose accept queue is full: the kernel drops further SYNs, connect hangs.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let _g = rt.enter();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = sock.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(s);
        }
    }
    let px =
        Proxy::start(&config_for(&[addr], "").replace("connect = \"1s\"", "connect = \"300ms\""));
    let t = Instant::now();
    let r = get(px.addr, "/").unwrap();
    let took = t.elapsed();
    assert_eq!(r.status, 504, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    drop(listener);
}

#[test]
fn client_too_slow_sending_its_body_gets_408() {
    let up = Upstream::start();
    let px = Proxy::start(&config_for(&[up.addr], "client_read = \"500ms\""));
    let mut s = connect(px.addr);
    s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let t = Instant::now();
    let r = read_response(&mut BufReader::new(s));
    let took = t.elapsed();
    assert_eq!(r.unwrap().status, 408);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(
        up.count(),
        0,
        "an incomplete request was completed upstream"
    );
}

#[test]
fn upstream_errors_are_counted_by_kind() {
    let sink = UdpSink::bind();
    let px = Proxy::start_with_env(&config_for(&[closed_port()], ""), &sink.env());
    assert_eq!(get(px.addr, "/").unwrap().status, 502);
    let seen = eventually(Duration::from_secs(5), || {
        sink.lines().iter().any(|l| {
            l.starts_with("tinyfish.proxy.upstream.errors:1|c") && l.contains("kind:connect")
        })
    });
    assert!(seen, "{:?}", sink.lines());
    assert!(sink
        .lines()
        .iter()
        .any(|l| l.starts_with("tinyfish.proxy.requests:") && l.contains("status_class:5xx")));
}

#[test]
fn sigterm_with_idle_keepalive_connections_exits_without_waiting_the_grace_period() {
    let up = Upstream::start();
    let mut px = proxy_to(&up);
    let s = connect(px.addr);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r).unwrap().status, 200);
    let t = Instant::now();
    px.signal(Signal::SIGTERM);
    assert_eq!(px.wait_exit(Duration::from_secs(4)), Some(0));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // the idle connection was closed, not left hanging
    assert!(matches!(
        read_response(&mut r),
        Err(ReadError::ClosedBeforeResponse)
    ));
}
