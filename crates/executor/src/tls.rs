//! TLS for the executor's listener (rustls, PEM files). The certificate is
//! looked up at each handshake, so a reload (SIGHUP, or the files changing)
//! takes effect for new connections while open ones go on undisturbed.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::Error;

/// The certificate chain and key files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificate in force, swapped whole on reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|c| c.clone())
    }
}

/// The listener's TLS: its configuration and the files it reloads from.
pub(crate) struct Tls {
    pub files: TlsFiles,
    current: Arc<Current>,
    pub config: Arc<ServerConfig>,
}

fn read(files: &TlsFiles) -> Result<CertifiedKey, Error> {
    let bad = |path: &PathBuf, reason: String| Error::Tls {
        path: path.clone(),
        reason,
    };
    super::secrets::private(&files.key)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| bad(&files.cert, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(bad(&files.cert, "holds no certificate".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad(&files.key, format!("not a PEM private key: {e}")))?;
    let signer = ring::sign::any_supported_type(&key).map_err(|e| bad(&files.key, e.to_string()))?;
    let certified = CertifiedKey::new(certs, signer);
    certified.keys_match().map_err(|e| {
        bad(
            &files.cert,
            format!("does not match the key in {}: {e}", files.key.display()),
        )
    })?;
    Ok(certified)
}

impl Tls {
    pub(crate) fn load(files: TlsFiles) -> Result<Tls, Error> {
        let current = Arc::new(Current(RwLock::new(Arc::new(read(&files)?))));
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls {
                path: files.cert.clone(),
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            files,
            current,
            config: Arc::new(config),
        })
    }

    /// Reads the files again; on failure the certificate in force stays.
    pub(crate) fn reload(&self) -> Result<(), Error> {
        let fresh = Arc::new(read(&self.files)?);
        if let Ok(mut slot) = self.current.0.write() {
            *slot = fresh;
        }
        Ok(())
    }
}
