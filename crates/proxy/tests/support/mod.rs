//! Test vocabulary for the proxy's tests: the real `proxy` binary on 127.0.0.1:0, a recording
//! upstream (hyper), a raw upstream that misbehaves, a tiny HTTP/1 client over raw sockets,
//! and a UDP DogStatsD sink. Every wait is bounded.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

pub const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- proxy process

/// The `proxy` binary running as a child process.
pub struct Proxy {
    pub child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    stdout_rest: Arc<Mutex<Option<String>>>,
    _config: Option<TempFile>,
}

impl Proxy {
    /// Starts the proxy with this config file body (listen is overridden to 127.0.0.1:0).
    pub fn start(config_toml: &str) -> Proxy {
        Proxy::start_with_env(config_toml, &[])
    }

    pub fn start_with_env(config_toml: &str, env: &[(&str, String)]) -> Proxy {
        let file = TempFile::new("proxy.toml", config_toml);
        let mut cmd = proxy_command();
        cmd.arg("-c")
            .arg(&file.path)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the proxy binary");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let err_text = Arc::new(Mutex::new(String::new()));
        let et = err_text.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                et.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let (tx, rx) = mpsc::channel();
        let rest_text = Arc::new(Mutex::new(None));
        let rt = rest_text.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line.clone());
            // keep reading until the process exits: nothing else may appear on stdout
            let mut rest = String::new();
            let _ = r.read_to_string(&mut rest);
            *rt.lock().unwrap() = Some(rest);
        });
        let line = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!(
                "proxy did not print its address; stderr: {}",
                err_text.lock().unwrap()
            )
        });
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first stdout line {line:?}; stderr: {}",
                    err_text.lock().unwrap()
                )
            })
            .parse()
            .expect("an address");
        Proxy {
            child,
            addr,
            stderr: err_text,
            stdout_rest: rest_text,
            _config: Some(file),
        }
    }

    /// What the proxy wrote to stdout after its first line, once it has exited.
    pub fn stdout_after_first_line(&self) -> Option<String> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(rest) = self.stdout_rest.lock().unwrap().clone() {
                return Some(rest);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), sig).expect("signal the proxy");
    }

    /// Waits (bounded) for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The proxy binary with the environment it reads cleared.
pub fn proxy_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxy"));
    for k in [
        "DD_AGENT_HOST",
        "DD_DOGSTATSD_PORT",
        "DD_DOGSTATSD_URL",
        "DD_ENV",
        "DD_SERVICE",
        "DD_VERSION",
        "PROXY_CONFIG",
        "PROXY_LISTEN",
        "PROXY_UPSTREAMS",
        "PROXY_THREADS",
        "PROXY_NO_FAST_PATH",
    ] {
        cmd.env_remove(k);
    }
    cmd
}

/// A configuration for one upstream, with short timeouts for tests.
pub fn config_for(upstreams: &[SocketAddr], extra_timeouts: &str) -> String {
    let list: Vec<String> = upstreams.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "upstreams = [{}]\nthreads = 2\nhealth_check_interval = \"200ms\"\n[timeouts]\nconnect = \"1s\"\nread = \"5s\"\n{extra_timeouts}\n",
        list.join(", ")
    )
}

pub struct TempFile {
    pub path: std::path::PathBuf,
}

impl TempFile {
    pub fn new(name: &str, contents: &str) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tinyfish-proxy-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile { path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

// ---------------------------------------------------------------- recording upstream

/// One request as the upstream received it, body complete.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A hyper HTTP/1 server in its own runtime thread that records every complete request.
///
/// Routes: `/slow?ms=N` sleeps N ms before answering; `/stream?chunks=N` answers with N
/// chunks of 1 KiB (chunked); anything else answers `200` with body `upstream:<path>` and
/// echoes the request body after it.
pub struct Upstream {
    pub addr: SocketAddr,
    pub recorded: Arc<Mutex<Vec<Recorded>>>,
    /// Requests whose head arrived (complete or not).
    pub started: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        Upstream::start_on("127.0.0.1:0".parse().unwrap())
    }

    /// Binds `addr` (retrying for a while if it is still in use) and serves.
    pub fn start_on(addr: SocketAddr) -> Upstream {
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let started = Arc::new(AtomicUsize::new(0));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = mpsc::channel();
        let rec = recorded.clone();
        let st = started.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let deadline = Instant::now() + WAIT;
                let listener = loop {
                    match std_bind(addr) {
                        Ok(l) => break tokio::net::TcpListener::from_std(l).unwrap(),
                        Err(e) if Instant::now() < deadline => {
                            let _ = e;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => panic!("bind {addr}: {e}"),
                    }
                };
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let mut conns = tokio::task::JoinSet::new();
                let mut stop_rx = stop_rx;
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        a = listener.accept() => {
                            let Ok((tcp, peer)) = a else { continue };
                            let rec = rec.clone();
                            let st = st.clone();
                            conns.spawn(async move {
                                let svc = service_fn(move |req| handle(req, peer, rec.clone(), st.clone()));
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(tcp), svc)
                                    .await;
                            });
                        }
                    }
                }
                // "kill": close the listener and every connection at once
                drop(listener);
                conns.abort_all();
                while conns.join_next().await.is_some() {}
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        let addr = addr_rx.recv_timeout(WAIT).expect("upstream bound");
        Upstream {
            addr,
            recorded,
            started,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.recorded.lock().unwrap().len()
    }

    /// Stops listening and closes every connection (like a killed process).
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

fn std_bind(addr: SocketAddr) -> std::io::Result<StdListener> {
    let l = StdListener::bind(addr)?;
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
        let ms: u64 = query.get("ms").and_then(|v| v.parse().ok()).unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if path == "/stream" {
        let n: usize = query
            .get("chunks")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        let stream = futures_stream(n);
        return Ok(hyper::Response::new(BodyExt::boxed(stream)));
    }
    let mut out = format!("upstream:{path}").into_bytes();
    out.extend_from_slice(&body);
    Ok(hyper::Response::new(BodyExt::boxed(
        Full::new(Bytes::from(out)).map_err(|never| match never {}),
    )))
}

fn futures_stream(
    n: usize,
) -> impl hyper::body::Body<Data = Bytes, Error = std::io::Error> + Send + Sync + 'static {
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
    Chunks(n)
}

// ---------------------------------------------------------------- raw upstream

/// A raw TCP upstream that answers every connection with `response` bytes and then resets
/// the connection (SO_LINGER 0), in a plain thread.
pub struct RawUpstream {
    pub addr: SocketAddr,
}

impl RawUpstream {
    pub fn start(response: &'static [u8]) -> RawUpstream {
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().take(50) {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    // read the request head
                    let _ = s.set_read_timeout(Some(WAIT));
                    let mut buf = Vec::new();
                    let mut b = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&b[..n]),
                        }
                    }
                    let _ = s.write_all(response);
                    let _ = s.flush();
                    std::thread::sleep(Duration::from_millis(50));
                    let sock = socket_reset(s);
                    drop(sock);
                });
            }
        });
        RawUpstream { addr }
    }
}

/// Sets SO_LINGER to 0 so that closing sends a RST (std has no set_linger on stable).
fn socket_reset(s: TcpStream) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let _g = rt.enter();
    s.set_nonblocking(true).unwrap();
    let t = tokio::net::TcpStream::from_std(s).unwrap();
    #[allow(deprecated)]
    let _ = t.set_linger(Some(Duration::ZERO));
    t.into_std().unwrap()
}

// ---------------------------------------------------------------- client

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How reading a response ended.
#[derive(Debug)]
pub enum ReadError {
    /// The connection closed (or reset) before a single byte of response.
    ClosedBeforeResponse,
    /// A response started but its body was cut short (what a client must be able to detect).
    Truncated { status: u16, got: usize },
    /// Anything else (timeout, garbage).
    Other(String),
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads one response from a keep-alive connection (Content-Length, chunked or until close).
pub fn read_response(r: &mut BufReader<TcpStream>) -> Result<Response, ReadError> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => return Err(ReadError::ClosedBeforeResponse),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            return Err(ReadError::ClosedBeforeResponse)
        }
        Err(e) => return Err(ReadError::Other(e.to_string())),
        Ok(_) => {}
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ReadError::Other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)
            .map_err(|e| ReadError::Other(e.to_string()))?
            == 0
        {
            return Err(ReadError::Truncated { status, got: 0 });
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if status == 204 || status == 304 || (100..200).contains(&status) {
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
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
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| ReadError::Other(format!("bad chunk size {size:?}")))?;
            if n == 0 {
                let mut end = String::new();
                let _ = r.read_line(&mut end);
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
    } else if let Some(cl) = get("content-length") {
        let n: usize = cl
            .parse()
            .map_err(|_| ReadError::Other("bad content-length".into()))?;
        body.resize(n, 0);
        let mut got = 0;
        while got < n {
            match r.read(&mut body[got..]) {
                Ok(0) | Err(_) => return Err(ReadError::Truncated { status, got }),
                Ok(k) => got += k,
            }
        }
    } else {
        let _ = r.read_to_end(&mut body);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Sends raw bytes on a new connection and reads one response.
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Result<Response, ReadError> {
    let mut s = connect(addr);
    s.write_all(bytes)
        .map_err(|e| ReadError::Other(e.to_string()))?;
    read_response(&mut BufReader::new(s))
}

/// `GET path` with `Connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> Result<Response, ReadError> {
    send_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Polls `cond` every 10 ms until it holds or `within` passes.
pub fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------- DogStatsD sink

/// Collects DogStatsD lines sent to a UDP socket on 127.0.0.1.
pub struct UdpSink {
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl UdpSink {
    pub fn bind() -> UdpSink {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            let end = Instant::now() + Duration::from_secs(120);
            while Instant::now() < end && Arc::strong_count(&l) > 1 {
                if let Ok(n) = sock.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    l.lock().unwrap().extend(text.lines().map(str::to_owned));
                }
            }
        });
        UdpSink { addr, lines }
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("DD_DOGSTATSD_URL", format!("udp://{}", self.addr))]
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}
