//! TLS certificates for the encrypted listeners (DoT, DoH, DoQ): loading a PEM
//! certificate chain and private key, a certificate that can be replaced
//! while serving (SIGHUP reload), and the rustls server configuration
//! (TLS 1.2 and 1.3 only, ring as the crypto provider, one ALPN protocol).
//!
//! Reading files is all this module does; sockets and handshakes are the
//! listeners' business (`tls_listener`, `https_listener`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The certificate file cannot be read or is not PEM.
    #[error("cannot read the certificate file {path}: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file cannot be read, is not PEM, or holds no usable key.
    #[error("cannot read the private key file {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key does not belong to the certificate.
    #[error("the private key in {key} does not match the certificate in {certificate}: {reason}")]
    Mismatch {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
    /// rustls refused the server configuration.
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The TLS configuration has no cipher suite QUIC can start with.
    #[error("cannot set up TLS for QUIC: {0}")]
    Quic(quinn::crypto::rustls::NoInitialCipherSuite),
}

/// The crypto provider of every TLS connection dns64d makes or accepts:
/// ring, as hickory's `tls-ring` transports use (rustls deprecated it in
/// 0.23.48 only for lacking post-quantum key exchange; aws-lc-rs would add
/// a C and CMake build to every build and to the Windows cross-build).
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads a PEM certificate chain (leaf first) and its PEM private key
/// (PKCS #8, PKCS #1 or SEC1), and checks that they belong together.
pub(crate) fn load(certificate: &Path, key: &Path) -> Result<Arc<CertifiedKey>, CertificateError> {
    let certificate_error = |reason: String| CertificateError::Certificate {
        path: certificate.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(certificate)
        .map_err(|error| certificate_error(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| certificate_error(error.to_string()))?;
    if chain.is_empty() {
        return Err(certificate_error("no CERTIFICATE block in the file".into()));
    }
    let key_error = |reason: String| CertificateError::Key {
        path: key.to_path_buf(),
        reason,
    };
    let private_key =
        PrivateKeyDer::from_pem_file(key).map_err(|error| key_error(error.to_string()))?;
    let signing_key = provider()
        .key_provider
        .load_private_key(private_key)
        .map_err(|error| key_error(error.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified
        .keys_match()
        .map_err(|error| CertificateError::Mismatch {
            certificate: certificate.to_path_buf(),
            key: key.to_path_buf(),
            reason: error.to_string(),
        })?;
    Ok(Arc::new(certified))
}

/// A listener's certificate, replaceable while serving: handshakes after
/// [`replace`](Self::replace) use the new one, open connections keep theirs.
#[derive(Debug)]
pub(crate) struct ReloadableCertificate(RwLock<Arc<CertifiedKey>>);

impl ReloadableCertificate {
    /// A slot holding `certified`.
    pub(crate) fn new(certified: Arc<CertifiedKey>) -> Self {
        Self(RwLock::new(certified))
    }

    /// Replaces the certificate.
    pub(crate) fn replace(&self, certified: Arc<CertifiedKey>) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = certified;
    }

    fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

impl ResolvesServerCert for ReloadableCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls server configuration of one listener: TLS 1.2 and 1.3 only
/// (RFC 8310 §5: no older versions), no client certificates, the
/// certificate from `certificate`, and `alpn` as the one application
/// protocol (`dot` for DoT, RFC 7858 §3.2 / RFC 9461; `h2` for DoH,
/// RFC 8484 §5.2). A client offering other protocols only is refused; one
/// offering none is served.
pub(crate) fn server_config(
    certificate: Arc<ReloadableCertificate>,
    alpn: &[u8],
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// The rustls server configuration of a DoQ listener: as
/// [`server_config`], but TLS 1.3 only, as QUIC requires (RFC 9001 §4.2).
pub(crate) fn quic_server_config(
    certificate: Arc<ReloadableCertificate>,
    alpn: &[u8],
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// The CA certificates of a PEM file (`upstream.ca_file`).
pub(crate) fn load_roots(path: &Path) -> Result<rustls::RootCertStore, CertificateError> {
    let error = |reason: String| CertificateError::Certificate {
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for certificate in
        CertificateDer::pem_file_iter(path).map_err(|reason| error(reason.to_string()))?
    {
        let certificate = certificate.map_err(|reason| error(reason.to_string()))?;
        roots
            .add(certificate)
            .map_err(|reason| error(reason.to_string()))?;
    }
    if roots.is_empty() {
        return Err(error("no CERTIFICATE block in the file".into()));
    }
    Ok(roots)
}

/// The system's CA certificates (on Linux the distribution's bundle, such as
/// `/etc/ssl/certs/ca-certificates.crt`); unreadable ones are logged and skipped.
pub(crate) fn system_roots() -> rustls::RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "cannot read a system CA certificate");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 || added == 0 {
        tracing::warn!(
            added,
            ignored,
            "system CA certificates: some unusable or none found"
        );
    }
    roots
}

/// The rustls client configuration for encrypted upstreams: TLS 1.2 and
/// 1.3, server certificates verified against `roots`, `alpn` offered.
pub(crate) fn client_config(
    roots: Arc<rustls::RootCertStore>,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(directory: &Path, name: &str, contents: &str) -> PathBuf {
        let path = directory.join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }

    #[test]
    fn load_names_the_file_that_is_wrong() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let issued = rcgen::generate_simple_self_signed(vec!["dns.test".into()]).expect("rcgen");
        let other = rcgen::generate_simple_self_signed(vec!["dns.test".into()]).expect("rcgen");
        let certificate = write(directory.path(), "cert.pem", &issued.cert.pem());
        let key = write(
            directory.path(),
            "key.pem",
            &issued.signing_key.serialize_pem(),
        );
        let other_key = write(
            directory.path(),
            "other-key.pem",
            &other.signing_key.serialize_pem(),
        );
        let garbage = write(directory.path(), "garbage.pem", "not a certificate\n");
        let missing = directory.path().join("missing.pem");

        assert!(load(&certificate, &key).is_ok());
        let cases: [(&str, &Path, &Path, &str); 5] = [
            ("missing certificate", &missing, &key, "missing.pem"),
            ("certificate without PEM", &garbage, &key, "garbage.pem"),
            ("missing key", &certificate, &missing, "missing.pem"),
            ("key without PEM", &certificate, &garbage, "garbage.pem"),
            (
                "key of another certificate",
                &certificate,
                &other_key,
                "other-key.pem",
            ),
        ];
        for (case, certificate, key, named) in cases {
            let error = load(certificate, key).expect_err(case).to_string();
            assert!(error.contains(named), "{case}: {error}");
        }
    }
}
