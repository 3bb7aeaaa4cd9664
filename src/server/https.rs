//! The TLS accept loop: rustls handshakes, HTTP/1.1 and HTTP/2 connections, graceful drain.
//!
//! Each accepted TCP connection is handed to its own task, which completes the TLS handshake
//! (bounded by [`ServeOptions::handshake_timeout`]) and then serves HTTP with `hyper-util`'s
//! auto builder.
//!
//! Shutdown has two phases. First a lame-duck period ([`ServeOptions::shutdown_delay`]): the
//! server keeps accepting and serving, but answers every HTTP/1.1 request with
//! `Connection: close`, so clients that hold keep-alive connections (the API server does) move to
//! other replicas after their next response instead of racing a close with a new request, which
//! would fail that request with EOF. Then the listener is closed, every connection is told to
//! finish the request it is serving and close, and the loop waits for them for at most
//! [`ServeOptions::drain_timeout`].

use std::{sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{ServerError, Shutdown};

/// Timeouts of a server's connections.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Longest time a client may take to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest time an HTTP/1.1 client may take to send a request's headers. It also closes a
    /// keep-alive connection that stays idle this long.
    pub header_read_timeout: Duration,
    /// How long the server keeps serving, with `Connection: close` on every HTTP/1.1 response,
    /// after shutdown is triggered and before it stops accepting.
    pub shutdown_delay: Duration,
    /// Longest time in-flight requests get to finish once the server stops accepting.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            shutdown_delay: Duration::from_secs(3),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` fires, then drains.
///
/// `tls` decides certificates (typically through a resolver that rotates them) and the protocol
/// versions; its ALPN list should offer `h2` and `http/1.1`.
pub async fn serve_https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    options: ServeOptions,
    shutdown: Shutdown,
) -> Result<(), ServerError> {
    let acceptor = TlsAcceptor::from(tls);
    let builder = http_builder(&options);
    let graceful = GracefulShutdown::new();
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "serving HTTPS");
    let router = router.layer(axum::middleware::map_response(close_when_shutting_down(
        shutdown.clone(),
    )));
    let lame_duck = async {
        shutdown.wait().await;
        tracing::info!(
            delay_ms = options.shutdown_delay.as_millis() as u64,
            "shutting down: closing keep-alive connections"
        );
        tokio::time::sleep(options.shutdown_delay).await;
    };
    tokio::pin!(lame_duck);

    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut lame_duck => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let service = TowerToHyperService::new(router.clone());
        // Taken before the handshake so that shutdown also waits for connections mid-handshake.
        let watcher = graceful.watcher();
        let handshake_timeout = options.handshake_timeout;
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %error, "connection closed with an error");
            }
        });
    }

    drop(listener);
    drain(graceful, options.drain_timeout).await;
    Ok(())
}

/// A response mapper that asks HTTP/1.1 clients to close the connection once shutdown started.
/// (HTTP/2 has no such header; its connections get GOAWAY when the drain starts.)
fn close_when_shutting_down(
    shutdown: Shutdown,
) -> impl Fn(axum::response::Response) -> std::future::Ready<axum::response::Response> + Clone {
    move |mut response: axum::response::Response| {
        if shutdown.is_triggered() {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        std::future::ready(response)
    }
}

pub(super) fn http_builder(options: &ServeOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(options.header_read_timeout)
        // Read buffer per connection (hyper's default grows to ~400 KiB while a large body
        // streams in): 64 KiB keeps many connections with large bodies cheap.
        .max_buf_size(64 * 1024);
    // HTTP/2 has no header-read timeout: pings find dead peers instead.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

pub(super) async fn drain(graceful: GracefulShutdown, timeout: Duration) {
    let open = graceful.count();
    tracing::info!(open_connections = open, "draining connections");
    if tokio::time::timeout(timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            timeout_s = timeout.as_secs(),
            "drain timed out; closing the remaining connections"
        );
    }
}
