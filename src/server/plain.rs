//! Plain HTTP serving for the health and metrics listeners.

use axum::Router;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::{
    ServeOptions, ServerError, Shutdown, connection_slots::ConnectionSlots, first_bytes::FirstBytes, https,
    lingering_close::LingeringClose,
};

/// Serves `router` over plain HTTP on `listener` until `shutdown` fires, then drains. Connections
/// get the same first-bytes deadline and cap as [`https::serve_https`]'s.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: Shutdown,
) -> Result<(), ServerError> {
    let builder = https::http_builder(&options);
    let graceful = GracefulShutdown::new();
    let slots = ConnectionSlots::new(options.max_connections);
    tracing::info!(addr = %listener.local_addr()?, "serving HTTP");
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let slot = slots.acquire().await;
        let (builder, router, watcher) = (builder.clone(), router.clone(), graceful.watcher());
        let first_bytes_timeout = options.header_read_timeout;
        tokio::spawn(async move {
            let eviction = slot.eviction();
            let io = FirstBytes::new(LingeringClose::new(stream), first_bytes_timeout, Some(slot));
            https::serve_connection(&builder, io, router, eviction, watcher, peer).await;
        });
    }
    drop(listener);
    https::drain(graceful, options.drain_timeout).await;
    Ok(())
}
