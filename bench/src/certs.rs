//! The run's own TLS certificate: made fresh per run with rcgen (self-signed, ECDSA P-256,
//! for `localhost` and `127.0.0.1`), written into the run's scratch directory as PEM files
//! every TLS-terminating proxy reads, and trusted by the load generator alone.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The name the certificate is made for and the load generator checks.
pub const SERVER_NAME: &str = "localhost";

/// The run's certificate files.
#[derive(Debug, Clone)]
pub struct RunCert {
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8).
    pub key: PathBuf,
    /// Certificate and key in one file (what HAProxy's `crt` reads).
    pub pem: PathBuf,
    /// The certificate's PEM text, for the load generator's trust store.
    pub cert_pem: String,
}

impl RunCert {
    /// Makes a certificate and writes its files into `dir/tls`.
    pub fn make(dir: &Path) -> anyhow::Result<RunCert> {
        let made = rcgen::generate_simple_self_signed(vec![
            SERVER_NAME.to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .context("cannot make the run's TLS certificate")?;
        let dir = dir.join("tls");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let cert_pem = made.cert.pem();
        let key_pem = made.key_pair.serialize_pem();
        let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path)
        };
        Ok(RunCert {
            cert: write("cert.pem", &cert_pem)?,
            key: write("key.pem", &key_pem)?,
            pem: write("cert-and-key.pem", &format!("{cert_pem}{key_pem}"))?,
            cert_pem,
        })
    }

    /// The load generator's TLS settings: trust this certificate only; TLS 1.3 with
    /// `TLS_AES_128_GCM_SHA256` ([`loadgen::ClientTls::new`]); sessions resumed with
    /// tickets when `resumption`.
    pub fn client(&self, resumption: bool) -> anyhow::Result<loadgen::ClientTls> {
        loadgen::ClientTls::new(self.cert_pem.as_bytes(), SERVER_NAME, resumption)
            .context("cannot set up the load generator's TLS")
    }
}
