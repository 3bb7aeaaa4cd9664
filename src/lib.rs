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
