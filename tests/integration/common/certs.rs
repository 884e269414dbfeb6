//! Test certificates (rcgen): a private CA and server certificates it signs,
//! written as PEM files for dns64d's `cert`/`key` and the clients' CA file.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A private certificate authority in a temporary directory.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    /// The CA certificate (PEM), for clients' `--cacert` / `+tls-ca`.
    pub ca_pem: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and its key, as files.
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServerCert {
    /// The certificate for a rustls server (the in-process upstreams).
    pub fn resolver(&self) -> std::sync::Arc<dyn rustls::server::ResolvesServerCert> {
        use rustls_pki_types::pem::PemObject;
        let chain = rustls_pki_types::CertificateDer::pem_file_iter(&self.cert)
            .expect("certificate file")
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate PEM");
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&self.key).expect("key PEM");
        #[allow(deprecated)] // ring, as dns64d and hickory's tls-ring use
        let provider = rustls::crypto::ring::default_provider();
        let certified =
            rustls::sign::CertifiedKey::from_der(chain, key, &provider).expect("certified key");
        std::sync::Arc::new(rustls::sign::SingleCertAndKey::from(certified))
    }
}

/// The name the test certificates are issued for (besides 127.0.0.1 and ::1).
pub const TLS_NAME: &str = "dns.test";

impl TestCa {
    /// A new CA; `label` names its files (several CAs may share a test).
    pub fn new(label: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("dns64d test CA {label}"));
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca_pem = dir.path().join(format!("{label}-ca.pem"));
        std::fs::write(&ca_pem, cert.pem()).expect("write CA");
        Self {
            dir,
            ca_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid
    /// now, written as `<file>-cert.pem` and `<file>-key.pem`.
    pub fn issue(&self, file: &str, names: &[&str]) -> ServerCert {
        self.issue_with(file, names, |_| {})
    }

    /// A server certificate that expired in 2020.
    pub fn issue_expired(&self, file: &str, names: &[&str]) -> ServerCert {
        self.issue_with(file, names, |params| {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        })
    }

    fn issue_with(
        &self,
        file: &str,
        names: &[&str],
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> ServerCert {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        adjust(&mut params);
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let paths = ServerCert {
            cert: self.dir.path().join(format!("{file}-cert.pem")),
            key: self.dir.path().join(format!("{file}-key.pem")),
        };
        write_atomically(&paths.cert, &cert.pem());
        write_atomically(&paths.key, &key.serialize_pem());
        paths
    }
}

/// Replaces a file in one step, so a reload never reads half of it.
fn write_atomically(path: &Path, contents: &str) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, contents).expect("write PEM");
    std::fs::rename(&partial, path).expect("rename PEM");
}
