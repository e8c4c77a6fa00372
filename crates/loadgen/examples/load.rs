//! The load generator on its own, with the same flags as `bench load` (a thin main over
//! [`loadgen::run_cli`]).
//!
//! ```text
//! cargo run -p loadgen --example load -- --url http://127.0.0.1:8099/ --connections 32 --duration 8s
//! cargo run -p loadgen --example load -- --url http://127.0.0.1:8099/ --rate 5000 --json /tmp/r.json
//! ```

use clap::Parser;

/// Load an HTTP/1.1 server: open loop with --rate, closed loop without.
#[derive(Debug, Parser)]
#[command(name = "load")]
struct Args {
    #[command(flatten)]
    cli: loadgen::Cli,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = loadgen::run_cli(args.cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
