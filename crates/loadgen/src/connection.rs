//! One keep-alive HTTP/1.1 client connection: raw TCP, the pre-serialised request written
//! as-is, responses parsed in a reused buffer. No allocation per request.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::ErrorKind;
use crate::parse::ResponseParser;

/// Read buffer size: holds a response head (bodies are consumed as they arrive).
const READ_BUF: usize = 16 * 1024;

/// What a completed exchange returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The server will close the connection: reconnect before the next request.
    pub close: bool,
}

/// A connected client with its read buffer and parser.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    parser: ResponseParser,
}

impl Connection {
    /// Connects to `addr` within `timeout`, with `TCP_NODELAY` set.
    pub async fn connect(
        addr: SocketAddr,
        timeout: Duration,
        head_request: bool,
    ) -> Result<Self, std::io::Error> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(r) => r?,
            Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
        };
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            parser: ResponseParser::new(head_request),
        })
    }

    /// Writes `request` and reads one complete response.
    ///
    /// Not cancel-safe in the sense of keeping the connection usable: if the future is
    /// dropped (timeout), drop the connection too.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<Response, ErrorKind> {
        self.stream
            .write_all(request)
            .await
            .map_err(|e| ErrorKind::from_io(&e))?;
        self.parser.reset();
        loop {
            if self.start < self.end {
                let n = self
                    .parser
                    .advance(&self.buf[self.start..self.end])
                    .map_err(|_| ErrorKind::Parse)?;
                self.start += n;
                if self.parser.is_done() {
                    if self.start == self.end {
                        self.start = 0;
                        self.end = 0;
                    }
                    return Ok(self.response());
                }
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            } else if self.end == self.buf.len() {
                if self.start == 0 {
                    // A head larger than the buffer.
                    return Err(ErrorKind::Parse);
                }
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = self
                .stream
                .read(&mut self.buf[self.end..])
                .await
                .map_err(|e| ErrorKind::from_io(&e))?;
            if n == 0 {
                if self.parser.reads_until_close() {
                    self.parser.finish_at_eof();
                    return Ok(self.response());
                }
                return Err(ErrorKind::Closed);
            }
            self.end += n;
        }
    }

    fn response(&self) -> Response {
        Response {
            status: self.parser.status(),
            close: self.parser.will_close(),
        }
    }
}
