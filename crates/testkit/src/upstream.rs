//! Upstreams for a proxy to forward to, each recording exactly what it received:
//!
//! - [`Upstream`], from `testkit::upstream().start()`: a well-behaved hyper HTTP/1 server.
//!   `/slow?ms=N` waits N ms before answering, `/stream?chunks=N` answers N chunks of
//!   1 KiB, anything else answers `200` with body `upstream:<path>` followed by the request
//!   body;
//! - [`Scripted`], from `testkit::upstream().answer(bytes)` (or `.answer_with(|req| …)`, or
//!   `.script(|conn| …)` for full control): a raw TCP server that answers with exactly the
//!   bytes it is told, one thread per connection, where hyper would be too well-behaved.
//!
//! ```no_run
//! let scripted = testkit::upstream()
//!     .answer(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..])
//!     .start();
//! let recording = testkit::upstream().start();
//! # let _ = (scripted, recording);
//! ```

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::patience::{scaled, wait, WAIT};
use crate::Listening;

/// One request as an upstream received it, body complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The request target as sent (`/items/7?x=1`).
    pub uri: String,
    /// Header lines in order (names as sent by a scripted upstream, lower case by hyper).
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked by hyper; a scripted upstream reads Content-Length bodies).
    pub body: Vec<u8>,
    /// The connection's far end (the proxy's side).
    pub peer: SocketAddr,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The path of [`Recorded::uri`], without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }
}

/// Says what an upstream will be: `testkit::upstream()`.
#[derive(Debug, Clone)]
pub struct UpstreamBuilder {
    addr: SocketAddr,
}

/// The recording hyper upstream (see the module docs), to be started.
pub fn upstream() -> UpstreamBuilder {
    UpstreamBuilder {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
    }
}

type Script = dyn Fn(&mut UpstreamConn) + Send + Sync;

impl UpstreamBuilder {
    /// Listen on `addr` (retrying while it is still in use, as a restarted server does)
    /// instead of a free port.
    pub fn on(mut self, addr: SocketAddr) -> UpstreamBuilder {
        self.addr = addr;
        self
    }

    /// Starts the recording hyper upstream.
    pub fn start(self) -> Upstream {
        Upstream::start_on(self.addr)
    }

    /// A scripted upstream answering every request of a keep-alive connection with
    /// `response`, byte for byte.
    pub fn answer(self, response: impl Into<Vec<u8>>) -> ScriptedBuilder {
        let response = response.into();
        self.answer_with(move |_| response.clone())
    }

    /// A scripted upstream answering every request with `response(request)`.
    pub fn answer_with(
        self,
        response: impl Fn(&Recorded) -> Vec<u8> + Send + Sync + 'static,
    ) -> ScriptedBuilder {
        self.script(move |c| {
            while let Some(req) = c.next_request() {
                c.send(&response(&req));
            }
        })
    }

    /// A scripted upstream running `script` on each connection it accepts (one thread
    /// each). When the script returns, the connection is closed with a FIN the proxy has
    /// seen before [`Scripted::closed`] counts it (unless the script reset it).
    pub fn script(
        self,
        script: impl Fn(&mut UpstreamConn) + Send + Sync + 'static,
    ) -> ScriptedBuilder {
        ScriptedBuilder {
            addr: self.addr,
            script: Arc::new(script),
        }
    }
}

// ---------------------------------------------------------------- recording hyper upstream

/// A hyper HTTP/1 server in its own runtime thread that records every complete request;
/// stops (closing every connection) on [`Upstream::kill`] or drop.
#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    started: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    fn start_on(addr: SocketAddr) -> Upstream {
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let started = Arc::new(AtomicUsize::new(0));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = mpsc::channel();
        let rec = recorded.clone();
        let st = started.clone();
        let thread = std::thread::Builder::new()
            .name("testkit-upstream".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    // A restarted upstream may find its port still held for a moment.
                    let listener = wait(format!("{addr} to be free to bind"))
                        .every(Duration::from_millis(20))
                        .until_some(|| std_bind(addr).ok());
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    addr_tx
                        .send(listener.local_addr().expect("local_addr"))
                        .expect("the starting test waits for the address");
                    let mut conns = tokio::task::JoinSet::new();
                    let mut stop_rx = stop_rx;
                    loop {
                        tokio::select! {
                            _ = &mut stop_rx => break,
                            a = listener.accept() => {
                                let Ok((tcp, peer)) = a else { continue };
                                let (rec, st) = (rec.clone(), st.clone());
                                conns.spawn(async move {
                                    let svc = service_fn(move |req| {
                                        handle(req, peer, rec.clone(), st.clone())
                                    });
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(TokioIo::new(tcp), svc)
                                        .await;
                                });
                            }
                        }
                    }
                    // "kill": close the listener and every connection at once.
                    drop(listener);
                    conns.abort_all();
                    while conns.join_next().await.is_some() {}
                });
                rt.shutdown_timeout(Duration::from_millis(100));
            })
            .expect("spawn the upstream thread");
        let addr = addr_rx
            .recv_timeout(scaled(WAIT))
            .expect("the upstream bound its address");
        Upstream {
            addr,
            recorded,
            started,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every complete request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }

    /// How many complete requests so far.
    pub fn count(&self) -> usize {
        self.recorded.lock().unwrap().len()
    }

    /// Requests whose head arrived (complete or not): one being handled counts.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    /// Stops listening and closes every connection at once (like a killed process).
    pub fn kill(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn std_bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

type BoxBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    rec: Arc<Mutex<Vec<Recorded>>>,
    started: Arc<AtomicUsize>,
) -> Result<hyper::Response<BoxBody>, std::io::Error> {
    started.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = parts.uri.path().to_owned();
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    rec.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers,
        body: body.to_vec(),
        peer,
    });
    if path == "/slow" {
        // The scenario: an upstream that takes this long to answer.
        let ms: u64 = query.get("ms").and_then(|v| v.parse().ok()).unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if path == "/stream" {
        let n: usize = query
            .get("chunks")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        return Ok(hyper::Response::new(BodyExt::boxed(Chunks(n))));
    }
    let mut out = format!("upstream:{path}").into_bytes();
    out.extend_from_slice(&body);
    Ok(hyper::Response::new(BodyExt::boxed(
        Full::new(Bytes::from(out)).map_err(|never| match never {}),
    )))
}

/// `n` chunks of 1 KiB of `x`.
struct Chunks(usize);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.0 == 0 {
            return std::task::Poll::Ready(None);
        }
        self.0 -= 1;
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; 1024])))))
    }
}

// ---------------------------------------------------------------- scripted raw upstream

/// A scripted upstream to be started: [`ScriptedBuilder::start`].
pub struct ScriptedBuilder {
    addr: SocketAddr,
    script: Arc<Script>,
}

impl std::fmt::Debug for ScriptedBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedBuilder")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Counts {
    accepted: AtomicUsize,
    closed: AtomicUsize,
    log: Mutex<Vec<Recorded>>,
}

impl ScriptedBuilder {
    /// Binds and starts accepting.
    pub fn start(self) -> Scripted {
        let listener = wait(format!("{} to be free to bind", self.addr))
            .every(Duration::from_millis(20))
            .until_some(|| TcpListener::bind(self.addr).ok());
        let addr = listener.local_addr().expect("local_addr");
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c, st, script) = (counts.clone(), stop.clone(), self.script);
        std::thread::Builder::new()
            .name("testkit-scripted".into())
            .spawn(move || {
                for s in listener.incoming() {
                    if st.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(s) = s else { continue };
                    c.accepted.fetch_add(1, Ordering::SeqCst);
                    let _ = s.set_read_timeout(Some(scaled(WAIT)));
                    let _ = s.set_nodelay(true);
                    let peer = s.peer_addr().unwrap_or(addr);
                    let (c, script) = (c.clone(), script.clone());
                    std::thread::spawn(move || {
                        let mut conn = UpstreamConn {
                            stream: Some(s),
                            buf: Vec::new(),
                            peer,
                            counts: c.clone(),
                        };
                        script(&mut conn);
                        if let Some(s) = conn.stream.take() {
                            // Counted closed only once the proxy has seen the FIN.
                            crate::tcp::fin_seen(&s);
                        }
                        c.closed.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
            .expect("spawn the scripted upstream thread");
        Scripted { addr, counts, stop }
    }
}

/// A running scripted upstream; stops accepting on drop (connections already accepted
/// run their script to the end).
#[derive(Debug)]
pub struct Scripted {
    addr: SocketAddr,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.counts.accepted.load(Ordering::SeqCst)
    }

    /// Connections whose script has ended and whose close the peer has seen (or that the
    /// script reset).
    pub fn closed(&self) -> usize {
        self.counts.closed.load(Ordering::SeqCst)
    }

    /// Every request read so far (through [`UpstreamConn::next_request`]), in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.counts.log.lock().unwrap().clone()
    }

    /// How many requests so far.
    pub fn count(&self) -> usize {
        self.counts.log.lock().unwrap().len()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so its thread sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// One connection of a [`Scripted`] upstream, as its script sees it.
#[derive(Debug)]
pub struct UpstreamConn {
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    peer: SocketAddr,
    counts: Arc<Counts>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl UpstreamConn {
    fn stream(&mut self) -> &mut TcpStream {
        self.stream.as_mut().expect("the connection was reset")
    }

    /// The proxy's end of this connection.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The next whole request (head and Content-Length body), recorded; `None` once the
    /// proxy closes the connection (or the read timeout passes).
    pub fn next_request(&mut self) -> Option<Recorded> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let mut lines = head.split("\r\n");
                let mut first = lines.next().unwrap_or("").split(' ');
                let method = first.next().unwrap_or("").to_owned();
                let uri = first.next().unwrap_or("").to_owned();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .collect();
                let length: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let total = end + 4 + length;
                if self.buf.len() >= total {
                    let body = self.buf[end + 4..total].to_vec();
                    self.buf.drain(..total);
                    let r = Recorded {
                        method,
                        uri,
                        headers,
                        body,
                        peer: self.peer,
                    };
                    self.counts.log.lock().unwrap().push(r.clone());
                    return Some(r);
                }
            }
            let mut b = [0u8; 8192];
            match self.stream().read(&mut b) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&b[..n]),
            }
        }
    }

    /// The next `n` raw bytes the proxy sends on this connection, exactly as they came
    /// (head, body, chunk framing), not recorded as a request; `None` if the connection
    /// closes (or the read timeout passes) first.
    pub fn read_exact_raw(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            let mut b = [0u8; 8192];
            match self.stream().read(&mut b) {
                Ok(0) | Err(_) => return None,
                Ok(got) => self.buf.extend_from_slice(&b[..got]),
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// The raw bytes up to and including the first `end` (e.g. `b"\r\n\r\n"`: a head);
    /// `None` if the connection closes first.
    pub fn read_until_raw(&mut self, end: &[u8]) -> Option<Vec<u8>> {
        loop {
            if let Some(at) = find(&self.buf, end) {
                return Some(self.buf.drain(..at + end.len()).collect());
            }
            let mut b = [0u8; 8192];
            match self.stream().read(&mut b) {
                Ok(0) | Err(_) => return None,
                Ok(got) => self.buf.extend_from_slice(&b[..got]),
            }
        }
    }

    /// Writes `bytes` (errors ignored: the proxy may have gone).
    pub fn send(&mut self, bytes: &[u8]) {
        let s = self.stream();
        let _ = s.write_all(bytes);
        let _ = s.flush();
    }

    /// Waits until the proxy has read everything sent so far (see
    /// [`crate::tcp::wait_read_by_peer`]).
    pub fn wait_read_by_peer(&mut self) {
        crate::tcp::wait_read_by_peer(self.stream());
    }

    /// Waits (bounded by the read timeout) until the proxy closes this connection,
    /// discarding anything it sends.
    pub fn wait_closed(&mut self) {
        let mut b = [0u8; 4096];
        while matches!(self.stream().read(&mut b), Ok(n) if n > 0) {}
    }

    /// Resets the connection (RST), once the proxy has read what was sent.
    pub fn reset(&mut self) {
        self.wait_read_by_peer();
        if let Some(s) = self.stream.take() {
            crate::tcp::reset(s);
        }
    }
}

impl Listening for Upstream {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Listening for Scripted {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}
