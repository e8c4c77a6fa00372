//! The TinyFish app: `Hello World on this date Tuesday, November 24, 2026.` over HTTP/1.1,
//! plus the routes a proxy benchmark needs (health, configurable work, echo).
//!
//! Layout, one concept per module:
//! - [`cli`]: the flags ([`Cli`], a `clap::Args` the bench embeds as a subcommand);
//! - [`server`]: [`serve`] (a bound listener, a config, metrics, a shutdown future), [`bind`]
//!   (TCP) and [`bind_unix`] (a Unix socket);
//! - [`routes`]: what each route answers (see its table);
//! - [`greeting`]: the greeting, cached per UTC day;
//! - [`work`]: `/work` parameters, their limits and the CPU spin;
//! - [`body`]: the response body type;
//! - [`metrics`]: pre-created counters, the in-flight gauge and the duration distribution;
//!
//! [`run`] is the whole program (runtime, bind, signals, drain); `main` only parses flags.
//!
//! ```text
//! cargo run -p app -- --listen 127.0.0.1:5000 --threads 1
//! curl http://127.0.0.1:5000/
//! cargo run -p app -- --listen unix:/tmp/app.sock      # prints "listening on unix:/tmp/app.sock"
//! curl --unix-socket /tmp/app.sock http://localhost/
//! curl 'http://127.0.0.1:5000/work?cpu_us=200&bytes=16384&delay_ms=5'
//! ```

pub mod body;
pub mod cli;
pub mod greeting;
pub mod metrics;
pub mod routes;
pub mod server;
pub mod work;

use std::io::Write;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

pub use cli::{Cli, Listen};
pub use server::{bind, bind_unix, serve, Listener, ServeConfig, ServeError, UnixListener};

/// The `service` tag when `DD_SERVICE` is unset.
pub const DEFAULT_SERVICE: &str = "tinyfish-app";

/// Runs the app as a program: builds the runtime (`--threads 1`: single-threaded), binds
/// `--listen`, logs one line to stderr, prints exactly one line `listening on
/// http://ADDR` (the bound address) or `listening on unix:/PATH` to stdout, serves until
/// SIGTERM or SIGINT, lets requests in flight finish within `--grace` (a Unix socket's file
/// is removed), and returns `Ok`.
pub fn run(cli: Cli, dd: telemetry::DatadogEnv) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let telemetry = telemetry::Telemetry::start(&dd, DEFAULT_SERVICE)?;
    let threads = cli.worker_threads();
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    }
    .enable_all()
    .build()
    .context("cannot start the async runtime")?;

    runtime.block_on(async {
        // Handlers first: a parent that signals as soon as it reads our address must not
        // hit the default action (death by signal).
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let listener = match &cli.listen {
            Listen::Tcp(addr) => Listener::from(bind(*addr).await?),
            Listen::Unix(path) => Listener::from(bind_unix(path).await?),
        };
        let addr = listener.describe()?;
        eprintln!(
            "app: listening on {addr} with {threads} thread{}; {}",
            if threads == 1 { "" } else { "s" },
            telemetry.describe()
        );
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {addr}")
            .and_then(|()| out.flush())
            .context("cannot write the listening address to stdout")?;
        drop(out);
        let config = ServeConfig {
            grace: cli.grace,
            ..ServeConfig::default()
        };
        let shutdown = async {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        serve(listener, config, telemetry.clone(), shutdown).await?;
        telemetry.flush();
        Ok(())
    })
}
