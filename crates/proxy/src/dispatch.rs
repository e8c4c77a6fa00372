//! One client connection: every request head read, checked and routed here, one after
//! another while the connection is kept alive.
//!
//! For each request the dispatcher reads until the head is complete (within the client
//! header deadline; on a kept-alive connection the idle wait counts too), parses it once,
//! checks it ([`crate::check`]: refusals are answered here, the same for both paths), and
//! hands the request to one of:
//!
//! - the proxy's health path, answered here;
//! - the fast path ([`crate::fast`]) for an HTTP/1.1 request without `Expect` or an
//!   upgrade (any target form it accepts, any body); it returns when the response is
//!   relayed;
//! - pingora's HTTP proxy ([`crate::gateway`]) for anything else (`Expect: 100-continue`,
//!   HTTP/1.0, upgrades): the bytes already read are put back into the stream, pingora
//!   serves that one request, and the connection comes back here.
//!
//! Nothing calls back up: each path returns whether the connection goes on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::apps::HttpServerApp;
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::tls::TlsStream;
use pingora::server::ShutdownWatch;
use tokio::io::AsyncWriteExt;

use crate::answers;
use crate::buffers;
use crate::check::{self, MAX_HEADERS};
use crate::fast::relay::{self, Conn};
use crate::fast::request;
use crate::gateway::ConnInfo;
use crate::metrics::Protocol;
use crate::rewind::{Rewind, Rewound, TlsClient};
use crate::server::Shared;

/// Where a request goes.
enum Route {
    Refuse(u16),
    Health {
        head: bool,
        close: bool,
    },
    Fast(request::Request),
    /// To pingora's proxy: the head's length and checks.
    Pingora(usize, check::Checked),
}

/// Serves one client connection until it closes, fails or the proxy shuts down.
pub async fn serve(
    stream: pingora::protocols::Stream,
    peer: SocketAddr,
    shared: &Shared,
    shutdown: &ShutdownWatch,
) {
    if stream.as_any().is::<L4Stream>() {
        let Some(io) = stream.into_any().downcast::<L4Stream>().ok() else {
            return;
        };
        serve_on(io, Protocol::H1, peer, shared, shutdown).await;
    } else if stream.as_any().is::<TlsStream<L4Stream>>() {
        let Some(tls) = stream.into_any().downcast::<TlsStream<L4Stream>>().ok() else {
            return;
        };
        let io: Box<TlsClient> = Box::new(Rewound::new(*tls));
        serve_on(io, Protocol::H1Tls, peer, shared, shutdown).await;
    } else {
        pingora_only(stream, peer, shared, shutdown).await;
    }
}

/// [`serve`] on a stream the dispatcher can put bytes back into (plain TCP, or HTTP/1.1
/// over TLS): every request head checked here, then the fast path or pingora's proxy.
async fn serve_on<S: Rewind>(
    mut io: Box<S>,
    protocol: Protocol,
    peer: SocketAddr,
    shared: &Shared,
    shutdown: &ShutdownWatch,
) {
    let limits = shared.limits;
    let info = Arc::new(ConnInfo::new(peer, true, protocol));
    let mut conn = Conn {
        client_ip: peer.ip().to_string().into_bytes().into(),
        protocol,
        buf: Vec::new(),
        out: Vec::new(),
    };
    let mut shutdown = shutdown.clone();
    let mut deadline = tokio::time::Instant::now() + limits.header;
    let mut first = true;
    loop {
        // The buffer's length when `route` last found the head incomplete.
        let mut parsed = 0;
        let route = loop {
            if worth_parsing(&conn.buf, parsed, shared.max_header_bytes) {
                if let Some(route) = route(&mut conn, shared) {
                    break route;
                }
                parsed = conn.buf.len();
            }
            let idle = conn.buf.is_empty() && !first;
            if idle && *shutdown.borrow() {
                return;
            }
            // A partial head waits in a buffer of about its size (a slow client costs what
            // it sent; growth stays amortized).
            if conn.buf.capacity() > 2 * conn.buf.len() + 512 {
                conn.buf.shrink_to(conn.buf.len());
            }
            let read =
                tokio::time::timeout_at(deadline, buffers::read_into(&mut *io, &mut conn.buf));
            let n = if idle {
                tokio::select! {
                    biased;
                    r = read => r,
                    _ = shutdown.changed() => return,
                }
            } else {
                read.await
            };
            match n {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => {}
                // The head did not arrive in time: drop the connection.
                Err(_) => return,
            }
        };
        first = false;
        let start = Instant::now();
        let keep = match route {
            Route::Refuse(status) => {
                let _ = relay::write_client(&mut io, &answers::error(status), limits).await;
                shared
                    .metrics
                    .request(protocol, status, None, ms(start.elapsed()), None);
                false
            }
            Route::Health { head, close } => {
                let close = close || *shutdown.borrow();
                let ok = relay::write_client(&mut io, answers::health(close, head), limits).await;
                shared.metrics.request(
                    protocol,
                    if ok { 200 } else { 0 },
                    None,
                    ms(start.elapsed()),
                    None,
                );
                let used = head_len(&conn.buf).unwrap_or(conn.buf.len());
                conn.buf.drain(..used);
                ok && !close
            }
            Route::Fast(request) => {
                let close = request.close || *shutdown.borrow();
                let Some(fast) = shared.fast.as_deref() else {
                    return;
                };
                // Boxed: the relay's state exists only while a request is in flight, not
                // in every waiting connection's task.
                Box::pin(relay::forward(
                    fast, &mut conn, &mut io, request, close, limits, start,
                ))
                .await
                    && !close
            }
            Route::Pingora(head_len, checked) => {
                // Pingora gets this one request's bytes (in origin form); what the client
                // pipelined after it stays here for the next round.
                let (bytes, used) = for_pingora(&conn.buf, head_len, checked);
                conn.buf.drain(..used);
                let back = pingora_one(io, &bytes, &info, shared, &shutdown).await;
                match back {
                    Some(back) => {
                        io = back;
                        true
                    }
                    None => return,
                }
            }
        };
        if !keep {
            let _ = tokio::time::timeout(limits.write, AsyncWriteExt::shutdown(&mut *io)).await;
            return;
        }
        // Memory: a connection waiting for its next request holds no buffer (unless the
        // client already sent part of it).
        buffers::give_back(&mut conn.out);
        if conn.buf.is_empty() {
            buffers::give_back(&mut conn.buf);
        }
        // On a kept-alive connection the wait for the next request is part of the deadline.
        deadline =
            tokio::time::Instant::now() + limits.header + Duration::from_secs(limits.idle_secs);
    }
}

/// The length of the complete head at the start of `buf`, if there is one.
fn head_len(buf: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::Request::new(&mut headers).parse(buf) {
        Ok(httparse::Status::Complete(n)) => Some(n),
        _ => None,
    }
}

/// Whether a head found incomplete at `parsed` bytes is worth parsing again: it may have
/// ended in what arrived since (a blank line), it is over the size limit, or it has doubled.
/// A client sending its head a byte at a time then costs parses of geometrically growing
/// lengths (linear in all) instead of one parse of the whole buffer per byte.
fn worth_parsing(buf: &[u8], parsed: usize, max_header_bytes: usize) -> bool {
    let new = &buf[parsed.saturating_sub(3).min(buf.len())..];
    parsed == 0
        || buf.len() > max_header_bytes
        || buf.len() >= 2 * parsed
        || new.windows(2).any(|w| w == b"\n\n")
        || new.windows(3).any(|w| w == b"\n\r\n")
}

/// The length of the empty lines (`\r\n` or `\n`) at the start of `buf`.
fn empty_lines(buf: &[u8]) -> usize {
    let mut at = 0;
    loop {
        match &buf[at..] {
            [b'\r', b'\n', ..] => at += 2,
            [b'\n', ..] => at += 1,
            _ => return at,
        }
    }
}

/// Parses and checks the head at the start of `conn.buf`: where it goes, or `None` while
/// it is incomplete. A fast-path request's upstream head is left in `conn.out`.
fn route(conn: &mut Conn, shared: &Shared) -> Option<Route> {
    // Empty lines before a request line are ignored (RFC 9112 §2.2: a server SHOULD ignore
    // at least one; NGINX and httparse skip them): a client's stray CRLF after a body.
    let blank = empty_lines(&conn.buf);
    if blank > 0 {
        conn.buf.drain(..blank);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(&conn.buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if conn.buf.len() <= shared.max_header_bytes => return None,
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Some(Route::Refuse(431))
        }
        // Not corrected and forwarded: refused (RFC 9112 §3: a server SHOULD NOT correct).
        Err(_) => return Some(Route::Refuse(400)),
    };
    let checked = match check::check(&conn.buf[..n], &req, shared.max_header_bytes) {
        Ok(c) => c,
        Err(reject) => return Some(Route::Refuse(reject.status())),
    };
    if let (Some(health), Some(path)) = (&shared.health_path, req.path) {
        let path = path.as_bytes();
        let end = path.iter().position(|b| *b == b'?').unwrap_or(path.len());
        if path[..end] == **health && checked.body == check::BodyFraming::None {
            let close = req.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("connection")
                    && crate::headers::tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close"))
            }) || req.version == Some(0);
            return Some(Route::Health {
                head: req.method == Some("HEAD"),
                close,
            });
        }
    }
    let Some(fast) = shared.fast.as_deref() else {
        return Some(Route::Pingora(n, checked));
    };
    let line_end = conn.buf.iter().position(|b| *b == b'\n').unwrap_or(n);
    if conn.out.capacity() == 0 {
        conn.out = buffers::head();
    }
    match request::prepare(
        &req,
        &conn.buf[..line_end],
        n,
        checked,
        fast.forwarded,
        &fast.ids,
        &conn.client_ip,
        conn.protocol != Protocol::H1,
        &mut conn.out,
    ) {
        Some(r) => Some(Route::Fast(r)),
        None => Some(Route::Pingora(n, checked)),
    }
}

/// The bytes of one request for pingora's proxy, and how many of `buf` they use: the head
/// (an absolute-form target turned into origin form with its authority as Host, as the
/// fast path sends it: pingora itself would refuse a Host that differs) and as much of its
/// body as is here, never bytes after the body (a pipelined request, which pingora would
/// drop).
fn for_pingora(buf: &[u8], head_len: usize, checked: check::Checked) -> (Vec<u8>, usize) {
    let avail = &buf[head_len..];
    let body = match checked.body {
        check::BodyFraming::None => 0,
        check::BodyFraming::Length(n) => avail.len().min(usize::try_from(n).unwrap_or(usize::MAX)),
        check::BodyFraming::Chunked => {
            let mut scan = crate::fast::response::ChunkScan::default();
            // Malformed chunks: all of it, for pingora to refuse.
            scan.feed(avail).unwrap_or(avail.len())
        }
    };
    let used = head_len + body;
    let head = &buf[..head_len];
    let line_end = head
        .iter()
        .position(|b| *b == b'\n')
        .map_or(head_len, |i| i + 1);
    let absolute = match checked.form {
        check::TargetForm::Absolute => check::absolute(&head[..line_end]),
        _ => None,
    };
    let Some((authority, rest)) = absolute else {
        return (buf[..used].to_vec(), used);
    };
    let line = &head[..line_end];
    let mut parts = line.splitn(3, |b| *b == b' ');
    let (method, _, version) = (parts.next().unwrap_or(b"GET"), parts.next(), parts.next());
    let mut out = Vec::with_capacity(used + 16);
    out.extend_from_slice(method);
    out.push(b' ');
    if !rest.starts_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(rest);
    out.push(b' ');
    out.extend_from_slice(version.unwrap_or(b"HTTP/1.1\r\n"));
    out.extend_from_slice(b"Host: ");
    out.extend_from_slice(authority);
    out.extend_from_slice(b"\r\n");
    for field in head[line_end..].split_inclusive(|b| *b == b'\n') {
        let name_end = field.iter().position(|b| *b == b':').unwrap_or(0);
        if !field[..name_end].eq_ignore_ascii_case(b"host") {
            out.extend_from_slice(field);
        }
    }
    out.extend_from_slice(&buf[head_len..used]);
    (out, used)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Serves one request through pingora's HTTP proxy on `io`, with `pending` (the bytes the
/// dispatcher read) put back first; the stream back when the connection is kept alive.
async fn pingora_one<S: Rewind>(
    mut io: Box<S>,
    pending: &[u8],
    info: &Arc<ConnInfo>,
    shared: &Shared,
    shutdown: &ShutdownWatch,
) -> Option<Box<S>> {
    io.rewind(pending);
    let stream: pingora::protocols::Stream = io;
    let session = session(stream, info, shared, shutdown);
    let reused = shared.proxy.process_new_http(session, shutdown).await?;
    let (stream, _settings) = reused.consume();
    stream.into_any().downcast::<S>().ok()
}

/// A pingora session for one request on this connection.
fn session(
    stream: pingora::protocols::Stream,
    info: &Arc<ConnInfo>,
    shared: &Shared,
    shutdown: &ShutdownWatch,
) -> ServerSession {
    let limits = shared.limits;
    let mut session = ServerSession::new_http1(stream);
    session.set_keepalive(if *shutdown.borrow() {
        None
    } else {
        Some(limits.idle_secs)
    });
    session.set_read_timeout(Some(limits.read));
    session.set_write_timeout(Some(limits.write));
    session.set_connection_user_context(Some(Box::new(info.clone())));
    session
}

/// A stream the dispatcher cannot rewind (neither plain TCP nor pingora's TLS stream; none
/// today, kept so that a new stream type is still served): pingora serves every request,
/// with its own checks only.
async fn pingora_only(
    stream: pingora::protocols::Stream,
    peer: SocketAddr,
    shared: &Shared,
    shutdown: &ShutdownWatch,
) {
    let protocol = if stream.get_ssl_digest().is_some() {
        Protocol::H1Tls
    } else {
        Protocol::H1
    };
    let info = Arc::new(ConnInfo::new(peer, false, protocol));
    let mut stream = stream;
    loop {
        let session = session(stream, &info, shared, shutdown);
        let Some(reused) = shared.proxy.process_new_http(session, shutdown).await else {
            return;
        };
        stream = reused.consume().0;
    }
}

#[cfg(test)]
mod tests {
    use super::{empty_lines, worth_parsing};

    #[test]
    fn empty_lines_before_a_request_line_are_measured() {
        assert_eq!(empty_lines(b"GET / HTTP/1.1\r\n"), 0);
        assert_eq!(empty_lines(b"\r\n\nGET /"), 3);
        // A lone CR is not an empty line: left for the parser to refuse.
        assert_eq!(empty_lines(b"\rGET /"), 0);
        assert_eq!(empty_lines(b"\r"), 0);
    }

    #[test]
    fn a_partial_head_is_parsed_again_only_when_it_may_have_ended_or_grew_much() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nX: 1234567890";
        // Nothing parsed yet: parse.
        assert!(worth_parsing(head, 0, 4096));
        // A few more bytes without a blank line: wait.
        assert!(!worth_parsing(head, head.len() - 3, 4096));
        // The end of the head arrived, even split across reads ("\r\n" then "\r\n").
        let mut ended = head.to_vec();
        ended.extend_from_slice(b"\r\n\r\n");
        assert!(worth_parsing(&ended, head.len() + 2, 4096));
        assert!(worth_parsing(b"GET / HTTP/1.0\n\n", 15, 4096));
        // Over the limit (to refuse it) or twice as long as last time: parse.
        assert!(worth_parsing(head, head.len() - 3, head.len() - 1));
        assert!(worth_parsing(head, head.len() / 2, 4096));
    }
}
