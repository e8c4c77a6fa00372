//! The answers the proxy gives itself, for both paths: its health path, refusals (400,
//! 431, 501, 503) and upstream failures (502, 504). One place, so a refusal reads the same
//! whichever path made it.

/// The body of an answer with `status`.
pub fn body_for(status: u16) -> &'static [u8] {
    match status {
        400 => b"bad request\n",
        408 => b"request timeout: the request body did not arrive in time\n",
        431 => b"request header fields too large\n",
        501 => b"not implemented: this proxy does not tunnel (CONNECT) or decode transfer codings other than chunked\n",
        502 => b"bad gateway: the upstream could not be reached or failed\n",
        503 => b"service unavailable: too many connections, try again\n",
        504 => b"gateway timeout: the upstream did not answer in time\n",
        _ => b"error\n",
    }
}

/// The reason phrase of a status the proxy answers with.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// A whole error answer, closing the connection: `HTTP/1.1 <status> …` with a plain-text
/// body, `Cache-Control: private, no-store` and `Connection: close`.
pub fn error(status: u16) -> Vec<u8> {
    let body = body_for(status);
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nCache-Control: private, no-store\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The health path's answer (`200 ok`), without a body for HEAD.
pub fn health(close: bool, head: bool) -> &'static [u8] {
    let resp: &'static [u8] = if close {
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nok\n"
    } else {
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"
    };
    if head {
        &resp[..resp.len() - 3]
    } else {
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_framed() {
        let e = String::from_utf8(error(400)).unwrap();
        assert_eq!(
            e,
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nCache-Control: private, no-store\r\nConnection: close\r\n\r\nbad request\n"
        );
        assert!(health(false, true).ends_with(b"\r\n\r\n"));
        assert!(health(true, false).ends_with(b"close\r\n\r\nok\n"));
    }
}
