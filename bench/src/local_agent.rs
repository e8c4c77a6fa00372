//! `bench agent`: the DogStatsD agent of the `agent` crate, with the container check
//! ([`crate::container_check`]) when `--containers` is given: a stand-in for the
//! Datadog agent and its Docker integration that needs no account.
//!
//! ```text
//! bench agent --http 127.0.0.1:8181 --containers --project tinyfish
//! curl -s 127.0.0.1:8181/ | jq '.metrics[] | select(.name == "container.cpu.usage")'
//! open http://127.0.0.1:8181/dashboard
//! ```

use anyhow::Context as _;

use crate::container_check::{self, ContainerArgs};

/// Flags of `bench agent`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// The agent's own flags.
    #[command(flatten)]
    pub agent: agent::Cli,
    /// The container check's.
    #[command(flatten)]
    pub containers: ContainerArgs,
}

/// Runs the agent (and the container check) until SIGINT or SIGTERM.
pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    let containers = args.containers;
    agent::run_with(args.agent, move |agent| {
        if !containers.containers {
            return Ok(None);
        }
        container_check::start(&containers, agent.submitter())
            .context("cannot start the container check's thread")
            .map(Some)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: AgentArgs,
    }

    #[test]
    fn container_flags_and_their_defaults() {
        let w = Wrap::try_parse_from(["agent"]).unwrap();
        assert!(!w.args.containers.containers);
        assert_eq!(
            w.args.containers.docker_socket,
            std::path::Path::new("/var/run/docker.sock")
        );
        assert_eq!(
            w.args.containers.cgroup_root,
            std::path::Path::new("/sys/fs/cgroup")
        );
        let w = Wrap::try_parse_from([
            "agent",
            "--containers",
            "--docker-socket",
            "/tmp/d.sock",
            "--cgroup-root",
            "/host/sys/fs/cgroup",
            "--project",
            "shop",
            "--http",
            "127.0.0.1:0",
        ])
        .unwrap();
        assert!(w.args.containers.containers);
        assert_eq!(w.args.containers.project.as_deref(), Some("shop"));
        assert_eq!(
            w.args.containers.cgroup_root,
            std::path::Path::new("/host/sys/fs/cgroup")
        );
        assert!(w.args.agent.http.is_some());
    }
}
