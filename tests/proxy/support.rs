//! Fakes for what cannot run offline (the Entra stand-in and the recording server behind the IMDS
//! stand-in are azure-wi-test-support's), and helpers to call the router.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
    response::Response,
};
use azure_wi::proxy::{CredentialFactory, Proxy, ProxyConfig};
use azure_wi_identity::{self as credential, AccessToken, Env, TokenCredential, TokenRequestOptions};
use azure_wi_test_support::{
    entra::{Entra, Trust},
    recording_server::{Reply, TestServer},
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

#[async_trait::async_trait]
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

/// A stand-in for IMDS's instance-metadata endpoints on the recording server: answers
/// `{"path":..,"query":..,"metadata":..}` (and the two headers that must not reach IMDS) with a
/// `set-cookie` header, and counts requests; `/metadata/redirect` answers a redirect.
pub struct ImdsStandIn(TestServer);

impl ImdsStandIn {
    pub async fn start() -> Self {
        Self(
            TestServer::with_handler(|request| {
                if request.path() == "/metadata/redirect" {
                    return Reply::status(302).header("location", "/metadata/identity/oauth2/token");
                }
                let seen = |name: &str| request.header(name).unwrap_or("").to_owned();
                let body = serde_json::json!({
                    "path": request.path(),
                    "query": request.target.split_once('?').map(|(_, query)| query),
                    "metadata": seen("metadata"),
                    "x-identity-header": seen("x-identity-header"),
                    "authorization": seen("authorization"),
                });
                Reply::json(200, body).header("set-cookie", "leak=1")
            })
            .await,
        )
    }

    pub fn url(&self) -> String {
        self.0.url()
    }

    pub fn hits(&self) -> usize {
        self.0.request_count()
    }
}

/// The Microsoft Entra stand-in (`azure_wi_test_support::entra`) on plain HTTP at 127.0.0.1,
/// for tenant [`TENANT`] and the assertion [`ASSERTION`] (the federated token file of [`Served`]).
pub async fn entra() -> Entra {
    let trust = Trust::Assertion {
        tenant: TENANT.into(),
        assertion: ASSERTION.into(),
    };
    Entra::start_plain(trust, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
}

/// The claims of one of the stand-in's (JWT-shaped) access tokens: `appid` the client, `aud` the
/// scope's resource, `uti` `exchange-<n>`.
pub fn claims(access_token: &str) -> Value {
    use base64::Engine as _;
    let payload = access_token.split('.').nth(1).expect("a JWT-shaped token");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url claims");
    serde_json::from_slice(&json).expect("JSON claims")
}

/// A proxy with the real workload identity credential, served on 127.0.0.1:0, talking to the
/// Entra at `authority`. Returns its address and the handle that stops it.
pub struct Served {
    pub addr: SocketAddr,
    pub proxy: Proxy,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

pub const ASSERTION: &str = "eyJhbGciOiJSUzI1NiJ9.service-account-token.sig";

impl Served {
    pub async fn start(authority: &str, identity_endpoint: bool) -> Self {
        install_crypto();
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, ASSERTION).unwrap();
        let mut pairs = vec![
            ("AZURE_TENANT_ID".to_owned(), TENANT.to_owned()),
            ("AZURE_CLIENT_ID".to_owned(), DEFAULT_CLIENT.to_owned()),
            ("AZURE_AUTHORITY_HOST".to_owned(), authority.to_owned()),
            (
                "AZURE_FEDERATED_TOKEN_FILE".to_owned(),
                token_file.display().to_string(),
            ),
        ];
        if identity_endpoint {
            pairs.push(("IDENTITY_HEADER".to_owned(), IDENTITY_HEADER.to_owned()));
        }
        let env = Env::from_pairs(pairs);
        let config = ProxyConfig::from_env(&env, 0, identity_endpoint, "http://127.0.0.1:9").unwrap();
        let proxy = Proxy::new(config, azure_wi::proxy::workload_identity_factory(env)).unwrap();
        let bound = proxy.clone().bind().await.unwrap();
        let addr = bound.local_addrs()[0];
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(bound.serve(async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            proxy,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    pub fn imds_url(&self, resource: &str) -> String {
        format!(
            "http://{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={resource}",
            self.addr
        )
    }

    /// Signals shutdown and waits for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap();
    }
}

/// A plain HTTP client for the tests.
pub fn client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder().no_proxy().build().unwrap()
}
