//! Our credentials as [`azure_core::credentials::TokenCredential`]s (feature `azure-core`), so
//! the Azure SDK for Rust's clients accept them directly:
//!
//! ```no_run
//! use std::sync::Arc;
//! use azure_wi_identity::PlatformCredential;
//!
//! # fn run() -> Result<(), azure_wi_identity::Error> {
//! // `Arc<PlatformCredential>` coerces to what every SDK client's `new` takes, e.g.
//! // `SecretClient::new("https://my-vault.vault.azure.net/", credential, None)`.
//! let credential: Arc<dyn azure_core::credentials::TokenCredential> = PlatformCredential::new(None)?;
//! # Ok(())
//! # }
//! ```
//!
//! Errors become `azure_core::Error`s of kind `Credential` whose source is our
//! [`Error`](super::Error), so the unavailable / failed distinction survives:
//! `err.downcast_ref::<azure_wi_identity::Error>().map(|e| e.kind())`.
//!
//! The SDK's `TokenRequestOptions` carries only a request context (no tenant or claims), so the
//! SDK path always asks for the credential's own tenant without extra claims; our tokens'
//! `refresh_on` and `token_type` have no place in the SDK's `AccessToken` and are dropped (the
//! SDK re-asks shortly before `expires_on`, and our cache answers until `refresh_on`).

use azure_core::credentials as core;

use super::{
    AccessToken, AzurePipelinesCredential, ChainedTokenCredential, ClientAssertionCredential, Error,
    ManagedIdentityCredential, PlatformCredential, TokenCredential, WorkloadIdentityCredential,
};

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
    credential
        .get_token(scopes, None)
        .await
        .map(to_core_token)
        .map_err(to_core_error)
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

impl_azure_core_credential!(
    WorkloadIdentityCredential,
    ManagedIdentityCredential,
    ClientAssertionCredential,
    AzurePipelinesCredential,
    PlatformCredential,
    ChainedTokenCredential,
);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use azure_core::credentials::TokenCredential as CoreTokenCredential;
    use serde_json::json;
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::{
        ClientAssertionCredentialOptions, Env, ErrorKind, Secret, TokenRequestOptions,
        test_server::{Reply, TestServer},
    };

    const SCOPE: &str = "https://vault.azure.net/.default";
    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    /// Answers with a fixed outcome and records the scopes it was asked for.
    #[derive(Debug)]
    struct Fixed {
        outcome: std::result::Result<AccessToken, ErrorKind>,
        asked: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Fixed {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<TokenRequestOptions>,
        ) -> crate::Result<AccessToken> {
            self.asked
                .lock()
                .unwrap()
                .extend(scopes.iter().map(|s| s.to_string()));
            match &self.outcome {
                Ok(token) => Ok(token.clone()),
                Err(ErrorKind::Unavailable) => Err(Error::unavailable("Fixed", "not here")),
                Err(_) => Err(Error::authentication_failed("Fixed", "refused").with_status(401)),
            }
        }
    }

    fn fixed(outcome: std::result::Result<AccessToken, ErrorKind>) -> Arc<Fixed> {
        Arc::new(Fixed {
            outcome,
            asked: Default::default(),
        })
    }

    /// What the Azure SDK sees, through `Arc<dyn azure_core::credentials::TokenCredential>`.
    async fn sdk_get_token(
        credential: Arc<dyn CoreTokenCredential>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        credential.get_token(&[SCOPE], None).await
    }

    fn our_kind(e: &azure_core::Error) -> Option<ErrorKind> {
        e.downcast_ref::<Error>().map(Error::kind)
    }

    #[tokio::test]
    async fn tokens_keep_secret_and_expiry() {
        let expires_on = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::hours(1);
        let token =
            AccessToken::new("at-123", expires_on).with_refresh_on(Some(expires_on - Duration::minutes(30)));
        let inner = fixed(Ok(token));
        let chain = ChainedTokenCredential::new(vec![inner.clone()]).unwrap();
        let got = sdk_get_token(chain).await.unwrap();
        assert_eq!(got.token.secret(), "at-123");
        assert_eq!(got.expires_on, expires_on);
        assert_eq!(*inner.asked.lock().unwrap(), vec![SCOPE.to_string()]);
    }

    #[tokio::test]
    async fn unavailable_and_failed_survive_the_conversion() {
        let unavailable = ChainedTokenCredential::new(vec![fixed(Err(ErrorKind::Unavailable))]).unwrap();
        let e = sdk_get_token(unavailable).await.unwrap_err();
        assert_eq!(*e.kind(), azure_core::error::ErrorKind::Credential);
        assert_eq!(our_kind(&e), Some(ErrorKind::Unavailable));
        assert!(e.to_string().contains("not here"), "{e}");

        let failed = ChainedTokenCredential::new(vec![fixed(Err(ErrorKind::AuthenticationFailed))]).unwrap();
        let e = sdk_get_token(failed).await.unwrap_err();
        assert_eq!(our_kind(&e), Some(ErrorKind::AuthenticationFailed));
        assert_eq!(e.downcast_ref::<Error>().and_then(Error::status), Some(401));
        // Code that walks `source()` (anyhow, tracing) reaches our error too.
        let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<Error>());
        assert_eq!(source.map(Error::kind), Some(ErrorKind::AuthenticationFailed));
    }

    #[tokio::test]
    async fn a_real_exchange_through_the_sdk_trait() {
        let server = TestServer::scripted([
            Reply::token("exchanged", 3599),
            Reply::json(
                400,
                json!({"error": "invalid_scope", "error_description": "AADSTS70011: bad"}),
            ),
        ])
        .await;
        let options = ClientAssertionCredentialOptions {
            authority_host: Some(server.url()),
            env: Env::from_pairs::<&str, &str>([]),
            ..Default::default()
        };
        let credential = ClientAssertionCredential::with_callback(
            TENANT,
            "00000000-0000-0000-0000-0000000000c1",
            || async { Ok(Secret::new("assertion")) },
            Some(options),
        )
        .unwrap();
        let sdk: Arc<dyn CoreTokenCredential> = credential;
        let token = sdk.get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(token.token.secret(), "exchanged");
        let e = sdk.get_token(&["api://other/.default"], None).await.unwrap_err();
        assert_eq!(our_kind(&e), Some(ErrorKind::AuthenticationFailed));
        assert!(e.to_string().contains("AADSTS70011"), "{e}");
        assert_eq!(server.request_count(), 2);
    }

    #[test]
    fn every_public_credential_is_an_sdk_credential() {
        fn accepts<T: CoreTokenCredential + 'static>() {}
        accepts::<WorkloadIdentityCredential>();
        accepts::<ManagedIdentityCredential>();
        accepts::<ClientAssertionCredential>();
        accepts::<AzurePipelinesCredential>();
        accepts::<PlatformCredential>();
        accepts::<ChainedTokenCredential>();
    }
}
