//! HTTPS/1.1 load against our proxy terminating TLS (a fresh rcgen certificate per test):
//! keep-alive connections, a new connection per request with and without resumption (the
//! handshakes counted and timed), kernel timestamps over TLS, and a certificate the load
//! generator does not trust (every request a `tls` error, none a response).

use std::time::Duration;

use loadgen::{ClientTls, Live, LoadSpec, Mode};

fn spec(proxy: std::net::SocketAddr, ca: &testkit::tls::Cert, resumption: bool) -> LoadSpec {
    let pem = std::fs::read(ca.cert.path()).unwrap();
    let tls = ClientTls::new(&pem, "localhost", resumption).unwrap();
    let mut spec =
        LoadSpec::from_url_with_tls(&format!("https://localhost:{}/", proxy.port()), Some(tls))
            .unwrap();
    spec.addr = proxy;
    spec.connections = 4;
    spec.mode = Mode::Closed;
    spec.warmup = Duration::from_millis(200);
    spec.duration = Duration::from_millis(800);
    spec
}

fn fixture() -> (testkit::tls::Cert, testkit::Upstream, testkit::Process) {
    let cert = testkit::tls::cert();
    let upstream = testkit::upstream().start();
    let proxy = testkit::proxy().to(&upstream).tls(&cert).start();
    (cert, upstream, proxy)
}

#[test]
fn keep_alive_https_requests_complete_without_handshakes_in_the_window() {
    let (cert, _upstream, proxy) = fixture();
    let r = loadgen::run(&spec(proxy.addr(), &cert, true), &Live::new()).unwrap();
    assert!(r.completed > 50, "only {} responses", r.completed);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.status_counts.get(&200), Some(&r.completed));
    // The four handshakes happened in the warm-up: none counted in the window.
    let tls = r.tls.expect("a TLS run reports its handshakes");
    assert_eq!(tls.handshakes, 0, "{tls:?}");
    assert_eq!(r.reconnects, 0);
}

#[test]
fn a_new_connection_per_request_pays_a_full_handshake_each_unless_resumed() {
    let (cert, _upstream, proxy) = fixture();
    for resumption in [false, true] {
        let mut s = spec(proxy.addr(), &cert, resumption);
        s.requests_per_connection = Some(1);
        let r = loadgen::run(&s, &Live::new()).unwrap();
        assert!(
            r.completed > 20,
            "resumption {resumption}: {} responses",
            r.completed
        );
        assert!(
            r.errors.is_empty(),
            "resumption {resumption}: {:?}",
            r.errors
        );
        let tls = r.tls.unwrap();
        // Every measured request opened its connection (give or take the window's edges).
        assert!(
            tls.handshakes + 8 >= r.completed && tls.handshakes <= r.completed + 8,
            "resumption {resumption}: {} handshakes for {} responses",
            tls.handshakes,
            r.completed
        );
        assert!(tls.handshake_us.p50 > 0.0, "{tls:?}");
        if resumption {
            assert!(
                tls.resumed * 10 >= tls.handshakes * 9,
                "tickets on: nearly every handshake resumes: {tls:?}"
            );
        } else {
            assert_eq!(tls.resumed, 0, "{tls:?}");
        }
    }
}

#[test]
fn open_loop_https_latency_carries_kernel_timestamps() {
    let (cert, _upstream, proxy) = fixture();
    let mut s = spec(proxy.addr(), &cert, true);
    s.mode = Mode::Open { rate: 400.0 };
    s.duration = Duration::from_secs(1);
    let r = loadgen::run(&s, &Live::new()).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.completed > 300, "{} responses", r.completed);
    assert_eq!(
        r.timestamps,
        loadgen::TimestampSource::Kernel,
        "{:?}",
        r.rate_note
    );
    assert_eq!(r.kernel_timestamped, r.completed);
}

#[test]
fn a_certificate_the_load_generator_does_not_trust_fails_every_request_as_tls() {
    let (_cert, _upstream, proxy) = fixture();
    let stranger = testkit::tls::cert();
    let mut s = spec(proxy.addr(), &stranger, true);
    s.duration = Duration::from_millis(400);
    let r = loadgen::run(&s, &Live::new()).unwrap();
    assert_eq!(r.completed, 0, "{:?}", r.status_counts);
    assert!(
        r.errors.get("tls").copied().unwrap_or(0) > 0,
        "{:?}",
        r.errors
    );
}

#[test]
fn https_without_a_ca_and_tls_for_http_are_refused_before_anything_runs() {
    let e = LoadSpec::from_url("https://127.0.0.1:1/").unwrap_err();
    assert!(
        e.to_string()
            .contains("needs the CA certificate to trust (--ca FILE)"),
        "{e}"
    );
    let pem = std::fs::read(testkit::tls::cert().cert.path()).unwrap();
    let tls = ClientTls::new(&pem, "localhost", true).unwrap();
    let e = LoadSpec::from_url_with_tls("http://127.0.0.1:1/", Some(tls)).unwrap_err();
    assert!(e.to_string().contains("use https://"), "{e}");
    let e = ClientTls::new(b"not a certificate", "localhost", true).unwrap_err();
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
}

#[test]
fn http2_streams_share_connections_in_closed_and_open_loop() {
    let (cert, upstream, proxy) = fixture();
    let mut s = spec(proxy.addr(), &cert, true);
    s.connections = 2;
    s.h2_streams = Some(4);
    let r = loadgen::run(&s, &Live::new()).unwrap();
    assert!(
        r.completed > 50,
        "{} responses, errors {:?}",
        r.completed,
        r.errors
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.status_counts.get(&200), Some(&r.completed));
    // Two connections carried every stream (HTTP/2 to the proxy; it opens its own to
    // the upstream).
    assert_eq!(r.reconnects, 0);
    let _ = upstream;
    // Open loop: the schedule held, arrivals from the kernel.
    s.mode = Mode::Open { rate: 400.0 };
    s.duration = Duration::from_secs(1);
    let r = loadgen::run(&s, &Live::new()).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.rate_held, "{:?}", r.rate_note);
    assert_eq!(
        r.timestamps,
        loadgen::TimestampSource::Kernel,
        "{:?}",
        r.rate_note
    );
    assert!(r.latency_us.p50 > 0.0);
}

#[test]
fn http2_is_negotiated_by_alpn_a_server_without_h2_refuses_every_connection() {
    let cert = testkit::tls::cert();
    let upstream = testkit::upstream().start();
    let proxy = testkit::proxy()
        .to(&upstream)
        .tls(&cert)
        .with(|c| {
            if let Some(t) = c.tls.as_mut() {
                t.alpn = vec!["http/1.1".into()];
            }
        })
        .start();
    let mut s = spec(proxy.addr(), &cert, true);
    s.connections = 1;
    s.h2_streams = Some(2);
    s.duration = Duration::from_millis(300);
    let r = loadgen::run(&s, &Live::new()).unwrap();
    assert_eq!(r.completed, 0, "{:?}", r.status_counts);
    assert!(r.error_count() > 0, "{:?}", r.errors);
    let note = r.rate_note.unwrap_or_default();
    assert!(note.contains("TLS failed ("), "{note}");
}

#[test]
fn http2_needs_tls_and_keeps_its_connections() {
    let mut s = LoadSpec::from_url("http://127.0.0.1:1/").unwrap();
    s.h2_streams = Some(2);
    let e = s.validate().unwrap_err();
    assert!(
        e.to_string().contains("HTTP/2 is spoken over TLS only"),
        "{e}"
    );
    let pem = std::fs::read(testkit::tls::cert().cert.path()).unwrap();
    let tls = ClientTls::new(&pem, "localhost", true).unwrap();
    let mut s = LoadSpec::from_url_with_tls("https://127.0.0.1:1/", Some(tls)).unwrap();
    s.h2_streams = Some(2);
    s.requests_per_connection = Some(1);
    let e = s.validate().unwrap_err();
    assert!(
        e.to_string().contains("HTTP/2 connections stay open"),
        "{e}"
    );
}
