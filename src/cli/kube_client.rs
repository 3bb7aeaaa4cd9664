//! The Kubernetes client of the webhook: kube-rs's, with `TCP_NODELAY` on its connections.
//!
//! kube-rs 5.0 builds its connector with Nagle's algorithm left on (kube-rs/kube#2056, open). A
//! new TLS 1.3 connection then writes its `Finished` and its first request as two small segments;
//! the second waits for the API server's delayed ACK, about 40 ms on Linux. Measured here: the
//! webhook's first request (`/version`, needed before serving) took 46.8 ms of its 50 ms start to
//! ready; a ServiceAccount lookup that has to open a new connection meets the same wait. Go's clients
//! (upstream's webhook) set `TCP_NODELAY` by default.
//!
//! So the client is assembled from kube-rs's own public parts, in kube-rs's order (base URI,
//! retry, authentication, extra headers; its connect/read/write timeouts), over a connector with
//! `TCP_NODELAY`. Left out is kube-rs's per-request tracing span (its debug lines `requesting`
//! and `stream closed`). A kubeconfig with a proxy or an exec plugin takes kube-rs's own builder
//! unchanged (proxies need its tunnel; exec client certificates its expiry handling). Drop this
//! file when kube-rs sets the option itself.

use anyhow::Context;
use hyper_util::{client::legacy::connect::HttpConnector, rt::TokioExecutor};
use kube::client::{ConfigExt, retry::RetryPolicy};
use tower::{BoxError, ServiceBuilder, retry::RetryLayer};

/// The client for `config`.
pub fn build(config: kube::Config) -> anyhow::Result<kube::Client> {
    if config.proxy_url.is_some() || config.auth_info.exec.is_some() {
        return kube::Client::try_from(config).context("cannot build the Kubernetes client");
    }
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let tls = config
        .rustls_https_connector_with_connector(tcp)
        .context("cannot set up TLS to the Kubernetes API server")?;
    let mut connector = hyper_timeout::TimeoutConnector::new(tls);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http = hyper_util::client::legacy::Builder::new(TokioExecutor::new()).build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(
            config
                .auth_layer()
                .context("cannot set up authentication to the Kubernetes API server")?,
        )
        .layer(
            config
                .extra_headers_layer()
                .context("invalid extra headers in the Kubernetes configuration")?,
        )
        .map_err(BoxError::from)
        .service(http);
    Ok(kube::Client::new(service, config.default_namespace))
}
