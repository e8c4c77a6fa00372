//! Clients that break TLS or HTTP/2 (RFC 8446, RFC 9113), sent as exact bytes: each is
//! refused or dropped within the timeouts, and the proxy keeps serving everyone else.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use testkit::dogstatsd::Metric;
use testkit::tls::{self, Cert, Conn};
use testkit::{scaled, upstream};

/// Another client, on another connection, is served: the bad one affected nobody else.
fn others_are_served(addr: SocketAddr, cert: &Cert) {
    let mut c = Conn::open(addr, cert, &["http/1.1"]).expect("a good client's handshake");
    assert_eq!(c.get("/after").status, 200);
}

// ------------------------------------------------------------------ TLS handshake

#[test]
fn plain_http_instead_of_a_client_hello_is_dropped_and_counted() {
    let cert = tls::cert();
    let up = upstream().start();
    let sink = testkit::dogstatsd();
    let px = testkit::proxy()
        .to(&up)
        .tls(&cert)
        .metrics_to(&sink)
        .start();
    let start = Instant::now();
    let got = testkit::tcp::exchange(px.addr(), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(
        start.elapsed() < scaled(Duration::from_secs(2)),
        "{:?}",
        start.elapsed()
    );
    // At most a TLS alert record (content type 21), never an HTTP answer in the clear.
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
    assert!(up.requests().is_empty());
    sink.expect("a failed handshake counted", |m: &Metric| {
        m.name == "tinyfish.proxy.tls.handshake_failures"
    });
    others_are_served(px.addr(), &cert);
}

#[test]
fn random_bytes_and_a_truncated_client_hello_are_dropped() {
    let cert = tls::cert();
    let up = upstream().start();
    let px = testkit::proxy().to(&up).tls(&cert).start();
    // A record header claiming a handshake of 2^14 bytes, then garbage.
    let mut junk = vec![22, 3, 1, 0x40, 0x00];
    junk.extend((0..16_384u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let got = testkit::tcp::exchange(px.addr(), &junk);
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
    // A record type that does not exist.
    let got = testkit::tcp::exchange(px.addr(), &[0x99, 3, 3, 0, 4, 1, 2, 3, 4]);
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
    others_are_served(px.addr(), &cert);
}

#[test]
fn a_client_that_stalls_mid_handshake_is_dropped_after_the_client_header_timeout() {
    let cert = tls::cert();
    let up = upstream().start();
    let timeout = Duration::from_millis(400);
    let px = testkit::proxy()
        .to(&up)
        .tls(&cert)
        .client_header_timeout(timeout)
        .start();
    let mut stalled = TcpStream::connect(px.addr()).unwrap();
    // The first bytes of a ClientHello record (a 512-byte record, 9 bytes of it sent).
    stalled.write_all(&[22, 3, 1, 2, 0, 1, 0, 1, 252]).unwrap();
    let start = Instant::now();
    stalled
        .set_read_timeout(Some(scaled(Duration::from_secs(5))))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = stalled.read(&mut buf).unwrap_or(0);
    let waited = start.elapsed();
    assert!(n == 0 || buf[0] == 21, "{:?}", &buf[..n]);
    assert!(
        waited >= timeout - Duration::from_millis(50) && waited < scaled(Duration::from_secs(3)),
        "dropped after {waited:?} (timeout {timeout:?})"
    );
    // Meanwhile and after, others are served.
    others_are_served(px.addr(), &cert);
}

// ------------------------------------------------------------------ HTTP/2 framing

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// One frame (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `GET https://localhost/` as an HPACK block: indexed :method GET, :scheme https, :path /,
/// and :authority as a literal without indexing.
fn get_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x87, 0x84, 0x01, 9];
    b.extend_from_slice(b"localhost");
    b
}

/// The frames in `bytes` as (type, stream, payload), up to the last whole one.
fn frames(bytes: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        if rest.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
        out.push((rest[3], stream, rest[9..9 + len].to_vec()));
        rest = &rest[9 + len..];
    }
    out
}

/// The error code of the first GOAWAY in `bytes`.
fn goaway(bytes: &[u8]) -> Option<u32> {
    frames(bytes)
        .into_iter()
        .find(|(t, _, _)| *t == GOAWAY)
        .map(|(_, _, p)| u32::from_be_bytes([p[4], p[5], p[6], p[7]]))
}

/// An HTTP/2 connection (TLS, ALPN h2) with the client preface and an empty SETTINGS sent.
fn h2(addr: SocketAddr, cert: &Cert) -> Conn {
    let mut c = Conn::open(addr, cert, &["h2"]).unwrap();
    assert_eq!(c.alpn(), Some(&b"h2"[..]));
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    c.send(&hello).unwrap();
    c
}

fn h2_proxy(up: &testkit::Upstream, cert: &Cert) -> testkit::Process {
    testkit::proxy().to(up).tls(cert).start()
}

const PROTOCOL_ERROR: u32 = 0x1;
const FRAME_SIZE_ERROR: u32 = 0x6;
const REFUSED_STREAM: u32 = 0x7;
const ENHANCE_YOUR_CALM: u32 = 0xb;

#[test]
fn a_bad_connection_preface_is_dropped() {
    let cert = tls::cert();
    let up = upstream().start();
    let px = h2_proxy(&up, &cert);
    let mut c = Conn::open(px.addr(), &cert, &["h2"]).unwrap();
    c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n").unwrap();
    let (got, closed) = c.read_for(scaled(Duration::from_secs(3))).unwrap();
    assert!(closed, "still open after a bad preface; got {got:?}");
    // An HTTP/1.1 request where the preface belongs, too.
    let mut c = Conn::open(px.addr(), &cert, &["h2"]).unwrap();
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (got, closed) = c.read_for(scaled(Duration::from_secs(3))).unwrap();
    assert!(closed, "still open; got {got:?}");
    assert!(up.requests().is_empty());
    others_are_served(px.addr(), &cert);
}

#[test]
fn a_frame_larger_than_the_advertised_maximum_is_a_frame_size_error() {
    let cert = tls::cert();
    let up = upstream().start();
    let px = h2_proxy(&up, &cert);
    let mut c = h2(px.addr(), &cert);
    // SETTINGS_MAX_FRAME_SIZE is 16 384 until the server says otherwise (RFC 9113 §4.2).
    c.send(&frame(HEADERS, END_HEADERS, 1, &vec![0x82; 16_385]))
        .unwrap();
    let (got, closed) = c.read_for(scaled(Duration::from_secs(3))).unwrap();
    assert_eq!(goaway(&got), Some(FRAME_SIZE_ERROR), "{:?}", frames(&got));
    assert!(closed);
    assert!(up.requests().is_empty());
    others_are_served(px.addr(), &cert);
}

#[test]
fn a_flood_of_streams_reset_at_once_ends_in_goaway() {
    let cert = tls::cert();
    let up = upstream().start();
    let px = h2_proxy(&up, &cert);
    let mut c = h2(px.addr(), &cert);
    // "Rapid reset" (CVE-2023-44487): open a stream and cancel it, a thousand times.
    let mut flood = Vec::new();
    for i in 0..1_000u32 {
        let id = 2 * i + 1;
        flood.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &get_block()));
        flood.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes())); // CANCEL
    }
    let _ = c.send(&flood);
    let (got, closed) = c.read_for(scaled(Duration::from_secs(5))).unwrap();
    let code = goaway(&got);
    assert!(
        code == Some(ENHANCE_YOUR_CALM) || code == Some(PROTOCOL_ERROR),
        "GOAWAY {code:?}; frames {:?}",
        frames(&got).iter().map(|f| f.0).collect::<Vec<_>>()
    );
    assert!(closed);
    assert!(
        up.requests().len() < 1_000,
        "every reset stream was forwarded"
    );
    others_are_served(px.addr(), &cert);
}

/// Each SETTINGS frame must be acknowledged (RFC 9113 §6.5.3). The h2 codec reads the
/// next frame only once the last acknowledgement is queued for writing, so a client that
/// floods SETTINGS and never reads its acknowledgements stalls its own connection at a
/// bounded cost; it is closed as idle after `timeouts.client_idle`.
#[test]
fn a_flood_of_settings_frames_from_a_client_that_never_reads_is_closed_as_idle() {
    let cert = tls::cert();
    let up = upstream().start();
    let idle = Duration::from_secs(1);
    let px = testkit::proxy()
        .to(&up)
        .tls(&cert)
        .with(|c| c.timeouts.client_idle = idle)
        .start();
    let mut c = h2(px.addr(), &cert);
    let settings = frame(SETTINGS, 0, 0, &[]);
    let start = Instant::now();
    // Written without reading: the writes themselves stall once the socket buffers fill.
    let flooder = std::thread::spawn(move || {
        for _ in 0..200_000 {
            if c.send(&settings).is_err() {
                return true;
            }
        }
        false
    });
    others_are_served(px.addr(), &cert);
    let cut = flooder.join().unwrap();
    assert!(
        cut,
        "200 000 SETTINGS frames were all written to a connection still open"
    );
    let took = start.elapsed();
    assert!(
        took >= idle && took < idle + scaled(Duration::from_secs(5)),
        "the flooding connection was closed after {took:?} (client_idle {idle:?})"
    );
    others_are_served(px.addr(), &cert);
}

#[test]
fn streams_beyond_the_concurrency_limit_are_refused() {
    let cert = tls::cert();
    // An upstream that holds each request for a few seconds keeps its stream open (and
    // answers `/after` at once).
    let up = upstream()
        .script(|c| {
            while let Some(req) = c.next_request() {
                if req.uri != "/after" {
                    std::thread::sleep(Duration::from_secs(4));
                }
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        })
        .start();
    let px = testkit::proxy().to(&up).tls(&cert).start();
    let mut c = h2(px.addr(), &cert);
    let mut open = Vec::new();
    for i in 0..101u32 {
        open.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            2 * i + 1,
            &get_block(),
        ));
    }
    c.send(&open).unwrap();
    let (got, _) = c.read_for(scaled(Duration::from_secs(3))).unwrap();
    let refused: Vec<u32> = frames(&got)
        .into_iter()
        .filter(|(t, _, p)| *t == RST_STREAM && p[..] == REFUSED_STREAM.to_be_bytes())
        .map(|(_, s, _)| s)
        .collect();
    // SETTINGS_MAX_CONCURRENT_STREAMS 100: the 101st stream (id 201) is refused.
    assert_eq!(refused, [201], "frames {:?}", frames(&got));
    others_are_served(px.addr(), &cert);
}
