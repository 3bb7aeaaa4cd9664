//! Which server certificates the library trusts, as every other SDK does it, and certificate
//! failures in words.
//!
//! webpki decides, with the platform roots plus the certificates of `SSL_CERT_FILE`, with one
//! addition: a server certificate that is byte-identical to a certificate of `SSL_CERT_FILE` is
//! trusted even when it is a CA (`CA:TRUE`, what `openssl req -x509` makes by default), as
//! OpenSSL, Go, Node and .NET trust it. Its host name and validity dates are still checked; the
//! TLS handshake's own signature is checked by webpki as always. A refusal names the reason in
//! words and the fix (which variable or file), instead of rustls' `UnknownIssuer` or
//! `Other(CaUsedAsEndEntity)`.

use std::{fmt, path::PathBuf, sync::Arc};

use rustls::{
    CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};

pub(crate) use crate::env_vars::SSL_CERT_FILE;

/// A rustls client configuration with the ring provider that trusts `roots` as webpki does,
/// plus any server certificate byte-identical to one of `anchors` (the certificates of
/// `cert_file`, the `SSL_CERT_FILE`).
pub(crate) fn client_config(
    roots: RootCertStore,
    anchors: Vec<CertificateDer<'static>>,
    cert_file: Option<PathBuf>,
) -> rustls::ClientConfig {
    client_config_trusting(roots, anchors, Trust::Platform { cert_file })
}

/// Where the trusted certificates come from, for the fix a refusal names.
#[derive(Debug, Clone)]
pub(crate) enum Trust {
    /// The platform's roots plus `SSL_CERT_FILE` (its path, when set).
    Platform {
        /// The `SSL_CERT_FILE`, when set.
        cert_file: Option<PathBuf>,
    },
    /// Only the CA of an identity binding: `variable` (`AZURE_KUBERNETES_CA_FILE` or
    /// `AZURE_KUBERNETES_CA_DATA`) and, for a file, its path.
    BindingCa {
        /// The variable the CA came from.
        variable: &'static str,
        /// The file, for `AZURE_KUBERNETES_CA_FILE`.
        path: Option<PathBuf>,
    },
}

/// Like [`client_config`], with refusals naming `trust` as where the trusted certificates come from.
pub(crate) fn client_config_trusting(
    roots: RootCertStore,
    anchors: Vec<CertificateDer<'static>>,
    trust: Trust,
) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = AnchorVerifier::new(roots, anchors, trust, provider.clone());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth()
}

/// webpki's verifier, plus the byte-identical anchors, with failures in words.
#[derive(Debug)]
pub(crate) struct AnchorVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    anchors: Vec<CertificateDer<'static>>,
    trust: Trust,
    provider: Arc<CryptoProvider>,
}

impl AnchorVerifier {
    fn new(
        roots: RootCertStore,
        anchors: Vec<CertificateDer<'static>>,
        trust: Trust,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        // webpki refuses an empty root store; then only the anchors (none either) are trusted.
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .ok();
        Self {
            webpki,
            anchors,
            trust,
            provider,
        }
    }

    /// The certificate checks for a server certificate that is one of the anchors: its host
    /// name and its validity dates.
    fn verify_anchor(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), Problem> {
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| Problem::Malformed)?;
        cert.verify_is_valid_for_subject_name(server_name)
            .map_err(|e| Problem::Name {
                name: server_name.to_str().into_owned(),
                detail: format!("{e:?}"),
            })?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(end_entity.as_ref()).map_err(|_| Problem::Malformed)?;
        let validity = parsed.validity();
        let now = now.as_secs() as i64;
        if now < validity.not_before.timestamp() {
            return Err(Problem::NotYetValid(validity.not_before.to_string()));
        }
        if now > validity.not_after.timestamp() {
            return Err(Problem::Expired(validity.not_after.to_string()));
        }
        Ok(())
    }

    fn is_anchor(&self, end_entity: &CertificateDer<'_>) -> bool {
        self.anchors.iter().any(|a| a.as_ref() == end_entity.as_ref())
    }

    /// The error rustls reports: the problem in words with the fix. (`Error::Other`, because
    /// rustls prints a `CertificateError::Other` with `Debug`, which is how users met
    /// `invalid peer certificate: Other(OtherErr)`.)
    fn refusal(&self, problem: Problem) -> rustls::Error {
        rustls::Error::Other(OtherError(Arc::new(Refusal {
            problem,
            trust: self.trust.clone(),
        })))
    }
}

impl ServerCertVerifier for AnchorVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let webpki = match &self.webpki {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            None => Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        };
        match webpki {
            Ok(verified) => Ok(verified),
            Err(_) if self.is_anchor(end_entity) => self
                .verify_anchor(end_entity, server_name, now)
                .map(|()| ServerCertVerified::assertion())
                .map_err(|p| self.refusal(p)),
            Err(e) => Err(self.refusal(Problem::from_rustls(&e, server_name))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why a server certificate was refused.
#[derive(Debug, Clone)]
enum Problem {
    /// Not issued by a trusted CA.
    UnknownIssuer,
    /// A CA certificate presented as the server's own, not byte-identical to a trusted one.
    CaAsServer,
    /// Not valid for the host name.
    Name { name: String, detail: String },
    /// Past its validity.
    Expired(String),
    /// Before its validity.
    NotYetValid(String),
    /// Not a parsable certificate.
    Malformed,
    /// Its signature does not verify with the trusted CA of its issuer's name: another CA of the
    /// same name issued it (a rotated CA, a second test CA).
    OtherIssuer,
    /// Anything else, in rustls' words.
    Other(String),
}

impl Problem {
    fn from_rustls(error: &rustls::Error, server_name: &ServerName<'_>) -> Self {
        let rustls::Error::InvalidCertificate(e) = error else {
            return Self::Other(error.to_string());
        };
        match e {
            CertificateError::UnknownIssuer => Self::UnknownIssuer,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Self::Name {
                    name: server_name.to_str().into_owned(),
                    detail: e.to_string(),
                }
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                Self::Expired(e.to_string())
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Self::NotYetValid(e.to_string())
            }
            CertificateError::BadSignature => Self::OtherIssuer,
            CertificateError::BadEncoding => Self::Malformed,
            CertificateError::Other(other) if format!("{other}").contains("CaUsedAsEndEntity") => {
                Self::CaAsServer
            }
            other => Self::Other(other.to_string()),
        }
    }
}

/// A refusal as rustls carries it: the problem and the fix.
#[derive(Debug)]
struct Refusal {
    problem: Problem,
    trust: Trust,
}

impl std::error::Error for Refusal {}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (trusted, bundle) = match &self.trust {
            Trust::Platform { cert_file } => (
                format!("the platform's roots and {SSL_CERT_FILE}"),
                match cert_file {
                    Some(path) => format!("the PEM bundle {SSL_CERT_FILE}={}", path.display()),
                    None => format!("a PEM bundle named by {SSL_CERT_FILE} (it is not set)"),
                },
            ),
            Trust::BindingCa { variable, path } => (
                format!("only the identity binding's CA, from {variable}"),
                match path {
                    Some(path) => format!("{variable}={}", path.display()),
                    None => variable.to_string(),
                },
            ),
        };
        let name_fix = match &self.trust {
            Trust::Platform { .. } => "use a host name the certificate names in the endpoint's URL",
            Trust::BindingCa { .. } => {
                "set AZURE_KUBERNETES_SNI_NAME to a name the token proxy's certificate names"
            }
        };
        match &self.problem {
            Problem::UnknownIssuer => write!(
                f,
                "the server's certificate is not issued by a trusted CA ({trusted}); add the CA that \
                 issued it, or the server's own certificate, to {bundle}"
            ),
            Problem::CaAsServer => write!(
                f,
                "the server presents a CA certificate (CA:TRUE) as its own, and it is not one of the \
                 trusted certificates ({trusted}); put this exact certificate in {bundle}, or give the \
                 server a certificate issued by a CA"
            ),
            Problem::Name { name, detail } => write!(
                f,
                "the server's certificate is not valid for the host name {name:?} ({detail}); \
                 {name_fix}, or reissue the certificate with {name:?} in its subjectAltName"
            ),
            Problem::Expired(detail) => write!(
                f,
                "the server's certificate has expired ({detail}); renew it, or check this machine's clock"
            ),
            Problem::NotYetValid(detail) => write!(
                f,
                "the server's certificate is not valid yet ({detail}); check this machine's clock"
            ),
            Problem::OtherIssuer => write!(
                f,
                "the server's certificate names a trusted CA as its issuer, but its signature does not \
                 verify with that CA's key: another CA of the same name issued it (a rotated or \
                 regenerated CA); add the CA that really issued it to {bundle}"
            ),
            Problem::Malformed => write!(f, "the server's certificate is malformed; reissue it"),
            Problem::Other(detail) => write!(
                f,
                "the server's certificate is refused ({detail}); the trusted CAs are {trusted}, from {bundle}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::{Duration, OffsetDateTime};

    use crate::{
        http::{describe, root_store},
        test_server::{Reply, TestServer, self_signed},
    };

    /// A client trusting the platform roots and the PEM `bundle` (as `SSL_CERT_FILE`).
    fn client(bundle: &std::path::Path) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_backend_preconfigured(root_store(Some(bundle)).unwrap().client_config())
            .build()
            .unwrap()
    }

    async fn fetch(client: &reqwest::Client, url: String) -> Result<u16, String> {
        client
            .get(url)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| describe(&e))
    }

    /// Issue 17 item 2: what `openssl req -x509` makes (self-signed, CA:TRUE), put in
    /// SSL_CERT_FILE, is trusted as OpenSSL, Go, Node and .NET trust it; rustls alone refused it
    /// as a CA used as an end entity.
    #[tokio::test]
    async fn a_self_signed_ca_certificate_in_ssl_cert_file_is_trusted() {
        let now = OffsetDateTime::now_utc();
        let dir = tempfile::tempdir().unwrap();
        for ca in [true, false] {
            let (cert, key, pem) = self_signed(
                &["127.0.0.1", "localhost"],
                ca,
                now - Duration::days(1),
                now + Duration::days(30),
            );
            let bundle = dir.path().join(format!("bundle-{ca}.pem"));
            std::fs::write(&bundle, &pem).unwrap();
            let server = TestServer::scripted_tls_with([Reply::token("t", 3599)], vec![cert], key).await;
            assert_eq!(fetch(&client(&bundle), server.url()).await, Ok(200), "CA:{ca}");
        }
    }

    /// Still checked for an anchor: the host name and the validity dates; and a certificate
    /// that is not in the bundle is refused in words naming SSL_CERT_FILE.
    #[tokio::test]
    async fn refusals_say_why_and_name_the_fix() {
        let now = OffsetDateTime::now_utc();
        let dir = tempfile::tempdir().unwrap();
        let valid = (now - Duration::days(1), now + Duration::days(30));

        // Only valid for 127.0.0.1: asked as localhost.
        let (cert, key, pem) = self_signed(&["127.0.0.1"], true, valid.0, valid.1);
        let bundle = dir.path().join("name.pem");
        std::fs::write(&bundle, &pem).unwrap();
        let server = TestServer::scripted_tls_with([], vec![cert], key).await;
        let url = format!("https://localhost:{}/", server.addr().port());
        let e = fetch(&client(&bundle), url).await.unwrap_err();
        assert!(
            e.contains("not valid for the host name \"localhost\"") && e.contains("subjectAltName"),
            "{e}"
        );

        // Expired.
        let (cert, key, pem) = self_signed(
            &["127.0.0.1"],
            true,
            now - Duration::days(30),
            now - Duration::days(1),
        );
        let bundle = dir.path().join("expired.pem");
        std::fs::write(&bundle, &pem).unwrap();
        let server = TestServer::scripted_tls_with([], vec![cert], key).await;
        let e = fetch(&client(&bundle), server.url()).await.unwrap_err();
        assert!(e.contains("has expired"), "{e}");

        // Not yet valid.
        let (cert, key, pem) = self_signed(
            &["127.0.0.1"],
            true,
            now + Duration::days(1),
            now + Duration::days(30),
        );
        let bundle = dir.path().join("future.pem");
        std::fs::write(&bundle, &pem).unwrap();
        let server = TestServer::scripted_tls_with([], vec![cert], key).await;
        let e = fetch(&client(&bundle), server.url()).await.unwrap_err();
        assert!(e.contains("not valid yet"), "{e}");

        // A CA certificate that is not the one in the bundle, and a leaf of an unknown CA.
        let (_, _, other_pem) = self_signed(&["127.0.0.1"], true, valid.0, valid.1);
        let bundle = dir.path().join("other.pem");
        std::fs::write(&bundle, &other_pem).unwrap();
        let (cert, key, _) = self_signed(&["127.0.0.1"], true, valid.0, valid.1);
        let server = TestServer::scripted_tls_with([], vec![cert], key).await;
        let e = fetch(&client(&bundle), server.url()).await.unwrap_err();
        assert!(
            e.contains("CA:TRUE") && e.contains(&format!("SSL_CERT_FILE={}", bundle.display())),
            "{e}"
        );
        let (unknown_ca_server, _) = TestServer::scripted_tls([]).await;
        let e = fetch(&client(&bundle), unknown_ca_server.url())
            .await
            .unwrap_err();
        assert!(
            e.contains("not issued by a trusted CA") && e.contains("SSL_CERT_FILE"),
            "{e}"
        );
        assert!(!e.contains("OtherErr") && !e.contains("UnknownIssuer"), "{e}");
    }
}
