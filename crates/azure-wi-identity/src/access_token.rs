//! The token a credential returns, its secret, and the options of a request.

use std::{borrow::Cow, fmt, sync::Arc};

use time::OffsetDateTime;

/// A secret string (an access token, an assertion) whose `Debug` and `Display` never show it.
///
/// Cloning is cheap: the value is shared.
///
/// ```
/// use azure_wi_identity::Secret;
///
/// let secret = Secret::new("eyJ0eXAiOiJKV1QiLCJhbGciOi");
/// assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
/// assert_eq!(secret.secret(), "eyJ0eXAiOiJKV1QiLCJhbGciOi");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Do not log it.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

/// An access token and when it expires.
///
/// `Debug` prints the expiry but never the token. The struct is `#[non_exhaustive]`: build one
/// with [`AccessToken::new`] and the `with_*` methods (a custom [`TokenCredential`] does).
///
/// ```
/// use azure_wi_identity::AccessToken;
/// use time::{Duration, OffsetDateTime};
///
/// let expires_on = OffsetDateTime::now_utc() + Duration::hours(1);
/// let token = AccessToken::new("eyJ0eXAi...", expires_on)
///     .with_refresh_on(Some(expires_on - Duration::minutes(30)));
/// assert_eq!(token.token_type, "Bearer");
/// assert!(!format!("{token:?}").contains("eyJ0eXAi"));
/// let header = format!("{} {}", token.token_type, token.token.secret());
/// # assert!(header.starts_with("Bearer eyJ"));
/// ```
///
/// [`TokenCredential`]: super::TokenCredential
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessToken {
    /// The bearer token.
    pub token: Secret,
    /// When the token stops being valid.
    pub expires_on: OffsetDateTime,
    /// When a new token should be requested, if earlier than shortly before `expires_on`: the
    /// server's `refresh_in`, or half the lifetime of tokens that live two hours or more.
    pub refresh_on: Option<OffsetDateTime>,
    /// The token type, almost always `Bearer`.
    pub token_type: Cow<'static, str>,
}

impl AccessToken {
    /// A bearer token expiring at `expires_on`, with no `refresh_on`.
    pub fn new(token: impl Into<Secret>, expires_on: OffsetDateTime) -> Self {
        Self {
            token: token.into(),
            expires_on,
            refresh_on: None,
            token_type: Cow::Borrowed("Bearer"),
        }
    }

    /// Sets when the token should be refreshed.
    #[must_use]
    pub fn with_refresh_on(mut self, refresh_on: Option<OffsetDateTime>) -> Self {
        self.refresh_on = refresh_on;
        self
    }

    /// Sets the token type (`Bearer` is kept borrowed, without allocating).
    #[must_use]
    pub fn with_token_type(mut self, token_type: &str) -> Self {
        self.token_type = if token_type == "Bearer" {
            Cow::Borrowed("Bearer")
        } else {
            Cow::Owned(token_type.to_owned())
        };
        self
    }
}

/// Options of one token request.
///
/// Like every options struct of this crate (and of the Azure SDK for Rust), its fields are public
/// and it implements `Default`: name the fields you set and end with `..Default::default()`, so
/// that fields added in later versions do not break your code.
///
/// ```no_run
/// use azure_wi_identity::{TokenCredential, TokenRequestOptions, WorkloadIdentityCredential};
///
/// # async fn run() -> azure_wi_identity::Result<()> {
/// let credential = WorkloadIdentityCredential::new(None)?;
/// // After a resource answered 401 with a claims challenge (CAE, conditional access):
/// let challenge = r#"{"access_token":{"nbf":{"essential":true,"value":"1726077595"}}}"#;
/// let options = TokenRequestOptions {
///     claims: Some(challenge.into()),
///     enable_cae: true,
///     ..Default::default()
/// };
/// let token = credential.get_token(&["https://graph.microsoft.com/.default"], Some(options)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenRequestOptions {
    /// Additional claims, e.g. from a CAE or conditional-access challenge. A request with claims
    /// always goes to the network.
    pub claims: Option<String>,
    /// A tenant other than the credential's own. Only credentials that talk to Microsoft Entra
    /// directly honour it; managed identity ignores it, as azure-identity does.
    pub tenant_id: Option<String>,
    /// Requests a token for continuous access evaluation.
    pub enable_cae: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let token = AccessToken::new("eyJ0eXAiOiJKV1Qi.secret-part", OffsetDateTime::UNIX_EPOCH);
        let printed = format!("{token:?}");
        assert!(!printed.contains("secret-part"), "{printed}");
        assert!(printed.contains("redacted"), "{printed}");
    }

    #[test]
    fn bearer_token_type_is_borrowed() {
        let token = AccessToken::new("t", OffsetDateTime::UNIX_EPOCH).with_token_type("Bearer");
        assert!(matches!(token.token_type, Cow::Borrowed("Bearer")));
        let pop = token.with_token_type("pop");
        assert_eq!(pop.token_type, "pop");
    }
}
