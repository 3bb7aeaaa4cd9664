//! The mutating admission webhook.
//!
//! Admission flow: [`server`] (HTTPS, `/mutate-v1-pod`) → [`admission`] (decode the review) →
//! [`service_accounts`] (reflector cache, direct GET on a miss) → [`mutation`] (pure: pod +
//! ServiceAccount + config → JSON Patch or denial) → [`admission`] (encode the answer).
//! Around it: [`tls`] (certificate resolver and file reload), [`certs`] (self-managed CA and
//! serving certificate), [`metrics`] (Prometheus).

pub mod certs;
pub mod metrics;
pub mod server;
pub mod service_accounts;
pub mod tls;

mod interface_shim;
pub use interface_shim::{admission, config, mutation};

#[cfg(test)]
mod test_support;
