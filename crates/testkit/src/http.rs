//! A small blocking HTTP/1.1 client over `std::net::TcpStream`, for tests: exact bytes in,
//! a parsed [`Response`] out, with a [`ReadError`] that says how a response ended when it
//! did not end well (closed before a byte, or cut short: what a client must detect).
//!
//! - [`get`], [`request`]: one request on a new connection with `Connection: close`;
//!   panic on a connection or parse error;
//! - [`try_get`], [`send`]: the same, returning the [`ReadError`] (a proxy test expects some);
//! - [`Conn`]: one keep-alive connection: send bytes, read responses one at a time, see it
//!   close;
//! - [`parse_response`]: one response from bytes already read (see [`crate::tcp::exchange`]).
//!
//! Reads and writes time out after [`TIMEOUT`] (scaled by the patience setting).

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::patience::scaled;

/// How long a read or a write waits for the server (before [`scaled`]).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Every header line, in a case-insensitive map (repeated names kept).
    pub headers: HeaderMap,
    /// The body, de-chunked; empty for HEAD, 1xx, 204 and 304.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name`, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The body as text (panics if it is not UTF-8: a test wanted text).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }
}

/// How reading a response ended, when it did not end with a whole response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The connection closed (or was reset) before a single byte of response.
    ClosedBeforeResponse,
    /// A response started but its head or body was cut short.
    Truncated {
        /// The status of the response that was cut.
        status: u16,
        /// Body bytes received before the cut.
        got: usize,
    },
    /// Anything else: a timeout, an I/O error, bytes that are not HTTP/1.
    Other(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::ClosedBeforeResponse => f.write_str("closed before any response"),
            ReadError::Truncated { status, got } => {
                write!(f, "a {status} response cut short after {got} body bytes")
            }
            ReadError::Other(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ReadError {}

/// `GET path` with `Connection: close`. Panics on a connection or parse error.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"")
}

/// `GET path` with `Connection: close`, returning how the response ended.
pub fn try_get(addr: SocketAddr, path: &str) -> Result<Response, ReadError> {
    send(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Any request with `Connection: close`; `headers` come after `Host`, and a
/// `Content-Length` is added when `body` is not empty (or the method is POST or PUT) and
/// `headers` name no length or `Transfer-Encoding` (send chunked bodies already encoded).
/// Panics on a connection or parse error; a `HEAD` answer has an empty body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
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
    let mut conn = Conn::open(addr);
    // A server may answer early (413) and close: what it sent still counts.
    let _ = conn.try_send(&bytes);
    let read = if method == "HEAD" {
        conn.response_to_head()
    } else {
        conn.response()
    };
    read.unwrap_or_else(|e| panic!("{method} {path} to {addr}: {e}"))
}

/// Writes `bytes` exactly, on a new connection, and reads one response.
pub fn send(addr: SocketAddr, bytes: &[u8]) -> Result<Response, ReadError> {
    let mut conn = Conn::open(addr);
    conn.try_send(bytes)
        .map_err(|e| ReadError::Other(format!("writing the request: {e}")))?;
    conn.response()
}

/// One keep-alive client connection: a buffered reader and a writer on the same socket.
#[derive(Debug)]
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    /// Connects (no Nagle delay; reads and writes time out after [`TIMEOUT`], scaled).
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = crate::tcp::connect(addr);
        let writer = stream.try_clone().expect("clone the client socket");
        Conn {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// The socket (for [`crate::tcp`]'s view of it, or to set a timeout).
    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    /// Writes `bytes` exactly; panics if the connection is gone.
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes)
            .unwrap_or_else(|e| panic!("writing to {:?}: {e}", self.writer.peer_addr()));
    }

    /// Writes `bytes` exactly.
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// `GET path` (keep-alive) and its response; panics on any error.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes());
        self.response()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Reads the next response (Content-Length, chunked, or until close).
    pub fn response(&mut self) -> Result<Response, ReadError> {
        read_response(&mut self.reader, false)
    }

    /// Reads the next response to a HEAD request: a head, never a body.
    pub fn response_to_head(&mut self) -> Result<Response, ReadError> {
        read_response(&mut self.reader, true)
    }

    /// Whether the server closes the connection (EOF or reset) within `within`, sending no
    /// more bytes. Leaves the read timeout at `within`.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        self.reader
            .get_ref()
            .set_read_timeout(Some(within))
            .expect("set_read_timeout");
        let mut b = [0u8; 64];
        match self.reader.read(&mut b) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }
}

/// Parses one complete response from `raw` (Content-Length, chunked, or until the end of
/// `raw`); `head_request`: the response to a HEAD, which has no body.
pub fn parse_response(raw: &[u8], head_request: bool) -> Result<Response, ReadError> {
    read_response(&mut &raw[..], head_request)
}

fn io_error(e: std::io::Error) -> ReadError {
    ReadError::Other(e.to_string())
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Reads one response from `r`.
pub fn read_response(r: &mut impl BufRead, head_request: bool) -> Result<Response, ReadError> {
    let mut line = Vec::new();
    match r.read_until(b'\n', &mut line) {
        Ok(0) => return Err(ReadError::ClosedBeforeResponse),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            return Err(ReadError::ClosedBeforeResponse)
        }
        Err(e) => return Err(io_error(e)),
        Ok(_) => {}
    }
    let status_line = String::from_utf8_lossy(&line);
    let status_line = status_line.trim_end();
    let mut parts = status_line.splitn(3, ' ');
    let status: u16 = match (parts.next(), parts.next().and_then(|s| s.parse().ok())) {
        (Some(v), Some(s)) if v.starts_with("HTTP/1.") => s,
        _ => return Err(ReadError::Other(format!("bad status line {status_line:?}"))),
    };
    let mut headers = HeaderMap::new();
    loop {
        let mut h = Vec::new();
        match r.read_until(b'\n', &mut h) {
            Err(e) if is_timeout(&e) => return Err(io_error(e)),
            Ok(0) | Err(_) => return Err(ReadError::Truncated { status, got: 0 }),
            Ok(_) => {}
        }
        if !h.ends_with(b"\n") {
            return Err(ReadError::Truncated { status, got: 0 });
        }
        let h = h.trim_ascii_end();
        if h.is_empty() {
            break;
        }
        let colon = h
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| ReadError::Other(format!("bad header {:?}", bstr(h))))?;
        let name = HeaderName::from_bytes(h[..colon].trim_ascii())
            .map_err(|e| ReadError::Other(format!("header name {:?}: {e}", bstr(h))))?;
        let value = HeaderValue::from_bytes(h[colon + 1..].trim_ascii())
            .map_err(|e| ReadError::Other(format!("header value {:?}: {e}", bstr(h))))?;
        headers.append(name, value);
    }
    let mut body = Vec::new();
    let text = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        // No body.
    } else if text("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let mut size = String::new();
            match r.read_line(&mut size) {
                Ok(0) | Err(_) => {
                    return Err(ReadError::Truncated {
                        status,
                        got: body.len(),
                    })
                }
                Ok(_) => {}
            }
            let digits = size.split(';').next().unwrap_or("").trim();
            let n = usize::from_str_radix(digits, 16)
                .map_err(|_| ReadError::Other(format!("bad chunk size {size:?}")))?;
            if n == 0 {
                // Trailers, then the blank line.
                loop {
                    let mut t = String::new();
                    match r.read_line(&mut t) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if t.trim_end().is_empty() => break,
                        Ok(_) => {}
                    }
                }
                break;
            }
            let mut chunk = vec![0u8; n + 2];
            if r.read_exact(&mut chunk).is_err() {
                return Err(ReadError::Truncated {
                    status,
                    got: body.len(),
                });
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(cl) = text("content-length") {
        let n: usize = cl
            .parse()
            .map_err(|_| ReadError::Other(format!("bad content-length {cl:?}")))?;
        body.resize(n, 0);
        let mut got = 0;
        while got < n {
            match r.read(&mut body[got..]) {
                Ok(0) => return Err(ReadError::Truncated { status, got }),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(ReadError::Truncated { status, got }),
                Ok(k) => got += k,
            }
        }
    } else {
        // Close-delimited: everything until the end (a reset after the body still counts).
        let mut buf = [0u8; 16 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => body.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => return Err(io_error(e)),
            }
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn bstr(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Sets both socket timeouts to [`TIMEOUT`], scaled.
pub(crate) fn set_timeouts(s: &TcpStream) {
    let t = Some(scaled(TIMEOUT));
    s.set_read_timeout(t).expect("set_read_timeout");
    s.set_write_timeout(t).expect("set_write_timeout");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_chunked_and_head() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx: y\r\nx: z\r\n\r\nhello",
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(r.header("X"), Some("y"));
        assert_eq!(r.header_all("x"), ["y", "z"]);
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true).unwrap();
        assert!(r.body.is_empty());
        let r = parse_response(b"HTTP/1.1 200 OK\r\n\r\nuntil close", false).unwrap();
        assert_eq!(r.text(), "until close");
    }

    #[test]
    fn says_how_a_response_ended_badly() {
        assert_eq!(
            parse_response(b"", false).unwrap_err(),
            ReadError::ClosedBeforeResponse
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel", false).unwrap_err(),
            ReadError::Truncated {
                status: 200,
                got: 3
            }
        );
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhe",
                false
            ),
            Err(ReadError::Truncated { status: 200, .. })
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-le", false),
            Err(ReadError::Truncated { .. })
        ));
        assert!(matches!(
            parse_response(b"garbage\r\n\r\n", false),
            Err(ReadError::Other(_))
        ));
    }
}
