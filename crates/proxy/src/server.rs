//! Connections: pingora's accept loop on a listener we bound ourselves (so port 0 works and
//! the real address is known), the connection limit, and the graceful-shutdown backlog drain
//! (serve what the kernel already accepted). Each connection is then served by
//! [`crate::dispatch`].

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use pingora::apps::{HttpServerApp, ServerApp};
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
            refuse(stream, self.limits).await;
            return;
        };
        crate::dispatch::serve(stream, peer, self, shutdown).await;
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

/// pingora's per-connection hook: serves each accepted stream.
/// Hosted by pingora's listening service, which sizes the stream's buffers on accept.
pub struct ConnApp {
    /// State shared by all connections.
    pub shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl ServerApp for ConnApp {
    async fn process_new(
        self: &Arc<Self>,
        stream: pingora::protocols::Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<pingora::protocols::Stream> {
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet().copied()))
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        self.shared.serve(stream, peer, shutdown).await;
        None
    }

    async fn cleanup(&self) {
        self.shared.proxy.http_cleanup().await;
    }
}

/// Serves, without waiting, the connections the kernel already accepted on `listener` (a
/// duplicate of the listening socket) once pingora's accept loop has stopped; then closes it,
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
            let _ = tcp.set_nodelay(true);
            let mut stream: L4Stream = tcp.into();
            let digest = SocketDigest::from_raw_fd(stream.as_raw_fd());
            let _ = digest.peer_addr.set(Some(peer.into()));
            stream.set_socket_digest(digest);
            let shared = shared.clone();
            let shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                shared.serve(Box::new(stream), peer, &shutdown).await;
            }));
        }
    }
    drop(listener);
    for t in tasks {
        let _ = t.await;
    }
}
