//! One worker thread's HTTP/2 load: its connections over TLS (ALPN `h2`), each carrying
//! `streams` concurrent streams, driven by the `h2` crate on a single-threaded tokio
//! runtime (HTTP/2's framing, flow control and HPACK are the crate's; writing them by hand
//! into the epoll loop is not the better call).
//!
//! Each stream slot of each connection is a sequential client with a schedule of its own
//! (open loop: `rate` shared by `connections × streams` slots, staggered, as the HTTP/1.1
//! loop shares it by connections), so a slot never has two requests in flight and a slow
//! response delays that slot's next send, which is charged from its intended time
//! (coordinated omission corrected).
//!
//! Timing, and where it is less exact than the HTTP/1.1 loop:
//! - **Sends** go out when the runtime's timer fires, which has millisecond granularity: a
//!   slot is woken up to 1 ms before its intended time and sends at once (latency then runs
//!   from the actual send, as for the HTTP/1.1 loop's batched sends); a wake-up that comes
//!   late is counted in the send lag.
//! - **Arrivals** are kernel receive timestamps (`SO_TIMESTAMPNS` on the socket under
//!   TLS): a response's arrival is the timestamp of the newest socket read when its stream
//!   completes. If the runtime read again (another stream's frames) before that stream's
//!   task ran, the arrival is that later read's, so the figure can only err late, by the
//!   time between two reads of one wake-up.
//! - A connection that fails is not re-established: its slots count each send as an error
//!   (after a 10 ms pause each), which a run's error count shows.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::cpu::ThreadCpu;
use crate::error::ErrorKind;
use crate::event_loop::{Ctx, ThreadOutput};
use crate::report::Recorder;
use crate::schedule::{Schedule, LATE_THRESHOLD};
use crate::socket::{self, ClientSocket, Received};
use crate::spec::Mode;

/// Housekeeping period: progress and cancellation.
const TICK: Duration = Duration::from_millis(20);
/// Pause after a failed request before the slot's next send.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// How early a slot is woken before its intended send: tokio's timer fires up to about 2 ms
/// after a deadline (a 1 ms wheel, and the park rounded up to whole ms), so waking 2 ms early
/// keeps sends from going out late; an early send is measured from when it went out.
const EARLY: Duration = Duration::from_millis(2);

/// A TCP stream whose reads record their kernel receive timestamp in `last`.
struct Stamped {
    tcp: TcpStream,
    timestamps: bool,
    cmsg: Vec<u8>,
    last: Rc<Cell<Option<Received>>>,
}

impl AsyncRead for Stamped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.tcp.poll_read_ready(cx))?;
            let fd = this.tcp.as_raw_fd();
            let (timestamps, cmsg) = (this.timestamps, &mut this.cmsg);
            let unfilled = buf.initialize_unfilled();
            match this.tcp.try_io(tokio::io::Interest::READABLE, || {
                socket::recv_stamped(fd, unfilled, cmsg, timestamps)
            }) {
                Ok(got) => {
                    if got.n > 0 {
                        this.last.set(Some(got));
                    }
                    buf.advance(got.n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Stamped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// One HTTP/2 connection: where requests go, and its newest read.
struct H2Conn {
    send: h2::client::SendRequest<Bytes>,
    last: Rc<Cell<Option<Received>>>,
    dead: Rc<Cell<bool>>,
}

/// What every slot of the thread shares.
struct Shared<'a> {
    ctx: &'a Ctx<'a>,
    rec: RefCell<Recorder>,
    open: bool,
    cancelled: Cell<bool>,
    /// Slots with a request in flight that is measured (abandoned if the drain ends).
    in_flight: Cell<u64>,
    /// What [`publish`] has added to the shared progress so far.
    published: Cell<(u64, u64)>,
}

/// Runs one worker thread's share of an HTTP/2 load over its connected sockets.
pub(crate) fn run(
    ctx: &Ctx<'_>,
    ids: &[usize],
    socks: Vec<ClientSocket>,
) -> io::Result<ThreadOutput> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let spec = ctx.spec;
    let shared = Shared {
        ctx,
        rec: RefCell::new(Recorder::new(spec.duration)),
        open: matches!(spec.mode, Mode::Open { .. }),
        cancelled: Cell::new(false),
        in_flight: Cell::new(0),
        published: Cell::new((0, 0)),
    };
    let cpu = local.block_on(&rt, async {
        let mut conns = Vec::with_capacity(socks.len());
        for sock in socks {
            conns.push(connect(&shared, sock).await);
        }
        let streams = spec.h2_streams.unwrap_or(1);
        let total = spec.connections * streams;
        let slots = conns
            .iter()
            .zip(ids)
            .flat_map(|(c, &id)| (0..streams).map(move |s| (c, id * streams + s)));
        let slot_futures: Vec<_> = slots
            .map(|(conn, slot)| run_slot(&shared, conn.as_ref().ok(), slot, total))
            .collect();
        let all = futures_join_all(slot_futures);
        let drain_end = tokio::time::Instant::from_std(ctx.w.drain_end);
        let (cpu, ()) = tokio::join!(edges(&shared), async {
            tokio::select! {
                _ = all => {}
                _ = tokio::time::sleep_until(drain_end) => {}
            }
        });
        let mut rec = shared.rec.borrow_mut();
        rec.abandoned += shared.in_flight.get();
        cpu
    });
    let mut published = shared.published.get();
    publish(&shared, &mut published);
    let rec = shared.rec.into_inner();
    Ok(ThreadOutput { rec, cpu })
}

/// Polls every future to completion, in one task (no allocation per poll beyond the
/// vector, no `Send` needed).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in futures.iter_mut() {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await
}

/// The TLS and HTTP/2 handshakes on one connected socket; the connection's driver runs as
/// a task of its own.
async fn connect(shared: &Shared<'_>, sock: ClientSocket) -> Result<H2Conn, ErrorKind> {
    let Some(tls) = shared.ctx.spec.tls.as_ref() else {
        return Err(ErrorKind::Tls);
    };
    let (std, timestamps) = sock.into_std();
    let tcp = TcpStream::from_std(std).map_err(|e| ErrorKind::from_io(&e))?;
    let last = Rc::new(Cell::new(None));
    let io = Stamped {
        tcp,
        timestamps,
        cmsg: socket::control_buffer(),
        last: last.clone(),
    };
    let connector = tokio_rustls::TlsConnector::from(tls.h2_config());
    let tls_stream = match connector.connect(tls.server_name.clone(), io).await {
        Ok(s) => s,
        Err(e) => {
            let mut rec = shared.rec.borrow_mut();
            if rec.tls_error.is_none() {
                rec.tls_error = Some(e.to_string());
            }
            return Err(ErrorKind::Tls);
        }
    };
    let (send, connection) = h2::client::Builder::new()
        .handshake::<_, Bytes>(tls_stream)
        .await
        .map_err(|_| ErrorKind::Closed)?;
    let dead = Rc::new(Cell::new(false));
    let d = dead.clone();
    tokio::task::spawn_local(async move {
        let _ = connection.await;
        d.set(true);
    });
    Ok(H2Conn { send, last, dead })
}

/// The thread's CPU over the window (read at its edges), with progress and cancellation
/// every tick until the window ends (or the run is cancelled).
async fn edges(shared: &Shared<'_>) -> ThreadCpu {
    let w = shared.ctx.w;
    let mut start = None;
    loop {
        let now = Instant::now();
        if start.is_none() && now >= w.measure_start {
            start = Some(ThreadCpu::now());
        }
        if now >= w.end || shared.cancelled.get() {
            return start.map_or_else(ThreadCpu::default, |s| ThreadCpu::now().since(s));
        }
        let mut published = shared.published.get();
        publish(shared, &mut published);
        shared.published.set(published);
        let edge = if start.is_none() {
            w.measure_start
        } else {
            w.end
        };
        let next = (now + TICK).min(edge);
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
    }
}

/// One stream slot: sequential requests on its schedule (open loop) or back to back
/// (closed loop) until the window ends.
async fn run_slot(shared: &Shared<'_>, conn: Option<&H2Conn>, slot: usize, total: usize) {
    let ctx = shared.ctx;
    let spec = ctx.spec;
    let w = ctx.w;
    let sched = match spec.mode {
        Mode::Open { rate } => Some(Schedule::for_connection(w.t0, rate, total, slot)),
        Mode::Closed => None,
    };
    let mut last_arrival = w.t0;
    for k in 0u64.. {
        if shared.cancelled.get() {
            break;
        }
        let intended = match sched {
            Some(s) => {
                let at = s.at(k);
                if at >= w.end {
                    break;
                }
                let wake = at.checked_sub(EARLY).unwrap_or(at);
                tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
                at
            }
            None => {
                let now = Instant::now();
                if now >= w.end {
                    break;
                }
                now
            }
        };
        let sent = Instant::now();
        let measured = intended >= w.measure_start && intended < w.end;
        let free = last_arrival <= intended;
        if measured {
            let mut rec = shared.rec.borrow_mut();
            rec.sent += 1;
            if sent.saturating_duration_since(intended) > LATE_THRESHOLD {
                rec.late += 1;
                if shared.open && free {
                    rec.pacing_late += 1;
                }
            }
            if shared.open && free {
                rec.send_offset(intended, sent);
            }
            shared.in_flight.set(shared.in_flight.get() + 1);
        }
        let outcome = match conn {
            Some(c) if !c.dead.get() => exchange(c, spec).await,
            _ => Err(ErrorKind::Closed),
        };
        if measured {
            shared.in_flight.set(shared.in_flight.get() - 1);
        }
        let now = Instant::now();
        match outcome {
            Ok((status, got)) => {
                let arrival = got.map_or(now, |g| g.arrival).max(sent).min(now);
                last_arrival = arrival;
                if measured {
                    let from = intended.min(sent);
                    let mut rec = shared.rec.borrow_mut();
                    rec.response(
                        status,
                        arrival.saturating_duration_since(from).as_nanos() as u64,
                        shared
                            .open
                            .then(|| arrival.saturating_duration_since(sent).as_nanos() as u64),
                        arrival.saturating_duration_since(w.measure_start),
                    );
                    let kernel = got.is_some_and(|g| g.kernel);
                    rec.read(now.saturating_duration_since(arrival), kernel);
                }
            }
            Err(kind) => {
                last_arrival = now;
                if measured {
                    shared
                        .rec
                        .borrow_mut()
                        .error(kind, now.saturating_duration_since(w.measure_start));
                }
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}

/// Progress to the shared counters (`published`: what was added before); cancellation
/// from them.
fn publish(shared: &Shared<'_>, published: &mut (u64, u64)) {
    let rec = shared.rec.borrow();
    let done = rec.completed;
    let errs: u64 = rec.errors.iter().sum();
    let live = shared.ctx.live;
    live.add_completed(done.saturating_sub(published.0));
    live.add_errors(errs.saturating_sub(published.1));
    *published = (done, errs);
    if live.is_cancelled() {
        shared.cancelled.set(true);
    }
}

/// One request and its whole response: (status, the read that brought its end).
async fn exchange(
    conn: &H2Conn,
    spec: &crate::spec::LoadSpec,
) -> Result<(u16, Option<Received>), ErrorKind> {
    let uri = format!("https://{}{}", spec.host_header, spec.path_and_query);
    let mut builder = http::Request::builder()
        .method(spec.method.as_str())
        .uri(uri);
    for (name, value) in &spec.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder.body(()).map_err(|_| ErrorKind::Parse)?;
    let mut send = conn.send.clone().ready().await.map_err(h2_error)?;
    let has_body = !spec.body.is_empty();
    let (response, mut stream) = send.send_request(request, !has_body).map_err(h2_error)?;
    if has_body {
        stream
            .send_data(spec.body.clone(), true)
            .map_err(h2_error)?;
    }
    let response = response.await.map_err(h2_error)?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(h2_error)?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok((status, conn.last.get()))
}

fn h2_error(e: h2::Error) -> ErrorKind {
    if e.is_io() {
        return e.get_io().map_or(ErrorKind::Io, ErrorKind::from_io);
    }
    if e.is_reset() || e.is_go_away() || e.is_remote() {
        return ErrorKind::Reset;
    }
    ErrorKind::Parse
}
