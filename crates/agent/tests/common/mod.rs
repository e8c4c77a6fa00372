//! Helpers shared by the agent's integration tests: a running agent on port 0 and a
//! bounded wait for what it aggregated.
#![allow(dead_code)]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use agent::{AgentConfig, AgentHandle, Snapshot};

/// Generous: the machine is shared with parallel builds.
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

/// Polls the agent's snapshot until `done` holds (at most [`PATIENCE`]).
pub async fn wait_for(
    agent: &AgentHandle,
    what: &str,
    done: impl Fn(&Snapshot) -> bool,
) -> Snapshot {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let s = agent.snapshot();
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "waited {PATIENCE:?} for {what}; last snapshot: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
