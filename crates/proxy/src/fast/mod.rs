//! The HTTP/1 forwarding fast path: the common request, forwarded with as little work as
//! the job needs, on pingora's runtime.
//!
//! The dispatcher ([`crate::dispatch`]) reads and checks every request head; a request
//! comes here when it is HTTP/1.1 in origin or absolute form, without `Expect` or an upgrade, whatever
//! its body (none, `Content-Length` of any size, or chunked). Anything else goes to
//! pingora's HTTP proxy ([`crate::gateway::Gateway`]) for that request.
//!
//! What it saves compared with pingora's proxy per request (bench/results/PERFLOG.md): the
//! upstream pool's idle-watch task, the second (case-preserving) header map on both sides,
//! two channels and a join of two halves, boxed hook futures. The request head is rewritten
//! byte for byte into one buffer and sent with the body bytes that came with it in one
//! write; the rest of the body and the response are relayed as they arrive.
//!
//! Layout: [`stream`] (an upstream connection: TCP or a Unix socket), [`pool`] (idle
//! upstream connections, checked before reuse), [`request`] (the
//! upstream head), [`response`] (the response head, body framing, chunk scanning),
//! [`relay`] (one request forwarded: body out, response back, the client watched).

pub(crate) mod pool;
pub(crate) mod relay;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream;

use std::sync::Arc;
use std::time::Duration;

use pingora::server::ShutdownWatch;
use tokio::net::{TcpStream, UnixStream};

use crate::config::{Config, ForwardedPolicy};
use crate::gateway::{Picker, Target};
use crate::headers::RequestIds;
use crate::metrics::{ErrorKind, Metrics};
use pool::Pool;
use stream::Stream;

/// The fast path's shared state (one per process).
pub struct Fast {
    pub(crate) pools: Vec<Pool>,
    pub(crate) pool_size: usize,
    pub(crate) picker: Arc<Picker>,
    pub(crate) forwarded: ForwardedPolicy,
    pub(crate) ids: Arc<RequestIds>,
    pub(crate) metrics: Arc<Metrics>,
    connect: Duration,
    pub(crate) read: Duration,
    pub(crate) write: Duration,
    pub(crate) upstream_idle: Duration,
}

impl std::fmt::Debug for Fast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fast")
            .field("pools", &self.pools)
            .finish_non_exhaustive()
    }
}

impl Fast {
    /// The fast path for these resolved upstreams (`resolved[i]` for `config.upstreams[i]`).
    pub fn new(
        config: &Config,
        resolved: &[Target],
        picker: Arc<Picker>,
        ids: Arc<RequestIds>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let t = &config.timeouts;
        Fast {
            pools: resolved.iter().cloned().map(Pool::new).collect(),
            pool_size: config.keepalive_pool_size.div_ceil(resolved.len().max(1)),
            picker,
            forwarded: config.forwarded,
            ids,
            metrics,
            connect: t.connect,
            read: t.read,
            write: t.write,
            upstream_idle: t.upstream_idle,
        }
    }

    /// Drops idle pooled connections that are no longer usable (see [`pool`]).
    pub fn sweep(&self) {
        for pool in &self.pools {
            pool.sweep(self.upstream_idle);
        }
    }

    /// Idle pooled connections, all upstreams together.
    pub fn idle_connections(&self) -> usize {
        self.pools.iter().map(Pool::idle).sum()
    }

    /// Runs [`Fast::sweep`] every second until `shutdown` turns true.
    pub async fn sweep_idle(self: Arc<Self>, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sweep(),
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
            }
        }
    }

    /// A new connection to upstream `i`: refused (or, for a Unix socket, no socket at the
    /// path): [`ErrorKind::Connect`]; not made within `timeouts.connect`: [`ErrorKind::Timeout`].
    async fn connect(&self, i: usize) -> Result<Stream, ErrorKind> {
        let connecting = async {
            match &self.pools[i].target {
                Target::Tcp(addr) => {
                    let s = TcpStream::connect(*addr).await?;
                    let _ = s.set_nodelay(true);
                    Ok::<_, std::io::Error>(Stream::Tcp(s))
                }
                Target::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
            }
        };
        match tokio::time::timeout(self.connect, connecting).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(_)) => Err(ErrorKind::Connect),
            Err(_) => Err(ErrorKind::Timeout),
        }
    }
}
