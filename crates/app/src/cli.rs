//! The app's command-line flags, as a [`clap::Args`] so that other binaries (the bench)
//! can embed them as a subcommand.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

/// Flags of the app. Each also reads an environment variable, for containers.
#[derive(Debug, Clone, clap::Args)]
pub struct Cli {
    /// Address to listen on; port 0 picks a free port (the bound address is printed on stdout).
    #[arg(
        long,
        value_name = "ADDR",
        env = "APP_LISTEN",
        default_value = "0.0.0.0:5000"
    )]
    pub listen: SocketAddr,

    /// Worker threads; 1 runs a single-threaded runtime (cheapest). Default: all cores.
    #[arg(long, value_name = "N", env = "APP_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,

    /// How long requests in flight may take to finish after SIGTERM or SIGINT (e.g. 10s, 500ms).
    #[arg(long, value_name = "DURATION", env = "APP_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
}

impl Cli {
    /// The number of worker threads to run: `--threads`, or every core.
    pub fn worker_threads(&self) -> usize {
        match self.threads {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        }
    }
}

impl Default for Cli {
    fn default() -> Self {
        Cli {
            listen: SocketAddr::from(([0, 0, 0, 0], 5000)),
            threads: None,
            grace: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        cli: Cli,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut all = vec!["app"];
        all.extend_from_slice(args);
        Wrap::try_parse_from(all).map(|w| w.cli)
    }

    #[test]
    fn defaults_match_the_original_app() {
        let cli = parse(&[]).unwrap();
        let d = Cli::default();
        assert_eq!(cli.listen, d.listen);
        assert_eq!(cli.listen.port(), 5000);
        assert_eq!(cli.grace, Duration::from_secs(10));
        assert!(cli.worker_threads() >= 1);
    }

    #[test]
    fn flags_parse() {
        let cli = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--grace",
            "250ms",
        ])
        .unwrap();
        assert_eq!(cli.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(cli.worker_threads(), 1);
        assert_eq!(cli.grace, Duration::from_millis(250));
    }

    #[test]
    fn bad_values_are_rejected() {
        for args in [
            &["--threads", "0"][..],
            &["--threads", "many"],
            &["--listen", "nowhere"],
            &["--grace", "soon"],
            &["--bogus"],
        ] {
            assert!(parse(args).is_err(), "{args:?} should be rejected");
        }
    }
}
