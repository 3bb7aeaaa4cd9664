//! The webhook's HTTP surface: the `/mutate-v1-pod` router and its thin handler.
//!
//! The handler checks the transport (content type, body size), decodes the AdmissionReview,
//! looks up the pod's ServiceAccount, calls the pure mutation and encodes the answer in the
//! review's own version. Everything about *what* to patch lives in [`super::mutation`]; this file
//! decides only HTTP status codes, logs and metrics.
//!
//! | situation | answer |
//! | --- | --- |
//! | not `Content-Type: application/json` | 415 |
//! | body over the limit (4 MiB by default) | 413 |
//! | body past 64 KiB while the shared body budget (16 MiB) is spent ([`super::body_budget`]) | 503, `Connection: close` |
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

use super::{
    Denial,
    admission::{AdmissionRequest, invalid_review},
    body_budget::{self, BodyBudget},
    config::Config,
    metrics::{Metrics, Outcome},
    mutation,
    service_accounts::{LookupError, ServiceAccounts},
};

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
}

impl Default for RequestLimits {
    fn default() -> Self {
        // The API server sends whole pods (well under 1.5 MiB, etcd's object limit) and gives
        // up after timeoutSeconds (10 s by default).
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            timeout: Duration::from_secs(9),
            // Four maximal bodies at once; ordinary admissions stay within the free 64 KiB.
            max_buffered_bytes: 16 * 1024 * 1024,
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
    let budget = BodyBudget::new(limits.max_buffered_bytes.max(limits.max_body_bytes));
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
        .with_state(state)
}

async fn mutate_pod(
    State(state): State<WebhookState>,
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
        Err(rejection) if body_budget::is_exhausted(&rejection) => {
            let mut response = reject(
                &state,
                started,
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("cannot read the request body: {rejection}"),
            );
            // The rest of the body is not read: the connection cannot carry another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            return response;
        }
        Err(rejection) => {
            let status = rejection.status();
            return reject(
                &state,
                started,
                status,
                &format!("cannot read the request body: {}", rejection.body_text()),
            );
        }
    };
    let mut request = match AdmissionRequest::decode(&body) {
        Ok(request) => request,
        Err(error) if has_uid(&body) => {
            // A review the API server can be answered on: say why in the review itself, so the
            // message reaches whoever created the object.
            tracing::warn!(%error, "admission request refused");
            state
                .metrics
                .observe_admission("", Outcome::error, started.elapsed().as_secs_f64());
            return (
                [(header::CONTENT_TYPE, "application/json")],
                invalid_review(&body, &error),
            )
                .into_response();
        }
        Err(error) => {
            return reject(
                &state,
                started,
                StatusCode::BAD_REQUEST,
                &format!("invalid AdmissionReview: {error}"),
            );
        }
    };

    // The pod moves into the mutation (its working copy); the log keeps two names.
    let pod = std::mem::take(&mut request.object);
    let namespace = request.namespace.as_str();
    let sa_name = mutation::service_account_name(&pod).to_owned();
    let pod_name = pod_display_name(&pod).to_owned();
    let (sa_name, pod_name) = (sa_name.as_str(), pod_name.as_str());
    let (result, outcome) = match state.service_accounts.get(namespace, sa_name).await {
        Ok(sa) => match mutation::mutate_owned(pod, namespace, &sa, &state.config) {
            Ok(ops) => (Ok(ops), Outcome::mutated),
            Err(denial) => (Err(denial), Outcome::denied),
        },
        Err(error) => {
            let outcome = match error {
                LookupError::NotFound { .. } => Outcome::denied,
                LookupError::Unavailable { .. } => Outcome::error,
            };
            (Err(lookup_denial(error)), outcome)
        }
    };
    match &result {
        Ok(ops) => tracing::info!(
            uid = %request.uid, namespace, pod = pod_name, service_account = sa_name,
            dry_run = request.dry_run, patch_ops = ops.len(), "pod mutated"
        ),
        Err(denial) => tracing::info!(
            uid = %request.uid, namespace, pod = pod_name, service_account = sa_name,
            dry_run = request.dry_run, reason = %denial, outcome = ?outcome, "pod denied"
        ),
    }
    let body = request.respond(result);
    state
        .metrics
        .observe_admission(namespace, outcome, started.elapsed().as_secs_f64());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
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

/// Whether the body is a JSON AdmissionReview of a known version with a request uid.
fn has_uid(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let known = matches!(
        value.get("apiVersion").and_then(Value::as_str),
        Some("admission.k8s.io/v1" | "admission.k8s.io/v1beta1")
    );
    known
        && value
            .pointer("/request/uid")
            .and_then(Value::as_str)
            .is_some_and(|uid| !uid.is_empty())
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
    use crate::webhook::{config::ConfigArgs, mutation::ServiceAccount};

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
        let (status, _) = post(
            router(state(), limits),
            "application/json",
            serde_json::to_vec(&review).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
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
