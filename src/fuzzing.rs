//! Entry points for the `cargo fuzz` targets in `fuzz/` (feature `fuzzing`; not a public API).
//!
//! Each function feeds one parser the fuzzer's bytes and checks what must hold for any input:
//! no panic, and no secret echoed where it must not be. The credential library's parsers have
//! their own entry points (`azure_wi_identity::fuzzing`), re-exported here so every target
//! names one module.

use std::sync::{Arc, OnceLock};

pub use azure_wi_identity::fuzzing::{arc_challenge, token_response};
use azure_wi_identity::{AccessToken, Env, TokenCredential, TokenRequestOptions};
use time::{Duration, OffsetDateTime};

/// AdmissionReview decoding and the pod mutation, then the response encoding. `annotations` are
/// the ServiceAccount's. Panics when an invariant breaks.
pub fn admission(body: &[u8], annotations: &[(String, String)]) {
    use azure_wi_core::{
        ConfigArgs,
        mutation::{ServiceAccount, mutate_with},
    };

    use crate::webhook::admission::{AdmissionRequest, invalid_review};
    static CONFIG: OnceLock<azure_wi_core::Config> = OnceLock::new();
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
            if let Some(answer) = invalid_review(body, &error) {
                assert!(answer.len() <= MAX_REFUSAL, "refusal of {} bytes", answer.len());
                assert!(serde_json::from_slice::<serde_json::Value>(&answer).is_ok());
            }
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
    ) -> azure_wi_identity::Result<AccessToken> {
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
