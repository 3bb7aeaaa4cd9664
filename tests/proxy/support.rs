//! Fakes for what cannot run offline, and helpers to call the router.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use async_trait::async_trait;
use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
    response::Response,
};
use azure_wi::{
    credential::{self, AccessToken, Env, TokenCredential, TokenRequestOptions},
    proxy::{CredentialFactory, Proxy, ProxyConfig},
};
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use tower::ServiceExt as _;

/// The identity header of the tests' identity-endpoint mode.
pub const IDENTITY_HEADER: &str = "7f3a9c2e5b1d4f608a9e7c3b2d1f0e4a";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const DEFAULT_CLIENT: &str = "11111111-2222-3333-4444-555555555555";

/// A credential that answers `token-for:<client>:<scope>` and records what it was asked.
#[derive(Debug)]
pub struct FakeCredential {
    client_id: String,
    calls: Arc<Mutex<Vec<String>>>,
    failure: Option<fn() -> credential::Error>,
}

#[async_trait]
impl TokenCredential for FakeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions>,
    ) -> credential::Result<AccessToken> {
        self.calls.lock().unwrap().push(scopes.join(" "));
        if let Some(failure) = self.failure {
            return Err(failure());
        }
        Ok(AccessToken::new(
            format!("token-for:{}:{}", self.client_id, scopes.join(" ")),
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
    }
}

/// What the fake factory saw.
#[derive(Clone, Default)]
pub struct Recorder {
    pub created: Arc<Mutex<Vec<(String, String)>>>,
    pub scopes: Arc<Mutex<Vec<String>>>,
    pub failure: Option<fn() -> credential::Error>,
}

impl Recorder {
    pub fn factory(&self) -> CredentialFactory {
        let recorder = self.clone();
        Arc::new(move |client: &str, tenant: &str| {
            recorder
                .created
                .lock()
                .unwrap()
                .push((client.to_owned(), tenant.to_owned()));
            Ok(Arc::new(FakeCredential {
                client_id: client.to_owned(),
                calls: recorder.scopes.clone(),
                failure: recorder.failure,
            }) as Arc<dyn TokenCredential>)
        })
    }

    pub fn scopes(&self) -> Vec<String> {
        self.scopes.lock().unwrap().clone()
    }
}

/// A proxy configuration for tests: tenant and default client set, identity endpoint optional.
pub fn config(identity_endpoint: bool, imds: &str) -> ProxyConfig {
    let mut pairs = vec![("AZURE_TENANT_ID", TENANT), ("AZURE_CLIENT_ID", DEFAULT_CLIENT)];
    if identity_endpoint {
        pairs.push(("IDENTITY_HEADER", IDENTITY_HEADER));
    }
    ProxyConfig::from_env(&Env::from_pairs(pairs), 0, identity_endpoint, imds).unwrap()
}

/// A router over the fake credential.
pub fn router(recorder: &Recorder, identity_endpoint: bool, imds: &str) -> Router {
    install_crypto();
    Proxy::new(config(identity_endpoint, imds), recorder.factory())
        .unwrap()
        .router()
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Sends `request` through `router`; returns the status, the response and the body as JSON
/// (`Value::Null` when the body is not JSON).
pub async fn send(router: &Router, request: Request<Body>) -> (StatusCode, Response<()>, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, Response::from_parts(parts, ()), json)
}

pub fn get(uri: &str) -> axum::http::request::Builder {
    Request::builder().method("GET").uri(uri)
}

/// A stand-in for IMDS's instance-metadata endpoints: answers `{"path":..,"metadata":..}` and
/// counts requests; `/metadata/redirect` answers a redirect.
pub struct ImdsStandIn {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl ImdsStandIn {
    pub async fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = Router::new().fallback(move |request: Request<Body>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                if request.uri().path() == "/metadata/redirect" {
                    return Response::builder()
                        .status(StatusCode::FOUND)
                        .header("location", "/metadata/identity/oauth2/token")
                        .body(Body::empty())
                        .unwrap();
                }
                let headers = request.headers();
                let seen = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let body = serde_json::json!({
                    "path": request.uri().path(),
                    "query": request.uri().query(),
                    "metadata": seen("metadata"),
                    "x-identity-header": seen("x-identity-header"),
                    "authorization": seen("authorization"),
                });
                Response::builder()
                    .header("content-type", "application/json")
                    .header("set-cookie", "leak=1")
                    .body(Body::from(body.to_string()))
                    .unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, hits }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
