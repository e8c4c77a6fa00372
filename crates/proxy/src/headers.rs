//! Request and response header rules shared by both paths: the one list of hop-by-hop
//! headers, `X-Forwarded-*`, the one `X-Request-Id` generator, and small header-value
//! helpers. What a request must be before it is forwarded is [`crate::check`]'s.

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

/// The hop-by-hop headers (RFC 9110 §7.6.1), never forwarded on either path, besides the
/// ones `Connection` names. `Transfer-Encoding` is not among them: it frames the body (the
/// fast path relays chunked bodies as they are; pingora re-frames its own).
pub const HOP_BY_HOP_NAMES: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// [`HOP_BY_HOP_NAMES`] but `Connection`, as header names (pingora's path).
const HOP_BY_HOP: [HeaderName; 5] = [
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Whether `name` is one of [`HOP_BY_HOP_NAMES`] (any case).
pub(crate) fn hop_by_hop_name(name: &str) -> bool {
    HOP_BY_HOP_NAMES
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// ASCII case-insensitive equality of header names.
pub(crate) fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
pub(crate) fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// A decimal number of at most 18 digits (a Content-Length, a chunk size never).
pub(crate) fn digits(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Headers a `Connection` option cannot remove (framing and routing).
pub(crate) fn protected(name: &[u8]) -> bool {
    [&b"transfer-encoding"[..], b"content-length", b"host"]
        .iter()
        .any(|p| name.eq_ignore_ascii_case(p))
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

/// Generates request ids: 16 hex digits of a random per-process prefix, `-`, 15 hex digits
/// of a counter (32 bytes). One per process, shared by both paths.
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
