//! The errors of the credential library.

use std::fmt;

/// A boxed error kept as the cause of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result of every credential operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is: what a credential chain does next depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The credential cannot work in this environment (its variables are missing, its endpoint
    /// does not exist). A chain moves on to its next credential.
    Unavailable,
    /// The credential tried and was refused, or its endpoint answered something unusable. A chain
    /// stops here.
    AuthenticationFailed,
    /// The caller gave a value the credential cannot use (a malformed tenant id, no scope, an
    /// option the source cannot honour).
    InvalidInput,
}

impl ErrorKind {
    /// The stable name used by the `azure-wi token` command's JSON error:
    /// `credential_unavailable`, `authentication_failed` or `invalid_input`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "credential_unavailable",
            Self::AuthenticationFailed => "authentication_failed",
            Self::InvalidInput => "invalid_input",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credential error. The message names the credential, what was wrong and how to fix it; it
/// never contains a token, an assertion or a secret header.
///
/// Build one with [`Error::unavailable`], [`Error::authentication_failed`] or
/// [`Error::invalid_input`] (the variants are `#[non_exhaustive]` so that fields can be added),
/// and branch on [`Error::kind`]:
///
/// ```
/// use azure_wi_identity::{Error, ErrorKind};
///
/// let e = Error::authentication_failed("MyCredential", "the issuer refused the assertion").with_status(401);
/// assert_eq!((e.kind(), e.status()), (ErrorKind::AuthenticationFailed, Some(401)));
/// assert_eq!(e.to_string(), "MyCredential authentication failed: the issuer refused the assertion");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`ErrorKind::Unavailable`].
    #[non_exhaustive]
    #[error("{credential} is unavailable: {message}")]
    Unavailable {
        /// The credential or source that failed, e.g. `ManagedIdentityCredential (IMDS)`.
        credential: &'static str,
        /// What was wrong and how to fix it.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// See [`ErrorKind::AuthenticationFailed`].
    #[non_exhaustive]
    #[error("{credential} authentication failed: {message}")]
    AuthenticationFailed {
        /// The credential or source that failed.
        credential: &'static str,
        /// What was wrong and how to fix it.
        message: String,
        /// The HTTP status of the response that refused the request, if there was one.
        status: Option<u16>,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// See [`ErrorKind::InvalidInput`].
    #[non_exhaustive]
    #[error("{credential}: invalid input: {message}")]
    InvalidInput {
        /// The credential that refused the input.
        credential: &'static str,
        /// Which value was wrong and what is expected.
        message: String,
    },
}

impl Error {
    /// A new [`ErrorKind::Unavailable`] error.
    pub fn unavailable(credential: &'static str, message: impl Into<String>) -> Self {
        Self::Unavailable {
            credential,
            message: message.into(),
            source: None,
        }
    }

    /// A new [`ErrorKind::AuthenticationFailed`] error.
    pub fn authentication_failed(credential: &'static str, message: impl Into<String>) -> Self {
        Self::AuthenticationFailed {
            credential,
            message: message.into(),
            status: None,
            source: None,
        }
    }

    /// A new [`ErrorKind::InvalidInput`] error.
    pub fn invalid_input(credential: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            credential,
            message: message.into(),
        }
    }

    /// Attaches the underlying cause (ignored for [`ErrorKind::InvalidInput`]).
    #[must_use]
    pub fn with_source(mut self, cause: impl Into<BoxError>) -> Self {
        match &mut self {
            Self::Unavailable { source, .. } | Self::AuthenticationFailed { source, .. } => {
                *source = Some(cause.into())
            }
            Self::InvalidInput { .. } => {}
        }
        self
    }

    /// Attaches the HTTP status of the refusing response (only kept on authentication failures).
    #[must_use]
    pub fn with_status(mut self, http_status: u16) -> Self {
        if let Self::AuthenticationFailed { status, .. } = &mut self {
            *status = Some(http_status);
        }
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::AuthenticationFailed { .. } => ErrorKind::AuthenticationFailed,
            Self::InvalidInput { .. } => ErrorKind::InvalidInput,
        }
    }

    /// The credential or source that failed.
    pub fn credential(&self) -> &'static str {
        match self {
            Self::Unavailable { credential, .. }
            | Self::AuthenticationFailed { credential, .. }
            | Self::InvalidInput { credential, .. } => credential,
        }
    }

    /// What was wrong, without the credential's name.
    pub fn message(&self) -> &str {
        match self {
            Self::Unavailable { message, .. }
            | Self::AuthenticationFailed { message, .. }
            | Self::InvalidInput { message, .. } => message,
        }
    }

    /// The HTTP status of the refusing response, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::AuthenticationFailed { status, .. } => *status,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_credential_and_kind() {
        let e = Error::unavailable("WorkloadIdentityCredential", "AZURE_TENANT_ID is not set");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(
            e.to_string(),
            "WorkloadIdentityCredential is unavailable: AZURE_TENANT_ID is not set"
        );
        let e = Error::authentication_failed("ManagedIdentityCredential (IMDS)", "identity not found")
            .with_status(400);
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.kind().as_str(), "authentication_failed");
        assert_eq!(Error::invalid_input("x", "y").kind().as_str(), "invalid_input");
    }
}
