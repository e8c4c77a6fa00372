//! Incremental HTTP/1.x response parser over a caller-owned buffer.
//!
//! [`ResponseParser::advance`] is fed whatever bytes have arrived; it consumes what it can
//! (the head once complete, body bytes as they come, chunk framing) and says when the response
//! is complete. Body bytes are consumed, never stored, so a small read buffer suffices
//! whatever the body size. No allocation per response.

/// A malformed response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The head is not valid HTTP/1.x.
    #[error("invalid response head")]
    Head,
    /// `Content-Length` is not a number, or is given twice with different values.
    #[error("invalid Content-Length")]
    ContentLength,
    /// Chunked framing is broken.
    #[error("invalid chunked body")]
    Chunk,
}

/// Maximum number of response headers accepted.
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Fixed { remaining: u64 },
    ChunkSize,
    ChunkData { remaining: u64 },
    ChunkDataEnd,
    Trailers,
    UntilClose,
    Done,
}

/// Parses one response at a time; [`reset`](Self::reset) before each request.
#[derive(Debug, Clone)]
pub struct ResponseParser {
    state: State,
    status: u16,
    close: bool,
    head_request: bool,
}

impl ResponseParser {
    /// A parser for responses to `HEAD` (`head_request`, never a body) or other methods.
    pub fn new(head_request: bool) -> Self {
        ResponseParser {
            state: State::Head,
            status: 0,
            close: false,
            head_request,
        }
    }

    /// Prepares for the next response.
    pub fn reset(&mut self) {
        self.state = State::Head;
        self.status = 0;
        self.close = false;
    }

    /// Status code of the response (valid once the head is parsed).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the server will close the connection after this response
    /// (`Connection: close`, HTTP/1.0 without keep-alive, or a body delimited by close).
    pub fn will_close(&self) -> bool {
        self.close
    }

    /// Whether the response is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the body runs until the server closes the connection (no length, not chunked).
    pub fn reads_until_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// Marks a read-until-close body as complete (the server closed the connection).
    pub fn finish_at_eof(&mut self) {
        if self.state == State::UntilClose {
            self.state = State::Done;
        }
    }

    /// Consumes bytes from the front of `data`; returns how many. The caller drops them from
    /// its buffer, appends newly read bytes and calls again until [`is_done`](Self::is_done).
    /// Returning fewer than `data.len()` without being done means "need more bytes".
    pub fn advance(&mut self, data: &[u8]) -> Result<usize, ParseError> {
        let mut pos = 0;
        loop {
            let rest = &data[pos..];
            match self.state {
                State::Done => return Ok(pos),
                State::Head => {
                    let Some(n) = self.parse_head(rest)? else {
                        return Ok(pos);
                    };
                    pos += n;
                }
                State::Fixed { remaining } | State::ChunkData { remaining } => {
                    if rest.is_empty() {
                        return Ok(pos);
                    }
                    let take = remaining.min(rest.len() as u64);
                    pos += take as usize;
                    let left = remaining - take;
                    self.state = match (self.state, left) {
                        (State::Fixed { .. }, 0) => State::Done,
                        (State::Fixed { .. }, n) => State::Fixed { remaining: n },
                        (_, 0) => State::ChunkDataEnd,
                        (_, n) => State::ChunkData { remaining: n },
                    };
                }
                State::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        pos += n;
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::ChunkData { remaining: size }
                        };
                    }
                    Ok(httparse::Status::Partial) => return Ok(pos),
                    Err(_) => return Err(ParseError::Chunk),
                },
                State::ChunkDataEnd => {
                    if rest.len() < 2 {
                        return Ok(pos);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(ParseError::Chunk);
                    }
                    pos += 2;
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    // Trailer lines until an empty line.
                    let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
                        return Ok(pos);
                    };
                    pos += eol + 2;
                    if eol == 0 {
                        self.state = State::Done;
                    }
                }
                State::UntilClose => {
                    pos += rest.len();
                    return Ok(pos);
                }
            }
        }
    }

    /// Parses the head if complete; returns the bytes it took.
    fn parse_head(&mut self, data: &[u8]) -> Result<Option<usize>, ParseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(data) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ParseError::Head),
        };
        let status = resp.code.ok_or(ParseError::Head)?;
        let http10 = resp.version == Some(0);
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut close = http10;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let v = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or(ParseError::ContentLength)?;
                if content_length.is_some_and(|c| c != v) {
                    return Err(ParseError::ContentLength);
                }
                content_length = Some(v);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = h
                    .value
                    .split(|b| *b == b',')
                    .next_back()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|b| *b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                        close = false;
                    }
                }
            }
        }
        if (100..200).contains(&status) && status != 101 {
            // Interim response (100 Continue, 103 Early Hints): the real one follows.
            return Ok(Some(n));
        }
        self.status = status;
        self.close = close;
        self.state = if self.head_request || status == 204 || status == 304 || status == 101 {
            State::Done
        } else if chunked {
            State::ChunkSize
        } else if let Some(len) = content_length {
            if len == 0 {
                State::Done
            } else {
                State::Fixed { remaining: len }
            }
        } else {
            self.close = true;
            State::UntilClose
        };
        Ok(Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` to a parser in pieces of `step` bytes through a small buffer, the way
    /// the connection does; returns (status, close, bytes left over).
    fn feed(wire: &[u8], step: usize) -> Result<(u16, bool, usize), ParseError> {
        let mut p = ResponseParser::new(false);
        let mut buf: Vec<u8> = Vec::new();
        let mut fed = 0;
        while !p.is_done() {
            assert!(fed < wire.len() || !buf.is_empty(), "ran out of input");
            let end = (fed + step).min(wire.len());
            buf.extend_from_slice(&wire[fed..end]);
            fed = end;
            let n = p.advance(&buf)?;
            buf.drain(..n);
            if fed == wire.len() && !p.is_done() && n == 0 {
                panic!("stuck with {} bytes buffered", buf.len());
            }
        }
        Ok((p.status(), p.will_close(), buf.len() + wire.len() - fed))
    }

    #[test]
    fn content_length_split_across_reads() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX: y\r\n\r\nhello world";
        for step in 1..wire.len() {
            assert_eq!(feed(wire, step).unwrap(), (200, false, 0), "step {step}");
        }
    }

    #[test]
    fn chunked_split_across_reads() {
        let wire = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for step in 1..wire.len() {
            assert_eq!(feed(wire, step).unwrap(), (404, false, 0), "step {step}");
        }
        let no_trailer =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n";
        for step in 1..no_trailer.len() {
            assert_eq!(
                feed(no_trailer, step).unwrap(),
                (200, false, 0),
                "step {step}"
            );
        }
    }

    #[test]
    fn leaves_following_bytes_alone() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1";
        let mut p = ResponseParser::new(false);
        assert_eq!(p.advance(wire).unwrap(), wire.len() - 8);
        assert!(p.is_done());
    }

    #[test]
    fn connection_close_and_http10() {
        let wire = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(feed(wire, 7).unwrap(), (200, true, 0));
        let wire = b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx";
        assert_eq!(feed(wire, 100).unwrap(), (200, true, 0));
        let wire = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx";
        assert_eq!(feed(wire, 100).unwrap(), (200, false, 0));
    }

    #[test]
    fn no_body_statuses_and_head() {
        let wire = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(feed(wire, 3).unwrap(), (204, false, 0));
        let mut p = ResponseParser::new(true);
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
        assert_eq!(p.advance(wire).unwrap(), wire.len());
        assert!(p.is_done());
    }

    #[test]
    fn interim_100_continue_is_skipped() {
        let wire =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(feed(wire, 5).unwrap(), (201, false, 0));
    }

    #[test]
    fn body_until_close() {
        let mut p = ResponseParser::new(false);
        let wire = b"HTTP/1.1 200 OK\r\n\r\nabc";
        assert_eq!(p.advance(wire).unwrap(), wire.len());
        assert!(p.reads_until_close() && !p.is_done() && p.will_close());
        p.finish_at_eof();
        assert!(p.is_done());
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(feed(b"SSH-2.0-OpenSSH\r\n\r\n", 100), Err(ParseError::Head));
        assert_eq!(
            feed(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 100),
            Err(ParseError::ContentLength)
        );
        assert_eq!(
            feed(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                100
            ),
            Err(ParseError::Chunk)
        );
        assert_eq!(
            feed(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
                100
            ),
            Err(ParseError::Chunk)
        );
    }
}
