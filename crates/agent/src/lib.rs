//! A DogStatsD agent of our own: it receives what the TinyFish app and proxy emit (over
//! UDP and the agent's Unix datagram `dsd.socket`), aggregates it as the Datadog agent
//! does, and serves the result as a JSON snapshot. The bench embeds it, one window per
//! trial; `bench agent` runs it alone, as a stand-in for the Datadog agent that needs
//! no API key.
//!
//! Layout, following the data:
//! - [`parse`]: the datagram format, as a pure function (`parse_packet(&[u8])`);
//! - [`aggregate`]: [`Aggregator`], per (type, name, tag set), with counts of
//!   malformed lines by kind;
//! - [`receive`]: one OS thread per socket, recv into a reused buffer, kernel drops;
//! - [`snapshot`]: [`Snapshot`], the JSON data and its look-up helpers;
//! - [`series`]: per-second points per service (CPU, memory, request rate, latency) in
//!   a bounded ring, for the live page;
//! - [`http`]: `GET /` returns the snapshot, `GET /dashboard` the live page, `GET
//!   /series` its data;
//! - [`print`](mod@print): `--print`, one aligned line per metric that changed, per interval;
//! - [`cli`]: [`Cli`] and [`run`] for `bench agent`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), agent::AgentError> {
//! let agent = agent::start(agent::AgentConfig::ephemeral()).await?;
//! // … point DD_AGENT_HOST/DD_DOGSTATSD_PORT at agent.udp_addr(), run a trial …
//! let trial = agent.take_snapshot();
//! let requests = trial.total("tinyfish.app.requests", &["status_class:2xx"]);
//! # let _ = requests;
//! agent.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Run alone: `cargo run -p bench -- agent --listen 127.0.0.1:8125 --http 127.0.0.1:8181 --print`,
//! then `curl -s 127.0.0.1:8181/`, or open http://127.0.0.1:8181/dashboard.
//!
//! Metrics made inside the process (the bench's container check) go in through a
//! [`Submitter`] ([`AgentHandle::submitter`]), as if received.

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod cli;
pub mod http;
pub mod parse;
pub mod print;
pub mod receive;
pub mod series;
pub mod snapshot;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use aggregate::Aggregator;
pub use cli::{run, run_with, Cli};
pub use parse::{parse_packet, Item, Malformed, MetricKind};
pub use series::{Point, SeriesPage, ServicePoint};
pub use snapshot::{EventSnapshot, MetricSnapshot, ServiceCheckSnapshot, Snapshot};

use receive::{DropCounter, Shared};

/// The default flush interval of `--print` (the Datadog agent flushes every 10 s).
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// What to listen on and how to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// UDP address for DogStatsD; port 0 picks a free port (see [`AgentHandle::udp_addr`]).
    pub udp: SocketAddr,
    /// A Unix datagram socket to listen on too (the agent's `dsd.socket` convention).
    pub socket: Option<PathBuf>,
    /// Where to serve the JSON snapshot (`GET /`) and the live page (`GET /dashboard`);
    /// none: no HTTP server, and no per-second series kept (the page is their reader).
    pub http: Option<SocketAddr>,
    /// Print one line per changed metric every `flush_interval` on stdout.
    pub print: bool,
    /// How often `print` writes.
    pub flush_interval: Duration,
}

impl AgentConfig {
    /// UDP on 127.0.0.1 with a free port, nothing else: what the bench and tests use.
    pub fn ephemeral() -> Self {
        AgentConfig {
            udp: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..AgentConfig::default()
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            udp: SocketAddr::from(([127, 0, 0, 1], 8125)),
            socket: None,
            http: None,
            print: false,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
        }
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The UDP address could not be bound.
    #[error("cannot listen for DogStatsD on udp://{addr}: {cause} (is another agent running? choose another address with --listen)")]
    Udp {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        cause: io::Error,
    },
    /// The Unix socket could not be bound.
    #[error("cannot listen for DogStatsD on unix://{}: {cause} (remove it or choose another path with --socket)", path.display())]
    Socket {
        /// The path.
        path: PathBuf,
        /// The cause.
        cause: io::Error,
    },
    /// The HTTP address could not be bound.
    #[error(
        "cannot serve the snapshot on http://{addr}: {cause} (choose another address with --http)"
    )]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        cause: io::Error,
    },
    /// A thread could not be started.
    #[error("cannot start the agent's {what} thread: {cause}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// The cause.
        cause: io::Error,
    },
    /// `flush_interval` is zero.
    #[error("the flush interval must be longer than zero (e.g. --flush-interval 10s)")]
    FlushInterval,
}

/// What the receivers, the HTTP server and the handle share.
#[derive(Debug)]
pub(crate) struct Core {
    shared: Arc<Shared>,
    drops: Option<DropCounter>,
    /// Kernel drops at the start of the current window.
    drops_base: Mutex<u64>,
    /// The live page's points, when HTTP is served.
    series: Option<Mutex<series::Series>>,
}

impl Core {
    fn drops_now(&self) -> Option<u64> {
        self.drops.as_ref().and_then(DropCounter::read)
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut s = self.shared.main().snapshot();
        let base = *self.drops_base.lock().unwrap_or_else(|p| p.into_inner());
        s.kernel_drops = self.drops_now().map(|d| d.saturating_sub(base));
        s
    }

    /// The live page's points after `since`; `None` when no series are kept.
    pub(crate) fn series_page(&self, since: Option<f64>) -> Option<SeriesPage> {
        let s = self.series.as_ref()?;
        Some(s.lock().unwrap_or_else(|p| p.into_inner()).page(since))
    }

    pub(crate) fn take_snapshot(&self) -> Snapshot {
        // Read /proc before taking the lock: the receiver must not wait on it.
        let drops = self.drops_now();
        let old = std::mem::take(&mut *self.shared.main());
        let mut s = old.snapshot();
        let mut base = self.drops_base.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = drops {
            s.kernel_drops = Some(d.saturating_sub(*base));
            *base = d;
        }
        s
    }
}

/// A running agent. Dropping it stops the receivers too (within 100 ms), but
/// [`AgentHandle::shutdown`] also waits for them and removes the socket file.
#[derive(Debug)]
pub struct AgentHandle {
    core: Arc<Core>,
    udp_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    socket: Option<PathBuf>,
    recv_buffer: usize,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    printer: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    series: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    http_stop: Option<tokio::sync::watch::Sender<bool>>,
    http_task: Option<tokio::task::JoinHandle<()>>,
}

/// Binds every socket, then starts the receivers, the HTTP server (on the current
/// tokio runtime) and the printer. Returns once all are listening.
pub async fn start(config: AgentConfig) -> Result<AgentHandle, AgentError> {
    if config.flush_interval.is_zero() {
        return Err(AgentError::FlushInterval);
    }
    let (udp, recv_buffer) = receive::bind_udp(config.udp).map_err(|cause| AgentError::Udp {
        addr: config.udp,
        cause,
    })?;
    let udp_addr = udp.local_addr().map_err(|cause| AgentError::Udp {
        addr: config.udp,
        cause,
    })?;
    let http = match config.http {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|cause| AgentError::Http { addr, cause })?,
        ),
        None => None,
    };
    let http_addr = match &http {
        Some(l) => Some(l.local_addr().map_err(|cause| AgentError::Http {
            addr: config.http.unwrap_or(udp_addr),
            cause,
        })?),
        None => None,
    };

    // Last: a failure above leaves no socket file behind.
    let unix = match &config.socket {
        Some(path) => Some(
            receive::bind_unix(path).map_err(|cause| AgentError::Socket {
                path: path.clone(),
                cause,
            })?,
        ),
        None => None,
    };
    let keep_series = http.is_some();
    let shared = Arc::new(Shared::with_windows(config.print, keep_series));
    let drops = DropCounter::for_socket(&udp);
    let core = Arc::new(Core {
        shared: shared.clone(),
        drops,
        drops_base: Mutex::new(0),
        series: keep_series.then(|| Mutex::new(series::Series::new())),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut handle = AgentHandle {
        core: core.clone(),
        udp_addr,
        http_addr,
        socket: config.socket.clone(),
        recv_buffer,
        stop: stop.clone(),
        threads: Vec::new(),
        printer: None,
        series: None,
        http_stop: None,
        http_task: None,
    };
    let thread_err = |what| move |cause| AgentError::Thread { what, cause };
    handle.threads.push(
        receive::spawn("dogstatsd-udp", udp, shared.clone(), stop.clone())
            .map_err(thread_err("UDP receiver"))?,
    );
    if let Some(unix) = unix {
        handle.threads.push(
            receive::spawn("dogstatsd-uds", unix, shared.clone(), stop.clone())
                .map_err(thread_err("Unix socket receiver"))?,
        );
    }
    if config.print {
        let (tx, rx) = mpsc::channel();
        let t = print::spawn(shared.clone(), config.flush_interval, rx)
            .map_err(thread_err("printer"))?;
        handle.printer = Some((tx, t));
    }
    if keep_series {
        let (tx, rx) = mpsc::channel();
        let t = spawn_series(core.clone(), rx).map_err(thread_err("series"))?;
        handle.series = Some((tx, t));
    }
    if let Some(listener) = http {
        let (tx, rx) = tokio::sync::watch::channel(false);
        handle.http_task = Some(tokio::spawn(http::serve(listener, core, rx)));
        handle.http_stop = Some(tx);
    }
    Ok(handle)
}

impl AgentHandle {
    /// The bound UDP address (the real port when the config said 0).
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The bound HTTP address, if serving.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The Unix socket path, if listening on one.
    pub fn socket_path(&self) -> Option<&std::path::Path> {
        self.socket.as_deref()
    }

    /// The receive buffer the kernel granted the UDP socket, in bytes.
    pub fn recv_buffer(&self) -> usize {
        self.recv_buffer
    }

    /// What was aggregated in the current window.
    pub fn snapshot(&self) -> Snapshot {
        self.core.snapshot()
    }

    /// What was aggregated in the current window, and a new window starting now
    /// (one per trial).
    pub fn take_snapshot(&self) -> Snapshot {
        self.core.take_snapshot()
    }

    /// A way to add metrics made inside the process to every window, as if received.
    pub fn submitter(&self) -> Submitter {
        Submitter {
            shared: self.core.shared.clone(),
        }
    }

    /// One line for a start-up log: where the agent listens.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "dogstatsd agent listening on udp://{} (receive buffer {} KiB)",
            self.udp_addr,
            self.recv_buffer / 1024
        );
        if let Some(p) = &self.socket {
            s.push_str(&format!(", unix://{}", p.display()));
        }
        if let Some(a) = self.http_addr {
            s.push_str(&format!(
                ", snapshot at http://{a}/, live page at http://{a}/dashboard"
            ));
        }
        s
    }

    fn signal_stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(tx) = self.http_stop.take() {
            let _ = tx.send(true);
        }
    }

    /// Stops receiving and serving, prints the last interval (with `print`), waits for
    /// the threads and removes the Unix socket file.
    pub async fn shutdown(mut self) {
        self.signal_stop();
        if let Some(task) = self.http_task.take() {
            let _ = task.await;
        }
        let threads = std::mem::take(&mut self.threads);
        let printer = self.printer.take();
        let series = self.series.take();
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
            for (tx, t) in printer.into_iter().chain(series) {
                let _ = tx.send(());
                let _ = t.join();
            }
        })
        .await;
        if let Some(p) = self.socket.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        self.signal_stop();
        if let Some(p) = self.socket.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Adds metrics made inside the process (not received) to the agent's windows: the
/// snapshot, `--print` and the live page see them as if a client had sent them, but no
/// datagram or line is counted. Cheap to clone; usable from any thread.
#[derive(Debug, Clone)]
pub struct Submitter {
    shared: Arc<Shared>,
}

impl Submitter {
    /// A gauge `name` = `value` with `tags` (`key:value`; a `,` in a tag, which would
    /// split it, becomes `_`). Non-finite values are not submitted.
    pub fn gauge(&self, name: &str, value: f64, tags: &[String]) {
        if !value.is_finite() || name.is_empty() {
            return;
        }
        let tags = tags
            .iter()
            .map(|t| t.replace(',', "_"))
            .collect::<Vec<_>>()
            .join(",");
        let raw_value = value.to_string();
        let item = Item::Metric(parse::Metric {
            name,
            kind: MetricKind::Gauge,
            raw_value: &raw_value,
            sample_rate: 1.0,
            tags: parse::Tags(&tags),
            container_id: None,
            timestamp: None,
        });
        self.shared.ingest_item(&item);
    }
}

/// Starts the thread that closes a one-second window every second (on a fixed
/// schedule, so the points do not drift) and adds its point to the series.
fn spawn_series(core: Arc<Core>, stop: mpsc::Receiver<()>) -> io::Result<JoinHandle<()>> {
    const SECOND: Duration = Duration::from_secs(1);
    std::thread::Builder::new()
        .name("agent-series".into())
        .spawn(move || {
            let mut next = std::time::Instant::now() + SECOND;
            loop {
                let wait = next.saturating_duration_since(std::time::Instant::now());
                if !matches!(
                    stop.recv_timeout(wait),
                    Err(mpsc::RecvTimeoutError::Timeout)
                ) {
                    return;
                }
                next += SECOND;
                let now = std::time::Instant::now();
                if next < now {
                    // Far behind (a suspended machine): start the schedule again.
                    next = now + SECOND;
                }
                let (Some(window), Some(series)) = (core.shared.take_series(), &core.series) else {
                    return;
                };
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                series
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(&window, t);
            }
        })
}
