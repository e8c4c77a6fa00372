//! Memory per client connection (issue 13): a connection that has sent nothing, part of a
//! head, or one request and now idles costs the proxy at most 16 KiB of memory (PSS, all
//! of it, including what the allocator keeps after serving them at once). Measured at
//! 4–13 KiB on the fast path by `scripts/conn-memory`, beside NGINX; the bound here is
//! the target, generous for a test.

use std::io::Write;
use std::net::SocketAddr;

use testkit::tcp;

const CONNECTIONS: usize = 400;
const MAX_KIB_PER_CONNECTION: f64 = 16.0;

/// The proxy's proportional set size in KiB.
fn pss_kib(pid: nix::unistd::Pid) -> u64 {
    let rollup =
        std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("read smaps_rollup");
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a Pss line")
}

/// What is measured is memory held, not work in progress: waits until the proxy has
/// accepted every connection (its listener's queue is empty) and read every byte sent to it.
fn settle(proxy: SocketAddr) {
    testkit::wait(format!(
        "the proxy at {proxy} to accept and read everything"
    ))
    .until(|| {
        tcp::sockets()
            .iter()
            .filter(|s| s.local.port() == proxy.port())
            .all(|s| s.rx_queue == 0)
    });
}

#[test]
fn waiting_connections_cost_at_most_16_kib_each() {
    let upstream = testkit::upstream().start();
    let proxy = testkit::proxy()
        .to(&upstream)
        .with(|c| c.threads = Some(1))
        .start();
    // Start-up allocations are not the first connection's.
    assert_eq!(testkit::http::get(proxy.addr(), "/warm").status, 200);
    settle(proxy.addr());
    let per_connection =
        |before: u64| (pss_kib(proxy.pid()).saturating_sub(before)) as f64 / CONNECTIONS as f64;

    let before = pss_kib(proxy.pid());
    let fresh: Vec<_> = (0..CONNECTIONS)
        .map(|_| tcp::connect(proxy.addr()))
        .collect();
    settle(proxy.addr());
    let fresh_kib = per_connection(before);

    let before = pss_kib(proxy.pid());
    let partial: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let mut s = tcp::connect(proxy.addr());
            s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Partial: ")
                .unwrap();
            s.write_all(&[b'a'; 360]).unwrap();
            s
        })
        .collect();
    settle(proxy.addr());
    let partial_kib = per_connection(before);

    let before = pss_kib(proxy.pid());
    let idle: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let mut c = testkit::http::Conn::open(proxy.addr());
            c.send(b"GET /once HTTP/1.1\r\nHost: a\r\n\r\n");
            c
        })
        .collect();
    let idle: Vec<_> = idle
        .into_iter()
        .map(|mut c| {
            assert_eq!(c.response().expect("a response").status, 200);
            c
        })
        .collect();
    settle(proxy.addr());
    let idle_kib = per_connection(before);

    let report = format!(
        "KiB per connection: fresh {fresh_kib:.1}, partial head {partial_kib:.1}, idle after one request {idle_kib:.1}"
    );
    println!("{report}");
    for kib in [fresh_kib, partial_kib, idle_kib] {
        assert!(
            kib <= MAX_KIB_PER_CONNECTION,
            "{report} (at most {MAX_KIB_PER_CONNECTION})"
        );
    }
    drop((fresh, partial, idle));
}
