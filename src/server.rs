//! The HTTP serving stack shared by the webhook and the proxy.
//!
//! - [`https`]: a TLS accept loop (rustls through `tokio-rustls`, HTTP/1.1 and HTTP/2 through
//!   `hyper-util`) with a handshake timeout, a header read timeout and a bounded graceful drain.
//! - [`plain`]: the same for plain HTTP listeners (health and metrics).
//! - [`health`]: `/healthz` and `/readyz` driven by named readiness conditions.
//! - [`shutdown`]: SIGTERM/SIGINT turned into a shutdown signal every server can wait on.
//!
//! Routers are plain [`axum::Router`]s, so handlers are tested with `tower::ServiceExt::oneshot`
//! without sockets; the loops here only move bytes.

pub mod health;
pub mod https;
pub mod plain;
pub mod shutdown;

pub use health::{Readiness, ReadinessCondition, health_router};
pub use https::{ServeOptions, serve_https};
pub use plain::serve_plain;
pub use shutdown::Shutdown;

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
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

/// Binds a TCP listener, naming the address in the error.
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, ServerError> {
    let addr_norm = normalize_addr(addr);
    tokio::net::TcpListener::bind(&addr_norm)
        .await
        .map_err(|source| ServerError::Bind { addr: addr.to_owned(), source })
}

/// Go-style `:8095` means every interface; Rust wants `0.0.0.0:8095`.
pub fn normalize_addr(addr: &str) -> String {
    if addr.starts_with(':') { format!("0.0.0.0{addr}") } else { addr.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_addresses_mean_every_interface() {
        assert_eq!(normalize_addr(":9440"), "0.0.0.0:9440");
        assert_eq!(normalize_addr("127.0.0.1:1"), "127.0.0.1:1");
    }

    #[tokio::test]
    async fn bind_failure_names_the_address() {
        let err = bind("256.0.0.1:1").await.unwrap_err();
        assert!(err.to_string().contains("256.0.0.1:1"), "{err}");
    }
}
