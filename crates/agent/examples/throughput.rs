//! Measures the agent's throughput on this machine, two ways:
//! 1. parse + aggregate in-process, one core (`Aggregator::ingest` in a loop);
//! 2. over UDP on loopback: a sender thread paced at a target rate, the agent's
//!    receiver thread, kernel drops read from /proc/net/udp.
//!
//! Run: `cargo run -p agent --example throughput` (optimised: the dev profile is).

use std::time::{Duration, Instant};

fn packet() -> (Vec<u8>, usize) {
    let line = "tinyfish.app.request.duration:0.0423|d|#env:bench,service:tinyfish-app,version:0.1.0,route:/,status_class:2xx";
    let mut p = Vec::new();
    let mut n = 0;
    while p.len() + line.len() < 1432 {
        if !p.is_empty() {
            p.push(b'\n');
        }
        p.extend_from_slice(line.as_bytes());
        n += 1;
    }
    (p, n)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (p, per) = packet();
    println!("datagram: {} bytes, {per} distribution lines", p.len());

    let mut a = agent::Aggregator::new();
    let n = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        a.ingest(&p);
    }
    let e = t.elapsed().as_secs_f64();
    println!(
        "in-process parse+aggregate: {:.0} datagrams/s, {:.0} lines/s ({:.0} ns/line)",
        n as f64 / e,
        (n * per) as f64 / e,
        e * 1e9 / (n * per) as f64
    );

    for rate in [5_000u64, 20_000, 50_000, 100_000] {
        let agent = agent::start(agent::AgentConfig::ephemeral()).await.unwrap();
        let addr = agent.udp_addr();
        let secs = 2u64;
        let sent = rate * secs;
        let started = Instant::now();
        let p = p.clone();
        std::thread::spawn(move || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.connect(addr).unwrap();
            let start = Instant::now();
            let step = Duration::from_millis(1);
            let per_step = rate / 1000;
            for i in 0..(secs * 1000) {
                for _ in 0..per_step {
                    let _ = s.send(&p);
                }
                let due = start + step * (i as u32 + 1);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        })
        .join()
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let s = loop {
            let s = agent.snapshot();
            if s.packets + s.kernel_drops.unwrap_or(0) >= sent || Instant::now() > deadline {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let e = started.elapsed().as_secs_f64();
        println!(
            "UDP at {rate} datagrams/s for {secs} s: {} received ({:.0} lines/s), {:?} dropped by the kernel, sender took {e:.2} s",
            s.packets,
            s.lines as f64 / e,
            s.kernel_drops
        );
        agent.shutdown().await;
    }
}
