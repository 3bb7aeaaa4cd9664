//! controller-runtime's webhook request metrics, which upstream's webhook exposes and its users'
//! dashboards and alerts read:
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `controller_runtime_webhook_requests_total` | counter | `code` (HTTP status, e.g. `200`), `webhook` (the path, `/mutate-v1-pod`) |
//! | `controller_runtime_webhook_latency_seconds` | histogram, the Go client's default buckets (5 ms .. 10 s) | `webhook` |
//! | `controller_runtime_webhook_requests_in_flight` | gauge | `webhook` |
//!
//! As there, every request to the path counts, whatever its answer (`code` is the HTTP status;
//! admission denials are answered with 200), the counters for `200` and `500` exist from the
//! start, and the latency is measured until the response is handed to the server.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    middleware::{self, Next},
    response::Response,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tokio::time::Instant;

/// The Go client's default histogram buckets (`prometheus.DefBuckets`), which
/// controller-runtime's webhook latency histogram uses (upstream v1.6.0 builds on v0.19).
pub const LATENCY_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The `webhook` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// The path the webhook is served on.
    pub webhook: String,
}

/// The `code` and `webhook` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// The HTTP status code, in decimal.
    pub code: String,
    /// The path the webhook is served on.
    pub webhook: String,
}

type LatencyFamily = Family<WebhookLabels, Histogram, fn() -> Histogram>;

/// Handles to the three metrics.
#[derive(Clone, Debug)]
pub struct RequestMetrics {
    /// `controller_runtime_webhook_requests_total`.
    pub requests: Family<CodeLabels, Counter>,
    /// `controller_runtime_webhook_latency_seconds`.
    pub latency: LatencyFamily,
    /// `controller_runtime_webhook_requests_in_flight`.
    pub in_flight: Family<WebhookLabels, Gauge>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
            in_flight: Family::default(),
        }
    }
}

impl RequestMetrics {
    /// Registers the three metrics under controller-runtime's names.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "controller_runtime_webhook_requests",
            "Total number of admission requests by HTTP status code",
            self.requests.clone(),
        );
        registry.register(
            "controller_runtime_webhook_latency_seconds",
            "Histogram of the latency of processing admission requests",
            self.latency.clone(),
        );
        registry.register(
            "controller_runtime_webhook_requests_in_flight",
            "Current number of admission requests being served",
            self.in_flight.clone(),
        );
    }

    /// Counts and times every request `router` answers as the webhook at `path`.
    pub fn instrument<S>(&self, router: Router<S>, path: &'static str) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let counter = |code: &str| {
            self.requests
                .get_or_create(&CodeLabels {
                    code: code.to_owned(),
                    webhook: path.to_owned(),
                })
                .clone()
        };
        let ok = counter("200");
        let _ = counter("500");
        let webhook = WebhookLabels {
            webhook: path.to_owned(),
        };
        let tracked = Tracked {
            requests: self.requests.clone(),
            ok,
            latency: self.latency.get_or_create(&webhook).clone(),
            in_flight: self.in_flight.get_or_create(&webhook).clone(),
            path,
        };
        router.route_layer(middleware::from_fn_with_state(Arc::new(tracked), track))
    }
}

/// One path's metric handles, looked up once (the code of most answers, 200, included).
struct Tracked {
    requests: Family<CodeLabels, Counter>,
    ok: Counter,
    latency: Histogram,
    in_flight: Gauge,
    path: &'static str,
}

/// Decrements the in-flight gauge however the request ends (a dropped connection included).
struct InFlight(Arc<Tracked>);

impl InFlight {
    fn enter(tracked: Arc<Tracked>) -> Self {
        tracked.in_flight.inc();
        Self(tracked)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

async fn track(State(tracked): State<Arc<Tracked>>, request: Request, next: Next) -> Response {
    let in_flight = InFlight::enter(tracked);
    let started = Instant::now();
    let response = next.run(request).await;
    let tracked = &in_flight.0;
    tracked.latency.observe(started.elapsed().as_secs_f64());
    match response.status().as_u16() {
        200 => tracked.ok.inc(),
        code => tracked
            .requests
            .get_or_create(&CodeLabels {
                code: code.to_string(),
                webhook: tracked.path.to_owned(),
            })
            .inc(),
    };
    response
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request as HttpRequest, http::StatusCode, routing::post};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn every_answer_is_counted_by_status_and_in_flight_falls_back_when_a_request_is_dropped() {
        let metrics = RequestMetrics::default();
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let router = Router::new().route(
            "/hook",
            post(move |body: String| {
                let mut release = release_rx.clone();
                async move {
                    if body == "wait" {
                        let _ = release.wait_for(|go| *go).await;
                    }
                    StatusCode::UNSUPPORTED_MEDIA_TYPE
                }
            }),
        );
        let router = metrics.instrument(router, "/hook");
        let labels = |code: &str| CodeLabels {
            code: code.to_owned(),
            webhook: "/hook".to_owned(),
        };
        let webhook = WebhookLabels {
            webhook: "/hook".to_owned(),
        };
        let request = |body: &'static str| HttpRequest::post("/hook").body(Body::from(body)).unwrap();

        let response = router.clone().oneshot(request("now")).await.unwrap();
        assert_eq!(response.status(), 415);
        assert_eq!(metrics.requests.get_or_create(&labels("415")).get(), 1);
        assert_eq!(metrics.requests.get_or_create(&labels("200")).get(), 0);

        // A request in progress is in flight; dropping it (a client gone) takes it out again.
        let pending = tokio::spawn(router.clone().oneshot(request("wait")));
        for _ in 0..100 {
            if metrics.in_flight.get_or_create(&webhook).get() == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(metrics.in_flight.get_or_create(&webhook).get(), 1);
        pending.abort();
        let _ = pending.await;
        assert_eq!(metrics.in_flight.get_or_create(&webhook).get(), 0);
        assert_eq!(
            metrics.requests.get_or_create(&labels("415")).get(),
            1,
            "not answered, not counted"
        );
        drop(release_tx);

        // Other paths are not the webhook's.
        let response = router
            .oneshot(HttpRequest::get("/other").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(metrics.requests.get_or_create(&labels("404")).get(), 0);
    }
}
