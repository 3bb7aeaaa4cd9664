//! Small helpers on the API server: ServiceAccounts and service-account tokens.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::ServiceAccount,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};

/// Creates the ServiceAccount `namespace`/`name` for the app `client_id` (annotation
/// `azure.workload.identity/client-id`).
pub async fn create_workload_service_account(client: &Client, namespace: &str, name: &str, client_id: &str) {
    create_service_account(
        client,
        namespace,
        name,
        &[("azure.workload.identity/client-id", client_id)],
    )
    .await;
}

/// Creates ServiceAccount `name` in `namespace` with `annotations`.
pub async fn create_service_account(
    client: &Client,
    namespace: &str,
    name: &str,
    annotations: &[(&str, &str)],
) {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: Some(annotations),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&PostParams::default(), &sa)
        .await
        .unwrap_or_else(|e| panic!("create ServiceAccount {namespace}/{name}: {e}"));
}

/// Mints a token for ServiceAccount `namespace/name` with the TokenRequest API, as the kubelet does
/// for a projected `serviceAccountToken` volume.
pub async fn service_account_token(client: &Client, namespace: &str, name: &str, audience: &str) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.to_string()],
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let response = api
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{name}: {e}"));
    response.status.expect("TokenRequest status").token
}
