//! Certificates and keys of the test bed, generated fresh for every test binary: one CA that signs
//! the API server's serving certificate, the admin client certificate and any test server
//! (webhook, Entra stand-in); and the RSA key the API server signs service-account tokens with.

use std::net::{IpAddr, Ipv4Addr};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

/// A certificate and its private key, PEM-encoded.
pub struct CertAndKey {
    /// The certificate.
    pub cert_pem: String,
    /// The PKCS#8 private key.
    pub key_pem: String,
}

/// The test bed's certificate authority.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    /// A new CA named `azure-wi e2e CA`.
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "azure-wi e2e CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert");
        Pki { ca }
    }

    /// The CA certificate, PEM-encoded (what clients trust and what goes into a `caBundle`).
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A serving certificate for `127.0.0.1` and `localhost`.
    pub fn server_cert(&self, name: &str) -> CertAndKey {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("server params");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A serving certificate for these DNS names and IP addresses.
    pub fn server_cert_for(&self, name: &str, dns: &[&str], ips: &[IpAddr]) -> CertAndKey {
        let mut params = CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>())
            .expect("server params");
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate; the API server maps CN to the user and O to its groups.
    pub fn client_cert(&self, user: &str, group: &str) -> CertAndKey {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, user);
        params.distinguished_name.push(DnType::OrganizationName, group);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> CertAndKey {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("sign leaf certificate");
        CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A 2048-bit RSA key for the API server's service-account tokens (RS256, as AKS issues them):
/// `(private key PKCS#8 PEM, public key SPKI PEM)`.
pub fn service_account_signing_key() -> (String, String) {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("generate RSA key");
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .expect("encode RSA key")
        .to_string();
    let public = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("encode RSA public key");
    (private, public)
}
