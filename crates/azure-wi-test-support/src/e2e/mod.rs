//! The end-to-end test bed, shared by the `tests/e2e_*.rs` test binaries
//! (`#[path = "e2e/mod.rs"] mod e2e;`): a real kube-apiserver and etcd on loopback, a Microsoft
//! Entra stand-in, and helpers to drive the `azure-wi` binary through them.
#![allow(dead_code)]

pub mod connect_proxy;
pub mod entra;
pub mod kube_helpers;
pub mod node;
pub mod pki;
pub mod process;
pub mod testbed;
pub mod upstream;
pub mod webhook;
