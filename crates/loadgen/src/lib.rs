//! An HTTP load generator for measuring servers and proxies honestly: HTTP/1.1, plain or over
//! TLS (rustls), and HTTP/2 over TLS (the `h2` crate), each with `LoadSpec::tls`,
//! `LoadSpec::h2_streams` and `LoadSpec::requests_per_connection` saying which.
//!
//! Two ways to load a server over `connections` keep-alive connections:
//!
//! - **Open loop** ([`Mode::Open`]): requests are sent on a fixed schedule (per connection,
//!   staggered, like wrk2) whatever the server does, and each latency is measured from the
//!   request's *intended* send time, so a server that stalls is charged for every request it
//!   held up (coordinated omission corrected). The uncorrected latency (from the actual send)
//!   is kept beside it. Late and dropped sends are counted, and a run that did not achieve
//!   99 % of its target rate says so ([`LoadReport::rate_held`]).
//! - **Closed loop** ([`Mode::Closed`]): each connection sends as soon as its previous
//!   response is complete; this measures capacity.
//!
//! The client is lean so that it is not the bottleneck and costs less than the servers it
//! measures: one epoll event loop per worker thread, the request serialised once, responses
//! parsed with `httparse` in a reused buffer, no allocation per request. Each response's
//! arrival time is the kernel's receive timestamp (`SO_TIMESTAMPNS`), so the load
//! generator's own wake-up is not part of any latency; its pacing error (send lag) and read
//! delay are reported beside the latency. Latencies go into nanosecond HdrHistograms;
//! statuses and errors are counted by kind; the load generator reports its own CPU.
//!
//! Layout, one concept per module:
//!
//! - [`spec`]: what to load ([`LoadSpec`], [`Mode`], URL parsing, the request bytes)
//! - `parse`: incremental HTTP/1.x response parser (content-length, chunked, close)
//! - `socket`: a non-blocking TCP socket whose reads carry kernel receive timestamps
//! - `tls`: TLS over that socket with rustls ([`ClientTls`], one session per connection)
//! - `connection`: one keep-alive client connection (request out, response in)
//! - [`schedule`]: open-loop schedules and the learnt wake-up margin
//! - `wait`: how a worker thread waits (nanosleep, or epoll with a timerfd)
//! - `event_loop`: one worker thread's connections, the open and closed loops
//! - `h2_loop`: a worker thread's HTTP/2 load (the `h2` crate on a one-thread tokio runtime)
//! - `runner`: worker threads, the common start, merging into a [`LoadReport`], [`run`]
//! - [`report`]: [`LoadReport`], latency summaries, timeline, percentile spectrum
//! - `cpu`: the load generator's own CPU ([`CpuUsage`])
//! - `live`: progress counters for a caller's progress bar ([`Live`])
//! - [`cli`]: `bench load` flags ([`Cli`]) and [`run_cli`], which prints a table and JSON
//!
//! ```no_run
//! let mut spec = loadgen::LoadSpec::from_url("http://127.0.0.1:8080/")?;
//! spec.mode = loadgen::Mode::Open { rate: 1000.0 };
//! let report = loadgen::run(&spec, &loadgen::Live::new())?;
//! println!("p99 {} µs, rate held: {}", report.latency_us.p99, report.rate_held);
//! # Ok::<(), loadgen::LoadError>(())
//! ```

pub mod cli;
mod connection;
mod cpu;
mod error;
mod event_loop;
mod h2_loop;
mod live;
mod parse;
pub mod report;
mod runner;
pub mod schedule;
mod socket;
pub mod spec;
mod tls;
mod wait;

pub use cli::{run_cli, Cli};
pub use cpu::CpuUsage;
pub use error::{ErrorKind, LoadError};
pub use live::{Live, LiveSnapshot, Phase};
pub use parse::{ParseError, ResponseParser};
pub use report::{
    percentile_spectrum, LatencySummary, LatencyUs, LoadReport, TimelinePoint, TlsHandshakes,
};
pub use runner::run;
pub use schedule::LATE_THRESHOLD;
pub use socket::TimestampSource;
pub use spec::{parse_url, HttpTarget, LoadSpec, Mode};
pub use tls::ClientTls;
