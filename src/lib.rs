//! Azure workload identity for Kubernetes.
//!
//! `azure-wi` is three things built from one crate:
//!
//! - [`credential`]: an embeddable credential library that obtains Microsoft Entra access tokens
//!   from every Azure platform source (IMDS, App Service, Service Fabric, Azure Arc, Azure ML,
//!   Cloud Shell), from a Kubernetes service-account token (workload identity) and from Azure
//!   Pipelines. It is always compiled and pulls in no server stack: depend on the crate with
//!   `default-features = false` to get only this.
//! - `webhook` (feature `webhook`): the mutating admission webhook that gives labelled pods the
//!   `AZURE_*` environment and a projected service-account token.
//! - `proxy` (feature `proxy`): an IMDS- and App Service-compatible endpoint that serves tokens
//!   to applications that only know managed identity.
//!
//! Cargo features:
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `cli` (default) | the `azure-wi` binary: `webhook` + `proxy` + the command line |
//! | `webhook` | the admission webhook (kube, k8s-openapi, axum) |
//! | `proxy` | the token proxy (axum) |
//! | `server` | the HTTPS serving stack both share |
//! | `azure-core` | `azure_core::credentials::TokenCredential` for every credential, so the Azure SDK for Rust's clients accept them (adds `azure_core` without its HTTP stack) |
//!
//! A workload embeds the library with
//! `azure-wi = { version = "0.1", default-features = false, features = ["azure-core"] }`; the
//! [`credential`] module documents which credential to use where, the environment variables,
//! the error kinds and the token cache.
//!
//! ```no_run
//! use azure_wi::credential::{PlatformCredential, TokenCredential};
//!
//! # async fn run() -> Result<(), azure_wi::credential::Error> {
//! let credential = PlatformCredential::new(None)?;
//! let token = credential.get_token(&["https://vault.azure.net/.default"], None).await?;
//! println!("expires at {}", token.expires_on);
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod credential;

#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "webhook")]
pub mod webhook;

#[cfg(feature = "proxy")]
pub mod proxy;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
