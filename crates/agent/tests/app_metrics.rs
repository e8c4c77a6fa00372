//! The app's own metrics arrive at the agent with their unified service tags: a real
//! app (`app::serve` on 127.0.0.1:0) answering real HTTP requests, its telemetry
//! pointed at a running agent over UDP, as the bench wires them.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_own_metrics_arrive_with_their_unified_service_tags() {
    let agent = common::agent().await;
    let port = agent.udp_addr().port().to_string();
    let env = telemetry::DatadogEnv::from_vars([
        ("DD_AGENT_HOST", "127.0.0.1"),
        ("DD_DOGSTATSD_PORT", port.as_str()),
        ("DD_ENV", "test"),
        ("DD_SERVICE", "tinyfish-app"),
        ("DD_VERSION", "1.2.3"),
    ]);
    let telemetry = telemetry::Telemetry::start(&env, app::DEFAULT_SERVICE).unwrap();
    let listener = app::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app::serve(
        listener,
        app::ServeConfig::default(),
        telemetry.clone(),
        async {
            let _ = stop_rx.await;
        },
    ));

    let n = 40u32;
    for _ in 0..n {
        assert_eq!(common::http(addr, "GET", "/").await.status, 200);
    }
    assert_eq!(common::http(addr, "GET", "/nope").await.status, 404);
    telemetry.flush();

    let unified = ["env:test", "service:tinyfish-app", "version:1.2.3"];
    let ok: Vec<&str> = unified
        .iter()
        .copied()
        .chain(["route:/", "status_class:2xx"])
        .collect();
    let s = common::wait_for(&agent, "the app's requests and durations", |s| {
        s.total("tinyfish.app.requests", &ok) >= f64::from(n)
            && s.total("tinyfish.app.request.duration", &ok) >= f64::from(n)
    })
    .await;
    assert_eq!(
        s.total("tinyfish.app.requests", &ok),
        f64::from(n),
        "{s:#?}"
    );
    let d = s.metric("tinyfish.app.request.duration", &ok).unwrap();
    assert_eq!(d.kind, agent::MetricKind::Distribution);
    assert_eq!(d.count, Some(f64::from(n)));
    assert!(
        d.min.unwrap() >= 0.0 && d.p50.unwrap() <= d.max.unwrap(),
        "{d:?}"
    );
    // Every metric the app sent carries the unified service tags.
    for m in &s.metrics {
        assert!(
            m.has_tags(&unified),
            "{} lacks unified service tags: {:?}",
            m.name,
            m.tags
        );
    }
    assert_eq!(s.malformed, 0, "{:?}", s.malformed_by_kind);

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    agent.shutdown().await;
}
