//! Our credentials as [`azure_core::credentials::TokenCredential`]s (feature `azure-core`), so
//! the Azure SDK for Rust's clients accept them directly:
//!
//! ```ignore
//! let credential = azure_wi::credential::PlatformCredential::new(None)?;
//! let client = SecretClient::new("https://my-vault.vault.azure.net/", credential, None)?;
//! ```
//!
//! Errors become `azure_core::Error`s of kind `Credential` whose source is our
//! [`Error`](super::Error), so the unavailable / failed distinction survives:
//! `err.downcast_ref::<azure_wi::credential::Error>().map(|e| e.kind())`.

use azure_core::credentials as core;

use super::{AccessToken, Error, TokenCredential};

/// Converts our token into the Azure SDK's (which has no `refresh_on` or `token_type`).
pub(crate) fn to_core_token(token: AccessToken) -> core::AccessToken {
    core::AccessToken::new(token.token.secret().to_owned(), token.expires_on)
}

/// Wraps our error as an `azure_core::Error` of kind `Credential`, keeping it as the source.
pub(crate) fn to_core_error(error: Error) -> azure_core::Error {
    azure_core::Error::new(azure_core::error::ErrorKind::Credential, error)
}

/// Calls our `get_token` on behalf of the Azure SDK.
pub(crate) async fn get_core_token<C: TokenCredential + ?Sized>(
    credential: &C,
    scopes: &[&str],
) -> azure_core::Result<core::AccessToken> {
    credential.get_token(scopes, None).await.map(to_core_token).map_err(to_core_error)
}

/// Implements `azure_core::credentials::TokenCredential` for our credential types.
macro_rules! impl_azure_core_credential {
    ($($credential:ty),+ $(,)?) => {$(
        #[async_trait::async_trait]
        impl azure_core::credentials::TokenCredential for $credential {
            async fn get_token(
                &self,
                scopes: &[&str],
                _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
            ) -> azure_core::Result<azure_core::credentials::AccessToken> {
                get_core_token(self, scopes).await
            }
        }
    )+};
}
#[allow(unused_imports)]
pub(crate) use impl_azure_core_credential;
