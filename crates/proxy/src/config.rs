//! The proxy's configuration: a TOML file (see `deploy/proxy.toml`), validated once at start-up.
//!
//! Every key is optional; [`Config::default`] is what runs with no file. Unknown keys and bad
//! values are errors that name the key and its line ([`ConfigError`]).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Largest request head pingora reads (its own hard limit, 1 MiB - 1).
pub const PINGORA_MAX_HEADER_BYTES: usize = 1_048_575;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (`host:port`; port 0 picks a free port, reported on stdout).
    pub listen: String,
    /// Upstream servers: `host:port`, or `unix:/absolute/path` for a Unix socket on this
    /// host (a same-host sidecar; it must then be the only upstream, see
    /// [`unix_socket_path`]). More than one: round-robin with TCP health checks.
    pub upstreams: Vec<String>,
    /// Worker threads; absent: one per CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Let idle worker threads steal work from busy ones (tokio multi-thread scheduler);
    /// `false` runs one single-threaded runtime per thread (pingora's "no steal"). With one
    /// thread the proxy always runs a single-threaded runtime.
    pub work_stealing: bool,
    /// Forward the common request (HTTP/1.1 in origin or absolute form, without `Expect` or an upgrade,
    /// any body) on the fast path; `false`: every request through pingora's proxy
    /// (`ProxyHttp`).
    pub fast_path: bool,
    /// Idle upstream connections kept for reuse (pingora's pool size, all upstreams together).
    pub keepalive_pool_size: usize,
    /// Largest request head (request line + headers) accepted; larger gets 431.
    pub max_header_bytes: usize,
    /// A path the proxy answers itself with `200 ok` (never forwarded); empty: none.
    pub health_path: String,
    /// Client connections served at once; one more is answered `503` and closed (as
    /// NGINX's `worker_connections` caps a worker, but with an answer instead of a reset).
    pub max_connections: usize,
    /// What to do with `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host`.
    pub forwarded: ForwardedPolicy,
    /// How often several upstreams are health-checked (TCP connect).
    #[serde(with = "humantime_serde")]
    pub health_check_interval: Duration,
    /// Timeouts, both sides.
    pub timeouts: Timeouts,
    /// TLS termination (`[tls]`: certificate, key, ALPN, versions, resumption); absent,
    /// the listener speaks plain HTTP/1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::tls::TlsConfig>,
}

/// Timeouts (humantime strings: `"1s"`, `"250ms"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Connecting to an upstream; refused or timed out: 502 / 504.
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    /// Upstream inactivity while waiting for (or reading) its response: 504.
    #[serde(with = "humantime_serde")]
    pub read: Duration,
    /// Writing the request to an upstream.
    #[serde(with = "humantime_serde")]
    pub write: Duration,
    /// How long an idle upstream connection stays in the keep-alive pool.
    #[serde(with = "humantime_serde")]
    pub upstream_idle: Duration,
    /// A client must send its whole request head within this time (slow clients are disconnected).
    #[serde(with = "humantime_serde")]
    pub client_header: Duration,
    /// Client inactivity while sending a request body.
    #[serde(with = "humantime_serde")]
    pub client_read: Duration,
    /// Writing a response to a client that does not read it.
    #[serde(with = "humantime_serde")]
    pub client_write: Duration,
    /// An idle keep-alive client connection is closed after this (whole seconds).
    #[serde(with = "humantime_serde")]
    pub client_idle: Duration,
    /// On SIGTERM: stop accepting, then wait at most this long for requests in flight.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

/// Handling of the `X-Forwarded-*` request headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ForwardedPolicy {
    /// Append the client address to `X-Forwarded-For`; set `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` (behind another trusted proxy).
    #[default]
    Append,
    /// Drop what the client sent and set all three afresh (the edge, untrusted clients).
    Replace,
    /// Leave them alone.
    Off,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:8080".to_owned(),
            upstreams: vec!["127.0.0.1:5000".to_owned()],
            threads: None,
            work_stealing: true,
            fast_path: true,
            keepalive_pool_size: 128,
            max_header_bytes: 64 * 1024,
            health_path: "/.proxy/health".to_owned(),
            max_connections: 10_000,
            forwarded: ForwardedPolicy::Append,
            health_check_interval: Duration::from_secs(1),
            timeouts: Timeouts::default(),
            tls: None,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(1),
            read: Duration::from_secs(30),
            write: Duration::from_secs(30),
            upstream_idle: Duration::from_secs(60),
            client_header: Duration::from_secs(10),
            client_read: Duration::from_secs(30),
            client_write: Duration::from_secs(30),
            client_idle: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// A configuration that cannot be used: names where (file, line) and which key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or `--flag`) the value came from.
    pub origin: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// Dotted key (`timeouts.connect`), when known.
    pub key: Option<String>,
    /// What is wrong and, where useful, what is expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Config {
    /// Parses and validates a TOML document; `origin` names it in errors (a file path).
    pub fn from_toml_str(src: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(src).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => {
                    let (line, key) = locate(src, span.start);
                    (Some(line), key)
                }
                None => (None, None),
            };
            ConfigError {
                origin: origin.to_owned(),
                line,
                key,
                message: e.message().trim().to_owned(),
            }
        })?;
        config.validate().map_err(|mut e| {
            e.origin = origin.to_owned();
            if let Some(key) = &e.key {
                e.line = line_of_key(src, key);
            }
            e
        })?;
        Ok(config)
    }

    /// Reads, parses and validates a file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: path.display().to_string(),
            line: None,
            key: None,
            message: format!("cannot read the configuration file: {e}"),
        })?;
        Config::from_toml_str(&src, &path.display().to_string())
    }

    /// The configuration as TOML (round-trips through [`Config::from_toml_str`]).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).expect("a Config always serialises")
    }

    /// Checks values that parse but cannot work; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            origin: String::new(),
            line: None,
            key: Some(key.to_owned()),
            message,
        };
        check_host_port(&self.listen).map_err(|m| err("listen", m))?;
        if self.upstreams.is_empty() {
            return Err(err(
                "upstreams",
                "expected at least one upstream, e.g. [\"127.0.0.1:5000\"]".into(),
            ));
        }
        for (i, u) in self.upstreams.iter().enumerate() {
            match u.strip_prefix(UNIX_PREFIX) {
                Some(path) => {
                    check_unix_path(u, path).map_err(|m| err(&format!("upstreams[{i}]"), m))?;
                    if self.upstreams.len() > 1 {
                        return Err(err(
                            &format!("upstreams[{i}]"),
                            format!(
                                "a Unix-socket upstream must be the only upstream: {u:?} is listed \
                                 with {} other(s), and several upstreams are health-checked over TCP",
                                self.upstreams.len() - 1
                            ),
                        ));
                    }
                }
                None => {
                    check_upstream_host_port(u).map_err(|m| err(&format!("upstreams[{i}]"), m))?
                }
            }
            if self.upstreams[..i].contains(u) {
                return Err(err(
                    &format!("upstreams[{i}]"),
                    format!("{u:?} is listed twice"),
                ));
            }
        }
        if self.threads == Some(0) {
            return Err(err(
                "threads",
                "expected at least 1 (or leave it out for one per CPU)".into(),
            ));
        }
        if self.max_header_bytes < 256 || self.max_header_bytes > PINGORA_MAX_HEADER_BYTES {
            return Err(err(
                "max_header_bytes",
                format!(
                    "expected 256 to {PINGORA_MAX_HEADER_BYTES} bytes, got {}",
                    self.max_header_bytes
                ),
            ));
        }
        if !self.health_path.is_empty() && !self.health_path.starts_with('/') {
            return Err(err(
                "health_path",
                format!(
                    "expected a path starting with '/' (or \"\" for none), got {:?}",
                    self.health_path
                ),
            ));
        }
        if self.max_connections == 0 {
            return Err(err(
                "max_connections",
                "expected at least 1 (e.g. 10000)".into(),
            ));
        }
        if self.health_check_interval.is_zero() {
            return Err(err("health_check_interval", "must be more than 0".into()));
        }
        let t = &self.timeouts;
        for (key, d) in [
            ("timeouts.connect", t.connect),
            ("timeouts.read", t.read),
            ("timeouts.write", t.write),
            ("timeouts.upstream_idle", t.upstream_idle),
            ("timeouts.client_header", t.client_header),
            ("timeouts.client_read", t.client_read),
            ("timeouts.client_write", t.client_write),
        ] {
            if d.is_zero() {
                return Err(err(key, "must be more than 0 (e.g. \"1s\")".into()));
            }
        }
        if let Some(tls) = &self.tls {
            tls.validate()
                .map_err(|(key, message)| err(&key, message))?;
        }
        if t.client_idle < Duration::from_secs(1) {
            return Err(err(
                "timeouts.client_idle",
                "must be at least \"1s\" (keep-alive is counted in whole seconds)".into(),
            ));
        }
        Ok(())
    }

    /// Worker threads to run: the configured number or one per CPU.
    pub fn worker_threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }
}

fn check_host_port(s: &str) -> Result<(), String> {
    let expected = "expected host:port, e.g. \"127.0.0.1:5000\" or \"app:5000\"";
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("{expected}, got {s:?}"));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) || port.parse::<u16>().is_err() {
        return Err(format!("{expected}, got {s:?}"));
    }
    Ok(())
}

/// How an upstream on a Unix socket is spelled: `unix:` followed by the socket's path.
pub const UNIX_PREFIX: &str = "unix:";

/// Longest Unix socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
pub const MAX_UNIX_PATH_BYTES: usize = 107;

/// The socket path of an upstream spelled `unix:/path`; `None` for `host:port`.
///
/// A Unix-socket upstream must be the only upstream ([`Config::validate`] refuses it among
/// several): several upstreams are health-checked by pingora's TCP health check over a load
/// balancer built from `host:port` strings. The socket need not exist at start-up: until it
/// does, each request gets `502`, as for a TCP upstream that refuses.
pub fn unix_socket_path(upstream: &str) -> Option<&Path> {
    upstream.strip_prefix(UNIX_PREFIX).map(Path::new)
}

fn check_upstream_host_port(s: &str) -> Result<(), String> {
    check_host_port(s).map_err(|_| {
        format!(
            "expected host:port (e.g. \"127.0.0.1:5000\" or \"app:5000\") or \
             unix:/absolute/path (e.g. \"unix:/run/tinyfish/app.sock\"), got {s:?}"
        )
    })
}

/// `path` is what follows `unix:` in `s`.
fn check_unix_path(s: &str, path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(format!(
            "expected \"unix:\" followed by an absolute path, e.g. \"unix:/run/tinyfish/app.sock\", got {s:?}"
        ));
    }
    if path.len() > MAX_UNIX_PATH_BYTES {
        return Err(format!(
            "the socket path of {s:?} is {} bytes long; a Unix socket path can be at most \
             {MAX_UNIX_PATH_BYTES} bytes",
            path.len()
        ));
    }
    Ok(())
}

/// The 1-based line of byte `offset` and the dotted key written on it (if any).
fn locate(src: &str, offset: usize) -> (usize, Option<String>) {
    let offset = offset.min(src.len());
    let line = src[..offset].matches('\n').count() + 1;
    let mut table = String::new();
    let mut key = None;
    for (i, text) in src.lines().enumerate() {
        if i + 1 > line {
            break;
        }
        let t = text.trim();
        if t.starts_with('[') && !t.starts_with("[[") {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
            key = None;
        }
        if i + 1 == line {
            if let Some((k, _)) = t.split_once('=') {
                let k = k.trim().trim_matches('"');
                key = Some(if table.is_empty() {
                    k.to_owned()
                } else {
                    format!("{table}.{k}")
                });
            } else if t.starts_with('[') {
                key = Some(table.clone());
            }
        }
    }
    (line, key)
}

/// The line where a dotted key (`timeouts.connect`, `upstreams[1]`) is set, if written in `src`.
pub(crate) fn line_of_key(src: &str, key: &str) -> Option<usize> {
    let key = key.split('[').next().unwrap_or(key);
    let (table, leaf) = match key.rsplit_once('.') {
        Some((t, l)) => (t, l),
        None => ("", key),
    };
    let mut current = String::new();
    for (i, text) in src.lines().enumerate() {
        let t = text.trim();
        if t.starts_with('[') {
            current = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
            continue;
        }
        if current == table {
            if let Some((k, _)) = t.split_once('=') {
                if k.trim().trim_matches('"') == leaf {
                    return Some(i + 1);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip() {
        let c = Config::default();
        let back = Config::from_toml_str(&c.to_toml_string(), "t").unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn custom_values_round_trip() {
        let mut c = Config {
            threads: Some(3),
            upstreams: vec!["a:1".into(), "b:2".into()],
            forwarded: ForwardedPolicy::Replace,
            ..Config::default()
        };
        c.timeouts.read = Duration::from_millis(1500);
        let text = c.to_toml_string();
        assert_eq!(Config::from_toml_str(&text, "t").unwrap(), c, "{text}");
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(Config::from_toml_str("", "t").unwrap(), Config::default());
    }

    #[test]
    fn issue_example_parses() {
        let c = Config::from_toml_str(
            "listen = \"0.0.0.0:8080\"\nupstreams = [\"127.0.0.1:5000\"]\n[timeouts]\nconnect = \"1s\"\nread = \"30s\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.timeouts.read, Duration::from_secs(30));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = Config::from_toml_str(
            "listen = \"0.0.0.0:1\"\n\n[timeouts]\nconect = \"1s\"\n",
            "p.toml",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.to_string().contains("conect"), "{e}");
        assert!(e.to_string().starts_with("p.toml:4"), "{e}");
    }

    #[test]
    fn bad_value_names_key_and_line() {
        let e = Config::from_toml_str("[timeouts]\nconnect = \"fast\"\n", "p.toml").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert_eq!(e.key.as_deref(), Some("timeouts.connect"), "{e}");
    }

    #[test]
    fn validation_names_key_and_line() {
        let e =
            Config::from_toml_str("threads = 2\nupstreams = [\"nope\"]\n", "p.toml").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("upstreams[0]"), "{e}");
        assert_eq!(e.line, Some(2), "{e}");
        let e = Config::from_toml_str("[timeouts]\nread = \"0s\"\n", "p.toml").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("timeouts.read"));
        assert_eq!(e.line, Some(2));
        let e = Config::from_toml_str("upstreams = []\n", "p.toml").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("upstreams"));
        let e = Config::from_toml_str("forwarded = \"sometimes\"\n", "p.toml").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("forwarded"), "{e}");
    }

    #[test]
    fn a_unix_socket_upstream_is_an_absolute_path_after_unix() {
        let c =
            Config::from_toml_str("upstreams = [\"unix:/run/tinyfish/app.sock\"]\n", "t").unwrap();
        assert_eq!(c.upstreams, ["unix:/run/tinyfish/app.sock"]);
        assert_eq!(
            unix_socket_path(&c.upstreams[0]),
            Some(Path::new("/run/tinyfish/app.sock"))
        );
        assert_eq!(unix_socket_path("127.0.0.1:5000"), None);
        let back = Config::from_toml_str(&c.to_toml_string(), "t").unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn a_relative_or_empty_unix_path_is_refused_naming_the_key() {
        for bad in [
            "unix:relative/app.sock",
            "unix:",
            "unix:./app.sock",
            "unix:5000",
        ] {
            let e =
                Config::from_toml_str(&format!("threads = 1\nupstreams = [{bad:?}]\n"), "p.toml")
                    .unwrap_err();
            assert_eq!(e.key.as_deref(), Some("upstreams[0]"), "{e}");
            assert_eq!(e.line, Some(2), "{e}");
            assert_eq!(
                e.to_string(),
                format!(
                    "p.toml:2: upstreams[0]: expected \"unix:\" followed by an absolute path, \
                     e.g. \"unix:/run/tinyfish/app.sock\", got {bad:?}"
                )
            );
        }
    }

    #[test]
    fn a_unix_path_too_long_for_the_kernel_is_refused() {
        let longest = format!("unix:/{}", "a".repeat(MAX_UNIX_PATH_BYTES - 1));
        let c = Config {
            upstreams: vec![longest.clone()],
            ..Config::default()
        };
        c.validate().unwrap();
        let c = Config {
            upstreams: vec![format!("{longest}a")],
            ..Config::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.key.as_deref(), Some("upstreams[0]"), "{e}");
        assert!(e.message.contains("at most 107 bytes"), "{e}");
    }

    #[test]
    fn a_unix_socket_upstream_among_several_is_refused() {
        let e = Config::from_toml_str(
            "upstreams = [\"127.0.0.1:5000\", \"unix:/run/app.sock\"]\n",
            "p.toml",
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("upstreams[1]"), "{e}");
        assert_eq!(e.line, Some(1), "{e}");
        assert!(
            e.message.starts_with(
                "a Unix-socket upstream must be the only upstream: \"unix:/run/app.sock\""
            ),
            "{e}"
        );
        let e = Config {
            upstreams: vec!["unix:/a.sock".into(), "unix:/b.sock".into()],
            ..Config::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("upstreams[0]"), "{e}");
    }

    #[test]
    fn a_bad_upstream_is_told_both_spellings() {
        let e = Config {
            upstreams: vec!["nope".into()],
            ..Config::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            e.message,
            "expected host:port (e.g. \"127.0.0.1:5000\" or \"app:5000\") or \
             unix:/absolute/path (e.g. \"unix:/run/tinyfish/app.sock\"), got \"nope\""
        );
    }
}
