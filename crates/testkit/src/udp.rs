//! [`UdpSink`]: a real UDP socket on 127.0.0.1:0 that collects DogStatsD lines.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use telemetry::DatadogEnv;

#[derive(Debug, Default)]
struct Shared {
    lines: Mutex<Vec<String>>,
    arrived: Condvar,
}

/// Collects every line of every datagram sent to [`UdpSink::addr`], in arrival order.
/// The receiving thread stops on drop.
#[derive(Debug)]
pub struct UdpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpSink {
    /// Binds 127.0.0.1:0 and starts receiving. Panics if the socket cannot be made.
    pub fn bind() -> UdpSink {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        let addr = socket.local_addr().expect("local_addr");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set_read_timeout");
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("testkit-udp-{}", addr.port()))
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
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned),
                    );
                    s.arrived.notify_all();
                }
            })
            .expect("spawn UDP thread");
        UdpSink {
            addr,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// The address to send to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Datadog variables pointing at this sink (`DD_AGENT_HOST`, `DD_DOGSTATSD_PORT`),
    /// plus `extra` (e.g. `("DD_ENV", "test")`). Nothing touches the process environment.
    pub fn datadog_env(&self, extra: &[(&str, &str)]) -> DatadogEnv {
        let mut vars = vec![
            ("DD_AGENT_HOST".to_owned(), self.addr.ip().to_string()),
            ("DD_DOGSTATSD_PORT".to_owned(), self.addr.port().to_string()),
        ];
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

    /// The first line received (before or within `timeout`) for which `pred` holds.
    pub fn wait_for(
        &self,
        mut pred: impl FnMut(&str) -> bool,
        timeout: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        let mut lines = self.shared.lines.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(l) = lines[seen..].iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            seen = lines.len();
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
}

impl Drop for UdpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
