//! The `proxy` binary as a child [`Process`], configured with a typed [`proxy::Config`]
//! (written to a TOML file it reads with `-c`), from `testkit::proxy().to(&upstream).start()`.
//!
//! The configuration starts from test settings (two threads, health checks every 200 ms,
//! connect timeout 1 s, read timeout 5 s, no upstream) and is validated by
//! [`proxy::Config::validate`] before the process starts, so a test never runs a proxy on
//! a configuration the proxy would refuse.
//!
//! ```no_run
//! use std::time::Duration;
//! let upstream = testkit::upstream().start();
//! let proxy = testkit::proxy()
//!     .to(&upstream)
//!     .read_timeout(Duration::from_millis(500))
//!     .start();
//! assert_eq!(testkit::http::get(proxy.addr(), "/").status, 200);
//! ```

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use proxy::{Config, ForwardedPolicy};

use crate::dogstatsd::{Sink, DATADOG_VARS};
use crate::process::{cargo_bin, Process, TempFile};
use crate::Listening;

/// The environment the proxy reads besides Datadog's ([`DATADOG_VARS`]), cleared with it
/// from every command made here so that a developer's shell cannot change a test.
pub const PROXY_ENV: [&str; 5] = [
    "PROXY_CONFIG",
    "PROXY_LISTEN",
    "PROXY_UPSTREAMS",
    "PROXY_THREADS",
    "PROXY_NO_FAST_PATH",
];

/// Says how to run a proxy: `testkit::proxy()`.
#[derive(Debug, Clone)]
pub struct ProxyBuilder {
    config: Config,
    program: Option<PathBuf>,
    env: Vec<(String, String)>,
    args: Vec<OsString>,
}

/// A proxy with the test settings (see the module docs) and no upstream yet.
pub fn proxy() -> ProxyBuilder {
    let mut config = Config {
        listen: "127.0.0.1:0".to_owned(),
        upstreams: Vec::new(),
        threads: Some(2),
        health_check_interval: Duration::from_millis(200),
        ..Config::default()
    };
    config.timeouts.connect = Duration::from_secs(1);
    config.timeouts.read = Duration::from_secs(5);
    ProxyBuilder {
        config,
        program: None,
        env: Vec::new(),
        args: Vec::new(),
    }
}

/// The workspace's `proxy` binary (next to the test) with the environment it reads
/// cleared, for a run the builder does not cover (`--check`).
pub fn proxy_command() -> Command {
    command_for(None)
}

fn command_for(program: Option<PathBuf>) -> Command {
    let mut cmd = Command::new(program.unwrap_or_else(|| cargo_bin("proxy")));
    for k in DATADOG_VARS.iter().chain(&PROXY_ENV) {
        cmd.env_remove(k);
    }
    cmd
}

impl ProxyBuilder {
    /// Forwards to `upstream` (call again for round-robin over several).
    pub fn to(self, upstream: &impl Listening) -> ProxyBuilder {
        self.to_addr(upstream.addr())
    }

    /// Forwards to `addr` (a closed port, a listener that never accepts, …).
    pub fn to_addr(mut self, addr: SocketAddr) -> ProxyBuilder {
        self.config.upstreams.push(addr.to_string());
        self
    }

    /// Forwards to the Unix socket at `path` (`unix:/path`; it must be the only upstream,
    /// and need not exist yet).
    pub fn to_unix(mut self, path: impl AsRef<std::path::Path>) -> ProxyBuilder {
        self.config
            .upstreams
            .push(format!("unix:{}", path.as_ref().display()));
        self
    }

    /// `timeouts.connect`.
    pub fn connect_timeout(mut self, d: Duration) -> ProxyBuilder {
        self.config.timeouts.connect = d;
        self
    }

    /// `timeouts.read`: upstream inactivity before a 504.
    pub fn read_timeout(mut self, d: Duration) -> ProxyBuilder {
        self.config.timeouts.read = d;
        self
    }

    /// `timeouts.client_header`: the whole request head must arrive within this.
    pub fn client_header_timeout(mut self, d: Duration) -> ProxyBuilder {
        self.config.timeouts.client_header = d;
        self
    }

    /// `timeouts.client_read`: client inactivity while sending a body, before a 408.
    pub fn client_read_timeout(mut self, d: Duration) -> ProxyBuilder {
        self.config.timeouts.client_read = d;
        self
    }

    /// `forwarded`: what to do with `X-Forwarded-*`.
    pub fn forwarded(mut self, policy: ForwardedPolicy) -> ProxyBuilder {
        self.config.forwarded = policy;
        self
    }

    /// `fast_path`: `false` sends every request through pingora's proxy.
    pub fn fast_path(mut self, on: bool) -> ProxyBuilder {
        self.config.fast_path = on;
        self
    }

    /// Terminates TLS with `cert` (`[tls]` at its defaults: ALPN h2 and http/1.1).
    pub fn tls(mut self, cert: &crate::tls::Cert) -> ProxyBuilder {
        self.config.tls = Some(cert.settings());
        self
    }

    /// Any other setting: `.with(|c| c.keepalive_pool_size = 4)`.
    pub fn with(mut self, change: impl FnOnce(&mut Config)) -> ProxyBuilder {
        change(&mut self.config);
        self
    }

    /// Sends the proxy's metrics to `sink` (`DD_DOGSTATSD_URL`).
    pub fn metrics_to(mut self, sink: &Sink) -> ProxyBuilder {
        self.env.extend(sink.env());
        self
    }

    /// Adds a command-line argument after `-c FILE --listen 127.0.0.1:0` (flags override
    /// the file).
    pub fn arg(mut self, arg: impl Into<OsString>) -> ProxyBuilder {
        self.args.push(arg.into());
        self
    }

    /// Runs `program` instead of the workspace's `proxy` binary next to the test
    /// (`env!("CARGO_BIN_EXE_proxy")` from the proxy's own tests).
    pub fn program(mut self, program: impl Into<PathBuf>) -> ProxyBuilder {
        self.program = Some(program.into());
        self
    }

    /// The configuration, validated. Panics (naming the key) when the proxy would refuse it.
    pub fn config(&self) -> Config {
        self.config
            .validate()
            .unwrap_or_else(|e| panic!("the test's proxy configuration is invalid: {e}"));
        self.config.clone()
    }

    /// The configuration file's text.
    pub fn toml(&self) -> String {
        self.config().to_toml_string()
    }

    /// Writes the configuration, starts the proxy with `-c FILE --listen 127.0.0.1:0`
    /// and waits for its `listening on` line.
    pub fn start(self) -> Process {
        assert!(
            !self.config.upstreams.is_empty(),
            "say where the proxy forwards: testkit::proxy().to(&upstream)"
        );
        let file = TempFile::new("proxy.toml", self.toml());
        let mut cmd = command_for(self.program);
        cmd.arg("-c")
            .arg(file.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(&self.args)
            .envs(self.env);
        Process::start_with_files(&mut cmd, vec![file])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_config_the_proxy_reads_back() {
        let up: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let b = proxy()
            .to_addr(up)
            .to_addr("127.0.0.1:5002".parse().unwrap())
            .read_timeout(Duration::from_millis(500))
            .client_header_timeout(Duration::from_secs(1))
            .forwarded(ForwardedPolicy::Replace)
            .fast_path(false)
            .with(|c| c.keepalive_pool_size = 4);
        let back = Config::from_toml_str(&b.toml(), "test").unwrap();
        assert_eq!(back, b.config());
        assert_eq!(back.upstreams, ["127.0.0.1:5001", "127.0.0.1:5002"]);
        assert_eq!(back.timeouts.read, Duration::from_millis(500));
        assert_eq!(back.timeouts.connect, Duration::from_secs(1));
        assert_eq!(back.forwarded, ForwardedPolicy::Replace);
        assert!(!back.fast_path);
        assert_eq!(back.keepalive_pool_size, 4);
    }

    #[test]
    #[should_panic(expected = "timeouts.read")]
    fn refuses_a_config_the_proxy_would_refuse() {
        proxy()
            .to_addr("127.0.0.1:1".parse().unwrap())
            .read_timeout(Duration::ZERO)
            .config();
    }
}
