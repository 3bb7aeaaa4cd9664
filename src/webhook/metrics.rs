//! The webhook's Prometheus metrics.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `azwi_mutation_request` | histogram (seconds), upstream's name and buckets | `namespace` |
//! | `azwi_admission_requests_total` | counter | `outcome` = `mutated` \| `denied` \| `error` |
//! | `azwi_service_account_cache_misses_total` | counter | `result` = `found` \| `not_found` \| `error` |
//! | `azwi_service_account_cache_synced` | gauge (1 once the ServiceAccount cache holds a complete list) | |
//! | `azwi_certificate_reloads_total` | counter | |
//! | `azwi_certificate_expiry_timestamp_seconds` | gauge (unix seconds of the serving certificate's `notAfter`) | |
//!
//! Beside them, upstream's other names: controller-runtime's `controller_runtime_webhook_*`
//! ([`super::request_metrics`]) and the standard `process_*` ([`super::process_metrics`]).
//!
//! The handles are cheap clones sharing one set of values; `/metrics` serves them as Prometheus
//! text 0.0.4 or OpenMetrics, as the scraper's `Accept` header asks ([`super::exposition`]).

use std::sync::Arc;

use axum::{
    Router,
    http::{HeaderMap, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use super::{exposition::Format, process_metrics::ProcessCollector, request_metrics::RequestMetrics};

/// Upstream's `azwi_mutation_request` buckets, in seconds: 1–10 ms by 1 ms, 20–100 ms by 10 ms,
/// 0.2–1 s by 0.1 s, then 1.5, 2, 2.5 and 3 s.
pub const MUTATION_BUCKETS: [f64; 32] = [
    0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01, //
    0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, //
    0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, //
    1.5, 2.0, 2.5, 3.0,
];

/// The `namespace` label of `azwi_mutation_request`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    /// The admission request's namespace.
    pub namespace: String,
}

/// How an admission request ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    /// Allowed with a patch.
    mutated,
    /// Denied: a policy violation, or a ServiceAccount that does not exist.
    denied,
    /// Not decided on its merits: a malformed request, or the API server could not be reached.
    error,
}

/// The `outcome` label of `azwi_admission_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// How the request ended.
    pub outcome: Outcome,
}

/// What a direct GET after a ServiceAccount cache miss found.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum MissResult {
    /// The ServiceAccount exists; the cache had not seen it yet.
    found,
    /// The ServiceAccount does not exist.
    not_found,
    /// The API server could not answer in time.
    error,
}

/// The `result` label of `azwi_service_account_cache_misses_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MissLabels {
    /// What the direct GET found.
    pub result: MissResult,
}

type HistogramFamily = Family<NamespaceLabels, Histogram, fn() -> Histogram>;

/// Handles to every webhook metric, plus the registry that renders them.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// `azwi_mutation_request`: time to answer an admission request, by namespace.
    pub mutation_request: HistogramFamily,
    /// `azwi_admission_requests_total`: admission requests by outcome.
    pub admissions: Family<OutcomeLabels, Counter>,
    /// `azwi_service_account_cache_misses_total`: ServiceAccount cache misses by GET result.
    pub service_account_misses: Family<MissLabels, Counter>,
    /// `azwi_service_account_cache_synced`: 1 once the ServiceAccount cache has a complete list.
    pub service_account_cache_synced: Gauge,
    /// `azwi_certificate_reloads_total`: serving certificates loaded after the first.
    pub certificate_reloads: Counter,
    /// `azwi_certificate_expiry_timestamp_seconds`: `notAfter` of the serving certificate.
    pub certificate_expiry: Gauge,
    /// controller-runtime's `controller_runtime_webhook_*` request metrics.
    pub requests: RequestMetrics,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mutation_request: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(MUTATION_BUCKETS));
        let admissions = Family::<OutcomeLabels, Counter>::default();
        let service_account_misses = Family::<MissLabels, Counter>::default();
        let service_account_cache_synced = Gauge::default();
        let certificate_reloads = Counter::default();
        let certificate_expiry = Gauge::default();

        let mut registry = Registry::default();
        registry.register(
            "azwi_mutation_request",
            "Time to answer a pod admission request, in seconds",
            mutation_request.clone(),
        );
        registry.register(
            "azwi_admission_requests",
            "Pod admission requests by outcome",
            admissions.clone(),
        );
        registry.register(
            "azwi_service_account_cache_misses",
            "ServiceAccounts not in the cache, by the result of the direct GET",
            service_account_misses.clone(),
        );
        registry.register(
            "azwi_service_account_cache_synced",
            "1 once the ServiceAccount cache holds a complete list (lookups before that use direct GETs)",
            service_account_cache_synced.clone(),
        );
        registry.register(
            "azwi_certificate_reloads",
            "Serving certificates loaded after the first (rotation or file change)",
            certificate_reloads.clone(),
        );
        registry.register(
            "azwi_certificate_expiry_timestamp_seconds",
            "Expiry (notAfter) of the serving certificate, as unix seconds",
            certificate_expiry.clone(),
        );
        let requests = RequestMetrics::default();
        requests.register(&mut registry);
        registry.register_collector(Box::new(ProcessCollector));
        Self {
            requests,
            mutation_request,
            admissions,
            service_account_misses,
            service_account_cache_synced,
            certificate_reloads,
            certificate_expiry,
            registry: Arc::new(registry),
        }
    }

    /// Counts one admission request and records its duration.
    pub fn observe_admission(&self, namespace: &str, outcome: Outcome, seconds: f64) {
        self.mutation_request
            .get_or_create(&NamespaceLabels {
                namespace: namespace.to_owned(),
            })
            .observe(seconds);
        self.admissions.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts one ServiceAccount cache miss.
    pub fn observe_miss(&self, result: MissResult) {
        self.service_account_misses
            .get_or_create(&MissLabels { result })
            .inc();
    }

    /// Renders every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        Format::OpenMetrics.encode(&self.registry)
    }

    /// Renders every metric in `format`.
    pub fn encode_as(&self, format: Format) -> String {
        format.encode(&self.registry)
    }

    /// A router serving `/metrics` in the format the `Accept` header asks for.
    pub fn router(&self) -> Router {
        let metrics = self.clone();
        Router::new().route(
            "/metrics",
            get(move |headers: HeaderMap| {
                let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
                let format = Format::negotiate(accept);
                let body = metrics.encode_as(format);
                async move { ([(header::CONTENT_TYPE, format.content_type())], body).into_response() }
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_upstreams_histogram_and_the_counters() {
        let metrics = Metrics::new();
        metrics.observe_admission("team-a", Outcome::mutated, 0.0042);
        metrics.observe_admission("team-a", Outcome::denied, 0.2);
        metrics.observe_miss(MissResult::found);
        metrics.certificate_reloads.inc();
        metrics.certificate_expiry.set(1_900_000_000);
        let text = metrics.encode();

        assert!(text.contains("# TYPE azwi_mutation_request histogram"), "{text}");
        assert!(
            text.contains(r#"azwi_mutation_request_bucket{le="0.005",namespace="team-a"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"azwi_mutation_request_bucket{le="3.0",namespace="team-a"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"azwi_mutation_request_count{namespace="team-a"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"azwi_admission_requests_total{outcome="mutated"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"azwi_admission_requests_total{outcome="denied"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"azwi_service_account_cache_misses_total{result="found"} 1"#),
            "{text}"
        );
        assert!(text.contains("azwi_certificate_reloads_total 1"), "{text}");
        assert!(
            text.contains("azwi_certificate_expiry_timestamp_seconds 1900000000"),
            "{text}"
        );
    }

    #[test]
    fn buckets_are_sorted_and_end_at_three_seconds() {
        assert!(MUTATION_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(MUTATION_BUCKETS.last(), Some(&3.0));
    }
}
