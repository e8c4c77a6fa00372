//! The app's command-line flags, as a [`clap::Args`] so that other binaries (the bench)
//! can embed them as a subcommand.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// How a Unix socket is spelled in `--listen`: `unix:` followed by its path.
pub const UNIX_PREFIX: &str = "unix:";

/// Longest Unix socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
pub const MAX_UNIX_PATH_BYTES: usize = 107;

/// Where the app listens: `--listen 127.0.0.1:5000` (TCP) or `--listen unix:/path/app.sock`
/// (a Unix socket, for a proxy on the same host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address; port 0 picks a free port.
    Tcp(SocketAddr),
    /// A Unix socket at this absolute path.
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Listen, String> {
        let Some(path) = s.strip_prefix(UNIX_PREFIX) else {
            return s.parse().map(Listen::Tcp).map_err(|_| {
                format!(
                    "expected host:port (e.g. 127.0.0.1:5000) or unix:/absolute/path \
                     (e.g. unix:/run/tinyfish/app.sock), got {s:?}"
                )
            });
        };
        if !path.starts_with('/') || path.contains('\0') {
            return Err(format!(
                "expected unix: followed by an absolute path (e.g. unix:/run/tinyfish/app.sock), got {s:?}"
            ));
        }
        if path.len() > MAX_UNIX_PATH_BYTES {
            return Err(format!(
                "the socket path is {} bytes long; a Unix socket path can be at most \
                 {MAX_UNIX_PATH_BYTES} bytes",
                path.len()
            ));
        }
        Ok(Listen::Unix(PathBuf::from(path)))
    }
}

/// As `--listen` spells it: `127.0.0.1:5000`, `unix:/run/app.sock`.
impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(a) => a.fmt(f),
            Listen::Unix(p) => write!(f, "{UNIX_PREFIX}{}", p.display()),
        }
    }
}

/// Flags of the app. Each also reads an environment variable, for containers.
#[derive(Debug, Clone, clap::Args)]
pub struct Cli {
    /// Address to listen on: host:port (port 0 picks a free port) or unix:/absolute/path
    /// (a Unix socket); the bound address is printed on stdout.
    #[arg(
        long,
        value_name = "ADDR",
        env = "APP_LISTEN",
        default_value = "0.0.0.0:5000"
    )]
    pub listen: Listen,

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
            listen: Listen::Tcp(SocketAddr::from(([0, 0, 0, 0], 5000))),
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
        assert_eq!(cli.listen, Listen::Tcp("0.0.0.0:5000".parse().unwrap()));
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
        assert_eq!(cli.listen, Listen::Tcp("127.0.0.1:0".parse().unwrap()));
        assert_eq!(cli.worker_threads(), 1);
        assert_eq!(cli.grace, Duration::from_millis(250));
    }

    #[test]
    fn bad_values_are_rejected() {
        for args in [
            &["--threads", "0"][..],
            &["--threads", "many"],
            &["--listen", "nowhere"],
            &["--listen", "unix:relative/app.sock"],
            &["--listen", "unix:"],
            &["--grace", "soon"],
            &["--bogus"],
        ] {
            assert!(parse(args).is_err(), "{args:?} should be rejected");
        }
    }

    #[test]
    fn listen_takes_a_unix_socket_path() {
        let cli = parse(&["--listen", "unix:/run/tinyfish/app.sock"]).unwrap();
        assert_eq!(cli.listen, Listen::Unix("/run/tinyfish/app.sock".into()));
        assert_eq!(cli.listen.to_string(), "unix:/run/tinyfish/app.sock");
        assert_eq!(
            "127.0.0.1:5000".parse::<Listen>().unwrap().to_string(),
            "127.0.0.1:5000"
        );
        let long = format!("unix:/{}", "a".repeat(MAX_UNIX_PATH_BYTES));
        let e = long.parse::<Listen>().unwrap_err();
        assert!(e.contains("at most 107 bytes"), "{e}");
        let e = "unix:app.sock".parse::<Listen>().unwrap_err();
        assert_eq!(
            e,
            "expected unix: followed by an absolute path (e.g. unix:/run/tinyfish/app.sock), got \"unix:app.sock\""
        );
    }
}
