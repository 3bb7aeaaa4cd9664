//! The AdmissionReview the tests send to the webhook: a Pod labelled for workload identity.

use serde_json::{Value, json};

/// An `admission.k8s.io/v1` AdmissionReview with request `uid` to CREATE the Pod `web-0` (label
/// `azure.workload.identity/use: "true"`, one container `web` running `nginx`) in `namespace`
/// under `service_account`.
pub fn pod_review(uid: &str, namespace: &str, service_account: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace, "operation": "CREATE",
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-0", "labels": {"azure.workload.identity/use": "true"}},
                "spec": {"serviceAccountName": service_account, "containers": [{"name": "web", "image": "nginx"}]}}
        }
    })
}
