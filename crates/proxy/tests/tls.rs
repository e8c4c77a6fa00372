//! TLS termination and HTTP/2 at the proxy's edge, over real handshakes on loopback:
//! rustls and curl as clients, ALPN (RFC 7301), HTTPS/1.1 and HTTP/2 forwarded to an
//! HTTP/1.1 upstream, metrics by protocol, and the configuration's refusals. Clients that
//! break the handshake or HTTP/2's framing are in `tls_abuse.rs`.

use std::process::Command;

use bytes::Bytes;
use testkit::dogstatsd::Metric;
use testkit::proxy::proxy_command;
use testkit::tls::{self, Cert, Conn};
use testkit::{upstream, TempFile};
use tokio_rustls::rustls;

fn tls_proxy(up: &testkit::Upstream, cert: &Cert) -> testkit::Process {
    testkit::proxy().to(up).tls(cert).start()
}

#[test]
fn https_1_1_is_forwarded_as_http_1_1_with_x_forwarded_proto_https_on_a_kept_alive_connection() {
    let cert = tls::cert();
    let up = upstream().start();
    let px = tls_proxy(&up, &cert);
    let mut conn = Conn::open(px.addr(), &cert, &["http/1.1"]).unwrap();
    assert_eq!(conn.alpn(), Some(&b"http/1.1"[..]));
    for i in 0..3 {
        let r = conn.get(&format!("/n{i}"));
        assert_eq!(
            (r.status, r.text()),
            (200, format!("upstream:/n{i}").as_str())
        );
    }
    let rec = up.requests();
    assert_eq!(rec.len(), 3, "three requests on one TLS connection");
    assert_eq!(rec[0].header("x-forwarded-proto"), Some("https"));
    assert_eq!(rec[0].header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(rec[0].header("host"), Some("localhost"));
}

/// Over TLS the dispatcher reads and checks every request as on plain TCP: the common
/// request takes the fast path, HTTP/1.0 is handed (its bytes put back) to pingora's proxy on
/// the same connection, pipelined requests keep their order, and a request without Host is
/// refused with 400 (RFC 9112 §3.2) before anything is forwarded.
#[test]
fn https_1_1_requests_take_both_paths_on_one_connection_and_are_checked_as_on_plain_tcp() {
    let cert = tls::cert();
    let up = upstream().start();
    let px = tls_proxy(&up, &cert);
    let mut conn = Conn::open(px.addr(), &cert, &["http/1.1"]).unwrap();
    conn.send(
        b"GET /fast HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /old HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n\
          GET /fast-again HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    for path in ["/fast", "/old", "/fast-again"] {
        let r = conn.response().unwrap();
        assert_eq!(
            (r.status, r.text()),
            (200, format!("upstream:{path}").as_str())
        );
    }
    let uris: Vec<String> = up.requests().into_iter().map(|r| r.uri).collect();
    assert_eq!(uris, ["/fast", "/old", "/fast-again"]);
    assert!(up
        .requests()
        .iter()
        .all(|r| r.header("x-forwarded-proto") == Some("https")));

    let mut bad = Conn::open(px.addr(), &cert, &["http/1.1"]).unwrap();
    bad.send(b"GET /no-host HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(bad.response().unwrap().status, 400);
    assert_eq!(up.requests().len(), 3, "the refused request was forwarded");
}

#[test]
fn alpn_prefers_h2_falls_back_to_http_1_1_and_refuses_a_client_offering_neither() {
    let cert = tls::cert();
    let up = upstream().start();
    let px = tls_proxy(&up, &cert);
    let alpn =
        |offer: &[&str]| Conn::open(px.addr(), &cert, offer).map(|c| c.alpn().map(<[u8]>::to_vec));
    // The server's order decides (tls.alpn: h2 first).
    assert_eq!(alpn(&["http/1.1", "h2"]).unwrap(), Some(b"h2".to_vec()));
    assert_eq!(alpn(&["http/1.1"]).unwrap(), Some(b"http/1.1".to_vec()));
    // No ALPN extension: HTTP/1.1, served.
    let mut plain = Conn::open(px.addr(), &cert, &[]).unwrap();
    assert_eq!(plain.alpn(), None);
    assert_eq!(plain.get("/no-alpn").status, 200);
    // Only protocols it does not serve: the handshake fails (RFC 7301 §3.2:
    // no_application_protocol), nothing is forwarded.
    let refused = alpn(&["spdy/3", "h3"]);
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(up.requests().len(), 1);

    // A proxy that offers only HTTP/1.1 never picks h2.
    let h1_only = testkit::proxy()
        .to(&up)
        .tls(&cert)
        .with(|c| c.tls.as_mut().unwrap().alpn = vec!["http/1.1".into()])
        .start();
    let c = Conn::open(h1_only.addr(), &cert, &["h2", "http/1.1"]).unwrap();
    assert_eq!(c.alpn(), Some(&b"http/1.1"[..]));
}

#[test]
fn tls_versions_are_those_configured() {
    let cert = tls::cert();
    let up = upstream().start();
    let px = testkit::proxy()
        .to(&up)
        .tls(&cert)
        .with(|c| c.tls.as_mut().unwrap().versions = vec!["1.3".into()])
        .start();
    let c = Conn::open(px.addr(), &cert, &["http/1.1"]).unwrap();
    assert_eq!(c.version(), Some(rustls::ProtocolVersion::TLSv1_3));
    // A client that speaks only TLS 1.2 is refused.
    let tls12_only = cert.client_config_for(&["http/1.1"], &[&rustls::version::TLS12]);
    let refused = Conn::open_with(px.addr(), tls12_only);
    assert!(
        refused.is_err(),
        "a TLS 1.2 client was served by a 1.3-only proxy"
    );
}

/// curl (OpenSSL and nghttp2, a real peer): `--http2` or `--http1.1` against the proxy,
/// verifying the run's certificate; prints the body, then the HTTP version it used.
fn curl(
    cert: &Cert,
    addr: std::net::SocketAddr,
    protocol: &str,
    extra: &[&str],
    path: &str,
) -> String {
    let port = addr.port();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", protocol, "--cacert"])
        .arg(cert.cert.path())
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(extra)
        .args(["-w", "\n%{http_version}"])
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {protocol} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn curl_gets_the_app_over_http2_and_https_1_1_through_the_proxy() {
    let cert = tls::cert();
    let app = testkit::app().start();
    let px = testkit::proxy().to(&app).tls(&cert).start();
    let h2 = curl(&cert, px.addr(), "--http2", &[], "/");
    let (body, version) = h2.rsplit_once('\n').unwrap();
    assert_eq!(version, "2");
    assert!(body.starts_with("Hello World on this date"), "{body:?}");
    let h1 = curl(&cert, px.addr(), "--http1.1", &[], "/");
    let (body, version) = h1.rsplit_once('\n').unwrap();
    assert_eq!(version, "1.1");
    assert!(body.starts_with("Hello World on this date"), "{body:?}");
}

#[test]
fn curl_posts_a_body_over_http2_which_the_upstream_receives_whole_over_http_1_1() {
    let cert = tls::cert();
    let up = upstream().start();
    let px = tls_proxy(&up, &cert);
    let body = "x".repeat(100_000);
    let file = TempFile::new("body", &body);
    let data = format!("@{}", file.path().display());
    let out = curl(
        &cert,
        px.addr(),
        "--http2",
        &["--data-binary", &data],
        "/up?q=1",
    );
    let (reply, version) = out.rsplit_once('\n').unwrap();
    assert_eq!(version, "2");
    assert_eq!(reply.len(), "upstream:/up".len() + body.len());
    let rec = up.requests();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].method, "POST");
    assert_eq!(rec[0].uri, "/up?q=1");
    assert_eq!(rec[0].body, body.as_bytes());
    let port = px.addr().port().to_string();
    assert_eq!(
        rec[0].header("host"),
        Some(format!("localhost:{port}").as_str())
    );
    assert_eq!(rec[0].header("x-forwarded-proto"), Some("https"));
    assert_eq!(rec[0].header("x-forwarded-for"), Some("127.0.0.1"));
}

/// An HTTP/2 client of the h2 crate over tokio-rustls: one POST with a body, in two DATA
/// frames, on one of several streams of one connection.
#[test]
fn h2_streams_with_bodies_are_proxied_concurrently_on_one_connection() {
    let cert = tls::cert();
    let up = upstream().start();
    let px = tls_proxy(&up, &cert);
    let config = cert.client_config(&["h2"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let replies = rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(px.addr()).await.unwrap();
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (client, conn) = h2::client::handshake(tls).await.unwrap();
        tokio::spawn(conn);
        let mut waits = Vec::new();
        for i in 0..5 {
            let mut client = client.clone().ready().await.unwrap();
            let req = http::Request::post(format!("https://localhost/s{i}"))
                .body(())
                .unwrap();
            let (response, mut send) = client.send_request(req, false).unwrap();
            send.send_data(Bytes::from(format!("part one {i}, ")), false)
                .unwrap();
            send.send_data(Bytes::from("part two"), true).unwrap();
            waits.push(response);
        }
        let mut replies = Vec::new();
        for w in waits {
            let response = w.await.unwrap();
            assert_eq!(response.status(), 200);
            let mut body = response.into_body();
            let mut got = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                body.flow_control().release_capacity(chunk.len()).unwrap();
                got.extend_from_slice(&chunk);
            }
            replies.push(String::from_utf8(got).unwrap());
        }
        drop(px);
        replies
    });
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r, &format!("upstream:/s{i}part one {i}, part two"));
    }
    let mut rec = up.requests();
    rec.sort_by(|a, b| a.uri.cmp(&b.uri));
    assert_eq!(rec.len(), 5);
    for (i, r) in rec.iter().enumerate() {
        assert_eq!(
            (r.method.as_str(), r.uri.as_str()),
            ("POST", format!("/s{i}").as_str())
        );
        assert_eq!(r.body, format!("part one {i}, part two").as_bytes());
        assert_eq!(r.header("host"), Some("localhost"));
    }
}

#[test]
fn requests_are_counted_by_protocol() {
    let cert = tls::cert();
    let up = upstream().start();
    let sink = testkit::dogstatsd();
    let px = testkit::proxy()
        .to(&up)
        .tls(&cert)
        .metrics_to(&sink)
        .start();
    let mut h1 = Conn::open(px.addr(), &cert, &["http/1.1"]).unwrap();
    assert_eq!(h1.get("/h1").status, 200);
    curl(&cert, px.addr(), "--http2", &[], "/h2");
    let counted = |protocol: &'static str| {
        move |m: &Metric| {
            m.name == "tinyfish.proxy.requests"
                && m.tag("protocol") == Some(protocol)
                && m.tag("status_class") == Some("2xx")
        }
    };
    sink.expect("a 2xx HTTPS/1.1 request", counted("h1+tls"));
    sink.expect("a 2xx HTTP/2 request", counted("h2+tls"));
    sink.assert_well_formed();
}

// ------------------------------------------------------------------ configuration

/// `proxy --check` on a file with `[tls]` = `table`: exit code and stderr.
fn check(table: &str) -> (Option<i32>, String) {
    let f = TempFile::new(
        "tls.toml",
        format!("listen = \"127.0.0.1:0\"\n[tls]\n{table}"),
    );
    let out = proxy_command()
        .arg("--check")
        .arg("-c")
        .arg(&f)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn files(cert: &Cert) -> String {
    format!(
        "cert = {:?}\nkey = {:?}\n",
        cert.cert.path().display().to_string(),
        cert.key.path().display().to_string()
    )
}

#[test]
fn check_accepts_a_certificate_and_its_key() {
    let cert = tls::cert();
    let (code, err) = check(&files(&cert));
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn check_refuses_a_missing_certificate_naming_the_key_the_line_and_the_file() {
    let cert = tls::cert();
    let table = format!(
        "cert = \"/nonexistent/cert.pem\"\nkey = {:?}\n",
        cert.key.path().display().to_string()
    );
    let (code, err) = check(&table);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(":3: tls.cert") && err.contains("/nonexistent/cert.pem"),
        "{err}"
    );
}

#[test]
fn check_refuses_a_key_that_does_not_match_the_certificate() {
    let cert = tls::cert();
    let other = tls::cert();
    let table = format!(
        "cert = {:?}\nkey = {:?}\n",
        cert.cert.path().display().to_string(),
        other.key.path().display().to_string()
    );
    let (code, err) = check(&table);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(":4: tls.key") && err.contains("cannot serve the certificate"),
        "{err}"
    );
}

#[test]
fn check_refuses_a_file_that_is_not_a_certificate_and_an_unknown_protocol() {
    let cert = tls::cert();
    let table = format!(
        "cert = {:?}\nkey = {:?}\n",
        cert.key.path().display().to_string(),
        cert.key.path().display().to_string()
    );
    let (code, err) = check(&table);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tls.cert") && err.contains("holds no certificate"),
        "{err}"
    );

    let (code, err) = check(&format!("{}alpn = [\"h2\", \"h3\"]\n", files(&cert)));
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(":5: tls.alpn") && err.contains("unknown \"h3\""),
        "{err}"
    );
}
