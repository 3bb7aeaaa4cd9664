//! The Microsoft Entra stand-in ([`crate::entra`]) on the test bed: serving HTTPS with a
//! certificate from the test bed's CA (clients trust it through `SSL_CERT_FILE`) and trusting
//! federated credentials whose issuer is the test bed's API server (its discovery document and
//! JWKS fetched anonymously, trusting the same CA).

use std::net::{IpAddr, Ipv4Addr};

use crate::entra::Trust;
pub use crate::entra::{Entra, FederatedCredential, Issued};

use super::pki::{CertAndKey, Pki};

impl Entra {
    /// Starts the stand-in on 127.0.0.1 with a serving certificate from `pki`, trusting `pki`'s CA
    /// when it fetches an issuer's discovery document and keys.
    pub async fn start(pki: &Pki, credentials: Vec<FederatedCredential>) -> Entra {
        Entra::start_on(pki, credentials, IpAddr::V4(Ipv4Addr::LOCALHOST)).await
    }

    /// [`Entra::start`] on another address of this machine (e.g. the host side of the node test
    /// bed's veth pair, which pods reach).
    pub async fn start_on(pki: &Pki, credentials: Vec<FederatedCredential>, ip: IpAddr) -> Entra {
        let cert = pki.server_cert_for("entra-stand-in", &["localhost"], &[ip]);
        Entra::start_with_cert(pki, credentials, ip, cert).await
    }

    /// [`Entra::start`] with a certificate naming only the DNS names `dns` (not its address): a
    /// client reaches it only by sending one of them as the TLS server name (an identity binding's
    /// token proxy, `AZURE_KUBERNETES_SNI_NAME`).
    pub async fn start_for_names(pki: &Pki, credentials: Vec<FederatedCredential>, dns: &[&str]) -> Entra {
        let cert = pki.server_cert_for("token-proxy-stand-in", dns, &[]);
        Entra::start_with_cert(pki, credentials, IpAddr::V4(Ipv4Addr::LOCALHOST), cert).await
    }

    async fn start_with_cert(
        pki: &Pki,
        credentials: Vec<FederatedCredential>,
        ip: IpAddr,
        cert: CertAndKey,
    ) -> Entra {
        let trust = Trust::Federated {
            credentials,
            issuer_ca_pem: pki.ca_pem(),
        };
        Entra::start_https(trust, ip, &cert.cert_pem, &cert.key_pem).await
    }
}
