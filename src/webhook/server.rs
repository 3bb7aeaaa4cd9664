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
//! | body not an AdmissionReview v1/v1beta1 with an object | 400, naming the problem |
//! | ServiceAccount missing, or the API server unreachable | 200, `allowed: false` with the reason |
//! | mutation denial | 200, `allowed: false` with the reason |
//! | mutation | 200, `allowed: true` with a JSON Patch |
//! | slower than the request timeout (reading the body included) | 408 |

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::Value;
use tokio::time::Instant;
use tower_http::timeout::TimeoutLayer;

use super::{
    admission::AdmissionRequest,
    config::Config,
    metrics::{Metrics, Outcome},
    mutation::{self, Denial},
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
}

impl Default for RequestLimits {
    fn default() -> Self {
        // The API server sends whole pods (well under 1.5 MiB, etcd's object limit) and gives
        // up after timeoutSeconds (10 s by default).
        Self { max_body_bytes: 4 * 1024 * 1024, timeout: Duration::from_secs(9) }
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
    Router::new()
        .route(MUTATE_PATH, post(mutate_pod))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.timeout))
        .with_state(state)
}

async fn mutate_pod(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    if !is_json(&headers) {
        return reject(&state, started, StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json");
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            return reject(&state, started, status, &format!("cannot read the request body: {}", rejection.body_text()));
        }
    };
    let request = match AdmissionRequest::decode(&body) {
        Ok(request) => request,
        Err(error) => {
            return reject(&state, started, StatusCode::BAD_REQUEST, &format!("invalid AdmissionReview: {error}"));
        }
    };

    let namespace = request.namespace.as_str();
    let pod = &request.object;
    let sa_name = mutation::service_account_name(pod);
    let pod_name = pod_display_name(pod);
    let (result, outcome) = match state.service_accounts.get(namespace, sa_name).await {
        Ok(sa) => match mutation::mutate(pod, namespace, &sa, &state.config) {
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
    state.metrics.observe_admission(namespace, outcome, started.elapsed().as_secs_f64());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn lookup_denial(error: LookupError) -> Denial {
    Denial { message: error.to_string() }
}

fn reject(state: &WebhookState, started: Instant, status: StatusCode, message: &str) -> Response {
    tracing::warn!(status = status.as_u16(), message, "admission request rejected");
    state.metrics.observe_admission("", Outcome::error, started.elapsed().as_secs_f64());
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
    let meta = |field: &str| pod.pointer(field).and_then(Value::as_str).filter(|s| !s.is_empty());
    meta("/metadata/name").or_else(|| meta("/metadata/generateName")).unwrap_or("")
}
