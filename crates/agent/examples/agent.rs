//! The agent on its own, before `bench agent` exists in your build:
//! `cargo run -p agent --example agent -- --http 127.0.0.1:8181 --print --flush-interval 1s`,
//! then `curl -s 127.0.0.1:8181/`.

use clap::Parser;

#[derive(Parser)]
#[command(about = "A DogStatsD agent: receives, aggregates, serves a JSON snapshot")]
struct Args {
    #[command(flatten)]
    cli: agent::Cli,
}

fn main() {
    if let Err(e) = agent::run(Args::parse().cli) {
        eprintln!("agent: {e:#}");
        std::process::exit(1);
    }
}
