//! Unix sockets, for the same-host sidecar case (`--listen unix:/path` on the app,
//! `upstreams = ["unix:/path"]` on the proxy):
//!
//! - [`SocketDir`]: a fresh directory to put sockets in, removed with them on drop;
//! - [`upstream`]: a raw upstream on a Unix socket ([`UnixUpstream`]) answering every
//!   request with the bytes it is told, recording each request's exact bytes and counting
//!   the connections it accepts;
//! - [`send`]: exact bytes to a Unix socket, one [`crate::http::Response`] back.
//!
//! ```no_run
//! let dir = testkit::unix::SocketDir::new();
//! let up = testkit::unix::upstream(
//!     dir.path("app.sock"),
//!     &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..],
//! );
//! let proxy = testkit::proxy().to_unix(up.path()).start();
//! assert_eq!(testkit::http::get(proxy.addr(), "/").text(), "ok");
//! assert_eq!(up.accepted(), 1);
//! ```

use std::io::{BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::http::{read_response, ReadError, Response, TIMEOUT};
use crate::patience::scaled;

/// A fresh directory in the temporary directory, for sockets; removed (with what is in it)
/// on drop.
#[derive(Debug)]
pub struct SocketDir {
    dir: PathBuf,
}

impl SocketDir {
    /// Creates it (a short path: a socket path holds at most 107 bytes).
    pub fn new() -> SocketDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tinyfish-sock-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        SocketDir { dir }
    }

    /// `name` in the directory (nothing is created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Default for SocketDir {
    fn default() -> Self {
        SocketDir::new()
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug, Default)]
struct Counts {
    accepted: AtomicUsize,
    requests: Mutex<Vec<Vec<u8>>>,
}

/// A raw HTTP/1 upstream on a Unix socket (see [`upstream`]); stops accepting and removes
/// its socket on drop.
#[derive(Debug)]
pub struct UnixUpstream {
    path: PathBuf,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

/// Binds a Unix socket at `path` and answers every request of each keep-alive connection
/// (one thread each) with `response`, byte for byte. Each request is read as its head and a
/// `Content-Length` body, and recorded exactly as it came.
pub fn upstream(path: impl Into<PathBuf>, response: impl Into<Vec<u8>>) -> UnixUpstream {
    let path = path.into();
    let response: Arc<[u8]> = response.into().into();
    let listener =
        UnixListener::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (c, st) = (counts.clone(), stop.clone());
    std::thread::Builder::new()
        .name("testkit-unix-upstream".into())
        .spawn(move || {
            for s in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(s) = s else { continue };
                c.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = s.set_read_timeout(Some(scaled(TIMEOUT)));
                let (c, response) = (c.clone(), response.clone());
                std::thread::spawn(move || answer_each(s, &c, &response));
            }
        })
        .expect("spawn the Unix upstream thread");
    UnixUpstream { path, counts, stop }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The length of the first whole request (head and Content-Length body) in `buf`.
fn whole_request(buf: &[u8]) -> Option<usize> {
    let end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]);
    let length: usize = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    (buf.len() >= end + length).then_some(end + length)
}

fn answer_each(mut s: UnixStream, counts: &Counts, response: &[u8]) {
    let mut buf = Vec::new();
    loop {
        while let Some(n) = whole_request(&buf) {
            counts
                .requests
                .lock()
                .unwrap()
                .push(buf.drain(..n).collect());
            if s.write_all(response).and_then(|()| s.flush()).is_err() {
                return;
            }
        }
        let mut b = [0u8; 8192];
        match s.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
}

impl UnixUpstream {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.counts.accepted.load(Ordering::SeqCst)
    }

    /// Every request so far, exactly as it arrived (head and body), in order.
    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.counts.requests.lock().unwrap().clone()
    }

    /// How many requests so far.
    pub fn count(&self) -> usize {
        self.counts.requests.lock().unwrap().len()
    }
}

impl Drop for UnixUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so its thread sees the flag.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Connects to the Unix socket at `path` with the client's timeouts
/// ([`crate::http::TIMEOUT`], scaled). Panics if nothing listens there.
pub fn connect(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    s.set_read_timeout(Some(scaled(TIMEOUT)))
        .expect("set_read_timeout");
    s.set_write_timeout(Some(scaled(TIMEOUT)))
        .expect("set_write_timeout");
    s
}

/// Writes `bytes` exactly, on a new connection to the Unix socket at `path`, and reads one
/// response (as [`crate::http::send`] does over TCP).
pub fn send(path: &Path, bytes: &[u8]) -> Result<Response, ReadError> {
    let mut s = connect(path);
    s.write_all(bytes)
        .map_err(|e| ReadError::Other(format!("writing the request: {e}")))?;
    read_response(&mut BufReader::new(s), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_records_exact_requests_and_counts_connections() {
        let dir = SocketDir::new();
        let up = upstream(
            dir.path("up.sock"),
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..],
        );
        let post = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        let r = send(up.path(), post).unwrap();
        assert_eq!((r.status, r.text()), (200, "ok"));
        let mut s = connect(up.path());
        let mut r = BufReader::new(s.try_clone().unwrap());
        for _ in 0..2 {
            s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
            assert_eq!(read_response(&mut r, false).unwrap().text(), "ok");
        }
        assert_eq!(up.accepted(), 2);
        assert_eq!(
            up.requests(),
            [
                post.to_vec(),
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()
            ]
        );
        let path = up.path().to_owned();
        drop(up);
        assert!(!path.exists(), "the socket is removed on drop");
    }
}
