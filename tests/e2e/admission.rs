//! End to end: the real `azure-wi webhook` registered with a real kube-apiserver through a
//! MutatingWebhookConfiguration like the chart's; pods are created through the API server and the
//! stored objects are read back and asserted field by field.

use azure_wi_test_support::e2e;

use std::time::Duration;

use e2e::{
    kube_helpers::{create_service_account, create_workload_service_account},
    testbed::TestBed,
    webhook::{TENANT, Webhook, group_namespace, register},
};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

const CLIENT_ID: &str = "00000000-0000-0000-0000-00000000c11e";
const TOKEN_FILE: &str = "/var/run/secrets/azure/wi/token/azure-identity-token";
const AUTHORITY: &str = "https://login.microsoftonline.com/";

/// The webhooks of this test binary: one with the defaults (native sidecars, since the API server
/// is newer than 1.32) registered for review versions v1 (group `native`) and v1beta1 only
/// (group `v1beta1`), and one with `--native-sidecar=false` (group `classic`).
struct Webhooks {
    _default: Webhook,
    _classic: Webhook,
}

static WEBHOOKS: OnceCell<Webhooks> = OnceCell::const_new();

async fn bed() -> &'static TestBed {
    let bed = TestBed::shared().await;
    WEBHOOKS
        .get_or_init(|| async {
            let default = Webhook::start(bed, "default", &[]).await;
            let classic = Webhook::start(bed, "classic", &["--native-sidecar=false"]).await;
            register(bed, &default, "native", &["v1", "v1beta1"]).await;
            register(bed, &default, "v1beta1", &["v1beta1"]).await;
            register(bed, &classic, "classic", &["v1", "v1beta1"]).await;
            Webhooks {
                _default: default,
                _classic: classic,
            }
        })
        .await;
    bed
}

/// A namespace of `group` with ServiceAccount `app` (client id annotation).
async fn namespace(group: &str, prefix: &str) -> (Client, String) {
    let bed = bed().await;
    let client = bed.client().await;
    let ns = group_namespace(bed, group, prefix).await;
    create_workload_service_account(&client, &ns, "app", CLIENT_ID).await;
    (client, ns)
}

/// A labelled pod with two containers, `busybox-1` and `busybox-2`, running as ServiceAccount `app`.
fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": { "azure.workload.identity/use": "true" } },
        "spec": {
            "serviceAccountName": "app",
            "containers": [
                { "name": "busybox-1", "image": "busybox", "command": ["sleep", "3600"] },
                { "name": "busybox-2", "image": "busybox", "command": ["sleep", "3600"] },
            ],
        },
    })
}

/// Creates `pod` through the API server and returns the stored object as JSON.
async fn create(client: &Client, ns: &str, pod: Value) -> Result<Value, kube::Error> {
    create_with(client, ns, pod, &PostParams::default()).await
}

async fn create_with(
    client: &Client,
    ns: &str,
    pod: Value,
    params: &PostParams,
) -> Result<Value, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(pod).expect("pod");
    let created = api.create(params, &pod).await?;
    Ok(serde_json::to_value(created).expect("pod json"))
}

/// The denial message of a failed create.
fn denial(result: Result<Value, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(status)) => status.message,
        other => panic!("expected the API server to refuse the pod, got {other:?}"),
    }
}

/// `azure-workload-identity-reserved-` + the first 30 hex digits of sha256(pod name).
fn reserved_volume(pod_name: &str) -> String {
    let digest = Sha256::digest(pod_name.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("azure-workload-identity-reserved-{}", &hex[..30])
}

fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    pod["spec"][list]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {list} {name} in {pod:#}"))
}

/// Asserts the injected environment and mount of one container, field by field.
fn assert_injected(c: &Value, volume: &str, client_id: &str, tenant: &str) {
    assert_eq!(
        c["env"],
        json!([
            { "name": "AZURE_CLIENT_ID", "value": client_id },
            { "name": "AZURE_TENANT_ID", "value": tenant },
            { "name": "AZURE_FEDERATED_TOKEN_FILE", "value": TOKEN_FILE },
            { "name": "AZURE_AUTHORITY_HOST", "value": AUTHORITY },
        ]),
        "env of {}",
        c["name"]
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{ "name": volume, "mountPath": "/var/run/secrets/azure/wi", "readOnly": true }]),
        "mounts of {}",
        c["name"]
    );
}

fn assert_untouched(c: &Value) {
    assert!(c.get("env").is_none(), "{} has env {}", c["name"], c["env"]);
    assert!(
        c.get("volumeMounts").is_none(),
        "{} has mounts {}",
        c["name"],
        c["volumeMounts"]
    );
}

/// Asserts the projected token volume as the API server stores it (defaults included).
fn assert_volume(pod: &Value, volume: &str, expiration: u64) {
    assert_eq!(
        pod["spec"]["volumes"],
        json!([{
            "name": volume,
            "projected": {
                "defaultMode": 420,
                "sources": [{ "serviceAccountToken": {
                    "audience": "api://AzureADTokenExchange",
                    "expirationSeconds": expiration,
                    "path": "token/azure-identity-token",
                } }],
            },
        }])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn labelled_pod_is_mutated() {
    let (client, ns) = namespace("native", "labelled").await;
    let stored = create(&client, &ns, pod("web")).await.expect("create pod");
    let volume = reserved_volume("web");
    assert_volume(&stored, &volume, 3600);
    for name in ["busybox-1", "busybox-2"] {
        assert_injected(container(&stored, "containers", name), &volume, CLIENT_ID, TENANT);
    }
    assert!(stored["spec"].get("initContainers").is_none(), "{stored:#}");
    // What the API server returned is what it stored.
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let read = serde_json::to_value(api.get("web").await.expect("get pod")).expect("json");
    assert_eq!(read["spec"], stored["spec"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unlabelled_pod_is_untouched() {
    let (client, ns) = namespace("native", "unlabelled").await;
    let mut p = pod("plain");
    p["metadata"]["labels"] = json!({ "app": "plain" });
    let stored = create(&client, &ns, p).await.expect("create pod");
    assert!(stored["spec"].get("volumes").is_none(), "{stored:#}");
    for name in ["busybox-1", "busybox-2"] {
        assert_untouched(container(&stored, "containers", name));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deployment_style_pod_with_generate_name_is_mutated() {
    let (client, ns) = namespace("native", "generated").await;
    let mut p = pod("unused");
    p["metadata"] =
        json!({ "generateName": "web-7c9f8d-", "labels": { "azure.workload.identity/use": "true" } });
    let stored = create(&client, &ns, p).await.expect("create pod");
    assert!(
        stored["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("web-7c9f8d-"))
    );
    assert_eq!(stored["metadata"]["namespace"], ns.as_str());
    let volume = reserved_volume("web-7c9f8d- (prefix)");
    assert_volume(&stored, &volume, 3600);
    for name in ["busybox-1", "busybox-2"] {
        assert_injected(container(&stored, "containers", name), &volume, CLIENT_ID, TENANT);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn init_containers_are_mutated() {
    let (client, ns) = namespace("native", "init").await;
    let mut p = pod("with-init");
    p["spec"]["initContainers"] = json!([{ "name": "init", "image": "busybox", "command": ["true"] }]);
    let stored = create(&client, &ns, p).await.expect("create pod");
    let volume = reserved_volume("with-init");
    for (list, name) in [
        ("initContainers", "init"),
        ("containers", "busybox-1"),
        ("containers", "busybox-2"),
    ] {
        assert_injected(container(&stored, list, name), &volume, CLIENT_ID, TENANT);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn skipped_containers_get_nothing() {
    let (client, ns) = namespace("native", "skip").await;
    let mut p = pod("skipper");
    p["metadata"]["annotations"] = json!({ "azure.workload.identity/skip-containers": "busybox-1;" });
    let stored = create(&client, &ns, p).await.expect("create pod");
    let volume = reserved_volume("skipper");
    assert_untouched(container(&stored, "containers", "busybox-1"));
    assert_injected(
        container(&stored, "containers", "busybox-2"),
        &volume,
        CLIENT_ID,
        TENANT,
    );
    assert_volume(&stored, &volume, 3600);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_expiration_from_annotations() {
    let (client, ns) = namespace("native", "expiry").await;
    create_service_account(
        &client,
        &ns,
        "long",
        &[
            ("azure.workload.identity/client-id", CLIENT_ID),
            ("azure.workload.identity/service-account-token-expiration", "7200"),
        ],
    )
    .await;
    let mut p = pod("sa-expiry");
    p["spec"]["serviceAccountName"] = json!("long");
    let stored = create(&client, &ns, p).await.expect("create pod");
    assert_volume(&stored, &reserved_volume("sa-expiry"), 7200);

    let mut p = pod("pod-expiry");
    p["spec"]["serviceAccountName"] = json!("long");
    p["metadata"]["annotations"] =
        json!({ "azure.workload.identity/service-account-token-expiration": "86400" });
    let stored = create(&client, &ns, p).await.expect("create pod");
    assert_volume(&stored, &reserved_volume("pod-expiry"), 86400);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_token_expiration_is_denied() {
    let (client, ns) = namespace("native", "bad-expiry").await;
    let annotation = "azure.workload.identity/service-account-token-expiration";
    for value in ["100", "86401"] {
        let mut p = pod("too-short");
        p["metadata"]["annotations"] = json!({ annotation: value });
        let message = denial(create(&client, &ns, p).await);
        assert!(
            message.contains("mutation.azure-workload-identity.io"),
            "{message}"
        );
        assert!(
            message.contains(&format!(
                "token expiration {value} not valid. Expected value to be between 3600 and 86400"
            )),
            "{message}"
        );
    }
    let mut p = pod("not-a-number");
    p["metadata"]["annotations"] = json!({ annotation: "invalid" });
    let message = denial(create(&client, &ns, p).await);
    assert!(message.contains("invalid"), "{message}");

    create_service_account(
        &client,
        &ns,
        "bad",
        &[
            ("azure.workload.identity/client-id", CLIENT_ID),
            (annotation, "100"),
        ],
    )
    .await;
    let mut p = pod("sa-too-short");
    p["spec"]["serviceAccountName"] = json!("bad");
    let message = denial(create(&client, &ns, p).await);
    assert!(message.contains("token expiration 100 not valid"), "{message}");
    // Nothing was stored.
    let api: Api<Pod> = Api::namespaced(client, &ns);
    assert!(
        api.list(&Default::default())
            .await
            .expect("list pods")
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn service_account_created_just_before_its_pod_is_honoured() {
    let (client, ns) = namespace("native", "fresh-sa").await;
    for i in 0..5 {
        let (sa, id) = (
            format!("fresh-{i}"),
            format!("00000000-0000-0000-0000-00000000f{i:03}"),
        );
        create_service_account(
            &client,
            &ns,
            &sa,
            &[
                ("azure.workload.identity/client-id", &id),
                ("azure.workload.identity/tenant-id", "tenant-of-sa"),
            ],
        )
        .await;
        let mut p = pod(&format!("fresh-{i}"));
        p["spec"]["serviceAccountName"] = json!(sa);
        let stored = create(&client, &ns, p).await.expect("create pod");
        let volume = reserved_volume(&format!("fresh-{i}"));
        assert_injected(
            container(&stored, "containers", "busybox-1"),
            &volume,
            &id,
            "tenant-of-sa",
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_service_account_annotation_reaches_the_next_pod() {
    let (client, ns) = namespace("native", "changed-sa").await;
    let new_id = "00000000-0000-0000-0000-0000000c4a46";
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let patch = json!({ "metadata": { "annotations": { "azure.workload.identity/client-id": new_id } } });
    sas.patch("app", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch SA");
    // The webhook's ServiceAccount cache follows a watch: the update arrives within moments, not
    // synchronously. Create pods until one carries the new id (bounded; never the old id after it).
    let mut seen_new = false;
    for attempt in 0..100 {
        let stored = create(&client, &ns, pod(&format!("after-{attempt}")))
            .await
            .expect("create pod");
        let env = &container(&stored, "containers", "busybox-1")["env"][0];
        assert_eq!(env["name"], "AZURE_CLIENT_ID");
        if env["value"] == new_id {
            seen_new = true;
            break;
        }
        assert_eq!(env["value"], CLIENT_ID, "neither the old nor the new client id");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_new, "the webhook never saw the changed annotation");
    let stored = create(&client, &ns, pod("next")).await.expect("create pod");
    assert_eq!(
        container(&stored, "containers", "busybox-2")["env"][0]["value"],
        new_id
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_of_a_missing_service_account_is_denied() {
    let (client, ns) = namespace("native", "missing-sa").await;
    let mut p = pod("orphan");
    p["spec"]["serviceAccountName"] = json!("does-not-exist");
    let message = denial(create(&client, &ns, p).await);
    assert!(
        message.contains("serviceaccounts \"does-not-exist\" not found"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_is_injected_as_a_native_sidecar() {
    let (client, ns) = namespace("native", "proxy-native").await;
    let mut p = pod("proxied");
    p["metadata"]["annotations"] = json!({ "azure.workload.identity/inject-proxy-sidecar": "true" });
    p["spec"]["initContainers"] = json!([{ "name": "user-init", "image": "busybox", "command": ["true"] }]);
    let stored = create(&client, &ns, p).await.expect("create pod");
    let inits: Vec<&str> = stored["spec"]["initContainers"]
        .as_array()
        .expect("inits")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(inits, ["azwi-proxy", "user-init", "azwi-proxy-init"]);
    let proxy = container(&stored, "initContainers", "azwi-proxy");
    assert_eq!(proxy["restartPolicy"], "Always");
    assert_eq!(
        proxy["ports"],
        json!([{ "containerPort": 8000, "protocol": "TCP" }])
    );
    assert_eq!(proxy["args"][0], "--proxy-port=8000");
    let init = container(&stored, "initContainers", "azwi-proxy-init");
    assert_eq!(init["env"][0], json!({ "name": "PROXY_PORT", "value": "8000" }));
    assert_eq!(init["securityContext"]["privileged"], true);
    let containers: Vec<&str> = stored["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(containers, ["busybox-1", "busybox-2"]);
    let volume = reserved_volume("proxied");
    assert_injected(proxy, &volume, CLIENT_ID, TENANT);
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_is_injected_as_a_classic_sidecar() {
    let (client, ns) = namespace("classic", "proxy-classic").await;
    let mut p = pod("proxied");
    p["metadata"]["annotations"] = json!({
        "azure.workload.identity/inject-proxy-sidecar": "true",
        "azure.workload.identity/proxy-sidecar-port": "8123",
    });
    let stored = create(&client, &ns, p).await.expect("create pod");
    let containers: Vec<&str> = stored["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(containers, ["azwi-proxy", "busybox-1", "busybox-2"]);
    let proxy = container(&stored, "containers", "azwi-proxy");
    assert!(proxy.get("restartPolicy").is_none(), "{proxy:#}");
    assert_eq!(
        proxy["ports"],
        json!([{ "containerPort": 8123, "protocol": "TCP" }])
    );
    let inits: Vec<&str> = stored["spec"]["initContainers"]
        .as_array()
        .expect("inits")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(inits, ["azwi-proxy-init"]);
    assert_injected(proxy, &reserved_volume("proxied"), CLIENT_ID, TENANT);
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_with_host_network_is_denied() {
    let (client, ns) = namespace("native", "proxy-host").await;
    let mut p = pod("host");
    p["metadata"]["annotations"] = json!({ "azure.workload.identity/inject-proxy-sidecar": "true" });
    p["spec"]["hostNetwork"] = json!(true);
    let message = denial(create(&client, &ns, p).await);
    assert!(
        message.contains("hostNetwork is set to true, cannot inject proxy sidecar"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn v1beta1_reviews_are_answered() {
    let (client, ns) = namespace("v1beta1", "beta").await;
    let stored = create(&client, &ns, pod("beta")).await.expect("create pod");
    let volume = reserved_volume("beta");
    assert_volume(&stored, &volume, 3600);
    assert_injected(
        container(&stored, "containers", "busybox-1"),
        &volume,
        CLIENT_ID,
        TENANT,
    );
    let mut p = pod("beta-denied");
    p["spec"]["serviceAccountName"] = json!("nobody");
    let message = denial(create(&client, &ns, p).await);
    assert!(
        message.contains("serviceaccounts \"nobody\" not found"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_create_is_mutated_and_not_stored() {
    let (client, ns) = namespace("native", "dry-run").await;
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let returned = create_with(&client, &ns, pod("dry"), &params)
        .await
        .expect("dry-run create");
    let volume = reserved_volume("dry");
    assert_volume(&returned, &volume, 3600);
    assert_injected(
        container(&returned, "containers", "busybox-1"),
        &volume,
        CLIENT_ID,
        TENANT,
    );
    let api: Api<Pod> = Api::namespaced(client, &ns);
    assert!(
        api.get_opt("dry").await.expect("get pod").is_none(),
        "a dry-run pod was stored"
    );
}

/// The webhook is ready, and mutates correctly, before its ServiceAccount cache has synced: here
/// the cache can never sync (its user may `get` ServiceAccounts but not `list` or `watch` them), so
/// every lookup is a direct GET to the real API server.
#[tokio::test(flavor = "multi_thread")]
async fn admission_before_the_cache_has_synced_is_mutated_from_a_direct_get() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};

    let bed = TestBed::shared().await;
    let client = bed.client().await;
    let ns = bed.namespace("unsynced").await;
    let client_id = "00000000-0000-0000-0000-0000000005c0";
    create_service_account(
        &client,
        &ns,
        "app",
        &[
            ("azure.workload.identity/client-id", client_id),
            ("azure.workload.identity/tenant-id", "tenant-of-sa"),
        ],
    )
    .await;
    // A user allowed to GET ServiceAccounts, nothing more.
    let user = format!("lookup-only-{ns}");
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": user},
        "rules": [{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]}]
    }))
    .unwrap();
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("create ClusterRole");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("create ClusterRoleBinding");
    let kubeconfig = bed.kubeconfig_for(&user, &bed.pki().client_cert(&user, "e2e-limited"));

    // `start` returns once /readyz answers 200, which it must without a synced cache.
    let webhook = Webhook::start_with_kubeconfig(bed, "unsynced", &kubeconfig, &[]).await;
    // `pod` runs as ServiceAccount `app`.
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "0000-unsynced", "namespace": ns, "operation": "CREATE",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "object": pod("unsynced")
        }
    });
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(bed.ca_pem.as_bytes()).expect("ca")])
        .build()
        .expect("https client");
    let answer: Value = https
        .post(webhook.url())
        .json(&review)
        .send()
        .await
        .expect("admission request")
        .json()
        .await
        .expect("AdmissionReview answer");
    let response = &answer["response"];
    assert_eq!(response["allowed"], true, "{answer}");
    assert_eq!(response["patchType"], "JSONPatch", "{answer}");
    use base64::Engine as _;
    let patch: json_patch::Patch = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(response["patch"].as_str().expect("patch"))
            .expect("base64 patch"),
    )
    .expect("JSON patch");
    let mut patched = review["request"]["object"].clone();
    json_patch::patch(&mut patched, &patch).expect("the patch applies to the pod");
    let volume = reserved_volume("unsynced");
    // As the patch adds it (the API server's defaulting adds `defaultMode` when storing a pod).
    assert_eq!(
        patched["spec"]["volumes"],
        json!([{"name": volume, "projected": {"sources": [{"serviceAccountToken": {
            "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600,
            "path": "token/azure-identity-token"}}]}}]),
        "{patched:#}"
    );
    for name in ["busybox-1", "busybox-2"] {
        assert_injected(
            container(&patched, "containers", name),
            &volume,
            client_id,
            "tenant-of-sa",
        );
    }

    // The answer came from a direct GET: the cache has not synced, and one miss found the account.
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", webhook.metrics_port))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("azwi_service_account_cache_synced 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"azwi_service_account_cache_misses_total{result="found"} 1"#),
        "{metrics}"
    );
}
