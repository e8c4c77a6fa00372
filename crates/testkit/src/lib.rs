//! Test vocabulary shared by the workspace's tests: real sockets on 127.0.0.1, port 0.
//!
//! - [`App`]: the TinyFish app served in a background thread (`App::start()`), stopped on drop;
//! - [`UdpSink`]: a UDP socket collecting DogStatsD lines, to check what a process emitted;
//! - [`dogstatsd`]: parses one DogStatsD line into name, value, type and tags;
//! - [`http`]: a tiny blocking HTTP/1.1 client (`Connection: close`) and a raw-bytes sender.
//!
//! ```no_run
//! let sink = testkit::UdpSink::bind();
//! let telemetry = telemetry::Telemetry::start(&sink.datadog_env(&[("DD_ENV", "test")]), "app").unwrap();
//! let app = testkit::App::start_with(telemetry);
//! let (status, _headers, body) = testkit::http::get(app.addr(), "/");
//! assert_eq!(status, 200);
//! assert!(body.starts_with(b"Hello World"));
//! let line = sink.wait_for(|l| l.starts_with("tinyfish.app.requests:"), std::time::Duration::from_secs(5));
//! assert!(line.is_some());
//! ```

pub mod app;
pub mod dogstatsd;
pub mod http;
pub mod udp;

pub use app::App;
pub use udp::UdpSink;
