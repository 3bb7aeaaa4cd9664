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

use super::{
    ServerError, Shutdown,
    connection_slots::{ConnectionSlots, Eviction},
    first_bytes::FirstBytes,
    lingering_close::LingeringClose,
};

/// Timeouts and limits of a server's connections.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Longest time a client may take to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest time a client may take to send its first bytes (the HTTP/2 preface or the start
    /// of an HTTP/1 request, after the TLS handshake), and an HTTP/1.1 client a request's
    /// headers. It also closes a keep-alive connection that stays idle this long.
    pub header_read_timeout: Duration,
    /// Most connections open at once on the listener; when a new one arrives at the cap, the
    /// oldest connection that has not sent anything yet is closed (see
    /// [`ConnectionSlots`]).
    pub max_connections: usize,
    /// How long the server keeps serving, with `Connection: close` on every HTTP/1.1 response,
    /// after shutdown is triggered and before it stops accepting.
    pub shutdown_delay: Duration,
    /// Longest time in-flight requests get to finish once the server stops accepting.
    pub drain_timeout: Duration,
}

/// The default cap on a listener's open connections. The API server reaches the webhook over a
/// few keep-alive (or HTTP/2) connections per replica; each connection costs at most its read
/// buffer and TLS state (~100 KiB), so the cap also bounds memory.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections: DEFAULT_MAX_CONNECTIONS,
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
    let slots = ConnectionSlots::new(options.max_connections);
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
        // Past the cap, the oldest silent connection makes room (or, when every connection is
        // busy, this waits for one to end while new clients wait in the backlog).
        let slot = slots.acquire().await;
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let router = router.clone();
        // Taken before the handshake so that shutdown also waits for connections mid-handshake.
        let watcher = graceful.watcher();
        let (handshake_timeout, first_bytes_timeout) =
            (options.handshake_timeout, options.header_read_timeout);
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(handshake_timeout, acceptor.accept(LingeringClose::new(stream)));
            let eviction = slot.eviction();
            let tls = tokio::select! {
                () = eviction.evicted() => {
                    tracing::debug!(%peer, "closed a connection mid-handshake to make room");
                    return;
                }
                handshake = handshake => match handshake {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
            };
            let io = FirstBytes::new(tls, first_bytes_timeout, Some(slot));
            serve_connection(&builder, io, router, eviction, watcher, peer).await;
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

/// Serves HTTP on `io` until it ends, or until its slot is given to a newer connection while it
/// has not sent anything yet.
pub(super) async fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: FirstBytes<I>,
    router: Router,
    eviction: Eviction,
    watcher: hyper_util::server::graceful::Watcher,
    peer: std::net::SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let connection = watcher.watch(builder.serve_connection(TokioIo::new(io), service).into_owned());
    tokio::select! {
        result = connection => if let Err(error) = result {
            tracing::debug!(%peer, error = %error, "connection closed with an error");
        },
        () = eviction.evicted() => tracing::debug!(%peer, "closed a silent connection to make room"),
    }
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
