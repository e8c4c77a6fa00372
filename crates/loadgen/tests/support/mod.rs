//! Small raw-tokio HTTP/1.1 test servers with controllable misbehaviour, each on its own
//! thread and runtime, bound to 127.0.0.1:0. Dropping a [`TestServer`] stops it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What the server does with each request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 "hello" with Content-Length, keep-alive.
    Hello,
    /// The whole server stalls once for `stall`, on the first request at least `after`
    /// after the server's first request.
    StallOnce { after: Duration, stall: Duration },
    /// Statuses cycle through the list per connection (request i gets list[i % len]).
    Statuses(Vec<u16>),
    /// 200 with `Connection: close` after every `n`-th response on a connection, then close.
    CloseAfter(u64),
    /// After `n` responses on a connection, close it without saying so.
    DropAfter(u64),
    /// Close a connection right after its `n`-th response, which did not say so
    /// (no `Connection: close`): a clean close the client sees only as an EOF.
    CloseSilentlyAfter(u64),
    /// 200 with a chunked body, written in pieces.
    Chunked,
    /// Read requests, never answer.
    Silent,
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// Requests the server has read.
    pub requests: Arc<AtomicU64>,
    /// Connections accepted.
    pub accepted: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(behaviour: Behaviour) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let (stop_tx, stop_rx) = oneshot::channel();
        let (req, acc) = (requests.clone(), accepted.clone());
        let thread = std::thread::Builder::new()
            .name("test-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).unwrap();
                    let shared = Arc::new(Shared {
                        behaviour,
                        requests: req,
                        first_request: Mutex::new(None),
                        stall_until: Mutex::new(None),
                    });
                    let accept = async {
                        loop {
                            let Ok((stream, _)) = listener.accept().await else {
                                continue;
                            };
                            acc.fetch_add(1, Ordering::Relaxed);
                            let _ = stream.set_nodelay(true);
                            tokio::spawn(serve_connection(stream, shared.clone()));
                        }
                    };
                    tokio::select! {
                        () = accept => {}
                        _ = stop_rx => {}
                    }
                });
                // Dropping the runtime drops every connection task.
            })
            .unwrap();
        TestServer {
            addr,
            requests,
            accepted,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting and drops every connection.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Shared {
    behaviour: Behaviour,
    requests: Arc<AtomicU64>,
    first_request: Mutex<Option<Instant>>,
    stall_until: Mutex<Option<Instant>>,
}

const HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello";

async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 8192];
    let mut filled = 0;
    let mut served: u64 = 0;
    loop {
        // Read one request head (and skip a Content-Length body).
        let consumed = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf[..filled]) {
                Ok(httparse::Status::Complete(n)) => {
                    let body: usize = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                        .unwrap_or(0);
                    if filled >= n + body {
                        break n + body;
                    }
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return,
            }
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            match stream.read(&mut buf[filled..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => filled += n,
            }
        };
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
        shared.requests.fetch_add(1, Ordering::Relaxed);
        let keep = respond(&mut stream, &shared, served).await;
        served += 1;
        if !keep {
            return;
        }
    }
}

/// Writes the response to request number `i` on this connection; false: close.
async fn respond(stream: &mut TcpStream, shared: &Shared, i: u64) -> bool {
    match &shared.behaviour {
        Behaviour::Hello => stream.write_all(HELLO).await.is_ok(),
        Behaviour::StallOnce { after, stall } => {
            let now = Instant::now();
            let first = *shared.first_request.lock().unwrap().get_or_insert(now);
            let until = {
                let mut s = shared.stall_until.lock().unwrap();
                if s.is_none() && now >= first + *after {
                    *s = Some(now + *stall);
                }
                *s
            };
            if let Some(until) = until {
                if now < until {
                    // The scenario: the whole server freezes (every connection waits).
                    tokio::time::sleep_until(until.into()).await;
                }
            }
            stream.write_all(HELLO).await.is_ok()
        }
        Behaviour::Statuses(list) => {
            let status = list[(i % list.len() as u64) as usize];
            let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok");
            stream.write_all(resp.as_bytes()).await.is_ok()
        }
        Behaviour::CloseAfter(n) => {
            if (i + 1) % n == 0 {
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
                    )
                    .await;
                let _ = stream.shutdown().await;
                false
            } else {
                stream.write_all(HELLO).await.is_ok()
            }
        }
        Behaviour::DropAfter(n) => {
            if i >= *n {
                return false;
            }
            stream.write_all(HELLO).await.is_ok()
        }
        Behaviour::CloseSilentlyAfter(n) => {
            let ok = stream.write_all(HELLO).await.is_ok();
            if (i + 1) % n == 0 {
                let _ = stream.shutdown().await;
                return false;
            }
            ok
        }
        Behaviour::Chunked => {
            let parts: [&[u8]; 4] = [
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"5\r\nhel",
                b"lo\r\n6\r\n world\r\n",
                b"0\r\n\r\n",
            ];
            for p in parts {
                if stream.write_all(p).await.is_err() {
                    return false;
                }
                let _ = stream.flush().await;
                tokio::task::yield_now().await;
            }
            true
        }
        Behaviour::Silent => {
            // Hold the connection open without answering (bounded by the runtime's life).
            tokio::time::sleep(Duration::from_secs(60)).await;
            false
        }
    }
}
