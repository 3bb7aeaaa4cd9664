//! Certificates for local benchmark servers, and the client TLS configuration trusting them.

use std::path::Path;

use anyhow::Context;
use rustls::pki_types::{CertificateDer, pem::PemObject};

/// Writes a CA (`ca.crt`) and a serving certificate (`tls.crt`/`tls.key`) for `name` and
/// `127.0.0.1` into `dir`, and `leaves` more serving certificates from the same CA
/// (`leaf-<i>.crt`/`leaf-<i>.key`), to swap in during a run.
pub fn write_cert(dir: &Path, name: &str, leaves: usize) -> anyhow::Result<()> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "azure-wi loadgen CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf = |file: &str| -> anyhow::Result<()> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![name.to_owned()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = params.signed_by(&key, &issuer)?;
        std::fs::write(dir.join(format!("{file}.crt")), cert.pem())?;
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem())?;
        Ok(())
    };
    std::fs::write(dir.join("ca.crt"), ca_cert.pem())?;
    leaf("tls")?;
    for i in 0..leaves {
        leaf(&format!("leaf-{i}"))?;
    }
    println!(
        "wrote {}/{{ca.crt,tls.crt,tls.key}} and {leaves} more leaves for {name}",
        dir.display()
    );
    Ok(())
}

/// A client configuration trusting the CA certificates in the PEM file `ca`, offering HTTP/1.1.
pub fn client_config(ca: &Path) -> anyhow::Result<rustls::ClientConfig> {
    let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.with_context(|| format!("bad certificate in {}", ca.display()))?)?;
    }
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use rustls::client::danger::ServerCertVerifier;

    use super::*;

    #[test]
    fn leaves_are_distinct_certificates_from_one_ca() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = std::env::temp_dir().join(format!("loadgen-cert-test-{}", std::process::id()));
        write_cert(&dir, "example.test", 2).unwrap();
        let tls = std::fs::read(dir.join("tls.crt")).unwrap();
        let first = std::fs::read(dir.join("leaf-0.crt")).unwrap();
        let second = std::fs::read(dir.join("leaf-1.crt")).unwrap();
        assert!(dir.join("leaf-1.key").exists());
        assert!(!dir.join("leaf-2.crt").exists());
        assert_ne!(first, second);
        assert_ne!(tls, first);
        // Every leaf verifies against the one CA, and `client_config` reads it.
        client_config(&dir.join("ca.crt")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(dir.join("ca.crt")).unwrap())
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder(std::sync::Arc::new(roots))
            .build()
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("example.test").unwrap();
        for pem in [&tls, &first, &second] {
            let leaf = CertificateDer::from_pem_slice(pem).unwrap();
            verifier
                .verify_server_cert(&leaf, &[], &name, &[], rustls::pki_types::UnixTime::now())
                .unwrap();
        }
        let other = rustls::pki_types::ServerName::try_from("other.test").unwrap();
        let leaf = CertificateDer::from_pem_slice(&first).unwrap();
        assert!(
            verifier
                .verify_server_cert(&leaf, &[], &other, &[], rustls::pki_types::UnixTime::now())
                .is_err()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
