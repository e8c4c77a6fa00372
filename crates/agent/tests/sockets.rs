//! The agent's other doors, over real sockets: the Unix datagram socket (`dsd.socket`)
//! and the HTTP snapshot.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use agent::{AgentConfig, Snapshot};

fn temp_socket(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("agent-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("dsd.socket")
}

/// `(status, body)` of `method path`.
async fn http_get(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let r = common::http(addr, method, path).await;
    (r.status, String::from_utf8(r.body).unwrap())
}

#[tokio::test]
async fn unix_datagram_socket_receives_and_is_removed_on_shutdown() {
    let path = temp_socket("uds");
    let agent = agent::start(AgentConfig {
        socket: Some(path.clone()),
        ..AgentConfig::ephemeral()
    })
    .await
    .unwrap();
    assert_eq!(agent.socket_path(), Some(path.as_path()));
    let client = UnixDatagram::unbound().unwrap();
    client
        .send_to(b"tinyfish.app.requests:3|c|#env:dev,route:/", &path)
        .unwrap();
    client
        .send_to(
            b"tinyfish.app.request.duration:0.5:1.5|d|#route:/\n_sc|uds|0",
            &path,
        )
        .unwrap();
    // UDP still works beside it.
    common::client(&agent)
        .send(b"tinyfish.app.requests:1|c|#env:dev,route:/")
        .unwrap();
    let s = common::wait_for(&agent, "three datagrams", |s| s.packets >= 3).await;
    assert_eq!(s.total("tinyfish.app.requests", &["route:/"]), 4.0);
    let d = s
        .metric("tinyfish.app.request.duration", &["route:/"])
        .unwrap();
    assert_eq!((d.count, d.min, d.max), (Some(2.0), Some(0.5), Some(1.5)));
    assert_eq!(s.service_checks.len(), 1);

    // A second agent on a live socket is refused, naming the path.
    let err = agent::start(AgentConfig {
        socket: Some(path.clone()),
        ..AgentConfig::ephemeral()
    })
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    agent.shutdown().await;
    assert!(!path.exists(), "socket file removed on shutdown");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[tokio::test]
async fn http_serves_the_json_snapshot() {
    let agent = common::agent().await;
    let http = agent.http_addr().expect("http bound");
    common::client(&agent)
        .send(b"page.views:2|c|#env:dev\nlatency:4:8|ms\nbad line\n_e{2,3}:hi|you")
        .unwrap();
    common::wait_for(&agent, "the datagram", |s| s.packets >= 1).await;

    let (status, body) = http_get(http, "GET", "/").await;
    assert_eq!(status, 200, "{body}");
    let raw: serde_json::Value = serde_json::from_str(&body).unwrap();
    for key in [
        "metrics",
        "events",
        "service_checks",
        "malformed",
        "malformed_by_kind",
        "packets",
        "bytes",
        "kernel_drops",
    ] {
        assert!(raw.get(key).is_some(), "no {key} in {body}");
    }
    assert_eq!(raw["metrics"][0]["name"], "latency");
    assert_eq!(raw["metrics"][0]["type"], "timing");
    assert_eq!(raw["malformed"], 1);
    assert_eq!(raw["malformed_by_kind"]["no_type"], 1);
    let s: Snapshot = serde_json::from_str(&body).unwrap();
    assert_eq!(
        s.metric("page.views", &["env:dev"]).unwrap().value,
        Some(2.0)
    );
    let l = s.metric("latency", &[]).unwrap();
    assert_eq!((l.min, l.max, l.avg), (Some(4.0), Some(8.0), Some(6.0)));
    assert_eq!(s.events[0].title, "hi");
    assert_eq!(s.packets, 1);
    if std::path::Path::new("/proc/net/udp").exists() {
        assert_eq!(s.kernel_drops, Some(0));
    }

    assert_eq!(
        http_get(http, "GET", "/healthz").await,
        (200, "ok\n".to_owned())
    );
    assert_eq!(http_get(http, "GET", "/nope").await.0, 404);
    assert_eq!(http_get(http, "POST", "/").await.0, 405);

    // take_snapshot starts a new window; HTTP shows it.
    let taken = agent.take_snapshot();
    assert_eq!(taken.packets, 1);
    let (_, body) = http_get(http, "GET", "/").await;
    let s: Snapshot = serde_json::from_str(&body).unwrap();
    assert!(s.metrics.is_empty() && s.packets == 0, "{body}");

    agent.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(http).await.is_err(),
        "HTTP stops on shutdown"
    );
}
