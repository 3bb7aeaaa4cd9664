//! The mutating admission webhook: gives pods labelled `azure.workload.identity/use: "true"` the
//! `AZURE_*` environment and a projected service-account token, like Azure/azure-workload-identity's
//! webhook (v1.6.0), and optionally the token proxy.
//!
//! Data flow: [`admission::AdmissionRequest::decode`] -> (the ServiceAccount, from the server's
//! cache) -> [`mutation::mutate`] (pure: raw pod JSON + [`mutation::ServiceAccount`] +
//! [`config::Config`] -> JSON Patch or [`Denial`]) -> [`admission::AdmissionRequest::respond`].

pub mod admission;
pub mod annotations;
pub mod cloud;
pub mod config;
mod denial;
pub mod identity_header;
pub mod mutation;
mod patch_builder;
pub mod proxy_containers;
pub mod token_layout;

pub use admission::{AdmissionError, AdmissionRequest};
pub use config::{Config, ConfigArgs, ConfigError};
pub use denial::Denial;
pub use mutation::{ServiceAccount, mutate, service_account_name};
