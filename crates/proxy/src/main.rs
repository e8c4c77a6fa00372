//! The `proxy` binary: parses flags and environment, runs [`proxy::run`].
//! Exit codes: 0 after a clean shutdown, 2 for a bad configuration, 1 otherwise.

use std::process::ExitCode;

use clap::Parser;

/// TinyFish reverse proxy (pingora): forwards HTTP/1 to one or more upstreams.
#[derive(Debug, Parser)]
#[command(name = "proxy", version, about)]
struct Args {
    #[command(flatten)]
    cli: proxy::Cli,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match proxy::run(args.cli, telemetry::DatadogEnv::from_process_env()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy: {e:#}");
            if e.downcast_ref::<proxy::ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
