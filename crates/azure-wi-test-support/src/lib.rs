//! Test stand-ins shared by azure-wi's tests, benchmarks and `scripts/demo` (dev-only, never
//! published):
//!
//! - [`admission_review`]: the AdmissionReview the webhook tests send;
//! - [`child_exit`]: waiting, bounded, for a child process to exit;
//! - `response_body` (feature `e2e`): sending a request and reading its JSON or text answer;
//! - [`recording_server`]: a scripted HTTP(S) server on 127.0.0.1 that records every request, the
//!   stand-in for Microsoft Entra and Azure's metadata endpoints in the credential tests;
//! - `entra` (feature `entra`, implied by `e2e`): the Microsoft Entra stand-in, also served by the
//!   binary `azwi-stand-in entra` (feature `cli`) for scripts and benchmarks;
//! - `e2e` (feature `e2e`): the end-to-end test bed: a real kube-apiserver and etcd on loopback, a Microsoft
//!   Entra stand-in, and helpers to drive the `azure-wi` binary through them.

pub mod admission_review;
pub mod child_exit;
#[cfg(feature = "e2e")]
pub mod e2e;
#[cfg(feature = "entra")]
pub mod entra;
pub mod recording_server;
#[cfg(feature = "e2e")]
pub mod response_body;
