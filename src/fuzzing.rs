//! Entry points for the `cargo fuzz` targets in `fuzz/` (feature `fuzzing`; not a public API).
//!
//! Each function feeds one parser the fuzzer's bytes and checks what must hold for any input:
//! no panic, and no secret echoed where it must not be. The parsers themselves stay
//! `pub(crate)`; only these wrappers are exported.

use std::sync::{Arc, OnceLock};

use time::{Duration, OffsetDateTime};

use crate::credential::{
    self, AccessToken, Env, TokenCredential, TokenRequestOptions,
    client_assertion::{entra_error, excerpt, scrub},
    expiry::parse_token_response_with_extras,
    managed_identity::{arc_key_file::realm_path, response::Received},
};

/// The instant every relative expiry is counted from.
fn request_time() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Every token-response parser: the shared lenient parser (all `expires_in` / `expires_on` /
/// `refresh_in` shapes), a managed identity endpoint's answer with the given status, the error
/// quoting of managed identity endpoints and of Microsoft Entra. Panics when an invariant breaks.
///
/// Besides the body as given, the first bytes are also read as numbers put into the three time
/// fields in every shape the endpoints use (integer, float, exponent, numeric string): no number
/// may panic (issue 15: a `refresh_in` of 3e11 did), and an accepted token is never already
/// expired.
pub fn token_response(status: u16, body: &[u8]) {
    check_parsed(body);
    check_parsed(numeric_body(body).as_bytes());
    check_quoting(status, body);
}

/// A secret the quoting checks look for.
const SECRET: &str = "fuzz-secret-0f9e8d7c6b5a";

/// The body with `expires_in`, `expires_on` and `refresh_in` made from the fuzzer's bytes.
fn numeric_body(data: &[u8]) -> String {
    let mut bytes = [0u8; 25];
    for (b, d) in bytes.iter_mut().zip(data) {
        *b = *d;
    }
    let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let shape = bytes[24];
    let number = |raw: u64, shape: u8| -> String {
        match shape % 6 {
            0 => raw.to_string(),
            1 => (raw as i64).to_string(),
            2 => format!("{:?}", f64::from_bits(raw))
                .replace("inf", "1e309")
                .replace("NaN", "0"),
            3 => format!("\"{}\"", raw as i64),
            4 => format!("{}e{}", raw % 1000, (raw >> 10) % 400),
            _ => format!("\"{}\"", raw),
        }
    };
    format!(
        r#"{{"access_token":"t","expires_in":{},"expires_on":{},"refresh_in":{}}}"#,
        number(word(0), shape),
        number(word(1), shape / 6),
        number(word(2), shape / 36),
    )
}

fn check_parsed(body: &[u8]) {
    if let Ok(parsed) = parse_token_response_with_extras(body, request_time()) {
        let token = parsed.token.token.secret();
        assert!(!token.is_empty(), "an empty access token was accepted");
        assert!(
            parsed.token.expires_on > request_time(),
            "an already expired token was accepted"
        );
        if let Some(refresh_on) = parsed.token.refresh_on {
            assert!(
                refresh_on <= parsed.token.expires_on,
                "refresh_on after expires_on"
            );
        }
        if token.len() >= 12 && !parsed.token.token_type.contains(token) {
            let debug = format!("{:?}", parsed.token);
            assert!(
                !debug.contains(token),
                "Debug of AccessToken shows the token: {debug}"
            );
        }
    }
}

fn check_quoting(status: u16, body: &[u8]) {
    let received = Received {
        status,
        content_type: Some("application/json".to_owned()),
        www_authenticate: None,
        body: body.to_vec(),
    };
    let _ = received.token("fuzz", request_time());
    let secret = credential::Secret::new(SECRET);
    let quoted = received.server_message(&[&secret]);
    assert!(
        !quoted.contains(SECRET),
        "a managed identity error quotes the secret: {quoted}"
    );
    let entra = entra_error("fuzz", status, body, &[SECRET]).to_string();
    assert!(
        !entra.contains(SECRET),
        "an Entra error quotes the assertion: {entra}"
    );
    let scrubbed = scrub(excerpt(body), &[SECRET]);
    assert!(
        !scrubbed.contains(SECRET),
        "an excerpt quotes the secret: {scrubbed}"
    );
}

/// The Azure Arc agent's `WWW-Authenticate` challenge parser.
pub fn arc_challenge(header: &str) {
    if let Ok(path) = realm_path(Some(header)) {
        assert!(!path.is_empty(), "an empty realm was accepted");
        assert_eq!(path, path.trim(), "the realm keeps surrounding whitespace");
    }
}

/// AdmissionReview decoding and the pod mutation, then the response encoding. `annotations` are
/// the ServiceAccount's. Panics when an invariant breaks.
pub fn admission(body: &[u8], annotations: &[(String, String)]) {
    use crate::webhook::{
        ConfigArgs,
        admission::{AdmissionRequest, invalid_review},
        mutation::{ServiceAccount, mutate_with},
    };
    static CONFIG: OnceLock<crate::webhook::Config> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        ConfigArgs {
            tenant_id: Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into()),
            audience: "api://AzureADTokenExchange".into(),
            log_level: "info".into(),
            ..ConfigArgs::default()
        }
        .into_config(None)
        .unwrap_or_else(|e| panic!("fuzz config: {e}"))
    });
    // Whatever the input, what is quoted of it is bounded: a refusal answer (and so the log
    // line that carries the same message) stays small.
    const MAX_REFUSAL: usize = 4096;
    let request = match AdmissionRequest::decode(body) {
        Ok(request) => request,
        Err(error) => {
            assert!(
                error.to_string().len() <= MAX_REFUSAL,
                "error of {} bytes",
                error.to_string().len()
            );
            let answer = invalid_review(body, &error);
            assert!(answer.len() <= MAX_REFUSAL, "refusal of {} bytes", answer.len());
            assert!(serde_json::from_slice::<serde_json::Value>(&answer).is_ok());
            return;
        }
    };
    let service_account = ServiceAccount {
        name: "fuzz".into(),
        annotations: annotations.iter().cloned().collect(),
    };
    let header = || Ok("0123456789abcdef0123456789abcdef".to_owned());
    let outcome = mutate_with(
        &request.object,
        &request.namespace,
        &service_account,
        config,
        &header,
    );
    if let Ok(ops) = &outcome {
        let patch = json_patch::Patch(ops.clone());
        for op in ops {
            assert!(
                !matches!(op, json_patch::PatchOperation::Remove(_)),
                "the mutation removes something: {op:?}"
            );
        }
        let mut pod = request.object.clone();
        json_patch::patch(&mut pod, &patch).unwrap_or_else(|e| panic!("the patch does not apply: {e}"));
    }
    let denied = outcome.is_err();
    if let Err(denial) = &outcome {
        assert!(
            denial.message.len() <= MAX_REFUSAL,
            "denial of {} bytes",
            denial.message.len()
        );
    }
    let answer = request.respond(outcome);
    if denied {
        assert!(
            answer.len() <= MAX_REFUSAL,
            "denial answer of {} bytes",
            answer.len()
        );
    }
    assert!(serde_json::from_slice::<serde_json::Value>(&answer).is_ok());
}

/// The identity header of the fuzzed proxy (identity-endpoint mode).
pub const PROXY_IDENTITY_HEADER: &str = "7f3a9c2e5b1d4f608a9e7c3b2d1f0e4a";

/// The token the fuzzed proxy's credential answers.
const PROXY_TOKEN: &str = "fuzz-proxy-token";

#[derive(Debug)]
struct FixedCredential;

#[async_trait::async_trait]
impl TokenCredential for FixedCredential {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<TokenRequestOptions>,
    ) -> crate::credential::Result<AccessToken> {
        Ok(AccessToken::new(
            PROXY_TOKEN,
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
    }
}

/// The proxy's request parsing, from method, path and query, and headers to a token request
/// (answered by a fixed credential). Panics when an invariant breaks: a 5xx other than a
/// forwarding failure, a token served without the right header, the identity header echoed.
pub fn proxy_request(method: &str, uri: &str, headers: &[(String, String)]) {
    use axum::{body::Body, http::Request};
    use tower::ServiceExt as _;

    static ROUTER: OnceLock<(tokio::runtime::Runtime, axum::Router)> = OnceLock::new();
    let (runtime, router) = ROUTER.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let env = Env::from_pairs([
            ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
            ("IDENTITY_HEADER", PROXY_IDENTITY_HEADER),
        ]);
        // Port 9 (discard) on loopback: forwarded metadata requests fail fast, never leave the host.
        let config = crate::proxy::ProxyConfig::from_env(&env, 0, true, "http://127.0.0.1:9")
            .unwrap_or_else(|e| panic!("fuzz proxy config: {e}"));
        let factory: crate::proxy::CredentialFactory =
            Arc::new(|_: &str, _: &str| Ok(Arc::new(FixedCredential) as Arc<dyn TokenCredential>));
        let proxy = crate::proxy::Proxy::new(config, factory).unwrap_or_else(|e| panic!("fuzz proxy: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        (runtime, proxy.router())
    });
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let Ok(request) = builder.body(Body::empty()) else {
        return; // not a request hyper would have parsed
    };
    let path = request.uri().path().to_owned();
    let forwarded =
        !crate::proxy::imds::is_token_path(&path) && !crate::proxy::app_service::is_token_path(&path);
    let sent_header = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("x-identity-header") && v.trim() == PROXY_IDENTITY_HEADER);
    let (status, body) = runtime.block_on(async {
        let response = router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {});
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        (status, body)
    });
    let text = String::from_utf8_lossy(&body);
    // The header may only come back if the client itself put it somewhere the proxy quotes.
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let echoed_input = uri.contains(PROXY_IDENTITY_HEADER)
        || url::form_urlencoded::parse(query.as_bytes())
            .any(|(k, v)| k.contains(PROXY_IDENTITY_HEADER) || v.contains(PROXY_IDENTITY_HEADER))
        || headers
            .iter()
            .any(|(n, v)| !n.eq_ignore_ascii_case("x-identity-header") && v.contains(PROXY_IDENTITY_HEADER));
    assert!(
        echoed_input || !text.contains(PROXY_IDENTITY_HEADER),
        "the identity header is echoed: {status} {text}"
    );
    if text.contains(PROXY_TOKEN) && path.to_ascii_lowercase().contains("msi") {
        assert!(
            sent_header,
            "an App Service token was served without X-IDENTITY-HEADER"
        );
    }
    if status.is_server_error() {
        assert!(forwarded, "a token request failed with {status}: {text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15 item 9, the input that panicked, and the numeric bodies the target builds.
    #[test]
    fn the_refresh_in_panic_input_and_numeric_bodies() {
        token_response(
            200,
            br#"{"access_token":"t","expires_in":3599,"refresh_in":3e11}"#,
        );
        token_response(
            200,
            br#"{"access_token":"t","expires_in":3599,"refresh_in":"300000000000"}"#,
        );
        for seed in [
            &[][..],
            &[0xff; 25],
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 200,
            ],
        ] {
            let body = numeric_body(seed);
            serde_json::from_str::<serde_json::Value>(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
            token_response(200, seed);
        }
    }
}
