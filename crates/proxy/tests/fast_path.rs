//! The HTTP/1 fast path (crates/proxy/src/fast/) over real sockets: hand-over to pingora's
//! proxy in the middle of a connection, pipelining, response framing (HEAD, close-delimited,
//! chunked, 1xx), response hop-by-hop headers, upstream connection reuse and retry, and
//! `fast_path = false`. One behaviour each; scripted raw upstreams where hyper would be too
//! well-behaved.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::http::{self, Conn, ReadError};
use testkit::{eventually, scaled, tcp, upstream};

fn ok_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

// ------------------------------------------------------------------ hand-over to pingora

#[test]
fn fast_get_then_chunked_post_then_get_on_one_connection() {
    let up = upstream().start();
    let px = testkit::proxy().to(&up).start();
    let mut conn = Conn::open(px.addr());

    let one = conn.get("/one");
    assert_eq!(
        (one.status, one.body.as_slice()),
        (200, &b"upstream:/one"[..])
    );

    conn.send(
        b"POST /two HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    let two = conn.response().unwrap();
    assert_eq!(
        (two.status, two.body.as_slice()),
        (200, &b"upstream:/twohello world"[..])
    );

    let three = conn.get("/three");
    assert_eq!(
        (three.status, three.body.as_slice()),
        (200, &b"upstream:/three"[..])
    );

    let rec = up.requests();
    let seen: Vec<_> = rec
        .iter()
        .map(|q| (q.uri.as_str(), q.body.as_slice()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("/one", &b""[..]),
            ("/two", &b"hello world"[..]),
            ("/three", &b""[..])
        ]
    );
    for q in &rec {
        assert_eq!(q.header("x-forwarded-for"), Some("127.0.0.1"), "{q:?}");
        assert!(q.header("x-request-id").is_some(), "{q:?}");
    }
}

#[test]
fn get_and_chunked_post_pipelined_in_one_write_are_both_answered() {
    // The chunked request is already in the fast path's buffer when it is handed over.
    let up = upstream().start();
    let px = testkit::proxy().to(&up).start();
    let mut conn = Conn::open(px.addr());
    conn.send(
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nPOST /second HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    let first = conn.response().unwrap();
    assert_eq!(
        (first.status, first.body.as_slice()),
        (200, &b"upstream:/first"[..])
    );
    let second = conn.response().unwrap();
    assert_eq!(
        (second.status, second.body.as_slice()),
        (200, &b"upstream:/secondabc"[..])
    );
    assert_eq!(up.count(), 2);
}

#[test]
fn body_sent_after_the_head_arrives_whole() {
    let up = upstream().start();
    let px = testkit::proxy().to(&up).start();
    let mut conn = Conn::open(px.addr());
    conn.send(b"POST /late HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n");
    // The proxy has read the head (and found no body yet) before the body is sent.
    tcp::wait_read_by_peer(conn.stream());
    conn.send(b"hello world");
    let resp = conn.response().unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"upstream:/latehello world");
    assert_eq!(up.requests()[0].body, b"hello world");
}

#[test]
fn body_partly_sent_with_the_head_arrives_whole() {
    // The bytes of the body already read must be put back for pingora's path.
    let up = upstream().start();
    let px = testkit::proxy().to(&up).start();
    let mut conn = Conn::open(px.addr());
    conn.send(b"POST /part HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello");
    // The proxy has read the head and part of the body before the rest is sent.
    tcp::wait_read_by_peer(conn.stream());
    conn.send(b" world");
    let resp = conn.response().unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"upstream:/parthello world");
    assert_eq!(up.requests()[0].body, b"hello world");
}

// ------------------------------------------------------------------ pipelining

#[test]
fn pipelined_gets_are_answered_in_order() {
    let up = upstream().start();
    let px = testkit::proxy().to(&up).start();
    let mut conn = Conn::open(px.addr());
    conn.send(
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    for p in ["/a", "/b", "/c"] {
        let resp = conn.response().unwrap();
        assert_eq!(resp.status, 200, "{p}");
        assert_eq!(String::from_utf8_lossy(&resp.body), format!("upstream:{p}"));
    }
    let uris: Vec<_> = up.requests().into_iter().map(|q| q.uri).collect();
    assert_eq!(uris, ["/a", "/b", "/c"]);
}

// ------------------------------------------------------------------ response framing

#[test]
fn head_passes_content_length_without_body_and_keeps_the_connection() {
    let up = upstream()
        .answer_with(|q| {
            if q.method == "HEAD" {
                b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n"
                    .to_vec()
            } else {
                ok_response("hello")
            }
        })
        .start();
    // A proxy waiting for the HEAD response's 1234 bytes would wait out this timeout.
    let px = testkit::proxy()
        .to(&up)
        .read_timeout(Duration::from_secs(60))
        .start();
    let mut conn = Conn::open(px.addr());
    let t = Instant::now();
    conn.send(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = conn.response_to_head().unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1234"), "{head:?}");

    // Any body byte after the HEAD response would corrupt the next response.
    let resp = conn.get("/g");
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"hello"[..]));
    assert!(
        t.elapsed() < scaled(Duration::from_secs(3)),
        "{:?}",
        t.elapsed()
    );
    let methods: Vec<_> = up.requests().into_iter().map(|q| q.method).collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}

#[test]
fn close_delimited_response_is_relayed_whole_with_connection_close() {
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let sent = body.clone();
    let up = upstream()
        .script(move |c| {
            if c.next_request().is_none() {
                return;
            }
            c.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n");
            // The body arrives in pieces: each is read by the proxy before the next is sent.
            for part in sent.chunks(16 * 1024) {
                c.wait_read_by_peer();
                c.send(part);
            }
            // returning closes: a clean close ends the body
        })
        .start();
    let px = testkit::proxy().to(&up).start();
    let t = Instant::now();
    // A keep-alive request: the Connection: close must come from the framing.
    let resp = http::send(px.addr(), b"GET /until-close HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("connection"),
        Some("close"),
        "{:?}",
        resp.headers
    );
    assert!(
        resp.header("content-length").is_none(),
        "{:?}",
        resp.headers
    );
    assert_eq!(resp.body.len(), body.len());
    assert!(resp.body == body, "body bytes differ");
    // The response is read to its end: the proxy closed the client connection promptly
    // (an open one would wait out the 60 s client idle timeout).
    assert!(
        t.elapsed() < scaled(Duration::from_secs(5)),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn interim_103_then_200_reaches_the_client_as_the_200() {
    let up = upstream()
        .answer_with(|q| {
            let mut out =
                b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n".to_vec();
            out.extend(ok_response(&format!("final{}", q.uri)));
            out // both heads in one write
        })
        .start();
    let px = testkit::proxy().to(&up).start();
    let mut conn = Conn::open(px.addr());
    for p in ["/x", "/y"] {
        conn.send(format!("GET {p} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        let mut resp = conn.response().unwrap();
        let mut interim = 0;
        while (100..200).contains(&resp.status) && interim < 3 {
            interim += 1;
            resp = conn.response().unwrap();
        }
        assert_eq!(resp.status, 200, "{p}");
        assert_eq!(String::from_utf8_lossy(&resp.body), format!("final{p}"));
    }
}

#[test]
fn bad_chunk_size_after_a_chunked_head_closes_the_client_connection() {
    let up = upstream()
        .script(|c| {
            if c.next_request().is_none() {
                return;
            }
            c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            // The proxy has the head (and has started the response) before the bad chunk.
            c.wait_read_by_peer();
            c.send(b"5\r\nhello\r\nzz\r\n");
            // Stay connected: only the proxy's framing check may end this response.
            c.wait_closed();
        })
        .start();
    // Waiting for more of the body would wait out this timeout.
    let px = testkit::proxy()
        .to(&up)
        .read_timeout(Duration::from_secs(60))
        .start();
    let t = Instant::now();
    let mut conn = Conn::open(px.addr());
    conn.send(b"GET /bad HTTP/1.1\r\nHost: a\r\n\r\n");
    match conn.response() {
        Err(ReadError::Truncated { .. }) | Err(ReadError::ClosedBeforeResponse) => {}
        Err(ReadError::Other(e)) if e.contains("chunk") => {
            assert!(
                conn.closed_within(scaled(Duration::from_secs(3))),
                "not closed"
            )
        }
        Ok(resp) if resp.status == 502 => {}
        other => panic!("expected a cut response, got {other:?}"),
    }
    assert!(
        t.elapsed() < scaled(Duration::from_secs(3)),
        "{:?}",
        t.elapsed()
    );
}

// ------------------------------------------------------------------ response headers

#[test]
fn hop_by_hop_response_headers_are_removed() {
    let up = upstream()
        .answer(&b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\nTrailer: X-Sum\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok"[..])
        .start();
    let px = testkit::proxy().to(&up).start();
    let resp = Conn::open(px.addr()).get("/");
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"ok"[..]));
    for h in [
        "x-hop",
        "keep-alive",
        "upgrade",
        "proxy-connection",
        "trailer",
    ] {
        assert!(resp.header(h).is_none(), "{h} kept: {:?}", resp.headers);
    }
    if let Some(c) = resp.header("connection") {
        assert!(!c.to_ascii_lowercase().contains("x-hop"), "{c}");
    }
    assert_eq!(resp.header("x-kept"), Some("yes"));
    assert_eq!(resp.header("content-length"), Some("2"));
}

#[test]
fn content_length_is_dropped_from_a_chunked_response() {
    let up = upstream()
        .answer(&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..])
        .start();
    let px = testkit::proxy().to(&up).start();
    let resp = Conn::open(px.addr()).get("/");
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert!(
        resp.header("content-length").is_none(),
        "conflicting framing sent to the client: {:?}",
        resp.headers
    );
}

// ------------------------------------------------------------------ upstream connections

#[test]
fn upstream_connection_close_is_not_reused() {
    // The upstream says close but leaves the connection open (and would answer on it).
    let up = upstream()
        .answer_with(|q| {
            let body = format!("answer{}", q.uri);
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
        .start();
    let px = testkit::proxy().to(&up).start();
    let mut conn = Conn::open(px.addr());
    for p in ["/1", "/2", "/3"] {
        let resp = conn.get(p);
        assert_eq!(resp.status, 200, "{p}");
        assert_eq!(String::from_utf8_lossy(&resp.body), format!("answer{p}"));
    }
    assert_eq!(up.count(), 3);
    assert_eq!(
        up.accepted(),
        3,
        "an upstream connection was reused after close"
    );
}

#[test]
fn stale_pooled_connection_is_replaced_for_gets() {
    // One response per connection, then a close the response did not announce.
    let up = upstream()
        .script(|c| {
            if let Some(q) = c.next_request() {
                c.send(&ok_response(&format!("once{}", q.uri)));
            }
        })
        .start();
    let px = testkit::proxy().to(&up).start();
    let mut conn = Conn::open(px.addr());
    for i in 0..5 {
        // The pooled connection is stale: the proxy's socket has the upstream's FIN.
        eventually("the upstream's FIN to reach the proxy", || up.closed() == i);
        let resp = conn.get(&format!("/{i}"));
        assert_eq!(resp.status, 200, "request {i}: {resp:?}");
        assert_eq!(String::from_utf8_lossy(&resp.body), format!("once/{i}"));
    }
    assert_eq!(up.count(), 5);
}

#[test]
fn stale_pooled_connection_is_replaced_for_a_put_with_its_body() {
    // PUT is idempotent: sent again, body and all, on a fresh connection.
    let up = upstream()
        .script(|c| {
            if let Some(q) = c.next_request() {
                c.send(&ok_response(&String::from_utf8_lossy(&q.body)));
            }
        })
        .start();
    let px = testkit::proxy().to(&up).start();
    let mut conn = Conn::open(px.addr());
    for i in 0..3 {
        eventually("the upstream's FIN to reach the proxy", || up.closed() == i);
        let body = format!("payload-{i}");
        conn.send(
            format!(
                "PUT /p{i} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        let resp = conn.response().unwrap();
        assert_eq!(resp.status, 200, "request {i}: {resp:?}");
        assert_eq!(String::from_utf8_lossy(&resp.body), body);
    }
    let bodies: Vec<_> = up.requests().into_iter().map(|q| q.body).collect();
    assert_eq!(bodies, [&b"payload-0"[..], b"payload-1", b"payload-2"]);
}

#[test]
fn a_pooled_connection_that_closes_on_reading_the_next_request_is_retried_whole() {
    // The keep-alive race the peek cannot see: the upstream closes after reading the next
    // request, not before. The proxy must send that request again, head and body, on a
    // fresh connection (and the client's pipelined bytes after it must survive).
    let up = upstream()
        .script(|c| {
            if let Some(q) = c.next_request() {
                let body = format!("{} {}", q.uri, String::from_utf8_lossy(&q.body));
                c.send(&ok_response(&body));
            }
            // Read the next request, then close without a word.
            let _ = c.next_request();
        })
        .start();
    let px = testkit::proxy().to(&up).start();
    let mut conn = Conn::open(px.addr());
    assert_eq!(conn.get("/first").text(), "/first ");
    // Each of these goes out on the pooled connection first, which dies on reading it.
    for i in 0..3 {
        let r = conn.get(&format!("/again{i}"));
        assert_eq!((r.status, r.text()), (200, format!("/again{i} ").as_str()));
    }
    conn.send(b"PUT /put HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody");
    let r = conn.response().expect("the PUT's response");
    assert_eq!((r.status, r.text()), (200, "/put body"));
    // Pipelined: the second request's bytes wait in the proxy while the first is retried.
    conn.send(b"GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a\r\n\r\n");
    let (one, two) = (conn.response().unwrap(), conn.response().unwrap());
    assert_eq!((one.text(), two.text()), ("/p1 ", "/p2 "));
    // And the proxy is still whole: a new client is served.
    assert_eq!(http::get(px.addr(), "/after").status, 200);
}

#[test]
fn bytes_received_on_an_idle_pooled_connection_are_not_the_next_response() {
    // Some servers say 408 on an idle keep-alive connection before closing it. pingora's
    // pool watches idle connections and drops such a one; the next request must not get it.
    let up = upstream()
        .script(|c| {
            if let Some(q) = c.next_request() {
                c.send(&ok_response(&format!("once{}", q.uri)));
                // The response is relayed (the connection goes idle) before the 408.
                c.wait_read_by_peer();
                c.send(
                    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        })
        .start();
    let px = testkit::proxy().to(&up).start();
    let mut conn = Conn::open(px.addr());
    for i in 0..2 {
        let resp = conn.get(&format!("/{i}"));
        assert_eq!(resp.status, 200, "request {i}: {resp:?}");
        assert_eq!(String::from_utf8_lossy(&resp.body), format!("once/{i}"));
        // The 408 and the close have reached the proxy.
        eventually("the 408 and the FIN to reach the proxy", || {
            up.closed() == i + 1
        });
    }
    assert_eq!(up.count(), 2);
}

// ------------------------------------------------------------------ fast_path = false

#[test]
fn fast_path_off_still_forwards_and_adds_headers() {
    let up = upstream().start();
    let px = testkit::proxy().to(&up).fast_path(false).start();
    let mut conn = Conn::open(px.addr());
    for p in ["/off1", "/off2"] {
        conn.send(format!("GET {p} HTTP/1.1\r\nHost: shop.example\r\n\r\n").as_bytes());
        let resp = conn.response().unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(String::from_utf8_lossy(&resp.body), format!("upstream:{p}"));
    }
    let rec = up.requests();
    assert_eq!(rec.len(), 2);
    for q in &rec {
        assert_eq!(q.header("x-forwarded-for"), Some("127.0.0.1"), "{q:?}");
        assert_eq!(q.header("x-forwarded-host"), Some("shop.example"), "{q:?}");
        assert!(
            q.header("x-request-id").is_some_and(|v| v.len() >= 16),
            "{q:?}"
        );
    }
    assert_ne!(rec[0].header("x-request-id"), rec[1].header("x-request-id"));
}

// ------------------------------------------------------------------ same answers as pingora's path

#[test]
fn head_on_the_health_path_has_no_body_and_keeps_the_connection() {
    let up = upstream().start();
    let px = testkit::proxy().to(&up).start();
    let mut conn = Conn::open(px.addr());
    conn.send(b"HEAD /.proxy/health HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = conn.response_to_head().unwrap();
    assert_eq!(head.status, 200, "{head:?}");
    // The next response must start right after the head: no "ok\n" in between.
    let next = conn.get("/after");
    assert_eq!(next.status, 200);
    assert_eq!(next.body, b"upstream:/after");
}

#[test]
fn userinfo_in_host_is_refused_and_not_forwarded() {
    let up = upstream().start();
    let px = testkit::proxy().to(&up).start();
    let r = http::send(
        px.addr(),
        b"GET / HTTP/1.1\r\nHost: user@internal\r\nConnection: close\r\n\r\n",
    );
    if let Ok(r) = r {
        assert_eq!(r.status, 400, "{:?}", r.headers);
    }
    assert_eq!(up.count(), 0, "forwarded a Host with userinfo");
}

#[test]
fn a_request_id_named_in_connection_is_replaced_by_a_fresh_one() {
    let up = upstream().start();
    let px = testkit::proxy().to(&up).start();
    http::send(
        px.addr(),
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-request-id, X-Forwarded-For\r\nX-Request-Id: abc\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
    )
    .unwrap();
    let rec = &up.requests()[0];
    let ids = rec.header_all("x-request-id");
    assert_eq!(ids.len(), 1, "{:?}", rec.headers);
    assert_ne!(ids[0], "abc", "a hop-by-hop id was forwarded");
    assert_eq!(rec.header("x-forwarded-for"), Some("127.0.0.1"));
}

#[test]
fn a_response_with_many_headers_is_relayed() {
    let up = upstream()
        .answer_with(|_| {
            let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n".to_vec();
            for i in 0..150 {
                r.extend_from_slice(format!("Set-Cookie: c{i}=v{i}\r\n").as_bytes());
            }
            r.extend_from_slice(b"\r\nok");
            r
        })
        .start();
    let px = testkit::proxy().to(&up).start();
    let resp = Conn::open(px.addr()).get("/");
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(resp.header_all("set-cookie").len(), 150);
}

#[test]
fn idle_pooled_connections_closed_by_the_upstream_are_dropped_without_traffic() {
    // The upstream answers (keep-alive) and closes the connection once it is idle, as
    // servers with a short idle timeout do.
    let answered = Arc::new(AtomicBool::new(false));
    let a = answered.clone();
    let up = upstream()
        .script(move |c| {
            if c.next_request().is_some() {
                c.send(&ok_response("hi"));
                eventually("the client to have its response", || {
                    a.load(Ordering::SeqCst)
                });
            }
        })
        .start();
    let px = testkit::proxy().to(&up).start();
    let mut conn = Conn::open(px.addr());
    assert_eq!(conn.get("/").status, 200);
    answered.store(true, Ordering::SeqCst);
    // The close happened: the proxy's pooled socket has the FIN (it is in CLOSE_WAIT, or
    // already swept) …
    eventually("the upstream's close to reach the proxy", || {
        up.closed() == 1
    });
    // … and with no further request, the sweep drops it.
    testkit::wait("the sweep to drop the closed upstream connection from the pool")
        .within(Duration::from_secs(5))
        .until(|| tcp::close_wait_to(up.addr()) == 0);
    // And the next request still works, on a fresh connection.
    assert_eq!(conn.get("/").status, 200);
    assert_eq!(up.accepted(), 2);
}
