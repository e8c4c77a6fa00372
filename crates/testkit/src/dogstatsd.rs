//! A DogStatsD [`Sink`]: a real datagram socket (UDP on 127.0.0.1:0, or a Unix datagram
//! socket) that keeps every line it receives, and [`Metric`], a line parsed by the `agent`
//! crate's own parser (`agent::parse`), so a test checks what a process emitted the way the
//! agent will read it, not by substring.
//!
//! ```no_run
//! let sink = testkit::dogstatsd();
//! // … point a process at `sink.datadog_env(&[])` or `sink.env()` …
//! let m = sink.expect("a request count", |m| m.name == "tinyfish.app.requests");
//! assert_eq!(m.tag("route"), Some("/"));
//! sink.assert_well_formed();
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use agent::parse::Malformed;
pub use agent::MetricKind;

/// The Datadog variables the app and the proxy read (`telemetry::DatadogEnv`): clear them
/// from a child's environment so that a developer's shell cannot change a test.
pub const DATADOG_VARS: [&str; 6] = [
    "DD_AGENT_HOST",
    "DD_DOGSTATSD_PORT",
    "DD_DOGSTATSD_URL",
    "DD_ENV",
    "DD_SERVICE",
    "DD_VERSION",
];
use telemetry::DatadogEnv;

use crate::patience::{self, scaled};

/// One metric line, parsed by `agent::parse::parse_metric` and owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The metric name.
    pub name: String,
    /// The type (`c`, `g`, `d`, `h`, `ms`, `s`).
    pub kind: MetricKind,
    /// The first value (NaN for a set).
    pub value: f64,
    /// Every value of the line (more than one when packed: `name:1:2:3|d`); empty for a set.
    pub values: Vec<f64>,
    /// `@rate`, 1 when absent.
    pub sample_rate: f64,
    /// The tags in order, split at the first `:` (a tag without `:` has an empty value).
    pub tags: Vec<(String, String)>,
}

impl Metric {
    /// Parses `line` as the agent does; the agent's [`Malformed`] kind when it is not a
    /// well-formed metric line.
    pub fn parse(line: &str) -> Result<Metric, Malformed> {
        let m = agent::parse::parse_metric(line)?;
        let values: Vec<f64> = if m.kind == MetricKind::Set {
            Vec::new()
        } else {
            m.values().collect()
        };
        Ok(Metric {
            name: m.name.to_owned(),
            kind: m.kind,
            value: values.first().copied().unwrap_or(f64::NAN),
            values,
            sample_rate: m.sample_rate,
            tags: m
                .tags
                .iter()
                .map(|t| {
                    let (k, v) = t.split_once(':').unwrap_or((t, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect(),
        })
    }

    /// The value of tag `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct Shared {
    lines: Mutex<Vec<String>>,
    arrived: Condvar,
}

enum Socket {
    Udp(UdpSocket),
    Unix(UnixDatagram, PathBuf),
}

impl Socket {
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Socket::Udp(s) => s.recv(buf),
            Socket::Unix(s, _) => s.recv(buf),
        }
    }
}

/// Collects every line of every datagram sent to it, in arrival order, from a thread of
/// its own that stops on drop (a Unix socket's file is removed then).
#[derive(Debug)]
pub struct Sink {
    target: Target,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Clone)]
enum Target {
    Udp(SocketAddr),
    Unix(PathBuf),
}

impl Sink {
    /// A UDP sink on 127.0.0.1:0. Panics if the socket cannot be made.
    pub fn udp() -> Sink {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        let addr = socket.local_addr().expect("local_addr");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set_read_timeout");
        Sink::run(Socket::Udp(socket), Target::Udp(addr))
    }

    /// A Unix datagram sink bound at `path` (the file must not exist).
    pub fn unix(path: &Path) -> Sink {
        let socket =
            UnixDatagram::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set_read_timeout");
        Sink::run(
            Socket::Unix(socket, path.to_owned()),
            Target::Unix(path.to_owned()),
        )
    }

    fn run(socket: Socket, target: Target) -> Sink {
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("testkit-dogstatsd".into())
            .spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !st.load(Ordering::Relaxed) {
                    let Ok(n) = socket.recv(&mut buf) else {
                        continue;
                    };
                    let text = String::from_utf8_lossy(&buf[..n]);
                    let mut lines = s.lines.lock().unwrap_or_else(|p| p.into_inner());
                    lines.extend(
                        text.split('\n')
                            .map(|l| l.strip_suffix('\r').unwrap_or(l))
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned),
                    );
                    s.arrived.notify_all();
                }
                if let Socket::Unix(_, path) = &socket {
                    let _ = std::fs::remove_file(path);
                }
            })
            .expect("spawn the DogStatsD sink thread");
        Sink {
            target,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// The UDP address to send to. Panics for a Unix sink.
    pub fn addr(&self) -> SocketAddr {
        match &self.target {
            Target::Udp(a) => *a,
            Target::Unix(p) => panic!("a Unix sink ({}) has no UDP address", p.display()),
        }
    }

    /// `udp://127.0.0.1:PORT` or `unix:///path`: a `DD_DOGSTATSD_URL` value.
    pub fn url(&self) -> String {
        match &self.target {
            Target::Udp(a) => format!("udp://{a}"),
            Target::Unix(p) => format!("unix://{}", p.display()),
        }
    }

    /// The variables a child process needs to send here (`DD_DOGSTATSD_URL`).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("DD_DOGSTATSD_URL".to_owned(), self.url())]
    }

    /// Datadog variables naming this sink (`DD_AGENT_HOST` and `DD_DOGSTATSD_PORT` for UDP,
    /// `DD_DOGSTATSD_URL` for Unix), plus `extra` (e.g. `("DD_ENV", "test")`), for
    /// `telemetry::Telemetry::start`. Nothing touches the process environment.
    pub fn datadog_env(&self, extra: &[(&str, &str)]) -> DatadogEnv {
        let mut vars = match &self.target {
            Target::Udp(a) => vec![
                ("DD_AGENT_HOST".to_owned(), a.ip().to_string()),
                ("DD_DOGSTATSD_PORT".to_owned(), a.port().to_string()),
            ],
            Target::Unix(_) => self.env(),
        };
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        DatadogEnv::from_vars(vars)
    }

    /// Every line received so far.
    pub fn lines(&self) -> Vec<String> {
        self.shared
            .lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every well-formed metric line received so far, parsed.
    pub fn metrics(&self) -> Vec<Metric> {
        self.lines()
            .iter()
            .filter_map(|l| Metric::parse(l).ok())
            .collect()
    }

    /// The first line (received before or within the bound) for which `pred` holds; `pred`
    /// sees each line once, in arrival order (so it may add values up as they come).
    /// `None` after [`patience::WAIT`] (scaled).
    pub fn wait_for_line(&self, pred: impl FnMut(&str) -> bool) -> Option<String> {
        self.wait_for_line_within(patience::WAIT, pred)
    }

    /// [`Sink::wait_for_line`] with another bound (before scaling).
    pub fn wait_for_line_within(
        &self,
        bound: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + scaled(bound);
        let mut seen = 0;
        let mut lines = self.shared.lines.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            for (i, l) in lines.iter().enumerate().skip(seen) {
                seen = i + 1;
                if pred(l) {
                    return Some(l.clone());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            lines = self
                .shared
                .arrived
                .wait_timeout(lines, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The first well-formed metric for which `pred` holds, as [`Sink::wait_for_line`].
    pub fn wait_for(&self, mut pred: impl FnMut(&Metric) -> bool) -> Option<Metric> {
        let mut found = None;
        self.wait_for_line(|l| match Metric::parse(l) {
            Ok(m) if pred(&m) => {
                found = Some(m);
                true
            }
            _ => false,
        })?;
        found
    }

    /// [`Sink::wait_for`], panicking with `what` and every line received when it never
    /// comes.
    pub fn expect(&self, what: &str, pred: impl FnMut(&Metric) -> bool) -> Metric {
        self.wait_for(pred).unwrap_or_else(|| {
            panic!(
                "waited {:?} for {what}; lines received: {:#?}",
                scaled(patience::WAIT),
                self.lines()
            )
        })
    }

    /// Adds up the values of the metrics for which `pred` holds until the sum reaches
    /// `want` (counts may be split over several flushes); returns the sum reached within
    /// the bound.
    pub fn sum_until(&self, want: f64, mut pred: impl FnMut(&Metric) -> bool) -> f64 {
        let mut sum = 0.0;
        self.wait_for_line(|l| {
            if let Some(m) = Metric::parse(l).ok().filter(|m| pred(m)) {
                sum += m.values.iter().sum::<f64>();
            }
            sum >= want
        });
        sum
    }

    /// Panics unless every line received so far is a well-formed DogStatsD line (metric,
    /// event or service check) for the agent's parser.
    pub fn assert_well_formed(&self) {
        for line in self.lines() {
            if let Err(e) = agent::parse::parse_line(line.as_bytes()) {
                panic!("malformed DogStatsD line ({e}): {line:?}");
            }
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_the_agents_parser() {
        let m = Metric::parse("tinyfish.app.requests:3|c|#env:test,service:app,route:/").unwrap();
        assert_eq!(m.name, "tinyfish.app.requests");
        assert_eq!((m.kind, m.value), (MetricKind::Count, 3.0));
        assert_eq!(m.tag("route"), Some("/"));
        assert_eq!(m.tag("service"), Some("app"));
        let d = Metric::parse("x.duration:0.0421|d|@0.5|#a:b").unwrap();
        assert_eq!(
            (d.kind, d.value, d.sample_rate),
            (MetricKind::Distribution, 0.0421, 0.5)
        );
        assert_eq!(Metric::parse("g:-1|g").unwrap().value, -1.0);
        assert_eq!(
            Metric::parse("p:1:2.5:3|d").unwrap().values,
            vec![1.0, 2.5, 3.0]
        );
        for bad in ["", "name", "name:1", "name:x|c", ":1|c", "n:1|q"] {
            assert!(Metric::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn collects_lines_of_every_datagram() {
        let sink = Sink::udp();
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(b"a:1|c\nb:2|g", sink.addr()).unwrap();
        s.send_to(b"a:2|c", sink.addr()).unwrap();
        assert_eq!(sink.sum_until(3.0, |m| m.name == "a"), 3.0);
        assert_eq!(sink.expect("b", |m| m.name == "b").value, 2.0);
        assert_eq!(sink.lines(), ["a:1|c", "b:2|g", "a:2|c"]);
        sink.assert_well_formed();
        assert_eq!(sink.url(), format!("udp://{}", sink.addr()));
    }
}
