//! The router and the accept loop.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::{net::TcpListener, task::JoinSet};

use crate::server::{self, ServeOptions, Shutdown};

use super::{
    CredentialFactory, Credentials, Error, ProxyConfig, app_service, forward::Forwarder, imds,
    rejection::Rejection, state::ProxyState,
};

/// How long a client gets to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Most connections open at once on each listener: far more than the pod's own clients keep, and
/// few enough that they fit in the sidecar's memory limit whatever a client does.
const MAX_CONNECTIONS: usize = 256;

/// How long in-flight requests get to finish after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The token proxy: its configuration, its credentials and its router.
#[derive(Clone, Debug)]
pub struct Proxy {
    state: Arc<ProxyState>,
}

impl Proxy {
    /// A proxy that creates its credentials with `factory`.
    pub fn new(config: ProxyConfig, factory: CredentialFactory) -> Result<Self, Error> {
        let forwarder = Forwarder::new(config.imds_endpoint.clone())?;
        let credentials = Credentials::new(factory, config.max_credentials);
        Ok(Self {
            state: Arc::new(ProxyState {
                config,
                credentials,
                forwarder,
            }),
        })
    }

    /// The credentials created so far.
    pub fn credentials(&self) -> &Credentials {
        &self.state.credentials
    }

    /// The HTTP router (no sockets: test it with `tower::ServiceExt::oneshot`).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/readyz", get(|| async { "ok" }))
            .fallback(dispatch)
            .layer(middleware::from_fn(refuse_forwarded))
            .layer(middleware::map_response(server_header))
            .with_state(self.state.clone())
    }

    /// Binds 127.0.0.1 and, when the host has IPv6, ::1 on the configured port (with port 0,
    /// ::1 gets the port 127.0.0.1 was given).
    pub async fn bind(self) -> Result<BoundProxy, Error> {
        let v4 = SocketAddr::from(([127, 0, 0, 1], self.state.config.port));
        let first = TcpListener::bind(v4)
            .await
            .map_err(|source| Error::Bind { addr: v4, source })?;
        let port = first
            .local_addr()
            .map_err(|source| Error::Bind { addr: v4, source })?
            .port();
        let mut listeners = vec![first];
        let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
        match TcpListener::bind(v6).await {
            Ok(listener) => listeners.push(listener),
            Err(error) => tracing::debug!(addr = %v6, %error, "not listening on IPv6 loopback"),
        }
        Ok(BoundProxy {
            listeners,
            router: self.router(),
        })
    }
}

/// A proxy whose listeners are bound: ready to serve.
#[derive(Debug)]
pub struct BoundProxy {
    listeners: Vec<TcpListener>,
    router: Router,
}

impl BoundProxy {
    /// The addresses listened on (127.0.0.1 first).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` completes, then stops accepting and gives in-flight requests
    /// [`SHUTDOWN_GRACE`] to finish. Each listener is served by the shared stack
    /// ([`server::serve_plain`]): a cap on open connections, a deadline for a request's first
    /// bytes and headers, and a bounded drain.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let options = ServeOptions {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            drain_timeout: SHUTDOWN_GRACE,
            ..ServeOptions::default()
        };
        let stop = Shutdown::new();
        let mut servers = JoinSet::new();
        for listener in self.listeners {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "token proxy listening");
            }
            servers.spawn(server::serve_plain(
                listener,
                self.router.clone(),
                options,
                stop.clone(),
            ));
        }
        shutdown.await;
        tracing::info!("shutting down the token proxy");
        stop.trigger();
        while let Some(served) = servers.join_next().await {
            if let Ok(Err(error)) = served {
                tracing::warn!(%error, "a proxy listener stopped with an error");
            }
        }
    }
}

/// Routes what the proxy serves; everything else is 404, or 405 for a non-GET.
async fn dispatch(
    State(state): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    let result = if imds::is_token_path(path) {
        match require_get(&method) {
            Ok(()) => imds::token(&state, &uri, &headers).await,
            Err(rejection) => Err(rejection),
        }
    } else if app_service::is_token_path(path) {
        match require_get(&method) {
            Ok(()) => app_service::token(&state, &uri, &headers).await,
            Err(rejection) => Err(rejection),
        }
        .map_err(Rejection::app_service)
    } else if path
        .split('/')
        .nth(1)
        .is_some_and(|first| first.eq_ignore_ascii_case("metadata"))
    {
        match require_get(&method) {
            Ok(()) => state.forwarder.forward(&uri, &headers).await,
            Err(rejection) => Err(rejection),
        }
    } else {
        Err(Rejection::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "not found: the proxy serves /metadata/... only",
        ))
    };
    match result {
        Ok(response) => response,
        Err(rejection) => {
            tracing::debug!(%method, path, status = rejection.status().as_u16(), "request refused");
            rejection.into_response()
        }
    }
}

fn require_get(method: &Method) -> Result<(), Rejection> {
    if method == Method::GET {
        Ok(())
    } else {
        Err(Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("method {method} is not allowed: use GET"),
        ))
    }
}

/// Refuses requests that went through an HTTP proxy (`X-Forwarded-For` or `Forwarded`), as IMDS
/// does: the proxy answers only programs in its own pod.
async fn refuse_forwarded(request: Request, next: Next) -> Response {
    let headers = request.headers();
    if headers.contains_key("x-forwarded-for") || headers.contains_key(header::FORWARDED) {
        tracing::warn!(
            path = request.uri().path(),
            "refused a request carrying X-Forwarded-For or Forwarded"
        );
        let rejection = Rejection::bad_request(
            "requests carrying an X-Forwarded-For or Forwarded header are refused: the token proxy only \
             answers programs in its own pod, not through HTTP proxies",
        );
        let rejection = if app_service::is_token_path(request.uri().path()) {
            rejection.app_service()
        } else {
            rejection
        };
        return rejection.into_response();
    }
    next.run(request).await
}

async fn server_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::SERVER,
        HeaderValue::from_static(concat!("azure-wi/", env!("CARGO_PKG_VERSION"))),
    );
    response
}
