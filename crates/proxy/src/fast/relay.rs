//! Forwarding one request on the fast path: the head and the body bytes already read in one
//! write, the rest of the body as it arrives (by length or chunk framing, with the client's
//! read timeout, never buffered whole), then the response relayed back as it arrives.
//!
//! While it waits for the upstream, the relay also watches the client: bytes it sends are
//! kept for the next request (pipelining is not an abort), but an end of stream or a reset
//! means the client has gone, and the upstream connection is closed at once (not pooled),
//! so an abandoned request does not hold an upstream connection or the upstream's work.

use std::io;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::request::Request;
use super::response::{parse_response, ChunkScan, Framing, MAX_RESPONSE_HEAD};
use super::stream::Stream;
use super::Fast;
use crate::answers;
use crate::buffers;
use crate::check::BodyFraming;
use crate::metrics::{ErrorKind, Held, Protocol};
use crate::server::ClientLimits;

/// Most bytes of a client's next (pipelined) requests kept while a response is pending.
const MAX_PIPELINED: usize = 64 * 1024;
/// The status recorded for a request whose client went away (NGINX's 499).
pub(crate) const CLIENT_GONE: u16 = 499;

/// One client connection's buffers and identity.
pub(crate) struct Conn {
    pub client_ip: Box<[u8]>,
    /// What the client speaks (plain or over TLS), for metrics and `X-Forwarded-Proto`.
    pub protocol: Protocol,
    /// Client bytes read and not yet used (the next request's, once a request is done).
    pub buf: Vec<u8>,
    /// The upstream request head, then the response head.
    pub out: Vec<u8>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        buffers::give_back(&mut self.buf);
        buffers::give_back(&mut self.out);
    }
}

/// What the fast path needs of a client stream (plain TCP or TLS).
pub(crate) trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> ClientIo for S {}

/// Writes `bytes` to the client within its write timeout.
pub(crate) async fn write_client<S: ClientIo>(
    io: &mut S,
    bytes: &[u8],
    limits: ClientLimits,
) -> bool {
    matches!(
        tokio::time::timeout(limits.write, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await,
        Ok(Ok(()))
    )
}

/// Writes `a` then `b` to the upstream as one vectored write where the kernel takes it all
/// (the request head and the body bytes that came with it, without copying them together).
async fn write_both(up: &mut Stream, a: &[u8], b: &[u8]) -> io::Result<()> {
    let (mut a, mut b) = (a, b);
    while !a.is_empty() {
        let n = up
            .write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n < a.len() {
            a = &a[n..];
        } else {
            b = &b[n - a.len()..];
            a = &[];
        }
    }
    up.write_all(b).await
}

/// Why forwarding one request failed.
enum Failure {
    /// Nothing reached the client: answer with this status.
    Answer(u16),
    /// Part of the response is out (its status), or the client is gone: close.
    Close(u16),
}

/// What one attempt on one upstream connection gave.
enum Exchange {
    /// Response relayed: status, upstream time to first byte, client connection reusable.
    Done(u16, Option<f64>, bool),
    /// A pooled connection turned out dead before any response byte, for a request that
    /// can be sent again (idempotent, its body all in the first write).
    Stale,
    /// Failed (the upstream error kind to count, if any).
    Failed(Option<ErrorKind>, Failure),
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn upstream_failure(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Reset,
    }
}

/// What the client did while a response was awaited.
enum Client {
    /// It sent bytes (kept in `conn.buf`).
    Sent,
    /// It closed or reset the connection.
    Gone,
}

/// Reads what the client sends while it waits (pipelined bytes are kept).
async fn watch_client<S: ClientIo>(io: &mut S, buf: &mut Vec<u8>) -> Client {
    match buffers::read_into(io, buf).await {
        Ok(0) | Err(_) => Client::Gone,
        Ok(_) => Client::Sent,
    }
}

/// Forwards `request` (its head in `conn.out`, its head and first body bytes at the start
/// of `conn.buf`) and relays the response; `true` when the client connection can serve
/// another request. `conn.buf` then starts with the next request's bytes.
pub(crate) async fn forward<S: ClientIo>(
    fast: &Fast,
    conn: &mut Conn,
    io: &mut S,
    request: Request,
    close: bool,
    limits: ClientLimits,
    start: Instant,
) -> bool {
    let m = &fast.metrics;
    let n = fast.pools.len();
    let mut i = fast.picker.pick(0);
    let mut tried = 0;
    let mut fresh_only = false;
    // The relay buffer, taken only when a body has to be relayed in more than one read.
    let mut relay: Option<Box<[u8]>> = None;
    let outcome = loop {
        let pooled = if fresh_only {
            None
        } else {
            fast.pools[i].take(fast.upstream_idle)
        };
        let reused = pooled.is_some();
        let up = match pooled {
            Some(s) => s,
            None => match fast.connect(i).await {
                Ok(s) => s,
                Err(kind) => {
                    m.upstream_error(kind);
                    tried += 1;
                    if tried < n {
                        // With several upstreams, try the next one (each at most once).
                        i = (i + 1) % n;
                        fresh_only = false;
                        continue;
                    }
                    break Err(Failure::Answer(if kind == ErrorKind::Timeout {
                        504
                    } else {
                        502
                    }));
                }
            },
        };
        m.upstream_connection(reused);
        let active = Held::new(&m.upstream_active);
        let r = exchange(
            fast, conn, io, &mut relay, up, reused, i, request, close, limits,
        )
        .await;
        drop(active);
        match r {
            Exchange::Done(status, upstream_ms, keep) => break Ok((status, upstream_ms, keep)),
            Exchange::Stale => {
                // A pooled connection the upstream had closed: send the request again on a
                // fresh connection (which cannot be stale).
                m.upstream_error(ErrorKind::Reset);
                fresh_only = true;
            }
            Exchange::Failed(kind, failure) => {
                if let Some(kind) = kind {
                    m.upstream_error(kind);
                }
                break Err(failure);
            }
        }
    };
    if let Some(b) = relay {
        buffers::recycle(b);
    }
    match outcome {
        Ok((status, upstream_ms, keep)) => {
            m.request(
                conn.protocol,
                status,
                Some(i),
                ms(start.elapsed()),
                upstream_ms,
            );
            keep
        }
        Err(Failure::Answer(status)) => {
            let _ = write_client(io, &answers::error(status), limits).await;
            m.request(conn.protocol, status, Some(i), ms(start.elapsed()), None);
            false
        }
        Err(Failure::Close(status)) => {
            m.request(conn.protocol, status, Some(i), ms(start.elapsed()), None);
            false
        }
    }
}

/// The request body still to send.
enum BodyLeft {
    Done,
    Length(u64),
    Chunked(ChunkScan),
}

impl BodyLeft {
    /// Takes what belongs to the body from the start of `avail`: (bytes, done).
    fn take(&mut self, avail: &[u8]) -> Result<(usize, bool), ()> {
        match self {
            BodyLeft::Done => Ok((0, true)),
            BodyLeft::Length(left) => {
                let take = avail
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= take as u64;
                Ok((take, *left == 0))
            }
            BodyLeft::Chunked(scan) => {
                let take = scan.feed(avail)?;
                Ok((take, scan.done()))
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn exchange<S: ClientIo>(
    fast: &Fast,
    conn: &mut Conn,
    io: &mut S,
    relay: &mut Option<Box<[u8]>>,
    mut up: Stream,
    reused: bool,
    i: usize,
    request: Request,
    close: bool,
    limits: ClientLimits,
) -> Exchange {
    // The head and the body bytes already here, in one write.
    let mut body = match request.body {
        BodyFraming::None => BodyLeft::Done,
        BodyFraming::Length(n) => BodyLeft::Length(n),
        BodyFraming::Chunked => BodyLeft::Chunked(ChunkScan::default()),
    };
    let Ok((take, mut body_done)) = body.take(&conn.buf[request.head_len..]) else {
        return Exchange::Failed(None, Failure::Answer(400));
    };
    let first = request.head_len + take;
    let sent_first = tokio::time::timeout(
        fast.write,
        write_both(&mut up, &conn.out, &conn.buf[request.head_len..first]),
    )
    .await;
    // Only a request sent whole in that write can be sent again.
    let can_retry = reused && request.idempotent && body_done;
    match sent_first {
        Ok(Ok(())) => {}
        Ok(Err(_)) if can_retry => return Exchange::Stale,
        Ok(Err(e)) => return Exchange::Failed(Some(upstream_failure(&e)), Failure::Answer(502)),
        Err(_) => return Exchange::Failed(Some(ErrorKind::Timeout), Failure::Answer(504)),
    }
    // A request that may be sent again (a reused connection that turns out stale) keeps
    // its rewritten head in `conn.out` and its bytes in `conn.buf` until the upstream's first
    // response byte shows the connection was alive; any other is done with them now.
    let mut pending = can_retry;
    if !pending {
        conn.out.clear();
        conn.buf.drain(..first);
    }
    // The rest of the body, as it arrives, through the relay buffer (the client's bytes
    // after it, a pipelined request, are kept in `conn.buf`).
    while !body_done {
        let ubuf = relay.get_or_insert_with(buffers::relay);
        let n = match tokio::time::timeout(limits.read, io.read(ubuf)).await {
            Ok(Ok(n)) if n > 0 => n,
            // The client went away, or stopped sending, mid-body: nothing to answer to
            // (or 408 when it is still there), and the upstream has half a request.
            Ok(_) => return Exchange::Failed(None, Failure::Close(CLIENT_GONE)),
            Err(_) => return Exchange::Failed(None, Failure::Answer(408)),
        };
        let Ok((take, done)) = body.take(&ubuf[..n]) else {
            return Exchange::Failed(None, Failure::Answer(400));
        };
        match tokio::time::timeout(fast.write, up.write_all(&ubuf[..take])).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Exchange::Failed(Some(upstream_failure(&e)), Failure::Answer(502))
            }
            Err(_) => return Exchange::Failed(Some(ErrorKind::Timeout), Failure::Answer(504)),
        }
        conn.buf.extend_from_slice(&ubuf[take..n]);
        body_done = done;
    }

    let sent = Instant::now();
    // `timeouts.read` is the upstream's silence: bytes the client pipelines meanwhile do
    // not restart it, only the upstream's own bytes do.
    let mut silent_until = tokio::time::Instant::from_std(sent) + fast.read;
    let mut upstream_ms = None;
    // The response as read so far (read through the thread's scratch buffer: waiting for
    // the upstream holds no buffer of its own).
    let mut resp: Vec<u8> = Vec::new();
    // The response head (after any interim ones), watching the client meanwhile.
    let head = loop {
        match parse_response(&resp, request.head, close, &mut conn.out) {
            Ok(Some(h)) if h.interim => {
                if !write_client(io, &conn.out, limits).await {
                    return Exchange::Failed(None, Failure::Close(CLIENT_GONE));
                }
                resp.drain(..h.len);
                continue;
            }
            Ok(Some(h)) => break h,
            Ok(None) if resp.len() > MAX_RESPONSE_HEAD => {
                return Exchange::Failed(Some(ErrorKind::Protocol), Failure::Answer(502))
            }
            Ok(None) => {}
            Err(kind) => return Exchange::Failed(Some(kind), Failure::Answer(502)),
        }
        let watching = conn.buf.len() < MAX_PIPELINED;
        let got_any = upstream_ms.is_some();
        let read = tokio::select! {
            biased;
            r = tokio::time::timeout_at(silent_until, buffers::read_into(&mut up, &mut resp)) => r,
            c = watch_client(io, &mut conn.buf), if watching => match c {
                Client::Sent => continue,
                Client::Gone => return Exchange::Failed(None, Failure::Close(CLIENT_GONE)),
            },
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) if can_retry && !got_any => return Exchange::Stale,
            Ok(Ok(0)) => return Exchange::Failed(Some(ErrorKind::Reset), Failure::Answer(502)),
            Ok(Err(e)) => {
                return Exchange::Failed(Some(upstream_failure(&e)), Failure::Answer(502))
            }
            Ok(Ok(_)) => {
                if !got_any {
                    upstream_ms = Some(ms(sent.elapsed()));
                }
                silent_until = tokio::time::Instant::now() + fast.read;
                if pending {
                    // The connection answered: the request cannot be sent again, and
                    // `conn.out` is where the response head is built.
                    pending = false;
                    conn.out.clear();
                    conn.buf.drain(..first);
                }
            }
            Err(_) => return Exchange::Failed(Some(ErrorKind::Timeout), Failure::Answer(504)),
        }
    };
    let status = head.status;
    let mut reusable = head.reusable;
    // The head and whatever body bytes came with it, in one write.
    let avail: &[u8] = &resp[head.len..];
    let mut chunks = ChunkScan::default();
    let (take, mut remaining, mut complete) = match head.framing {
        Framing::None => (0, 0, true),
        Framing::Length(n) => {
            let take = avail.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            (take, n - take as u64, take as u64 == n)
        }
        Framing::Chunked => match chunks.feed(avail) {
            Ok(take) => (take, 0, chunks.done()),
            Err(()) => return Exchange::Failed(Some(ErrorKind::Protocol), Failure::Answer(502)),
        },
        Framing::UntilClose => (avail.len(), 0, false),
    };
    if take < avail.len() {
        // Bytes after the response: the connection's framing cannot be trusted.
        reusable = false;
    }
    conn.out.extend_from_slice(&avail[..take]);
    buffers::give_back(&mut resp);
    if !write_client(io, &conn.out, limits).await {
        return Exchange::Done(CLIENT_GONE, upstream_ms, false);
    }
    // The rest of the body, as it arrives, still watching the client (the upstream's
    // silence counted from when the client took the last bytes).
    if !complete {
        silent_until = tokio::time::Instant::now() + fast.read;
    }
    while !complete {
        let ubuf = relay.get_or_insert_with(buffers::relay);
        let want = match head.framing {
            Framing::Length(_) => ubuf
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX)),
            _ => ubuf.len(),
        };
        let watching = conn.buf.len() < MAX_PIPELINED;
        let read = tokio::select! {
            biased;
            r = tokio::time::timeout_at(silent_until, up.read(&mut ubuf[..want])) => r,
            c = watch_client(io, &mut conn.buf), if watching => match c {
                Client::Sent => continue,
                Client::Gone => return Exchange::Failed(None, Failure::Close(CLIENT_GONE)),
            },
        };
        let n = match read {
            Ok(Ok(0)) if head.framing == Framing::UntilClose => {
                reusable = false;
                break;
            }
            Ok(Ok(n)) if n > 0 => n,
            Ok(r) => {
                let kind = match r {
                    Err(e) => upstream_failure(&e),
                    Ok(_) => ErrorKind::Reset,
                };
                return Exchange::Failed(Some(kind), Failure::Close(status));
            }
            Err(_) => return Exchange::Failed(Some(ErrorKind::Timeout), Failure::Close(status)),
        };
        let take = match head.framing {
            Framing::Length(_) => {
                remaining -= n as u64;
                complete = remaining == 0;
                n
            }
            Framing::Chunked => match chunks.feed(&ubuf[..n]) {
                Ok(take) => {
                    complete = chunks.done();
                    if take < n {
                        reusable = false;
                    }
                    take
                }
                Err(()) => {
                    return Exchange::Failed(Some(ErrorKind::Protocol), Failure::Close(status))
                }
            },
            _ => n,
        };
        if !write_client(io, &ubuf[..take], limits).await {
            return Exchange::Done(CLIENT_GONE, upstream_ms, false);
        }
        silent_until = tokio::time::Instant::now() + fast.read;
    }
    if reusable {
        fast.pools[i].put(up, fast.pool_size);
    }
    Exchange::Done(status, upstream_ms, head.framing != Framing::UntilClose)
}
