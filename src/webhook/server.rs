//! The webhook's HTTP surface: the `/mutate-v1-pod` router and its thin handler.
//!
//! The handler checks the transport (content type, body size), decodes the AdmissionReview,
//! looks up the pod's ServiceAccount, calls the pure mutation and encodes the answer in the
//! review's own version. Everything about *what* to patch lives in [`azure_wi_core::mutation`]; this file
//! decides only HTTP status codes, logs and metrics.
//!
//! | situation | answer |
//! | --- | --- |
//! | not `Content-Type: application/json` | 415 |
//! | body over the limit (3 MiB by default, the API server's own limit on a request body) | 413 |
//! | body while the shared body budget (8 MiB for the first 64 KiB of every body, 16 MiB for the rest) is spent ([`super::body_budget`]) | 503, `Connection: close` |
//! | body not an AdmissionReview v1/v1beta1 (no uid to answer) | 400, naming the problem |
//! | a review without a pod object (e.g. a misrouted DELETE) | 200, `allowed: false`, code 400 |
//! | ServiceAccount missing, or the API server unreachable | 200, `allowed: false` with the reason |
//! | mutation denial | 200, `allowed: false` with the reason |
//! | mutation | 200, `allowed: true` with a JSON Patch |
//! | slower than the request timeout (reading the body included) | 408 |

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::Bytes,
    extract::Request,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::Value;
use tokio::time::Instant;
use tower_http::timeout::TimeoutLayer;

use azure_wi_core::{
    Config, Denial, excerpt, mutation,
    object_names::{is_dns_label, is_dns_subdomain},
    quoted,
};

use super::{
    admission::{AdmissionRequest, invalid_review},
    body_budget::{self, BodyBudget},
    metrics::{Metrics, Outcome},
    service_accounts::{LookupError, ServiceAccounts},
};

/// The `namespace` label of requests in namespaces the webhook does not know to exist: the label
/// set must not grow with what unauthenticated clients send. (Not a valid namespace name, so no
/// real namespace is counted with them.)
pub const OTHER_NAMESPACE: &str = "_other";

/// The path the MutatingWebhookConfiguration points at (upstream's).
pub const MUTATE_PATH: &str = "/mutate-v1-pod";

/// Limits applied to every admission request.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// Largest accepted body, in bytes.
    pub max_body_bytes: usize,
    /// Longest time to read the body and answer.
    pub timeout: Duration,
    /// Bytes of request bodies beyond the first 64 KiB of each that may be buffered at once,
    /// across all connections (see [`super::body_budget`]).
    pub max_buffered_bytes: usize,
    /// Bytes of the first 64 KiB of request bodies that may be buffered at once, across all
    /// connections.
    pub max_small_buffered_bytes: usize,
}

/// The default [`RequestLimits::max_body_bytes`]: the API server's own limit on a request body
/// (kube-apiserver's `MaxRequestBodyBytes`, 3 MiB: twice etcd's 1.5 MiB object limit, since JSON
/// is larger than the protobuf stored). A pod the API server accepted and could store fits in a
/// review of this size; anything larger did not come from it.
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

impl Default for RequestLimits {
    fn default() -> Self {
        // The API server sends whole pods (well under 1.5 MiB, etcd's object limit) and gives
        // up after timeoutSeconds (10 s by default).
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            timeout: Duration::from_secs(9),
            // Five maximal bodies at once; ordinary admissions stay within their first 64 KiB.
            max_buffered_bytes: 16 * 1024 * 1024,
            // 128 bodies of 64 KiB, or some 1,600 ordinary reviews of 5 KiB, at once.
            max_small_buffered_bytes: 8 * 1024 * 1024,
        }
    }
}

/// What the handler needs.
#[derive(Clone, Debug)]
pub struct WebhookState {
    /// The validated mutation configuration.
    pub config: Arc<Config>,
    /// ServiceAccount lookups.
    pub service_accounts: ServiceAccounts,
    /// Metrics handles.
    pub metrics: Metrics,
}

/// The webhook router: `POST /mutate-v1-pod`.
pub fn router(state: WebhookState, limits: RequestLimits) -> Router {
    let budget = BodyBudget::new(
        limits.max_small_buffered_bytes,
        limits.max_buffered_bytes.max(limits.max_body_bytes),
    );
    let router = Router::new()
        .route(MUTATE_PATH, post(mutate_pod))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::map_request(move |request: Request| {
            let budget = budget.clone();
            async move { request.map(|body| budget.wrap(body)) }
        }))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.timeout,
        ));
    // Outermost: controller-runtime's request metrics count every answer, timeouts included.
    state
        .metrics
        .requests
        .instrument(router, MUTATE_PATH)
        // One reference count per request instead of one per metric handle.
        .with_state(Arc::new(state))
}

async fn mutate_pod(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    if !is_json(&headers) {
        return reject(
            &state,
            started,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        );
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let mut response = if body_budget::is_exhausted(&rejection) {
                reject(
                    &state,
                    started,
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("cannot read the request body: {rejection}"),
                )
            } else {
                reject(
                    &state,
                    started,
                    rejection.status(),
                    &format!("cannot read the request body: {}", rejection.body_text()),
                )
            };
            // The rest of the body is not read: the connection cannot carry another request.
            // Saying so keeps a client from sending its next request on a connection the
            // server is about to close.
            response
                .headers_mut()
                .insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            return response;
        }
    };
    let mut request = match AdmissionRequest::decode(&body) {
        Ok(request) => request,
        Err(error) => {
            return match invalid_review(&body, &error) {
                // A review the API server can be answered on: say why in the review itself, so
                // the message reaches whoever created the object.
                Some(answer) => {
                    tracing::warn!(%error, "admission request refused");
                    state
                        .metrics
                        .observe_admission("", Outcome::error, started.elapsed().as_secs_f64());
                    ([(header::CONTENT_TYPE, "application/json")], answer).into_response()
                }
                None => reject(
                    &state,
                    started,
                    StatusCode::BAD_REQUEST,
                    &format!("invalid AdmissionReview: {error}"),
                ),
            };
        }
    };

    // The pod moves into the mutation (its working copy); the log keeps two names.
    let pod = std::mem::take(&mut request.object);
    let namespace = request.namespace.as_str();
    let sa_name = mutation::service_account_name(&pod).to_owned();
    let pod_name = excerpt(pod_display_name(&pod)).into_owned();
    let (sa_name, pod_name) = (sa_name.as_str(), pod_name.as_str());
    let uid = excerpt(&request.uid).into_owned();
    // Whether the namespace is known to exist: it then gets its own metric label.
    let mut known_namespace = false;
    let (result, outcome) = if let Some(denial) = invalid_names(namespace, sa_name) {
        (Err(denial), Outcome::denied)
    } else {
        match state.service_accounts.get(namespace, sa_name).await {
            Ok(sa) => {
                known_namespace = true;
                match mutation::mutate_owned(pod, namespace, &sa, &state.config) {
                    Ok(ops) => (Ok(ops), Outcome::mutated),
                    Err(denial) => (Err(denial), Outcome::denied),
                }
            }
            Err(error) => {
                known_namespace = state.service_accounts.knows_namespace(namespace);
                let outcome = match error {
                    LookupError::NotFound { .. } => Outcome::denied,
                    LookupError::Unavailable { .. } => Outcome::error,
                };
                (Err(lookup_denial(error)), outcome)
            }
        }
    };
    let (namespace, sa_name) = (excerpt(namespace), excerpt(sa_name));
    let (namespace, sa_name) = (namespace.as_ref(), sa_name.as_ref());
    match &result {
        Ok(ops) => tracing::info!(
            uid,
            namespace,
            pod = pod_name,
            service_account = sa_name,
            dry_run = request.dry_run,
            patch_ops = ops.len(),
            "pod mutated"
        ),
        Err(denial) => tracing::info!(
            uid, namespace, pod = pod_name, service_account = sa_name,
            dry_run = request.dry_run, reason = %denial, outcome = ?outcome, "pod denied"
        ),
    }
    let body = request.respond(result);
    let label = if known_namespace {
        namespace
    } else {
        OTHER_NAMESPACE
    };
    state
        .metrics
        .observe_admission(label, outcome, started.elapsed().as_secs_f64());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The denial for a namespace or ServiceAccount name that no cluster would send (see
/// [`azure_wi_core::object_names`]); `None` when both are well-formed.
fn invalid_names(namespace: &str, service_account: &str) -> Option<Denial> {
    if !is_dns_label(namespace) {
        return Some(Denial::new(format!(
            "the AdmissionReview's namespace {} is not a valid namespace name",
            quoted(namespace)
        )));
    }
    if !is_dns_subdomain(service_account) {
        return Some(Denial::new(format!(
            "spec.serviceAccountName {} is not a valid ServiceAccount name: expected at most 253 \
             lowercase letters, digits, '-' and '.'",
            quoted(service_account)
        )));
    }
    None
}

fn lookup_denial(error: LookupError) -> Denial {
    match error {
        LookupError::NotFound { .. } => Denial::new(error.to_string()),
        // Not the pod's fault: say so with a server-side code.
        LookupError::Unavailable { .. } => Denial {
            message: error.to_string(),
            code: 503,
        },
    }
}

fn reject(state: &WebhookState, started: Instant, status: StatusCode, message: &str) -> Response {
    tracing::warn!(
        status = status.as_u16(),
        reason = message,
        "admission request rejected"
    );
    state
        .metrics
        .observe_admission("", Outcome::error, started.elapsed().as_secs_f64());
    (status, message.to_owned()).into_response()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// The pod's name for logs: `metadata.name`, else `metadata.generateName` (Deployment pods
/// have no name yet at admission).
fn pod_display_name(pod: &Value) -> &str {
    let meta = |field: &str| {
        pod.get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    meta("name").or_else(|| meta("generateName")).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::{body::Body, http::Request};
    use base64::Engine;
    use serde_json::json;
    use tower::ServiceExt;

    use super::*;
    use azure_wi_core::{ConfigArgs, ServiceAccount};

    const TENANT_ID: &str = "11111111-1111-1111-1111-111111111111";

    const CLIENT_ID: &str = "00000000-0000-0000-0000-00000000c1d0";

    fn state() -> WebhookState {
        let sa = ServiceAccount {
            name: "app".into(),
            annotations: BTreeMap::from([("azure.workload.identity/client-id".into(), CLIENT_ID.into())]),
        };
        let metrics = Metrics::new();
        let config = test_config();
        WebhookState {
            config: Arc::new(config),
            service_accounts: ServiceAccounts::from_static([("team-a".to_owned(), sa)], metrics.clone()),
            metrics,
        }
    }

    fn test_config() -> Config {
        ConfigArgs {
            tenant_id: Some(TENANT_ID.into()),
            ..ConfigArgs::default()
        }
        .into_config(Some((1, 33)))
        .unwrap()
    }

    fn review(api_version: &str, namespace: &str, service_account: &str) -> serde_json::Value {
        json!({
            "apiVersion": api_version,
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": namespace,
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"generateName": "app-7d9c-", "labels": {"azure.workload.identity/use": "true"}},
                    "spec": {"serviceAccountName": service_account, "containers": [{"name": "app", "image": "busybox"}]}
                },
                "oldObject": null,
                "dryRun": false,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
            }
        })
    }

    async fn post(router: Router, content_type: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        let request = Request::post(MUTATE_PATH)
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        (
            status,
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec(),
        )
    }

    async fn admit(router: Router, review: &serde_json::Value) -> serde_json::Value {
        let (status, body) = post(router, "application/json", serde_json::to_vec(review).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn a_v1_review_is_mutated_and_answered_in_v1() {
        let state = state();
        let metrics = state.metrics.clone();
        let answer = admit(
            router(state, RequestLimits::default()),
            &review("admission.k8s.io/v1", "team-a", "app"),
        )
        .await;
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        let response = &answer["response"];
        assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(response["allowed"], true);
        assert_eq!(response["patchType"], "JSONPatch");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(response["patch"].as_str().unwrap())
            .unwrap();
        let patch: serde_json::Value = serde_json::from_slice(&patch).unwrap();
        assert!(patch.as_array().is_some_and(|ops| !ops.is_empty()), "{patch}");
        let text = patch.to_string();
        for expected in [
            CLIENT_ID,
            TENANT_ID,
            "AZURE_FEDERATED_TOKEN_FILE",
            "azure-identity-token",
        ] {
            assert!(text.contains(expected), "{expected} missing from {patch}");
        }
        let text = metrics.encode();
        assert!(
            text.contains(r#"azwi_mutation_request_count{namespace="team-a"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"azwi_admission_requests_total{outcome="mutated"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_v1beta1_review_is_answered_in_v1beta1() {
        let answer = admit(
            router(state(), RequestLimits::default()),
            &review("admission.k8s.io/v1beta1", "team-a", "app"),
        )
        .await;
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1beta1");
        assert_eq!(answer["response"]["allowed"], true);
    }

    #[tokio::test]
    async fn a_missing_service_account_is_denied_with_the_reason() {
        let state = state();
        let metrics = state.metrics.clone();
        let answer = admit(
            router(state, RequestLimits::default()),
            &review("admission.k8s.io/v1", "team-a", "ghost"),
        )
        .await;
        let response = &answer["response"];
        assert_eq!(response["allowed"], false);
        assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(r#"serviceaccounts "ghost" not found"#),
            "{message}"
        );
        assert!(
            metrics
                .encode()
                .contains(r#"azwi_admission_requests_total{outcome="denied"} 1"#)
        );
    }

    #[tokio::test]
    async fn the_default_service_account_is_looked_up_when_none_is_named() {
        let mut review = review("admission.k8s.io/v1", "team-a", "app");
        review["request"]["object"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("serviceAccountName");
        let answer = admit(router(state(), RequestLimits::default()), &review).await;
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(r#"serviceaccounts "default" not found"#),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_wrong_content_type_is_415() {
        let body = serde_json::to_vec(&review("admission.k8s.io/v1", "team-a", "app")).unwrap();
        let (status, text) = post(router(state(), RequestLimits::default()), "text/plain", body).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(String::from_utf8_lossy(&text).contains("application/json"));
    }

    #[tokio::test]
    async fn json_with_a_charset_is_accepted() {
        let body = serde_json::to_vec(&review("admission.k8s.io/v1", "team-a", "app")).unwrap();
        let (status, _) = post(
            router(state(), RequestLimits::default()),
            "application/json; charset=utf-8",
            body,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn an_oversized_body_is_413() {
        let limits = RequestLimits {
            max_body_bytes: 1024,
            ..RequestLimits::default()
        };
        let mut review = review("admission.k8s.io/v1", "team-a", "app");
        review["request"]["object"]["metadata"]["annotations"] = json!({"big": "x".repeat(4096)});
        let response = router(state(), limits)
            .oneshot(
                Request::post(MUTATE_PATH)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&review).unwrap()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // The body was not read to its end: the client must not reuse the connection.
        assert_eq!(response.headers()[header::CONNECTION], "close");
    }

    #[tokio::test]
    async fn a_large_body_while_the_budget_is_spent_is_503_and_closes_the_connection() {
        use crate::webhook::body_budget::FREE_BYTES;
        const MIB: usize = 1024 * 1024;
        let limits = RequestLimits {
            max_body_bytes: MIB,
            max_buffered_bytes: MIB,
            ..RequestLimits::default()
        };
        let app = router(state(), limits);
        // One body takes nearly the whole budget (all but its free 64 KiB) and stays open.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
        let held = Request::post(MUTATE_PATH)
            .header("content-type", "application/json")
            .body(Body::from_stream(futures::stream::poll_fn(move |cx| {
                rx.poll_recv(cx)
            })))
            .unwrap();
        let first = tokio::spawn(app.clone().oneshot(held));
        tx.send(Ok(Bytes::from(vec![b' '; MIB - 1000]))).await.unwrap();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        // Another large body finds no room: 503 at once, and the connection is to be closed.
        let second = Request::post(MUTATE_PATH)
            .header("content-type", "application/json")
            .body(Body::from(vec![b' '; FREE_BYTES + 100 * 1024]))
            .unwrap();
        let response = app.clone().oneshot(second).await.unwrap();
        let (parts, body) = response.into_parts();
        let text = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&text);
        assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
        assert_eq!(parts.headers[header::CONNECTION], "close");
        assert!(text.contains("too many large admission requests"), "{text}");
        // A small review passes meanwhile (the first 64 KiB of every body are free).
        let review = serde_json::to_vec(&review("admission.k8s.io/v1", "team-a", "app")).unwrap();
        let (status, _) = post(app.clone(), "application/json", review).await;
        assert_eq!(status, StatusCode::OK);
        // Once the first body is gone, a large one fits again (and is then judged on its content).
        drop(tx);
        first.await.unwrap().unwrap();
        let (status, _) = post(app, "application/json", vec![b' '; FREE_BYTES + 100 * 1024]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn malformed_json_is_a_clear_400() {
        let (status, text) = post(
            router(state(), RequestLimits::default()),
            "application/json",
            b"{\"apiVersion\": ".to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            String::from_utf8_lossy(&text).starts_with("invalid AdmissionReview"),
            "{}",
            String::from_utf8_lossy(&text)
        );
    }

    #[tokio::test]
    async fn a_review_without_an_object_is_refused_in_the_review_with_code_400() {
        let state = state();
        let metrics = state.metrics.clone();
        let mut review = review("admission.k8s.io/v1beta1", "team-a", "app");
        review["request"].as_object_mut().unwrap().remove("object");
        let answer = admit(router(state, RequestLimits::default()), &review).await;
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1beta1");
        let response = &answer["response"];
        assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 400);
        assert!(
            response["status"]["message"]
                .as_str()
                .unwrap()
                .contains("no object"),
            "{response}"
        );
        assert!(
            metrics
                .encode()
                .contains(r#"azwi_admission_requests_total{outcome="error"} 1"#)
        );
    }

    #[tokio::test]
    async fn a_body_that_is_not_a_review_is_a_clear_400() {
        let body = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Pod"})).unwrap();
        let (status, text) = post(
            router(state(), RequestLimits::default()),
            "application/json",
            body,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            String::from_utf8_lossy(&text).contains("apiVersion"),
            "{}",
            String::from_utf8_lossy(&text)
        );
    }

    #[tokio::test]
    async fn other_paths_and_methods_are_not_served() {
        let router = router(state(), RequestLimits::default());
        let get = Request::get(MUTATE_PATH).body(Body::empty()).unwrap();
        assert_eq!(
            router.clone().oneshot(get).await.unwrap().status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        let other = Request::post("/mutate")
            .header("content-type", "application/json")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            router.oneshot(other).await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_finishes_its_body_gets_408() {
        let limits = RequestLimits {
            timeout: Duration::from_secs(2),
            ..RequestLimits::default()
        };
        let endless = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        let request = Request::post(MUTATE_PATH)
            .header("content-type", "application/json")
            .body(Body::from_stream(endless))
            .unwrap();
        let response = router(state(), limits).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn huge_input_values_are_quoted_only_in_part_in_denials() {
        // (The log lines: tests/hostile_server.rs, on the process's stderr.)
        // A 3 MB expiration annotation: denied, quoting 64 bytes of it.
        let mut big = review("admission.k8s.io/v1", "team-a", "app");
        big["request"]["object"]["metadata"]["annotations"] =
            json!({"azure.workload.identity/service-account-token-expiration": "9".repeat(3_000_000)});
        let app = router(state(), RequestLimits::default());
        let answer = admit(app.clone(), &big).await;
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(message.contains("(3000000 bytes)"), "{message}");
        assert!(message.len() < 500, "{} bytes", message.len());

        // A 1 MB uid: not an API server's; refused without echoing it.
        let mut long_uid = review("admission.k8s.io/v1", "team-a", "app");
        long_uid["request"]["uid"] = json!("u".repeat(1_000_000));
        let (status, text) = post(
            app.clone(),
            "application/json",
            serde_json::to_vec(&long_uid).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.len() < 500, "{} bytes answered", text.len());
        assert!(String::from_utf8_lossy(&text).contains("1000000 bytes"));

        // A 1 MB pod name and ServiceAccount name.
        let mut names = review("admission.k8s.io/v1", "team-a", &"s".repeat(1_000_000));
        names["request"]["object"]["metadata"]["name"] = json!("p".repeat(1_000_000));
        let answer = admit(app.clone(), &names).await;
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(message.contains("not a valid ServiceAccount name"), "{message}");
        assert!(message.len() < 500, "{}", message.len());

        // A 1 MB apiVersion, and a 1 MB string where a boolean belongs (the JSON decoder's
        // message quotes it).
        let mut version = review("admission.k8s.io/v1", "team-a", "app");
        version["apiVersion"] = json!("v".repeat(1_000_000));
        let (status, text) = post(
            app.clone(),
            "application/json",
            serde_json::to_vec(&version).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.len() < 500, "{}", text.len());
        let mut dry_run = review("admission.k8s.io/v1", "team-a", "app");
        dry_run["request"]["dryRun"] = json!("d".repeat(1_000_000));
        let answer = admit(app, &dry_run).await;
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("invalid type") && message.len() < 500,
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_pod_with_ten_thousand_containers_is_denied_before_any_patch_is_built() {
        let mut huge = review("admission.k8s.io/v1", "team-a", "app");
        let containers: Vec<Value> = (0..10_000)
            .map(|i| json!({"name": format!("c{i}"), "image": "busybox"}))
            .collect();
        huge["request"]["object"]["spec"]["containers"] = json!(containers);
        let body = serde_json::to_vec(&huge).unwrap();
        assert!(body.len() < DEFAULT_MAX_BODY_BYTES, "{}", body.len());
        let (status, answer) = post(
            router(state(), RequestLimits::default()),
            "application/json",
            body,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(answer.len() < 1_000, "{} bytes answered", answer.len());
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer["response"]["allowed"], false);
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("10000 containers") && message.contains("at most 1000"),
            "{message}"
        );

        // At the bound the pod is mutated, and the answer stays within a megabyte.
        let mut most = review("admission.k8s.io/v1", "team-a", "app");
        let containers: Vec<Value> = (0..mutation::MAX_CONTAINERS)
            .map(|i| json!({"name": format!("c{i}"), "image": "busybox"}))
            .collect();
        most["request"]["object"]["spec"]["containers"] = json!(containers);
        let (status, answer) = post(
            router(state(), RequestLimits::default()),
            "application/json",
            serde_json::to_vec(&most).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(answer.len() < 1024 * 1024, "{} bytes answered", answer.len());
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer["response"]["allowed"], true);
    }

    #[tokio::test]
    async fn invented_namespaces_share_one_metric_label() {
        let state = state();
        let metrics = state.metrics.clone();
        let app = router(state, RequestLimits::default());
        for i in 0..20_000 {
            let review = review("admission.k8s.io/v1", &format!("invented-{i}"), "app");
            let answer = admit(app.clone(), &review).await;
            assert_eq!(answer["response"]["allowed"], false);
        }
        // A namespace that exists keeps its own label.
        admit(app, &review("admission.k8s.io/v1", "team-a", "ghost")).await;
        let text = metrics.encode();
        assert!(text.len() < 20_000, "/metrics is {} bytes", text.len());
        assert!(!text.contains("invented-"), "{text}");
        assert!(
            text.contains(&format!(
                r#"azwi_mutation_request_count{{namespace="{OTHER_NAMESPACE}"}} 20000"#
            )),
            "{text}"
        );
        assert!(
            text.contains(r#"azwi_mutation_request_count{namespace="team-a"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn pods_are_named_by_name_else_generate_name() {
        assert_eq!(
            pod_display_name(&json!({"metadata": {"name": "a", "generateName": "b-"}})),
            "a"
        );
        assert_eq!(
            pod_display_name(&json!({"metadata": {"generateName": "b-"}})),
            "b-"
        );
        assert_eq!(pod_display_name(&json!({})), "");
    }
}
