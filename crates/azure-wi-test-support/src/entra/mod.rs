//! The Microsoft Entra stand-in (the one part of the chain that cannot run offline), used by the
//! end-to-end tests, `examples/demo.rs`, the proxy interop step and the proxy benchmarks (through
//! the `azwi-stand-in entra` binary). It answers Entra's routes:
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: the client-credentials exchange with a federated client
//!   assertion, checked as Entra checks it: the tenant, `grant_type=client_credentials`, a
//!   `client_id`, a `.default` scope, the JWT-bearer `client_assertion_type`, and the
//!   `client_assertion` against the [`Trust`] it was started with: either federated identity
//!   credentials (the app, the issuer, the RS256 signature against a key of the issuer's JWKS found
//!   through its discovery document, the validity period, subject and audience), or one assertion
//!   byte for byte (a federated token file's content, when there is no issuer to fetch keys from).
//!   Refusals are Entra's JSON with its AADSTS codes; an exchange answers a JWT-shaped access token
//!   about the size of a real one whose claims name the app (`appid`), the resource (`aud`), the
//!   tenant (`tid`) and the exchange (`uti`);
//! - `GET /common/discovery/instance` and `GET /{tenant}/v2.0/.well-known/openid-configuration`
//!   (MSAL's instance and tenant discovery);
//! - `GET /readyz` and `GET /counts` (JSON counters: tunnels, discoveries, exchanges, refusals).
//!
//! In-process, a test can also hold token requests ([`Entra::hold`]) and make them fail as Entra
//! does when it is down ([`Entra::set_failing`]).
//!
//! It serves HTTPS directly ([`Entra::start_https`]), or plain HTTP on loopback that is also an
//! HTTPS proxy ([`Entra::start_plain`]): a `CONNECT login.microsoftonline.com:443` is answered 200
//! and the tunnel served with TLS, so that a client configured for the public cloud (MSAL's
//! instance discovery always asks `login.microsoftonline.com`) works offline unchanged.

mod exchange;
mod server;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use serde_json::Value;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};

/// What the stand-in accepts as a client assertion.
#[derive(Clone)]
pub enum Trust {
    /// The federated identity credentials of the app registrations: an assertion is verified
    /// against its issuer's JWKS, fetched over HTTPS trusting `issuer_ca_pem`.
    Federated {
        /// The credentials (their tenants are the tenants that exist).
        credentials: Vec<FederatedCredential>,
        /// The CA (PEM) of the issuers' discovery and JWKS endpoints.
        issuer_ca_pem: String,
    },
    /// One tenant, and one assertion compared byte for byte (a federated token file's content).
    Assertion {
        /// The only tenant that exists.
        tenant: String,
        /// The only assertion accepted.
        assertion: String,
    },
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trust::Federated { credentials, .. } => f
                .debug_struct("Federated")
                .field("credentials", credentials)
                .finish_non_exhaustive(),
            Trust::Assertion { tenant, .. } => f
                .debug_struct("Assertion")
                .field("tenant", tenant)
                .field("assertion", &"<redacted>")
                .finish(),
        }
    }
}

impl Trust {
    /// Whether `tenant` exists.
    fn has_tenant(&self, tenant: &str) -> bool {
        match self {
            Trust::Federated { credentials, .. } => credentials.iter().any(|c| c.tenant_id == tenant),
            Trust::Assertion { tenant: t, .. } => t == tenant,
        }
    }
}

/// A federated identity credential of an app registration: Entra accepts an assertion for
/// `client_id` in `tenant_id` whose issuer, subject and audience equal these.
#[derive(Clone, Debug)]
pub struct FederatedCredential {
    /// The directory (tenant) id.
    pub tenant_id: String,
    /// The application (client) id.
    pub client_id: String,
    /// The token issuer (the cluster's service-account issuer URL).
    pub issuer: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub subject: String,
    /// Normally `api://AzureADTokenExchange`.
    pub audience: String,
}

impl FederatedCredential {
    /// The credential of app `client_id` in `tenant_id` for the ServiceAccount `namespace`/`name`
    /// of the cluster whose issuer is `issuer`, with `audience`.
    pub fn for_service_account(
        tenant_id: &str,
        client_id: &str,
        issuer: &str,
        (namespace, name): (&str, &str),
        audience: &str,
    ) -> Self {
        Self {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            issuer: issuer.into(),
            subject: format!("system:serviceaccount:{namespace}:{name}"),
            audience: audience.into(),
        }
    }
}

/// One access token handed out.
#[derive(Clone)]
pub struct Issued {
    /// The app it was issued to.
    pub client_id: String,
    /// The requested scope.
    pub scope: String,
    /// The token itself.
    pub access_token: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("access_token", &"<redacted>")
            .finish()
    }
}

/// The running stand-in; stops on drop.
pub struct Entra {
    /// The authority host to configure clients with (`AZURE_AUTHORITY_HOST`), e.g.
    /// `https://127.0.0.1:4321`, or `http://127.0.0.1:4321` for [`Entra::start_plain`].
    pub authority: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    state: Arc<server::State>,
    server: JoinHandle<()>,
}

impl Entra {
    /// Serves HTTPS on `ip` (port chosen by the system) with the certificate `cert_pem`/`key_pem`.
    pub async fn start_https(trust: Trust, ip: IpAddr, cert_pem: &str, key_pem: &str) -> Entra {
        let state = server::State::new(trust, None);
        let listener = TcpListener::bind((ip, 0)).await.expect("bind the Entra stand-in");
        let addr = listener.local_addr().expect("addr");
        let acceptor = tls_acceptor(cert_pem, key_pem);
        let server = tokio::spawn(server::serve_https(listener, acceptor, state.clone()));
        Entra {
            authority: format!("https://{addr}"),
            addr,
            state,
            server,
        }
    }

    /// Serves plain HTTP on the loopback address `addr` (port 0: chosen by the system). With
    /// `tunnel` (certificate and key PEM, e.g. for `login.microsoftonline.com`) it is also an
    /// HTTPS proxy: a `CONNECT` is answered 200 and the tunnel served with that certificate.
    pub async fn start_plain(
        trust: Trust,
        addr: SocketAddr,
        tunnel: Option<(&str, &str)>,
    ) -> std::io::Result<Entra> {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the Entra stand-in listens on loopback only, not {addr}"),
            ));
        }
        let acceptor = tunnel.map(|(cert, key)| tls_acceptor(cert, key));
        let state = server::State::new(trust, acceptor);
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(server::serve_plain(listener, state.clone()));
        Ok(Entra {
            authority: format!("http://{addr}"),
            addr,
            state,
            server,
        })
    }

    /// The access tokens issued so far.
    pub fn issued(&self) -> Vec<Issued> {
        self.state.issued.lock().expect("issued").clone()
    }

    /// The refusals so far (`AADSTS<code>: <text>`).
    pub fn refused(&self) -> Vec<String> {
        self.state.refused.lock().expect("refused").clone()
    }

    /// The counters `GET /counts` answers.
    pub fn counts(&self) -> Value {
        self.state.counts.json()
    }

    /// Stops keeping the tokens it issues (for [`Entra::issued`]), e.g. for a test that measures
    /// its own process's memory; [`Entra::exchanges`] still counts them.
    pub fn forget_issued(&self) {
        self.state
            .keep_issued
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many access tokens it issued.
    pub fn exchanges(&self) -> u64 {
        self.state
            .counts
            .exchanges
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Holds token requests (they wait, once arrived) until [`Entra::release`].
    pub fn hold(&self) {
        self.state.held.send_replace(true);
    }

    /// Lets held token requests (and later ones) through.
    pub fn release(&self) {
        self.state.held.send_replace(false);
    }

    /// Completes when a token request arrives; create it before sending the request.
    pub fn arrived(&self) -> tokio::sync::futures::Notified<'_> {
        self.state.arrived.notified()
    }

    /// Makes every token request fail as Entra does when it is down (503, AADSTS90033), or
    /// succeed again.
    pub fn set_failing(&self, failing: bool) {
        self.state
            .failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Entra {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn tls_acceptor(cert_pem: &str, key_pem: &str) -> TlsAcceptor {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate PEM");
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            certs,
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM"),
        )
        .expect("server TLS config");
    TlsAcceptor::from(Arc::new(config))
}
