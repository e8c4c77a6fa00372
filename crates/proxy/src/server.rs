//! Connections: our accept loop, on pingora's runtime, on a listener we bound ourselves (so port 0 works and
//! the real address is known), the connection limit, and the graceful-shutdown backlog drain
//! (serve what the kernel already accepted). Each connection is then served by
//! [`crate::dispatch`].

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;

use crate::config::Timeouts;
use crate::gateway::Gateway;
use crate::metrics::{Held, Metrics};

/// Client-side settings applied to every downstream HTTP/1 session.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// The request head must be complete this long after the connection (or, on a kept-alive
    /// connection, after the idle wait) starts.
    pub header: Duration,
    /// Body read inactivity.
    pub read: Duration,
    /// Response write stall.
    pub write: Duration,
    /// Keep-alive idle time (whole seconds).
    pub idle_secs: u64,
}

impl ClientLimits {
    /// From the configured timeouts.
    pub fn from_timeouts(t: &Timeouts) -> Self {
        ClientLimits {
            header: t.client_header,
            read: t.client_read,
            write: t.client_write,
            idle_secs: t.client_idle.as_secs().max(1),
        }
    }
}

/// Everything a connection task needs.
pub struct Shared {
    /// pingora's HTTP proxy around our [`Gateway`].
    pub proxy: Arc<HttpProxy<Gateway>>,
    /// Metrics (connection gauge).
    pub metrics: Arc<Metrics>,
    /// Client-side limits.
    pub limits: ClientLimits,
    /// The HTTP/1 fast path (`None`: every request through pingora's proxy).
    pub fast: Option<Arc<crate::fast::Fast>>,
    /// Largest request head accepted (431 above).
    pub max_header_bytes: usize,
    /// The path the proxy answers itself (`None`: none).
    pub health_path: Option<Box<[u8]>>,
    /// Client connections served at once (one more: 503 and closed).
    pub max_connections: usize,
    /// TLS termination (`None`: plain HTTP).
    pub tls: Option<crate::tls::Tls>,
}

impl Shared {
    /// Counts a new connection in; `false` (and not counted) when the limit is reached.
    fn admit(&self) -> Option<Held<'_>> {
        let held = Held::new(&self.metrics.downstream);
        (self.metrics.downstream.get() <= self.max_connections as i64).then_some(held)
    }

    /// Serves one accepted connection (or refuses it, over the limit), counted in the
    /// downstream gauge while it lasts.
    async fn serve(
        &self,
        stream: pingora::protocols::Stream,
        peer: SocketAddr,
        shutdown: &ShutdownWatch,
    ) {
        let Some(_held) = self.admit() else {
            // Over the limit a TLS client is closed before its handshake: answering 503
            // would first cost the handshake the limit is there to spare.
            if self.tls.is_none() {
                refuse(stream, self.limits).await;
            }
            return;
        };
        if self.tls.is_none() {
            return crate::dispatch::serve(stream, peer, self, shutdown).await;
        }
        // Boxed: the handshake's state would otherwise make every plain connection's task
        // as large as a TLS one's.
        Box::pin(self.serve_tls(stream, peer, shutdown)).await;
    }

    /// The TLS handshake, then HTTP/2 or HTTP/1.1 by ALPN.
    async fn serve_tls(
        &self,
        stream: pingora::protocols::Stream,
        peer: SocketAddr,
        shutdown: &ShutdownWatch,
    ) {
        let Some(tls) = &self.tls else {
            return;
        };
        // Each stage boxed on its own: a future holds the state of its largest stage, so an
        // idle HTTP/1.1 connection would otherwise carry the handshake's and HTTP/2's too.
        let Some(stream) = Box::pin(tls.accept(stream, self.limits.header)).await else {
            self.metrics.handshake_failed();
            return;
        };
        if stream.selected_alpn_proto() == Some(pingora::protocols::ALPN::H2) {
            // pingora's HTTP/2 server: each stream is a session of pingora's proxy.
            let _ = Box::pin(pingora::apps::ServerApp::process_new(
                &self.proxy,
                stream,
                shutdown,
            ))
            .await;
        } else {
            Box::pin(crate::dispatch::serve(stream, peer, self, shutdown)).await;
        }
    }
}

/// Answers `503` to a connection over the limit and closes it, without reading its request
/// (the answer says to try again; a reset would look like a crash to the client).
async fn refuse(mut stream: pingora::protocols::Stream, limits: ClientLimits) {
    use tokio::io::AsyncWriteExt;
    let answer = crate::answers::error(503);
    let _ = tokio::time::timeout(limits.write, async {
        stream.write_all(&answer).await?;
        stream.flush().await?;
        stream.shutdown().await
    })
    .await;
}

/// Accepts connections on `listener` until shutdown, each served by [`Shared::serve`] in
/// its own task on one of the runtime's threads.
///
/// The proxy accepts itself rather than through pingora's listening service: that service
/// spawns each connection as one task whose future holds the TLS handshake inline, so
/// with pingora's `rustls` feature every plain connection cost 6.6 KiB more
/// (`tests/memory.rs`). Here a plain connection's task holds only the dispatcher, and a
/// TLS one boxes its handshake.
pub async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut shutdown: ShutdownWatch,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, peer)) => {
                spawn_serve(tcp, peer, &shared, &shutdown);
            }
            // Out of file descriptors: accept() would fail again at once; let others close.
            Err(e) if e.raw_os_error() == Some(EMFILE) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => {}
        }
    }
}

/// `EMFILE` (too many open files; the same number on every Linux architecture).
const EMFILE: i32 = 24;

/// Serves an accepted TCP connection in a task of its own (pingora's runtime picks the
/// thread), as pingora's listener would: no buffers in front of the socket, Nagle off,
/// the peer's address in the socket digest.
fn spawn_serve(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    shutdown: &ShutdownWatch,
) -> Option<tokio::task::JoinHandle<()>> {
    let _ = tcp.set_nodelay(true);
    let tcp = tcp.into_std().ok()?;
    let shared = shared.clone();
    let shutdown = shutdown.clone();
    Some(pingora_runtime::current_handle().spawn(async move {
        // Registered with the reactor of the thread that serves it.
        let Ok(tcp) = tokio::net::TcpStream::from_std(tcp) else {
            return;
        };
        let mut stream: L4Stream = tcp.into();
        let digest = SocketDigest::from_raw_fd(stream.as_raw_fd());
        let _ = digest.peer_addr.set(Some(peer.into()));
        stream.set_socket_digest(digest);
        shared.serve(Box::new(stream), peer, &shutdown).await;
    }))
}

/// Serves, without waiting, the connections the kernel already accepted on `listener` (a
/// duplicate of the listening socket) once the accept loop has stopped; then closes it,
/// so later clients are refused instead of reset.
pub async fn drain_backlog(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: ShutdownWatch,
) {
    let mut tasks = Vec::new();
    if listener.set_nonblocking(true).is_ok() {
        while let Ok((tcp, peer)) = listener.accept() {
            if tcp.set_nonblocking(true).is_err() {
                continue;
            }
            let Ok(tcp) = tokio::net::TcpStream::from_std(tcp) else {
                continue;
            };
            tasks.extend(spawn_serve(tcp, peer, &shared, &shutdown));
        }
    }
    drop(listener);
    for t in tasks {
        let _ = t.await;
    }
}
