//! TLS for the load generator's connections: the client configuration a run shares
//! ([`ClientTls`]: trusted certificate, TLS version, cipher suite, resumption) and one
//! connection's session ([`TlsSession`]) driven by hand over the event loop's non-blocking
//! socket with rustls's sans-I/O API.
//!
//! Ciphertext is read with the socket's timestamped `recvmsg`, so a response's arrival time
//! over TLS is still the kernel's receive timestamp of the segment that carried its last
//! record; decryption happens after it and is not part of the latency.
//!
//! The handshake starts with a connection's first request: the request is queued as
//! plaintext, the ClientHello goes out, and the request follows the client's Finished in
//! the same flight. A request on a new connection therefore pays its handshake, as a real
//! client's does; [`Handshake`] times it apart.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore};

use crate::error::{ErrorKind, LoadError};
use crate::socket::{ClientSocket, Received};

/// Ciphertext read buffer: one TLS record and then some.
const CIPHER_BUF: usize = 18 * 1024;

/// The run's TLS client settings, shared by every connection.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// rustls's client configuration (built by [`ClientTls::new`]).
    pub config: Arc<ClientConfig>,
    /// The name the server's certificate is checked against (SNI too).
    pub server_name: ServerName<'static>,
}

impl ClientTls {
    /// TLS 1.3 with one cipher suite, `TLS_AES_128_GCM_SHA256` (so every server measured
    /// encrypts the same way: a client offering one suite leaves a server no choice), ALPN
    /// `http/1.1`, trusting only the PEM certificates in `ca_pem` (the run's own
    /// certificate), checked against `server_name`. `resumption`: keep sessions (TLS 1.3
    /// tickets) and resume with them; `false`: every connection makes a full handshake.
    pub fn new(ca_pem: &[u8], server_name: &str, resumption: bool) -> Result<Self, LoadError> {
        let bad = |m: String| LoadError::InvalidSpec(m);
        let mut roots = RootCertStore::empty();
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| bad(format!("cannot read the CA certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("cannot trust the CA certificate: {e}")))?;
            n += 1;
        }
        if n == 0 {
            return Err(bad(
                "the CA file holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"
                    .into(),
            ));
        }
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| bad(format!("TLS configuration: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = if resumption {
            Resumption::default()
        } else {
            Resumption::disabled()
        };
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| bad(format!("invalid TLS server name {server_name:?}: {e}")))?;
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }

    /// The same settings offering ALPN `h2` alone (the HTTP/2 driver's connections).
    pub fn h2_config(&self) -> Arc<ClientConfig> {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    }

    /// [`ClientTls::new`] with the CA read from a PEM file.
    pub fn from_ca_file(
        path: &Path,
        server_name: &str,
        resumption: bool,
    ) -> Result<Self, LoadError> {
        let pem = std::fs::read(path).map_err(|e| {
            LoadError::InvalidSpec(format!("cannot read the CA file {}: {e}", path.display()))
        })?;
        Self::new(&pem, server_name, resumption)
    }
}

/// A completed handshake: how long it took and whether the session was resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handshake {
    /// From the ClientHello's send to the arrival of the server's Finished (kernel timestamp).
    pub took: Duration,
    pub resumed: bool,
}

/// One connection's TLS session.
pub(crate) struct TlsSession {
    conn: ClientConnection,
    cipher: Box<[u8]>,
    /// When the ClientHello was sent (the first flush).
    started: Option<Instant>,
    /// When the read that completed the handshake arrived (kernel timestamp).
    done_at: Option<Instant>,
    /// The handshake has been reported.
    reported: bool,
    /// The server sent close_notify (or the socket ended).
    eof: bool,
    /// Why TLS failed, in rustls's words (the run's notes quote the first).
    pub error: Option<String>,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.conn.is_handshaking())
            .field("eof", &self.eof)
            .finish()
    }
}

/// The socket as `io::Write` for rustls.
struct SockWriter<'a>(&'a ClientSocket);

impl Write for SockWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsSession {
    pub fn new(tls: &ClientTls) -> Result<Self, ErrorKind> {
        let mut conn = ClientConnection::new(tls.config.clone(), tls.server_name.clone())
            .map_err(|_| ErrorKind::Tls)?;
        // The whole request is queued at once (sent as the handshake allows).
        conn.set_buffer_limit(None);
        Ok(TlsSession {
            conn,
            cipher: vec![0u8; CIPHER_BUF].into_boxed_slice(),
            started: None,
            done_at: None,
            reported: false,
            eof: false,
            error: None,
        })
    }

    /// Queues a request's plaintext (held by rustls until the handshake allows it out).
    pub fn queue(&mut self, plaintext: &[u8]) -> Result<(), ErrorKind> {
        self.conn
            .writer()
            .write_all(plaintext)
            .map_err(|_| ErrorKind::Tls)
    }

    /// Writes pending ciphertext: `Ok(true)` when none is left, `Ok(false)` when the socket
    /// is full.
    pub fn flush(&mut self, sock: &ClientSocket) -> Result<bool, ErrorKind> {
        while self.conn.wants_write() {
            if self.started.is_none() {
                self.started = Some(Instant::now());
            }
            match self.conn.write_tls(&mut SockWriter(sock)) {
                Ok(0) => return Err(ErrorKind::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ErrorKind::from_io(&e)),
            }
        }
        Ok(true)
    }

    /// Reads plaintext into `buf`: what rustls holds already, else one socket read of
    /// ciphertext decrypted. `received` is the socket read that brought new bytes (its
    /// kernel timestamp), when one did. `Ok(0)`: the server closed. `WouldBlock`: nothing yet.
    pub fn read(
        &mut self,
        sock: &ClientSocket,
        buf: &mut [u8],
        cmsg: &mut Vec<u8>,
        received: &mut Option<Received>,
    ) -> Result<usize, ReadError> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(_) => return Err(ReadError::Failed(ErrorKind::Tls)),
            }
            if self.eof {
                return Ok(0);
            }
            let got = match sock.recv(&mut self.cipher, cmsg) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(ReadError::WouldBlock)
                }
                Err(e) => return Err(ReadError::Failed(ErrorKind::from_io(&e))),
            };
            if got.n == 0 {
                self.eof = true;
                return Ok(0);
            }
            *received = Some(got);
            let handshaking = self.conn.is_handshaking();
            let mut data = &self.cipher[..got.n];
            while !data.is_empty() {
                if let Err(e) = self.conn.read_tls(&mut data) {
                    self.error = Some(e.to_string());
                    return Err(ReadError::Failed(ErrorKind::Tls));
                }
                let state = match self.conn.process_new_packets() {
                    Ok(state) => state,
                    Err(e) => {
                        self.error = Some(e.to_string());
                        // Tell the server why (the alert rustls queued), best effort.
                        let _ = self.flush(sock);
                        return Err(ReadError::Failed(ErrorKind::Tls));
                    }
                };
                if state.peer_has_closed() {
                    self.eof = true;
                }
            }
            if handshaking && !self.conn.is_handshaking() {
                self.done_at = Some(got.arrival);
            }
            // The handshake's next flight, the request that waited for it, alerts: out now.
            self.flush_blocking(sock)?;
        }
    }

    /// Flushes from the read path. A handshake flight is a few hundred bytes and the socket
    /// is idle then, so the socket taking only part of it does not happen in practice; if
    /// it does, this waits for room (at most 5 s) rather than teach the event loop to
    /// watch for reading and writing at once.
    fn flush_blocking(&mut self, sock: &ClientSocket) -> Result<(), ReadError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.flush(sock) {
                Ok(true) => return Ok(()),
                Ok(false) if Instant::now() < deadline => sock
                    .wait_writable(Duration::from_millis(100))
                    .map_err(|e| ReadError::Failed(ErrorKind::from_io(&e)))?,
                Ok(false) => return Err(ReadError::Failed(ErrorKind::Timeout)),
                Err(kind) => return Err(ReadError::Failed(kind)),
            }
        }
    }

    /// The handshake, the first time it is seen complete.
    pub fn take_handshake(&mut self) -> Option<Handshake> {
        if self.reported || self.conn.is_handshaking() {
            return None;
        }
        self.reported = true;
        let started = self.started?;
        let done = self.done_at.unwrap_or_else(Instant::now);
        Some(Handshake {
            took: done.saturating_duration_since(started),
            resumed: self.conn.handshake_kind() == Some(HandshakeKind::Resumed),
        })
    }

    /// Says goodbye (close_notify), best effort, before the socket is closed.
    pub fn close(&mut self, sock: &ClientSocket) {
        self.conn.send_close_notify();
        let _ = self.flush(sock);
    }
}

/// A TLS read that returned nothing.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// No bytes yet.
    WouldBlock,
    /// The connection failed.
    Failed(ErrorKind),
}
