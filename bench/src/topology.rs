//! Bringing one topology up and down as local processes.
//!
//! - `direct`: the app (the bench re-executed as `bench app`);
//! - `proxied`: the app and our proxy (`bench proxy`) in front of it;
//! - `nginx`: the app and Debian's nginx, configured from `deploy/nginx/nginx.conf`;
//! - `external`: the app and any proxy started from a command template.
//!
//! Everything listens on 127.0.0.1. The app and our proxy bind port 0 and print the
//! address they got; nginx and external proxies get a port the bench found free, and
//! are ready when that port accepts connections.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use std::sync::Arc;

use crate::certs::RunCert;
use crate::child::{Child, ChildError};
use crate::compose;
use crate::sample::Target;
use crate::scenario::{TopologyKind, TopologySpec};
use crate::service::{self, Listen, Services, Upstream};
use crate::template::{self, Launch, Placeholders};

/// The NGINX configuration template, compiled in so the bench runs from any directory.
pub const NGINX_CONF: &str = include_str!("../../deploy/nginx/nginx.conf");

/// How long a child may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// What every topology needs to know to start.
#[derive(Debug, Clone)]
pub struct Env {
    /// The bench's own executable, re-executed as `app` and `proxy`.
    pub exe: PathBuf,
    /// The embedded agent's DogStatsD address.
    pub agent: Option<SocketAddr>,
    /// App worker threads.
    pub app_threads: usize,
    /// Proxy worker threads (ours, nginx's workers, an external proxy's `{threads}`).
    pub proxy_threads: usize,
    /// Where nginx and external proxies put their files (a temporary directory).
    pub scratch: PathBuf,
    /// DD_ENV tag for the children.
    pub dd_env: String,
    /// The scenario's services (the TinyFish app unless a topology names another).
    pub services: Services,
    /// The run's TLS certificate, when a topology terminates TLS (`protocol = "h1+tls"`).
    pub cert: Option<RunCert>,
}

/// Why a topology could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A child failed.
    #[error(transparent)]
    Child(#[from] ChildError),
    /// A program the topology needs is not installed.
    #[error("{topology}: {}", if program.is_empty() { hint.clone() } else { format!("{program} ({hint})") })]
    Missing {
        /// Topology name.
        topology: String,
        /// What is missing (`haproxy is not installed`); empty when `hint` says it all.
        program: String,
        /// How to install it.
        hint: String,
    },
    /// A compose topology could not be brought up.
    #[error(transparent)]
    Compose(#[from] crate::compose::ComposeError),
    /// Files for the child could not be written.
    #[error("{topology}: {what}: {source}")]
    Io {
        /// Topology name.
        topology: String,
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// A topology that is up.
#[derive(Debug)]
pub struct Running {
    /// Topology name.
    pub name: String,
    /// Where the load goes.
    pub entry: SocketAddr,
    /// TLS at the front: the load generator's settings (trusting the run's certificate).
    pub tls: Option<loadgen::ClientTls>,
    /// Children, app first; stopped in reverse order on drop.
    children: Vec<(String, String, Child)>,
    /// Compose mode: the project (taken down on drop) and its sampled containers.
    compose: Option<(compose::Project, Vec<Target>)>,
}

impl Running {
    /// Sampling targets, one per role.
    pub fn targets(&self) -> Vec<Target> {
        if let Some((_, targets)) = &self.compose {
            return targets.clone();
        }
        self.children
            .iter()
            .map(|(role, program, c)| Target {
                role: role.clone(),
                program: program.clone(),
                pid: c.pid(),
                ..Target::default()
            })
            .collect()
    }

    /// Pids of our own app and proxy (not NGINX, HAProxy or containers): they flush their
    /// metrics on SIGUSR1 (see the telemetry crate), which the bench does at window edges.
    pub fn flushable(&self) -> Vec<u32> {
        self.children
            .iter()
            .filter(|(_, program, _)| program == "tinyfish-app" || program == "tinyfish-proxy")
            .map(|(_, _, c)| c.pid())
            .collect()
    }

    /// An error naming the first child that has exited, with its last output.
    pub fn check_alive(&mut self, when: &str) -> Result<(), ChildError> {
        for (_, _, c) in &mut self.children {
            c.check_alive(when)?;
        }
        Ok(())
    }

    /// Stops the children, front (proxy) first.
    pub fn down(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        while let Some((_, _, mut c)) = self.children.pop() {
            c.stop(Duration::from_secs(3));
        }
        if let Some((mut project, _)) = self.compose.take() {
            if let Err(e) = project.down() {
                eprintln!("bench: {e}");
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Where a program is, or `None`: `PATH`, then the sbin directories Debian uses.
// clippy.toml: PATH is where to look for a program, as the shell and `Command` read it.
#[allow(clippy::disallowed_methods)]
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The program a command template runs: its first word, past an `env` and its
/// `NAME=value` settings (`env GOMAXPROCS={threads} caddy run …` runs caddy).
pub fn command_program(command: &str) -> &str {
    let mut words = command.split_whitespace().peekable();
    if words.peek() == Some(&"env") {
        words.next();
        return words.find(|w| !w.contains('=')).unwrap_or("");
    }
    words.next().unwrap_or("")
}

/// nginx's version line, if installed.
pub fn nginx_version() -> Option<String> {
    let nginx = find_program("nginx")?;
    let out = Command::new(nginx).arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .next()
        .and_then(|l| l.split_once("nginx/"))
        .map(|(_, v)| v.trim().to_owned())
}

/// Whether a topology's programs are installed (its service's too); the install hint
/// when not.
pub fn availability(spec: &TopologySpec, services: &Services) -> Result<(), TopologyError> {
    if let Some((name, service)) = services.of(spec.service.as_ref()) {
        service::availability(name, service).map_err(|message| TopologyError::Missing {
            topology: spec.name.clone(),
            program: String::new(),
            hint: message,
        })?;
    }
    program_availability(spec)
}

/// Whether the topology's own proxy program is installed (a lookup, no service `check`:
/// what `up` repeats each time it starts the topology).
fn program_availability(spec: &TopologySpec) -> Result<(), TopologyError> {
    let (program, hint) = match spec.kind {
        TopologyKind::Direct | TopologyKind::Proxied | TopologyKind::Hyper => return Ok(()),
        TopologyKind::Nginx => (
            "nginx".to_owned(),
            "install it with `sudo apt-get install nginx-light` (or nginx), or `brew install nginx`; scripts/setup does it".to_owned(),
        ),
        TopologyKind::External => (
            command_program(spec.command.as_deref().unwrap_or("")).to_owned(),
            spec.hint
                .clone()
                .unwrap_or_else(|| "install it, or fix the topology's command".to_owned()),
        ),
    };
    match find_program(&program) {
        Some(_) => Ok(()),
        None => Err(TopologyError::Missing {
            topology: spec.name.clone(),
            program: format!("{program} is not installed"),
            hint,
        }),
    }
}

/// Starts a topology and waits until it is ready.
pub fn up(spec: &TopologySpec, env: &Env) -> Result<Running, TopologyError> {
    let cert = match (spec.protocol.tls(), &env.cert) {
        (false, _) => None,
        (true, Some(c)) => Some(c),
        (true, None) => {
            return Err(TopologyError::Missing {
                topology: spec.name.clone(),
                program: String::new(),
                hint: "protocol = \"h1+tls\" needs the run's certificate (a bug: the run makes one when a topology asks for TLS)".into(),
            })
        }
    };
    let mut running = Running {
        name: spec.name.clone(),
        entry: SocketAddr::from(([127, 0, 0, 1], 0)),
        tls: match cert {
            Some(c) => Some(
                c.client(spec.tls_resumption)
                    .map_err(|e| TopologyError::Io {
                        topology: spec.name.clone(),
                        what: format!("{e:#}"),
                        source: std::io::Error::other("TLS client settings"),
                    })?,
            ),
            None => None,
        },
        children: Vec::new(),
        compose: None,
    };
    if spec.kind == TopologyKind::Hyper {
        let mut c = Command::new(&env.exe);
        c.args(["hyper-baseline", "--listen", "127.0.0.1:0"]);
        let mut child = Child::spawn("hyper-baseline", c, Signal::SIGKILL)?;
        running.entry = child.wait_listening(READY_TIMEOUT)?;
        running
            .children
            .push(("app".into(), "bare-hyper".into(), child));
        return Ok(running);
    }
    let upstream = match env.services.of(spec.service.as_ref()) {
        None => {
            let mut cmd = self_command(env, "app", "tinyfish-app");
            if spec.upstream == Listen::Unix {
                let dir = env.scratch.join(format!("{}-app", spec.name));
                std::fs::create_dir_all(&dir).map_err(|source| TopologyError::Io {
                    topology: spec.name.clone(),
                    what: format!("cannot create {}", dir.display()),
                    source,
                })?;
                let path = dir.join("app.sock");
                cmd.args(["--listen", &format!("unix:{}", path.display())]);
                let mut app = Child::spawn("app", cmd, Signal::SIGKILL)?;
                app.wait_unix(&path, READY_TIMEOUT)?;
                // NGINX started as root runs its workers as `nobody`, who needs write
                // permission on the socket to connect (the directory is 0755).
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).map_err(
                    |source| TopologyError::Io {
                        topology: spec.name.clone(),
                        what: format!("cannot open {} to NGINX's workers", path.display()),
                        source,
                    },
                )?;
                running
                    .children
                    .push(("app".into(), "tinyfish-app".into(), app));
                Upstream::Unix(path)
            } else {
                cmd.args(["--listen", "127.0.0.1:0"]);
                let mut app = Child::spawn("app", cmd, Signal::SIGKILL)?;
                let addr = app.wait_listening(READY_TIMEOUT)?;
                running
                    .children
                    .push(("app".into(), "tinyfish-app".into(), app));
                Upstream::Tcp(addr)
            }
        }
        Some((name, service)) => {
            let (at, child) = service::start(name, service, &env.scratch, env.app_threads)?;
            if let Some(child) = child {
                running
                    .children
                    .push(("app".into(), service.program(), child));
            }
            at
        }
    };
    if let Some(addr) = upstream.tcp() {
        running.entry = addr;
    }
    let mut placeholders = Placeholders::default();
    placeholders.set("threads", env.proxy_threads.to_string());
    upstream.placeholders(&mut placeholders);
    tls_placeholders(cert, &mut placeholders);
    let launch = |template| proxy_launch(spec, env, template, &placeholders);
    let (role, program, child) = match spec.kind {
        TopologyKind::Direct | TopologyKind::Hyper => return Ok(running),
        TopologyKind::Proxied => {
            let mut cmd = self_command(env, "proxy", "tinyfish-proxy");
            cmd.args(["--listen", "127.0.0.1:0", "--upstream", &upstream.spelled()]);
            if let Some(cert) = cert {
                cmd.arg("--config").arg(proxy_tls_config(spec, env, cert)?);
            }
            cmd.args(&spec.proxy_args);
            let mut proxy = Child::spawn("proxy", cmd, Signal::SIGKILL)?;
            running.entry = proxy.wait_listening(READY_TIMEOUT)?;
            ("proxy", "tinyfish-proxy".to_owned(), proxy)
        }
        TopologyKind::Nginx => {
            program_availability(spec)?;
            let nginx = find_program("nginx").unwrap_or_else(|| "nginx".into());
            let template = match &spec.config_template {
                Some(p) => template::read(&spec.name, p)?,
                None => NGINX_CONF.to_owned(),
            };
            let (child, at) = template::start(&launch(&template), |dir, conf| {
                let mut c = Command::new(&nginx);
                c.envs(agent_env(env))
                    .arg("-p")
                    .arg(dir)
                    .arg("-c")
                    .arg(conf)
                    .args(["-e", "stderr"]);
                c
            })?;
            running.entry = at.tcp().unwrap_or(running.entry);
            ("proxy", "nginx".to_owned(), child)
        }
        TopologyKind::External => {
            program_availability(spec)?;
            let command = spec.command.clone().unwrap_or_default();
            let template = match &spec.config_template {
                Some(p) => template::read(&spec.name, p)?,
                None => String::new(),
            };
            let (child, at) = template::start(&launch(&template), |_, _| {
                let mut c = template::shell(&command);
                c.envs(agent_env(env));
                c
            })?;
            running.entry = at.tcp().unwrap_or(running.entry);
            let program = command_program(&command)
                .rsplit('/')
                .next()
                .unwrap_or("proxy");
            ("proxy", program.to_owned(), child)
        }
    };
    running.children.push((role.into(), program, child));
    Ok(running)
}

/// Checks the engine, the compose command and the image before anything starts.
pub fn compose_env() -> anyhow::Result<ComposeEnv> {
    use anyhow::Context;
    compose::engine_available().context("--compose needs a running Docker engine")?;
    let command = compose::ComposeCommand::detect()
        .context("--compose needs `docker compose` (v2) or docker-compose")?;
    compose::ensure_image(compose::IMAGE).with_context(|| {
        format!(
            "--compose runs the image {}: build it first with deploy/build-offline (or docker compose -f compose/direct.yml build)",
            compose::IMAGE
        )
    })?;
    let sampler = crate::containers::ContainerSampler::connect()
        .context("cannot read container stats from the Docker engine")?;
    Ok(ComposeEnv {
        command,
        sampler: Arc::new(sampler),
        project: format!("tinyfish-bench-{}", std::process::id()),
    })
}

/// What compose mode needs: the compose command, the engine, a project name.
#[derive(Debug, Clone)]
pub struct ComposeEnv {
    /// `docker compose` or `docker-compose`.
    pub command: compose::ComposeCommand,
    /// The Docker Engine API client for container stats.
    pub sampler: Arc<crate::containers::ContainerSampler>,
    /// Compose project name (unique per run).
    pub project: String,
}

/// Brings a topology up as a compose project (`compose/<topology>.yml` with the local
/// agent), waits until it is healthy, and samples its app and proxy containers.
pub fn up_compose(spec: &TopologySpec, env: &ComposeEnv) -> Result<Running, TopologyError> {
    if spec.protocol.tls() {
        return Err(TopologyError::Missing {
            topology: spec.name.clone(),
            program: String::new(),
            hint: "compose mode runs plain HTTP topologies only (protocol = \"h1+tls\" runs as local processes)".into(),
        });
    }
    let topology = match spec.kind {
        TopologyKind::Direct => compose::Topology::Direct,
        TopologyKind::Proxied => compose::Topology::Proxied,
        _ => {
            return Err(TopologyError::Missing {
                topology: spec.name.clone(),
                program: "a compose file".into(),
                hint: "compose mode runs the direct and proxied topologies only".into(),
            })
        }
    };
    let project = compose::Project::up(
        &env.command,
        topology,
        &compose::UpOptions::new(env.project.clone()),
    )?;
    let mut targets = Vec::new();
    for c in project
        .containers()
        .iter()
        .filter(|c| c.role != compose::Role::Agent)
    {
        targets.push(Target {
            role: c.role.as_str().to_owned(),
            program: format!("container {}", c.service),
            container: Some(env.sampler.cgroup(&c.id)?),
            ..Target::default()
        });
    }
    Ok(Running {
        name: spec.name.clone(),
        entry: project.entry(),
        tls: None,
        children: Vec::new(),
        compose: Some((project, targets)),
    })
}

/// `{tls_cert}`, `{tls_key}` and `{tls_pem}` (certificate and key in one file) for a
/// TLS topology's templates, and for NGINX's `{ssl}` (after `listen`: ` ssl http2`) and
/// `{ssl_directives}`: TLS 1.3 only, tickets on, no session cache (as ours and HAProxy's
/// defaults: resumption by ticket), empty for plain HTTP.
fn tls_placeholders(cert: Option<&RunCert>, p: &mut Placeholders) {
    let Some(c) = cert else {
        p.set("ssl", "");
        p.set("ssl_directives", "");
        return;
    };
    p.set("tls_cert", c.cert.display().to_string());
    p.set("tls_key", c.key.display().to_string());
    p.set("tls_pem", c.pem.display().to_string());
    // HTTP/2 offered by ALPN to whoever asks (`h2+tls` rows); `h1+tls` clients offer only
    // http/1.1, so the same configuration serves both.
    p.set("ssl", " ssl http2");
    p.set(
        "ssl_directives",
        format!(
            "ssl_certificate {}; ssl_certificate_key {}; ssl_protocols TLSv1.3; \
             ssl_session_tickets on; ssl_session_cache off;",
            c.cert.display(),
            c.key.display()
        ),
    );
}

/// Our proxy's configuration file for a TLS topology: `[tls]` with the run's certificate
/// (ALPN, versions and resumption at their defaults; the client offers only TLS 1.3 and
/// `http/1.1`).
fn proxy_tls_config(
    spec: &TopologySpec,
    env: &Env,
    cert: &RunCert,
) -> Result<PathBuf, TopologyError> {
    let path = env.scratch.join(format!("{}-proxy.toml", spec.name));
    let toml = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n",
        cert.cert.display().to_string(),
        cert.key.display().to_string()
    );
    std::fs::write(&path, toml).map_err(|source| TopologyError::Io {
        topology: spec.name.clone(),
        what: format!("cannot write {}", path.display()),
        source,
    })?;
    Ok(path)
}

/// A proxy started from a template, listening on a free TCP port.
fn proxy_launch<'a>(
    spec: &'a TopologySpec,
    env: &'a Env,
    template: &'a str,
    placeholders: &Placeholders,
) -> Launch<'a> {
    Launch {
        name: &spec.name,
        scratch: &env.scratch,
        template,
        placeholders: placeholders.clone(),
        listen: Listen::Tcp,
        ready_timeout: spec.ready_timeout,
        parent_death: Signal::SIGTERM,
    }
}

/// The bench binary re-executed as `role` (`app` or `proxy`); the caller adds `--listen`.
fn self_command(env: &Env, role: &str, service: &str) -> Command {
    let threads = if role == "app" {
        env.app_threads
    } else {
        env.proxy_threads
    };
    let mut c = Command::new(&env.exe);
    c.arg(role)
        .args(["--threads", &threads.to_string()])
        .env("DD_SERVICE", service)
        .env("DD_ENV", &env.dd_env)
        .env("DD_VERSION", env!("CARGO_PKG_VERSION"));
    if env.agent.is_none() {
        c.env_remove("DD_AGENT_HOST").env_remove("DD_DOGSTATSD_URL");
    }
    c.envs(agent_env(env));
    c
}

/// The embedded agent's address in every variable a DogStatsD client reads (the URL wins
/// over the host and port), set on each child the bench starts: a `DD_AGENT_HOST` or
/// `DD_DOGSTATSD_URL` in the bench's own environment names the user's agent, which gets
/// the bench's reports ([`crate::datadog_report`]), never the children's metrics. Set, not
/// removed: templated children are rebuilt from the variables a command sets.
fn agent_env(env: &Env) -> Vec<(&'static str, String)> {
    env.agent.map_or_else(Vec::new, |a| {
        vec![
            ("DD_AGENT_HOST", a.ip().to_string()),
            ("DD_DOGSTATSD_PORT", a.port().to_string()),
            ("DD_DOGSTATSD_URL", format!("udp://{a}")),
        ]
    })
}
