//! The proxy binary over real sockets, when all goes well or the client is wrong: forwarding,
//! header rules, pooling and its metrics, malformed requests, and configuration checking.
//! Failures, timeouts and shutdown are in `failures.rs`. One behaviour each.

use proxy::ForwardedPolicy;
use testkit::dogstatsd::MetricKind;
use testkit::http::{self, Conn, ReadError};
use testkit::proxy::proxy_command;
use testkit::tcp::closed_port;
use testkit::{upstream, TempFile};

/// A proxy in front of `up` with the test settings.
fn proxy_to(up: &testkit::Upstream) -> testkit::Process {
    testkit::proxy().to(up).start()
}

// ------------------------------------------------------------------ forwarding

#[test]
fn forwards_method_path_query_headers_and_body() {
    let up = upstream().start();
    let px = proxy_to(&up);
    let r = http::send(
        px.addr(),
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
    let up = upstream().start();
    let px = proxy_to(&up);
    let r = http::send(
        px.addr(),
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(up.requests()[0].body, b"hello world");
    assert_eq!(r.body, b"upstream:/uphello world");
}

#[test]
fn streams_large_chunked_response_to_client() {
    let up = upstream().start();
    let px = proxy_to(&up);
    let r = http::get(px.addr(), "/stream?chunks=2048");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 2048 * 1024);
    assert!(r.body.iter().all(|b| *b == b'x'));
}

#[test]
fn large_request_body_with_content_length_arrives_whole() {
    let up = upstream().start();
    let px = proxy_to(&up);
    let body = vec![b'y'; 3 * 1024 * 1024];
    let mut req = format!(
        "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let r = http::send(px.addr(), &req).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(up.requests()[0].body.len(), body.len());
    assert_eq!(r.body.len(), "upstream:/big".len() + body.len());
}

#[test]
fn adds_forwarded_headers_appending_the_client_address() {
    let up = upstream().start();
    let px = proxy_to(&up);
    http::send(
        px.addr(),
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
    let up = upstream().start();
    let px = testkit::proxy()
        .to(&up)
        .forwarded(ForwardedPolicy::Replace)
        .start();
    http::send(
        px.addr(),
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
    let up = upstream().start();
    let px = proxy_to(&up);
    http::get(px.addr(), "/a");
    http::get(px.addr(), "/b");
    http::send(
        px.addr(),
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
    let up = upstream().start();
    let px = proxy_to(&up);
    let r = http::send(
        px.addr(),
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
    let up = upstream().start();
    let px = proxy_to(&up);
    let r = http::get(px.addr(), "/.proxy/health");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"ok\n");
    assert_eq!(up.count(), 0);
}

// ------------------------------------------------------------------ pooling and metrics

#[test]
fn reuses_upstream_connections_and_reports_reuse() {
    let up = upstream().start();
    let sink = testkit::dogstatsd();
    let px = testkit::proxy().to(&up).metrics_to(&sink).start();
    let mut conn = Conn::open(px.addr());
    for i in 0..20 {
        assert_eq!(conn.get(&format!("/n{i}")).status, 200);
    }
    let rec = up.requests();
    assert_eq!(rec.len(), 20);
    let mut peers: Vec<_> = rec.iter().map(|r| r.peer).collect();
    peers.dedup();
    assert!(
        peers.len() <= 2,
        "upstream connections not reused: {peers:?}"
    );
    sink.expect("an upstream connection counted as reused", |m| {
        m.name == "tinyfish.proxy.upstream.connections" && m.tag("reused") == Some("true")
    });
    sink.expect("a 2xx request count", |m| {
        m.name == "tinyfish.proxy.requests" && m.tag("status_class") == Some("2xx")
    });
    sink.expect("a request duration distribution", |m| {
        m.name == "tinyfish.proxy.request.duration" && m.kind == MetricKind::Distribution
    });
    let upstream_tag = up.addr().to_string();
    sink.expect("an upstream duration tagged with the upstream", |m| {
        m.name == "tinyfish.proxy.upstream.duration"
            && m.kind == MetricKind::Distribution
            && m.tag("upstream") == Some(upstream_tag.as_str())
    });
    sink.assert_well_formed();
}

// ------------------------------------------------------------------ malformed requests

/// Sends `bytes`; the proxy must answer 4xx or close, forward nothing, and serve the next client.
fn assert_rejected(bytes: &[u8]) {
    let up = upstream().start();
    let px = proxy_to(&up);
    match http::send(px.addr(), bytes) {
        Ok(r) => assert!(
            (400..500).contains(&r.status),
            "got {} for {:?}",
            r.status,
            String::from_utf8_lossy(bytes)
        ),
        Err(ReadError::ClosedBeforeResponse) => {}
        Err(e) => panic!("neither 4xx nor a clean close: {e:?}"),
    }
    // The next client is served; the upstream saw that request and nothing before it.
    let next = http::get(px.addr(), "/next");
    assert_eq!(next.status, 200);
    let uris: Vec<String> = up.requests().into_iter().map(|r| r.uri).collect();
    assert_eq!(uris, ["/next"], "the rejected request was forwarded");
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
        .arg(&f)
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
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timeouts.read") && err.contains(":2"), "{err}");
}

#[test]
fn flags_override_the_file() {
    let up = upstream().start();
    // The file names a closed port; --upstream wins.
    let px = testkit::proxy()
        .to_addr(closed_port())
        .arg("--upstream")
        .arg(up.addr().to_string())
        .start();
    assert_eq!(http::get(px.addr(), "/").status, 200);
    assert_eq!(up.count(), 1);
}
