//! Liveness and readiness endpoints (`/healthz`, `/readyz`).
//!
//! Readiness is the conjunction of named conditions (e.g. "certificates", "service-accounts"),
//! each flipped by the component that owns it. `/readyz` answers 503 naming every condition that
//! is not met yet, so `kubectl describe pod` tells the operator what the server is waiting for.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{Router, extract::State, http::StatusCode, routing::get};

/// One readiness condition, set by the component that owns it.
#[derive(Clone, Debug)]
pub struct ReadinessCondition {
    name: &'static str,
    met: Arc<AtomicBool>,
}

impl ReadinessCondition {
    /// Marks the condition as met (or not met again).
    pub fn set(&self, met: bool) {
        self.met.store(met, Ordering::Release);
    }

    /// Whether the condition is met.
    pub fn is_met(&self) -> bool {
        self.met.load(Ordering::Acquire)
    }

    /// The condition's name, as shown by `/readyz`.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// The set of conditions that must all hold before the server reports ready.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    conditions: Arc<std::sync::Mutex<Vec<ReadinessCondition>>>,
}

impl Readiness {
    /// No conditions: ready at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a new condition, initially not met, and returns its handle.
    pub fn condition(&self, name: &'static str) -> ReadinessCondition {
        let condition = ReadinessCondition {
            name,
            met: Arc::new(AtomicBool::new(false)),
        };
        self.lock().push(condition.clone());
        condition
    }

    /// The names of the conditions not met yet (empty when ready).
    pub fn pending(&self) -> Vec<&'static str> {
        self.lock()
            .iter()
            .filter(|c| !c.is_met())
            .map(|c| c.name)
            .collect()
    }

    /// Whether every condition is met.
    pub fn is_ready(&self) -> bool {
        self.pending().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ReadinessCondition>> {
        // A panic while holding this lock cannot leave the vector half-updated: recover it.
        self.conditions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `/healthz` (200 while the process serves) and `/readyz` (200 once `readiness` holds, 503
/// naming what is pending otherwise).
pub fn health_router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Readiness>) -> (StatusCode, String) {
    let pending = readiness.pending();
    if pending.is_empty() {
        (StatusCode::OK, "ok".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: waiting for {}", pending.join(", ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use tower::ServiceExt;

    use super::*;

    async fn get_status(router: &Router, path: &str) -> (StatusCode, String) {
        let request = axum::http::Request::get(path).body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), 1024).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readyz_waits_for_every_condition_and_names_the_pending_ones() {
        let readiness = Readiness::new();
        let certs = readiness.condition("certificates");
        let cache = readiness.condition("service-accounts");
        let router = health_router(readiness);

        assert_eq!(get_status(&router, "/healthz").await.0, StatusCode::OK);
        let (status, body) = get_status(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("certificates") && body.contains("service-accounts"),
            "{body}"
        );

        certs.set(true);
        let (status, body) = get_status(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            !body.contains("certificates") && body.contains("service-accounts"),
            "{body}"
        );

        cache.set(true);
        assert_eq!(
            get_status(&router, "/readyz").await,
            (StatusCode::OK, "ok".to_owned())
        );
    }
}
