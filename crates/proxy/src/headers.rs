//! Request and response header rules: hop-by-hop removal, `X-Forwarded-*`, `X-Request-Id`,
//! and the framing checks pingora's parser lets through.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::ForwardedPolicy;

/// `X-Request-Id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Hop-by-hop headers other than `Connection` and `Transfer-Encoding` (pingora re-frames
/// bodies itself and owns `Transfer-Encoding`/`Content-Length`).
const HOP_BY_HOP: [HeaderName; 5] = [
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Why a request is refused before anything is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Ambiguous or unsupported framing (400).
    BadFraming,
    /// Request head over the limit (431).
    HeaderTooLarge,
}

impl Reject {
    /// The status to answer with.
    pub fn status(self) -> u16 {
        match self {
            Reject::BadFraming => 400,
            Reject::HeaderTooLarge => 431,
        }
    }
}

/// Checks what pingora accepts but a careful proxy must not forward: a request head over
/// `max_header_bytes`, `Transfer-Encoding` other than exactly `chunked`, and
/// `Transfer-Encoding` together with `Content-Length` (pingora drops the latter silently;
/// `raw_head` is the request head as received, looked at only when `Transfer-Encoding` is there).
pub fn check_request(
    headers: &HeaderMap,
    raw_head: impl FnOnce() -> Bytes,
    max_header_bytes: usize,
) -> Result<(), Reject> {
    let raw = raw_head();
    let mut te = headers.get_all(header::TRANSFER_ENCODING).iter();
    if let Some(first) = te.next() {
        if te.next().is_some()
            || !first
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"chunked")
        {
            return Err(Reject::BadFraming);
        }
        if contains_header_name(&raw, b"content-length") {
            return Err(Reject::BadFraming);
        }
    }
    let len = raw.len();
    if len > max_header_bytes {
        return Err(Reject::HeaderTooLarge);
    }
    Ok(())
}

/// Whether a raw request head has a header line named `name` (lowercase, ASCII).
fn contains_header_name(raw: &[u8], name: &[u8]) -> bool {
    raw.split(|b| *b == b'\n').skip(1).any(|line| {
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name)
            && matches!(line[name.len()], b':' | b' ' | b'\t')
    })
}

/// The hop-by-hop headers present: `Connection`, the headers it names, and the others
/// (`Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Upgrade`). Empty (no allocation)
/// in the common case.
pub fn hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut out = Vec::new();
    if headers.contains_key(header::CONNECTION) {
        for v in headers.get_all(header::CONNECTION) {
            for t in v.to_str().unwrap_or("").split(',') {
                if let Ok(n) = HeaderName::from_bytes(t.trim().as_bytes()) {
                    if n != header::TRANSFER_ENCODING
                        && n != header::CONTENT_LENGTH
                        && n != header::HOST
                        && headers.contains_key(&n)
                    {
                        out.push(n);
                    }
                }
            }
        }
        out.push(header::CONNECTION);
    }
    for h in &HOP_BY_HOP {
        if headers.contains_key(h) {
            out.push(h.clone());
        }
    }
    out
}

/// The `X-Forwarded-*` values to set on the upstream request.
#[derive(Debug)]
pub struct Forwarded {
    /// `X-Forwarded-For`.
    pub for_: HeaderValue,
    /// `X-Forwarded-Host`, when the request had a Host.
    pub host: Option<HeaderValue>,
}

/// The `X-Forwarded-*` values for a request from `client_ip` with these headers.
pub fn forwarded(
    policy: ForwardedPolicy,
    headers: &HeaderMap,
    client_ip: &Bytes,
) -> Option<Forwarded> {
    let client = HeaderValue::from_maybe_shared(client_ip.clone()).ok()?;
    let for_ = match policy {
        ForwardedPolicy::Off => return None,
        ForwardedPolicy::Replace => client,
        ForwardedPolicy::Append => {
            let mut prior = headers.get_all(X_FORWARDED_FOR).iter().peekable();
            if prior.peek().is_none() {
                client
            } else {
                let mut v = Vec::with_capacity(64);
                for p in prior {
                    if !v.is_empty() {
                        v.extend_from_slice(b", ");
                    }
                    v.extend_from_slice(p.as_bytes());
                }
                v.extend_from_slice(b", ");
                v.extend_from_slice(client_ip);
                HeaderValue::from_maybe_shared(Bytes::from(v)).ok()?
            }
        }
    };
    let host = headers.get(header::HOST).cloned();
    Some(Forwarded { for_, host })
}

/// Names of the headers the proxy sets, as written on the wire. pingora keeps each header
/// name's case; given a `&'static str` it keeps it without copying, where a [`HeaderName`]
/// of a non-standard header would be copied into a fresh allocation on every insert.
pub mod names {
    use super::*;
    /// `X-Forwarded-For`.
    pub const FOR: &str = "X-Forwarded-For";
    /// `X-Forwarded-Proto`.
    pub const PROTO: &str = "X-Forwarded-Proto";
    /// `X-Forwarded-Host`.
    pub const HOST: &str = "X-Forwarded-Host";
    /// `X-Request-Id`.
    pub const REQUEST_ID: &str = "X-Request-Id";
    /// `X-Forwarded-Host`, for lookups and removal.
    pub const HOST_NAME: HeaderName = X_FORWARDED_HOST;

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn wire_names_match_header_names() {
            assert_eq!(FOR.to_ascii_lowercase(), X_FORWARDED_FOR.as_str());
            assert_eq!(PROTO.to_ascii_lowercase(), "x-forwarded-proto");
            assert_eq!(HOST.to_ascii_lowercase(), HOST_NAME.as_str());
            assert_eq!(REQUEST_ID.to_ascii_lowercase(), X_REQUEST_ID.as_str());
        }
    }
}

/// Generates request ids: a random per-process prefix and a counter, 24 hex digits.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    /// A generator with a fresh random prefix.
    pub fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        RequestIds {
            prefix: h.finish(),
            next: AtomicU64::new(1),
        }
    }

    /// The next id as a header value.
    pub fn next(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.next_bytes()).expect("hex digits are a valid header value")
    }

    /// Appends the next id to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.next_bytes());
    }

    /// The next id: 16 hex digits of the prefix, `-`, 15 of the counter.
    fn next_bytes(&self) -> [u8; 32] {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 32];
        let hex = b"0123456789abcdef";
        let p = self.prefix;
        for (i, b) in buf[..16].iter_mut().enumerate() {
            *b = hex[((p >> (60 - 4 * i)) & 0xf) as usize];
        }
        buf[16] = b'-';
        for (i, b) in buf[17..32].iter_mut().enumerate() {
            *b = hex[((n >> (56 - 4 * i)) & 0xf) as usize];
        }
        buf
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn hop_by_hop_and_connection_named() {
        let m = map(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "h2c"),
            ("x-kept", "1"),
        ]);
        let removed = hop_by_hop(&m);
        for n in ["x-secret", "connection", "keep-alive", "upgrade"] {
            assert!(
                removed.iter().any(|r| r == n),
                "{n} not removed: {removed:?}"
            );
        }
        assert!(!removed.iter().any(|r| r == "x-kept"));
    }

    #[test]
    fn framing_checks() {
        let raw = |s: &'static str| move || Bytes::from_static(s.as_bytes());
        let ok = map(&[("transfer-encoding", "chunked")]);
        assert_eq!(
            check_request(
                &ok,
                raw("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
                1000
            ),
            Ok(())
        );
        assert_eq!(
            check_request(
                &ok,
                raw("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
                1000
            ),
            Err(Reject::BadFraming)
        );
        let bad = map(&[("transfer-encoding", "xchunked")]);
        assert_eq!(check_request(&bad, raw(""), 1000), Err(Reject::BadFraming));
        let two = map(&[
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "chunked"),
        ]);
        assert_eq!(check_request(&two, raw(""), 1000), Err(Reject::BadFraming));
        let none = map(&[]);
        assert_eq!(
            check_request(&none, raw("GET / HTTP/1.1\r\n\r\n"), 5),
            Err(Reject::HeaderTooLarge)
        );
    }

    #[test]
    fn forwarded_append_and_replace() {
        let ip = Bytes::from_static(b"10.0.0.9");
        let m = map(&[("x-forwarded-for", "1.1.1.1"), ("host", "example.com")]);
        let f = forwarded(ForwardedPolicy::Append, &m, &ip).unwrap();
        assert_eq!(f.for_, "1.1.1.1, 10.0.0.9");
        assert_eq!(f.host.unwrap(), "example.com");
        let f = forwarded(ForwardedPolicy::Replace, &m, &ip).unwrap();
        assert_eq!(f.for_, "10.0.0.9");
        assert!(forwarded(ForwardedPolicy::Off, &m, &ip).is_none());
    }

    #[test]
    fn request_ids_differ() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }
}
