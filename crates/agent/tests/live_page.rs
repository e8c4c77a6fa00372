//! The live page over real sockets: `GET /dashboard` serves the self-contained HTML,
//! `GET /series` the per-second points it draws, built from what clients sent and from
//! gauges submitted inside the process (the bench's container check).

mod common;

use std::time::{Duration, Instant};

use agent::SeriesPage;

async fn series(addr: std::net::SocketAddr, path: &str) -> SeriesPage {
    let r = common::http(addr, "GET", path).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_slice(&r.body).expect("/series is a SeriesPage")
}

#[tokio::test]
async fn the_page_and_its_series_show_requests_latency_and_container_gauges() {
    let agent = common::agent().await;
    let http = agent.http_addr().unwrap();

    let page = common::http(http, "GET", "/dashboard").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8(page.body).unwrap();
    for needle in ["<canvas", "series", "vCPU", "MiB", "req/s", "p99"] {
        assert!(html.contains(needle), "no {needle:?} in the page");
    }
    assert_eq!(
        common::http(http, "GET", "/series?since=soon").await.status,
        400
    );

    // A service sends requests and durations; the container check submits its gauges.
    let udp = common::client(&agent);
    let submit = agent.submitter();
    let tags = vec![
        "service:tinyfish-app".to_owned(),
        "container_name:x,y".to_owned(),
    ];
    let bound = testkit::scaled(Duration::from_secs(15));
    let deadline = Instant::now() + bound;
    let point = loop {
        udp.send(
            b"tinyfish.app.requests:50|c|#service:tinyfish-app,status_class:2xx\n\
                   tinyfish.app.request.duration:1:2:3:4:100|d|#service:tinyfish-app",
        )
        .unwrap();
        submit.gauge("container.cpu.usage", 250_000_000.0, &tags);
        submit.gauge("container.memory.rss", 8.0 * 1024.0 * 1024.0, &tags);
        let page = series(http, "/series").await;
        if let Some(p) = page.points.iter().rev().find_map(|p| {
            let s = p.services.get("tinyfish-app")?;
            (s.cpu_vcpu.is_some() && s.p99_ms.is_some()).then(|| s.clone())
        }) {
            break point_ok(p);
        }
        assert!(
            Instant::now() < deadline,
            "no point for tinyfish-app within {bound:?}: {page:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(point.cpu_vcpu, Some(0.25));
    assert_eq!(point.rss_mib, Some(8.0));

    // The gauges are in the snapshot too, with their tags (the comma made harmless),
    // and counted as no datagram.
    let snap = agent.snapshot();
    let g = snap
        .metric("container.cpu.usage", &["service:tinyfish-app"])
        .unwrap();
    assert!(g.tags.contains(&"container_name:x_y".to_owned()), "{g:?}");

    // `since` pages: nothing after the last point.
    let all = series(http, "/series").await;
    let last = all.points.last().unwrap().t;
    assert!(series(http, &format!("/series?since={last}"))
        .await
        .points
        .is_empty());
    agent.shutdown().await;
}

fn point_ok(p: agent::ServicePoint) -> agent::ServicePoint {
    assert!(p.requests_per_s.unwrap() > 0.0, "{p:?}");
    let (p50, p99) = (p.p50_ms.unwrap(), p.p99_ms.unwrap());
    assert!(
        (1.0..=100.0).contains(&p50) && p50 <= p99 && p99 <= 100.0,
        "{p:?}"
    );
    p
}

#[tokio::test]
async fn without_http_no_series_are_kept() {
    let agent = agent::start(agent::AgentConfig::ephemeral()).await.unwrap();
    agent.submitter().gauge("container.cpu.usage", 1.0, &[]);
    agent.submitter().gauge("nan", f64::NAN, &[]);
    let s = agent.snapshot();
    assert_eq!(
        s.metric("container.cpu.usage", &[]).unwrap().value,
        Some(1.0)
    );
    assert!(s.metric("nan", &[]).is_none());
    assert_eq!((s.packets, s.lines), (0, 0));
    agent.shutdown().await;
}
