//! `bench load`: the load generator on its own against any URL. [`Cli`] holds the flags
//! (flattened into the bench's subcommand), [`run_cli`] runs, prints a table and writes JSON.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;

use crate::live::{Live, Phase};
use crate::report::LoadReport;
use crate::spec::{LoadSpec, Mode};
use crate::tls::ClientTls;

/// Flags of `bench load`.
#[derive(Debug, Clone, clap::Args)]
pub struct Cli {
    /// Target URL, e.g. http://127.0.0.1:8080/path?query (https:// with --ca)
    #[arg(long, env = "LOADGEN_URL")]
    pub url: String,
    /// Keep-alive connections (each has at most one request in flight).
    #[arg(long, default_value_t = 32, env = "LOADGEN_CONNECTIONS")]
    pub connections: usize,
    /// Measured duration, e.g. 8s, 1m.
    #[arg(long, default_value = "10s", value_parser = parse_duration, env = "LOADGEN_DURATION")]
    pub duration: Duration,
    /// Warm-up before measuring (load applied, not recorded).
    #[arg(long, default_value = "1s", value_parser = parse_duration, env = "LOADGEN_WARMUP")]
    pub warmup: Duration,
    /// Open loop at this many requests/s in total (latency from the intended send time).
    /// Without it: closed loop, as fast as the server answers.
    #[arg(long, value_parser = parse_rate, env = "LOADGEN_RATE")]
    pub rate: Option<f64>,
    /// Worker threads, each with its own share of the connections.
    #[arg(long, default_value_t = 1, env = "LOADGEN_THREADS")]
    pub threads: usize,
    /// Request method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Send a body of this many bytes (adds Content-Length).
    #[arg(long, default_value_t = 0)]
    pub body_bytes: usize,
    /// Send the body chunked (`Transfer-Encoding: chunked`) instead of with a length.
    #[arg(long)]
    pub chunked: bool,
    /// Extra request header, "Name: value"; repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Request timeout: no complete response after this long counts as a `timeout` error.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Open loop: send every request due within this window in one wake-up, e.g. 0, 200us,
    /// 1ms; default: room for 4 sends per wake-up at the rate, at most 1 ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub send_window: Option<Duration>,
    /// https://: the PEM certificate (or CA) to trust; TLS 1.3, TLS_AES_128_GCM_SHA256.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// https://: the name the certificate is checked against (default: the URL's host).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// https://: no session resumption (every new connection makes a full handshake).
    #[arg(long)]
    pub no_resumption: bool,
    /// HTTP/2 over TLS (https:// with --ca) with N concurrent streams per connection.
    #[arg(long, value_name = "N")]
    pub h2_streams: Option<usize>,
    /// Open a new connection after this many requests (default: keep-alive).
    #[arg(long, value_name = "N")]
    pub requests_per_connection: Option<u64>,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("expected a duration like 8s or 500ms ({e})"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "expected a positive number of requests per second, got {s:?}"
        )),
    }
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("expected \"Name: value\", got {s:?}"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

impl Cli {
    /// The load spec these flags describe (resolves the host).
    pub fn to_spec(&self) -> Result<LoadSpec, crate::LoadError> {
        let tls = match &self.ca {
            Some(ca) => {
                let host = crate::spec::parse_url(&self.url)?.host;
                let name = self.server_name.as_deref().unwrap_or(&host);
                Some(ClientTls::from_ca_file(ca, name, !self.no_resumption)?)
            }
            None => None,
        };
        let mut spec = LoadSpec::from_url_with_tls(&self.url, tls)?;
        spec.requests_per_connection = self.requests_per_connection;
        spec.h2_streams = self.h2_streams;
        spec.connections = self.connections;
        spec.duration = self.duration;
        spec.warmup = self.warmup;
        spec.mode = match self.rate {
            Some(rate) => Mode::Open { rate },
            None => Mode::Closed,
        };
        spec.threads = self.threads;
        spec.method = self.method.clone();
        spec.body = Bytes::from(vec![b'x'; self.body_bytes]);
        spec.chunked = self.chunked;
        spec.headers = self.headers.clone();
        spec.request_timeout = self.timeout;
        spec.send_window = self.send_window;
        spec.validate()?;
        Ok(spec)
    }
}

/// Runs `bench load`: loads the URL, prints the table (and a loud warning if the rate was
/// not held) and writes the JSON report if asked.
pub fn run_cli(cli: Cli) -> anyhow::Result<()> {
    let spec = cli.to_spec()?;
    let mode = match spec.mode {
        Mode::Open { rate } => format!("open loop at {rate} req/s"),
        Mode::Closed => "closed loop".to_owned(),
    };
    let header = format!(
        "loading {} ({}): {mode}, {} connections, {} thread(s), {} (+{} warm-up)",
        cli.url,
        spec.addr,
        spec.connections,
        spec.threads,
        humantime::format_duration(spec.duration),
        humantime::format_duration(spec.warmup)
    );
    let live = Live::new();
    let report = std::thread::scope(|s| {
        let watcher = s.spawn(|| watch(&live, &header));
        let r = crate::run(&spec, &live);
        live.finish();
        let _ = watcher.join();
        r
    })?;
    print!("{}", render_table(&report));
    if !report.rate_held {
        eprintln!();
        eprintln!("!!! WARNING: TARGET RATE NOT HELD !!!");
        if let Some(note) = &report.rate_note {
            eprintln!("!!! {note}");
        }
        eprintln!("!!! latency figures from this run do not describe the target rate");
    }
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write JSON report to {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Prints `header` once connected (so a failed connect prints only its error) and, on a
/// terminal, a progress line until the run is done.
fn watch(live: &Live, header: &str) {
    let mut err = std::io::stderr();
    let tty = err.is_terminal();
    let mut announced = false;
    loop {
        let s = live.snapshot();
        if s.phase == Phase::Done {
            if tty && announced {
                let _ = write!(err, "\r\x1b[2K");
            }
            return;
        }
        if s.phase != Phase::Connecting && !announced {
            let _ = writeln!(err, "{header}");
            announced = true;
        }
        if tty && announced {
            let line = match s.phase {
                Phase::Warmup => "warming up…".to_owned(),
                _ => format!(
                    "measuring {:>5.1}/{:.1} s  {} done  {} errors",
                    s.elapsed.as_secs_f64(),
                    s.window.as_secs_f64(),
                    s.completed,
                    s.errors
                ),
            };
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Formats a latency given in µs with a readable unit.
pub fn format_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.1} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// The report as an aligned text table.
pub fn render_table(r: &LoadReport) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
    match r.target_rps {
        Some(t) => {
            row("mode", format!("open loop, {} connections", r.connections));
            row("target rate", format!("{t:.1} req/s"));
            row(
                "achieved rate",
                format!(
                    "{:.1} req/s ({:.1} %) — {}",
                    r.achieved_rps,
                    100.0 * r.achieved_rps / t,
                    if r.rate_held {
                        "rate held"
                    } else {
                        "RATE NOT HELD"
                    }
                ),
            );
        }
        None => {
            row(
                "mode",
                format!("closed loop, {} connections", r.connections),
            );
            row("achieved rate", format!("{:.1} req/s", r.achieved_rps));
        }
    }
    row(
        "requests",
        format!(
            "{} sent, {} completed in {:.1} s",
            r.sent, r.completed, r.duration_s
        ),
    );
    if r.target_rps.is_some() {
        row(
            "sends",
            format!(
                "{} late (> {} ms; {} of them on a free connection), {} dropped",
                r.late_sends,
                crate::LATE_THRESHOLD.as_millis(),
                r.pacing_late_sends,
                r.dropped_sends
            ),
        );
    }
    let l = &r.latency_us;
    let label = if r.target_rps.is_some() {
        "latency (from intended send)"
    } else {
        "latency"
    };
    row(&format!("{label} p50"), format_us(l.p50));
    row("p90", format_us(l.p90));
    row("p99", format_us(l.p99));
    row("p99.9", format_us(l.p999));
    row("max", format_us(l.max));
    if r.target_rps.is_some() {
        let u = crate::LatencyUs::from_histogram(&r.latency_uncorrected);
        row(
            "uncorrected p50/p99",
            format!("{} / {}", format_us(u.p50), format_us(u.p99)),
        );
    }
    let statuses = if r.status_counts.is_empty() {
        "none".to_owned()
    } else {
        r.status_counts
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    row("status counts", statuses);
    let errors = if r.errors.is_empty() {
        "none".to_owned()
    } else {
        r.errors
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    row("errors", errors);
    if r.reconnects > 0 || r.abandoned > 0 {
        row(
            "connections",
            format!(
                "{} reconnects, {} abandoned at end",
                r.reconnects, r.abandoned
            ),
        );
    }
    row(
        "loadgen CPU",
        format!(
            "{:.2} s user + {:.2} s sys, {:.1} µs/request, {:.0} % of {} thread(s)",
            r.cpu.user_s,
            r.cpu.system_s,
            r.cpu.per_request_us,
            r.cpu.utilisation * 100.0,
            r.threads
        ),
    );
    if let Some(note) = &r.rate_note {
        row("note", note.clone());
    }
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let pad = width - k.chars().count();
        out.push_str(&format!("  {}{k}  {v}\n", " ".repeat(pad)));
    }
    out
}
