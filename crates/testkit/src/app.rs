//! [`App`]: `app::serve` on 127.0.0.1:0 in a background thread with its own
//! single-threaded runtime, from `testkit::app()…start()`; stopped on drop. [`UnixApp`]:
//! the same on a Unix socket, from `testkit::app()…start_unix(path)`.
//! [`wait_in_flight`] observes, through the app's own in-flight gauge, that a request has
//! reached the app's handler (rather than sleeping and hoping it has).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use app::ServeConfig;
use telemetry::Telemetry;
use tokio::sync::oneshot;

use crate::dogstatsd::Sink;
use crate::patience::{scaled, wait, WAIT};
use crate::Listening;

/// Grace period of apps started here: short, so dropping one never stalls a test.
pub const GRACE: Duration = Duration::from_secs(2);

/// Says how to start an app: `testkit::app()`.
#[derive(Debug, Clone)]
pub struct AppBuilder {
    config: ServeConfig,
    telemetry: Telemetry,
}

/// An app with metrics off and a [`GRACE`] grace period, to be started.
pub fn app() -> AppBuilder {
    AppBuilder {
        config: ServeConfig {
            grace: GRACE,
            ..ServeConfig::default()
        },
        telemetry: Telemetry::off(),
    }
}

impl AppBuilder {
    /// Sends metrics through `telemetry` (keep a clone to `flush` it).
    pub fn telemetry(mut self, telemetry: Telemetry) -> AppBuilder {
        self.telemetry = telemetry;
        self
    }

    /// Sends metrics to `sink`, tagged with `tags` (`("DD_ENV", "test")`, …).
    pub fn metrics_to(self, sink: &Sink, tags: &[(&str, &str)]) -> AppBuilder {
        let telemetry = Telemetry::start(&sink.datadog_env(tags), app::DEFAULT_SERVICE)
            .expect("telemetry for a test sink");
        self.telemetry(telemetry)
    }

    /// Serves with `config` (e.g. a small `echo_max_bytes`).
    pub fn config(mut self, config: ServeConfig) -> AppBuilder {
        self.config = config;
        self
    }

    /// Binds 127.0.0.1:0 and serves. Panics when the socket or the thread cannot be
    /// created: a test cannot go on.
    pub fn start(self) -> App {
        let AppBuilder { config, telemetry } = self;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let (stop, stopped) = oneshot::channel::<()>();
        let t = telemetry.clone();
        let thread = std::thread::Builder::new()
            .name(format!("testkit-app-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let shutdown = async {
                        let _ = stopped.await;
                    };
                    app::serve(listener, config, t, shutdown)
                        .await
                        .expect("app::serve");
                });
            })
            .expect("spawn the app thread");
        App {
            addr,
            telemetry,
            served: Served {
                stop: Some(stop),
                thread: Some(thread),
            },
        }
    }
}

impl AppBuilder {
    /// Binds a Unix socket at `path` ([`app::bind_unix`]: a stale socket there is removed)
    /// and serves on it. Panics when the socket or the thread cannot be created.
    pub fn start_unix(self, path: impl Into<PathBuf>) -> UnixApp {
        let AppBuilder { config, telemetry } = self;
        let path = path.into();
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound_tx, bound) = std::sync::mpsc::channel();
        let p = path.clone();
        let thread = std::thread::Builder::new()
            .name("testkit-app-unix".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    let listener = match app::bind_unix(&p).await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = bound_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = bound_tx.send(Ok(()));
                    let shutdown = async {
                        let _ = stopped.await;
                    };
                    app::serve(listener, config, telemetry, shutdown)
                        .await
                        .expect("app::serve");
                });
            })
            .expect("spawn the app thread");
        match bound.recv_timeout(scaled(WAIT)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the app cannot listen on {}: {e}", path.display()),
            Err(_) => panic!("the app did not bind {} in time", path.display()),
        }
        UnixApp {
            path,
            served: Served {
                stop: Some(stop),
                thread: Some(thread),
            },
        }
    }
}

/// An app serving on a Unix socket ([`AppBuilder::start_unix`]); shuts down (removing its
/// socket) and joins its thread on drop.
#[derive(Debug)]
pub struct UnixApp {
    path: PathBuf,
    served: Served,
}

impl UnixApp {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Asks the app to stop and waits for it (its socket file is removed then).
    pub fn shutdown(mut self) {
        self.served.stop_and_join();
    }
}

/// An app serving on its own thread: asked to stop and joined on drop.
#[derive(Debug)]
struct Served {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Served {
    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let joined = thread.join();
            if joined.is_err() && !std::thread::panicking() {
                panic!("the app thread panicked");
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// A running app; shuts down (grace [`GRACE`] unless configured) and joins its thread on
/// drop.
#[derive(Debug)]
pub struct App {
    addr: SocketAddr,
    telemetry: Telemetry,
    served: Served,
}

impl App {
    /// The address the app listens on (127.0.0.1, a free port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Its metrics handle (off unless started with some).
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Asks the app to stop and waits for it (requests in flight get the grace period).
    pub fn shutdown(mut self) {
        self.served.stop_and_join();
    }
}

impl Listening for App {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Waits until an app whose metrics go through `telemetry` to `sink` reports `n` requests
/// in flight (`tinyfish.app.inflight`), flushing `telemetry` while it waits. The gauge
/// rises when a request reaches the handler: this is how a test knows a request was
/// accepted and is being handled. For an app in another process, wait on the sink alone
/// (its own flusher sends the gauge every second).
pub fn wait_in_flight(sink: &Sink, telemetry: &Telemetry, n: i64) {
    wait(format!("{n} request(s) in flight at the app"))
        .every(Duration::from_millis(50))
        .until(|| {
            telemetry.flush();
            sink.metrics()
                .iter()
                .any(|m| m.name == telemetry::names::APP_INFLIGHT && m.value == n as f64)
        });
}
