//! Every templated row of the shipped scenarios, brought up the way the bench brings it up
//! (`bench::topology::up`, from the scenario file itself), sent real requests, and taken
//! down with nothing left behind: the original Flask stack (`original.toml`) and every
//! proxy of the shootout (`shootout.toml`). A row whose program is missing is a visible
//! skip (`SKIPPED …` on stderr), and a failure where CI has installed everything
//! (`TINYFISH_TEST_REQUIRE_ALL=1`, set by `.ci/run`).

use std::path::{Path, PathBuf};

use bench::scenario::{Scenario, TopologySpec};
use bench::service::{ServiceSpec, Services};
use bench::topology::{self, Env, Running};
use testkit::upstream::Scripted;

/// A shipped scenario, with its paths made absolute (tests do not run from the
/// repository root, and cannot change the directory of a process whose tests run in
/// parallel).
fn shipped(file: &str) -> Scenario {
    let root = testkit::process::repo_root();
    let mut s = Scenario::from_file(&root.join("bench/scenarios").join(file)).unwrap();
    for t in &mut s.topologies {
        t.config_template = t.config_template.take().map(|p| root.join(p));
    }
    for spec in s.services.values_mut() {
        spec.config_template = spec.config_template.take().map(|p| root.join(p));
        spec.dir = spec.dir.take().map(|p| root.join(p));
    }
    s
}

fn env(services: Services, scratch: &Path) -> Env {
    std::fs::create_dir_all(scratch).unwrap();
    Env {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_bench")),
        agent: None,
        app_threads: 1,
        proxy_threads: 1,
        scratch: scratch.to_path_buf(),
        dd_env: "test".into(),
        services,
        cert: None,
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinyfish-rows-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Brings `t` up, or skips it visibly when a program it needs is missing.
fn up(test: &str, t: &TopologySpec, env: &Env) -> Option<Running> {
    if let Err(e) = topology::availability(t, &env.services) {
        testkit::installed::skip(&format!("{test} ({})", t.name), &e.to_string());
        return None;
    }
    match topology::up(t, env) {
        Ok(r) => Some(r),
        Err(e) => panic!("{test}: topology {} did not come up: {e}", t.name),
    }
}

/// Every process of a topology (the roots it samples and their descendants).
fn tree(r: &Running) -> Vec<u32> {
    let mut pids = Vec::new();
    for target in r.targets() {
        pids.push(target.pid);
        pids.extend(
            testkit::process::descendants(target.pid)
                .into_iter()
                .map(|(p, _)| p),
        );
    }
    pids
}

#[test]
fn every_row_of_the_original_stack_answers_the_greeting_and_leaves_nothing_behind() {
    let test = "original.toml";
    let s = shipped("original.toml");
    let dir = scratch("original");
    let env = env(s.services(), &dir);
    let want = app::greeting::today();
    let mut ran = Vec::new();
    for t in &s.topologies {
        let Some(running) = up(test, t, &env) else {
            continue;
        };
        // What runs is what the scenario says: the service as the app, and a proxy where
        // the row has one.
        let targets = running.targets();
        let programs: Vec<(String, String)> = targets
            .iter()
            .map(|x| (x.role.clone(), x.program.clone()))
            .collect();
        let expect: &[(&str, &str)] = match t.name.as_str() {
            "flask" => &[("app", "flask")],
            "uwsgi" => &[("app", "uwsgi")],
            "nginx" => &[("app", "uwsgi"), ("proxy", "nginx")],
            "proxied" => &[("app", "uwsgi"), ("proxy", "tinyfish-proxy")],
            other => panic!("original.toml has a row this test does not know: {other}"),
        };
        let expect: Vec<(String, String)> = expect
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(programs, expect, "{}", t.name);
        // Three requests on one client connection where the server keeps it, and the
        // greeting byte for byte each time.
        for _ in 0..3 {
            let r = testkit::http::get(running.entry, "/");
            assert_eq!(r.status, 200, "{}: {r:?}", t.name);
            assert_eq!(r.body, want.as_ref(), "{}", t.name);
            assert_eq!(r.header("content-type"), Some("text/plain"), "{}", t.name);
        }
        let pids = tree(&running);
        assert!(
            pids.len() >= targets.len(),
            "{}: no process tree: {pids:?}",
            t.name
        );
        running.down();
        testkit::process::assert_all_gone(&pids);
        ran.push(t.name.clone());
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{test}: rows run: {ran:?}");
}

/// The row's request reached the upstream once per request with the forwarded headers
/// every template promises, and the body of a POST arrived whole.
fn check_forwarding(name: &str, running: &Running, up: &Scripted, keeps_alive: bool) {
    let mut c = testkit::http::Conn::open(running.entry);
    for i in 0..2 {
        c.send(
            format!(
                "GET /r{i} HTTP/1.1\r\nHost: tinyfish.test:8080\r\nX-Request-Id: id-{i}\r\n\r\n"
            )
            .as_bytes(),
        );
        let r = c
            .response()
            .unwrap_or_else(|e| panic!("{name}: request {i}: {e}"));
        assert_eq!((r.status, r.text()), (200, "ok"), "{name}: request {i}");
    }
    let body = vec![b'b'; 100 * 1024];
    let mut post = format!(
        "POST /echo HTTP/1.1\r\nHost: tinyfish.test:8080\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    post.extend_from_slice(&body);
    c.send(&post);
    let r = c.response().unwrap_or_else(|e| panic!("{name}: POST: {e}"));
    assert_eq!(r.status, 200, "{name}: POST");
    testkit::eventually("the upstream to have three requests", || up.count() == 3);
    let got = up.requests();
    for (i, req) in got.iter().take(2).enumerate() {
        assert_eq!(req.uri, format!("/r{i}"), "{name}");
        assert_eq!(
            req.header("host"),
            Some("tinyfish.test:8080"),
            "{name}: Host"
        );
        let xff = req.header("x-forwarded-for").unwrap_or("");
        assert!(xff.contains("127.0.0.1"), "{name}: X-Forwarded-For {xff:?}");
        assert_eq!(req.header("x-forwarded-proto"), Some("http"), "{name}");
        // H2O 2.2 can set a header to a fixed value only (its template says so).
        if name != "h2o" {
            assert_eq!(
                req.header("x-forwarded-host"),
                Some("tinyfish.test:8080"),
                "{name}: X-Forwarded-Host"
            );
        }
    }
    assert_eq!(got[2].method, "POST", "{name}");
    assert_eq!(got[2].body.len(), body.len(), "{name}: the POST body");
    assert!(
        got[2].body.iter().all(|b| *b == b'b'),
        "{name}: the POST body"
    );
    drop(c);
    if keeps_alive {
        assert_eq!(
            up.accepted(),
            1,
            "{name}: three requests in turn took more than one upstream connection"
        );
    }
}

#[test]
fn every_proxy_of_the_shootout_forwards_with_the_same_headers() {
    let test = "shootout.toml";
    let s = shipped("shootout.toml");
    let dir = scratch("shootout");
    let mut ran = Vec::new();
    for t in s.topologies.iter().filter(|t| t.name != "direct") {
        // Each proxy in front of a scripted upstream that records exactly what it got.
        let upstream = testkit::upstream()
            .answer(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..])
            .start();
        let mut named = std::collections::BTreeMap::new();
        let recorder: ServiceSpec =
            toml::from_str(&format!("address = \"{}\"", upstream.addr())).unwrap();
        named.insert("recorder".to_owned(), recorder);
        let services = Services {
            default: Some("recorder".into()),
            named,
        };
        let env = env(services, &dir.join(&t.name));
        let mut t = t.clone();
        t.service = None;
        let Some(running) = up(test, &t, &env) else {
            continue;
        };
        // lighttpd 1.4's mod_proxy opens a connection per request (its template says so).
        check_forwarding(&t.name, &running, &upstream, t.name != "lighttpd");
        let pids = tree(&running);
        running.down();
        testkit::process::assert_all_gone(&pids);
        ran.push(t.name.clone());
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{test}: rows run: {ran:?}");
}

#[test]
fn every_tls_row_serves_https_with_the_runs_certificate_to_the_load_generator() {
    let mut ran = Vec::new();
    for file in ["tls.toml", "tls-handshake.toml"] {
        let s = shipped(file);
        let dir = scratch(file);
        let mut env = env(s.services(), &dir);
        env.cert = Some(bench::certs::RunCert::make(&dir).unwrap());
        for t in s.topologies.iter().filter(|t| t.protocol.tls()) {
            let Some(running) = up(file, t, &env) else {
                continue;
            };
            let name = format!("{file} {}", t.name);
            let tls = running
                .tls
                .clone()
                .expect("a TLS row has the load generator's TLS");
            let url = format!("https://localhost:{}/", running.entry.port());
            let mut spec = loadgen::LoadSpec::from_url_with_tls(&url, Some(tls)).unwrap();
            spec.addr = running.entry;
            spec.connections = 2;
            spec.mode = loadgen::Mode::Closed;
            spec.warmup = std::time::Duration::from_millis(100);
            spec.duration = std::time::Duration::from_millis(500);
            spec.requests_per_connection = t.requests_per_connection;
            spec.h2_streams = (t.protocol == bench::scenario::Protocol::H2Tls).then_some(t.streams);
            let r = loadgen::run(&spec, &loadgen::Live::new()).unwrap();
            assert!(
                r.completed > 10,
                "{name}: {} responses, errors {:?}",
                r.completed,
                r.errors
            );
            assert!(r.errors.is_empty(), "{name}: {:?}", r.errors);
            assert_eq!(r.status_counts.get(&200), Some(&r.completed), "{name}");
            let hs = r.tls.unwrap();
            if t.requests_per_connection == Some(1) {
                assert!(
                    hs.handshakes + 4 >= r.completed,
                    "{name}: {hs:?} for {}",
                    r.completed
                );
                if t.tls_resumption {
                    assert!(
                        hs.resumed * 10 >= hs.handshakes * 8,
                        "{name}: tickets resume: {hs:?}"
                    );
                } else {
                    assert_eq!(hs.resumed, 0, "{name}: the row's client does not resume");
                }
            }
            // Plain HTTP to the TLS port gets no HTTP 200: the row really speaks TLS only.
            let mut plain = std::net::TcpStream::connect(running.entry).unwrap();
            use std::io::{Read, Write};
            plain
                .set_read_timeout(Some(testkit::scaled(std::time::Duration::from_secs(5))))
                .unwrap();
            plain
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut got = Vec::new();
            let _ = plain.read_to_end(&mut got);
            assert!(
                !String::from_utf8_lossy(&got).contains("200 OK"),
                "{name}: plain HTTP answered on a TLS port: {:?}",
                String::from_utf8_lossy(&got)
            );
            ran.push(name);
            running.down();
        }
    }
    for must in [
        "tls.toml proxied-tls",
        "tls.toml proxied-h2",
        "tls-handshake.toml proxied-tls-new",
    ] {
        assert!(ran.iter().any(|r| r == must), "{must} did not run: {ran:?}");
    }
    eprintln!("TLS rows served: {ran:?}");
}
