//! The end-to-end test bed, shared by the end-to-end tests (`tests/e2e/`, `tests/e2e_node.rs`)
//! and `examples/demo.rs`: a real kube-apiserver and etcd on loopback, a Microsoft Entra stand-in,
//! and helpers to drive the `azure-wi` binary through them.

pub mod connect_proxy;
pub mod entra;
pub mod kube_helpers;
pub mod node;
pub mod pki;
pub mod process;
pub mod testbed;
pub mod upstream;
pub mod webhook;

/// The repository's root (the `azure-wi` package), where `scripts/` lives.
pub fn repo() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}
