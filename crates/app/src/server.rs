//! The accept loop: HTTP/1.1 connections served by hyper, graceful shutdown with a grace
//! period.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use telemetry::Telemetry;
use tokio::net::{TcpListener, TcpStream};
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

/// Serves the app on `listener` until `shutdown` completes, then stops accepting, lets
/// requests in flight finish within `config.grace` (idle keep-alive connections close at
/// once), drops whatever is left, and returns.
///
/// Accept errors (a client that reset, too many open files) are not fatal: the loop
/// pauses briefly and goes on. Metrics go to `telemetry`; with the agent gone they are
/// dropped, never waited for.
pub async fn serve(
    listener: TcpListener,
    config: ServeConfig,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    listener.local_addr().map_err(ServeError::LocalAddr)?;
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
                Ok((stream, _peer)) => {
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

async fn connection(
    stream: TcpStream,
    builder: http1::Builder,
    state: Arc<State>,
    mut stop: watch::Receiver<()>,
) {
    // Small responses must leave at once, not wait for Nagle.
    let _ = stream.set_nodelay(true);
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
