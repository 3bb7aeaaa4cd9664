//! A local stand-in for Microsoft Entra ID's token endpoint (the one part of the chain that cannot
//! run offline). It serves HTTPS on 127.0.0.1 (`POST /{tenant}/oauth2/v2.0/token`) and checks a
//! client assertion the way Entra checks one for a federated identity credential:
//!
//! 1. the tenant exists and the app (`client_id`) is registered in it;
//! 2. a federated credential of that app names the assertion's issuer;
//! 3. the signature (RS256) verifies against a key of the issuer's JWKS, found through the issuer's
//!    OIDC discovery document (`{iss}/.well-known/openid-configuration`, fetched anonymously);
//! 4. the assertion is within its validity period;
//! 5. subject and audience equal the federated credential's.
//!
//! Only then does it return an access token (JSON as Entra's); otherwise an Entra-style error with
//! its AADSTS code. Clients trust its certificate through `SSL_CERT_FILE` (the test bed's CA).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};

use super::pki::Pki;

/// A federated identity credential of an app registration: Entra accepts an assertion for
/// `client_id` in `tenant_id` whose issuer, subject and audience equal these.
#[derive(Clone, Debug)]
pub struct FederatedCredential {
    /// The directory (tenant) id.
    pub tenant_id: String,
    /// The application (client) id.
    pub client_id: String,
    /// The token issuer (the cluster's service-account issuer URL).
    pub issuer: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub subject: String,
    /// Normally `api://AzureADTokenExchange`.
    pub audience: String,
}

impl FederatedCredential {
    /// The credential of app `client_id` in `tenant_id` for the ServiceAccount `namespace`/`name`
    /// of the cluster whose issuer is `issuer`, with `audience`.
    pub fn for_service_account(
        tenant_id: &str,
        client_id: &str,
        issuer: &str,
        (namespace, name): (&str, &str),
        audience: &str,
    ) -> Self {
        Self {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            issuer: issuer.into(),
            subject: format!("system:serviceaccount:{namespace}:{name}"),
            audience: audience.into(),
        }
    }
}

/// One access token handed out.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The app it was issued to.
    pub client_id: String,
    /// The requested scope.
    pub scope: String,
    /// The token itself.
    pub access_token: String,
}

/// The running stand-in; stops on drop.
pub struct Entra {
    /// The authority host to configure clients with (`AZURE_AUTHORITY_HOST`), e.g. `https://127.0.0.1:4321`.
    pub authority: String,
    state: Arc<Shared>,
    server: JoinHandle<()>,
}

struct Shared {
    credentials: Vec<FederatedCredential>,
    http: reqwest::Client,
    issued: Mutex<Vec<Issued>>,
    refused: Mutex<Vec<String>>,
}

impl Entra {
    /// Starts the stand-in with a serving certificate from `pki`, trusting `pki`'s CA when it
    /// fetches an issuer's discovery document and keys.
    pub async fn start(pki: &Pki, credentials: Vec<FederatedCredential>) -> Entra {
        Entra::start_on(pki, credentials, IpAddr::V4(Ipv4Addr::LOCALHOST)).await
    }

    /// [`Entra::start`] on another address of this machine (e.g. the host side of the node test
    /// bed's veth pair, which pods reach).
    pub async fn start_on(pki: &Pki, credentials: Vec<FederatedCredential>, ip: IpAddr) -> Entra {
        let cert = pki.server_cert_for("entra-stand-in", &["localhost"], &[ip]);
        Entra::start_with_cert(pki, credentials, ip, cert).await
    }

    /// [`Entra::start`] with a certificate naming only the DNS names `dns` (not its address): a
    /// client reaches it only by sending one of them as the TLS server name (an identity binding's
    /// token proxy, `AZURE_KUBERNETES_SNI_NAME`).
    pub async fn start_for_names(pki: &Pki, credentials: Vec<FederatedCredential>, dns: &[&str]) -> Entra {
        let cert = pki.server_cert_for("token-proxy-stand-in", dns, &[]);
        Entra::start_with_cert(pki, credentials, IpAddr::V4(Ipv4Addr::LOCALHOST), cert).await
    }

    async fn start_with_cert(
        pki: &Pki,
        credentials: Vec<FederatedCredential>,
        ip: IpAddr,
        cert: super::pki::CertAndKey,
    ) -> Entra {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).expect("cert pem")],
                PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key pem"),
            )
            .expect("server tls config");
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem().as_bytes()).expect("ca")])
            .build()
            .expect("http client");
        let state = Arc::new(Shared {
            credentials,
            http,
            issued: Mutex::default(),
            refused: Mutex::default(),
        });
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .with_state(state.clone());
        let listener = TcpListener::bind((ip, 0)).await.expect("bind stand-in");
        let authority = format!("https://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(serve(listener, TlsAcceptor::from(Arc::new(tls)), router));
        Entra {
            authority,
            state,
            server,
        }
    }

    /// The access tokens issued so far.
    pub fn issued(&self) -> Vec<Issued> {
        self.state.issued.lock().expect("issued").clone()
    }

    /// The error descriptions of the requests refused so far.
    pub fn refused(&self) -> Vec<String> {
        self.state.refused.lock().expect("refused").clone()
    }
}

impl Drop for Entra {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, router: Router) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
                .await;
        });
    }
}

/// An Entra error response: HTTP status, OAuth error, and the AADSTS code and text.
struct EntraError(StatusCode, &'static str, u32, String);

impl IntoResponse for EntraError {
    fn into_response(self) -> Response {
        let EntraError(status, error, code, text) = self;
        let body = json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text} Trace ID: e2e Correlation ID: e2e Timestamp: {}",
                time::OffsetDateTime::now_utc()),
            "error_codes": [code],
            "timestamp": time::OffsetDateTime::now_utc().unix_timestamp().to_string(),
            "trace_id": "00000000-0000-0000-0000-0000000000e2",
            "correlation_id": "00000000-0000-0000-0000-0000000000e2",
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        });
        (status, Json(body)).into_response()
    }
}

fn bad_request(error: &'static str, code: u32, text: String) -> EntraError {
    EntraError(StatusCode::BAD_REQUEST, error, code, text)
}

async fn token(
    State(state): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    match exchange(&state, &tenant, &form).await {
        Ok(issued) => {
            let body = json!({
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": issued.access_token,
            });
            state.issued.lock().expect("issued").push(issued);
            Json(body).into_response()
        }
        Err(e) => {
            state
                .refused
                .lock()
                .expect("refused")
                .push(format!("AADSTS{}: {}", e.2, e.3));
            e.into_response()
        }
    }
}

async fn exchange(
    state: &Shared,
    tenant: &str,
    form: &HashMap<String, String>,
) -> Result<Issued, EntraError> {
    let field = |name: &str| {
        form.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            bad_request(
                "invalid_request",
                900144,
                format!("The request body must contain the following parameter: '{name}'."),
            )
        })
    };
    if !state.credentials.iter().any(|c| c.tenant_id == tenant) {
        return Err(bad_request(
            "invalid_request",
            90002,
            format!("Tenant '{tenant}' not found."),
        ));
    }
    if field("grant_type")? != "client_credentials" {
        return Err(bad_request(
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.".into(),
        ));
    }
    let client_id = field("client_id")?;
    let scope = field("scope")?;
    if !scope.ends_with("/.default") {
        return Err(bad_request(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    if field("client_assertion_type")? != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return Err(bad_request(
            "invalid_request",
            50027,
            "Invalid client_assertion_type.".into(),
        ));
    }
    let app: Vec<&FederatedCredential> = state
        .credentials
        .iter()
        .filter(|c| c.tenant_id == tenant && &c.client_id == client_id)
        .collect();
    if app.is_empty() {
        return Err(bad_request(
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        ));
    }
    let jwt = Jwt::parse(field("client_assertion")?).ok_or_else(|| {
        bad_request(
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.".into(),
        )
    })?;
    let issuer = jwt.claim_str("iss").unwrap_or_default();
    let by_issuer: Vec<&FederatedCredential> = app.into_iter().filter(|c| c.issuer == issuer).collect();
    if by_issuer.is_empty() {
        return Err(bad_request(
            "invalid_client",
            700211,
            format!("No matching federated identity record found for presented assertion issuer '{issuer}'."),
        ));
    }
    verify_signature(&state.http, issuer, &jwt).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let exp = jwt.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    let nbf = jwt.claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
    if exp <= now || nbf > now + 300 {
        return Err(bad_request(
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.".into(),
        ));
    }
    let subject = jwt.claim_str("sub").unwrap_or_default();
    let by_subject: Vec<&FederatedCredential> =
        by_issuer.into_iter().filter(|c| c.subject == subject).collect();
    if by_subject.is_empty() {
        return Err(bad_request(
            "invalid_client",
            700213,
            format!(
                "No matching federated identity record found for presented assertion subject '{subject}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion."
            ),
        ));
    }
    let audiences: Vec<&str> = match jwt.claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !by_subject
        .iter()
        .any(|c| audiences.contains(&c.audience.as_str()))
    {
        return Err(bad_request(
            "invalid_client",
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience '{}'.",
                audiences.join(",")
            ),
        ));
    }
    let n = state.issued.lock().expect("issued").len();
    Ok(Issued {
        client_id: client_id.clone(),
        scope: scope.clone(),
        access_token: format!(
            "e2e-access-token.{}.{n}",
            URL_SAFE_NO_PAD.encode(format!("{tenant}/{client_id}/{scope}"))
        ),
    })
}

/// A decoded (not yet verified) JWT.
struct Jwt {
    header: Value,
    claims: Value,
    signed: String,
    signature: Vec<u8>,
}

impl Jwt {
    fn parse(token: &str) -> Option<Jwt> {
        let mut parts = token.trim().split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let json = |p: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(p).ok()?).ok();
        Some(Jwt {
            header: json(h)?,
            claims: json(c)?,
            signed: format!("{h}.{c}"),
            signature: URL_SAFE_NO_PAD.decode(s).ok()?,
        })
    }

    fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

/// Fetches the issuer's discovery document and JWKS and checks the RS256 signature.
async fn verify_signature(http: &reqwest::Client, issuer: &str, jwt: &Jwt) -> Result<(), EntraError> {
    let invalid = |why: String| {
        EntraError(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            format!("Client assertion failed signature validation. ({why})"),
        )
    };
    let get = |url: String| async move {
        let response = http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", response.status()));
        }
        response
            .json::<Value>()
            .await
            .map_err(|e| format!("GET {url}: {e}"))
    };
    let discovery = get(format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
    .await
    .map_err(|e| invalid(format!("cannot read the issuer's discovery document: {e}")))?;
    if discovery.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(invalid(format!(
            "the discovery document's issuer is not '{issuer}'"
        )));
    }
    let jwks_uri = discovery
        .get("jwks_uri")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let jwks = get(jwks_uri.to_string())
        .await
        .map_err(|e| invalid(format!("cannot read the JWKS: {e}")))?;
    if jwt.header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(invalid("only RS256 is accepted".into()));
    }
    let kid = jwt.header.get("kid").and_then(Value::as_str);
    let key = jwks
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|k| {
            k.get("kid").and_then(Value::as_str) == kid && k.get("kty").and_then(Value::as_str) == Some("RSA")
        })
        .ok_or_else(|| invalid(format!("no RSA key with kid {kid:?} in the issuer's JWKS")))?;
    let component = |name: &str| {
        key.get(name)
            .and_then(Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .unwrap_or_default()
    };
    let (n, e) = (component("n"), component("e"));
    ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            jwt.signed.as_bytes(),
            &jwt.signature,
        )
        .map_err(|_| invalid("the signature does not verify".into()))
}
