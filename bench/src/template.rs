//! Programs started from templates: NGINX, external proxies and command services. A
//! config template and the command line get their `{placeholders}` replaced, the config is
//! written to a fresh directory, the command starts there in its own process group, and it
//! is ready when its TCP port or Unix socket accepts a connection.
//!
//! Only the names set are replaced: a proxy's own syntax in braces (Caddy's
//! `{http.request.host}`, NGINX's blocks) passes through untouched.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::child::Child;
use crate::service::{Listen, Upstream};
use crate::topology::TopologyError;

/// Named values for `{name}` placeholders.
#[derive(Debug, Default, Clone)]
pub struct Placeholders(Vec<(String, String)>);

impl Placeholders {
    /// Sets (or replaces) `{name}`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }

    /// `text` with every set placeholder replaced.
    pub fn render(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (name, value) in &self.0 {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        out
    }
}

/// One templated program to start.
#[derive(Debug)]
pub struct Launch<'a> {
    /// Its name in errors and its directory's name (a topology or service name).
    pub name: &'a str,
    /// Where its directory goes.
    pub scratch: &'a Path,
    /// The config template's text (empty when there is none).
    pub template: &'a str,
    /// Placeholders besides `{listen}`, `{socket}` (when it listens on one), `{prefix}` and
    /// `{config}`, which are set per attempt.
    pub placeholders: Placeholders,
    /// Where it listens.
    pub listen: Listen,
    /// How long it may take to accept connections.
    pub ready_timeout: Duration,
    /// The signal it gets if the bench dies.
    pub parent_death: Signal,
}

/// Starts it: renders the template into `<scratch>/<name>-<attempt>/proxy.conf`, builds the
/// command with `command(dir, conf)`, renders its arguments too, and waits until it is
/// ready. A TCP port found free can be taken by someone else before the child binds it;
/// that is retried with another port.
pub fn start(
    launch: &Launch<'_>,
    command: impl Fn(&Path, &Path) -> Command,
) -> Result<(Child, Upstream), TopologyError> {
    let io = |what: String| {
        let topology = launch.name.to_owned();
        move |source| TopologyError::Io {
            topology,
            what,
            source,
        }
    };
    let mut last_err = None;
    for attempt in 0..3 {
        let dir = launch.scratch.join(format!("{}-{}", launch.name, attempt));
        std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let mut p = launch.placeholders.clone();
        p.set("prefix", dir.display().to_string());
        let at = match launch.listen {
            Listen::Tcp => {
                let a = free_port().map_err(io("cannot find a free port on 127.0.0.1".into()))?;
                p.set("listen", a.to_string());
                p.set("listen_host", a.ip().to_string());
                p.set("listen_port", a.port().to_string());
                Upstream::Tcp(a)
            }
            Listen::Unix => {
                let path = dir.join("service.sock");
                let _ = std::fs::remove_file(&path);
                // `{listen}` too: a server that takes either (uWSGI's `http-socket`,
                // gunicorn's `--bind unix:…` aside) needs one template for both.
                p.set("socket", path.display().to_string());
                p.set("listen", path.display().to_string());
                Upstream::Unix(path)
            }
        };
        let conf = dir.join("proxy.conf");
        p.set("config", conf.display().to_string());
        std::fs::write(&conf, p.render(launch.template))
            .map_err(io(format!("cannot write {}", conf.display())))?;
        let built = command(&dir, &conf);
        let mut cmd = Command::new(built.get_program());
        cmd.args(built.get_args().map(|a| p.render(&a.to_string_lossy())))
            .envs(
                built
                    .get_envs()
                    .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
            )
            .current_dir(&dir);
        let mut child = Child::spawn(launch.name, cmd, launch.parent_death)?;
        let timeout = launch.ready_timeout.max(Duration::from_secs(1));
        let ready = match &at {
            Upstream::Tcp(a) => child.wait_port(*a, timeout),
            Upstream::Unix(path) => child.wait_unix(path, timeout),
        };
        match ready {
            Ok(()) => return Ok((child, at)),
            Err(e) => {
                let retry = matches!(at, Upstream::Tcp(_))
                    && e.to_string().contains("Address already in use");
                last_err = Some(e);
                if !retry {
                    break;
                }
            }
        }
    }
    Err(last_err
        .map(TopologyError::from)
        .unwrap_or_else(|| TopologyError::Io {
            topology: launch.name.to_owned(),
            what: "cannot start".into(),
            source: std::io::Error::other("no attempt made"),
        }))
}

/// Reads a template file named in a scenario, with an error naming it.
pub fn read(owner: &str, path: &Path) -> Result<String, TopologyError> {
    std::fs::read_to_string(path).map_err(|source| TopologyError::Io {
        topology: owner.to_owned(),
        what: format!("cannot read config_template {}", path.display()),
        source,
    })
}

/// `/bin/sh -c "exec COMMAND"`, so a template can use the shell's words (`env X=1 prog`).
pub fn shell(command: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(format!("exec {command}"));
    c
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    l.local_addr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_names_are_replaced() {
        let mut p = Placeholders::default();
        p.set("listen", "127.0.0.1:1");
        p.set("listen", "127.0.0.1:2");
        assert_eq!(
            p.render("bind {listen} {http.request.host} events {\n}"),
            "bind 127.0.0.1:2 {http.request.host} events {\n}"
        );
    }
}
