//! Helpers shared by the agent's integration tests: a running agent on port 0, a bounded
//! wait for what it aggregated, and testkit's HTTP client run off the agent's runtime.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use agent::{AgentConfig, AgentHandle, Snapshot};

/// How long [`wait_for`] waits, before the patience setting stretches it.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// An agent on 127.0.0.1:0 with an HTTP server on 127.0.0.1:0.
pub async fn agent() -> AgentHandle {
    agent::start(AgentConfig {
        http: Some("127.0.0.1:0".parse().unwrap()),
        ..AgentConfig::ephemeral()
    })
    .await
    .expect("agent starts on port 0")
}

/// A UDP client connected to the agent.
pub fn client(agent: &AgentHandle) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(agent.udp_addr()).unwrap();
    s
}

/// Polls the agent's snapshot until `done` holds (at most [`PATIENCE`], scaled). Async:
/// the agent runs on the test's runtime, which a blocking wait would stall.
pub async fn wait_for(
    agent: &AgentHandle,
    what: &str,
    done: impl Fn(&Snapshot) -> bool,
) -> Snapshot {
    let bound = testkit::scaled(PATIENCE);
    let deadline = Instant::now() + bound;
    loop {
        let s = agent.snapshot();
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "waited {bound:?} for {what}; last snapshot: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `method path` with testkit's client (`Connection: close`), on a blocking thread so the
/// server on this test's runtime keeps running.
pub async fn http(addr: SocketAddr, method: &str, path: &str) -> testkit::http::Response {
    let (method, path) = (method.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || testkit::http::request(addr, &method, &path, &[], b""))
        .await
        .expect("the request thread")
}
