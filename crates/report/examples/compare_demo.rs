//! Prints `compare` of two fake runs (the second with a slower proxy).
//!
//! `cargo run -p report --example compare_demo`

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let a = common::fake_results(&["direct", "proxied", "nginx"], &[1000.0, 4000.0], 5, 1);
    let mut b = common::fake_results(&["direct", "proxied", "nginx"], &[1000.0, 4400.0], 5, 2);
    for t in &mut b.results {
        if t.topology == "proxied" {
            t.latency_us.p50 += 20.0;
        }
    }
    print!("{}", report::compare(&a, &b));
}
