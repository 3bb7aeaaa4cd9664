//! End to end on a real kube-apiserver: the identity-endpoint proxy mode on pods created through
//! the API server and mutated by the `azure-wi webhook` process (the other rules are covered by
//! `admission.rs`), and `azure-wi mutate --cluster` reading ServiceAccounts and the server
//! version from the cluster.

use azure_wi_test_support::e2e;

use std::{path::Path, process::Command};

use e2e::{
    kube_helpers::create_workload_service_account,
    testbed::TestBed,
    webhook::{TENANT, Webhook, azure_wi_binary, group_namespace, register},
};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::PostParams};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

const CLIENT: &str = "5b1f1d4c-0a4e-4c6b-9d8e-000000000e2e";
const GROUP: &str = "identity-endpoint";

/// The webhook of this test binary (defaults: native sidecars on this API server), registered
/// for the namespaces of `GROUP`.
static WEBHOOK: OnceCell<Webhook> = OnceCell::const_new();

async fn bed() -> &'static TestBed {
    let bed = TestBed::shared().await;
    WEBHOOK
        .get_or_init(|| async {
            let webhook = Webhook::start(bed, GROUP, &["--proxy-image=example.com/azure-wi:e2e"]).await;
            register(bed, &webhook, GROUP, &["v1", "v1beta1"]).await;
            webhook
        })
        .await;
    bed
}

/// Creates the ServiceAccount `workload` (client id [`CLIENT`]) in `ns`.
async fn create_workload(client: &kube::Client, ns: &str) {
    create_workload_service_account(client, ns, "workload", CLIENT).await;
}

/// A namespace served by the webhook, with ServiceAccount `workload` (client id).
async fn setup(prefix: &str) -> (kube::Client, String) {
    let bed = bed().await;
    let client = bed.client().await;
    let ns = group_namespace(bed, GROUP, prefix).await;
    create_workload(&client, &ns).await;
    (client, ns)
}

fn pod(name: &str, annotations: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {"azure.workload.identity/use": "true"},
            "annotations": annotations,
        },
        "spec": {
            "serviceAccountName": "workload",
            "initContainers": [{"name": "setup", "image": "busybox"}],
            "containers": [{"name": "app", "image": "busybox"}],
        },
    }))
    .unwrap()
}

async fn create(
    client: &kube::Client,
    ns: &str,
    name: &str,
    annotations: Value,
) -> Result<Value, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let created = api
        .create(&PostParams::default(), &pod(name, annotations))
        .await?;
    Ok(serde_json::to_value(created).unwrap())
}

fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    pod["spec"][list]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {list} {name} in {pod:#}"))
}

fn env(container: &Value, name: &str) -> Option<String> {
    container["env"].as_array()?.iter().find(|v| v["name"] == name)?["value"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_endpoint_mode_needs_no_privileges_and_shares_one_header() {
    let (client, ns) = setup("identity").await;
    let annotations = json!({
        "azure.workload.identity/inject-proxy-sidecar": "true",
        "azure.workload.identity/proxy-mode": "identity-endpoint",
    });
    let pod = create(&client, &ns, "identity", annotations.clone())
        .await
        .unwrap();
    let inits: Vec<&str> = pod["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(inits, ["azwi-proxy", "setup"]);
    assert!(!pod.to_string().contains("NET_ADMIN"));
    let proxy = &pod["spec"]["initContainers"][0];
    assert!(
        proxy["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--identity-endpoint"))
    );
    assert_eq!(proxy["image"], "example.com/azure-wi:e2e");
    assert_eq!(
        proxy["restartPolicy"], "Always",
        "a native sidecar on this API server"
    );
    assert_eq!(proxy["securityContext"]["runAsNonRoot"], true);
    assert_eq!(env(proxy, "AZURE_TENANT_ID").as_deref(), Some(TENANT));
    let header = env(proxy, "IDENTITY_HEADER").expect("the proxy has the header");
    assert_eq!(header.len(), 64);
    for (list, name) in [("initContainers", "setup"), ("containers", "app")] {
        let c = container(&pod, list, name);
        assert_eq!(env(c, "IDENTITY_HEADER"), Some(header.clone()));
        assert_eq!(
            env(c, "IDENTITY_ENDPOINT").as_deref(),
            Some("http://127.0.0.1:8000/msi/token")
        );
    }
    let other = create(&client, &ns, "identity-other", annotations).await.unwrap();
    assert_ne!(
        env(&other["spec"]["initContainers"][0], "IDENTITY_HEADER"),
        Some(header),
        "per pod"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutate_cluster_reads_the_service_account_and_the_server_version() {
    let bed = TestBed::shared().await;
    let client = bed.client().await;
    let ns = bed.namespace("preview").await;
    create_workload(&client, &ns).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pod.json");
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"azure.workload.identity/use": "true"},
            "annotations": {"azure.workload.identity/inject-proxy-sidecar": "true"}},
        "spec": {"serviceAccountName": "workload", "containers": [{"name": "app", "image": "busybox"}]},
    });
    std::fs::write(&file, manifest.to_string()).unwrap();
    let run = |pod_file: &Path| {
        Command::new(azure_wi_binary())
            .env_clear()
            .env("AZURE_TENANT_ID", TENANT)
            .env("KUBECONFIG", &bed.kubeconfig)
            .args(["mutate", "--cluster", "--namespace", &ns, "--pod"])
            .arg(pod_file)
            .output()
            .unwrap()
    };
    // Blocking is fine here: the API server is another process.
    let output = run(&file);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mutated: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        mutated["spec"]["initContainers"][0]["name"], "azwi-proxy",
        "native sidecar from the server version"
    );
    assert_eq!(
        env(&mutated["spec"]["containers"][0], "AZURE_CLIENT_ID").as_deref(),
        Some(CLIENT)
    );

    let missing = dir.path().join("missing.json");
    let mut other = manifest.clone();
    other["spec"]["serviceAccountName"] = json!("nobody");
    std::fs::write(&missing, other.to_string()).unwrap();
    let output = run(&missing);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains(r#"serviceaccounts "nobody" not found"#));
}
