//! What a request head must be before anything is forwarded, for both paths: one set of
//! rules, applied by the dispatcher to the bytes as the client sent them, before pingora's
//! parser (which corrects some invalid request lines) sees them.
//!
//! Each rule cites RFC 9112 (HTTP/1.1 messages) or RFC 9110 (semantics); where the RFC lets
//! a proxy choose, the choice is the one that protects the upstream:
//!
//! | rule | answer |
//! |---|---|
//! | request line: a token method, one space, a target of visible ASCII, one space, `HTTP/1.x` (9112 §3); a target with a space, a control byte or a fragment is not corrected (9112 §3: SHOULD NOT) | 400 |
//! | target characters outside RFC 3986 (`"`, `<`, `{`, non-ASCII, …) or a broken `%` escape | 400 |
//! | authority-form for any method but CONNECT, asterisk-form for any but OPTIONS (9112 §3.2.3–4) | 400 |
//! | CONNECT (the proxy does not tunnel) | 501 |
//! | HTTP/1.1 without Host, more than one Host, or an invalid Host: empty, userinfo, spaces, `/`, `?`, `#`, … (9112 §3.2, 9110 §4.2.1) | 400 |
//! | more than one Content-Length line, or a list (`5,5`), or a non-number (9110 §8.6: a proxy MAY replace an all-equal list; we refuse it) | 400 |
//! | Transfer-Encoding whose last coding is not `chunked`, `chunked` twice, an empty coding, with Content-Length, or in HTTP/1.0 (9112 §6.1, §6.3) | 400 |
//! | a coding besides `chunked` (`gzip, chunked`): not understood (9112 §6.1: SHOULD 501) | 501 |
//! | an absolute-form target whose authority is not a valid host (9112 §3.2.2) | 400 |
//! | a head over `max_header_bytes` | 431 |
//!
//! NGINX 1.22 forwards some of these (a Host with `?` or userinfo, a `"` in the target, a
//! fragment) and refuses the rest; `crates/proxy/tests/strict.rs` sends every vector to both
//! and compares (docs/proxy.md, "Refusals", has the table).

/// Most headers a request may have (pingora's limit too): more is answered 431.
pub const MAX_HEADERS: usize = 256;

/// Why a request is refused before anything is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Malformed or ambiguous (400).
    BadRequest,
    /// A method or transfer coding the proxy does not implement (CONNECT, `gzip`) (501).
    NotImplemented,
    /// Request head over the limit (431).
    HeaderTooLarge,
}

impl Reject {
    /// The status to answer with.
    pub fn status(self) -> u16 {
        match self {
            Reject::BadRequest => 400,
            Reject::NotImplemented => 501,
            Reject::HeaderTooLarge => 431,
        }
    }
}

/// The form of a request target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm {
    /// `/path?query`.
    Origin,
    /// `http://host/path`.
    Absolute,
    /// `host:port` (CONNECT only).
    Authority,
    /// `*` (OPTIONS only).
    Asterisk,
}

/// How a request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the checks learnt about a valid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// The target's form.
    pub form: TargetForm,
    /// The body's framing.
    pub body: BodyFraming,
}

/// Checks the request line of a complete head (the bytes up to the first line end).
fn request_line(line: &[u8]) -> Result<TargetForm, Reject> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        // Extra spaces (a target with a space in it) or missing parts.
        return Err(Reject::BadRequest);
    };
    if method.is_empty() || !method.iter().all(|b| is_tchar(*b)) {
        return Err(Reject::BadRequest);
    }
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
        return Err(Reject::BadRequest);
    }
    if target.is_empty() || !valid_target(target) {
        return Err(Reject::BadRequest);
    }
    let form = if target.first() == Some(&b'/') {
        TargetForm::Origin
    } else if target == b"*" {
        TargetForm::Asterisk
    } else if starts_with_ignore_case(target, b"http://")
        || starts_with_ignore_case(target, b"https://")
    {
        TargetForm::Absolute
    } else {
        TargetForm::Authority
    };
    match (method, form) {
        (b"CONNECT", _) => Err(Reject::NotImplemented),
        (_, TargetForm::Authority) => Err(Reject::BadRequest),
        (m, TargetForm::Asterisk) if m != b"OPTIONS" => Err(Reject::BadRequest),
        _ => Ok(form),
    }
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A target made of RFC 3986 characters (unreserved, sub-delims, `:`, `@`, `/`, `?`, and
/// `%` followed by two hex digits); no fragment (`#` is not part of a request target).
pub fn valid_target(t: &[u8]) -> bool {
    let mut i = 0;
    while i < t.len() {
        let b = t[i];
        if b == b'%' {
            if !(t.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && t.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~:/?@!$&'()*+,;=[]".contains(&b)) {
            return false;
        }
        i += 1;
    }
    true
}

/// A Host value: `uri-host [":" port]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a reg-name of
/// unreserved, sub-delims and `%XX`, or an IP literal in brackets; no userinfo, no path,
/// no spaces. Empty is invalid for `http` (RFC 9110 §4.2.1).
pub fn valid_host(v: &[u8]) -> bool {
    let v = v.trim_ascii();
    if v.is_empty() {
        return false;
    }
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(end) = v.iter().position(|b| *b == b']') else {
            return false;
        };
        let literal = &v[1..end];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|b| b.is_ascii_hexdigit() || b":.".contains(b))
        {
            return false;
        }
        match &v[end + 1..] {
            [] => (&v[..0], None),
            [b':', port @ ..] => (&v[..0], Some(port)),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|b| *b == b':') {
            Some(i) => (&v[..i], Some(&v[i + 1..])),
            None => (v, None),
        }
    };
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.iter().all(u8::is_ascii_digit)) {
        return false;
    }
    if v.first() == Some(&b'[') {
        return true;
    }
    !host.is_empty()
        && valid_target(host)
        && host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(b))
}

/// The authority and the rest (path and query, possibly empty) of the absolute-form target
/// on `line` (a request line): `None` unless the authority is a valid host (RFC 9112
/// §3.2.2; userinfo is not allowed, RFC 9110 §4.2.4).
pub fn absolute(line: &[u8]) -> Option<(&[u8], &[u8])> {
    absolute_target(line.split(|b| *b == b' ').nth(1)?)
}

/// [`absolute`] for a target alone (`http://h:8080/x?q`).
pub fn absolute_target(target: &[u8]) -> Option<(&[u8], &[u8])> {
    let scheme = target.iter().position(|b| *b == b':')?;
    let rest = target[scheme..].strip_prefix(b"://")?;
    let end = rest
        .iter()
        .position(|b| *b == b'/' || *b == b'?')
        .unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    valid_host(authority).then_some((authority, path))
}

/// Parses and checks `raw`, a whole request head (used where no parse is at hand: a request
/// pingora read itself).
pub fn check_raw(raw: &[u8], max_header_bytes: usize) -> Result<Checked, Reject> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(raw) {
        Ok(httparse::Status::Complete(n)) => check(&raw[..n], &req, max_header_bytes),
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            Err(Reject::HeaderTooLarge)
        }
        Err(_) => Err(Reject::BadRequest),
    }
}

/// Checks a complete request head: `head` is the raw bytes up to and including the blank
/// line, `req` httparse's view of it.
pub fn check(
    head: &[u8],
    req: &httparse::Request<'_, '_>,
    max_header_bytes: usize,
) -> Result<Checked, Reject> {
    if head.len() > max_header_bytes {
        return Err(Reject::HeaderTooLarge);
    }
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let form = request_line(&head[..line_end])?;
    let http11 = req.version == Some(1);
    let mut hosts = 0;
    let mut length: Option<u64> = None;
    let mut lengths = 0;
    // Transfer codings of all Transfer-Encoding lines, in order (one list, RFC 9110 §5.3).
    let mut te = false;
    let mut codings = 0;
    let mut chunked = 0;
    let mut last_chunked = false;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !valid_host(h.value) {
                return Err(Reject::BadRequest);
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            let v = h.value.trim_ascii();
            if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
                return Err(Reject::BadRequest);
            }
            length = Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')));
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
            for coding in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if coding.is_empty() {
                    return Err(Reject::BadRequest);
                }
                codings += 1;
                last_chunked = coding.eq_ignore_ascii_case(b"chunked");
                chunked += usize::from(last_chunked);
            }
        }
    }
    if hosts > 1 || (http11 && hosts == 0) || lengths > 1 {
        return Err(Reject::BadRequest);
    }
    if form == TargetForm::Absolute && absolute(&head[..line_end]).is_none() {
        return Err(Reject::BadRequest);
    }
    let body = match (te, length) {
        (false, None | Some(0)) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
        // The length cannot be known: the last coding is not chunked, chunked is applied
        // twice, or Content-Length says something else (RFC 9112 §6.3 items 3-4).
        (true, _) if !last_chunked || chunked > 1 || length.is_some() || !http11 => {
            return Err(Reject::BadRequest)
        }
        (true, _) if codings > 1 => return Err(Reject::NotImplemented),
        (true, _) => BodyFraming::Chunked,
    };
    Ok(Checked { form, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(raw: &str) -> Result<Checked, Reject> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(raw.as_bytes()) {
            Ok(httparse::Status::Complete(n)) => check(&raw.as_bytes()[..n], &req, 65536),
            _ => Err(Reject::BadRequest),
        }
    }

    #[test]
    fn valid_requests_pass() {
        let c = run("GET /a?b=c%20d HTTP/1.1\r\nHost: example.com:8080\r\n\r\n").unwrap();
        assert_eq!((c.form, c.body), (TargetForm::Origin, BodyFraming::None));
        let c = run("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(c.body, BodyFraming::Length(5));
        let c = run("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(c.body, BodyFraming::Chunked);
        assert_eq!(
            run("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").unwrap().form,
            TargetForm::Asterisk
        );
        assert_eq!(
            run("GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n")
                .unwrap()
                .form,
            TargetForm::Absolute
        );
        assert!(
            run("GET / HTTP/1.0\r\n\r\n").is_ok(),
            "HTTP/1.0 may omit Host"
        );
        let c = run("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked \r\n\r\n");
        assert_eq!(c.unwrap().body, BodyFraming::Chunked);
        assert_eq!(
            absolute(b"GET http://h:8080?q HTTP/1.1"),
            Some((&b"h:8080"[..], &b"?q"[..]))
        );
        assert_eq!(
            absolute(b"GET https://h/a/b HTTP/1.1"),
            Some((&b"h"[..], &b"/a/b"[..]))
        );
        assert!(run("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n").is_ok());
        assert!(run("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").is_ok());
    }

    #[test]
    fn each_rule_refuses() {
        let bad = [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost:\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a?b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: u@h\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h:port\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n",
            "GET * HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /a#f HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /a{b} HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /%2 HTTP/1.1\r\nHost: h\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n",
            "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for raw in bad {
            assert_eq!(run(raw), Err(Reject::BadRequest), "{raw:?}");
        }
        for raw in [
            "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(run(raw), Err(Reject::NotImplemented), "{raw:?}");
        }
        // A space or a NUL in the target: httparse may stop early; the line check refuses.
        for line in ["GET /a b HTTP/1.1", "GET /a\0b HTTP/1.1", "GET  / HTTP/1.1"] {
            assert_eq!(
                request_line(line.as_bytes()),
                Err(Reject::BadRequest),
                "{line:?}"
            );
        }
    }

    #[test]
    fn a_head_over_the_limit_is_431() {
        let raw = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(n)) = req.parse(raw.as_bytes()) else {
            panic!()
        };
        assert_eq!(
            check(&raw.as_bytes()[..n], &req, 10),
            Err(Reject::HeaderTooLarge)
        );
    }
}
