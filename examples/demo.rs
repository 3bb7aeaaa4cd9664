//! `scripts/demo`: the whole chain on loopback, explained step by step.
//!
//! A real kube-apiserver (with etcd) and the real `azure-wi webhook` admit the pod of
//! `examples/k8s/`; then the pod's projected token is minted the way the kubelet does it and
//! `azure-wi token` exchanges it at a local Microsoft Entra stand-in for an access token.
//! Everything stops when the demo ends (or is interrupted).

use azure_wi_test_support::e2e;

use std::{path::PathBuf, process::ExitCode};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use e2e::{
    entra::{Entra, FederatedCredential},
    kube_helpers::service_account_token,
    testbed::TestBed,
    webhook::{GROUP_LABEL, Webhook, azure_wi_binary, register},
};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::{Api, api::PostParams};
use serde_json::{Value, json};

const NAMESPACE: &str = "demo";
const SCOPE: &str = "https://vault.azure.net/.default";

fn step(n: u32, text: &str) {
    println!("\n\x1b[1m[{n}/6] {text}\x1b[0m");
}

fn read_manifest(dir: &std::path::Path, name: &str) -> Value {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

#[tokio::main]
async fn main() -> ExitCode {
    let examples = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "examples/k8s".into()));

    step(1, "Start a Kubernetes API server on loopback");
    let bed = TestBed::start().await;
    let client = bed.client().await;
    println!(
        "kube-apiserver + etcd on {} (TLS, service-account issuer = that URL).",
        bed.url
    );
    println!("No kubelet: pods are admitted and stored, not run.");

    step(2, "Start the webhook and register it");
    let webhook = Webhook::start(&bed, "demo", &[]).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": { "name": NAMESPACE, "labels": { GROUP_LABEL: "demo" } }
    }))
    .expect("namespace");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    register(&bed, &webhook, "demo", &["v1", "v1beta1"]).await;
    println!(
        "azure-wi webhook serves {}; a MutatingWebhookConfiguration like the chart's",
        webhook.url()
    );
    println!(
        "sends it every pod CREATE labelled azure.workload.identity/use: \"true\" (failurePolicy Fail)."
    );

    step(3, &format!("Apply {}", examples.display()));
    let sa_manifest = read_manifest(&examples, "serviceaccount.yaml");
    let sa: ServiceAccount = serde_json::from_value(sa_manifest).expect("ServiceAccount manifest");
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount");
    let sa_name = sa.metadata.name.clone().unwrap_or_default();
    let annotations = sa.metadata.annotations.clone().unwrap_or_default();
    let annotation = |k: &str| {
        annotations
            .get(&format!("azure.workload.identity/{k}"))
            .cloned()
            .unwrap_or_default()
    };
    println!(
        "ServiceAccount {NAMESPACE}/{sa_name}: client-id {}, tenant-id {}",
        annotation("client-id"),
        annotation("tenant-id")
    );
    let pod: Pod = serde_json::from_value(read_manifest(&examples, "pod.yaml")).expect("Pod manifest");
    let pod = match Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &pod)
        .await
    {
        Ok(pod) => pod,
        Err(e) => {
            eprintln!("the API server refused the pod: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pod = serde_json::to_value(pod).expect("pod json");
    println!(
        "Pod {NAMESPACE}/{} created (generateName, like a Deployment's pod).",
        pod["metadata"]["name"].as_str().unwrap_or("")
    );

    step(4, "The pod as the API server stored it, after the webhook");
    let shown = json!({
        "containers": pod["spec"]["containers"].as_array().into_iter().flatten()
            .map(|c| json!({ "name": c["name"], "env": c["env"], "volumeMounts": c["volumeMounts"] }))
            .collect::<Vec<_>>(),
        "volumes": pod["spec"]["volumes"],
    });
    println!("{}", serde_json::to_string_pretty(&shown).expect("json"));
    println!("The webhook added the AZURE_* variables, the projected token volume and its mount.");

    step(5, "Mint the projected token, as the kubelet does");
    let projection = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|v| v["projected"]["sources"][0].get("serviceAccountToken"))
        .cloned()
        .expect("the webhook added no projected token volume");
    let audience = projection["audience"].as_str().unwrap_or_default().to_string();
    let token = service_account_token(&client, NAMESPACE, &sa_name, &audience).await;
    let env: Vec<(String, String)> = pod["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
        .collect();
    let var = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    // The container would see the file at AZURE_FEDERATED_TOKEN_FILE; here it lives under a temp root.
    let root = bed.dir.join("pod-root");
    let token_file = root.join(var("AZURE_FEDERATED_TOKEN_FILE").trim_start_matches('/'));
    std::fs::create_dir_all(token_file.parent().expect("parent")).expect("token dir");
    std::fs::write(&token_file, &token).expect("write token");
    let claims: Value = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    println!(
        "TokenRequest for {NAMESPACE}/{sa_name}, audience {audience}: a JWT signed by the API server with"
    );
    println!(
        "  iss {}\n  sub {}\n  aud {}",
        claims["iss"], claims["sub"], claims["aud"]
    );
    println!("written to {}", token_file.display());

    step(
        6,
        "Exchange it at a local Microsoft Entra stand-in with `azure-wi token`",
    );
    let tenant = var("AZURE_TENANT_ID");
    let entra = Entra::start(
        bed.pki(),
        vec![FederatedCredential::for_service_account(
            &tenant,
            &var("AZURE_CLIENT_ID"),
            &bed.url,
            (NAMESPACE, &sa_name),
            &audience,
        )],
    )
    .await;
    println!(
        "The stand-in (at {}) holds one federated credential: issuer {}, subject",
        entra.authority, bed.url
    );
    println!(
        "system:serviceaccount:{NAMESPACE}:{sa_name}, audience {audience}. It checks the token's RS256 signature"
    );
    println!(
        "against the API server's /.well-known/openid-configuration and /openid/v1/jwks, then those claims."
    );
    println!(
        "$ azure-wi token {SCOPE}   # with the pod's AZURE_* environment; AZURE_AUTHORITY_HOST -> the stand-in"
    );
    let output = tokio::process::Command::new(azure_wi_binary())
        .args(["token", SCOPE])
        .env("AZURE_CLIENT_ID", var("AZURE_CLIENT_ID"))
        .env("AZURE_TENANT_ID", &tenant)
        .env("AZURE_FEDERATED_TOKEN_FILE", &token_file)
        .env("AZURE_AUTHORITY_HOST", format!("{}/", entra.authority))
        .env("SSL_CERT_FILE", &bed.ca_file)
        .output()
        .await
        .expect("run azure-wi token");
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() || entra.issued().len() != 1 {
        eprintln!("azure-wi token failed; refusals: {:?}", entra.refused());
        return ExitCode::FAILURE;
    }
    println!("\nThe access token came from the stand-in after it verified the pod's projected token:");
    println!("pod label -> webhook -> projected token -> Entra token exchange -> access token.");
    println!("Stopping the API server, etcd and the webhook.");
    ExitCode::SUCCESS
}
