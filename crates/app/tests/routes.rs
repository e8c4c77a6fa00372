//! Every route and error case of the app, over real sockets (127.0.0.1, port 0).

use std::process::Command;
use std::time::{Duration, Instant};

use app::work::{MAX_BYTES, MAX_CPU_US, MAX_DELAY_MS};
use app::ServeConfig;
use telemetry::Telemetry;
use testkit::http::{get, parse_response, request, send_raw};
use testkit::App;

fn text(body: &[u8]) -> &str {
    std::str::from_utf8(body).expect("UTF-8 body")
}

/// Today's greeting computed independently of the app: by `date -u`.
fn greeting_by_date_command() -> String {
    let out = Command::new("date")
        .args(["-u", "+Hello World on this date %A, %B %d, %Y."])
        .output()
        .expect("run date");
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

#[test]
fn root_greets_with_todays_utc_date() {
    let app = App::start();
    let before = greeting_by_date_command();
    let (status, headers, body) = get(app.addr(), "/");
    let after = greeting_by_date_command();
    assert_eq!(status, 200);
    assert_eq!(headers.get("content-type").unwrap(), "text/plain");
    assert_eq!(
        headers.get("content-length").unwrap(),
        &body.len().to_string()
    );
    let body = text(&body);
    assert!(body == before || body == after, "{body:?} vs {before:?}");
    assert!(body.starts_with("Hello World on this date "), "{body}");
}

#[test]
fn head_root_has_the_same_head_and_no_body() {
    let app = App::start();
    let (_, get_headers, get_body) = get(app.addr(), "/");
    let raw = send_raw(
        app.addr(),
        b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let (status, headers, body) = parse_response(&raw, true).unwrap();
    assert_eq!(status, 200);
    assert!(body.is_empty(), "HEAD answered a body: {:?}", text(&body));
    assert_eq!(headers.get("content-type"), get_headers.get("content-type"));
    assert_eq!(
        headers.get("content-length").unwrap(),
        &get_body.len().to_string()
    );
}

#[test]
fn healthz_is_ok() {
    let app = App::start();
    let (status, _, body) = get(app.addr(), "/healthz");
    assert_eq!((status, text(&body)), (200, "ok"));
    let (status, _, body) = request(app.addr(), "HEAD", "/healthz", &[], b"");
    assert_eq!(status, 200);
    assert!(body.is_empty());
}

#[test]
fn work_answers_the_size_asked_for() {
    let app = App::start();
    for n in [0u64, 1, 1000, 65_536, 1_000_000] {
        let (status, headers, body) = get(app.addr(), &format!("/work?bytes={n}"));
        assert_eq!(status, 200, "bytes={n}");
        assert_eq!(body.len() as u64, n);
        assert_eq!(headers.get("content-length").unwrap(), &n.to_string());
    }
    let (status, _, body) = get(app.addr(), "/work");
    assert_eq!((status, body.len()), (200, 0));
    let (status, _, body) = get(app.addr(), &format!("/work?bytes={MAX_BYTES}"));
    assert_eq!((status, body.len() as u64), (200, MAX_BYTES));
}

#[test]
fn work_spins_and_waits_at_least_as_asked() {
    let app = App::start();
    let t = Instant::now();
    let (status, _, body) = get(app.addr(), "/work?cpu_us=150000&bytes=10");
    assert_eq!((status, body.len()), (200, 10));
    // CPU time can only be at most wall time: 150 ms of CPU takes at least 150 ms.
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let (status, _, _) = get(app.addr(), "/work?delay_ms=300");
    assert_eq!(status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn work_delay_does_not_block_the_worker() {
    // testkit's app runs on one thread: a blocked worker would hold up the second request.
    let app = App::start();
    let addr = app.addr();
    let slow = std::thread::spawn(move || {
        let (status, _, _) = get(addr, "/work?delay_ms=3000");
        (status, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(200));
    let (status, _, _) = get(addr, "/");
    let fast_done = Instant::now();
    assert_eq!(status, 200);
    let (slow_status, slow_done) = slow.join().unwrap();
    assert_eq!(slow_status, 200);
    assert!(fast_done < slow_done, "GET / waited for the delayed /work");
}

#[test]
fn work_rejects_bad_parameters_naming_them() {
    let app = App::start();
    let cases = [
        ("cpu_us=abc".to_owned(), "cpu_us"),
        (format!("cpu_us={}", MAX_CPU_US + 1), "cpu_us"),
        ("bytes=-1".to_owned(), "bytes"),
        (format!("bytes={}", MAX_BYTES + 1), "bytes"),
        ("delay_ms=1.5".to_owned(), "delay_ms"),
        (format!("delay_ms={}", MAX_DELAY_MS + 1), "delay_ms"),
        ("bytes=10&speed=fast".to_owned(), "speed"),
    ];
    for (query, name) in cases {
        let (status, headers, body) = get(app.addr(), &format!("/work?{query}"));
        assert_eq!(status, 400, "{query}");
        assert_eq!(headers.get("content-type").unwrap(), "text/plain");
        let body = text(&body);
        assert!(body.starts_with(name), "{query}: {body:?}");
        assert_eq!(body.trim_end().lines().count(), 1, "{query}: {body:?}");
    }
}

#[test]
fn echo_streams_the_body_back() {
    let app = App::start();
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (status, headers, got) = request(
        app.addr(),
        "POST",
        "/echo",
        &[("Content-Type", "application/x-test")],
        &body,
    );
    assert_eq!(status, 200);
    assert_eq!(headers.get("content-type").unwrap(), "application/x-test");
    assert_eq!(
        headers.get("content-length").unwrap(),
        &body.len().to_string()
    );
    assert_eq!(got, body);
    let (status, _, got) = request(app.addr(), "POST", "/echo", &[], b"");
    assert_eq!((status, got.len()), (200, 0));
}

#[test]
fn echo_takes_chunked_bodies() {
    let app = App::start();
    let chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let (status, _, got) = request(
        app.addr(),
        "POST",
        "/echo",
        &[("Transfer-Encoding", "chunked")],
        chunked,
    );
    assert_eq!((status, text(&got)), (200, "hello world"));
}

#[test]
fn echo_beyond_the_bound_is_413() {
    let config = ServeConfig {
        echo_max_bytes: 1000,
        ..ServeConfig::default()
    };
    let app = App::start_with_config(config, Telemetry::off());
    let (status, _, got) = request(app.addr(), "POST", "/echo", &[], &[b'a'; 1000]);
    assert_eq!((status, got.len()), (200, 1000));
    let (status, _, body) = request(app.addr(), "POST", "/echo", &[], &[b'a'; 1001]);
    assert_eq!(status, 413);
    assert!(text(&body).contains("1000"), "{:?}", text(&body));
    // Declared up front, far beyond the bound: refused without reading the body.
    let raw = send_raw(
        app.addr(),
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\nabc",
    );
    assert_eq!(parse_response(&raw, false).unwrap().0, 413);
    // Chunked, no length up front: 413 once the bound is crossed.
    let mut chunked = Vec::new();
    for _ in 0..3 {
        chunked.extend_from_slice(b"190\r\n");
        chunked.extend_from_slice(&[b'z'; 400]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, _, _) = request(
        app.addr(),
        "POST",
        "/echo",
        &[("Transfer-Encoding", "chunked")],
        &chunked,
    );
    assert_eq!(status, 413);
}

#[test]
fn unknown_paths_are_404() {
    let app = App::start();
    for path in ["/nope", "/work/", "/healthz/x", "/index.html"] {
        let (status, _, _) = get(app.addr(), path);
        assert_eq!(status, 404, "{path}");
    }
    let (status, _, _) = request(app.addr(), "POST", "/nope", &[], b"x");
    assert_eq!(status, 404);
}

#[test]
fn wrong_methods_are_405_with_allow() {
    let app = App::start();
    for (method, path, allow) in [
        ("POST", "/", "GET, HEAD"),
        ("DELETE", "/", "GET, HEAD"),
        ("PUT", "/healthz", "GET, HEAD"),
        ("POST", "/work", "GET, HEAD"),
        ("GET", "/echo", "POST"),
        ("HEAD", "/echo", "POST"),
    ] {
        let (status, headers, _) = request(app.addr(), method, path, &[], b"");
        assert_eq!(status, 405, "{method} {path}");
        assert_eq!(headers.get("allow").unwrap(), allow, "{method} {path}");
    }
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let app = App::start();
    let mut reqs = Vec::new();
    for _ in 0..3 {
        reqs.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    reqs.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let raw = send_raw(app.addr(), &reqs);
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 4, "{text}");
    assert_eq!(
        text.matches("Hello World on this date").count(),
        3,
        "{text}"
    );
    assert!(text.ends_with("ok"), "{text}");
}

#[tokio::test]
async fn serve_drains_in_flight_requests_on_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ServeConfig {
        grace: Duration::from_secs(20),
        ..ServeConfig::default()
    };
    let server = tokio::spawn(app::serve(listener, config, Telemetry::off(), async {
        let _ = stopped.await;
    }));
    let slow = tokio::task::spawn_blocking(move || get(addr, "/work?delay_ms=700&bytes=3"));
    tokio::time::sleep(Duration::from_millis(250)).await;
    stop.send(()).unwrap();
    let (status, _, body) = slow.await.unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"xxx"[..]));
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returned after draining")
        .unwrap()
        .unwrap();
    // No longer accepting.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test]
async fn serve_gives_up_after_the_grace_period() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ServeConfig {
        grace: Duration::from_millis(300),
        ..ServeConfig::default()
    };
    let server = tokio::spawn(app::serve(listener, config, Telemetry::off(), async {
        let _ = stopped.await;
    }));
    let slow = tokio::task::spawn_blocking(move || {
        send_raw(
            addr,
            b"GET /work?delay_ms=30000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let t = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returned after the grace period")
        .unwrap()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    // The connection was dropped: the client got no response.
    assert!(slow.await.unwrap().is_empty());
}
