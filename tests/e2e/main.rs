//! The end-to-end tests on a real kube-apiserver and etcd (the test bed of
//! `azure-wi-test-support`, feature `e2e`), one module per subject, in one test binary so the test
//! bed is compiled and linked once. Tests of one module share the control plane of
//! `TestBed::shared()` (each in its own namespaces, each webhook registration confined to its own
//! group of namespaces); tests that stop, restart or reconfigure an API server start their own.
//! The in-cluster node suite is `tests/e2e_node.rs` (root, `--ignored`), a binary of its own.

mod admission;
mod certificates;
mod identity_binding;
mod jwks;
mod rbac;
mod testbed;
mod token_exchange;
mod webhook_mutation;
