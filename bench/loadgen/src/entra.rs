//! `loadgen entra`: a stand-in for Microsoft Entra's public-cloud endpoints, for the token proxy
//! benchmark (`scripts/bench/proxies`).
//!
//! It listens on one plain loopback port and is meant to be reached as an HTTPS proxy
//! (`HTTPS_PROXY=http://127.0.0.1:<port>`): a `CONNECT login.microsoftonline.com:443` is answered
//! 200 and the tunnel is served with TLS (the certificate of `--cert-dir`, made by `write-cert
//! --name login.microsoftonline.com` and trusted by the clients through `SSL_CERT_FILE`). So a
//! client configured for the real public cloud, including MSAL's instance discovery (which always
//! asks `login.microsoftonline.com`), works offline without changes. Plain requests to the same
//! port are served too, plus `GET /readyz` and `GET /counts`.
//!
//! Entra's routes, checked as Entra would:
//! - `GET /common/discovery/instance` (MSAL's instance discovery),
//! - `GET /{tenant}/v2.0/.well-known/openid-configuration` (MSAL's tenant discovery),
//! - `POST /{tenant}/oauth2/v2.0/token`: the tenant must be `--tenant`; the form must carry
//!   `grant_type=client_credentials`, the JWT-bearer `client_assertion_type`, a `client_assertion`
//!   equal to the federated token file's content, a `client_id` and a `.default` scope. The answer
//!   is a JWT-shaped access token (about the size of a real one) valid for an hour; each token
//!   names its exchange number.

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[derive(clap::Args)]
pub struct EntraArgs {
    /// Directory with `tls.crt` and `tls.key` for the tunnelled TLS (from `write-cert --name
    /// login.microsoftonline.com`).
    #[arg(long)]
    cert_dir: PathBuf,
    /// Plain address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// The only tenant served.
    #[arg(long)]
    tenant: String,
    /// The federated token file: every `client_assertion` must equal its (trimmed) content.
    #[arg(long)]
    assertion_file: PathBuf,
}

#[derive(Default)]
struct Counts {
    tunnels: AtomicU64,
    discoveries: AtomicU64,
    openid: AtomicU64,
    exchanges: AtomicU64,
    refused: AtomicU64,
}

struct State {
    tenant: String,
    assertion: String,
    counts: Counts,
    tls: tokio_rustls::TlsAcceptor,
}

type Answer = Response<Full<Bytes>>;

/// Serves until killed.
pub async fn serve(args: EntraArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.addr.ip().is_loopback(), "--addr must be a loopback address");
    let assertion = std::fs::read_to_string(&args.assertion_file)
        .with_context(|| format!("cannot read {}", args.assertion_file.display()))?
        .trim()
        .to_owned();
    anyhow::ensure!(
        !assertion.is_empty(),
        "{} is empty",
        args.assertion_file.display()
    );
    let state = Arc::new(State {
        tenant: args.tenant,
        assertion,
        counts: Counts::default(),
        tls: tokio_rustls::TlsAcceptor::from(Arc::new(crate::floor::server_config(&args.cert_dir)?)),
    });
    let listener = TcpListener::bind(args.addr).await?;
    println!("entra stand-in listening on {}", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(plain(state, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
        });
    }
}

/// A request on the plain port: a tunnel, the control routes, or Entra's routes over plain HTTP.
async fn plain(state: Arc<State>, request: Request<Incoming>) -> Answer {
    if request.method() == Method::CONNECT {
        state.counts.tunnels.fetch_add(1, Ordering::Relaxed);
        let tunnel_state = state.clone();
        tokio::spawn(async move {
            let Ok(upgraded) = hyper::upgrade::on(request).await else {
                return;
            };
            let Ok(tls) = tunnel_state.tls.accept(TokioIo::new(upgraded)).await else {
                return;
            };
            let service = service_fn(move |request| {
                let state = tunnel_state.clone();
                async move { Ok::<_, Infallible>(entra(&state, "https", request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
        return Response::new(Full::new(Bytes::new()));
    }
    match request.uri().path() {
        "/readyz" => Response::new(Full::new(Bytes::from_static(b"ok"))),
        "/counts" => {
            let c = &state.counts;
            reply(
                StatusCode::OK,
                &json!({
                    "tunnels": c.tunnels.load(Ordering::Relaxed),
                    "instance_discoveries": c.discoveries.load(Ordering::Relaxed),
                    "openid_configurations": c.openid.load(Ordering::Relaxed),
                    "exchanges": c.exchanges.load(Ordering::Relaxed),
                    "refused": c.refused.load(Ordering::Relaxed),
                }),
            )
        }
        _ => entra(&state, "http", request).await,
    }
}

/// Entra's routes.
async fn entra(state: &State, scheme: &str, request: Request<Incoming>) -> Answer {
    let host = request
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("login.microsoftonline.com")
        .to_owned();
    let base = format!("{scheme}://{host}");
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let tenant = state.tenant.as_str();
    match (request.method().clone(), segments.as_slice()) {
        (Method::GET, ["common", "discovery", "instance"]) => {
            state.counts.discoveries.fetch_add(1, Ordering::Relaxed);
            let aliases = [
                host.as_str(),
                "login.windows.net",
                "login.microsoft.com",
                "sts.windows.net",
            ];
            reply(
                StatusCode::OK,
                &json!({
                    "tenant_discovery_endpoint": format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"),
                    "api-version": "1.1",
                    "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": aliases}],
                }),
            )
        }
        (Method::GET, [t, "v2.0", ".well-known", "openid-configuration"]) if *t == tenant => {
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
        (Method::POST, [t, "oauth2", "v2.0", "token"]) if *t == tenant => {
            let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
                return refuse(state, "the request body could not be read");
            };
            exchange(state, &base, &body)
        }
        _ => {
            state.counts.refused.fetch_add(1, Ordering::Relaxed);
            eprintln!("refused: no route for {} {path}", request.method());
            reply(
                StatusCode::NOT_FOUND,
                &json!({"error": "invalid_request", "error_description": format!("AADSTS90002: no route for {path} (tenant {tenant})")}),
            )
        }
    }
}

/// The client-credentials exchange with a federated assertion.
fn exchange(state: &State, base: &str, body: &[u8]) -> Answer {
    let form = parse_form(body);
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if field("grant_type") != Some("client_credentials") {
        return refuse(state, "grant_type must be client_credentials");
    }
    if field("client_assertion_type") != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return refuse(state, "client_assertion_type must be the JWT bearer type");
    }
    if field("client_assertion") != Some(state.assertion.as_str()) {
        let got = field("client_assertion").unwrap_or_default();
        let first_difference = got.bytes().zip(state.assertion.bytes()).position(|(a, b)| a != b);
        eprintln!(
            "client_assertion refused: {} bytes (expected {}), first difference at {first_difference:?}",
            got.len(),
            state.assertion.len()
        );
        return refuse(state, "client_assertion is missing or is not the federated token");
    }
    let Some(client_id) = field("client_id").filter(|c| !c.is_empty()) else {
        return refuse(state, "client_id is missing");
    };
    let Some(scope) = field("scope").filter(|s| s.split(' ').any(|s| s.ends_with("/.default"))) else {
        return refuse(state, "scope must name a .default scope");
    };
    let n = state.counts.exchanges.fetch_add(1, Ordering::Relaxed) + 1;
    let resource = scope
        .split(' ')
        .find(|s| s.ends_with("/.default"))
        .unwrap_or(scope)
        .trim_end_matches("/.default");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let token = access_token(&json!({
        "aud": resource, "iss": format!("{base}/{}/v2.0", state.tenant), "iat": now, "nbf": now,
        "exp": now + 3599, "aio": "E2ZgYJj/bench/stand-in/aio/claim/of/realistic/length/AAA=",
        "appid": client_id, "appidacr": "2", "idp": format!("{base}/{}/", state.tenant),
        "idtyp": "app", "oid": "3b1c6f8e-0000-4000-8000-00000000b0b0", "rh": "0.AAAA-bench-stand-in-rh-claim.",
        "sub": "3b1c6f8e-0000-4000-8000-00000000b0b0", "tid": state.tenant, "uti": format!("exchange-{n}"),
        "ver": "2.0", "xms_ftd": "bench-stand-in-ftd-claim", "xms_idrel": "7 14",
    }));
    reply(
        StatusCode::OK,
        &json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
    )
}

fn refuse(state: &State, why: &str) -> Answer {
    state.counts.refused.fetch_add(1, Ordering::Relaxed);
    eprintln!("refused: {why}");
    reply(
        StatusCode::BAD_REQUEST,
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

/// A JWT-shaped token: header, claims, and 256 bytes of stand-in signature (an RS256 signature's
/// length), each base64url without padding.
fn access_token(claims: &Value) -> String {
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "bench-stand-in-key"});
    let signature: Vec<u8> = (0..=255u8).collect();
    format!(
        "{}.{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes()),
        base64url(&signature)
    )
}

fn base64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// `application/x-www-form-urlencoded` pairs, percent-decoded (`+` is a space).
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    body.split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut parts = pair.splitn(2, |b| *b == b'=');
            let key = decode(parts.next().unwrap_or_default());
            let value = decode(parts.next().unwrap_or_default());
            (key, value)
        })
        .collect()
}

fn decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => {
                match std::str::from_utf8(&raw[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_the_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64url(plain.as_bytes()), encoded);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn forms_are_percent_decoded() {
        let form = parse_form(b"scope=https%3A%2F%2Fvault.azure.net%2F.default&a=b+c&bad=%zz&tail=%4");
        assert_eq!(
            form[0],
            ("scope".into(), "https://vault.azure.net/.default".into())
        );
        assert_eq!(form[1], ("a".into(), "b c".into()));
        assert_eq!(form[2], ("bad".into(), "%zz".into()));
        assert_eq!(form[3], ("tail".into(), "%4".into()));
    }
}
