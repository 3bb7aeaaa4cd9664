//! The pure core of the azure-wi admission webhook: what a labelled pod gets, and nothing that
//! does IO.
//!
//! [`ConfigArgs`] (flags and environment) becomes a validated [`Config`] once at start-up;
//! [`mutate`] then turns a pod (raw JSON), its [`ServiceAccount`]'s annotations and that
//! [`Config`] into JSON Patch operations, or a [`Denial`] naming the annotation and value at
//! fault. The binary crate (`azure-wi`) decodes the AdmissionReview, looks the ServiceAccount up
//! in Kubernetes and answers; this crate only computes.
//!
//! With the cargo feature `clap`, the configuration types derive `clap::Args` /
//! `clap::ValueEnum` for the binary's command line.

pub mod annotations;
pub mod cloud;
pub mod config;
mod denial;
pub mod identity_header;
pub mod mutation;
pub mod object_names;
mod patch_builder;
pub mod proxy_containers;
pub mod service_account;
pub mod token_layout;

pub use config::{Config, ConfigArgs, ConfigError};
pub use denial::{Denial, MAX_QUOTED, excerpt, excerpt_to, quoted};
pub use mutation::mutate;
pub use service_account::{ServiceAccount, service_account_name};
