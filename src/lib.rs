//! The `azure-wi` binary's library: everything that does IO around the pure webhook core.
//!
//! - [`server`]: the shared HTTPS serving stack (TLS accept loop, health, graceful shutdown).
//! - [`webhook`]: the mutating admission webhook's Kubernetes and HTTP side (AdmissionReview,
//!   ServiceAccount lookups, certificates, metrics, the handler); what a pod gets is computed by
//!   the crate `azure_wi_core`.
//! - [`proxy`]: an IMDS- and App Service-compatible endpoint that serves tokens from the
//!   credential library (the crate `azure_wi_identity`) to applications that only know managed
//!   identity.
//!
//! Rust workloads that want tokens depend on `azure-wi-identity`, not on this crate.

pub mod proxy;
pub mod server;
pub mod webhook;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
