//! The TinyFish reverse proxy: HTTP/1 in front of one or more upstreams, built on
//! Cloudflare's pingora 0.9.
//!
//! Layout, following one request:
//! - [`config`]: the TOML configuration ([`Config`]), validated once before anything binds;
//! - [`server`]: the accept loop (on pingora's runtime) on a listener we bind ourselves (so
//!   `--listen 127.0.0.1:0` reports the real port), the connection limit, graceful shutdown;
//! - [`dispatch`]: each connection's keep-alive loop: every request head read within the
//!   header deadline, checked ([`check`]: one set of RFC 9110/9112 rules for both paths,
//!   refusals from [`answers`]), then routed;
//! - [`fast`]: the HTTP/1 forwarding fast path for the common request (HTTP/1.1 in origin
//!   or absolute form, any body, streamed); anything else goes on to pingora's proxy below;
//! - [`gateway`]: pingora's `ProxyHttp` hooks: upstream choice (round-robin with TCP health
//!   checks when there are several), the header rules of [`headers`], 502/504 answers,
//!   metrics;
//! - [`tls`]: TLS termination (`[tls]`): the handshake on accept, then HTTP/2 to pingora's
//!   HTTP/2 server and HTTP/1.1 to the dispatcher;
//! - [`metrics`]: pre-created DogStatsD handles from the `telemetry` crate.
//!
//! [`run`] ties them together; the `proxy` binary and the bench's `proxy` subcommand call it
//! with a [`Cli`].
//!
//! ```text
//! proxy -c deploy/proxy.toml
//! proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:5000     # prints "listening on http://127.0.0.1:PORT"
//! proxy --listen 127.0.0.1:0 --upstream unix:/run/tinyfish/app.sock   # an app on this host
//! curl -i http://127.0.0.1:PORT/
//! ```

#![forbid(unsafe_code)]

pub mod answers;
pub mod buffers;
pub mod check;
pub mod config;
pub mod dispatch;
pub mod fast;
pub mod gateway;
pub mod headers;
pub mod metrics;
pub mod rewind;
pub mod server;
pub mod tls;

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use pingora::apps::HttpServerApp;
use pingora::lb::{health_check::TcpHealthCheck, selection::RoundRobin, LoadBalancer};
use pingora::server::configuration::ServerConf;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

pub use config::{Config, ConfigError, ForwardedPolicy, Timeouts};

/// Command-line flags of the proxy (embedded by the `proxy` binary and the bench).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Cli {
    /// Configuration file (TOML, see deploy/proxy.toml); without it the defaults apply.
    #[arg(short = 'c', long = "config", env = "PROXY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on, overriding the file (port 0: any free port, printed on stdout).
    #[arg(long, env = "PROXY_LISTEN")]
    pub listen: Option<String>,
    /// Upstream host:port, or unix:/path for a Unix socket (then the only one), overriding
    /// the file's list; repeat for several.
    #[arg(long = "upstream", env = "PROXY_UPSTREAMS", value_delimiter = ',')]
    pub upstreams: Vec<String>,
    /// Worker threads, overriding the file (default: one per CPU).
    #[arg(long, env = "PROXY_THREADS")]
    pub threads: Option<usize>,
    /// Send every request through pingora's proxy, overriding the file's `fast_path`.
    #[arg(long, env = "PROXY_NO_FAST_PATH")]
    pub no_fast_path: bool,
    /// Validate the configuration and exit (non-zero, naming the key, when it is wrong).
    #[arg(long)]
    pub check: bool,
}

/// The configuration `cli` asks for: the file (or defaults) with the flags applied, validated.
pub fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(listen) = &cli.listen {
        config.listen = listen.clone();
    }
    if !cli.upstreams.is_empty() {
        config.upstreams = cli.upstreams.clone();
    }
    if let Some(t) = cli.threads {
        config.threads = Some(t);
    }
    if cli.no_fast_path {
        config.fast_path = false;
    }
    config.validate().map_err(|mut e| {
        e.origin = match &cli.config {
            Some(p) => format!("{} (with command-line overrides)", p.display()),
            None => "command line".to_owned(),
        };
        e
    })?;
    Ok(config)
}

/// The TLS state `config` asks for (`None`: plain HTTP), its certificate and key read and
/// checked; an error names the key and the file's line, as [`load_config`]'s do.
pub fn load_tls(cli: &Cli, config: &Config) -> Result<Option<tls::Tls>, ConfigError> {
    let Some(settings) = &config.tls else {
        return Ok(None);
    };
    tls::Tls::load(settings).map(Some).map_err(|mut e| {
        if let Some(path) = &cli.config {
            e.origin = path.display().to_string();
            if let (Ok(src), Some(key)) = (std::fs::read_to_string(path), &e.key) {
                e.line = config::line_of_key(&src, key);
            }
        }
        e
    })
}

/// Where upstream `spelled` is: a Unix socket's path as it is (the socket need not exist
/// yet: until it does, requests get 502), a `host:port` resolved now.
fn resolve_upstream(spelled: &str) -> anyhow::Result<gateway::Target> {
    match config::unix_socket_path(spelled) {
        Some(path) => Ok(gateway::Target::Unix(path.to_owned())),
        None => resolve("upstream", spelled).map(gateway::Target::Tcp),
    }
}

fn resolve(what: &str, hostport: &str) -> anyhow::Result<SocketAddr> {
    hostport
        .to_socket_addrs()
        .with_context(|| format!("{what} {hostport:?}: cannot resolve the address"))?
        .next()
        .with_context(|| format!("{what} {hostport:?}: the name has no address"))
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

enum Stop {
    Graceful,
    Fast,
}

/// Runs the proxy until SIGTERM (graceful: stop accepting, finish requests in flight within
/// `timeouts.shutdown_grace`) or SIGINT (fast). Validates the configuration before binding
/// anything (a bad one is a [`ConfigError`]); prints one line to stderr and exactly one line,
/// `listening on http://ADDR` with the bound address (`https://` with `[tls]`), to stdout. `Ok` means exit 0.
pub fn run(cli: Cli, dd: telemetry::DatadogEnv) -> anyhow::Result<()> {
    let config = load_config(&cli)?;
    let tls = load_tls(&cli, &config)?;
    if cli.check {
        let origin = cli
            .config
            .as_ref()
            .map_or("defaults".to_owned(), |p| p.display().to_string());
        eprintln!("{origin}: configuration is valid");
        return Ok(());
    }
    let telemetry = telemetry::Telemetry::start(&dd, "tinyfish-proxy")?;
    let listen = resolve("listen", &config.listen)?;
    let resolved = config
        .upstreams
        .iter()
        .map(|u| resolve_upstream(u))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let threads = config.worker_threads();
    // With one thread there is nothing to steal from: a single-threaded runtime does the same
    // work with less scheduling (bench/results/PERFLOG.md, change 7).
    let work_stealing = config.work_stealing && threads > 1;
    let metrics = Arc::new(metrics::Metrics::new(telemetry.clone(), &config.upstreams));

    let mut conf = ServerConf {
        threads,
        work_stealing,
        upstream_keepalive_pool_size: config.keepalive_pool_size,
        grace_period_seconds: Some(config.timeouts.shutdown_grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    conf.max_retries = config.upstreams.len() + 1;
    let conf = Arc::new(conf);

    let lb = if resolved.len() > 1 {
        // All TCP: a Unix-socket upstream is the only one (`Config::validate`).
        let mut lb =
            LoadBalancer::<RoundRobin>::try_from_iter(resolved.iter().map(|a| a.to_string()))
                .context("cannot set up the upstream load balancer")?;
        let mut hc = TcpHealthCheck::new();
        hc.peer_template.options.connection_timeout = Some(config.timeouts.connect);
        lb.set_health_check(hc);
        lb.health_check_frequency = Some(config.health_check_interval);
        Some(Arc::new(lb))
    } else {
        None
    };
    let picker = Arc::new(gateway::Picker::new(&resolved, lb.clone()));
    let ids = Arc::new(headers::RequestIds::new());
    let fast = config.fast_path.then(|| {
        Arc::new(fast::Fast::new(
            &config,
            &resolved,
            picker.clone(),
            ids.clone(),
            metrics.clone(),
        ))
    });
    let gateway = gateway::Gateway::new(&config, &resolved, picker, ids, metrics.clone());
    let mut proxy = pingora::proxy::http_proxy(&conf, gateway);
    // An HTTP/2 connection without a stream in flight for `timeouts.client_idle` is closed,
    // as an idle HTTP/1 keep-alive connection is (pingora's default: never).
    let mut server_options = pingora::apps::HttpServerOptions::default();
    server_options.h2_idle_timeout = Some(config.timeouts.client_idle);
    proxy.server_options = Some(server_options);
    let proxy = Arc::new(proxy);
    let shared = Arc::new(server::Shared {
        proxy: proxy.clone(),
        metrics: metrics.clone(),
        limits: server::ClientLimits::from_timeouts(&config.timeouts),
        fast,
        max_header_bytes: config.max_header_bytes,
        health_path: (!config.health_path.is_empty()).then(|| config.health_path.as_bytes().into()),
        max_connections: config.max_connections,
        tls,
    });

    let rt = if work_stealing {
        pingora_runtime::Runtime::new_steal(threads, "proxy")
    } else {
        pingora_runtime::Runtime::new_no_steal(threads, "proxy")
    };
    let handle = rt.get_handle().clone();
    let listener = {
        let _enter = handle.enter();
        bind(listen).with_context(|| format!("cannot listen on {listen}"))?
    };
    let listener = listener.into_std()?;
    let bound = listener.local_addr()?;
    // A duplicate of the listening socket to serve, at shutdown, what the kernel already accepted.
    let backlog = listener.try_clone()?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let accept = {
        let (shared, rx) = (shared.clone(), shutdown_rx.clone());
        handle.spawn(async move {
            // Registered with the reactor of the runtime that polls it.
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => server::accept_loop(listener, shared, rx).await,
                Err(e) => eprintln!("proxy: cannot accept on {bound}: {e}"),
            }
        })
    };
    if let Some(fast) = &shared.fast {
        handle.spawn(fast.clone().sweep_idle(shutdown_rx.clone()));
    }
    if let Some(lb) = lb {
        let rx = shutdown_rx.clone();
        handle.spawn(async move { lb.start(rx).await });
    }

    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut term, mut int) = {
        let _enter = signals.enter();
        (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        )
    };
    let scheme = match &config.tls {
        Some(t) => format!("https (ALPN {})", t.alpn.join(",")),
        None => "http".to_owned(),
    };
    eprintln!(
        "proxy: listening on {bound} ({scheme}), upstreams {}, {threads} thread(s); {}",
        config.upstreams.join(","),
        telemetry.describe()
    );
    {
        let mut out = std::io::stdout().lock();
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        writeln!(out, "listening on {scheme}://{bound}")?;
        out.flush()?;
    }

    let stop = signals.block_on(async {
        tokio::select! {
            _ = term.recv() => Stop::Graceful,
            _ = int.recv() => Stop::Fast,
        }
    });
    let _ = shutdown_tx.send(true);
    let stop = match stop {
        Stop::Fast => Stop::Fast,
        Stop::Graceful => signals.block_on(async {
            let deadline = Instant::now() + config.timeouts.shutdown_grace;
            // Stop accepting, serve what the kernel already accepted ...
            let _ = tokio::time::timeout_at(deadline.into(), accept).await;
            let drain = handle.spawn(server::drain_backlog(
                backlog,
                shared.clone(),
                shutdown_rx.clone(),
            ));
            // ... wake connections idling in keep-alive so they close ...
            proxy.http_cleanup().await;
            // ... and let requests in flight finish.
            while (metrics.downstream.get() > 0 || !drain.is_finished())
                && Instant::now() < deadline
            {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    _ = int.recv() => return Stop::Fast,
                }
            }
            Stop::Graceful
        }),
    };
    rt.shutdown_timeout(match stop {
        Stop::Fast => Duration::ZERO,
        Stop::Graceful => Duration::from_millis(100),
    });
    telemetry.flush();
    Ok(())
}
