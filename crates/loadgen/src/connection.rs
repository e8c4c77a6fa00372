//! One keep-alive HTTP/1.1 client connection over a non-blocking socket, plain or TLS: the
//! pre-serialised request written as-is (resumed when the socket takes only part of it),
//! responses parsed in a reused buffer as they arrive. No allocation per request (over TLS,
//! rustls's own buffers).

use std::io;
use std::time::{Duration, Instant};

use crate::error::ErrorKind;
use crate::parse::ResponseParser;
use crate::socket::{ClientSocket, Received};
use crate::tls::{ClientTls, Handshake, ReadError, TlsSession};

/// Read buffer size: holds a response head (bodies are consumed as they arrive).
const READ_BUF: usize = 16 * 1024;

/// A response read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Completed {
    /// HTTP status code.
    pub status: u16,
    /// The server will close the connection: reconnect before the next request.
    pub close: bool,
    /// When its last byte arrived (kernel timestamp where available).
    pub arrival: Instant,
    /// How long after arriving the load generator read that last byte.
    pub read_delay: Duration,
    /// Whether `arrival` is the kernel's timestamp.
    pub kernel: bool,
    /// Bytes the response took on the wire (head and body).
    pub bytes: usize,
}

/// A connected client with its read buffer and parser.
#[derive(Debug)]
pub(crate) struct Connection {
    pub sock: ClientSocket,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    parser: ResponseParser,
    /// Bytes of the current request written so far.
    written: usize,
    /// Bytes of the current response consumed so far.
    consumed: usize,
    /// The read that brought the newest bytes.
    last: Option<Received>,
    /// TLS: the session (plaintext in `buf`, ciphertext on the socket).
    tls: Option<Box<TlsSession>>,
    /// Requests started on this connection.
    pub requests: u64,
}

impl Connection {
    pub fn new(
        sock: ClientSocket,
        head_request: bool,
        tls: Option<&ClientTls>,
    ) -> Result<Self, ErrorKind> {
        let tls = match tls {
            Some(t) => Some(Box::new(TlsSession::new(t)?)),
            None => None,
        };
        Ok(Connection {
            sock,
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            parser: ResponseParser::new(head_request),
            written: 0,
            consumed: 0,
            last: None,
            tls,
            requests: 0,
        })
    }

    /// Starts a request: `Ok(true)` when all of it was written, `Ok(false)` when the socket
    /// took only part (wait for writability, then [`Connection::write_more`]).
    pub fn start_request(&mut self, request: &[u8]) -> Result<bool, ErrorKind> {
        self.parser.reset();
        self.written = 0;
        self.consumed = 0;
        self.last = None;
        self.requests += 1;
        if let Some(tls) = self.tls.as_mut() {
            tls.queue(request)?;
            self.written = request.len();
        }
        self.write_more(request)
    }

    /// Writes more of the current request; `Ok(true)` once it is all written (over TLS: all
    /// the socket can take now; during a handshake the request follows it from the read path).
    pub fn write_more(&mut self, request: &[u8]) -> Result<bool, ErrorKind> {
        if let Some(tls) = self.tls.as_mut() {
            return tls.flush(&self.sock);
        }
        while self.written < request.len() {
            match self.sock.send(&request[self.written..]) {
                Ok(0) => return Err(ErrorKind::Closed),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ErrorKind::from_io(&e)),
            }
        }
        Ok(true)
    }

    /// Reads what has arrived: `Ok(Some(_))` once the response is complete, `Ok(None)` when
    /// more is to come. Stops reading at the response's end, so it never makes a read that
    /// can only say "nothing yet" after a complete response.
    pub fn read_response(&mut self, cmsg: &mut Vec<u8>) -> Result<Option<Completed>, ErrorKind> {
        loop {
            if self.start < self.end {
                let n = self
                    .parser
                    .advance(&self.buf[self.start..self.end])
                    .map_err(|_| ErrorKind::Parse)?;
                self.start += n;
                self.consumed += n;
                if self.parser.is_done() {
                    if self.start == self.end {
                        self.start = 0;
                        self.end = 0;
                    }
                    return Ok(Some(self.completed()));
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
            let got = match self.tls.as_mut() {
                Some(tls) => {
                    let mut received = None;
                    let r = tls.read(&self.sock, &mut self.buf[self.end..], cmsg, &mut received);
                    if let Some(r) = received {
                        self.last = Some(r);
                    }
                    match r {
                        Ok(n) => Received {
                            n,
                            ..self.last.unwrap_or_else(Received::now)
                        },
                        Err(ReadError::WouldBlock) => return Ok(None),
                        Err(ReadError::Failed(kind)) => return Err(kind),
                    }
                }
                None => match self.sock.recv(&mut self.buf[self.end..], cmsg) {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) => return Err(ErrorKind::from_io(&e)),
                },
            };
            if got.n == 0 {
                if self.parser.reads_until_close() {
                    self.parser.finish_at_eof();
                    return Ok(Some(self.completed()));
                }
                return Err(ErrorKind::Closed);
            }
            self.end += got.n;
            self.last = Some(got);
        }
    }

    /// Whether the peer has closed the connection: an end of stream waiting to be read
    /// (one `recv(MSG_PEEK | MSG_DONTWAIT)`, no data consumed).
    pub fn peer_closed(&self) -> bool {
        self.sock.peer_closed()
    }

    /// Whether bytes of a response have been read but it is not complete.
    pub fn partial(&self) -> bool {
        self.consumed > 0 || self.start < self.end
    }

    /// TLS: the handshake, once, when it has completed.
    pub fn take_handshake(&mut self) -> Option<Handshake> {
        self.tls.as_mut().and_then(|t| t.take_handshake())
    }

    /// Why TLS failed on this connection, if it did.
    pub fn tls_error(&mut self) -> Option<String> {
        self.tls.as_mut().and_then(|t| t.error.take())
    }

    /// Before the socket is dropped by our choice: TLS says close_notify.
    pub fn goodbye(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.close(&self.sock);
        }
    }

    fn completed(&self) -> Completed {
        let last = self.last.unwrap_or_else(Received::now);
        Completed {
            status: self.parser.status(),
            close: self.parser.will_close(),
            arrival: last.arrival,
            read_delay: last.read_delay,
            kernel: last.kernel,
            bytes: self.consumed,
        }
    }
}
