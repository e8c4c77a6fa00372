//! Every route and error case of the app, over real sockets (127.0.0.1, port 0).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::work::{MAX_BYTES, MAX_CPU_US, MAX_DELAY_MS};
use app::ServeConfig;
use telemetry::Telemetry;
use testkit::app::wait_in_flight;
use testkit::http::{get, parse_response, request};
use testkit::scaled;
use testkit::tcp::exchange;

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
    let app = testkit::app().start();
    let before = greeting_by_date_command();
    let r = get(app.addr(), "/");
    let after = greeting_by_date_command();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let body = r.text();
    assert!(body == before || body == after, "{body:?} vs {before:?}");
    assert!(body.starts_with("Hello World on this date "), "{body}");
}

#[test]
fn head_root_has_the_same_head_and_no_body() {
    let app = testkit::app().start();
    let got = get(app.addr(), "/");
    // Everything the app sends until it closes: a body after the head would be seen.
    let raw = exchange(
        app.addr(),
        b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let head = parse_response(&raw, true).unwrap();
    assert_eq!(head.status, 200);
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        &raw[end..],
        b"",
        "HEAD answered a body: {:?}",
        String::from_utf8_lossy(&raw[end..])
    );
    assert_eq!(head.header("content-type"), got.header("content-type"));
    assert_eq!(
        head.header("content-length"),
        Some(got.body.len().to_string().as_str())
    );
}

#[test]
fn healthz_is_ok() {
    let app = testkit::app().start();
    let r = get(app.addr(), "/healthz");
    assert_eq!((r.status, r.text()), (200, "ok"));
    let r = request(app.addr(), "HEAD", "/healthz", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
}

#[test]
fn work_answers_the_size_asked_for() {
    let app = testkit::app().start();
    for n in [0u64, 1, 1000, 65_536, 1_000_000] {
        let r = get(app.addr(), &format!("/work?bytes={n}"));
        assert_eq!(r.status, 200, "bytes={n}");
        assert_eq!(r.body.len() as u64, n);
        assert_eq!(r.header("content-length"), Some(n.to_string().as_str()));
    }
    let r = get(app.addr(), "/work");
    assert_eq!((r.status, r.body.len()), (200, 0));
    let r = get(app.addr(), &format!("/work?bytes={MAX_BYTES}"));
    assert_eq!((r.status, r.body.len() as u64), (200, MAX_BYTES));
}

#[test]
fn work_spins_and_waits_at_least_as_asked() {
    let app = testkit::app().start();
    let t = Instant::now();
    let r = get(app.addr(), "/work?cpu_us=150000&bytes=10");
    assert_eq!((r.status, r.body.len()), (200, 10));
    // CPU time can only be at most wall time: 150 ms of CPU takes at least 150 ms.
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    assert_eq!(get(app.addr(), "/work?delay_ms=300").status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn work_delay_does_not_block_the_worker() {
    // testkit's app runs on one thread: a blocked worker would hold up the second request.
    let sink = testkit::dogstatsd();
    let app = testkit::app().metrics_to(&sink, &[]).start();
    let addr = app.addr();
    // The slack the second request has; stretched with the patience setting.
    let delay = scaled(Duration::from_secs(3)).min(Duration::from_millis(MAX_DELAY_MS));
    let slow = std::thread::spawn(move || {
        let status = get(addr, &format!("/work?delay_ms={}", delay.as_millis())).status;
        (status, Instant::now())
    });
    // The delayed request is being handled before the second one is sent.
    wait_in_flight(&sink, app.telemetry(), 1);
    let status = get(addr, "/").status;
    let fast_done = Instant::now();
    assert_eq!(status, 200);
    let (slow_status, slow_done) = slow.join().unwrap();
    assert_eq!(slow_status, 200);
    assert!(fast_done < slow_done, "GET / waited for the delayed /work");
}

#[test]
fn work_rejects_bad_parameters_naming_them() {
    let app = testkit::app().start();
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
        let r = get(app.addr(), &format!("/work?{query}"));
        assert_eq!(r.status, 400, "{query}");
        assert_eq!(r.header("content-type"), Some("text/plain"));
        let body = r.text();
        assert!(body.starts_with(name), "{query}: {body:?}");
        assert_eq!(body.trim_end().lines().count(), 1, "{query}: {body:?}");
    }
}

#[test]
fn echo_streams_the_body_back() {
    let app = testkit::app().start();
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let r = request(
        app.addr(),
        "POST",
        "/echo",
        &[("Content-Type", "application/x-test")],
        &body,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-test"));
    assert_eq!(
        r.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(r.body, body);
    let r = request(app.addr(), "POST", "/echo", &[], b"");
    assert_eq!((r.status, r.body.len()), (200, 0));
}

#[test]
fn echo_takes_chunked_bodies() {
    let app = testkit::app().start();
    let chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let r = request(
        app.addr(),
        "POST",
        "/echo",
        &[("Transfer-Encoding", "chunked")],
        chunked,
    );
    assert_eq!((r.status, r.text()), (200, "hello world"));
}

#[test]
fn echo_beyond_the_bound_is_413() {
    let config = ServeConfig {
        echo_max_bytes: 1000,
        ..ServeConfig::default()
    };
    let app = testkit::app().config(config).start();
    let r = request(app.addr(), "POST", "/echo", &[], &[b'a'; 1000]);
    assert_eq!((r.status, r.body.len()), (200, 1000));
    let r = request(app.addr(), "POST", "/echo", &[], &[b'a'; 1001]);
    assert_eq!(r.status, 413);
    assert!(r.text().contains("1000"), "{:?}", r.text());
    // Declared up front, far beyond the bound: refused without reading the body.
    let raw = exchange(
        app.addr(),
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\nabc",
    );
    assert_eq!(parse_response(&raw, false).unwrap().status, 413);
    // Chunked, no length up front: 413 once the bound is crossed.
    let mut chunked = Vec::new();
    for _ in 0..3 {
        chunked.extend_from_slice(b"190\r\n");
        chunked.extend_from_slice(&[b'z'; 400]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = request(
        app.addr(),
        "POST",
        "/echo",
        &[("Transfer-Encoding", "chunked")],
        &chunked,
    );
    assert_eq!(r.status, 413);
}

#[test]
fn unknown_paths_are_404() {
    let app = testkit::app().start();
    for path in ["/nope", "/work/", "/healthz/x", "/index.html"] {
        assert_eq!(get(app.addr(), path).status, 404, "{path}");
    }
    assert_eq!(request(app.addr(), "POST", "/nope", &[], b"x").status, 404);
}

#[test]
fn wrong_methods_are_405_with_allow() {
    let app = testkit::app().start();
    for (method, path, allow) in [
        ("POST", "/", "GET, HEAD"),
        ("DELETE", "/", "GET, HEAD"),
        ("PUT", "/healthz", "GET, HEAD"),
        ("POST", "/work", "GET, HEAD"),
        ("GET", "/echo", "POST"),
        ("HEAD", "/echo", "POST"),
    ] {
        let r = request(app.addr(), method, path, &[], b"");
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let app = testkit::app().start();
    let mut reqs = Vec::new();
    for _ in 0..3 {
        reqs.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    reqs.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let raw = exchange(app.addr(), &reqs);
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 4, "{text}");
    assert_eq!(
        text.matches("Hello World on this date").count(),
        3,
        "{text}"
    );
    assert!(text.ends_with("ok"), "{text}");
}

/// An app served by `app::serve` on this test's runtime, with metrics to a sink so the
/// test can see a request being handled.
struct Served {
    addr: std::net::SocketAddr,
    sink: Arc<testkit::Sink>,
    telemetry: Telemetry,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), app::ServeError>>,
}

async fn serve_with_grace(grace: Duration) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = Arc::new(testkit::dogstatsd());
    let telemetry = Telemetry::start(&sink.datadog_env(&[]), app::DEFAULT_SERVICE).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ServeConfig {
        grace,
        ..ServeConfig::default()
    };
    let server = tokio::spawn(app::serve(listener, config, telemetry.clone(), async {
        let _ = stopped.await;
    }));
    Served {
        addr,
        sink,
        telemetry,
        stop,
        server,
    }
}

impl Served {
    /// Waits, off the runtime the app is served on, until one request is being handled.
    async fn one_in_flight(&self) {
        let (sink, telemetry) = (self.sink.clone(), self.telemetry.clone());
        tokio::task::spawn_blocking(move || wait_in_flight(&sink, &telemetry, 1))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn serve_drains_in_flight_requests_on_shutdown() {
    let served = serve_with_grace(Duration::from_secs(20)).await;
    let addr = served.addr;
    let delay = scaled(Duration::from_millis(1500));
    let path = format!("/work?delay_ms={}&bytes=3", delay.as_millis());
    let slow = tokio::task::spawn_blocking(move || (get(addr, &path), Instant::now()));
    // The request was accepted and is being handled when shutdown is asked for.
    served.one_in_flight().await;
    let stopped = Instant::now();
    served.stop.send(()).unwrap();
    let (r, answered) = slow.await.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"xxx"[..]));
    assert!(
        answered > stopped,
        "the request was not in flight at shutdown"
    );
    tokio::time::timeout(scaled(Duration::from_secs(10)), served.server)
        .await
        .expect("serve returned after draining")
        .unwrap()
        .unwrap();
    // No longer accepting.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test]
async fn serve_gives_up_after_the_grace_period() {
    let grace = Duration::from_millis(300);
    let served = serve_with_grace(grace).await;
    let addr = served.addr;
    // The longest delay the app allows: a serve that waited for it would be seen.
    let request = format!(
        "GET /work?delay_ms={MAX_DELAY_MS} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let slow = tokio::task::spawn_blocking(move || exchange(addr, request.as_bytes()));
    // The request was accepted and is being handled when shutdown is asked for.
    served.one_in_flight().await;
    let t = Instant::now();
    served.stop.send(()).unwrap();
    tokio::time::timeout(scaled(Duration::from_secs(5)), served.server)
        .await
        .expect("serve returned after the grace period")
        .unwrap()
        .unwrap();
    // After the grace period, and long before the request's minute.
    let took = t.elapsed();
    assert!(
        took >= grace && took < scaled(Duration::from_secs(5)),
        "{took:?}"
    );
    // The connection was dropped: the client got no response.
    assert!(slow.await.unwrap().is_empty());
}
