//! End to end on a real kube-apiserver: an identity binding, from the webhook's mutation to the
//! access token. The `azure-wi webhook` process runs with a custom token endpoint (upstream's e2e
//! settings: suffix `identity-binding`, audience `api://AKSIdentityBinding`, a token proxy URL, a
//! server name and the CA from a ConfigMap); a pod opting in through the API server is mutated;
//! the test then does what the kubelet does with the mutated pod (the projected volume: a
//! TokenRequest with the volume's audience, the ConfigMap's `ca.crt` at the projected path) and
//! runs `azure-wi token` with the container's environment. The token proxy is the Microsoft Entra
//! stand-in with a certificate naming only the server name: it verifies the service-account token
//! against the API server's keys and the binding's audience.

use azure_wi_test_support::e2e;

use std::path::{Path, PathBuf};

use e2e::{
    entra::{Entra, FederatedCredential},
    kube_helpers::{create_service_account, service_account_token},
    testbed::TestBed,
    webhook::{Webhook, azure_wi_binary, group_namespace, register},
};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{Api, api::PostParams};
use serde_json::{Value, json};

const GROUP: &str = "identity-binding";
const CLIENT: &str = "5b1f1d4c-0a4e-4c6b-9d8e-0000000000b1";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const AUDIENCE: &str = "api://AKSIdentityBinding";
const SNI: &str = "identity-binding.token-proxy.test";
const CA_CONFIG_MAP: &str = "identity-binding-ca";
const SCOPE: &str = "https://vault.azure.net/.default";
/// Where the webhook mounts the projected volume.
const MOUNT: &str = "/var/run/secrets/azure/wi";

/// The mutated pod's container `app`: its environment, and the projected volume's sources.
struct Mutated {
    env: Vec<(String, String)>,
    sources: Vec<Value>,
}

async fn create_mutated_pod(client: &kube::Client, ns: &str) -> Mutated {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "bound",
            "labels": {"azure.workload.identity/use": "true"},
            "annotations": {"azure.workload.identity/use-identity-binding": "true"},
        },
        "spec": {"serviceAccountName": "app", "containers": [{"name": "app", "image": "busybox"}]},
    }))
    .unwrap();
    let created = api
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let pod = serde_json::to_value(created).unwrap();
    let container = pod["spec"]["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "app"))
        .expect("container app")
        .clone();
    let env = container["env"]
        .as_array()
        .expect("the webhook adds env")
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                v["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let sources = pod["spec"]["volumes"]
        .as_array()
        .and_then(|v| {
            v.iter()
                .find_map(|v| v["projected"]["sources"].as_array().cloned())
        })
        .expect("the webhook adds the projected volume");
    Mutated { env, sources }
}

/// Runs `azure-wi token SCOPE` with exactly the pod's environment `env`.
async fn azure_wi_token(env: &[(String, String)]) -> std::process::Output {
    tokio::process::Command::new(azure_wi_binary())
        .env_clear()
        .args(["token", SCOPE])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .expect("run azure-wi token")
}

/// What the kubelet would put in the projected volume, under `dir`: the token with the volume's
/// audience and the ConfigMap's `ca.crt`. Returns the container's environment with the volume's
/// paths moved under `dir`.
async fn project(client: &kube::Client, ns: &str, mutated: &Mutated, dir: &Path) -> Vec<(String, String)> {
    let mut token_audience = None;
    for source in &mutated.sources {
        if let Some(token) = source.get("serviceAccountToken") {
            let audience = token["audience"].as_str().expect("audience").to_owned();
            let path = dir.join(token["path"].as_str().expect("token path"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, service_account_token(client, ns, "app", &audience).await).unwrap();
            token_audience = Some(audience);
        } else if let Some(config_map) = source.get("configMap") {
            let name = config_map["name"].as_str().expect("ConfigMap name");
            let item = &config_map["items"][0];
            let data = Api::<ConfigMap>::namespaced(client.clone(), ns)
                .get(name)
                .await
                .expect("the projected ConfigMap")
                .data
                .expect("data");
            let path = dir.join(item["path"].as_str().expect("item path"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &data[item["key"].as_str().expect("item key")]).unwrap();
        } else {
            panic!("unexpected projected source {source}");
        }
    }
    assert_eq!(
        token_audience.as_deref(),
        Some(AUDIENCE),
        "the binding's audience"
    );
    let local = |value: &str| match value.strip_prefix(MOUNT) {
        Some(rest) => PathBuf::from(dir)
            .join(rest.trim_start_matches('/'))
            .display()
            .to_string(),
        None => value.to_owned(),
    };
    mutated
        .env
        .iter()
        .map(|(name, value)| (name.clone(), local(value)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_opting_in_gets_its_token_through_the_token_proxy() {
    let bed = TestBed::shared().await;
    let client = bed.client().await;
    let ns = group_namespace(bed, GROUP, "binding").await;
    create_service_account(
        &client,
        &ns,
        "app",
        &[
            ("azure.workload.identity/client-id", CLIENT),
            ("azure.workload.identity/tenant-id", TENANT),
        ],
    )
    .await;
    let trusted = FederatedCredential::for_service_account(TENANT, CLIENT, &bed.url, (&ns, "app"), AUDIENCE);
    let proxy = Entra::start_for_names(bed.pki(), vec![trusted], &[SNI]).await;
    // The CA that issued the proxy's certificate, where the webhook's projection finds it.
    let config_map: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": CA_CONFIG_MAP},
        "data": {"ca.crt": bed.pki().ca_pem()},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &config_map)
        .await
        .expect("create the CA ConfigMap");

    let webhook = Webhook::start(
        bed,
        GROUP,
        &[
            "--custom-token-endpoint-annotation-suffix=identity-binding",
            &format!("--custom-token-endpoint-audience={AUDIENCE}"),
            &format!("--azure-kubernetes-token-proxy={}", proxy.authority),
            &format!("--azure-kubernetes-sni-name={SNI}"),
            &format!("--azure-kubernetes-ca-configmap-name={CA_CONFIG_MAP}"),
        ],
    )
    .await;
    register(bed, &webhook, GROUP, &["v1"]).await;

    let mutated = create_mutated_pod(&client, &ns).await;
    let names: Vec<&str> = mutated.env.iter().map(|(n, _)| n.as_str()).collect();
    for var in [
        "AZURE_KUBERNETES_TOKEN_PROXY",
        "AZURE_KUBERNETES_SNI_NAME",
        "AZURE_KUBERNETES_CA_FILE",
    ] {
        assert!(names.contains(&var), "{var} injected: {names:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let env = project(&client, &ns, &mutated, dir.path()).await;

    // `auto` (PlatformCredential) uses the binding because the webhook injected it.
    let output = azure_wi_token(&env).await;
    assert!(
        output.status.success(),
        "azure-wi token failed: {}\nstand-in refused: {:?}",
        String::from_utf8_lossy(&output.stderr),
        proxy.refused()
    );
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let issued = proxy.issued();
    assert_eq!(issued.len(), 1, "one exchange at the token proxy");
    assert_eq!(printed["access_token"], issued[0].access_token.as_str());
    assert_eq!(
        (issued[0].client_id.as_str(), issued[0].scope.as_str()),
        (CLIENT, SCOPE)
    );

    // Without the binding's CA (the webhook's projection is what makes the proxy trusted), the
    // same environment is refused before anything is sent.
    let ca_file = env
        .iter()
        .find(|(k, _)| k == "AZURE_KUBERNETES_CA_FILE")
        .map(|(_, v)| v.clone())
        .unwrap();
    std::fs::write(&ca_file, e2e::pki::Pki::new().ca_pem()).unwrap();
    let output = azure_wi_token(&env).await;
    assert!(
        !output.status.success(),
        "a CA that did not issue the proxy's certificate is refused"
    );
    assert_eq!(proxy.issued().len(), 1);
}
