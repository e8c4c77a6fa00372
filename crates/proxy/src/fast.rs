//! The HTTP/1 forwarding fast path: the common request, forwarded with as little work as
//! the job needs, under pingora's accept loop and runtime.
//!
//! A request takes this path when its head parses cleanly (httparse), it is HTTP/1.1 in
//! origin form, it has no `Transfer-Encoding`, no `Expect`, no upgrade, at most one
//! `Content-Length`, and its whole body is already in the read buffer (small bodies arrive
//! with the head). Anything else — every malformed, ambiguous, streamed or unusual request —
//! is handed, with the bytes already read put back into the stream, to pingora's HTTP proxy
//! ([`crate::server::serve_conn`] with [`crate::gateway::Gateway`]) for the rest of the
//! connection; so every check of the proxy issue is still made by the same code.
//!
//! What it saves compared with pingora's proxy per request (bench/results/PERFLOG.md): the
//! upstream pool's idle-watch task, the second (case-preserving) header map on both sides,
//! two channels and a join of two halves, boxed hook futures. The request head is rewritten
//! byte for byte into one buffer (hop-by-hop headers out, `X-Forwarded-*` and `X-Request-Id`
//! in) and sent with its body in one write; the response head and the body bytes that came
//! with it go back in one write; longer bodies are relayed as they arrive (by length, chunk
//! framing or until close), with backpressure.
//!
//! Upstream connections are plain tokio TCP streams in a per-upstream LIFO pool; a pooled
//! connection found dead before any response byte is replaced by a fresh one for idempotent
//! requests (pingora's rule), connect failures move on to the next upstream when there are
//! several, and the answers are the same 502/504 (with the same bodies and metrics) as on
//! pingora's path.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{Config, ForwardedPolicy};
use crate::gateway::{body_for, Picker};
use crate::headers::RequestIds;
use crate::metrics::{ErrorKind, Metrics};
use crate::server::{ClientLimits, Shared};

/// Most headers a fast-path request may have (more: pingora's path).
const MAX_HEADERS: usize = 96;
/// Most headers an upstream response may have (pingora's limit).
const MAX_RESPONSE_HEADERS: usize = 256;
/// Initial size of the per-connection buffers.
const BUF: usize = 16 * 1024;
/// Largest response head read from an upstream (pingora's limit).
const MAX_RESPONSE_HEAD: usize = 1_048_575;
/// Most `Connection` tokens a fast-path request may name.
const MAX_CONN_TOKENS: usize = 8;

/// One upstream: its address and its idle connections.
#[derive(Debug)]
struct Pool {
    addr: SocketAddr,
    idle: parking_lot::Mutex<Vec<(TcpStream, Instant)>>,
}

/// The fast path's shared state (one per process).
pub struct Fast {
    pools: Vec<Pool>,
    pool_size: usize,
    picker: Arc<Picker>,
    health_path: Option<Box<[u8]>>,
    max_header_bytes: usize,
    forwarded: ForwardedPolicy,
    ids: RequestIds,
    metrics: Arc<Metrics>,
    connect: Duration,
    read: Duration,
    write: Duration,
    upstream_idle: Duration,
}

impl std::fmt::Debug for Fast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fast")
            .field("pools", &self.pools)
            .finish_non_exhaustive()
    }
}

impl Fast {
    /// The fast path for these resolved upstreams (`resolved[i]` for `config.upstreams[i]`).
    pub fn new(
        config: &Config,
        resolved: &[SocketAddr],
        picker: Arc<Picker>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let t = &config.timeouts;
        Fast {
            pools: resolved
                .iter()
                .map(|a| Pool {
                    addr: *a,
                    idle: parking_lot::Mutex::new(Vec::new()),
                })
                .collect(),
            pool_size: config.keepalive_pool_size.div_ceil(resolved.len().max(1)),
            picker,
            health_path: (!config.health_path.is_empty())
                .then(|| config.health_path.as_bytes().into()),
            max_header_bytes: config.max_header_bytes,
            forwarded: config.forwarded,
            ids: RequestIds::new(),
            metrics,
            connect: t.connect,
            read: t.read,
            write: t.write,
            upstream_idle: t.upstream_idle,
        }
    }

    /// Whether an idle connection pooled at `since` may still serve a request at `now`: it has
    /// not idled too long, and the upstream has neither closed it nor written to it since its
    /// last response (pingora tests its pooled connections the same way; bytes arriving on an
    /// idle connection would otherwise be read as the next request's response). Without a
    /// readiness event since the last read, the probe costs no system call.
    fn usable(&self, s: &TcpStream, since: Instant, now: Instant) -> bool {
        let mut probe = [0u8; 1];
        now.duration_since(since) < self.upstream_idle
            && matches!(s.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// A usable pooled connection to upstream `i`, dropping unusable ones on the way.
    fn take(&self, i: usize) -> Option<TcpStream> {
        let now = Instant::now();
        loop {
            let (s, since) = self.pools[i].idle.lock().pop()?;
            if self.usable(&s, since, now) {
                return Some(s);
            }
        }
    }

    /// Returns a connection to the pool (expired ones are dropped by [`Fast::sweep`]).
    fn put(&self, i: usize, s: TcpStream) {
        let mut idle = self.pools[i].idle.lock();
        if idle.len() < self.pool_size {
            idle.push((s, Instant::now()));
        }
    }

    /// Drops the idle pooled connections that are no longer usable, so they do not linger in
    /// CLOSE_WAIT until the next request; called about once a second by [`Fast::sweep_idle`].
    pub fn sweep(&self) {
        let now = Instant::now();
        for pool in &self.pools {
            pool.idle
                .lock()
                .retain(|(s, since)| self.usable(s, *since, now));
        }
    }

    /// Runs [`Fast::sweep`] every second until `shutdown` turns true.
    pub async fn sweep_idle(self: Arc<Self>, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sweep(),
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
            }
        }
    }

    async fn connect(&self, i: usize) -> Result<TcpStream, ErrorKind> {
        match tokio::time::timeout(self.connect, TcpStream::connect(self.pools[i].addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Ok(s)
            }
            Ok(Err(_)) => Err(ErrorKind::Connect),
            Err(_) => Err(ErrorKind::Timeout),
        }
    }
}

/// What parsing the buffered bytes gave.
enum Parsed {
    /// The head is not complete yet.
    Partial,
    /// Not a fast-path request: pingora's path takes the connection.
    Fallback,
    /// Ready to forward: the upstream request is in the output buffer.
    Ready(Request),
}

/// A parsed fast-path request (the upstream request itself is in `Conn::out`).
#[derive(Debug, Clone, Copy)]
struct Request {
    /// Bytes of the client buffer it used (head and body).
    consumed: usize,
    /// The client asked to close after the response.
    close: bool,
    /// `HEAD`: the response has no body whatever its headers say.
    head: bool,
    /// Safe to send again on a fresh connection.
    idempotent: bool,
    /// The proxy's own health path.
    health: bool,
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn digits(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Headers never forwarded (besides `Connection` and the ones it names).
fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ]
    .iter()
    .any(|h| eq(name, h))
}

fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

impl Fast {
    /// Parses the request at the start of `buf` and, when it is a fast-path request, writes
    /// the upstream request (head and body) into `out`.
    fn prepare(&self, buf: &[u8], client_ip: &[u8], out: &mut Vec<u8>) -> Parsed {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() <= self.max_header_bytes => {
                return Parsed::Partial
            }
            _ => return Parsed::Fallback,
        };
        let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
            return Parsed::Fallback;
        };
        if head_len > self.max_header_bytes || !path.starts_with('/') || method == "CONNECT" {
            return Parsed::Fallback;
        }
        // First pass: framing, connection options, what is there.
        let mut length = None;
        let mut close = false;
        let mut named = [&b""[..]; MAX_CONN_TOKENS];
        let mut n_named = 0;
        let mut has_id = false;
        let mut host = None;
        let mut prior_for = 0;
        for h in req.headers.iter() {
            let name = h.name;
            if eq(name, "content-length") {
                if length.is_some() {
                    return Parsed::Fallback;
                }
                match digits(h.value) {
                    Some(n) => length = Some(n),
                    None => return Parsed::Fallback,
                }
            } else if eq(name, "transfer-encoding") || eq(name, "expect") {
                return Parsed::Fallback;
            } else if eq(name, "connection") {
                for t in tokens(h.value) {
                    if t.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if t.eq_ignore_ascii_case(b"upgrade") || n_named == MAX_CONN_TOKENS {
                        return Parsed::Fallback;
                    } else if !t.eq_ignore_ascii_case(b"keep-alive") {
                        named[n_named] = t;
                        n_named += 1;
                    }
                }
            } else if eq(name, "host") {
                // Two Hosts or userinfo in it: pingora's path refuses them.
                if host.is_some() || h.value.contains(&b'@') {
                    return Parsed::Fallback;
                }
                host = Some(h.value);
            } else if eq(name, "x-request-id") {
                has_id = true;
            } else if eq(name, "x-forwarded-for") {
                prior_for += 1;
            }
        }
        let named = &named[..n_named];
        let is_named = |name: &str| {
            named
                .iter()
                .any(|t| t.eq_ignore_ascii_case(name.as_bytes()) && !protected(t))
        };
        if n_named > 0 {
            // Headers the client named in `Connection` are dropped before anything else.
            has_id = req
                .headers
                .iter()
                .any(|h| eq(h.name, "x-request-id") && !is_named(h.name));
            prior_for = req
                .headers
                .iter()
                .filter(|h| eq(h.name, "x-forwarded-for") && !is_named(h.name))
                .count();
        }
        if !path.bytes().all(plain_target_byte) {
            // Let pingora's URI parser judge anything unusual in the target.
            return Parsed::Fallback;
        }
        let body = usize::try_from(length.unwrap_or(0)).unwrap_or(usize::MAX);
        if body > buf.len() - head_len {
            // The body is still arriving: pingora's path streams it (with its read timeout).
            return Parsed::Fallback;
        }
        let health = self.health_path.as_deref().is_some_and(|p| {
            let path = path.as_bytes();
            let end = path.iter().position(|b| *b == b'?').unwrap_or(path.len());
            &path[..end] == p
        });
        let request = Request {
            consumed: head_len + body,
            close,
            head: method == "HEAD",
            idempotent: is_idempotent(method),
            health,
        };
        if health {
            return Parsed::Ready(request);
        }

        // Second pass: the upstream request.
        out.clear();
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let forwarded = self.forwarded != ForwardedPolicy::Off;
        for h in req.headers.iter() {
            let name = h.name;
            if hop_by_hop(name)
                || is_named(name)
                || (forwarded
                    && (eq(name, "x-forwarded-for")
                        || eq(name, "x-forwarded-proto")
                        || eq(name, "x-forwarded-host")))
            {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
        if forwarded {
            out.extend_from_slice(b"X-Forwarded-For: ");
            if self.forwarded == ForwardedPolicy::Append && prior_for > 0 {
                for h in req
                    .headers
                    .iter()
                    .filter(|h| eq(h.name, "x-forwarded-for") && !is_named(h.name))
                {
                    out.extend_from_slice(h.value.trim_ascii());
                    out.extend_from_slice(b", ");
                }
            }
            out.extend_from_slice(client_ip);
            out.extend_from_slice(b"\r\nX-Forwarded-Proto: http\r\n");
            if let Some(host) = host {
                out.extend_from_slice(b"X-Forwarded-Host: ");
                out.extend_from_slice(host);
                out.extend_from_slice(b"\r\n");
            }
        }
        if !has_id {
            out.extend_from_slice(b"X-Request-Id: ");
            self.ids.write(out);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&buf[head_len..head_len + body]);
        Parsed::Ready(request)
    }
}

/// Request-target bytes the fast path forwards without a second look: what RFC 3986 allows in
/// a path and query (unreserved, sub-delims, `:`, `@`, `/`, `?`, `%`). Anything else (`#`,
/// brackets, quotes, non-ASCII ...) goes to pingora's path, whose URI parser decides.
fn plain_target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?@!$&'()*+,;=%".contains(&b)
}

/// Headers a `Connection` option cannot remove (framing and routing).
fn protected(name: &[u8]) -> bool {
    [&b"transfer-encoding"[..], b"content-length", b"host"]
        .iter()
        .any(|p| name.eq_ignore_ascii_case(p))
}

/// How an upstream response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// The rewritten response head and what follows it.
struct ResponseHead {
    status: u16,
    /// Bytes of the upstream buffer the head used.
    len: usize,
    framing: Framing,
    /// The upstream connection can be reused after the body.
    reusable: bool,
    /// An interim (1xx) response: forward it and read the next head.
    interim: bool,
}

fn parse_response(
    buf: &[u8],
    head_request: bool,
    close_client: bool,
    out: &mut Vec<u8>,
) -> Result<Option<ResponseHead>, ErrorKind> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE_HEAD => return Ok(None),
        _ => return Err(ErrorKind::Protocol),
    };
    let status = resp.code.unwrap_or(0);
    if status == 101 || !(100..=999).contains(&status) {
        return Err(ErrorKind::Protocol);
    }
    let interim = status < 200;
    let mut reusable = resp.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut named: Vec<&[u8]> = Vec::new();
    let mut has_date = false;
    for h in resp.headers.iter() {
        has_date |= eq(h.name, "date");
        if eq(h.name, "content-length") {
            match digits(h.value) {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => return Err(ErrorKind::Protocol),
            }
        } else if eq(h.name, "transfer-encoding") {
            chunked = Some(
                tokens(h.value)
                    .last()
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")),
            );
        } else if eq(h.name, "connection") {
            for t in tokens(h.value) {
                if t.eq_ignore_ascii_case(b"close") {
                    reusable = false;
                } else if !t.eq_ignore_ascii_case(b"keep-alive") {
                    named.push(t);
                }
            }
        }
    }
    let framing = if interim || head_request || status == 204 || status == 304 {
        Framing::None
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    if framing == Framing::UntilClose {
        reusable = false;
    }
    // Transfer-Encoding with Content-Length: the length is ignored and not forwarded (RFC 9112
    // 6.3), and the connection is not trusted again (as pingora does).
    let drop_length = chunked.is_some();
    if drop_length && length.is_some() {
        reusable = false;
    }
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut code = [0u8; 3];
    code[0] = b'0' + (status / 100) as u8;
    code[1] = b'0' + (status / 10 % 10) as u8;
    code[2] = b'0' + (status % 10) as u8;
    out.extend_from_slice(&code);
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in resp.headers.iter() {
        if hop_by_hop(h.name)
            || (drop_length && eq(h.name, "content-length"))
            || named
                .iter()
                .any(|t| t.eq_ignore_ascii_case(h.name.as_bytes()) && !protected(t))
        {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    if !has_date && !interim {
        // A response forwarded without a Date gets one (RFC 9110 6.6.1), as pingora adds it.
        out.extend_from_slice(b"Date: ");
        http_date(out);
        out.extend_from_slice(b"\r\n");
    }
    if !interim && (close_client || framing == Framing::UntilClose) {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(ResponseHead {
        status,
        len,
        framing,
        reusable,
        interim,
    }))
}

/// Appends the current time as an HTTP date, formatted at most once a second per thread.
fn http_date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with_borrow_mut(|(at, text)| {
        if *at != secs || text.is_empty() {
            *at = secs;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}

/// Follows chunked framing over the bytes relayed (which pass through unchanged) to find
/// where the body ends.
#[derive(Debug, Default)]
struct ChunkScan {
    state: Chunk,
    size: u64,
    digits: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    #[default]
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    FinalLf,
    Done,
}

impl ChunkScan {
    /// Scans `b`; returns how many bytes belong to the body (all of them unless it ends
    /// inside `b`), or an error for bad framing.
    fn feed(&mut self, b: &[u8]) -> Result<usize, ()> {
        let mut i = 0;
        while i < b.len() {
            if self.state == Chunk::Data {
                let n = (b.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                i += n;
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = Chunk::DataCr;
                }
                continue;
            }
            let c = b[i];
            i += 1;
            self.state = match (self.state, c) {
                (Chunk::Size, c) if c.is_ascii_hexdigit() => {
                    if self.digits == 15 {
                        return Err(());
                    }
                    self.digits += 1;
                    self.size = self.size * 16 + u64::from((c as char).to_digit(16).unwrap_or(0));
                    Chunk::Size
                }
                (Chunk::Size, b';' | b' ' | b'\t') if self.digits > 0 => Chunk::Ext,
                (Chunk::Size, b'\r') if self.digits > 0 => Chunk::SizeLf,
                (Chunk::Ext, b'\r') => Chunk::SizeLf,
                (Chunk::Ext, b'\n') => return Err(()),
                (Chunk::Ext, _) => Chunk::Ext,
                (Chunk::SizeLf, b'\n') if self.size == 0 => Chunk::TrailerStart,
                (Chunk::SizeLf, b'\n') => Chunk::Data,
                (Chunk::DataCr, b'\r') => Chunk::DataLf,
                (Chunk::DataLf, b'\n') => {
                    self.digits = 0;
                    Chunk::Size
                }
                (Chunk::TrailerStart, b'\r') => Chunk::FinalLf,
                (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
                (Chunk::TrailerStart | Chunk::Trailer, b'\n') => return Err(()),
                (Chunk::TrailerStart | Chunk::Trailer, _) => Chunk::Trailer,
                (Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
                (Chunk::FinalLf, b'\n') => {
                    self.state = Chunk::Done;
                    return Ok(i);
                }
                _ => return Err(()),
            };
        }
        Ok(i)
    }

    fn done(&self) -> bool {
        self.state == Chunk::Done
    }
}

/// Why forwarding one request failed.
enum Failure {
    /// Nothing reached the client: answer with this status (and count `kind`).
    Answer(u16),
    /// Part of the response is out (its status, 0 for none), or the client is gone: close
    /// the connection.
    Close(u16),
}

/// One client connection's buffers and identity.
struct Conn {
    client_ip: Box<[u8]>,
    /// Client bytes read and not yet used.
    buf: Vec<u8>,
    filled: usize,
    /// The upstream request, then the response head.
    out: Vec<u8>,
    /// Upstream bytes read.
    ubuf: Vec<u8>,
}

/// Serves one client connection on the fast path, handing it to pingora's path at the first
/// request the fast path does not take.
pub async fn serve(
    stream: pingora::protocols::Stream,
    peer: SocketAddr,
    shared: &Shared,
    shutdown: &ShutdownWatch,
) {
    let Some(fast) = shared.fast.as_deref() else {
        return crate::server::serve_conn(stream, peer, shared, shutdown).await;
    };
    if !stream.as_any().is::<L4Stream>() {
        return crate::server::serve_conn(stream, peer, shared, shutdown).await;
    }
    let Ok(mut io) = stream.into_any().downcast::<L4Stream>() else {
        return;
    };
    let limits = shared.limits;
    let mut conn = Conn {
        client_ip: peer.ip().to_string().into_bytes().into(),
        buf: vec![0; BUF],
        filled: 0,
        out: Vec::with_capacity(BUF),
        ubuf: vec![0; BUF],
    };
    let mut shutdown = shutdown.clone();
    let mut deadline = tokio::time::Instant::now() + limits.header;
    let mut first = true;
    loop {
        // Read until a whole head is buffered (or hand over, or give up).
        let request = loop {
            match fast.prepare(&conn.buf[..conn.filled], &conn.client_ip, &mut conn.out) {
                Parsed::Ready(r) => break r,
                Parsed::Fallback => {
                    io.rewind(&conn.buf[..conn.filled]);
                    let stream: pingora::protocols::Stream = io;
                    return crate::server::serve_conn(stream, peer, shared, &shutdown).await;
                }
                Parsed::Partial => {}
            }
            if conn.filled == conn.buf.len() {
                let grow = conn.buf.len().min(fast.max_header_bytes + 1);
                conn.buf.resize(conn.buf.len() + grow, 0);
            }
            let idle = conn.filled == 0 && !first;
            if idle && *shutdown.borrow() {
                return;
            }
            let read = tokio::time::timeout_at(deadline, io.read(&mut conn.buf[conn.filled..]));
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
                Ok(Ok(n)) => conn.filled += n,
                // The head did not arrive in time: drop the connection.
                Err(_) => return,
            }
        };
        first = false;
        let start = Instant::now();
        let close = request.close || *shutdown.borrow();
        let keep = if request.health {
            answer_health(&mut io, close, request.head, limits, fast).await
        } else {
            forward(fast, &mut conn, &mut io, request, close, limits, start).await
        };
        if !keep || close {
            let _ = tokio::time::timeout(limits.write, io.shutdown()).await;
            return;
        }
        conn.buf.copy_within(request.consumed..conn.filled, 0);
        conn.filled -= request.consumed;
        // On a kept-alive connection the wait for the next request is part of the deadline.
        deadline =
            tokio::time::Instant::now() + limits.header + Duration::from_secs(limits.idle_secs);
    }
}

async fn write_client(io: &mut L4Stream, bytes: &[u8], limits: ClientLimits) -> bool {
    matches!(
        tokio::time::timeout(limits.write, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await,
        Ok(Ok(()))
    )
}

async fn answer_health(
    io: &mut L4Stream,
    close: bool,
    head: bool,
    limits: ClientLimits,
    fast: &Fast,
) -> bool {
    let start = Instant::now();
    let resp: &[u8] = if close {
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nok\n"
    } else {
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"
    };
    let resp = if head { &resp[..resp.len() - 3] } else { resp };
    let ok = write_client(io, resp, limits).await;
    fast.metrics
        .request(if ok { 200 } else { 0 }, None, ms(start.elapsed()), None);
    ok
}

async fn answer_error(io: &mut L4Stream, status: u16, limits: ClientLimits) {
    let body = body_for(status);
    let reason = match status {
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nCache-Control: private, no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    let _ = write_client(io, &out, limits).await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Forwards the request in `conn.out`, relays the response; `true` when the client
/// connection can serve another request.
async fn forward(
    fast: &Fast,
    conn: &mut Conn,
    io: &mut L4Stream,
    request: Request,
    close: bool,
    limits: ClientLimits,
    start: Instant,
) -> bool {
    let m = &fast.metrics;
    let n = fast.pools.len();
    let mut i = fast.picker.pick(0);
    let mut tried = 0;
    let mut fresh_only = false;
    let outcome = loop {
        let pooled = if fresh_only { None } else { fast.take(i) };
        let reused = pooled.is_some();
        let up = match pooled {
            Some(s) => s,
            None => match fast.connect(i).await {
                Ok(s) => s,
                Err(kind) => {
                    m.upstream_error(kind);
                    tried += 1;
                    if tried < n {
                        // With several upstreams, try the next one (each at most once).
                        i = (i + 1) % n;
                        fresh_only = false;
                        continue;
                    }
                    break Err(Failure::Answer(if kind == ErrorKind::Timeout {
                        504
                    } else {
                        502
                    }));
                }
            },
        };
        m.upstream_connection(reused);
        m.upstream_active.add(1);
        let r = exchange(fast, conn, io, up, reused, i, request, close, limits).await;
        m.upstream_active.add(-1);
        match r {
            Exchange::Done(status, upstream_ms, keep) => break Ok((status, upstream_ms, keep)),
            Exchange::Stale => {
                // A pooled connection the upstream had closed, for an idempotent request:
                // send it again on a fresh connection (which cannot be stale).
                m.upstream_error(ErrorKind::Reset);
                fresh_only = true;
            }
            Exchange::Failed(kind, failure) => {
                if let Some(kind) = kind {
                    m.upstream_error(kind);
                }
                break Err(failure);
            }
        }
    };
    match outcome {
        Ok((status, upstream_ms, keep)) => {
            m.request(status, Some(i), ms(start.elapsed()), upstream_ms);
            keep
        }
        Err(Failure::Answer(status)) => {
            answer_error(io, status, limits).await;
            m.request(status, Some(i), ms(start.elapsed()), None);
            false
        }
        Err(Failure::Close(status)) => {
            m.request(status, Some(i), ms(start.elapsed()), None);
            false
        }
    }
}

enum Exchange {
    /// Response relayed: status, upstream time to first byte, client connection reusable.
    Done(u16, Option<f64>, bool),
    /// A pooled connection turned out dead before any response byte.
    Stale,
    /// Failed (the upstream error kind to count, if any).
    Failed(Option<ErrorKind>, Failure),
}

fn upstream_failure(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Reset,
    }
}

#[allow(clippy::too_many_arguments)]
async fn exchange(
    fast: &Fast,
    conn: &mut Conn,
    io: &mut L4Stream,
    mut up: TcpStream,
    reused: bool,
    i: usize,
    request: Request,
    close: bool,
    limits: ClientLimits,
) -> Exchange {
    match tokio::time::timeout(fast.write, up.write_all(&conn.out)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) if reused && request.idempotent => return Exchange::Stale,
        Ok(Err(e)) => return Exchange::Failed(Some(upstream_failure(&e)), Failure::Answer(502)),
        Err(_) => return Exchange::Failed(Some(ErrorKind::Timeout), Failure::Answer(504)),
    }
    let sent = Instant::now();
    let mut upstream_ms = None;
    let mut filled = 0;
    let mut got_any = false;
    // The response head (after any interim ones).
    let head = loop {
        match parse_response(&conn.ubuf[..filled], request.head, close, &mut conn.out) {
            Ok(Some(h)) if h.interim => {
                if !write_client(io, &conn.out, limits).await {
                    return Exchange::Failed(None, Failure::Close(0));
                }
                conn.ubuf.copy_within(h.len..filled, 0);
                filled -= h.len;
                continue;
            }
            Ok(Some(h)) => break h,
            Ok(None) => {}
            Err(kind) => return Exchange::Failed(Some(kind), Failure::Answer(502)),
        }
        if filled == conn.ubuf.len() {
            conn.ubuf.resize(conn.ubuf.len() * 2, 0);
        }
        match tokio::time::timeout(fast.read, up.read(&mut conn.ubuf[filled..])).await {
            Ok(Ok(0)) | Ok(Err(_)) if reused && !got_any && request.idempotent => {
                return Exchange::Stale
            }
            Ok(Ok(0)) => return Exchange::Failed(Some(ErrorKind::Reset), Failure::Answer(502)),
            Ok(Err(e)) => {
                return Exchange::Failed(Some(upstream_failure(&e)), Failure::Answer(502))
            }
            Ok(Ok(n)) => {
                if !got_any {
                    upstream_ms = Some(ms(sent.elapsed()));
                }
                got_any = true;
                filled += n;
            }
            Err(_) => return Exchange::Failed(Some(ErrorKind::Timeout), Failure::Answer(504)),
        }
    };
    let status = head.status;
    let mut reusable = head.reusable;
    // The head and whatever body bytes came with it, in one write.
    let avail = &conn.ubuf[head.len..filled];
    let mut chunks = ChunkScan::default();
    let (take, mut remaining, mut complete) = match head.framing {
        Framing::None => (0, 0, true),
        Framing::Length(n) => {
            let take = avail.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            (take, n - take as u64, take as u64 == n)
        }
        Framing::Chunked => match chunks.feed(avail) {
            Ok(take) => (take, 0, chunks.done()),
            Err(()) => return Exchange::Failed(Some(ErrorKind::Protocol), Failure::Answer(502)),
        },
        Framing::UntilClose => (avail.len(), 0, false),
    };
    if take < avail.len() {
        // Bytes after the response: the connection's framing cannot be trusted.
        reusable = false;
    }
    conn.out.extend_from_slice(&avail[..take]);
    if !write_client(io, &conn.out, limits).await {
        return Exchange::Done(status, upstream_ms, false);
    }
    // The rest of the body, as it arrives.
    while !complete {
        let want = match head.framing {
            Framing::Length(_) => conn
                .ubuf
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX)),
            _ => conn.ubuf.len(),
        };
        let n = match tokio::time::timeout(fast.read, up.read(&mut conn.ubuf[..want])).await {
            Ok(Ok(0)) if head.framing == Framing::UntilClose => {
                reusable = false;
                break;
            }
            Ok(Ok(n)) if n > 0 => n,
            Ok(r) => {
                let kind = match r {
                    Err(e) => upstream_failure(&e),
                    Ok(_) => ErrorKind::Reset,
                };
                return Exchange::Failed(Some(kind), Failure::Close(status));
            }
            Err(_) => return Exchange::Failed(Some(ErrorKind::Timeout), Failure::Close(status)),
        };
        let take = match head.framing {
            Framing::Length(_) => {
                remaining -= n as u64;
                complete = remaining == 0;
                n
            }
            Framing::Chunked => match chunks.feed(&conn.ubuf[..n]) {
                Ok(take) => {
                    complete = chunks.done();
                    if take < n {
                        reusable = false;
                    }
                    take
                }
                Err(()) => {
                    return Exchange::Failed(Some(ErrorKind::Protocol), Failure::Close(status))
                }
            },
            _ => n,
        };
        if !write_client(io, &conn.ubuf[..take], limits).await {
            return Exchange::Done(status, upstream_ms, false);
        }
    }
    if reusable {
        fast.put(i, up);
    }
    Exchange::Done(status, upstream_ms, head.framing != Framing::UntilClose)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(parts: &[&[u8]]) -> (usize, bool) {
        let mut s = ChunkScan::default();
        let mut total = 0;
        for p in parts {
            total += s.feed(p).expect("valid framing");
        }
        (total, s.done())
    }

    #[test]
    fn chunk_scan_finds_the_end_across_reads() {
        let body = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\nNEXT";
        assert_eq!(scan(&[body]), (body.len() - 4, true));
        let split: Vec<&[u8]> = body[..body.len() - 4].chunks(1).collect();
        assert_eq!(scan(&split), (body.len() - 4, true));
        assert_eq!(scan(&[b"5\r\nhello\r\n"]), (10, false));
        let trailers = b"0\r\nX-Sum: 1\r\n\r\n";
        assert_eq!(scan(&[trailers]), (trailers.len(), true));
    }

    #[test]
    fn chunk_scan_rejects_bad_framing() {
        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX",
            b"\r\n",
            b"1111111111111111\r\n",
        ] {
            assert!(ChunkScan::default().feed(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn response_heads_are_framed_and_cleaned() {
        let mut out = Vec::new();
        let h = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nDate: Tue, 24 Nov 2026 00:00:00 GMT\r\nX-Keep: 2\r\n\r\nhello",
            false,
            false,
            &mut out,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.reusable);
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: Tue, 24 Nov 2026 00:00:00 GMT\r\nX-Keep: 2\r\n\r\n"
        );

        let h = parse_response(b"HTTP/1.1 200 OK\r\n\r\n", false, true, &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::UntilClose);
        assert!(!h.reusable);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains("\r\nDate: ") && text.ends_with(" GMT\r\nConnection: close\r\n\r\n"),
            "a Date is added when the upstream sent none: {text:?}"
        );
        assert!(String::from_utf8(out.clone())
            .unwrap()
            .contains("Connection: close\r\n"));

        let h = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            true,
            false,
            &mut out,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::None, "HEAD has no body");

        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            false,
            false,
            &mut out
        )
        .is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-", false, false, &mut out)
                .unwrap()
                .is_none()
        );
    }
}
