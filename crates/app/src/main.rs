//! The `app` binary: parses flags and the Datadog environment, then [`app::run`].

use std::process::ExitCode;

use clap::Parser;

/// The TinyFish app: "Hello World on this date …" over HTTP/1.1.
#[derive(Debug, Parser)]
#[command(name = "app", version, about)]
struct Args {
    #[command(flatten)]
    cli: app::Cli,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if e.use_stderr() => {
            // One line: clap's first line says what was wrong.
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("invalid arguments");
            eprintln!("app: {first}; see 'app --help'");
            return ExitCode::from(2);
        }
        Err(e) => {
            // --help, --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    match app::run(args.cli, telemetry::DatadogEnv::from_process_env()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("app: error: {e:#}");
            // A Unix socket path that cannot be used is the flag's fault, as a bad flag is.
            if matches!(
                e.downcast_ref::<app::ServeError>(),
                Some(app::ServeError::BindUnix { .. })
            ) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
