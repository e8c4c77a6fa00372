//! [`App`]: `app::serve` on 127.0.0.1:0 in a background thread with its own runtime.

use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;
use std::time::Duration;

use app::ServeConfig;
use telemetry::Telemetry;
use tokio::sync::oneshot;

/// A running app; shuts down (grace [`App::GRACE`]) and joins its thread on drop.
#[derive(Debug)]
pub struct App {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl App {
    /// Grace period of apps started here: short, so dropping one never stalls a test.
    pub const GRACE: Duration = Duration::from_secs(2);

    /// Starts the app with metrics off.
    pub fn start() -> App {
        App::start_with(Telemetry::off())
    }

    /// Starts the app sending metrics through `telemetry`.
    pub fn start_with(telemetry: Telemetry) -> App {
        App::start_with_config(
            ServeConfig {
                grace: App::GRACE,
                ..ServeConfig::default()
            },
            telemetry,
        )
    }

    /// Starts the app with a chosen [`ServeConfig`] (e.g. a small `echo_max_bytes`).
    ///
    /// Panics when the socket or the thread cannot be created: a test cannot go on.
    pub fn start_with_config(config: ServeConfig, telemetry: Telemetry) -> App {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let (stop, stopped) = oneshot::channel::<()>();
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
                    app::serve(listener, config, telemetry, shutdown)
                        .await
                        .expect("app::serve");
                });
            })
            .expect("spawn app thread");
        App {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The address the app listens on (127.0.0.1, a free port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Asks the app to stop and waits for it (requests in flight get [`App::GRACE`]).
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

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

impl Drop for App {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
