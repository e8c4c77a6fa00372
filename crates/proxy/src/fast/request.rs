//! The upstream request: the client's head, already parsed and checked by the dispatcher,
//! rewritten byte for byte into one buffer (hop-by-hop headers and the ones `Connection`
//! names out; `X-Forwarded-*` and `X-Request-Id` in). The body follows it as it arrives.
//!
//! An absolute-form target (`GET http://h/x`) is sent in origin form (`GET /x`), the form
//! an origin server expects (RFC 9112 §3.2.1), with `Host` replaced by the target's
//! authority (§3.2.2: the received Host is ignored), as NGINX does.

use crate::check::{self, BodyFraming, Checked, TargetForm};
use crate::config::ForwardedPolicy;
use crate::headers::{eq, hop_by_hop_name, protected, tokens, RequestIds};

/// Most `Connection` tokens a fast-path request may name (more: pingora's path).
const MAX_CONN_TOKENS: usize = 8;

/// A request the fast path forwards (its upstream head is in the output buffer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    /// Bytes of the client buffer the head used.
    pub head_len: usize,
    /// How its body is framed.
    pub body: BodyFraming,
    /// The client asked to close after the response.
    pub close: bool,
    /// `HEAD`: the response has no body whatever its headers say.
    pub head: bool,
    /// Safe to send again on a fresh connection.
    pub idempotent: bool,
}

fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

/// Writes the upstream head of `req` (checked: `checked`, `head_len` bytes; `line` its
/// request line) into `out`, or says it is not a fast-path request (`None`: HTTP/1.0,
/// `Expect`, an upgrade, more `Connection` options than the fast path tracks): pingora's
/// path takes those.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
pub(crate) fn prepare(
    req: &httparse::Request<'_, '_>,
    line: &[u8],
    head_len: usize,
    checked: Checked,
    forwarded_policy: ForwardedPolicy,
    ids: &RequestIds,
    client_ip: &[u8],
    https: bool,
    out: &mut Vec<u8>,
) -> Option<Request> {
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return None;
    };
    if req.version != Some(1) {
        return None;
    }
    // Absolute form: the authority replaces Host, the path goes on the request line.
    let (target, authority) = match checked.form {
        TargetForm::Absolute => {
            let (authority, rest) = check::absolute(line)?;
            (rest, Some(authority))
        }
        _ => (path.as_bytes(), None),
    };
    // First pass: connection options and what is there.
    let mut close = false;
    let mut named = [&b""[..]; MAX_CONN_TOKENS];
    let mut n_named = 0;
    let mut has_id = false;
    let mut host = None;
    let mut prior_for = 0;
    for h in req.headers.iter() {
        let name = h.name;
        if eq(name, "expect") {
            return None;
        } else if eq(name, "connection") {
            for t in tokens(h.value) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"upgrade") || n_named == MAX_CONN_TOKENS {
                    return None;
                } else if !t.eq_ignore_ascii_case(b"keep-alive") {
                    named[n_named] = t;
                    n_named += 1;
                }
            }
        } else if eq(name, "upgrade") {
            return None;
        } else if eq(name, "host") {
            host = Some(authority.unwrap_or(h.value));
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

    // Second pass: the upstream head.
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    if !target.starts_with(b"/") && authority.is_some() {
        out.push(b'/');
    }
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let forwarded = forwarded_policy != ForwardedPolicy::Off;
    for h in req.headers.iter() {
        let name = h.name;
        if hop_by_hop_name(name)
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
        match authority {
            Some(a) if eq(name, "host") => out.extend_from_slice(a),
            _ => out.extend_from_slice(h.value),
        }
        out.extend_from_slice(b"\r\n");
    }
    if forwarded {
        out.extend_from_slice(b"X-Forwarded-For: ");
        if forwarded_policy == ForwardedPolicy::Append && prior_for > 0 {
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
        out.extend_from_slice(if https {
            b"\r\nX-Forwarded-Proto: https\r\n"
        } else {
            b"\r\nX-Forwarded-Proto: http\r\n"
        });
        if let Some(host) = host {
            out.extend_from_slice(b"X-Forwarded-Host: ");
            out.extend_from_slice(host);
            out.extend_from_slice(b"\r\n");
        }
    }
    if !has_id {
        out.extend_from_slice(b"X-Request-Id: ");
        ids.write(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Some(Request {
        head_len,
        body: checked.body,
        close,
        head: method == "HEAD",
        idempotent: is_idempotent(method),
    })
}
