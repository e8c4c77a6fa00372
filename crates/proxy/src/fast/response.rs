//! The upstream's response: its head parsed and rewritten (hop-by-hop headers out, `Date`
//! added when missing, `Connection: close` when the client connection ends), how its body
//! is framed, and a scanner that follows chunked framing over the bytes relayed unchanged.

use crate::headers::{digits, eq, hop_by_hop_name, protected, tokens};
use crate::metrics::ErrorKind;

/// Most headers an upstream response may have (pingora's limit).
const MAX_RESPONSE_HEADERS: usize = 256;
/// Largest response head read from an upstream (pingora's limit).
pub(crate) const MAX_RESPONSE_HEAD: usize = 1_048_575;

/// How an upstream response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// The rewritten response head and what follows it.
pub(crate) struct ResponseHead {
    pub status: u16,
    /// Bytes of the upstream buffer the head used.
    pub len: usize,
    pub framing: Framing,
    /// The upstream connection can be reused after the body.
    pub reusable: bool,
    /// An interim (1xx) response: forward it and read the next head.
    pub interim: bool,
}

pub(crate) fn parse_response(
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
    // Content-Length lines, and whether one was a list: either way it is sent on as one.
    let mut length_lines = 0;
    let mut length_list = false;
    for h in resp.headers.iter() {
        has_date |= eq(h.name, "date");
        if eq(h.name, "content-length") {
            // `Content-Length: 4, 4` (or two equal lines) is a length of 4 (RFC 9112 §6.3
            // item 5: a list of identical values is processed as one); unequal values are
            // a broken upstream.
            length_lines += 1;
            for (i, v) in tokens(h.value).enumerate() {
                length_list |= i > 0;
                match digits(v) {
                    Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                    _ => return Err(ErrorKind::Protocol),
                }
            }
            if length.is_none() {
                return Err(ErrorKind::Protocol);
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
    // `4, 4` or two lines of 4 go on as one `Content-Length: 4`.
    let one_length = (!drop_length && (length_list || length_lines > 1)).then_some(length);
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
        if hop_by_hop_name(h.name)
            || ((drop_length || one_length.is_some()) && eq(h.name, "content-length"))
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
    if let Some(Some(n)) = one_length {
        out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
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
pub(crate) struct ChunkScan {
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
    pub fn feed(&mut self, b: &[u8]) -> Result<usize, ()> {
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

    pub fn done(&self) -> bool {
        self.state == Chunk::Done
    }
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

        let h = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\n",
            false,
            false,
            &mut out,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            h.framing,
            Framing::Length(4),
            "an all-equal list is its value"
        );
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("\r\nContent-Length: 4\r\n"),
            "sent on as one: {text}"
        );
        assert!(!text.contains("4, 4"), "{text}");
        for bad in [&b"4, 5"[..], b"x", b""] {
            let mut raw = b"HTTP/1.1 200 OK\r\nContent-Length: ".to_vec();
            raw.extend_from_slice(bad);
            raw.extend_from_slice(b"\r\n\r\n");
            assert!(
                parse_response(&raw, false, false, &mut out).is_err(),
                "{bad:?}"
            );
        }
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
