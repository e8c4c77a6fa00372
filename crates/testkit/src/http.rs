//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream`, enough for tests: every
//! request says `Connection: close`, the whole answer is read until the server closes.
//! Usable from sync tests and (briefly) from async ones.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

/// How long a test waits for a server before giving up (reads and writes).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// `GET path` → `(status, headers, body)`. Panics on a connection or parse error.
pub fn get(addr: SocketAddr, path: &str) -> (u16, HeaderMap, Vec<u8>) {
    request(addr, "GET", path, &[], b"")
}

/// Any request; `headers` are added after `Host` and `Connection: close`, and a
/// `Content-Length` is added when `body` is not empty and `headers` name no length or
/// `Transfer-Encoding` (send chunked bodies already encoded). Panics on a connection or
/// parse error; a `HEAD` answer has an empty body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, HeaderMap, Vec<u8>) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let framed = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !framed && (!body.is_empty() || method == "POST" || method == "PUT") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let raw = send_raw(addr, &bytes);
    parse_response(&raw, method == "HEAD")
        .unwrap_or_else(|e| panic!("{method} {path}: {e}: {:?}", String::from_utf8_lossy(&raw)))
}

/// Writes `bytes` to a new connection and returns everything the server sends until it
/// closes the connection (or [`TIMEOUT`] passes with nothing new). Put `Connection: close`
/// in the last request, or the call waits for the timeout.
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("set_read_timeout");
    stream
        .set_write_timeout(Some(TIMEOUT))
        .expect("set_write_timeout");
    // A server may answer early (413) and close: what it sent still counts.
    let _ = stream.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Reset after the answer (unread request body) or timeout: keep what arrived.
            Err(_) => break,
        }
    }
    out
}

/// Parses one complete HTTP/1.1 response (`Content-Length`, chunked, or until close).
pub fn parse_response(raw: &[u8], head_request: bool) -> Result<(u16, HeaderMap, Vec<u8>), String> {
    let end = find(raw, b"\r\n\r\n").ok_or("no end of response head")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "response head is not UTF-8")?;
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header {line:?}"))?;
        let name =
            HeaderName::from_bytes(k.trim().as_bytes()).map_err(|e| format!("{k:?}: {e}"))?;
        let value = HeaderValue::from_str(v.trim()).map_err(|e| format!("{v:?}: {e}"))?;
        headers.append(name, value);
    }
    if head_request || status == 204 || status == 304 || status < 200 {
        return Ok((status, headers, rest.to_vec()));
    }
    let chunked = headers
        .get("transfer-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = headers.get("content-length") {
        let len: usize = len
            .to_str()
            .ok()
            .and_then(|l| l.parse().ok())
            .ok_or("bad content-length")?;
        if rest.len() < len {
            return Err(format!("body cut short: {} of {len} bytes", rest.len()));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, headers, body))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(data, b"\r\n").ok_or("chunk size line not ended")?;
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("chunk cut short".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_chunked_and_head() {
        let (s, h, b) = parse_response(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx: y\r\n\r\nhello",
            false,
        )
        .unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"hello"[..]));
        assert_eq!(h.get("x").unwrap(), "y");
        let (_, _, b) = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(b, b"abcde");
        let (_, _, b) =
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true).unwrap();
        assert!(b.is_empty());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel", false).is_err());
        assert!(parse_response(b"garbage", false).is_err());
    }
}
