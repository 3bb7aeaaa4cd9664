//! The IMDS- and App Service-compatible token proxy.
//!
//! Programs that only know managed identity ask the proxy, on their pod's loopback, for tokens;
//! the proxy gets them with the pod's workload identity (a [`TokenCredential`] per client id and
//! tenant, built by a [`CredentialFactory`]) and answers in the protocol that was asked:
//!
//! - IMDS: `GET /metadata/identity/oauth2/token?api-version=..&resource=..[&client_id=..]` with
//!   `Metadata: true` (reached through the iptables redirect of 169.254.169.254, or
//!   `AZURE_POD_IDENTITY_AUTHORITY_HOST`);
//! - App Service (identity-endpoint mode, [`ProxyConfig::identity_header`] set):
//!   `GET /msi/token?api-version=2019-08-01&resource=..[&client_id=..]` with
//!   `X-IDENTITY-HEADER` (reached through `IDENTITY_ENDPOINT`, no privileges needed).
//!
//! Other GET requests under `/metadata/` go to the real IMDS (instance metadata); everything
//! else is refused. See `docs/proxy.md` for the threat model.
//!
//! [`TokenCredential`]: azure_wi_identity::TokenCredential

pub(crate) mod app_service;
mod config;
mod credentials;
mod error;
mod forward;
pub(crate) mod imds;
mod probe;
mod query;
mod rejection;
mod server;
mod state;
mod token;

use std::time::Duration;

pub use config::{
    DEFAULT_IMDS_ENDPOINT, DEFAULT_MAX_CREDENTIALS, DEFAULT_PORT, IdentityHeader, MIN_IDENTITY_HEADER_LEN,
    ProxyConfig,
};
pub use credentials::{CredentialFactory, Credentials, check_workload_identity, workload_identity_factory};
pub use error::Error;
pub use probe::Probe;
pub use server::{BoundProxy, Proxy, SHUTDOWN_GRACE};

/// A plain-HTTP client for loopback and link-local endpoints: no redirects, no HTTP proxy from
/// the environment, TLS (unused) through ring.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|builder| {
        builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    });
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(2).min(timeout))
        .timeout(timeout);
    if let Ok(tls) = tls {
        builder = builder.tls_backend_preconfigured(tls);
    }
    builder.build()
}
