//! TLS termination: the `[tls]` table of the configuration, the rustls server
//! configuration built from it once at start-up (files read, the key checked against the
//! certificate), and the handshake on each accepted connection.
//!
//! The backend is rustls with its `ring` provider, through pingora's `rustls` feature: it
//! builds with a C compiler alone (no system OpenSSL, no cmake or Go as BoringSSL needs),
//! it is the library the load generator's TLS uses too, and pingora's TLS stream type
//! carries the negotiated ALPN and TLS digest its HTTP/2 server reads.
//!
//! After the handshake a connection goes where its protocol is served best: `h2` to
//! pingora's HTTP/2 server (streams multiplexed, each proxied by [`crate::gateway`]),
//! HTTP/1.1 to the dispatcher ([`crate::dispatch`]), which serves it as it serves plain TCP
//! (the same checks, the fast path; [`crate::rewind`] puts bytes back for pingora's path).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::stream::Stream as L4Stream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// ALPN protocol names the proxy can serve.
pub const PROTOCOLS: [&str; 2] = ["h2", "http/1.1"];

/// TLS versions the proxy can speak, as the configuration spells them.
pub const VERSIONS: [&str; 2] = ["1.2", "1.3"];

/// The `[tls]` table: present, the listener speaks only TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The certificate chain, PEM (leaf first).
    pub cert: PathBuf,
    /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Protocols offered by ALPN, in order of preference: `"h2"`, `"http/1.1"`. A client
    /// that offers none of them is refused by the handshake; one that sends no ALPN gets
    /// HTTP/1.1.
    pub alpn: Vec<String>,
    /// TLS versions accepted: `"1.2"`, `"1.3"`.
    pub versions: Vec<String>,
    /// Session resumption: stateless tickets (TLS 1.3 and 1.2) and a session-ID cache
    /// (TLS 1.2). `false`: every connection makes a full handshake.
    pub resumption: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: PathBuf::new(),
            key: PathBuf::new(),
            alpn: PROTOCOLS.iter().map(|p| (*p).to_owned()).collect(),
            versions: VERSIONS.iter().map(|v| (*v).to_owned()).collect(),
            resumption: true,
        }
    }
}

impl TlsConfig {
    /// Checks what can be checked without reading files: `Err((key, message))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: &str, message: String| Err((format!("tls.{key}"), message));
        if self.cert.as_os_str().is_empty() {
            return err(
                "cert",
                "expected the path of a PEM certificate chain, e.g. \"/etc/tinyfish/cert.pem\""
                    .into(),
            );
        }
        if self.key.as_os_str().is_empty() {
            return err(
                "key",
                "expected the path of the certificate's PEM private key, e.g. \"/etc/tinyfish/key.pem\""
                    .into(),
            );
        }
        for (key, list, known) in [
            ("alpn", &self.alpn, &PROTOCOLS[..]),
            ("versions", &self.versions, &VERSIONS[..]),
        ] {
            if list.is_empty() {
                return err(key, format!("expected at least one of {known:?}"));
            }
            for (i, name) in list.iter().enumerate() {
                if !known.contains(&name.as_str()) {
                    return err(
                        &format!("{key}[{i}]"),
                        format!("unknown {name:?}: expected one of {known:?}"),
                    );
                }
                if list[..i].contains(name) {
                    return err(&format!("{key}[{i}]"), format!("{name:?} is listed twice"));
                }
            }
        }
        Ok(())
    }
}

/// A TLS listener's state: the rustls configuration behind pingora's acceptor.
pub struct Tls {
    acceptor: Acceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

/// The error for `key` of the `[tls]` table (origin and line filled in by the caller).
fn bad(key: &str, message: String) -> ConfigError {
    ConfigError {
        origin: String::new(),
        line: None,
        key: Some(format!("tls.{key}")),
        message,
    }
}

fn read(key: &str, path: &Path, what: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| bad(key, format!("cannot read {what} {}: {e}", path.display())))
}

impl Tls {
    /// Reads the certificate chain and key and builds the server configuration. Errors
    /// name the key (`tls.cert`, `tls.key`) and the file.
    pub fn load(config: &TlsConfig) -> Result<Tls, ConfigError> {
        Ok(Tls {
            acceptor: Acceptor::from_server_config(Arc::new(server_config(config)?)),
        })
    }

    /// The TLS handshake on an accepted connection, within `deadline` (the client header
    /// timeout: a client that stalls mid-handshake holds a connection no longer than one
    /// that stalls mid-head). `None`: it failed or timed out, and the connection is closed.
    pub async fn accept(
        &self,
        stream: pingora::protocols::Stream,
        deadline: Duration,
    ) -> Option<pingora::protocols::Stream> {
        let tcp = stream.into_any().downcast::<L4Stream>().ok()?;
        match tokio::time::timeout(deadline, self.acceptor.tls_handshake(*tcp)).await {
            Ok(Ok(tls)) => Some(Box::new(tls)),
            _ => None,
        }
    }
}

/// The rustls server configuration for `config`.
pub fn server_config(config: &TlsConfig) -> Result<rustls::ServerConfig, ConfigError> {
    let pem = read("cert", &config.cert, "the certificate chain")?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            bad(
                "cert",
                format!(
                    "{} is not a PEM certificate chain: {e}",
                    config.cert.display()
                ),
            )
        })?;
    if chain.is_empty() {
        return Err(bad(
            "cert",
            format!(
                "{} holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\" blocks)",
                config.cert.display()
            ),
        ));
    }
    let pem = read("key", &config.key, "the private key")?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        bad(
            "key",
            format!(
                "{} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
                config.key.display()
            ),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = config
        .versions
        .iter()
        .map(|v| match v.as_str() {
            "1.2" => &rustls::version::TLS12,
            _ => &rustls::version::TLS13,
        })
        .collect();
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| bad("versions", format!("{e}")))?
        .with_no_client_auth();
    let mut server = builder.with_single_cert(chain, key).map_err(|e| {
        bad(
            "key",
            format!(
                "the key {} cannot serve the certificate {}: {e}",
                config.key.display(),
                config.cert.display()
            ),
        )
    })?;
    server.alpn_protocols = config.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    if config.resumption {
        server.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| bad("resumption", format!("cannot make a ticket key: {e}")))?;
        server.send_tls13_tickets = 1;
    } else {
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
    }
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::TlsConfig;

    #[test]
    fn unknown_protocols_and_versions_are_named_with_their_index() {
        let mut c = TlsConfig {
            cert: "c.pem".into(),
            key: "k.pem".into(),
            ..TlsConfig::default()
        };
        assert_eq!(c.validate(), Ok(()));
        c.alpn = vec!["h2".into(), "spdy/3".into()];
        let (key, message) = c.validate().unwrap_err();
        assert_eq!(key, "tls.alpn[1]");
        assert!(message.contains("unknown \"spdy/3\""), "{message}");
        c.alpn = vec!["h2".into()];
        c.versions = vec!["1.3".into(), "1.1".into()];
        assert_eq!(c.validate().unwrap_err().0, "tls.versions[1]");
        c.versions = vec![];
        assert_eq!(c.validate().unwrap_err().0, "tls.versions");
    }
}
