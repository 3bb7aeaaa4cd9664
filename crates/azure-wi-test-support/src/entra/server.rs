//! The stand-in's HTTP side: Entra's routes, the control routes, and the two ways of serving them
//! (HTTPS directly; plain HTTP that also tunnels `CONNECT` into TLS).

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
};
use tokio_rustls::TlsAcceptor;

use super::{Issued, Trust, exchange};

/// How long a client may take to send a request's headers, or to finish a TLS handshake.
const DEADLINE: Duration = Duration::from_secs(10);
/// The largest token request body read.
const MAX_BODY: usize = 64 * 1024;

/// What every connection shares.
pub(super) struct State {
    trust: Trust,
    http: Option<reqwest::Client>,
    tunnel: Option<TlsAcceptor>,
    pub(super) counts: Counts,
    pub(super) issued: Mutex<Vec<Issued>>,
    pub(super) refused: Mutex<Vec<String>>,
    /// While `true`, token requests wait (after `arrived` is notified).
    pub(super) held: tokio::sync::watch::Sender<bool>,
    pub(super) arrived: tokio::sync::Notify,
    /// While `true`, token requests are answered 503 (AADSTS90033).
    pub(super) failing: AtomicBool,
    /// Whether issued tokens are kept for [`super::Entra::issued`].
    pub(super) keep_issued: AtomicBool,
}

impl State {
    pub(super) fn new(trust: Trust, tunnel: Option<TlsAcceptor>) -> Arc<State> {
        let http = match &trust {
            Trust::Federated { issuer_ca_pem, .. } => Some(
                reqwest::Client::builder()
                    .tls_certs_only([
                        reqwest::Certificate::from_pem(issuer_ca_pem.as_bytes()).expect("issuer CA PEM")
                    ])
                    .timeout(DEADLINE)
                    .build()
                    .expect("HTTP client"),
            ),
            Trust::Assertion { .. } => None,
        };
        Arc::new(State {
            trust,
            http,
            tunnel,
            counts: Counts::default(),
            issued: Mutex::default(),
            refused: Mutex::default(),
            held: tokio::sync::watch::channel(false).0,
            arrived: tokio::sync::Notify::new(),
            failing: AtomicBool::new(false),
            keep_issued: AtomicBool::new(true),
        })
    }
}

/// The counters of `GET /counts`.
#[derive(Default)]
pub(super) struct Counts {
    tunnels: AtomicU64,
    discoveries: AtomicU64,
    openid: AtomicU64,
    pub(super) exchanges: AtomicU64,
    refused: AtomicU64,
}

impl Counts {
    pub(super) fn json(&self) -> Value {
        json!({
            "tunnels": self.tunnels.load(Ordering::Relaxed),
            "instance_discoveries": self.discoveries.load(Ordering::Relaxed),
            "openid_configurations": self.openid.load(Ordering::Relaxed),
            "exchanges": self.exchanges.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
        })
    }
}

type Answer = Response<Full<Bytes>>;

fn http1() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(DEADLINE);
    builder
}

/// Serves Entra's routes over HTTPS until the task is aborted.
pub(super) async fn serve_https(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<State>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            if let Ok(Ok(tls)) = tokio::time::timeout(DEADLINE, acceptor.accept(tcp)).await {
                serve_tls(tls, state).await;
            }
        });
    }
}

async fn serve_tls<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(tls: S, state: Arc<State>) {
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(&state, "https", request).await) }
    });
    let _ = http1().serve_connection(TokioIo::new(tls), service).await;
}

/// Serves plain HTTP (and `CONNECT` tunnels when the state has a tunnel certificate) until the
/// task is aborted.
pub(super) async fn serve_plain(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(plain(state, request).await) }
            });
            let _ = http1()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn plain(state: Arc<State>, request: Request<Incoming>) -> Answer {
    if request.method() != Method::CONNECT {
        return route(&state, "http", request).await;
    }
    let Some(acceptor) = state.tunnel.clone() else {
        return refuse(
            &state,
            StatusCode::METHOD_NOT_ALLOWED,
            "no tunnel certificate: CONNECT is not served".into(),
        );
    };
    state.counts.tunnels.fetch_add(1, Ordering::Relaxed);
    let tunnel_state = state.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(request).await else {
            return;
        };
        if let Ok(Ok(tls)) = tokio::time::timeout(DEADLINE, acceptor.accept(TokioIo::new(upgraded))).await {
            serve_tls(tls, tunnel_state).await;
        }
    });
    Response::new(Full::new(Bytes::new()))
}

/// Entra's routes and the control routes.
async fn route(state: &State, scheme: &str, request: Request<Incoming>) -> Answer {
    let host = request
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("login.microsoftonline.com")
        .to_owned();
    let base = format!("{scheme}://{host}");
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (request.method().clone(), segments.as_slice()) {
        (Method::GET, ["readyz"]) => Response::new(Full::new(Bytes::from_static(b"ok"))),
        (Method::GET, ["counts"]) => reply(StatusCode::OK, &state.counts.json()),
        (Method::GET, ["common", "discovery", "instance"]) => {
            state.counts.discoveries.fetch_add(1, Ordering::Relaxed);
            let aliases = [
                host.as_str(),
                "login.windows.net",
                "login.microsoft.com",
                "sts.windows.net",
            ];
            let tenant = request
                .uri()
                .query()
                .and_then(|q| {
                    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "authorization_endpoint")
                })
                .and_then(|(_, v)| v.split('/').nth(3).map(str::to_owned))
                .unwrap_or_else(|| "common".into());
            reply(
                StatusCode::OK,
                &json!({
                    "tenant_discovery_endpoint": format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"),
                    "api-version": "1.1",
                    "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": aliases}],
                }),
            )
        }
        (Method::GET, [tenant, "v2.0", ".well-known", "openid-configuration"]) => {
            if !state.trust.has_tenant(tenant) {
                return refuse(
                    state,
                    StatusCode::BAD_REQUEST,
                    format!("Tenant '{tenant}' not found."),
                );
            }
            state.counts.openid.fetch_add(1, Ordering::Relaxed);
            reply(
                StatusCode::OK,
                &json!({
                    "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
                    "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
                    "issuer": format!("{base}/{tenant}/v2.0"),
                    "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                    "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                    "tenant_region_scope": "EU",
                }),
            )
        }
        (Method::POST, [tenant, "oauth2", "v2.0", "token"]) => {
            let tenant = tenant.to_string();
            let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => {
                    return refuse(
                        state,
                        StatusCode::BAD_REQUEST,
                        format!("the request body could not be read: {e}"),
                    );
                }
            };
            let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
            state.arrived.notify_waiters();
            let _ = state.held.subscribe().wait_for(|held| !held).await;
            let checked = if state.failing.load(Ordering::SeqCst) {
                Err(exchange::EntraError::unavailable())
            } else {
                exchange::check(&state.trust, state.http.as_ref(), &tenant, &form).await
            };
            match checked {
                Ok((client_id, scope)) => {
                    let n = state.counts.exchanges.fetch_add(1, Ordering::Relaxed) + 1;
                    let issued = exchange::access_token(&base, &tenant, &client_id, &scope, n);
                    let body = json!({
                        "token_type": "Bearer",
                        "expires_in": 3599,
                        "ext_expires_in": 3599,
                        "access_token": issued.access_token,
                    });
                    if state.keep_issued.load(Ordering::Relaxed) {
                        state.issued.lock().expect("issued").push(issued);
                    }
                    reply(StatusCode::OK, &body)
                }
                Err(e) => {
                    state.counts.refused.fetch_add(1, Ordering::Relaxed);
                    eprintln!("Entra stand-in refused: {}", e.summary());
                    state.refused.lock().expect("refused").push(e.summary());
                    reply(e.status, &e.body())
                }
            }
        }
        _ => refuse(
            state,
            StatusCode::NOT_FOUND,
            format!("no route for {} {path}", request.method()),
        ),
    }
}

fn refuse(state: &State, status: StatusCode, why: String) -> Answer {
    state.counts.refused.fetch_add(1, Ordering::Relaxed);
    eprintln!("Entra stand-in refused: {why}");
    state.refused.lock().expect("refused").push(why.clone());
    reply(
        status,
        &json!({"error": "invalid_request", "error_description": format!("AADSTS900144: {why}")}),
    )
}

fn reply(status: StatusCode, body: &Value) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}
