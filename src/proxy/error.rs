//! Why the proxy could not start.

use std::net::SocketAddr;

/// A start-up failure of the proxy: bad configuration or a port that cannot be bound.
///
/// Request-time failures are not errors of this type: they become IMDS- or App Service-style
/// JSON responses (see the `rejection` module).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A required environment variable is missing or empty.
    #[error("{name} is not set: {fix}")]
    MissingEnv {
        /// The variable.
        name: &'static str,
        /// How to fix it.
        fix: &'static str,
    },
    /// A setting has a value the proxy cannot use.
    #[error("invalid {name}: {message}")]
    InvalidConfig {
        /// The flag or variable.
        name: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The listening address could not be bound (the cause is the source, printed once).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The workload identity settings (`AZURE_AUTHORITY_HOST`, `AZURE_FEDERATED_TOKEN_FILE`, the
    /// tenant, an identity binding's `AZURE_KUBERNETES_*`) cannot give a token; the source names
    /// the variable and the fix.
    #[error("the workload identity configuration cannot work")]
    Credential(#[source] azure_wi_identity::Error),
    /// The HTTP client used to forward instance-metadata requests could not be built.
    #[error("cannot build the HTTP client for {purpose}: {source}")]
    HttpClient {
        /// What the client is for.
        purpose: &'static str,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
}

impl Error {
    pub(crate) fn invalid(name: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidConfig {
            name,
            message: message.into(),
        }
    }
}
