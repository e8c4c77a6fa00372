//! Running a topology as a Docker Compose project.
//!
//! About 620 lines of code and 65 of tests, one concern: the compose command, a project's
//! life (up, healthy, down, leftovers) and the errors each step can name.
//!
//! - [`ComposeCommand::detect`]: `docker compose` (v2) when the plugin answers, else
//!   `docker-compose` (1.29); the files in `compose/` are written for both.
//! - [`Project::up`]: `compose/<topology>.yml` with `compose/local-agent.yml` (the bench's
//!   own DogStatsD agent instead of Datadog's, no account needed), under a project name
//!   of your choice (`-p`), waiting until every container is healthy. It returns the
//!   entry address ([`Topology::entry`]: 127.0.0.1:5000 direct, 127.0.0.1:8080 proxied),
//!   the containers by [`Role`] with their ids, and [`Project::agent_snapshot`] reads the
//!   agent's JSON snapshot on [`AGENT_HTTP`]. [`Project::down`] (also run on drop, so on
//!   an error, a panic or a Ctrl-C that unwinds the run) removes the containers, the
//!   network and any volume: `down -v --remove-orphans`.
//! - its containers are sampled by [`crate::containers`] (cgroup counters).
//!
//! The images come from `deploy/build-offline` (or `deploy/Dockerfile`); `up` never
//! builds or pulls (`--no-build`), and says so when [`IMAGE`] is missing.
//!
//! Compose processes run in their own process group, so a Ctrl-C at the terminal
//! reaches the bench only, and the bench's drop does the `down`.
//!
//! ```no_run
//! use bench::compose::{ComposeCommand, Project, Role, Topology, UpOptions};
//! use bench::containers::ContainerSampler;
//! let compose = ComposeCommand::detect()?;
//! let opts = UpOptions::new(format!("tinyfish-bench-{}", std::process::id()));
//! let project = Project::up(&compose, Topology::Proxied, &opts)?;
//! let entry = project.entry(); // load http://127.0.0.1:8080/
//! let sampler = ContainerSampler::connect()?;
//! let proxy = project.container(Role::Proxy).unwrap();
//! let reading = sampler.read(&proxy.id)?;
//! let snapshot = project.agent_snapshot()?;
//! # let _ = (entry, reading, snapshot);
//! drop(project); // down -v --remove-orphans
//! # Ok::<(), bench::compose::ComposeError>(())
//! ```

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The image every TinyFish service runs (app, proxy, and the local agent).
pub const IMAGE: &str = "tinyfish:local";

/// Where `compose/local-agent.yml` publishes the agent's JSON snapshot.
pub const AGENT_HTTP: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8181));

/// The override that swaps the Datadog agent for `bench agent`.
pub const LOCAL_AGENT_FILE: &str = "compose/local-agent.yml";

/// Why a compose operation failed; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// Neither `docker compose` nor `docker-compose` runs.
    #[error("neither 'docker compose' (v2) nor 'docker-compose' (1.29) runs: install one of them")]
    NoCompose,
    /// The engine cannot be reached.
    #[error("cannot reach the Docker engine ({0}): start it or check DOCKER_HOST")]
    NoEngine(String),
    /// The image is not built.
    #[error("image {0} not found: build it with deploy/build-offline (nothing is pulled)")]
    ImageMissing(String),
    /// A topology name that is not `direct` or `proxied`.
    #[error("unknown compose topology {0:?}: expected \"direct\" or \"proxied\"")]
    Topology(String),
    /// A project name compose would reject.
    #[error("project name {0:?}: use lowercase letters, digits, '-' and '_', starting with a letter or digit")]
    ProjectName(String),
    /// A compose or docker command failed.
    #[error("'{command}' failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of what it wrote on stderr.
        stderr: String,
    },
    /// A process could not be started.
    #[error("cannot run {0}: {1}")]
    Spawn(String, #[source] std::io::Error),
    /// A container stopped or turned unhealthy while coming up.
    #[error("service {service} is {state}; its last log lines:\n{logs}")]
    Unhealthy {
        /// Compose service.
        service: String,
        /// `exited`, `unhealthy`, …
        state: String,
        /// `docker logs --tail 20`.
        logs: String,
    },
    /// Not every container was healthy in time.
    #[error("not healthy after {waited:?}: {states}; raise the timeout or see 'docker logs'")]
    Timeout {
        /// How long we waited.
        waited: Duration,
        /// `service=state`, …
        states: String,
    },
    /// A service has no container after `up`.
    #[error("service {0} has no container after 'up'")]
    NoContainer(String),
    /// The agent snapshot could not be read or parsed.
    #[error("cannot read the agent snapshot at http://{addr}/: {reason}")]
    Snapshot {
        /// Where.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The Docker Engine API failed.
    #[error("Docker Engine API: {0}")]
    Docker(#[from] bollard::errors::Error),
    /// Stats without CPU or memory figures.
    #[error("container {0}: the engine's stats have no {1}")]
    NoStats(String, &'static str),
    /// I/O, e.g. starting the sampler's runtime.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Which topology a project runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topology {
    /// `compose/direct.yml`: the app on host port 5000.
    Direct,
    /// `compose/proxied.yml`: the proxy on host port 8080 in front of the app.
    Proxied,
}

impl Topology {
    /// Both, in report order.
    pub const ALL: [Topology; 2] = [Topology::Direct, Topology::Proxied];

    /// `direct` or `proxied`.
    pub fn name(self) -> &'static str {
        match self {
            Topology::Direct => "direct",
            Topology::Proxied => "proxied",
        }
    }

    /// The compose file, relative to the repository root.
    pub fn file(self) -> &'static str {
        match self {
            Topology::Direct => "compose/direct.yml",
            Topology::Proxied => "compose/proxied.yml",
        }
    }

    /// Where clients connect: the one published port.
    pub fn entry(self) -> SocketAddr {
        let port = match self {
            Topology::Direct => 5000,
            Topology::Proxied => 8080,
        };
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
    }

    /// The roles that run (with the local agent).
    pub fn roles(self) -> &'static [Role] {
        match self {
            Topology::Direct => &[Role::App, Role::Agent],
            Topology::Proxied => &[Role::App, Role::Proxy, Role::Agent],
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Topology {
    type Err = ComposeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "direct" => Ok(Topology::Direct),
            "proxied" => Ok(Topology::Proxied),
            other => Err(ComposeError::Topology(other.to_owned())),
        }
    }
}

/// What a container does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The TinyFish app (service `app`).
    App,
    /// The TinyFish proxy (service `proxy`).
    Proxy,
    /// The DogStatsD agent (service `local-agent`, reachable as `agent`).
    Agent,
}

impl Role {
    /// `app`, `proxy`, `agent`: the role names of the bench's samples.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::App => "app",
            Role::Proxy => "proxy",
            Role::Agent => "agent",
        }
    }

    /// The compose service that plays this role (with the local agent override).
    pub fn service(self) -> &'static str {
        match self {
            Role::App => "app",
            Role::Proxy => "proxy",
            Role::Agent => "local-agent",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One running container of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// What it does.
    pub role: Role,
    /// Its compose service.
    pub service: String,
    /// The full container id (for [`crate::containers::ContainerSampler::read`] and `docker` commands).
    pub id: String,
}

/// How to run compose: `docker compose` or `docker-compose`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeCommand {
    program: String,
    prefix: Vec<String>,
    version: String,
}

impl ComposeCommand {
    /// `docker compose` when the v2 plugin answers, else `docker-compose`.
    pub fn detect() -> Result<Self, ComposeError> {
        let candidates: [(&str, &[&str]); 2] = [("docker", &["compose"]), ("docker-compose", &[])];
        for (program, prefix) in candidates {
            let out = Command::new(program)
                .args(prefix)
                .arg("version")
                .stdin(Stdio::null())
                .output();
            if let Ok(out) = out {
                if out.status.success() {
                    let text = String::from_utf8_lossy(&out.stdout);
                    return Ok(ComposeCommand {
                        program: program.to_owned(),
                        prefix: prefix.iter().map(|s| (*s).to_owned()).collect(),
                        version: text.lines().next().unwrap_or("").trim().to_owned(),
                    });
                }
            }
        }
        Err(ComposeError::NoCompose)
    }

    /// E.g. `docker-compose (docker-compose version 1.29.2, build unknown)`.
    pub fn describe(&self) -> String {
        let mut words = vec![self.program.clone()];
        words.extend(self.prefix.iter().cloned());
        format!("{} ({})", words.join(" "), self.version)
    }

    /// Whether this is Compose v2 (`docker compose`).
    pub fn is_v2(&self) -> bool {
        !self.prefix.is_empty()
    }

    /// A command for `compose -p project -f file… ARGS`, run from `root`, in its own
    /// process group, stdin closed.
    pub fn command(&self, root: &Path, project: &str, files: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.prefix).arg("-p").arg(project);
        for f in files {
            c.arg("-f").arg(root.join(f));
        }
        c.current_dir(root).stdin(Stdio::null()).process_group(0);
        c
    }

    /// `compose -f file… config`: the merged configuration as compose prints it, or
    /// the error that makes it invalid. `env` is added to the process environment.
    pub fn config(
        &self,
        root: &Path,
        project: &str,
        files: &[&str],
        env: &[(&str, &str)],
    ) -> Result<String, ComposeError> {
        let mut c = self.command(root, project, files);
        c.arg("config");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = run(&mut c)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Options of [`Project::up`].
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The repository root (holding `compose/` and `deploy/`).
    pub root: PathBuf,
    /// The compose project name (`-p`): unique per run, e.g. `tinyfish-bench-<pid>`.
    pub project: String,
    /// How long every container may take to become healthy.
    pub health_timeout: Duration,
}

impl UpOptions {
    /// The repository this bench was built from, a 90 s health timeout.
    pub fn new(project: impl Into<String>) -> Self {
        UpOptions {
            root: default_root(),
            project: project.into(),
            health_timeout: Duration::from_secs(90),
        }
    }
}

/// The repository root this crate was built from (`bench/..`).
pub fn default_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A compose project that is up; `down` on drop.
#[derive(Debug)]
pub struct Project {
    compose: ComposeCommand,
    root: PathBuf,
    name: String,
    topology: Topology,
    containers: Vec<Container>,
    is_down: bool,
}

impl Project {
    /// Brings `topology` up with the local agent, waits until every container is
    /// healthy, and finds the containers. On any failure the project is taken down
    /// before the error is returned.
    pub fn up(
        compose: &ComposeCommand,
        topology: Topology,
        opts: &UpOptions,
    ) -> Result<Project, ComposeError> {
        check_project_name(&opts.project)?;
        ensure_image(IMAGE)?;
        let mut project = Project {
            compose: compose.clone(),
            root: opts.root.clone(),
            name: opts.project.clone(),
            topology,
            containers: Vec::new(),
            is_down: false,
        };
        // From here on, a failure drops `project`, which runs `down`.
        let mut up = project.command();
        up.args(["up", "-d", "--no-build"]);
        run(&mut up)?;
        for role in topology.roles() {
            let mut ps = project.command();
            ps.args(["ps", "-q", role.service()]);
            let out = run(&mut ps)?;
            let id = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| ComposeError::NoContainer(role.service().to_owned()))?;
            project.containers.push(Container {
                role: *role,
                service: role.service().to_owned(),
                id,
            });
        }
        wait_healthy(&project.containers, opts.health_timeout)?;
        Ok(project)
    }

    /// The compose project name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topology running.
    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// Where clients connect (127.0.0.1:5000 or 127.0.0.1:8080).
    pub fn entry(&self) -> SocketAddr {
        self.topology.entry()
    }

    /// The containers, in [`Topology::roles`] order.
    pub fn containers(&self) -> &[Container] {
        &self.containers
    }

    /// The container playing `role`, if the topology has one.
    pub fn container(&self, role: Role) -> Option<&Container> {
        self.containers.iter().find(|c| c.role == role)
    }

    /// What the local agent aggregated since it started (`GET http://127.0.0.1:8181/`).
    pub fn agent_snapshot(&self) -> Result<agent::Snapshot, ComposeError> {
        agent_snapshot(AGENT_HTTP, Duration::from_secs(5))
    }

    /// `down -v --remove-orphans`: removes the containers, the network and volumes.
    /// Idempotent; run by drop when not called.
    pub fn down(&mut self) -> Result<(), ComposeError> {
        if self.is_down {
            return Ok(());
        }
        let mut down = self.command();
        down.args(["down", "-v", "--remove-orphans", "--timeout", "10"]);
        run(&mut down)?;
        self.is_down = true;
        Ok(())
    }

    fn command(&self) -> Command {
        self.compose.command(
            &self.root,
            &self.name,
            &[self.topology.file(), LOCAL_AGENT_FILE],
        )
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if let Err(e) = self.down() {
            eprintln!(
                "bench: compose project {} may be left running: {e}; remove it with 'docker-compose -p {} -f {} -f {} down -v --remove-orphans'",
                self.name,
                self.name,
                self.topology.file(),
                LOCAL_AGENT_FILE
            );
        }
    }
}

fn check_project_name(name: &str) -> Result<(), ComposeError> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ComposeError::ProjectName(name.to_owned()))
    }
}

/// Fails with [`ComposeError::NoEngine`] or [`ComposeError::ImageMissing`] unless the
/// engine answers and has `image`.
pub fn ensure_image(image: &str) -> Result<(), ComposeError> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ComposeError::Spawn("docker".into(), e))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("No such image") || err.contains("No such object") {
        Err(ComposeError::ImageMissing(image.to_owned()))
    } else {
        Err(ComposeError::NoEngine(last_lines(&err, 2)))
    }
}

/// Whether a Docker engine answers (`docker info`); the reason when it does not.
pub fn engine_available() -> Result<(), ComposeError> {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ComposeError::NoEngine(format!("cannot run docker: {e}")))?;
    if out.status.success() && !out.stdout.trim_ascii().is_empty() {
        Ok(())
    } else {
        Err(ComposeError::NoEngine(last_lines(
            &String::from_utf8_lossy(&out.stderr),
            2,
        )))
    }
}

fn run(c: &mut Command) -> Result<Output, ComposeError> {
    let line = command_line(c);
    let out = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| ComposeError::Spawn(line.clone(), e))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(ComposeError::Command {
            command: line,
            status: out.status.to_string(),
            stderr: last_lines(&String::from_utf8_lossy(&out.stderr), 8),
        })
    }
}

fn command_line(c: &Command) -> String {
    let mut words = vec![c.get_program().to_string_lossy().into_owned()];
    words.extend(c.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `docker inspect` until every container is running and healthy (or running,
/// for one without a healthcheck).
fn wait_healthy(containers: &[Container], timeout: Duration) -> Result<(), ComposeError> {
    let start = Instant::now();
    loop {
        let mut states = Vec::with_capacity(containers.len());
        let mut all_healthy = true;
        for c in containers {
            let state = container_state(&c.id)?;
            match state.as_str() {
                "running healthy" | "running " => {}
                "running starting" => all_healthy = false,
                _ => {
                    return Err(ComposeError::Unhealthy {
                        service: c.service.clone(),
                        state,
                        logs: container_logs(&c.id),
                    })
                }
            }
            states.push(format!("{}={}", c.service, state.replace(' ', "/")));
        }
        if all_healthy {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(ComposeError::Timeout {
                waited: start.elapsed(),
                states: states.join(", "),
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `"<status> <health>"`, e.g. `running healthy`, `running starting`, `exited `.
fn container_state(id: &str) -> Result<String, ComposeError> {
    let mut c = Command::new("docker");
    c.args([
        "inspect",
        "--format",
        "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
        id,
    ])
    .stdin(Stdio::null());
    let out = run(&mut c)?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim_end_matches('\n')
        .to_owned())
}

fn container_logs(id: &str) -> String {
    match Command::new("docker")
        .args(["logs", "--tail", "20", id])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            last_lines(&text, 20)
        }
        Err(e) => format!("(cannot read the logs: {e})"),
    }
}

/// `GET http://addr/`: the JSON snapshot of a `bench agent`.
pub fn agent_snapshot(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<agent::Snapshot, ComposeError> {
    let fail = |reason: String| ComposeError::Snapshot { addr, reason };
    let (status, body) = crate::healthcheck::get(addr, &addr.to_string(), "/", timeout)
        .map_err(|e| fail(e.to_string()))?;
    if status != 200 {
        return Err(fail(format!("answered {status}")));
    }
    serde_json::from_slice(&body).map_err(|e| fail(format!("not a snapshot: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn topologies_parse_and_name_their_entry() {
        assert_eq!("direct".parse::<Topology>().unwrap(), Topology::Direct);
        assert_eq!("proxied".parse::<Topology>().unwrap(), Topology::Proxied);
        let err = "nginx".parse::<Topology>().unwrap_err().to_string();
        assert!(
            err.contains("\"nginx\"") && err.contains("proxied"),
            "{err}"
        );
        assert_eq!(Topology::Direct.entry().to_string(), "127.0.0.1:5000");
        assert_eq!(Topology::Proxied.entry().to_string(), "127.0.0.1:8080");
        assert!(Topology::Proxied.roles().contains(&Role::Proxy));
        assert!(!Topology::Direct.roles().contains(&Role::Proxy));
        assert_eq!(Role::Agent.service(), "local-agent");
        for t in Topology::ALL {
            assert!(default_root().join(t.file()).is_file(), "{}", t.file());
        }
        assert!(default_root().join(LOCAL_AGENT_FILE).is_file());
    }

    #[test]
    fn project_names_are_checked() {
        assert!(check_project_name("tinyfish-test-123").is_ok());
        assert!(check_project_name("a_b").is_ok());
        for bad in ["", "-x", "Tiny", "a b", "a.b"] {
            assert!(check_project_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn snapshot_is_read_over_http() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for body in [
                r#"{"metrics":[],"events":[],"service_checks":[],"malformed":0,"malformed_by_kind":{},"packets":7,"bytes":1,"lines":1,"kernel_drops":null,"over_limit":0,"window_secs":1.0}"#,
                "not json",
            ] {
                let (mut s, _) = listener.accept().unwrap();
                // Read the whole request head: closing with unread bytes would reset.
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "client closed early");
                    head.extend_from_slice(&buf[..n]);
                }
                write!(s, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).unwrap();
            }
        });
        let snap = agent_snapshot(addr, Duration::from_secs(10)).unwrap();
        assert_eq!(snap.packets, 7);
        let err = agent_snapshot(addr, Duration::from_secs(10))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a snapshot"), "{err}");
        server.join().unwrap();
    }
}
