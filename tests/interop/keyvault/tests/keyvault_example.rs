//! Runs `examples/keyvault_secret.rs` end to end: the official `SecretClient` with azure-wi's
//! `PlatformCredential` (workload identity through a token file), against two local stand-ins,
//! because neither Microsoft Entra nor Key Vault exists offline:
//!
//! - the Entra stand-in of `azure-wi-test-support` (HTTPS on 127.0.0.1), which checks the
//!   client-credentials request as Entra does, with the token file's content as the one assertion
//!   it trusts, and issues a fresh token (the test then checks its client id and Key Vault scope);
//! - a Key Vault stand-in that answers the SDK's unauthenticated first request with Key Vault's
//!   401 challenge, then checks the bearer token is exactly the one Entra issued and answers the
//!   secret in Key Vault's JSON shape.
//!
//! The SDK refuses a challenge whose resource is not a parent domain of the vault host, so the
//! vault keeps a real-looking name (`azwi-interop.vault.azure.net`). The example reaches it
//! through `HTTPS_PROXY`: the stand-in accepts `CONNECT azwi-interop.vault.azure.net:443` and
//! then terminates TLS itself with a certificate for that name from a test CA, which the example
//! trusts through `SSL_CERT_FILE`. The example's code is what a user runs, unchanged.

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::PathBuf,
    process::Output,
    sync::{Arc, Mutex},
};

use azure_wi_test_support::entra::{Entra, Trust};
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::TlsAcceptor;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "5d0b6b2c-7a4f-4f0e-9a3e-1f2e3d4c5b6a";
const VAULT_HOST: &str = "azwi-interop.vault.azure.net";
const SECRET_NAME: &str = "app-secret";
const SECRET_VERSION: &str = "4387e9f3d6e14c459867679a90fd0f79";
const KEY_VAULT_SCOPE: &str = "https://vault.azure.net/.default";

/// A random URL-safe string (tokens, assertions, the secret), so no result is hard-coded.
fn random(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf).unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A test CA, and a TLS acceptor for `names` with a certificate it issued.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "azure-wi interop test CA");
        Self {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// A serving certificate for `names` and its key (PEM).
    fn leaf_pem(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (leaf.pem(), key.serialize_pem())
    }

    fn acceptor(&self, names: &[&str]) -> TlsAcceptor {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let (cert, key) = self.leaf_pem(names);
        let cert = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }
}

/// One request a stand-in received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    authorization: Option<String>,
}

#[derive(Default)]
struct World {
    /// The Entra stand-in, whose issued token the vault must receive.
    entra: Option<Arc<Entra>>,
    vault: Vec<Seen>,
    connects: Vec<String>,
    secret_value: String,
}

type Shared = Arc<Mutex<World>>;

fn json_response(status: u16, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn seen(request: Request<hyper::body::Incoming>) -> Seen {
    let method = request.method().to_string();
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let authorization = request
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap_or("<not ascii>").to_owned());
    // Read the whole request (a GET has no body), so the connection stays usable.
    let _ = request.into_body().collect().await;
    Seen {
        method,
        target,
        authorization,
    }
}

/// Key Vault's `GET /secrets/{name}/?api-version=...`, with its challenge-based authentication.
fn vault(world: &Shared, request: Seen) -> Response<Full<Bytes>> {
    let mut world = world.lock().unwrap();
    world.vault.push(request.clone());
    let Some(authorization) = request.authorization else {
        let challenge = format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"https://vault.azure.net\""
        );
        let mut response = json_response(
            401,
            json!({"error": {"code": "Unauthorized",
            "message": "AKV10000: Request is missing a Bearer or PoP token."}}),
        );
        response
            .headers_mut()
            .insert("www-authenticate", challenge.parse().unwrap());
        return response;
    };
    let expected = world.entra.as_ref().and_then(|entra| {
        entra
            .issued()
            .first()
            .map(|t| format!("Bearer {}", t.access_token))
    });
    if Some(&authorization) != expected.as_ref() {
        return json_response(
            401,
            json!({"error": {"code": "Unauthorized",
            "message": "AKV10032: Invalid issuer or token."}}),
        );
    }
    let (path, query) = request.target.split_once('?').unwrap_or((&request.target, ""));
    let api_version = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "api-version");
    if request.method != "GET" || path != format!("/secrets/{SECRET_NAME}/") || api_version.is_none() {
        return json_response(
            404,
            json!({"error": {"code": "SecretNotFound",
            "message": format!("unexpected request {} {}", request.method, request.target)}}),
        );
    }
    json_response(
        200,
        json!({
            "value": world.secret_value,
            "contentType": "text/plain",
            "id": format!("https://{VAULT_HOST}/secrets/{SECRET_NAME}/{SECRET_VERSION}"),
            "attributes": {"enabled": true, "created": 1764115200, "updated": 1764115200,
                "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
            "tags": {}
        }),
    )
}

async fn serve_http<S>(stream: S, world: Shared, route: fn(&Shared, Seen) -> Response<Full<Bytes>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let world = world.clone();
        async move { Ok::<_, Infallible>(route(&world, seen(request).await)) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Reads an HTTP/1.1 request head byte by byte, so nothing after it is consumed.
async fn read_head(tcp: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return None;
        }
        head.push(tcp.read_u8().await.ok()?);
    }
    String::from_utf8(head).ok()
}

/// The Key Vault stand-in, reached through an HTTPS proxy on `127.0.0.1:0`: it accepts only
/// `CONNECT` to the vault's host, then serves Key Vault over TLS on the tunnel.
async fn start_vault_proxy(world: Shared, tls: TlsAcceptor) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (world, tls) = (world.clone(), tls.clone());
            tokio::spawn(async move {
                let Some(head) = read_head(&mut tcp).await else {
                    return;
                };
                let target = head
                    .lines()
                    .next()
                    .and_then(|l| l.strip_prefix("CONNECT "))
                    .and_then(|l| l.split(' ').next())
                    .unwrap_or("<not a CONNECT>")
                    .to_owned();
                world.lock().unwrap().connects.push(target.clone());
                if target != format!("{VAULT_HOST}:443") {
                    let _ = tcp
                        .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                if tcp
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                if let Ok(stream) = tls.accept(tcp).await {
                    serve_http(stream, world, vault).await;
                }
            });
        }
    });
    addr
}

/// The built example (cargo builds examples before it runs integration tests).
fn example_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join("examples").join("keyvault_secret");
    assert!(path.exists(), "{} was not built", path.display());
    path
}

struct Scenario {
    world: Shared,
    entra: Arc<Entra>,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Scenario {
    /// The example's environment, Entra trusting the token file's content (or `trusted`: a
    /// federated credential that does not match what the token file holds).
    async fn start(trusted: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.issuer.pem()).unwrap();
        let assertion = format!("eyJhbGciOiJSUzI1NiJ9.{}.{}", random(48), random(64));
        let token_file = dir.path().join("azure-identity-token");
        std::fs::write(&token_file, &assertion).unwrap();
        let (cert, key) = ca.leaf_pem(&["127.0.0.1"]);
        let trust = Trust::Assertion {
            tenant: TENANT.into(),
            assertion: trusted.unwrap_or(assertion),
        };
        let entra =
            Arc::new(Entra::start_https(trust, std::net::Ipv4Addr::LOCALHOST.into(), &cert, &key).await);
        let world: Shared = Arc::new(Mutex::new(World {
            entra: Some(entra.clone()),
            secret_value: random(27),
            ..World::default()
        }));
        let proxy = start_vault_proxy(world.clone(), ca.acceptor(&[VAULT_HOST])).await;
        let env = [
            ("AZURE_TENANT_ID", TENANT.to_owned()),
            ("AZURE_CLIENT_ID", CLIENT.to_owned()),
            ("AZURE_FEDERATED_TOKEN_FILE", token_file.display().to_string()),
            ("AZURE_AUTHORITY_HOST", entra.authority.clone()),
            ("SSL_CERT_FILE", ca_file.display().to_string()),
            ("HTTPS_PROXY", format!("http://{proxy}")),
            ("NO_PROXY", "127.0.0.1".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            world,
            entra,
            dir,
            env,
        }
    }

    async fn run_example(&self) -> Output {
        tokio::process::Command::new(example_path())
            .args([format!("https://{VAULT_HOST}/"), SECRET_NAME.to_owned()])
            .env_clear()
            .envs(self.env.iter().cloned())
            .current_dir(self.dir.path())
            .output()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn the_example_reads_the_secret_with_a_workload_identity_token() {
    let scenario = Scenario::start(None).await;
    let output = scenario.run_example().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "example failed\nstdout: {stdout}\nstderr: {stderr}"
    );

    let world = scenario.world.lock().unwrap();
    assert_eq!(
        stdout.trim(),
        format!(
            "id=https://{VAULT_HOST}/secrets/{SECRET_NAME}/{SECRET_VERSION} content_type=text/plain length={}",
            world.secret_value.len()
        )
    );
    // One token request, of our app, for the scope the vault's challenge named.
    let issued = scenario.entra.issued();
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert!(
        scenario.entra.refused().is_empty(),
        "{:?}",
        scenario.entra.refused()
    );
    assert_eq!(
        (issued[0].client_id.as_str(), issued[0].scope.as_str()),
        (CLIENT, KEY_VAULT_SCOPE)
    );
    // The SDK's challenge flow: first without a token, then with exactly the token Entra issued.
    let issued = issued[0].access_token.clone();
    let authorizations: Vec<Option<String>> = world.vault.iter().map(|r| r.authorization.clone()).collect();
    assert_eq!(authorizations, vec![None, Some(format!("Bearer {issued}"))]);
    assert!(
        world
            .vault
            .iter()
            .all(|r| r.method == "GET" && r.target.starts_with("/secrets/app-secret/?"))
    );
    assert!(
        world.connects.iter().all(|c| c == &format!("{VAULT_HOST}:443")),
        "{:?}",
        world.connects
    );
    // Neither the token nor the secret reaches the example's output.
    assert!(!stdout.contains(&issued) && !stdout.contains(&world.secret_value));
    assert!(!stderr.contains(&issued), "{stderr}");
}

#[tokio::test]
async fn a_refused_assertion_reaches_the_caller_as_an_authentication_failure() {
    // The federated credential does not match what the token file holds.
    let scenario = Scenario::start(Some(random(40))).await;
    let output = scenario.run_example().await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the example succeeded with a refused assertion"
    );
    assert!(stderr.contains("AADSTS700213"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l == "credential error kind: authentication_failed"),
        "the SDK error lost our error kind: {stderr}"
    );
    let world = scenario.world.lock().unwrap();
    assert_eq!(
        (scenario.entra.refused().len(), scenario.entra.exchanges()),
        (1, 0),
        "an authentication failure is not retried"
    );
    assert!(
        world.vault.iter().all(|r| r.authorization.is_none()),
        "no token may reach the vault"
    );
}
