//! The admission path without the network: decode an AdmissionReview, mutate, encode the answer.
//!
//! `cargo bench --bench mutation`

use std::collections::BTreeMap;

use azure_wi::webhook::AdmissionRequest;
use azure_wi_core::{
    ConfigArgs,
    mutation::{ServiceAccount, mutate_with},
};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn review(annotations: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "apps",
            "operation": "CREATE",
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"generateName": "web-7d9f8b6c5-", "namespace": "apps", "annotations": annotations,
                             "labels": {"app": "web", "azure.workload.identity/use": "true"}},
                "spec": {
                    "serviceAccountName": "workload",
                    "initContainers": [{"name": "migrate", "image": "example.com/migrate:1"}],
                    "containers": [
                        {"name": "web", "image": "example.com/web:1", "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                        {"name": "metrics", "image": "example.com/metrics:1"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }))
    .unwrap()
}

fn admission(c: &mut Criterion) {
    let config = ConfigArgs {
        tenant_id: Some("tenant".into()),
        ..ConfigArgs::default()
    }
    .into_config(Some((1, 33)))
    .unwrap();
    let sa = ServiceAccount {
        name: "workload".into(),
        annotations: BTreeMap::from([("azure.workload.identity/client-id".into(), "client".into())]),
    };
    let cases = [
        ("plain", review(json!({}))),
        (
            "identity-endpoint",
            review(json!({"azure.workload.identity/inject-proxy-sidecar": "true",
                          "azure.workload.identity/proxy-mode": "identity-endpoint"})),
        ),
    ];
    for (name, body) in cases {
        c.bench_function(&format!("decode+mutate+respond/{name}"), |b| {
            b.iter(|| {
                let request = AdmissionRequest::decode(&body).unwrap();
                let outcome = mutate_with(&request.object, &request.namespace, &sa, &config, &|| {
                    Ok("ab".repeat(32))
                });
                request.respond(outcome)
            })
        });
    }
}

criterion_group!(benches, admission);
criterion_main!(benches);
