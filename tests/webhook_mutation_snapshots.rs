//! Whole mutated pods, reviewed once and committed under `tests/snapshots/`.
//!
//! A change in what the webhook injects shows up as a snapshot diff (`cargo insta review`).

mod support;

use azure_wi_core::{ConfigArgs, token_layout::TokenLayout};
use serde_json::{Value, json};
use support::*;

/// A Deployment's pod: generateName, no namespace, an init container, a user env var and volume.
fn deployment_pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-7d9f8b6c5-",
            "labels": {"app": "web", "azure.workload.identity/use": "true"},
            "annotations": annotations,
        },
        "spec": {
            "serviceAccountName": "workload",
            "initContainers": [{"name": "migrate", "image": "example.com/migrate:1"}],
            "containers": [{
                "name": "web",
                "image": "example.com/web:1",
                "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    })
}

#[test]
fn plain_pod() {
    insta::assert_json_snapshot!(mutated(&deployment_pod(json!({})), &sa(), &config()));
}

#[test]
fn proxy_classic() {
    let pod = deployment_pod(json!({"azure.workload.identity/inject-proxy-sidecar": "true"}));
    insta::assert_json_snapshot!(mutated(&pod, &sa(), &config()));
}

#[test]
fn proxy_native() {
    let pod = deployment_pod(json!({
        "azure.workload.identity/inject-proxy-sidecar": "true",
        "azure.workload.identity/proxy-sidecar-port": "9000",
    }));
    insta::assert_json_snapshot!(mutated(&pod, &sa(), &native_config()));
}

#[test]
fn identity_endpoint_native() {
    let pod = deployment_pod(json!({
        "azure.workload.identity/inject-proxy-sidecar": "true",
        "azure.workload.identity/proxy-mode": "identity-endpoint",
    }));
    insta::assert_json_snapshot!(mutated(&pod, &sa(), &native_config()));
}

#[test]
fn custom_endpoint_with_config_map_ca() {
    let config = ConfigArgs {
        custom_token_endpoint_annotation_suffix: Some("identity-binding".into()),
        custom_token_endpoint_audience: Some("api://AKSIdentityBinding".into()),
        azure_kubernetes_token_proxy: Some("https://kubernetes.default.svc".into()),
        azure_kubernetes_ca_configmap_name: Some("kube-root-ca.crt".into()),
        ..args()
    }
    .into_config(None)
    .unwrap();
    let pod = deployment_pod(json!({
        "azure.workload.identity/use-identity-binding": "true",
        "azure.workload.identity/service-account-token-expiration": "86400",
    }));
    insta::assert_json_snapshot!(mutated(&pod, &sa(), &config));
}

#[test]
fn legacy_layout_us_government() {
    let config = ConfigArgs {
        token_path_layout: TokenLayout::Legacy,
        azure_environment: Some("AzureUSGovernmentCloud".into()),
        ..args()
    }
    .into_config(None)
    .unwrap();
    let sa = service_account(&[
        ("azure.workload.identity/client-id", CLIENT_ID),
        ("azure.workload.identity/tenant-id", "gov-tenant"),
    ]);
    insta::assert_json_snapshot!(mutated(&deployment_pod(json!({})), &sa, &config));
}

#[test]
fn patch_of_a_plain_pod() {
    let pod = deployment_pod(json!({}));
    insta::assert_json_snapshot!(mutate(&pod, &sa(), &config()).unwrap());
}
