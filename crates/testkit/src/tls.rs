//! TLS for tests: a fresh self-signed certificate per test ([`cert`], made with rcgen for
//! `localhost` and `127.0.0.1`, its PEM files on disk for a server to read), a rustls
//! client that trusts exactly that certificate, and a blocking HTTP/1.1-over-TLS
//! connection ([`Conn`]) that reads responses with [`crate::http::read_response`].
//!
//! ```no_run
//! let cert = testkit::tls::cert();
//! let upstream = testkit::upstream().start();
//! let proxy = testkit::proxy().to(&upstream).tls(&cert).start();
//! let mut conn = testkit::tls::Conn::open(proxy.addr(), &cert, &["http/1.1"]).unwrap();
//! assert_eq!(conn.alpn(), Some(&b"http/1.1"[..]));
//! assert_eq!(conn.get("/").status, 200);
//! ```

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::http::{read_response, ReadError, Response};
use crate::patience::scaled;
use crate::process::TempFile;

/// A self-signed certificate and its key, as PEM files and as the client's trust root.
#[derive(Debug)]
pub struct Cert {
    /// The certificate, PEM.
    pub cert: TempFile,
    /// Its private key, PEM (PKCS#8).
    pub key: TempFile,
    der: CertificateDer<'static>,
}

/// A fresh certificate for `localhost` and `127.0.0.1` (an ECDSA P-256 key).
pub fn cert() -> Cert {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen makes a self-signed certificate");
    Cert {
        cert: TempFile::new("cert.pem", made.cert.pem()),
        key: TempFile::new("key.pem", made.key_pair.serialize_pem()),
        der: made.cert.der().clone(),
    }
}

impl Cert {
    /// The proxy's `[tls]` settings for this certificate (ALPN, versions and resumption
    /// at their defaults).
    pub fn settings(&self) -> proxy::tls::TlsConfig {
        proxy::tls::TlsConfig {
            cert: self.cert.path().to_owned(),
            key: self.key.path().to_owned(),
            ..proxy::tls::TlsConfig::default()
        }
    }

    /// A rustls client that trusts this certificate only and offers `alpn` (none: no ALPN
    /// extension), TLS 1.2 and 1.3.
    pub fn client_config(&self, alpn: &[&str]) -> Arc<ClientConfig> {
        self.client_config_for(alpn, rustls::DEFAULT_VERSIONS)
    }

    /// As [`Cert::client_config`], speaking only `versions`.
    pub fn client_config_for(
        &self,
        alpn: &[&str],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.der.clone())
            .expect("the certificate is a trust root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("ring supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(config)
    }
}

/// A blocking TLS connection (HTTP/1.1 over it).
pub struct Conn {
    stream: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("tls::Conn")
            .field("alpn", &self.alpn())
            .finish()
    }
}

impl Conn {
    /// Connects to `addr` as `localhost`, trusting `cert`, offering `alpn`, and completes
    /// the handshake (an error: the handshake failed, e.g. the server refused every
    /// protocol offered).
    pub fn open(addr: SocketAddr, cert: &Cert, alpn: &[&str]) -> std::io::Result<Conn> {
        Conn::open_with(addr, cert.client_config(alpn))
    }

    /// As [`Conn::open`], with a client configuration of the test's own.
    pub fn open_with(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<Conn> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(scaled(Duration::from_secs(30))))?;
        tcp.set_write_timeout(Some(scaled(Duration::from_secs(30))))?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost").expect("a valid name");
        let tls = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
        let mut stream = StreamOwned::new(tls, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(Conn {
            stream: BufReader::new(stream),
        })
    }

    /// The protocol the server chose by ALPN.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.stream.get_ref().conn.alpn_protocol()
    }

    /// Which TLS version was negotiated.
    pub fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.stream.get_ref().conn.protocol_version()
    }

    /// Writes `bytes` (and flushes them as TLS records).
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let s = self.stream.get_mut();
        s.write_all(bytes)?;
        s.flush()
    }

    /// Reads one response.
    pub fn response(&mut self) -> Result<Response, ReadError> {
        read_response(&mut self.stream, false)
    }

    /// What the server sends within `within`, and whether it closed the connection in that
    /// time (a TLS close, a TCP close without one, or a reset); returns as soon as it closes.
    pub fn read_for(&mut self, within: Duration) -> std::io::Result<(Vec<u8>, bool)> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok((got, false));
            }
            self.stream.get_ref().sock.set_read_timeout(Some(left))?;
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok((got, true)),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => match e.kind() {
                    ErrorKind::UnexpectedEof
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe => return Ok((got, true)),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut => return Ok((got, false)),
                    _ => return Err(e),
                },
            }
        }
    }

    /// `GET path` on this connection (Host: localhost); panics if no response comes.
    pub fn get(&mut self, path: &str) -> Response {
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        self.send(request.as_bytes())
            .unwrap_or_else(|e| panic!("send GET {path}: {e}"));
        self.response()
            .unwrap_or_else(|e| panic!("response to GET {path}: {e}"))
    }
}
