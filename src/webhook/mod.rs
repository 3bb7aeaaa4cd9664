//! The mutating admission webhook's IO: gives pods labelled `azure.workload.identity/use: "true"`
//! the `AZURE_*` environment and a projected service-account token, like
//! Azure/azure-workload-identity's webhook (v1.6.0), and optionally the token proxy.
//!
//! Data flow: [`server`] (HTTPS, `/mutate-v1-pod`) -> [`admission::AdmissionRequest::decode`] ->
//! [`service_accounts`] (compact watch-fed cache, direct GET before it has synced and on a miss)
//! -> [`azure_wi_core::mutate`] (pure: raw pod JSON + ServiceAccount + Config -> JSON Patch or
//! Denial) -> [`admission::AdmissionRequest::respond`].
//! Around it: [`tls`] (certificate resolver and file reload), [`certs`] (self-managed CA and
//! serving certificate), [`metrics`] (Prometheus).

pub mod admission;
pub mod body_budget;
pub mod ca_key;
pub mod certs;
pub mod exposition;
pub mod metrics;
pub mod process_metrics;
pub mod request_metrics;
pub mod server;
pub mod service_account_cache;
pub mod service_account_meta;
pub mod service_accounts;
pub mod tls;

pub use admission::{AdmissionError, AdmissionRequest};

#[cfg(test)]
mod test_support;
