//! End to end: the test bed itself (nothing it starts outlives the test process) and the webhook
//! while its API server goes away and comes back.

use azure_wi_test_support::e2e;

use std::{process::Command, time::Duration};

use e2e::{
    kube_helpers::create_workload_service_account,
    process::Process,
    testbed::TestBed,
    webhook::{Webhook, group_namespace, register},
};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::PostParams};
use serde_json::{Value, json};

/// The child half of `servers_die_with_their_test_process`: starts a long-running process through
/// the harness, prints its pid, and panics (so nothing is dropped cleanly).
#[test]
#[ignore = "run by servers_die_with_their_test_process in a child process"]
fn harness_child_that_panics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new("sleep");
    cmd.arg("600");
    let process = Process::spawn("sleeper", cmd, &dir.path().join("sleeper.log"), None);
    println!("pid={}", process.pid());
    std::mem::forget(process); // as a shared server in a static: never dropped
    panic!("the test process dies here");
}

fn alive(pid: u32) -> bool {
    // A killed child of a reaper-less init may linger as a zombie ('Z'): that is dead too.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn servers_die_with_their_test_process() {
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "testbed::harness_child_that_panics",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("run the child");
    assert!(!output.status.success(), "the child was meant to panic");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pid: u32 = stdout
        .lines()
        .find_map(|l| l.split_once("pid=").map(|(_, p)| p))
        .and_then(|p| p.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .unwrap_or_else(|| panic!("no pid from the child: {stdout}"));
    // The watchdog sends SIGTERM at once and SIGKILL 2 s later.
    for _ in 0..100 {
        if !alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("process {pid} survived its test process");
}

fn pod(name: &str, service_account: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": { "azure.workload.identity/use": "true" } },
        "spec": { "serviceAccountName": service_account, "containers": [{ "name": "app", "image": "busybox" }] },
    })
}

async fn create(client: &kube::Client, ns: &str, pod: Value) -> Value {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let created = api
        .create(&PostParams::default(), &serde_json::from_value(pod).expect("pod"))
        .await;
    serde_json::to_value(created.expect("create pod")).expect("json")
}

/// Sends an AdmissionReview for `pod` straight to the webhook (the API server is down).
async fn review(bed: &TestBed, webhook: &Webhook, ns: &str, pod: Value) -> Value {
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(bed.ca_pem.as_bytes()).expect("ca")])
        // Bounds the test, not the webhook: its own request timeout is 9 s.
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0e2e0000-0000-0000-0000-000000000001",
            "kind": { "group": "", "version": "v1", "kind": "Pod" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "namespace": ns,
            "operation": "CREATE",
            "userInfo": { "username": "e2e" },
            "object": pod,
            "dryRun": false,
        },
    });
    let response = http
        .post(webhook.url())
        .json(&body)
        .send()
        .await
        .expect("the webhook answers");
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.expect("AdmissionReview")["response"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_survives_its_api_server_going_away() {
    // A private control plane: this test stops it.
    let bed = TestBed::start().await;
    let webhook = Webhook::start(&bed, "restart", &["--service-account-lookup-timeout-seconds=2"]).await;
    register(&bed, &webhook, "restart", &["v1"]).await;
    let client = bed.client().await;
    let ns = group_namespace(&bed, "restart", "restart").await;
    create_workload_service_account(&client, &ns, "app", "c1").await;
    let stored = create(&client, &ns, pod("before", "app")).await;
    assert_eq!(stored["spec"]["containers"][0]["env"][0]["value"], "c1");

    bed.stop_apiserver();
    // A ServiceAccount the webhook has cached: still mutated.
    let answer = review(&bed, &webhook, &ns, pod("cached", "app")).await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert!(answer["patch"].is_string(), "{answer}");
    // One it must look up: denied with a clear message, within the lookup timeout.
    let answer = review(&bed, &webhook, &ns, pod("unknown", "not-cached")).await;
    assert_eq!(answer["allowed"], false, "{answer}");
    let message = answer["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("cannot look up serviceaccounts \"not-cached\""),
        "{message}"
    );
    assert!(message.contains("API server"), "{message}");

    bed.restart_apiserver().await;
    // The webhook recovers by itself: new and known ServiceAccounts work again.
    let client = bed.client().await;
    create_workload_service_account(&client, &ns, "late", "c2").await;
    let stored = create(&client, &ns, pod("after", "late")).await;
    assert_eq!(stored["spec"]["containers"][0]["env"][0]["value"], "c2");
    let stored = create(&client, &ns, pod("after-app", "app")).await;
    assert_eq!(stored["spec"]["containers"][0]["env"][0]["value"], "c1");
}
