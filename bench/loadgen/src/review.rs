//! The default AdmissionReview: a two-container Deployment pod.

use serde_json::{Value, json};

/// The review sent when `--review` is not given.
pub fn default_review(namespace: &str, service_account: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000001",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": "workload-6d4cf56db6-",
                    "labels": {"app": "workload", "azure.workload.identity/use": "true", "pod-template-hash": "6d4cf56db6"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "workload-6d4cf56db6",
                        "uid": "8b0b6a3e-0d2f-4c55-9b39-3d2b7f1f0a11", "controller": true, "blockOwnerDeletion": true}]
                },
                "spec": {
                    "serviceAccountName": service_account,
                    "containers": [
                        {"name": "app", "image": "registry.example/app:1.2.3", "ports": [{"containerPort": 8080}],
                         "env": [{"name": "LOG_LEVEL", "value": "info"}],
                         "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                         "volumeMounts": [{"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]},
                        {"name": "sidecar", "image": "registry.example/sidecar:4.5.6"}
                    ],
                    "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst"
                }
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}
