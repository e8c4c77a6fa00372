//! Connections: pingora's accept loop on a listener we bound ourselves (so port 0 works and
//! the real address is known), our per-connection keep-alive loop with the request-head
//! deadline, and the graceful-shutdown backlog drain (serve what the kernel already accepted).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;

use crate::config::Timeouts;
use crate::gateway::{ConnInfo, Gateway};
use crate::metrics::Metrics;

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
}

/// pingora's per-connection hook: runs our keep-alive loop on each accepted stream.
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
        let metrics = &self.shared.metrics;
        metrics.downstream.add(1);
        crate::fast::serve(stream, peer, &self.shared, shutdown).await;
        metrics.downstream.add(-1);
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
            shared.metrics.downstream.add(1);
            tasks.push(tokio::spawn(async move {
                crate::fast::serve(Box::new(stream), peer, &shared, &shutdown).await;
                shared.metrics.downstream.add(-1);
            }));
        }
    }
    drop(listener);
    for t in tasks {
        let _ = t.await;
    }
}

/// Serves one client connection through pingora's HTTP proxy: HTTP/1 requests one after
/// another while it is kept alive.
pub(crate) async fn serve_conn(
    stream: pingora::protocols::Stream,
    peer: SocketAddr,
    shared: &Shared,
    shutdown: &ShutdownWatch,
) {
    let limits = shared.limits;
    let conn = Arc::new(ConnInfo::new(peer));
    let mut session = ServerSession::new_http1(stream);
    session.set_keepalive(if *shutdown.borrow() {
        None
    } else {
        Some(limits.idle_secs)
    });
    let mut deadline = limits.header;
    // One timer for the connection, re-armed per request (cheaper than a new one each time).
    let sleep = tokio::time::sleep(deadline);
    tokio::pin!(sleep);
    loop {
        session.set_read_timeout(Some(limits.read));
        session.set_write_timeout(Some(limits.write));
        conn.head_read.store(false, Ordering::Relaxed);
        session.set_connection_user_context(Some(Box::new(conn.clone())));
        let fut = shared.proxy.process_new_http(session, shutdown);
        tokio::pin!(fut);
        sleep.as_mut().reset(tokio::time::Instant::now() + deadline);
        let reused = tokio::select! {
            biased;
            r = &mut fut => r,
            _ = &mut sleep => {
                if conn.head_read.load(Ordering::Acquire) {
                    fut.await
                } else {
                    // The head did not arrive in time: drop the connection.
                    None
                }
            }
        };
        let Some(reused) = reused else { return };
        let (stream, settings) = reused.consume();
        session = ServerSession::new_http1(stream);
        if let Some(settings) = settings {
            settings.apply_to_session(&mut session);
        }
        // On a kept-alive connection the wait for the next request is part of the deadline.
        deadline = limits.header + Duration::from_secs(limits.idle_secs);
    }
}
