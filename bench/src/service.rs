//! The service a topology serves: the TinyFish app (the default), or any service a
//! scenario names in `[services.NAME]`: a command the bench starts, waits for, samples and
//! stops (its whole process group, like the app), or an address that is already running
//! (then its cost is not measured, and the report says so).
//!
//! A command service listens where the bench tells it: `{listen}` (a free TCP port on
//! 127.0.0.1, also as `{listen_host}` and `{listen_port}`) or, with `listen = "unix"`,
//! `{socket}` (a path in the run's scratch directory; `{listen}` is that path too, so one
//! template can serve both, as uWSGI's `http-socket = {listen}` does). Other placeholders: `{threads}`
//! (`[app] threads`), `{prefix}` (the service's own scratch directory), `{dir}` (the
//! scenario's `dir`, made absolute) and `{config}` (the rendered `config_template`).
//! The proxies in front of it get its address as `{upstream}`: `127.0.0.1:PORT`, or
//! `unix:/path` for a Unix socket (`{socket}` is the bare path), which is how NGINX and our
//! proxy spell a Unix-socket upstream.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::child::Child;
use crate::scenario::{Scenario, TopologyKind};
use crate::template::{self, Launch, Placeholders};
use crate::topology::TopologyError;

/// A service of the scenario (`[services.NAME]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// A command template the bench starts (through `/bin/sh -c exec …`).
    #[serde(default)]
    pub command: Option<String>,
    /// A config file template rendered for `{config}` (same placeholders).
    #[serde(default)]
    pub config_template: Option<PathBuf>,
    /// A directory the command needs (its code), given to it as `{dir}`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// An address that is already serving (`host:port`): not started, not sampled.
    #[serde(default)]
    pub address: Option<String>,
    /// Where a command listens: `tcp` (`{listen}`, the default) or `unix` (`{socket}`).
    #[serde(default)]
    pub listen: Listen,
    /// What it speaks: `http` (the default) or `uwsgi` (only NGINX's `uwsgi_pass` in
    /// front of it can use it).
    #[serde(default)]
    pub protocol: Protocol,
    /// Name in the report's process tables (default: the command's program).
    #[serde(default)]
    pub program: Option<String>,
    /// How long the command may take to accept connections.
    #[serde(default = "default_ready_timeout", with = "humantime_serde")]
    pub ready_timeout: Duration,
    /// A shell command that must succeed for the service to run here (for example
    /// `python3 -c 'import flask'`); checked before anything starts, like the program.
    #[serde(default)]
    pub check: Option<String>,
    /// How to install what it needs, said when the program or `check` is missing.
    #[serde(default)]
    pub hint: Option<String>,
}

/// The scenario's services: the default one (`service = "NAME"`) and the named ones.
#[derive(Debug, Clone, Default)]
pub struct Services {
    /// The service of topologies that name none; `None` is the TinyFish app.
    pub default: Option<String>,
    /// `[services.NAME]`.
    pub named: BTreeMap<String, ServiceSpec>,
}

impl Services {
    /// The service a topology serves, by name; `None` is the TinyFish app.
    pub fn of<'a>(
        &'a self,
        topology_service: Option<&'a String>,
    ) -> Option<(&'a str, &'a ServiceSpec)> {
        let name = topology_service.or(self.default.as_ref())?;
        if name == APP {
            return None;
        }
        self.named.get_key_value(name).map(|(k, v)| (k.as_str(), v))
    }
}

/// The built-in service name of the TinyFish app.
pub const APP: &str = "app";

/// The scenario's `[services]` keys, and which topology may use which service: the
/// `(key, message)` of the first problem.
pub fn validate(scenario: &Scenario) -> Result<(), (String, String)> {
    let bad = |key: String, message: String| Err((key, message));
    for (name, spec) in &scenario.services {
        if name == APP
            || name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad(
                format!("services.{name}"),
                format!(
                    "expected letters, digits, - or _ other than {:?} (the TinyFish app)",
                    APP
                ),
            );
        }
        if let Err((key, message)) = spec.check() {
            return bad(format!("services.{name}.{key}"), message);
        }
    }
    let known = |n: &String| n == APP || scenario.services.contains_key(n);
    if let Some(n) = &scenario.service {
        if !known(n) {
            return bad(
                "service".into(),
                format!("no [services.{n}] in this scenario (or use \"app\")"),
            );
        }
    }
    let services = scenario.services();
    for (i, t) in scenario.topologies.iter().enumerate() {
        let key = |k: &str| format!("topology[{i}].{k}");
        if let Some(n) = &t.service {
            if !known(n) {
                return bad(
                    key("service"),
                    format!("no [services.{n}] in this scenario (or use \"app\")"),
                );
            }
        }
        if t.hint.is_some() && t.kind != TopologyKind::External {
            return bad(key("hint"), "only external topologies take a hint".into());
        }
        if t.config_template.is_some()
            && !matches!(t.kind, TopologyKind::External | TopologyKind::Nginx)
        {
            return bad(
                key("config_template"),
                "only nginx and external topologies take a config_template".into(),
            );
        }
        let service = services.of(t.service.as_ref());
        if t.upstream == Listen::Unix {
            let why = match (t.kind, service) {
                (TopologyKind::Direct | TopologyKind::Hyper, _) => {
                    Some("a topology without a proxy is loaded over TCP".to_owned())
                }
                (_, Some((name, _))) => Some(format!(
                    "set listen = \"unix\" in [services.{name}] instead"
                )),
                _ => None,
            };
            if let Some(message) = why {
                return bad(key("upstream"), message);
            }
        }
        let Some((name, s)) = service else {
            continue;
        };
        let why = match t.kind {
            TopologyKind::Hyper => Some("a hyper topology is its own service".to_owned()),
            TopologyKind::Direct if s.listen == Listen::Unix => Some(format!(
                "service {name} listens on a Unix socket; the load generator needs TCP"
            )),
            TopologyKind::Nginx | TopologyKind::External => None,
            _ if s.protocol == Protocol::Uwsgi => Some(format!(
                "service {name} speaks uwsgi; only NGINX's uwsgi_pass can talk to it \
                     (kind = \"nginx\", config_template = \"deploy/nginx/uwsgi.conf\")"
            )),
            _ => None,
        };
        if let Some(message) = why {
            return bad(key("service"), message);
        }
    }
    Ok(())
}

/// Whether a service can run here: its program is installed and its `check` passes.
pub fn availability(name: &str, spec: &ServiceSpec) -> Result<(), String> {
    let hint = spec
        .hint
        .clone()
        .unwrap_or_else(|| format!("install it, or fix [services.{name}]"));
    if let Some(d) = &spec.dir {
        if !d.is_dir() {
            return Err(format!(
                "service {name}: dir {} is not a directory (paths are relative to where the \
                 bench is started: the repository root)",
                d.display()
            ));
        }
    }
    if let (Some(c), Some(p)) = (&spec.command, &spec.config_template) {
        let text = std::fs::read_to_string(p).map_err(|e| {
            format!(
                "service {name}: cannot read config_template {} ({e}; paths are relative to \
                 where the bench is started: the repository root)",
                p.display()
            )
        })?;
        if !spec.says_where_to_listen(c) && !spec.says_where_to_listen(&text) {
            return Err(format!("service {name}: {}", spec.where_to_listen()));
        }
    }
    if let Some(c) = &spec.command {
        let program = crate::topology::command_program(c);
        if crate::topology::find_program(program).is_none() {
            return Err(format!(
                "service {name}: {program} is not installed ({hint})"
            ));
        }
    }
    if let Some(check) = &spec.check {
        let ok = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(check)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("service {name}: `{check}` failed ({hint})"));
        }
    }
    Ok(())
}

/// Starts a command service, or names the running one: where it is reached, and the child
/// to sample and stop (none for an address).
pub fn start(
    name: &str,
    spec: &ServiceSpec,
    scratch: &Path,
    threads: usize,
) -> Result<(Upstream, Option<Child>), TopologyError> {
    if let Some(a) = &spec.address {
        let addr: SocketAddr = a.parse().map_err(|_| TopologyError::Io {
            topology: name.to_owned(),
            what: format!("address {a:?}"),
            source: std::io::Error::other("not an IP address and port"),
        })?;
        return Ok((Upstream::Tcp(addr), None));
    }
    let command = spec.command.clone().unwrap_or_default();
    let template = match &spec.config_template {
        Some(p) => template::read(name, p)?,
        None => String::new(),
    };
    let mut placeholders = Placeholders::default();
    placeholders.set("threads", threads.to_string());
    if let Some(d) = &spec.dir {
        placeholders.set("dir", absolute(d).display().to_string());
    }
    let launch = Launch {
        name,
        scratch,
        template: &template,
        placeholders,
        listen: spec.listen,
        ready_timeout: spec.ready_timeout,
        parent_death: Signal::SIGTERM,
    };
    let (child, at) = template::start(&launch, |_, _| template::shell(&command))?;
    Ok((at, Some(child)))
}

fn default_ready_timeout() -> Duration {
    Duration::from_secs(15)
}

/// Where a command service listens.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Listen {
    /// A TCP port on 127.0.0.1.
    #[default]
    Tcp,
    /// A Unix socket.
    Unix,
}

/// What a service speaks.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1.
    #[default]
    Http,
    /// The uwsgi protocol (uWSGI's `socket`).
    Uwsgi,
}

impl ServiceSpec {
    /// What types cannot check: a `(key, message)` for the first problem.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match (&self.command, &self.address) {
            (Some(_), Some(_)) | (None, None) => {
                return Err((
                    "command",
                    "give either a command the bench starts or the address of a running service"
                        .into(),
                ))
            }
            (None, Some(a)) => {
                if a.parse::<SocketAddr>().is_err() {
                    return Err((
                        "address",
                        format!(
                            "expected an IP address and port such as 127.0.0.1:5000, got {a:?}"
                        ),
                    ));
                }
                if self.config_template.is_some() || self.dir.is_some() {
                    return Err((
                        "address",
                        "a running service takes no config_template or dir".into(),
                    ));
                }
                if self.listen == Listen::Unix {
                    return Err((
                        "listen",
                        "a running service is reached at its TCP address".into(),
                    ));
                }
            }
            (Some(c), None) => {
                if c.contains("{config}") != self.config_template.is_some() {
                    return Err((
                        "command",
                        "use {config} in the command exactly when config_template is set".into(),
                    ));
                }
                // A config template is read (and checked the same way) before the run
                // starts, from where the bench is started: see `availability`.
                if self.config_template.is_none() && !self.says_where_to_listen(c) {
                    return Err(("command", self.where_to_listen()));
                }
            }
        }
        Ok(())
    }

    /// Whether `text` (the command or its config template) holds the placeholder for where
    /// to listen.
    fn says_where_to_listen(&self, text: &str) -> bool {
        match self.listen {
            Listen::Tcp => text.contains("{listen}") || text.contains("{listen_port}"),
            Listen::Unix => text.contains("{socket}") || text.contains("{listen}"),
        }
    }

    fn where_to_listen(&self) -> String {
        let (placeholder, listen) = match self.listen {
            Listen::Tcp => ("{listen}", "tcp"),
            Listen::Unix => ("{socket}", "unix"),
        };
        format!(
            "the command (or its config_template) must say where to listen: {placeholder} \
             (listen = \"{listen}\")"
        )
    }

    /// The program named in the report.
    pub fn program(&self) -> String {
        if let Some(p) = &self.program {
            return p.clone();
        }
        match &self.command {
            Some(c) => crate::topology::command_program(c)
                .rsplit('/')
                .next()
                .unwrap_or("service")
                .to_owned(),
            None => "external service".into(),
        }
    }
}

/// Where a service is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// TCP.
    Tcp(SocketAddr),
    /// A Unix socket.
    Unix(PathBuf),
}

impl Upstream {
    /// `127.0.0.1:PORT` or `unix:/path`: the `{upstream}` placeholder, and what our proxy's
    /// `--upstream` takes.
    pub fn spelled(&self) -> String {
        match self {
            Upstream::Tcp(a) => a.to_string(),
            Upstream::Unix(p) => format!("unix:{}", p.display()),
        }
    }

    /// The TCP address, if it has one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Upstream::Tcp(a) => Some(*a),
            Upstream::Unix(_) => None,
        }
    }

    /// The placeholders a proxy template gets for it.
    pub fn placeholders(&self, p: &mut Placeholders) {
        p.set("upstream", self.spelled());
        match self {
            Upstream::Tcp(a) => {
                p.set("upstream_host", a.ip().to_string());
                p.set("upstream_port", a.port().to_string());
                p.set("socket", String::new());
            }
            Upstream::Unix(path) => {
                p.set("socket", path.display().to_string());
                p.set("upstream_host", String::new());
                p.set("upstream_port", String::new());
            }
        }
    }
}

/// What each topology serves, in a few words.
pub fn describe(
    s: &crate::scenario::Scenario,
    topologies: &[crate::scenario::TopologySpec],
) -> BTreeMap<String, String> {
    let services = s.services();
    topologies
        .iter()
        .map(|t| {
            let what = match (t.kind, services.of(t.service.as_ref())) {
                (crate::scenario::TopologyKind::Hyper, _) => "bare-hyper".to_owned(),
                (_, None) => "tinyfish-app".to_owned(),
                (_, Some((name, spec))) => match (&spec.command, &spec.address) {
                    (Some(c), _) => format!("{name}: {c}"),
                    (None, Some(a)) => format!("{name}: running at {a}, not sampled"),
                    (None, None) => name.to_owned(),
                },
            };
            (t.name.clone(), what)
        })
        .collect()
}

/// What the report must say about the services: one line per running (address) service,
/// whose cost the bench cannot measure.
pub fn notes(
    s: &crate::scenario::Scenario,
    topologies: &[crate::scenario::TopologySpec],
) -> Vec<String> {
    let services = s.services();
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for t in topologies {
        let Some((name, spec)) = services.of(t.service.as_ref()) else {
            continue;
        };
        let Some(a) = &spec.address else { continue };
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        let users: Vec<&str> = topologies
            .iter()
            .filter(|o| {
                services
                    .of(o.service.as_ref())
                    .is_some_and(|(n, _)| n == name)
            })
            .map(|o| o.name.as_str())
            .collect();
        out.push(format!(
            "service {name} at {a} was already running: the bench did not start it, so its CPU \
             and memory are in no figure of {} (the proxies' own costs are measured)",
            users.join(", ")
        ));
    }
    out
}

/// A path made absolute against the current directory (the command runs elsewhere).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml: &str) -> ServiceSpec {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn a_service_is_a_command_or_an_address() {
        let (key, m) = spec("").check().unwrap_err();
        assert_eq!(key, "command");
        assert!(m.contains("either"), "{m}");
        let both = spec("command = \"x {listen}\"\naddress = \"127.0.0.1:1\"");
        assert_eq!(both.check().unwrap_err().0, "command");
        assert!(spec("address = \"127.0.0.1:5000\"").check().is_ok());
        let (key, m) = spec("address = \"localhost:5000\"").check().unwrap_err();
        assert_eq!(key, "address");
        assert!(m.contains("127.0.0.1:5000"), "{m}");
    }

    #[test]
    fn a_command_must_say_where_it_listens() {
        let (key, m) = spec("command = \"gunicorn app:app\"").check().unwrap_err();
        assert_eq!(key, "command");
        assert!(m.contains("{listen}"), "{m}");
        assert!(spec("command = \"gunicorn --bind {listen} app:app\"")
            .check()
            .is_ok());
        let unix = spec("command = \"gunicorn --bind {listen_port} app:app\"\nlisten = \"unix\"");
        assert!(unix.check().unwrap_err().1.contains("{socket}"));
        assert!(
            spec("command = \"gunicorn --bind unix:{socket} app:app\"\nlisten = \"unix\"")
                .check()
                .is_ok()
        );
        let missing = spec("command = \"sh -c true {listen}\"\ndir = \"/nonexistent/tinyfish\"");
        assert!(missing.check().is_ok());
        let e = availability("s", &missing).unwrap_err();
        assert!(
            e.contains("dir /nonexistent/tinyfish is not a directory"),
            "{e}"
        );
        let e = availability(
            "s",
            &spec("command = \"no-such-program-tinyfish {listen}\"\nhint = \"apt-get install it\""),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "service s: no-such-program-tinyfish is not installed (apt-get install it)"
        );
        let e =
            availability("s", &spec("command = \"sh {listen}\"\ncheck = \"exit 3\"")).unwrap_err();
        assert!(e.contains("`exit 3` failed"), "{e}");
        let (key, _) = spec("command = \"x {config}\"").check().unwrap_err();
        assert_eq!(key, "command");
    }

    #[test]
    fn program_names_and_upstream_spelling() {
        assert_eq!(
            spec("command = \"/usr/bin/uwsgi --x {listen}\"").program(),
            "uwsgi"
        );
        assert_eq!(
            spec("command = \"env A=1 B={threads} gunicorn -b {listen}\"").program(),
            "gunicorn"
        );
        assert_eq!(
            spec("command = \"x {listen}\"\nprogram = \"flask\"").program(),
            "flask"
        );
        let u = Upstream::Unix("/tmp/a.sock".into());
        assert_eq!(u.spelled(), "unix:/tmp/a.sock");
        let mut p = Placeholders::default();
        u.placeholders(&mut p);
        assert_eq!(
            p.render("{upstream} {socket}"),
            "unix:/tmp/a.sock /tmp/a.sock"
        );
        let t = Upstream::Tcp("127.0.0.1:9".parse().unwrap());
        t.placeholders(&mut p);
        assert_eq!(
            p.render("{upstream_host} {upstream_port} {upstream}"),
            "127.0.0.1 9 127.0.0.1:9"
        );
    }

    /// A scenario with `extra` appended (services, topologies after `direct`).
    fn scenario(head: &str, extra: &str) -> Result<Scenario, String> {
        let text = format!(
            "name = \"t\"\nrounds = 1\nrates = [100]\n{head}\n[load]\nconnections = 1\nthreads = 1\nwarmup = \"1s\"\nmeasure = \"1s\"\n\
             [[topology]]\nname = \"direct\"\nkind = \"direct\"\n{extra}"
        );
        Scenario::from_toml(&text, "t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn topologies_name_services_the_scenario_has() {
        let e = scenario(
            "",
            "[[topology]]\nname = \"p\"\nkind = \"proxied\"\nservice = \"nope\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("topology[1].service") && e.contains("[services.nope]"),
            "{e}"
        );
        let e = scenario("service = \"nope\"", "").unwrap_err();
        assert!(e.contains("t.toml: service:"), "{e}");
        let e = scenario("[services.app]\naddress = \"127.0.0.1:1\"", "").unwrap_err();
        assert!(
            e.contains("services.app") && e.contains("TinyFish app"),
            "{e}"
        );
        let ok = scenario(
            "service = \"mine\"\n[services.mine]\naddress = \"127.0.0.1:5000\"",
            "[[topology]]\nname = \"p\"\nkind = \"proxied\"\n",
        )
        .unwrap();
        let notes = notes(&ok, &ok.topologies);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("127.0.0.1:5000") && notes[0].contains("direct, p"),
            "{notes:?}"
        );
        let echo = describe(&ok, &ok.topologies);
        assert_eq!(echo["p"], "mine: running at 127.0.0.1:5000, not sampled");
    }

    #[test]
    fn what_a_service_speaks_decides_who_may_stand_in_front() {
        let uwsgi = "[services.uw]\ncommand = \"uwsgi --socket {socket}\"\nlisten = \"unix\"\nprotocol = \"uwsgi\"";
        let e = scenario(
            uwsgi,
            "[[topology]]\nname = \"p\"\nkind = \"proxied\"\nservice = \"uw\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("speaks uwsgi") && e.contains("uwsgi_pass"),
            "{e}"
        );
        let e = scenario(
            uwsgi,
            "[[topology]]\nname = \"d\"\nkind = \"direct\"\nservice = \"uw\"\n",
        )
        .unwrap_err();
        assert!(e.contains("needs TCP"), "{e}");
        assert!(scenario(
            uwsgi,
            "[[topology]]\nname = \"n\"\nkind = \"nginx\"\nservice = \"uw\"\n"
        )
        .is_ok());
        let e = scenario(
            "",
            "[[topology]]\nname = \"d2\"\nkind = \"direct\"\nupstream = \"unix\"\n",
        )
        .unwrap_err();
        assert!(e.contains("topology[1].upstream"), "{e}");
        assert!(scenario(
            "",
            "[[topology]]\nname = \"p\"\nkind = \"proxied\"\nupstream = \"unix\"\n"
        )
        .is_ok());
        let e = scenario(
            "",
            "[[topology]]\nname = \"p\"\nkind = \"proxied\"\nconfig_template = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.contains("config_template"), "{e}");
    }
}
