//! The HTTP serving stack shared by the webhook and the proxy.
//!
//! - [`https`]: a TLS accept loop (rustls through `tokio-rustls`, HTTP/1.1 and HTTP/2 through
//!   `hyper-util`) with a handshake timeout, a header read timeout and a bounded graceful drain.
//! - [`plain`]: the same for plain HTTP listeners (health and metrics).
//! - [`connection_slots`], [`first_bytes`], [`lingering_close`]: what every connection of both
//!   gets: a cap on open connections (silent ones make room first), a deadline for the first
//!   bytes, and a close that lets the client read a refusal sent before its request was read.
//! - [`health`]: `/healthz` and `/readyz` driven by named readiness conditions.
//! - [`shutdown`]: SIGTERM/SIGINT turned into a shutdown signal every server can wait on.
//!
//! Routers are plain [`axum::Router`]s, so handlers are tested with `tower::ServiceExt::oneshot`
//! without sockets; the loops here only move bytes.

pub mod connection_slots;
pub mod first_bytes;
pub mod health;
pub mod https;
pub mod lingering_close;
pub mod plain;
pub mod shutdown;

pub use health::{Readiness, ReadinessCondition, health_router};
pub use https::{DEFAULT_MAX_CONNECTIONS, ServeOptions, serve_https};
pub use plain::serve_plain;
pub use shutdown::Shutdown;

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound. (The cause is the error's source, printed once by
    /// whoever prints the chain.)
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error while serving.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Binds a TCP listener, naming the address in the error. A Go-style `:port` means every
/// interface: IPv6 and IPv4 (`[::]`) where the host has IPv6, else IPv4 only.
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, ServerError> {
    let error = |source| ServerError::Bind {
        addr: addr.to_owned(),
        source,
    };
    match addr.strip_prefix(':') {
        Some(port) => match tokio::net::TcpListener::bind(format!("[::]:{port}")).await {
            Ok(listener) => Ok(listener),
            Err(_) => tokio::net::TcpListener::bind(format!("0.0.0.0:{port}"))
                .await
                .map_err(error),
        },
        None => tokio::net::TcpListener::bind(addr).await.map_err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn explicit_addresses_are_bound_as_given() {
        let listener = bind("127.0.0.1:0").await.unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
    }

    #[tokio::test]
    async fn bind_failure_names_the_address() {
        let err = bind("256.0.0.1:1").await.unwrap_err();
        assert!(err.to_string().contains("256.0.0.1:1"), "{err}");
        // The cause is the source only: a chain printer (anyhow's `{:#}`) shows it once.
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let err = bind(&addr).await.unwrap_err();
        let mut chain = err.to_string();
        let mut cause = std::error::Error::source(&err);
        while let Some(current) = cause {
            chain = format!("{chain}: {current}");
            cause = current.source();
        }
        assert_eq!(chain.matches("in use").count(), 1, "{chain}");
    }
}
