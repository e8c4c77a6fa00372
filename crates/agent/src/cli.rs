//! `bench agent`: the agent's flags, as a [`clap::Args`] the bench embeds, and [`run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::io::Write as _;

use anyhow::Context as _;

use crate::AgentConfig;

/// Flags of the agent. Each also reads an environment variable, for containers.
#[derive(Debug, Clone, clap::Args)]
pub struct Cli {
    /// UDP address to receive DogStatsD on.
    #[arg(
        long,
        value_name = "ADDR",
        env = "AGENT_LISTEN",
        default_value = "127.0.0.1:8125"
    )]
    pub listen: SocketAddr,

    /// Address to serve the JSON snapshot on (`GET /`) and the live page
    /// (`GET /dashboard`), e.g. 127.0.0.1:8181.
    #[arg(long, value_name = "ADDR", env = "AGENT_HTTP")]
    pub http: Option<SocketAddr>,

    /// Unix datagram socket to receive DogStatsD on too, e.g. /var/run/datadog/dsd.socket.
    #[arg(long, value_name = "PATH", env = "AGENT_SOCKET")]
    pub socket: Option<PathBuf>,

    /// Print one line per metric that changed, every flush interval, on stdout.
    #[arg(long, env = "AGENT_PRINT")]
    pub print: bool,

    /// How often --print writes (e.g. 10s, 1s, 500ms).
    #[arg(long, value_name = "DURATION", env = "AGENT_FLUSH_INTERVAL", default_value = "10s", value_parser = parse_interval)]
    pub flush_interval: Duration,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

impl Cli {
    /// The agent configuration these flags describe.
    pub fn config(&self) -> AgentConfig {
        AgentConfig {
            udp: self.listen,
            socket: self.socket.clone(),
            http: self.http,
            print: self.print,
            flush_interval: self.flush_interval,
        }
    }
}

/// Runs the agent until SIGINT or SIGTERM; says where it listens on stderr (and, when
/// serving HTTP, `listening on http://ADDR` as the first line on stdout).
pub fn run(cli: Cli) -> anyhow::Result<()> {
    run_with(cli, |_| Ok(()))
}

/// [`run`], with `attach` called once the agent listens (the bench starts its
/// container check there); what it returns is dropped before the agent shuts down.
pub fn run_with<G>(
    cli: Cli,
    attach: impl FnOnce(&crate::AgentHandle) -> anyhow::Result<G>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let agent = crate::start(cli.config()).await?;
        eprintln!("{}; Ctrl-C to stop", agent.describe());
        if let Some(addr) = agent.http_addr() {
            // The workspace's convention (app, proxy): the bound address, first on stdout,
            // for whoever started us with port 0.
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on http://{addr}").context("cannot write to stdout")?;
            out.flush().context("cannot write to stdout")?;
        }
        let attached = attach(&agent)?;
        wait_for_signal().await?;
        drop(attached);
        agent.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot listen for SIGINT"),
        _ = term.recv() => Ok(()),
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
        let mut all = vec!["agent"];
        all.extend_from_slice(args);
        Wrap::try_parse_from(all).map(|w| w.cli)
    }

    #[test]
    fn defaults() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.listen, "127.0.0.1:8125".parse().unwrap());
        assert_eq!(cli.http, None);
        assert!(!cli.print);
        assert_eq!(cli.flush_interval, Duration::from_secs(10));
        assert_eq!(cli.config().udp, cli.listen);
    }

    #[test]
    fn flags() {
        let cli = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:8181",
            "--socket",
            "/tmp/dsd.socket",
            "--print",
            "--flush-interval",
            "2s",
        ])
        .unwrap();
        let c = cli.config();
        assert_eq!(c.http, Some("127.0.0.1:8181".parse().unwrap()));
        assert_eq!(c.socket, Some(PathBuf::from("/tmp/dsd.socket")));
        assert!(c.print);
        assert_eq!(c.flush_interval, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(parse(&["--listen", "nowhere"]).is_err());
        assert!(parse(&["--flush-interval", "0s"]).is_err());
        assert!(parse(&["--flush-interval", "soon"]).is_err());
    }
}
