//! The request path: pingora's [`ProxyHttp`] hooks for TinyFish (peer choice, header rules,
//! error answers, metrics). One [`Gateway`] serves every request of the process.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::{selection::RoundRobin, LoadBalancer};
use pingora::prelude::HttpPeer;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::answers;
use crate::check;
use crate::config::{Config, ForwardedPolicy};
use crate::headers::{self, RequestIds};
use crate::metrics::{ErrorKind, Metrics, Protocol};

/// What the connection layer tells each request about its connection (handed over through
/// pingora's per-connection user context).
#[derive(Debug)]
pub struct ConnInfo {
    /// The client's IP address as text (for `X-Forwarded-For`).
    pub client_ip: Bytes,
    /// Whether the dispatcher has checked each request head before pingora reads it
    /// ([`crate::check`]); if not, the gateway checks what pingora parsed.
    pub checked: bool,
    /// What the client speaks (metrics' `protocol` tag; TLS sends `X-Forwarded-Proto: https`).
    pub protocol: Protocol,
}

impl ConnInfo {
    /// Info for a connection from `peer`.
    pub fn new(peer: SocketAddr, checked: bool, protocol: Protocol) -> Self {
        ConnInfo {
            client_ip: Bytes::from(peer.ip().to_string()),
            checked,
            protocol,
        }
    }

    /// Info for an HTTP/2 stream, which has no per-connection context in pingora: from the
    /// session's client address.
    fn of_h2(session: &Session) -> Self {
        let ip = session
            .as_downstream()
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        ConnInfo {
            client_ip: Bytes::from(ip),
            checked: false,
            protocol: Protocol::H2Tls,
        }
    }
}

/// Where an upstream is, once resolved at start-up: `upstreams` spells it `host:port`
/// (resolved then) or `unix:/path` (taken as it is: the socket need not exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket on this host (an absolute path, see [`crate::config::unix_socket_path`]).
    Unix(PathBuf),
}

/// As `upstreams` spells it: `127.0.0.1:5000`, `unix:/run/app.sock`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(a) => a.fmt(f),
            Target::Unix(p) => write!(f, "{}{}", crate::config::UNIX_PREFIX, p.display()),
        }
    }
}

/// The `Host` sent to a Unix-socket upstream when the client sent none (as NGINX does for
/// `proxy_pass http://unix:/path:`): the socket's path is no host name.
pub const UNIX_UPSTREAM_HOST: &str = "localhost";

/// One upstream with its prepared peer.
#[derive(Debug)]
pub struct Upstream {
    /// As written in the config (metric tag).
    pub name: String,
    /// Where it is.
    pub target: Target,
    /// `Host` for a request that came without one: the name (`host:port`), or
    /// [`UNIX_UPSTREAM_HOST`] for a Unix socket.
    host: String,
    peer: HttpPeer,
}

/// Per-request state.
#[derive(Debug)]
pub struct Ctx {
    start: Instant,
    upstream: Option<usize>,
    sent: Option<Instant>,
    upstream_ms: Option<f64>,
    conn: Option<Arc<ConnInfo>>,
    tries: usize,
    connected: bool,
}

/// The proxy logic.
pub struct Gateway {
    upstreams: Vec<Upstream>,
    picker: Arc<Picker>,
    health_path: Option<Box<str>>,
    max_header_bytes: usize,
    forwarded: ForwardedPolicy,
    ids: Arc<RequestIds>,
    metrics: Arc<Metrics>,
}

impl Gateway {
    /// Builds the gateway for resolved upstreams (`resolved[i]` for `config.upstreams[i]`).
    ///
    /// Panics on a Unix socket path pingora cannot take (longer than a socket address
    /// holds), which [`Config::validate`] refuses.
    pub fn new(
        config: &Config,
        resolved: &[Target],
        picker: Arc<Picker>,
        ids: Arc<RequestIds>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let t = &config.timeouts;
        let upstreams = config
            .upstreams
            .iter()
            .zip(resolved)
            .map(|(name, target)| {
                let (mut peer, host) = match target {
                    Target::Tcp(addr) => (HttpPeer::new(*addr, false, String::new()), name.clone()),
                    Target::Unix(path) => {
                        let path = path.to_str().expect("a path from the configuration's text");
                        let peer = HttpPeer::new_uds(path, false, String::new())
                            .expect("a socket path validated by Config::validate");
                        (peer, UNIX_UPSTREAM_HOST.to_owned())
                    }
                };
                peer.options.connection_timeout = Some(t.connect);
                peer.options.read_timeout = Some(t.read);
                peer.options.write_timeout = Some(t.write);
                peer.options.idle_timeout = Some(t.upstream_idle);
                Upstream {
                    name: name.clone(),
                    target: target.clone(),
                    host,
                    peer,
                }
            })
            .collect();
        Gateway {
            upstreams,
            picker,
            health_path: (!config.health_path.is_empty())
                .then(|| config.health_path.clone().into_boxed_str()),
            max_header_bytes: config.max_header_bytes,
            forwarded: config.forwarded,
            ids,
            metrics,
        }
    }
}

/// Chooses the upstream for a request, for both paths (one round-robin counter): the load
/// balancer's healthy choice, else plain round robin (none healthy, or not checked yet),
/// moving on with each retry.
pub struct Picker {
    addrs: Vec<Target>,
    lb: Option<Arc<LoadBalancer<RoundRobin>>>,
    rr: AtomicUsize,
}

impl std::fmt::Debug for Picker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Picker")
            .field("addrs", &self.addrs)
            .field("health_checked", &self.lb.is_some())
            .finish_non_exhaustive()
    }
}

impl Picker {
    /// A picker over resolved upstreams, with their load balancer when there are several
    /// (all TCP: a Unix-socket upstream is the only one).
    pub fn new(addrs: &[Target], lb: Option<Arc<LoadBalancer<RoundRobin>>>) -> Self {
        Picker {
            addrs: addrs.to_vec(),
            lb,
            rr: AtomicUsize::new(0),
        }
    }

    /// The index of the upstream for attempt `tries` (0 first) of a request.
    pub fn pick(&self, tries: usize) -> usize {
        let n = self.addrs.len();
        if n <= 1 {
            return 0;
        }
        if let Some(lb) = &self.lb {
            if let Some(b) = lb.select(b"", 256) {
                let chosen = b.addr.as_inet();
                if let Some(i) = self
                    .addrs
                    .iter()
                    .position(|t| matches!(t, Target::Tcp(a) if chosen == Some(a)))
                {
                    return i;
                }
            }
        }
        (self.rr.fetch_add(1, Ordering::Relaxed) + tries) % n
    }
}

fn classify(e: &Error) -> ErrorKind {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            ErrorKind::Timeout
        }
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::SocketError
        | ErrorType::BindError => ErrorKind::Connect,
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError => {
            ErrorKind::Reset
        }
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error => ErrorKind::Protocol,
        _ => ErrorKind::Other,
    }
}

/// The status answered for a failed request (0: close the connection, nothing to say).
fn status_for(e: &Error) -> u16 {
    if let ErrorType::HTTPStatus(code) = e.etype() {
        return *code;
    }
    match e.esource() {
        ErrorSource::Upstream => match e.etype() {
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
            _ => 502,
        },
        ErrorSource::Downstream => match e.etype() {
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
            ErrorType::ReadTimedout => 408,
            _ => 400,
        },
        ErrorSource::Internal | ErrorSource::Unset => 500,
    }
}

/// `X-Forwarded-Proto: http` and `https`, shared (no allocation per request).
const PROTO_HTTP: http::HeaderValue = http::HeaderValue::from_static("http");
const PROTO_HTTPS: http::HeaderValue = http::HeaderValue::from_static("https");

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            upstream: None,
            sent: None,
            upstream_ms: None,
            conn: None,
            tries: 0,
            connected: false,
        }
    }

    /// No downstream modules: pingora adds a (disabled) compression module by default, whose
    /// per-request context costs allocations for nothing.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
        prev: Box<dyn Any + Send + Sync>,
    ) {
        if let Ok(conn) = prev.downcast::<Arc<ConnInfo>>() {
            ctx.conn = Some(*conn);
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        if ctx.conn.is_none() && session.as_downstream().is_http2() {
            ctx.conn = Some(Arc::new(ConnInfo::of_h2(session)));
        }
        match &ctx.conn {
            Some(c) if c.checked => return Ok(()),
            // An HTTP/2 request was framed and validated by the h2 codec and pingora's
            // HTTP/2 server (RFC 9113 §8: pseudo-headers, authority, connection headers);
            // RFC 9112's request-line rules below do not apply to it.
            Some(c) if c.protocol == Protocol::H2Tls => return Ok(()),
            _ => {}
        }
        // Not checked by the dispatcher (a stream it cannot rewind): check the head as
        // pingora parsed it (its request line as pingora rebuilt it).
        let raw = session.as_downstream().to_h1_raw();
        if let Err(reject) = check::check_raw(&raw, self.max_header_bytes) {
            return Err(Error::explain(
                ErrorType::HTTPStatus(reject.status()),
                "request refused before forwarding",
            ));
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<bool> {
        if let Some(path) = &self.health_path {
            if session.req_header().uri.path() == &**path {
                let mut resp = ResponseHeader::build(200, Some(2))?;
                resp.insert_header(http::header::CONTENT_LENGTH, "3")?;
                resp.insert_header(http::header::CONTENT_TYPE, "text/plain")?;
                session.write_response_header(Box::new(resp), false).await?;
                session
                    .write_response_body(Some(Bytes::from_static(b"ok\n")), true)
                    .await?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let i = self.picker.pick(ctx.tries);
        ctx.tries += 1;
        ctx.upstream = Some(i);
        Ok(Box::new(self.upstreams[i].peer.clone()))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        self.metrics.upstream_connection(reused);
        if !ctx.connected {
            ctx.connected = true;
            self.metrics.upstream_active.add(1);
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        req.set_version(http::Version::HTTP_11);
        for name in headers::hop_by_hop(&req.headers) {
            req.remove_header(&name);
        }
        // Absolute form: sent in origin form with the target's authority as Host (RFC 9112
        // §3.2.1-2), as the fast path does.
        let raw = req.raw_path();
        if !raw.starts_with(b"/") && raw != b"*" {
            if let Some((authority, rest)) = check::absolute_target(raw) {
                let host = http::HeaderValue::from_bytes(authority)
                    .map_err(|_| Error::explain(ErrorType::HTTPStatus(400), "bad authority"))?;
                let mut origin = Vec::with_capacity(rest.len() + 1);
                if !rest.starts_with(b"/") {
                    origin.push(b'/');
                }
                origin.extend_from_slice(rest);
                let uri = http::Uri::try_from(origin)
                    .map_err(|_| Error::explain(ErrorType::HTTPStatus(400), "bad target"))?;
                req.insert_header(http::header::HOST, host)?;
                req.set_uri(uri);
            }
        }
        if let Some(conn) = &ctx.conn {
            if let Some(f) = headers::forwarded(self.forwarded, &req.headers, &conn.client_ip) {
                req.insert_header(headers::names::FOR, f.for_)?;
                let proto = match conn.protocol {
                    Protocol::H1 => PROTO_HTTP,
                    Protocol::H1Tls | Protocol::H2Tls => PROTO_HTTPS,
                };
                req.insert_header(headers::names::PROTO, proto)?;
                match f.host {
                    Some(h) => req.insert_header(headers::names::HOST, h)?,
                    None => {
                        req.remove_header(&headers::names::HOST_NAME);
                    }
                }
            }
        }
        // An HTTP/1.0 request may omit Host; the HTTP/1.1 request sent on must have one: the
        // upstream's name, as NGINX sends `$proxy_host` (`localhost` for a Unix socket; no
        // X-Forwarded-Host: none was sent).
        if !req.headers.contains_key(http::header::HOST) {
            if let Some(i) = ctx.upstream {
                req.insert_header(http::header::HOST, self.upstreams[i].host.as_str())?;
            }
        }
        if !req.headers.contains_key(headers::X_REQUEST_ID) {
            req.insert_header(headers::names::REQUEST_ID, self.ids.next())?;
        }
        let _ = session;
        ctx.sent = Some(Instant::now());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(sent) = ctx.sent {
            if ctx.upstream_ms.is_none() && !resp.status.is_informational() {
                ctx.upstream_ms = Some(ms(sent.elapsed()));
            }
        }
        for name in headers::hop_by_hop(&resp.headers) {
            resp.remove_header(&name);
        }
        // `Content-Length: 4, 4` (or two lines of 4) goes on as one `Content-Length: 4`
        // (RFC 9112 §6.3), as on the fast path; different values are a broken upstream.
        let lengths = resp.headers.get_all(http::header::CONTENT_LENGTH);
        if lengths.iter().count() > 1 || lengths.iter().any(|v| v.as_bytes().contains(&b',')) {
            let mut one = None;
            for v in lengths.iter().flat_map(|v| headers::tokens(v.as_bytes())) {
                match headers::digits(v) {
                    Some(n) if one.is_none_or(|o| o == n) => one = Some(n),
                    _ => {
                        return Error::e_explain(
                            ErrorType::InvalidHTTPHeader,
                            "upstream sent different Content-Length values",
                        )
                    }
                }
            }
            if let Some(n) = one {
                resp.insert_header(http::header::CONTENT_LENGTH, n.to_string())?;
            }
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.metrics.upstream_error(classify(&e));
        // With several upstreams, try the next one (each at most once); with one, answer now.
        e.set_retry(self.upstreams.len() > 1 && ctx.tries < self.upstreams.len());
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        _ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        if matches!(e.esource(), ErrorSource::Upstream) {
            self.metrics.upstream_error(classify(&e));
        }
        // pingora's default policy: a pooled connection that turns out dead is retried on a
        // fresh one, for idempotent requests whose body is still buffered.
        let mut e = e.more_context(format!("Peer: {peer}"));
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _error: &Error) -> bool {
        true
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, _ctx: &mut Ctx) -> FailToProxy {
        if let Some(written) = session.response_written() {
            // Part of the response is out: the only honest signal left is closing the connection.
            return FailToProxy {
                error_code: written.status.as_u16(),
                can_reuse_downstream: false,
            };
        }
        let code = status_for(e);
        if code > 0 {
            let body = Bytes::from_static(answers::body_for(code));
            let _ = session.respond_error_with_body(code, body).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if ctx.connected {
            ctx.connected = false;
            self.metrics.upstream_active.add(-1);
        }
        // A client that went away before its response is counted as the fast path counts
        // it (499, NGINX's code), not as a server error.
        let status = match session.response_written() {
            Some(r) => r.status.as_u16(),
            None if e.is_some_and(|e| {
                matches!(e.esource(), ErrorSource::Downstream) && status_for(e) == 0
            }) =>
            {
                crate::fast::relay::CLIENT_GONE
            }
            None => 0,
        };
        let protocol = ctx.conn.as_ref().map_or(Protocol::H1, |c| c.protocol);
        self.metrics.request(
            protocol,
            status,
            ctx.upstream,
            ms(ctx.start.elapsed()),
            ctx.upstream_ms,
        );
    }
}
