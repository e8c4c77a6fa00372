//! The HTTP/1 fast path (crates/proxy/src/fast.rs) over real sockets: hand-over to pingora's
//! proxy in the middle of a connection, pipelining, response framing (HEAD, close-delimited,
//! chunked, 1xx), response hop-by-hop headers, upstream connection reuse and retry, and
//! `fast_path = false`. One behaviour each; scripted raw upstreams where hyper would be too
//! well-behaved.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;

// ------------------------------------------------------------------ scripted raw upstream

/// One request as a raw upstream read it (Content-Length bodies only).
#[derive(Debug, Clone)]
struct RawReq {
    head: String,
    body: Vec<u8>,
}

impl RawReq {
    fn method(&self) -> &str {
        self.head.split(' ').next().unwrap_or("")
    }
    fn path(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }
}

/// One upstream connection of a [`RawServer`], as its handler sees it.
struct RawConn {
    s: TcpStream,
    buf: Vec<u8>,
    log: Arc<Mutex<Vec<RawReq>>>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

impl RawConn {
    /// The next whole request on this connection; `None` once the proxy closes it.
    fn next_request(&mut self) -> Option<RawReq> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end + 4]).into_owned();
                let total = end + 4 + content_length(&head);
                if self.buf.len() >= total {
                    let body = self.buf[end + 4..total].to_vec();
                    self.buf.drain(..total);
                    let r = RawReq { head, body };
                    self.log.lock().unwrap().push(r.clone());
                    return Some(r);
                }
            }
            let mut b = [0u8; 8192];
            match self.s.read(&mut b) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&b[..n]),
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        let _ = self.s.write_all(bytes);
        let _ = self.s.flush();
    }

    /// Waits (bounded by the read timeout) until the proxy closes this connection.
    fn wait_closed(&mut self) {
        let mut b = [0u8; 4096];
        while matches!(self.s.read(&mut b), Ok(n) if n > 0) {}
    }
}

/// A TCP upstream running `handler` for each accepted connection (one thread each); it
/// counts connections and logs every request read through [`RawConn::next_request`].
struct RawServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<RawReq>>>,
}

impl RawServer {
    fn start(handler: impl Fn(&mut RawConn) + Send + Sync + 'static) -> RawServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let (acc, lg) = (accepted.clone(), log.clone());
        std::thread::spawn(move || {
            for s in l.incoming().take(200) {
                let Ok(s) = s else { continue };
                acc.fetch_add(1, Ordering::SeqCst);
                let _ = s.set_read_timeout(Some(WAIT));
                let _ = s.set_nodelay(true);
                let mut conn = RawConn {
                    s,
                    buf: Vec::new(),
                    log: lg.clone(),
                };
                let h = handler.clone();
                std::thread::spawn(move || h(&mut conn));
            }
        });
        RawServer {
            addr,
            accepted,
            log,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<RawReq> {
        self.log.lock().unwrap().clone()
    }
}

/// A keep-alive upstream answering every request with `response(request)`.
fn serving(response: impl Fn(&RawReq) -> Vec<u8> + Send + Sync + 'static) -> RawServer {
    RawServer::start(move |c| {
        while let Some(req) = c.next_request() {
            c.send(&response(&req));
        }
    })
}

// ------------------------------------------------------------------ client helpers

fn proxy_to(addr: SocketAddr) -> Proxy {
    Proxy::start(&config_for(&[addr], ""))
}

/// A client connection: a reader and a writer on the same socket.
fn client(addr: SocketAddr) -> (BufReader<TcpStream>, TcpStream) {
    let s = connect(addr);
    (BufReader::new(s.try_clone().unwrap()), s)
}

/// Reads a response head only (status, headers), leaving any body unread.
fn read_head(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        assert!(r.read_line(&mut h).expect("header line") > 0, "head cut");
        let h = h.trim_end();
        if h.is_empty() {
            return (status, headers);
        }
        let (k, v) = h.split_once(':').expect("a header");
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
}

/// Whether the peer closes the connection (EOF or reset) within `within`, with no more bytes.
fn closed_within(r: &mut BufReader<TcpStream>, within: Duration) -> bool {
    r.get_ref().set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    match r.read(&mut b) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

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
    let up = Upstream::start();
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);

    w.write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let one = read_response(&mut r).unwrap();
    assert_eq!(
        (one.status, one.body.as_slice()),
        (200, &b"upstream:/one"[..])
    );

    w.write_all(
        b"POST /two HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .unwrap();
    let two = read_response(&mut r).unwrap();
    assert_eq!(
        (two.status, two.body.as_slice()),
        (200, &b"upstream:/twohello world"[..])
    );

    w.write_all(b"GET /three HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let three = read_response(&mut r).unwrap();
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
    let up = Upstream::start();
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);
    w.write_all(
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nPOST /second HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .unwrap();
    let first = read_response(&mut r).unwrap();
    assert_eq!(
        (first.status, first.body.as_slice()),
        (200, &b"upstream:/first"[..])
    );
    let second = read_response(&mut r).unwrap();
    assert_eq!(
        (second.status, second.body.as_slice()),
        (200, &b"upstream:/secondabc"[..])
    );
    assert_eq!(up.count(), 2);
}

#[test]
fn body_sent_after_the_head_arrives_whole() {
    let up = Upstream::start();
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);
    w.write_all(b"POST /late HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    w.write_all(b"hello world").unwrap();
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"upstream:/latehello world");
    assert_eq!(up.requests()[0].body, b"hello world");
}

#[test]
fn body_partly_sent_with_the_head_arrives_whole() {
    // The bytes of the body already read must be put back for pingora's path.
    let up = Upstream::start();
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);
    w.write_all(b"POST /part HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    w.write_all(b" world").unwrap();
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"upstream:/parthello world");
    assert_eq!(up.requests()[0].body, b"hello world");
}

// ------------------------------------------------------------------ pipelining

#[test]
fn pipelined_gets_are_answered_in_order() {
    let up = Upstream::start();
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);
    w.write_all(
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    for p in ["/a", "/b", "/c"] {
        let resp = read_response(&mut r).unwrap();
        assert_eq!(resp.status, 200, "{p}");
        assert_eq!(String::from_utf8_lossy(&resp.body), format!("upstream:{p}"));
    }
    let uris: Vec<_> = up.requests().into_iter().map(|q| q.uri).collect();
    assert_eq!(uris, ["/a", "/b", "/c"]);
}

// ------------------------------------------------------------------ response framing

#[test]
fn head_passes_content_length_without_body_and_keeps_the_connection() {
    let up = serving(|q| {
        if q.method() == "HEAD" {
            b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n".to_vec()
        } else {
            ok_response("hello")
        }
    });
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);
    let t = Instant::now();
    w.write_all(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let (status, headers) = read_head(&mut r);
    assert_eq!(status, 200);
    let cl = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str());
    assert_eq!(cl, Some("1234"), "{headers:?}");

    // Any body byte after the HEAD response would corrupt the next response.
    w.write_all(b"GET /g HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let resp = read_response(&mut r).unwrap();
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"hello"[..]));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let methods: Vec<_> = up
        .requests()
        .iter()
        .map(|q| q.method().to_owned())
        .collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}

#[test]
fn close_delimited_response_is_relayed_whole_with_connection_close() {
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let sent = body.clone();
    let up = RawServer::start(move |c| {
        if c.next_request().is_none() {
            return;
        }
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n");
        for part in sent.chunks(16 * 1024) {
            std::thread::sleep(Duration::from_millis(10));
            c.send(part);
        }
        // dropped: a clean close ends the body
    });
    let px = proxy_to(up.addr);
    let t = Instant::now();
    // A keep-alive request: the Connection: close must come from the framing.
    let resp = send_raw(px.addr, b"GET /until-close HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
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
    // read_response reads to the end: the proxy closed the client connection promptly.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn interim_103_then_200_reaches_the_client_as_the_200() {
    let up = serving(|q| {
        let mut out =
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n".to_vec();
        out.extend(ok_response(&format!("final{}", q.path())));
        out // both heads in one write
    });
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);
    for p in ["/x", "/y"] {
        w.write_all(format!("GET {p} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let mut resp = read_response(&mut r).unwrap();
        let mut interim = 0;
        while (100..200).contains(&resp.status) && interim < 3 {
            interim += 1;
            resp = read_response(&mut r).unwrap();
        }
        assert_eq!(resp.status, 200, "{p}");
        assert_eq!(String::from_utf8_lossy(&resp.body), format!("final{p}"));
    }
}

#[test]
fn bad_chunk_size_after_a_chunked_head_closes_the_client_connection() {
    let up = RawServer::start(|c| {
        if c.next_request().is_none() {
            return;
        }
        c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        std::thread::sleep(Duration::from_millis(100));
        c.send(b"5\r\nhello\r\nzz\r\n");
        // Stay connected: only the proxy's framing check may end this response.
        c.wait_closed();
    });
    let px = proxy_to(up.addr);
    let t = Instant::now();
    let (mut r, mut w) = client(px.addr);
    w.write_all(b"GET /bad HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    match read_response(&mut r) {
        Err(ReadError::Truncated { .. }) | Err(ReadError::ClosedBeforeResponse) => {}
        Err(ReadError::Other(e)) if e.contains("chunk") => {
            assert!(closed_within(&mut r, Duration::from_secs(3)), "not closed")
        }
        Ok(resp) if resp.status == 502 => {}
        other => panic!("expected a cut response, got {other:?}"),
    }
    // Well before the proxy's 5 s upstream read timeout.
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

// ------------------------------------------------------------------ response headers

#[test]
fn hop_by_hop_response_headers_are_removed() {
    let up = serving(|_| {
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\nTrailer: X-Sum\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok"
            .to_vec()
    });
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);
    w.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let resp = read_response(&mut r).unwrap();
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
    let up = serving(|_| {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            .to_vec()
    });
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);
    w.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let resp = read_response(&mut r).unwrap();
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
    let up = serving(|q| {
        let body = format!("answer{}", q.path());
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    });
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);
    for p in ["/1", "/2", "/3"] {
        w.write_all(format!("GET {p} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let resp = read_response(&mut r).unwrap();
        assert_eq!(resp.status, 200, "{p}");
        assert_eq!(String::from_utf8_lossy(&resp.body), format!("answer{p}"));
    }
    assert_eq!(up.requests().len(), 3);
    assert_eq!(
        up.accepted(),
        3,
        "an upstream connection was reused after close"
    );
}

#[test]
fn stale_pooled_connection_is_replaced_for_gets() {
    // One response per connection, then a close the response did not announce.
    let up = RawServer::start(|c| {
        if let Some(q) = c.next_request() {
            c.send(&ok_response(&format!("once{}", q.path())));
        }
    });
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(50)); // the upstream's FIN arrives first
        w.write_all(format!("GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let resp = read_response(&mut r).unwrap();
        assert_eq!(resp.status, 200, "request {i}: {resp:?}");
        assert_eq!(String::from_utf8_lossy(&resp.body), format!("once/{i}"));
    }
    assert_eq!(up.requests().len(), 5);
}

#[test]
fn stale_pooled_connection_is_replaced_for_a_put_with_its_body() {
    // PUT is idempotent: sent again, body and all, on a fresh connection.
    let up = RawServer::start(|c| {
        if let Some(q) = c.next_request() {
            c.send(&ok_response(&String::from_utf8_lossy(&q.body)));
        }
    });
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(50));
        let body = format!("payload-{i}");
        w.write_all(
            format!(
                "PUT /p{i} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        let resp = read_response(&mut r).unwrap();
        assert_eq!(resp.status, 200, "request {i}: {resp:?}");
        assert_eq!(String::from_utf8_lossy(&resp.body), body);
    }
    let bodies: Vec<_> = up.requests().into_iter().map(|q| q.body).collect();
    assert_eq!(bodies, [&b"payload-0"[..], b"payload-1", b"payload-2"]);
}

#[test]
fn bytes_received_on_an_idle_pooled_connection_are_not_the_next_response() {
    // Some servers say 408 on an idle keep-alive connection before closing it. pingora's
    // pool watches idle connections and drops such a one; the next request must not get it.
    let up = RawServer::start(|c| {
        if let Some(q) = c.next_request() {
            c.send(&ok_response(&format!("once{}", q.path())));
            std::thread::sleep(Duration::from_millis(100));
            c.send(
                b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);
    for i in 0..2 {
        w.write_all(format!("GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let resp = read_response(&mut r).unwrap();
        assert_eq!(resp.status, 200, "request {i}: {resp:?}");
        assert_eq!(String::from_utf8_lossy(&resp.body), format!("once/{i}"));
        std::thread::sleep(Duration::from_millis(300)); // the 408 and the close arrive
    }
    assert_eq!(up.requests().len(), 2);
}

// ------------------------------------------------------------------ fast_path = false

#[test]
fn fast_path_off_still_forwards_and_adds_headers() {
    let up = Upstream::start();
    let px = Proxy::start(&format!(
        "fast_path = false\n{}",
        config_for(&[up.addr], "")
    ));
    let (mut r, mut w) = client(px.addr);
    for p in ["/off1", "/off2"] {
        w.write_all(format!("GET {p} HTTP/1.1\r\nHost: shop.example\r\n\r\n").as_bytes())
            .unwrap();
        let resp = read_response(&mut r).unwrap();
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
    let up = Upstream::start();
    let px = Proxy::start(&config_for(&[up.addr], ""));
    let (mut r, mut w) = client(px.addr);
    w.write_all(b"HEAD /.proxy/health HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let (status, headers) = read_head(&mut r);
    assert_eq!(status, 200, "{headers:?}");
    // The next response must start right after the head: no "ok\n" in between.
    w.write_all(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let next = read_response(&mut r).unwrap();
    assert_eq!(next.status, 200);
    assert_eq!(next.body, b"upstream:/after");
}

#[test]
fn userinfo_in_host_is_refused_and_not_forwarded() {
    let up = Upstream::start();
    let px = Proxy::start(&config_for(&[up.addr], ""));
    let r = send_raw(
        px.addr,
        b"GET / HTTP/1.1\r\nHost: user@internal\r\nConnection: close\r\n\r\n",
    );
    if let Ok(r) = r {
        assert_eq!(r.status, 400, "{:?}", r.headers);
    }
    assert_eq!(up.count(), 0, "forwarded a Host with userinfo");
}

#[test]
fn a_request_id_named_in_connection_is_replaced_by_a_fresh_one() {
    let up = Upstream::start();
    let px = Proxy::start(&config_for(&[up.addr], ""));
    send_raw(
        px.addr,
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
    let up = serving(|_| {
        let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n".to_vec();
        for i in 0..150 {
            r.extend_from_slice(format!("Set-Cookie: c{i}=v{i}\r\n").as_bytes());
        }
        r.extend_from_slice(b"\r\nok");
        r
    });
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);
    w.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let resp = read_response(&mut r).unwrap();
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"ok"[..]));
    let cookies = resp
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .count();
    assert_eq!(cookies, 150);
}

/// Sockets to `upstream` in CLOSE_WAIT (the upstream closed, we did not) on this machine.
fn close_wait_to(upstream: SocketAddr) -> usize {
    let port = format!(":{:04X}", upstream.port());
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[2].ends_with(&port) && f[3] == "08"
        })
        .count()
}

#[test]
fn idle_pooled_connections_closed_by_the_upstream_are_dropped_without_traffic() {
    // The upstream answers (keep-alive) and closes each connection 100 ms later, as servers
    // with a short idle timeout do.
    let up = RawServer::start(|c| {
        if c.next_request().is_some() {
            c.send(&ok_response("hi"));
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let px = proxy_to(up.addr);
    let (mut r, mut w) = client(px.addr);
    w.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r).unwrap().status, 200);
    // Now idle: the pooled connection's peer closes; no further request arrives.
    let gone = eventually(Duration::from_secs(5), || {
        std::thread::sleep(Duration::from_millis(200));
        close_wait_to(up.addr) == 0
    });
    assert!(gone, "a closed upstream connection lingers in the pool");
    // And the next request still works, on a fresh connection.
    w.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r).unwrap().status, 200);
    assert_eq!(up.accepted(), 2);
}
