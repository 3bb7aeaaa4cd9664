//! The client-credentials exchange with a federated client assertion, checked as Microsoft Entra
//! checks it, and the access token it answers.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hyper::StatusCode;
use serde_json::{Value, json};

use super::{FederatedCredential, Issued, Trust};

/// The client assertion type of a federated credential (a JWT bearer assertion).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An Entra error answer: HTTP status, OAuth error, the AADSTS code and its text.
#[derive(Debug)]
pub(super) struct EntraError {
    pub(super) status: StatusCode,
    error: &'static str,
    pub(super) code: u32,
    pub(super) text: String,
}

impl EntraError {
    fn new(status: StatusCode, error: &'static str, code: u32, text: impl Into<String>) -> Self {
        Self {
            status,
            error,
            code,
            text: text.into(),
        }
    }

    /// Entra's answer while it is down (503, AADSTS90033).
    pub(super) fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
        )
    }

    fn bad_request(error: &'static str, code: u32, text: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, code, text)
    }

    /// The JSON body Entra answers with.
    pub(super) fn body(&self) -> Value {
        let now = time::OffsetDateTime::now_utc();
        json!({
            "error": self.error,
            "error_description": format!("AADSTS{}: {} Trace ID: stand-in Correlation ID: stand-in Timestamp: {now}",
                self.code, self.text),
            "error_codes": [self.code],
            "timestamp": now.unix_timestamp().to_string(),
            "trace_id": "00000000-0000-0000-0000-0000000000e2",
            "correlation_id": "00000000-0000-0000-0000-0000000000e2",
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        })
    }

    /// `AADSTS<code>: <text>`, as the stand-in records a refusal.
    pub(super) fn summary(&self) -> String {
        format!("AADSTS{}: {}", self.code, self.text)
    }
}

/// Checks the form of `POST /{tenant}/oauth2/v2.0/token` against `trust`; on success the
/// exchange's client id and scope (the access token is made by [`access_token`]).
pub(super) async fn check(
    trust: &Trust,
    http: Option<&reqwest::Client>,
    tenant: &str,
    form: &HashMap<String, String>,
) -> Result<(String, String), EntraError> {
    let field = |name: &str| {
        form.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            EntraError::bad_request(
                "invalid_request",
                900144,
                format!("The request body must contain the following parameter: '{name}'."),
            )
        })
    };
    if !trust.has_tenant(tenant) {
        return Err(EntraError::bad_request(
            "invalid_request",
            90002,
            format!("Tenant '{tenant}' not found."),
        ));
    }
    if field("grant_type")? != "client_credentials" {
        return Err(EntraError::bad_request(
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        ));
    }
    let client_id = field("client_id")?;
    let scope = field("scope")?;
    if !scope.split(' ').any(|s| s.ends_with("/.default")) {
        return Err(EntraError::bad_request(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    if field("client_assertion_type")? != JWT_BEARER {
        return Err(EntraError::bad_request(
            "invalid_request",
            50027,
            "Invalid client_assertion_type.",
        ));
    }
    let assertion = field("client_assertion")?;
    match trust {
        Trust::Federated { credentials, .. } => {
            let http = http.expect("a federated trust has an HTTP client");
            federated(credentials, http, tenant, client_id, assertion).await?;
        }
        Trust::Assertion {
            assertion: expected, ..
        } => {
            if assertion != expected {
                return Err(EntraError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    700213,
                    format!(
                        "No matching federated identity record found for presented assertion. (it is not the federated token: {} bytes, expected {})",
                        assertion.len(),
                        expected.len()
                    ),
                ));
            }
        }
    }
    Ok((client_id.clone(), scope.clone()))
}

/// The checks of a federated identity credential: the app, the issuer, the signature against the
/// issuer's JWKS, the validity period, the subject and the audience.
async fn federated(
    credentials: &[FederatedCredential],
    http: &reqwest::Client,
    tenant: &str,
    client_id: &str,
    assertion: &str,
) -> Result<(), EntraError> {
    let app: Vec<&FederatedCredential> = credentials
        .iter()
        .filter(|c| c.tenant_id == tenant && c.client_id == client_id)
        .collect();
    if app.is_empty() {
        return Err(EntraError::bad_request(
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        ));
    }
    let jwt = Jwt::parse(assertion).ok_or_else(|| {
        EntraError::bad_request("invalid_request", 50027, "JWT token is invalid or malformed.")
    })?;
    let issuer = jwt.claim_str("iss").unwrap_or_default();
    let by_issuer: Vec<&FederatedCredential> = app.into_iter().filter(|c| c.issuer == issuer).collect();
    if by_issuer.is_empty() {
        return Err(EntraError::bad_request(
            "invalid_client",
            700211,
            format!("No matching federated identity record found for presented assertion issuer '{issuer}'."),
        ));
    }
    verify_signature(http, issuer, &jwt).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let exp = jwt.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    let nbf = jwt.claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
    if exp <= now || nbf > now + 300 {
        return Err(EntraError::bad_request(
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    let subject = jwt.claim_str("sub").unwrap_or_default();
    let by_subject: Vec<&FederatedCredential> =
        by_issuer.into_iter().filter(|c| c.subject == subject).collect();
    if by_subject.is_empty() {
        return Err(EntraError::bad_request(
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
        return Err(EntraError::bad_request(
            "invalid_client",
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience '{}'.",
                audiences.join(",")
            ),
        ));
    }
    Ok(())
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
        EntraError::new(
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

/// The access token of exchange `n`: JWT-shaped and about the size of a real one (header, an app
/// token's claims, 256 bytes of stand-in signature, an RS256 signature's length). Its claims name
/// what it was issued for: `appid` the client, `aud` the scope's resource, `tid` the tenant, `uti`
/// the exchange number.
pub(super) fn access_token(issuer_base: &str, tenant: &str, client_id: &str, scope: &str, n: u64) -> Issued {
    let resource = scope
        .split(' ')
        .find(|s| s.ends_with("/.default"))
        .unwrap_or(scope)
        .trim_end_matches("/.default");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "entra-stand-in-key"});
    let claims = json!({
        "aud": resource, "iss": format!("{issuer_base}/{tenant}/v2.0"), "iat": now, "nbf": now,
        "exp": now + 3599, "aio": "E2ZgYJj/entra/stand-in/aio/claim/of/realistic/length/AAA=",
        "appid": client_id, "appidacr": "2", "idp": format!("{issuer_base}/{tenant}/"),
        "idtyp": "app", "oid": "3b1c6f8e-0000-4000-8000-00000000b0b0", "rh": "0.AAAA-entra-stand-in-rh-claim.",
        "sub": "3b1c6f8e-0000-4000-8000-00000000b0b0", "tid": tenant, "uti": format!("exchange-{n}"),
        "ver": "2.0", "xms_ftd": "entra-stand-in-ftd-claim", "xms_idrel": "7 14",
    });
    let signature: Vec<u8> = (0..=255u8).collect();
    Issued {
        client_id: client_id.to_owned(),
        scope: scope.to_owned(),
        access_token: format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(signature)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn exact() -> Trust {
        Trust::Assertion {
            tenant: "t".into(),
            assertion: "a.b.c".into(),
        }
    }

    const GOOD: &[(&str, &str)] = &[
        ("grant_type", "client_credentials"),
        ("client_id", "app"),
        ("scope", "https://vault.azure.net/.default"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", "a.b.c"),
    ];

    fn with(name: &str, value: &str) -> HashMap<String, String> {
        let mut f = form(GOOD);
        f.insert(name.into(), value.into());
        f
    }

    #[tokio::test]
    async fn an_exact_assertion_is_exchanged_and_everything_else_refused_with_entras_code() {
        let ok = check(&exact(), None, "t", &form(GOOD)).await.expect("accepted");
        assert_eq!(ok, ("app".into(), "https://vault.azure.net/.default".into()));
        let refused = check(&exact(), None, "other", &form(GOOD)).await;
        assert_eq!(refused.expect_err("unknown tenant").code, 90002);
        for (field, value, code) in [
            ("grant_type", "password", 70003),
            ("client_id", "", 900144),
            ("scope", "https://vault.azure.net/read", 1002012),
            ("client_assertion_type", "x", 50027),
            ("client_assertion", "a.b.d", 700213),
        ] {
            let refused = check(&exact(), None, "t", &with(field, value)).await;
            assert_eq!(refused.expect_err(field).code, code, "{field}={value}");
        }
    }

    #[test]
    fn debug_output_holds_no_assertion_or_token() {
        let issued = access_token(
            "https://login.microsoftonline.com",
            "t",
            "app",
            "https://vault.azure.net/.default",
            1,
        );
        let shown = format!("{:?} {issued:?}", exact());
        assert!(
            !shown.contains("a.b.c") && !shown.contains(&issued.access_token),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn the_access_token_names_client_resource_tenant_and_exchange() {
        let issued = access_token(
            "https://login.microsoftonline.com",
            "t",
            "app",
            "https://vault.azure.net/.default",
            7,
        );
        let claims = Jwt::parse(&issued.access_token).expect("JWT-shaped").claims;
        assert_eq!(claims["appid"], "app");
        assert_eq!(claims["aud"], "https://vault.azure.net");
        assert_eq!(claims["tid"], "t");
        assert_eq!(claims["uti"], "exchange-7");
        assert!(issued.access_token.len() > 1000, "about a real token's size");
    }
}
