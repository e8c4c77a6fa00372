//! What to load and how: [`LoadSpec`], [`Mode`], URL parsing and the request, serialised once.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;

use crate::error::LoadError;
use crate::tls::ClientTls;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Open loop: requests are *scheduled* at `rate` per second in total, whatever the server
    /// does. Each connection follows its own schedule (`rate / connections` per second,
    /// staggered), as wrk2 does; latency is measured from the intended send time.
    Open {
        /// Target requests per second across all connections.
        rate: f64,
    },
    /// Closed loop: each connection sends its next request as soon as the previous response
    /// is complete. Measures capacity; latency under saturation is not a latency measurement.
    Closed,
}

/// One load run: target, request, concurrency, pacing and durations.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Address the connections dial.
    pub addr: SocketAddr,
    /// Value of the `Host` header (`host[:port]` as in the URL); a `Host` entry in
    /// `headers` replaces it.
    pub host_header: String,
    /// Request method (`GET`, `POST`, …).
    pub method: String,
    /// Request target, e.g. `/` or `/hello?name=x`.
    pub path_and_query: String,
    /// Request body; a `Content-Length` header is added when it is non-empty (or, with
    /// `chunked`, `Transfer-Encoding: chunked` and the body in chunks).
    pub body: Bytes,
    /// Send the body with chunked transfer coding (chunks of at most 16 KiB) instead of a
    /// `Content-Length`: an upload of unknown length, as a streaming client sends it.
    pub chunked: bool,
    /// Extra request headers, sent in order.
    pub headers: Vec<(String, String)>,
    /// Number of keep-alive connections, each with at most one request in flight.
    pub connections: usize,
    /// Open (fixed rate) or closed (capacity) loop.
    pub mode: Mode,
    /// Load applied before measuring (not recorded): warms caches, pools, JITs and CPU clocks.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Worker threads, each with its own single-threaded runtime and a share of the
    /// connections (like wrk's `-t`). 1 is enough for tens of thousands of requests/s.
    pub threads: usize,
    /// A request with no complete response after this long fails with kind `timeout`
    /// (checked every 20 ms). Also bounds connecting.
    pub request_timeout: Duration,
    /// Open loop: a wake-up issues every send due within this window, so sends go out in
    /// small batches instead of one wake-up each (a timed wake-up costs the load generator
    /// more CPU than a request does on some virtual machines). `None`: automatic,
    /// [`SendWindow::auto`]. Zero: one wake-up per send (within the learnt wake margin).
    pub send_window: Option<Duration>,
    /// TLS on every connection (`https://` URLs need it): the CA to trust, resumption.
    pub tls: Option<ClientTls>,
    /// Close each connection after this many requests and open a new one (with TLS, a
    /// new handshake: how a handshake is priced). `None`: keep-alive for the whole run.
    pub requests_per_connection: Option<u64>,
    /// HTTP/2 (over TLS, ALPN `h2`) with this many concurrent streams per connection, each
    /// a sequential client of its own (`connections × streams` in all). `None`: HTTP/1.1.
    pub h2_streams: Option<usize>,
}

/// The automatic open-loop send window.
#[derive(Debug, Clone, Copy)]
pub struct SendWindow;

impl SendWindow {
    /// Sends per wake-up the automatic window aims for.
    pub const SENDS_PER_WAKE: f64 = 4.0;
    /// The widest automatic window: wrk2's pacing granularity (1 ms).
    pub const MAX: Duration = Duration::from_millis(1);

    /// The window for `rate` requests/s: room for [`SendWindow::SENDS_PER_WAKE`] sends, at
    /// most [`SendWindow::MAX`].
    pub fn auto(rate: f64) -> Duration {
        if !(rate.is_finite() && rate > 0.0) {
            return Self::MAX;
        }
        Duration::from_secs_f64(Self::SENDS_PER_WAKE / rate).min(Self::MAX)
    }
}

impl LoadSpec {
    /// A spec for `url` (`http://host[:port]/path?query`) with defaults: `GET`, 32 connections,
    /// closed loop, 1 s warm-up, 10 s measured, 1 thread, 5 s request timeout.
    ///
    /// The host is resolved now (first address wins). An `https://` URL also needs
    /// [`LoadSpec::tls`] set (the certificate to trust) before it runs.
    pub fn from_url(url: &str) -> Result<Self, LoadError> {
        Self::from_url_with_tls(url, None)
    }

    /// [`LoadSpec::from_url`] for `http://` (with `tls` `None`) or `https://` (with the TLS
    /// settings it needs: [`ClientTls`]).
    pub fn from_url_with_tls(url: &str, tls: Option<ClientTls>) -> Result<Self, LoadError> {
        let target = parse_url(url)?;
        match (target.https, tls.is_some()) {
            (true, false) => {
                return Err(LoadError::InvalidSpec(format!(
                    "{url}: an https:// URL needs the CA certificate to trust (--ca FILE)"
                )))
            }
            (false, true) => {
                return Err(LoadError::InvalidSpec(format!(
                    "{url}: TLS settings (--ca) given for an http:// URL: use https://"
                )))
            }
            _ => {}
        }
        let lookup = format!("{}:{}", target.host, target.port);
        let addr = lookup
            .to_socket_addrs()
            .map_err(|source| LoadError::Resolve {
                host: lookup.clone(),
                source,
            })?
            .next()
            .ok_or_else(|| LoadError::Resolve {
                host: lookup.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"),
            })?;
        Ok(LoadSpec {
            addr,
            host_header: target.host_header,
            method: "GET".to_owned(),
            path_and_query: target.path_and_query,
            body: Bytes::new(),
            chunked: false,
            headers: Vec::new(),
            connections: 32,
            mode: Mode::Closed,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            threads: 1,
            request_timeout: Duration::from_secs(5),
            send_window: None,
            tls,
            requests_per_connection: None,
            h2_streams: None,
        })
    }

    /// Checks that the spec can be run; [`run`](crate::run) calls it first.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |m: String| Err(LoadError::InvalidSpec(m));
        if self.connections == 0 {
            return bad("connections must be at least 1".into());
        }
        if self.threads == 0 {
            return bad("threads must be at least 1".into());
        }
        if self.threads > self.connections {
            return bad(format!(
                "threads ({}) must not exceed connections ({})",
                self.threads, self.connections
            ));
        }
        if let Mode::Open { rate } = self.mode {
            if !(rate.is_finite() && rate > 0.0) {
                return bad(format!(
                    "rate must be a positive number of requests/s, got {rate}"
                ));
            }
        }
        if let Some(m) = self.h2_streams {
            if m == 0 || m > 1000 {
                return bad(format!(
                    "HTTP/2 streams per connection must be 1 to 1000, got {m}"
                ));
            }
            if self.tls.is_none() {
                return bad("HTTP/2 is spoken over TLS only (ALPN h2): use an https:// URL".into());
            }
            if self.requests_per_connection.is_some() {
                return bad(
                    "requests per connection apply to HTTP/1.1; HTTP/2 connections stay open"
                        .into(),
                );
            }
            if self.chunked {
                return bad(
                    "chunked request bodies are HTTP/1.1; HTTP/2 frames the body itself".into(),
                );
            }
        }
        if self.requests_per_connection == Some(0) {
            return bad("requests per connection must be at least 1".into());
        }
        if self.duration.is_zero() {
            return bad("duration must be greater than zero".into());
        }
        if self.request_timeout.is_zero() {
            return bad("request timeout must be greater than zero".into());
        }
        if self.method.is_empty() || !self.method.bytes().all(is_token_byte) {
            return bad(format!("invalid HTTP method {:?}", self.method));
        }
        if !self.path_and_query.starts_with('/') || self.path_and_query.bytes().any(is_ctl_or_space)
        {
            return bad(format!("invalid request target {:?}", self.path_and_query));
        }
        for (name, value) in &self.headers {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return bad(format!("invalid header name {name:?}"));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return bad(format!("invalid value for header {name:?}"));
            }
        }
        Ok(())
    }

    /// The request as bytes on the wire, built once and written as-is for every request.
    pub fn request_bytes(&self) -> Vec<u8> {
        let mut r = Vec::with_capacity(128 + self.body.len());
        r.extend_from_slice(self.method.as_bytes());
        r.push(b' ');
        r.extend_from_slice(self.path_and_query.as_bytes());
        r.extend_from_slice(b" HTTP/1.1\r\n");
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            r.extend_from_slice(b"Host: ");
            r.extend_from_slice(self.host_header.as_bytes());
            r.extend_from_slice(b"\r\n");
        }
        let mut has_length = false;
        for (name, value) in &self.headers {
            has_length |= name.eq_ignore_ascii_case("content-length");
            r.extend_from_slice(name.as_bytes());
            r.extend_from_slice(b": ");
            r.extend_from_slice(value.as_bytes());
            r.extend_from_slice(b"\r\n");
        }
        if self.chunked && !self.body.is_empty() {
            r.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for chunk in self.body.chunks(CHUNK) {
                r.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                r.extend_from_slice(chunk);
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
            return r;
        }
        if !self.body.is_empty() && !has_length {
            r.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        r.extend_from_slice(b"\r\n");
        r.extend_from_slice(&self.body);
        r
    }

    /// Whether responses to this request have no body whatever their headers say (`HEAD`).
    pub(crate) fn is_head(&self) -> bool {
        self.method.eq_ignore_ascii_case("HEAD")
    }

    /// Whether connections ask the kernel for receive timestamps: in open loop, where
    /// latency is the measurement; not in closed loop, which measures capacity (see
    /// `socket`: timestamping costs the server a little).
    pub(crate) fn wants_timestamps(&self) -> bool {
        matches!(self.mode, Mode::Open { .. })
    }

    /// Open loop: the send window in effect (see [`LoadSpec::send_window`]).
    pub fn effective_send_window(&self) -> Duration {
        match (self.mode, self.send_window) {
            (_, Some(w)) => w,
            (Mode::Open { rate }, None) => SendWindow::auto(rate),
            (Mode::Closed, None) => Duration::ZERO,
        }
    }
}

/// Largest chunk of a chunked request body.
const CHUNK: usize = 16 * 1024;

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ctl_or_space(b: u8) -> bool {
    b <= b' ' || b == 0x7f
}

/// The parts of an `http://` URL the load generator needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// `Host` header value: the authority as written in the URL.
    pub host_header: String,
    /// Path and query, `/` when absent.
    pub path_and_query: String,
    /// `https://`: connections speak TLS (see [`LoadSpec::tls`]).
    pub https: bool,
}

/// Parses `http[s]://host[:port][/path][?query]`; no user info, no fragment sent.
pub fn parse_url(url: &str) -> Result<HttpTarget, LoadError> {
    let invalid = |reason: &str| LoadError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid("expected http://host[:port]/path"));
    };
    let https = scheme.eq_ignore_ascii_case("https");
    if !https && !scheme.eq_ignore_ascii_case("http") {
        return Err(LoadError::UnsupportedScheme {
            url: url.to_owned(),
        });
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    if authority.is_empty() {
        return Err(invalid("missing host"));
    }
    if authority.contains('@') {
        return Err(invalid("user info (user@host) is not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            return Err(invalid("unterminated [IPv6] host"));
        };
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| invalid("garbage after ]"))?,
            ),
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || host.bytes().any(is_ctl_or_space) {
        return Err(invalid("invalid host"));
    }
    let port = match port {
        None if https => 443,
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid(&format!("invalid port {p:?}")))?,
    };
    if path.bytes().any(is_ctl_or_space) {
        return Err(invalid("path contains spaces or control characters"));
    }
    Ok(HttpTarget {
        host,
        port,
        host_header: authority.to_owned(),
        path_and_query: path,
        https,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = parse_url("http://127.0.0.1:8080/a/b?x=1").unwrap();
        assert_eq!(t.host, "127.0.0.1");
        assert_eq!(t.port, 8080);
        assert_eq!(t.host_header, "127.0.0.1:8080");
        assert_eq!(t.path_and_query, "/a/b?x=1");
        let t = parse_url("http://example.com").unwrap();
        assert_eq!((t.port, t.path_and_query.as_str()), (80, "/"));
        let t = parse_url("http://[::1]:9/?q").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path_and_query.as_str()),
            ("::1", 9, "/?q")
        );
        let t = parse_url("http://h:1?q=2").unwrap();
        assert_eq!(t.path_and_query, "/?q=2");
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "",
            "localhost:80",
            "http://",
            "http://h:0/",
            "http://h:x/",
            "http://h:99999/",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert!(matches!(e, LoadError::InvalidUrl { .. }), "{bad}: {e}");
        }
        let e = parse_url("ftp://example.com/").unwrap_err();
        assert!(e.to_string().contains("http:// or https://"), "{e}");
        let t = parse_url("https://example.com/x").unwrap();
        assert!(t.https);
        assert_eq!(t.port, 443);
    }

    #[test]
    fn serialises_request_once() {
        let mut s = LoadSpec::from_url("http://127.0.0.1:1/p").unwrap();
        s.method = "POST".into();
        s.body = Bytes::from_static(b"abc");
        s.headers.push(("X-A".into(), "1".into()));
        assert_eq!(
            String::from_utf8(s.request_bytes()).unwrap(),
            "POST /p HTTP/1.1\r\nHost: 127.0.0.1:1\r\nX-A: 1\r\nContent-Length: 3\r\n\r\nabc"
        );
        s.validate().unwrap();
        s.body = Bytes::new();
        s.headers = vec![("host".into(), "example.com".into())];
        assert_eq!(
            String::from_utf8(s.request_bytes()).unwrap(),
            "POST /p HTTP/1.1\r\nhost: example.com\r\n\r\n"
        );
        s.headers.push(("Bad Name".into(), "1".into()));
        assert!(s.validate().is_err());
    }

    #[test]
    fn chunked_bodies_are_framed_in_chunks() {
        let mut s = LoadSpec::from_url("http://127.0.0.1:1/up").unwrap();
        s.method = "POST".into();
        s.chunked = true;
        s.body = Bytes::from(vec![b'x'; CHUNK + 3]);
        let text = String::from_utf8(s.request_bytes()).unwrap();
        let head = "POST /up HTTP/1.1\r\nHost: 127.0.0.1:1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(text.starts_with(head), "{:?}", &text[..80]);
        let body = &text[head.len()..];
        assert!(body.starts_with("4000\r\nxxx"), "{:?}", &body[..10]);
        assert!(body.ends_with("\r\n3\r\nxxx\r\n0\r\n\r\n"));
        assert!(!text.contains("Content-Length"));
    }
}
