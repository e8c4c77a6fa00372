//! The workspace's test vocabulary: real sockets on 127.0.0.1 (port 0), real processes,
//! and waits for what a test can observe instead of sleeps. Every crate's tests use it, so
//! a test reads like the sentence it checks:
//!
//! ```no_run
//! let upstream = testkit::upstream()
//!     .answer(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..])
//!     .start();
//! let proxy = testkit::proxy().to(&upstream).start();
//! let response = testkit::http::get(proxy.addr(), "/");
//! assert_eq!((response.status, response.text()), (200, "ok"));
//! testkit::eventually("the upstream to have one request", || upstream.count() == 1);
//! ```
//!
//! Layout, one concept per module:
//!
//! - [`patience`]: [`eventually`], [`wait`]`(what).within(d).until(..)` and [`scaled`], all
//!   bounded by the patience setting below;
//! - [`http`]: a blocking HTTP/1.1 client: [`http::get`], [`http::request`], exact bytes in
//!   with [`http::send`], a keep-alive [`http::Conn`], a [`http::Response`] out, and a
//!   [`http::ReadError`] that tells a cut response from a refused one;
//! - [`tcp`]: raw sockets: [`tcp::exchange`] (bytes in, everything until close out), a reset
//!   instead of a close, and the kernel's view of one socket (netlink `sock_diag`) to wait
//!   until a peer has read what was sent or seen a FIN (`/proc/net/tcp` to count CLOSE_WAIT
//!   sockets);
//! - [`upstream`](mod@upstream): [`upstream()`]: a recording hyper upstream ([`Upstream`]),
//!   or with `.answer(bytes)` / `.answer_with(..)` / `.script(..)` a scripted raw one
//!   ([`Scripted`]); both record exactly what they received;
//! - [`unix`]: the same-host sidecar case: a fresh [`unix::SocketDir`], a raw upstream on a
//!   Unix socket that records exact bytes and counts connections ([`unix::upstream`]), and
//!   [`unix::send`] to talk to a Unix socket;
//! - [`proxy`](mod@proxy): [`proxy()`]: the `proxy` binary with a typed
//!   [`::proxy::Config`] it reads from a file (`.to(&upstream).read_timeout(..)`), run as a
//!   [`Process`];
//! - [`app`](mod@app): [`app()`]: the app (`app::serve`) in a background thread ([`App`]),
//!   and [`app::wait_in_flight`] to see a request reach its handler;
//! - [`dogstatsd`](mod@dogstatsd): [`dogstatsd()`]: a UDP (or Unix) DogStatsD [`Sink`]
//!   whose lines are parsed by the `agent` crate's parser ([`dogstatsd::Metric`]);
//! - [`nginx`]: Debian's NGINX with the bench's configuration in front of an upstream, to
//!   compare what it does with what our proxy does;
//! - [`process`]: a child [`Process`] that prints `listening on http://ADDR`, its output,
//!   signals and exit; [`TempFile`]; a process tree's descendants, and a wait until they
//!   are all gone;
//! - [`installed`]: programs the workspace does not build (caddy, uwsgi, …), found or a
//!   visible skip (a failure where CI sets `TINYFISH_TEST_REQUIRE_ALL=1`);
//! - [`schema`]: `results.json` against the committed JSON Schema;
//! - [`tls`]: a fresh self-signed certificate per test, a client trusting only it, and a
//!   blocking HTTP/1.1-over-TLS [`tls::Conn`].
//!
//! # Patience: `TINYFISH_TEST_PATIENCE`
//!
//! One environment variable stretches every bound on a slow or loaded machine:
//! `TINYFISH_TEST_PATIENCE` is a multiplier (a positive number such as `3` or `2.5`;
//! unset or empty means `1`), read once per test process. It multiplies every bound testkit
//! waits with (15 s by default for [`eventually`] and the sink's waits, 30 s for the HTTP
//! client's reads and writes, a process's start and exit) and every timing bound a test
//! writes as [`scaled`]`(d)`: the upper bounds of timing assertions, and the windows a test
//! keeps a request in flight while it observes something. It does not change the behaviour
//! under test (a proxy's configured timeout, a server's deliberate stall) nor lower bounds
//! ("took at least the 500 ms timeout"), and where a bound guards against a slower wrong
//! behaviour (waiting out a grace period) the test makes that behaviour far slower than the
//! bound. So a larger value only makes a test wait longer before it fails. Any other value
//! (`fast`, `0`, `-1`) makes the first wait panic naming the variable.
//!
//! ```text
//! TINYFISH_TEST_PATIENCE=3 cargo test --workspace
//! ```

#![forbid(unsafe_code)]

pub mod app;
pub mod dogstatsd;
pub mod http;
pub mod installed;
pub mod nginx;
pub mod patience;
pub mod process;
pub mod proxy;
pub mod schema;
mod sock_diag;
pub mod tcp;
pub mod tls;
pub mod unix;
pub mod upstream;

use std::net::SocketAddr;

pub use app::{app, App, AppBuilder, UnixApp};
pub use dogstatsd::Sink;
pub use patience::{eventually, scaled, wait};
pub use process::{Process, TempFile};
pub use proxy::{proxy, ProxyBuilder};
pub use upstream::{upstream, Recorded, Scripted, Upstream, UpstreamBuilder, UpstreamConn};

/// A UDP DogStatsD sink on 127.0.0.1:0 ([`Sink::udp`]).
pub fn dogstatsd() -> Sink {
    Sink::udp()
}

/// Anything a test can point a client or a proxy at.
pub trait Listening {
    /// Where it listens.
    fn addr(&self) -> SocketAddr;
}

impl Listening for SocketAddr {
    fn addr(&self) -> SocketAddr {
        *self
    }
}

impl Listening for Process {
    fn addr(&self) -> SocketAddr {
        Process::addr(self)
    }
}
