//! Plain HTTP serving for the health and metrics listeners.

use axum::Router;
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown, service::TowerToHyperService};
use tokio::net::TcpListener;

use super::{ServeOptions, ServerError, Shutdown, https};

/// Serves `router` over plain HTTP on `listener` until `shutdown` fires, then drains.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: Shutdown,
) -> Result<(), ServerError> {
    let builder = https::http_builder(&options);
    let graceful = GracefulShutdown::new();
    tracing::info!(addr = %listener.local_addr()?, "serving HTTP");
    loop {
        let (stream, _peer) = tokio::select! {
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
        let builder = builder.clone();
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let _ = watcher.watch(connection).await;
        });
    }
    drop(listener);
    https::drain(graceful, options.drain_timeout).await;
    Ok(())
}
