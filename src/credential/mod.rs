//! The embeddable credential library.
//!
//! Every credential implements [`TokenCredential`]: an async `get_token(scopes, options)` that
//! returns an [`AccessToken`] or an [`Error`]. Errors come in the kinds a credential chain needs
//! ([`ErrorKind::Unavailable`]: this source cannot work here, try the next one;
//! [`ErrorKind::AuthenticationFailed`]: it tried and was refused, stop), plus invalid input.
//!
//! Which credential to use where:
//!
//! | where the code runs | credential |
//! | --- | --- |
//! | an AKS pod mutated by the workload identity webhook | [`WorkloadIdentityCredential`] |
//! | an Azure VM, VMSS, AKS node, App Service, Functions, Container Apps, Arc, Azure ML, Cloud Shell, Service Fabric | [`ManagedIdentityCredential`] |
//! | an Azure Pipelines job with a workload identity federation service connection | [`AzurePipelinesCredential`] |
//! | any of the above, decided at run time | [`PlatformCredential`] |
//! | an assertion you obtain yourself | [`ClientAssertionCredential`] |
//!
//! Every credential caches its tokens per request (scopes, tenant, claims): a cached token is
//! returned until its `refresh_on`, then refreshed once in the background while callers keep
//! getting the still-valid token, and concurrent callers on a cold cache share one request.

mod access_token;
mod env;
mod error;

pub(crate) mod authority;
pub(crate) mod cache;
pub(crate) mod expiry;
pub(crate) mod http;
#[cfg(test)]
pub(crate) mod test_server;

mod azure_pipelines;
mod client_assertion;
pub mod managed_identity;
mod platform;
mod workload_identity;

#[cfg(feature = "azure-core")]
mod azure_core;

pub use access_token::{AccessToken, Secret, TokenRequestOptions};
pub use authority::AzureCloud;
pub use azure_pipelines::{AzurePipelinesCredential, AzurePipelinesCredentialOptions};
pub use client_assertion::{ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions};
pub use managed_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
pub use platform::{ChainedTokenCredential, PlatformCredential, PlatformCredentialOptions};
pub use workload_identity::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
pub use env::Env;
pub use error::{Error, ErrorKind, Result};

use async_trait::async_trait;

/// A source of Microsoft Entra access tokens.
///
/// Implementations cache tokens: calling `get_token` for every outgoing request is cheap.
#[async_trait]
pub trait TokenCredential: Send + Sync + std::fmt::Debug {
    /// Returns an access token for `scopes`, from the cache when one is still fresh.
    ///
    /// `options` carries the tenant and claims of the request; a credential that cannot honour
    /// them returns an error of kind [`ErrorKind::InvalidInput`] naming the option.
    async fn get_token(&self, scopes: &[&str], options: Option<TokenRequestOptions>) -> Result<AccessToken>;
}
