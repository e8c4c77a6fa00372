//! The accept loop: HTTP/1.1 connections served by hyper, on TCP or on a Unix socket,
//! graceful shutdown with a grace period.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use telemetry::Telemetry;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::metrics::AppMetrics;
use crate::routes::{handle, State};

/// Default largest `POST /echo` body: 1 MiB.
pub const DEFAULT_ECHO_MAX_BYTES: u64 = 1024 * 1024;
/// Default time requests in flight get to finish once shutdown is asked for.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// How [`serve`] behaves.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Once shutdown is asked for, how long requests in flight may take to finish
    /// before their connections are dropped.
    pub grace: Duration,
    /// Largest request body `POST /echo` answers back; larger is 413.
    pub echo_max_bytes: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            grace: DEFAULT_GRACE,
            echo_max_bytes: DEFAULT_ECHO_MAX_BYTES,
        }
    }
}

/// What can stop the app from serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listening address cannot be bound.
    #[error("cannot listen on {addr}: {error}; is another server using that port? choose another address with --listen or APP_LISTEN")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the bind failed (in the message, not a `source`, so that it is said once).
        error: io::Error,
    },
    /// A Unix socket cannot be made at the path asked for: its directory is missing or not
    /// writable, or something that is not a socket is in the way (the `app` binary exits 2,
    /// as for a bad flag).
    #[error("cannot listen on unix:{}: {reason}; choose another path with --listen or APP_LISTEN", path.display())]
    BindUnix {
        /// The socket path asked for.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// A server already listens on the Unix socket asked for (its socket is not stale).
    #[error("cannot listen on unix:{}: a server is already listening on that socket; stop it or choose another path with --listen or APP_LISTEN", path.display())]
    UnixInUse {
        /// The socket path asked for.
        path: PathBuf,
    },
    /// The listener's own address cannot be read.
    #[error("cannot read the listening socket's address: {0}")]
    LocalAddr(io::Error),
}

/// Binds a listener on `addr` (port 0 picks a free port). Must run inside a tokio runtime.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| ServeError::Bind { addr, error })
}

/// How long a socket already at the path gets to accept a connection before it is taken
/// for a live server's (a stale one refuses at once).
const STALE_PROBE: Duration = Duration::from_secs(1);

/// Binds a Unix socket at `path`. Must run inside a tokio runtime.
///
/// A socket already there that nothing listens on (left by a server that was killed) is
/// removed first; one a server accepts on is [`ServeError::UnixInUse`]. Anything else in
/// the way (a regular file, a directory, a link) is left alone: [`ServeError::BindUnix`],
/// as is a missing or read-only directory. The socket file is removed again when the
/// listener is dropped ([`serve`] drops it when it stops accepting).
pub async fn bind_unix(path: &Path) -> Result<UnixListener, ServeError> {
    let fail = |reason: String| ServeError::BindUnix {
        path: path.to_owned(),
        reason,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            match tokio::time::timeout(STALE_PROBE, UnixStream::connect(path)).await {
                Ok(Err(_)) => match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(fail(format!("cannot remove the stale socket: {e}"))),
                },
                Ok(Ok(_)) | Err(_) => {
                    return Err(ServeError::UnixInUse {
                        path: path.to_owned(),
                    })
                }
            }
        }
        Ok(m) => {
            let what = if m.is_dir() {
                "a directory"
            } else if m.file_type().is_symlink() {
                "a symbolic link"
            } else if m.is_file() {
                "a regular file"
            } else {
                "a file that is not a socket"
            };
            return Err(fail(format!(
                "{what} is in the way (only a stale socket is removed)"
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| {
        let dir = path.parent().unwrap_or(Path::new("/")).display();
        fail(match e.kind() {
            io::ErrorKind::NotFound => format!("{e}: the directory {dir} does not exist"),
            io::ErrorKind::PermissionDenied => format!("{e}: this user cannot write to {dir}"),
            _ => e.to_string(),
        })
    })?;
    let id = std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    Ok(UnixListener {
        inner: listener,
        path: path.to_owned(),
        id,
    })
}

/// A listening Unix socket that removes its socket file when dropped (if the file at the
/// path is still this socket: not one a later server has put there).
#[derive(Debug)]
pub struct UnixListener {
    inner: tokio::net::UnixListener,
    path: PathBuf,
    id: Option<(u64, u64)>,
}

impl UnixListener {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && self.id == Some((m.dev(), m.ino())));
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What [`serve`] accepts on: TCP ([`bind`]) or a Unix socket ([`bind_unix`]).
#[derive(Debug)]
pub enum Listener {
    /// TCP: each connection gets TCP_NODELAY.
    Tcp(TcpListener),
    /// A Unix socket, removed when the listener is dropped.
    Unix(UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

impl From<UnixListener> for Listener {
    fn from(l: UnixListener) -> Self {
        Listener::Unix(l)
    }
}

impl Listener {
    /// Where it listens, as the app prints it: `http://127.0.0.1:5000` (the bound
    /// address) or `unix:/run/app.sock`.
    pub fn describe(&self) -> Result<String, ServeError> {
        match self {
            Listener::Tcp(l) => Ok(format!(
                "http://{}",
                l.local_addr().map_err(ServeError::LocalAddr)?
            )),
            Listener::Unix(l) => Ok(format!("unix:{}", l.path.display())),
        }
    }
}

/// One accepted connection.
enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| Accepted::Tcp(s)),
            Listener::Unix(l) => l.inner.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }
}

/// Serves the app on `listener` (a [`TcpListener`] or a [`Listener`]) until `shutdown`
/// completes, then stops accepting (a Unix socket's file is removed then), lets requests in
/// flight finish within `config.grace` (idle keep-alive connections close at once), drops
/// whatever is left, and returns.
///
/// Accept errors (a client that reset, too many open files) are not fatal: the loop
/// pauses briefly and goes on. Metrics go to `telemetry`; with the agent gone they are
/// dropped, never waited for.
pub async fn serve(
    listener: impl Into<Listener>,
    config: ServeConfig,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let listener = listener.into();
    listener.describe()?;
    let state = Arc::new(State {
        metrics: AppMetrics::new(telemetry),
        echo_max_bytes: config.echo_max_bytes,
    });
    let mut builder = http1::Builder::new();
    builder.keep_alive(true).header_read_timeout(None);
    let (stop_tx, stop_rx) = watch::channel(());
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok(Accepted::Tcp(stream)) => {
                    // Small responses must leave at once, not wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    conns.spawn(connection(stream, builder.clone(), state.clone(), stop_rx.clone()));
                }
                Ok(Accepted::Unix(stream)) => {
                    conns.spawn(connection(stream, builder.clone(), state.clone(), stop_rx.clone()));
                }
                Err(e) => pause_after_accept_error(&e).await,
            },
        }
    }
    drop(listener);
    // Every connection task holds a receiver: tell them all to finish their current request.
    drop(stop_rx);
    let _ = stop_tx.send(());
    let drained = tokio::time::timeout(config.grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = conns.len(),
            grace = ?config.grace,
            "grace period over: dropping connections with requests still in flight"
        );
        conns.shutdown().await;
    }
    Ok(())
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    builder: http1::Builder,
    state: Arc<State>,
    mut stop: watch::Receiver<()>,
) {
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, req).await) }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        // Errors here are the client's (reset, bad request already answered by hyper).
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Errors that concern one connection only are skipped; others (EMFILE, ENOBUFS) get a
/// short pause so the loop does not spin, and a warning.
async fn pause_after_accept_error(e: &io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; retrying in 50ms");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
