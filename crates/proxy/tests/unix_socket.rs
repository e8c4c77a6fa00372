//! The proxy in front of an upstream on a Unix socket (`upstreams = ["unix:/path"]`, the
//! same-host sidecar), on the fast path and on pingora's: exact bytes both ways, pooling,
//! a socket that is not there (yet), the `Host` given to a request without one, and the
//! configurations refused.

use testkit::http::{self, Conn};
use testkit::proxy::proxy_command;
use testkit::unix::{self, SocketDir};
use testkit::{tcp, TempFile};

/// What the Unix-socket upstream answers, `Date` included so that the fast path's answer
/// is known byte for byte.
const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: Tue, 24 Nov 2026 10:00:00 GMT\r\n\r\nok";

const GET: &[u8] = b"GET /a?b=1 HTTP/1.1\r\nHost: sidecar.test\r\nX-Request-Id: r1\r\n\r\n";
const POST: &[u8] =
    b"POST /p HTTP/1.1\r\nHost: sidecar.test\r\nX-Request-Id: r2\r\nContent-Length: 5\r\n\r\nhello";

/// `GET` as the upstream receives it: the same head with the forwarded headers appended.
const GET_UPSTREAM: &[u8] = b"GET /a?b=1 HTTP/1.1\r\nHost: sidecar.test\r\nX-Request-Id: r1\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: sidecar.test\r\n\r\n";
const POST_UPSTREAM: &[u8] = b"POST /p HTTP/1.1\r\nHost: sidecar.test\r\nX-Request-Id: r2\r\nContent-Length: 5\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: sidecar.test\r\n\r\nhello";

/// The response text with the value of its `Date` header replaced by `*` (pingora's path
/// sets its own).
fn any_date(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split("\r\n")
        .map(|l| {
            if l.starts_with("Date: ") && l.ends_with(" GMT") {
                "Date: *"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A GET and a POST in turn on one client connection (on one upstream connection), then a
/// GET with `Connection: close` on another, through a proxy (`fast` path or pingora's) to
/// an upstream on a Unix socket; returns what the last client received.
fn three_requests_through(fast: bool) -> Vec<u8> {
    let dir = SocketDir::new();
    let up = unix::upstream(dir.path("app.sock"), ANSWER);
    let px = testkit::proxy().to_unix(up.path()).fast_path(fast).start();
    let mut conn = Conn::open(px.addr());
    for (req, path) in [(GET, "GET /a"), (POST, "POST /p")] {
        conn.send(req);
        let r = conn.response().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]), "{path}");
    }
    // Counted now: the connection goes back to the pool after the response is written, so
    // a request on another client connection could race it.
    assert_eq!(
        up.accepted(),
        1,
        "fast path {fast}: requests in turn did not reuse the one upstream connection"
    );
    let last = tcp::exchange(
        px.addr(),
        b"GET /a?b=1 HTTP/1.1\r\nHost: sidecar.test\r\nX-Request-Id: r1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        up.requests(),
        [GET_UPSTREAM, POST_UPSTREAM, GET_UPSTREAM],
        "fast path {fast}: the upstream got other bytes"
    );
    last
}

// ------------------------------------------------------------------ forwarding

#[test]
fn fast_path_forwards_to_a_unix_socket_byte_for_byte_on_one_pooled_connection() {
    let last = three_requests_through(true);
    assert_eq!(
        String::from_utf8_lossy(&last),
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: Tue, 24 Nov 2026 10:00:00 GMT\r\nConnection: close\r\n\r\nok"
    );
}

#[test]
fn pingora_path_forwards_to_a_unix_socket_byte_for_byte_on_one_pooled_connection() {
    let last = three_requests_through(false);
    assert_eq!(
        any_date(&last),
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: *\r\nConnection: close\r\n\r\nok"
    );
}

#[test]
fn a_request_without_host_reaches_a_unix_socket_upstream_as_localhost() {
    // HTTP/1.0 may omit Host; the HTTP/1.1 request sent on needs one, and a socket path is
    // no host name (NGINX sends `localhost` too).
    let dir = SocketDir::new();
    let up = unix::upstream(dir.path("app.sock"), ANSWER);
    let px = testkit::proxy().to_unix(up.path()).start();
    let got = tcp::exchange(px.addr(), b"GET /old HTTP/1.0\r\nX-Request-Id: r3\r\n\r\n");
    assert_eq!(
        any_date(&got),
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: *\r\nConnection: close\r\n\r\nok"
    );
    assert_eq!(
        String::from_utf8_lossy(&up.requests()[0]),
        "GET /old HTTP/1.1\r\nX-Request-Id: r3\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nHost: localhost\r\n\r\n"
    );
}

#[test]
fn the_app_on_a_unix_socket_answers_through_the_proxy_tagged_with_the_socket() {
    let dir = SocketDir::new();
    let app = testkit::app().start_unix(dir.path("app.sock"));
    let sink = testkit::dogstatsd();
    // Both kept running until their metrics are in.
    let mut proxies = Vec::new();
    for fast in [true, false] {
        let px = testkit::proxy()
            .to_unix(app.path())
            .fast_path(fast)
            .metrics_to(&sink)
            .start();
        let r = http::get(px.addr(), "/");
        assert_eq!(r.status, 200, "fast path {fast}");
        assert!(
            r.text().starts_with("Hello World on this date "),
            "fast path {fast}: {}",
            r.text()
        );
        proxies.push(px);
    }
    let tag = format!("unix:{}", app.path().display());
    sink.expect("an upstream duration tagged with the socket", |m| {
        m.name == "tinyfish.proxy.upstream.duration" && m.tag("upstream") == Some(tag.as_str())
    });
    sink.assert_well_formed();
}

// ------------------------------------------------------------------ a socket that is not there

/// A proxy to a socket path where nothing is yet: it starts, answers 502, then serves once
/// an upstream is there, a stale socket file (nothing accepting) in between also 502.
fn missing_then_stale_then_there(fast: bool) {
    let dir = SocketDir::new();
    let path = dir.path("later.sock");
    let px = testkit::proxy().to_unix(&path).fast_path(fast).start();
    let bad_gateway = |when: &str| {
        let r = http::get(px.addr(), "/");
        assert_eq!(r.status, 502, "fast path {fast}, {when}");
        assert_eq!(
            r.text(),
            "bad gateway: the upstream could not be reached or failed\n",
            "fast path {fast}, {when}"
        );
    };
    bad_gateway("no socket file");
    bad_gateway("no socket file, again");
    // A socket file nothing listens on any more (a killed upstream's): refused.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    bad_gateway("a stale socket file");
    std::fs::remove_file(&path).unwrap();
    let up = unix::upstream(&path, ANSWER);
    let r = http::get(px.addr(), "/");
    assert_eq!((r.status, r.text()), (200, "ok"), "fast path {fast}");
    assert_eq!(up.count(), 1);
}

#[test]
fn fast_path_answers_502_while_the_socket_is_missing_then_serves() {
    missing_then_stale_then_there(true);
}

#[test]
fn pingora_path_answers_502_while_the_socket_is_missing_then_serves() {
    missing_then_stale_then_there(false);
}

// ------------------------------------------------------------------ configuration

#[test]
fn check_rejects_a_relative_unix_path_naming_the_key_and_its_line() {
    let f = TempFile::new(
        "unix.toml",
        "listen = \"127.0.0.1:0\"\nupstreams = [\"unix:relative/app.sock\"]\n",
    );
    let out = proxy_command()
        .arg("--check")
        .arg("-c")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "proxy: {}:2: upstreams[0]: expected \"unix:\" followed by an absolute path, e.g. \
             \"unix:/run/tinyfish/app.sock\", got \"unix:relative/app.sock\"\n",
            f.path().display()
        )
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_rejects_a_unix_socket_among_several_upstreams() {
    let out = proxy_command()
        .args([
            "--check",
            "--upstream",
            "127.0.0.1:5000",
            "--upstream",
            "unix:/run/tinyfish/app.sock",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "proxy: command line: upstreams[1]: a Unix-socket upstream must be the only upstream: \
         \"unix:/run/tinyfish/app.sock\" is listed with 1 other(s), and several upstreams are \
         health-checked over TCP\n"
    );
}

#[test]
fn check_accepts_a_unix_socket_upstream_that_does_not_exist_yet() {
    let out = proxy_command()
        .args([
            "--check",
            "--upstream",
            "unix:/nonexistent/tinyfish/app.sock",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
