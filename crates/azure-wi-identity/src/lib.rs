//! The embeddable credential library: Microsoft Entra access tokens from every Azure platform
//! source, in the style of the Azure SDK for Rust.
//!
//! Every credential implements [`TokenCredential`]: an async `get_token(scopes, options)` that
//! returns an [`AccessToken`] or an [`Error`]. Constructors take `Option<XOptions>` (unset values
//! come from the environment, read once, when the credential is built) and return
//! `Result<Arc<Self>>`, ready to share between tasks.
//!
//! Every options struct, as in the Azure SDK for Rust, has public fields and `Default`: name the
//! fields you set and end with `..Default::default()`, so that a field added later does not
//! break your code. A field means the same under the same name in every options struct. Public
//! enums are `#[non_exhaustive]`. As in the Azure SDK for Rust, every credential's options carry
//! `client_options` ([`ClientOptions`]): the retry settings ([`RetryOptions`]) and a caller's
//! HTTP client ([`Transport`]: a proxy, CA roots or headers of your own for the requests to
//! Microsoft Entra ID).
//!
//! ```no_run
//! use azure_wi_identity::{PlatformCredential, TokenCredential};
//!
//! # async fn run() -> azure_wi_identity::Result<()> {
//! let credential = PlatformCredential::new(None)?;
//! let token = credential.get_token(&["https://vault.azure.net/.default"], None).await?;
//! // Use `token.token.secret()` as the bearer token; never log it (`Debug` redacts it).
//! println!("valid until {}", token.expires_on);
//! # Ok(())
//! # }
//! ```
//!
//! # Which credential to use where
//!
//! | where the code runs | credential |
//! | --- | --- |
//! | an AKS pod mutated by the workload identity webhook | [`WorkloadIdentityCredential`] |
//! | an Azure VM, VMSS, AKS node, App Service, Functions, Container Apps, Arc, Azure ML, Cloud Shell, Service Fabric | [`ManagedIdentityCredential`] |
//! | an Azure Pipelines job with a workload identity federation service connection | [`AzurePipelinesCredential`] |
//! | any of the above but Pipelines, decided at run time | [`PlatformCredential`] |
//! | an assertion you obtain yourself (GitHub Actions, another OIDC issuer) | [`ClientAssertionCredential`] |
//! | your own order of credentials | [`ChainedTokenCredential`] |
//!
//! # Environment variables
//!
//! Each credential reads only these, and only where its options leave a value unset. Programs
//! that supply the variables themselves pass an [`Env::from_pairs`] in the options.
//!
//! | variable | read by | meaning |
//! | --- | --- | --- |
//! | `AZURE_TENANT_ID` | workload identity, platform | the application's tenant |
//! | `AZURE_CLIENT_ID` | workload identity, platform | the application (client) id |
//! | `AZURE_FEDERATED_TOKEN_FILE` | workload identity, platform | the projected service-account token |
//! | `AZURE_AUTHORITY_HOST` | workload identity, client assertion, Pipelines, platform | the Entra host (default: public cloud) |
//! | `AZURE_IDENTITY_DISABLE_MULTITENANTAUTH` | client assertion, workload identity, Pipelines | ignore a request's `tenant_id` |
//! | `IDENTITY_ENDPOINT`, `IDENTITY_HEADER` | managed identity | App Service, Functions, Container Apps (and Service Fabric, Arc) |
//! | `IDENTITY_SERVER_THUMBPRINT` | managed identity | Service Fabric's pinned certificate |
//! | `IMDS_ENDPOINT` | managed identity | Azure Arc (with `IDENTITY_ENDPOINT`) |
//! | `MSI_ENDPOINT`, `MSI_SECRET` | managed identity | Azure Machine Learning; `MSI_ENDPOINT` alone: Cloud Shell |
//! | `AZURE_POD_IDENTITY_AUTHORITY_HOST` | managed identity | another IMDS host |
//! | `SYSTEM_OIDCREQUESTURI` | Azure Pipelines | the job's OIDC endpoint, read per request |
//! | `SSL_CERT_FILE` | every credential | an extra PEM bundle of trusted CAs |
//!
//! The Pipelines job token (`$(System.AccessToken)`) is passed to
//! [`AzurePipelinesCredential::new`] explicitly. [`managed_identity`] lists how the managed
//! identity source is chosen from these variables.
//!
//! # Errors
//!
//! Every [`Error`] names the credential, what was wrong and how to fix it, and never contains a
//! token, an assertion or a secret header. Its [`ErrorKind`]:
//!
//! - [`ErrorKind::Unavailable`]: this source cannot work here (variables missing, no endpoint).
//!   A chain moves on to its next credential.
//! - [`ErrorKind::AuthenticationFailed`]: the source tried and was refused, or answered
//!   something unusable ([`Error::status`] has the HTTP status). A chain stops here.
//! - [`ErrorKind::InvalidInput`]: a value the caller gave is malformed (a tenant id like
//!   `bad/tenant?x`, an empty scope, an option the source cannot honour). Nothing was sent.
//!
//! # Caching
//!
//! Every credential caches its tokens per request (scopes, tenant, claims), keyed by what the
//! caller asked for. A cached token is returned until its refresh time: its `refresh_on` (the
//! server's `refresh_in`, or half the lifetime of tokens that live two hours or more), and never
//! later than 5 minutes before `expires_on`; then one
//! caller refreshes it while the others keep getting the still-valid token. If that refresh
//! fails, the valid token is still served and the next attempt waits 30 seconds. Concurrent
//! callers on a cold cache share one request on the wire. Calling `get_token` before every
//! outgoing request is therefore cheap. The cache is bounded: at most 128 keys per credential,
//! and a key nobody asked for in an hour is dropped (the least recently used goes first when a
//! new key needs room).
//!
//! # The Azure SDK for Rust
//!
//! With the cargo feature `azure-core`, every credential here also implements
//! `azure_core::credentials::TokenCredential`, so an `Arc` of it goes straight into any SDK
//! client (`SecretClient::new(url, credential, None)`). The SDK's error wraps ours: find it with
//! `downcast_ref::<azure_wi_identity::Error>()` on the `azure_core::Error` or along its
//! `source()` chain, and read [`Error::kind`]. `examples/` and
//! `tests/interop/keyvault/examples/keyvault_secret.rs` are complete programs.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod access_token;
mod env;
pub mod env_vars;
mod error;

pub(crate) mod authority;
pub(crate) mod cache;
pub(crate) mod http;
pub(crate) mod plain_http;
pub(crate) mod tls_trust;
pub(crate) mod token_response;

mod azure_pipelines;
pub mod bounded_file;
mod chained;
pub(crate) mod client_assertion;
mod client_options;
mod entra_error;
pub(crate) mod identity_binding;
pub mod managed_identity;
mod platform;
pub(crate) mod timeouts;
mod workload_identity;

#[cfg(feature = "azure-core")]
mod azure_core;

/// The unit tests' stand-in for Microsoft Entra and the metadata endpoints.
#[cfg(test)]
use azure_wi_test_support::recording_server as test_server;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use access_token::{AccessToken, Secret, TokenRequestOptions};
pub use authority::AzureCloud;
pub use azure_pipelines::{AzurePipelinesCredential, AzurePipelinesCredentialOptions};
pub use chained::ChainedTokenCredential;
pub use client_assertion::{ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions};
pub use client_options::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
pub use env::Env;
pub use error::{Error, ErrorKind, Result};
pub use managed_identity::{
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, ManagedIdentitySource, UserAssignedId,
};
pub use platform::{PlatformCredential, PlatformCredentialOptions};
pub use timeouts::RequestTimeouts;
pub use workload_identity::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};

/// The reqwest this crate is built with, whose `ClientBuilder` a [`Transport`] is made from.
pub use reqwest;

/// A source of Microsoft Entra access tokens.
///
/// Implementations cache tokens: calling `get_token` for every outgoing request is cheap. The
/// trait is object safe (`Arc<dyn TokenCredential>`) and written with `#[async_trait]`, like the
/// Azure SDK for Rust's `azure_core::credentials::TokenCredential` and this library's
/// [`ClientAssertion`]: one async trait style across the library. A custom credential implements
/// it the same way:
///
/// ```
/// use azure_wi_identity::{AccessToken, Result, TokenCredential, TokenRequestOptions};
///
/// /// A credential that always answers the same token (e.g. in a test).
/// #[derive(Debug)]
/// struct Fixed(AccessToken);
///
/// #[async_trait::async_trait]
/// impl TokenCredential for Fixed {
///     async fn get_token(&self, _: &[&str], _: Option<TokenRequestOptions>) -> Result<AccessToken> {
///         Ok(self.0.clone())
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let token = AccessToken::new("t", time::OffsetDateTime::now_utc() + time::Duration::hours(1));
/// # assert_eq!(Fixed(token).get_token(&["s"], None).await.unwrap().token.secret(), "t");
/// # }
/// ```
#[async_trait::async_trait]
pub trait TokenCredential: Send + Sync + std::fmt::Debug {
    /// Returns an access token for `scopes`, from the cache when one is still fresh.
    ///
    /// `options` carries the tenant and claims of the request; a credential that cannot honour
    /// them returns an error of kind [`ErrorKind::InvalidInput`] naming the option.
    ///
    /// ```no_run
    /// use azure_wi_identity::{PlatformCredential, TokenCredential};
    ///
    /// # async fn run() -> azure_wi_identity::Result<()> {
    /// let credential = PlatformCredential::new(None)?;
    /// let token = credential.get_token(&["https://vault.azure.net/.default"], None).await?;
    /// println!("expires on {}", token.expires_on);
    /// # Ok(()) }
    /// ```
    async fn get_token(&self, scopes: &[&str], options: Option<TokenRequestOptions>) -> Result<AccessToken>;
}
