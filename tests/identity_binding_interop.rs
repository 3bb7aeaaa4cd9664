//! Interoperability of identity bindings: Python azure-identity's
//! `WorkloadIdentityCredential(enable_azure_proxy=True)` and `azure-wi token` (workload identity,
//! and the platform chain), in a pod's environment with `AZURE_KUBERNETES_TOKEN_PROXY`,
//! `AZURE_KUBERNETES_SNI_NAME` and `AZURE_KUBERNETES_CA_FILE`, against the same local TLS token
//! proxy stand-in. Its certificate names only the SNI name, so only a client that sends that name
//! and checks the certificate against it gets through. Both must send the same request (method,
//! path, Host, server name, content type, form) and both must refuse a proxy whose certificate
//! the given CA did not issue.
//!
//! Python azure-identity is installed by `scripts/test.d/20-python-clients.sh`; see
//! `tests/python_interop.rs`.

mod support;

use support::{
    assert_succeeded, python_with_azure_identity as python, run_azure_wi, run_python, stdout_json,
    test_server::{RecordedRequest, Reply, TestServer},
};

const SCOPE: &str = "https://vault.azure.net/.default";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SNI: &str = "identity-binding.proxy.test";

const PYTHON_CLIENT: &str = r#"
import json, sys
from azure.identity import WorkloadIdentityCredential
try:
    token = WorkloadIdentityCredential(enable_azure_proxy=True).get_token(sys.argv[1])
    print(json.dumps({"access_token": token.token, "expires_on": token.expires_on}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
"#;

/// What both clients must agree on.
type Sent = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<(String, String)>,
);

fn relevant(r: &RecordedRequest) -> Sent {
    (
        r.method.clone(),
        r.path().to_owned(),
        r.header("host").map(str::to_owned),
        r.sni.clone(),
        r.header("content-type").map(str::to_owned),
        r.form(),
    )
}

/// The pod's environment: the webhook's variables with a binding to `proxy`, the CA in a file.
fn pod_env(dir: &std::path::Path, proxy: &TestServer, ca_pem: &str) -> Vec<(&'static str, String)> {
    let token_file = dir.join("azure-identity-token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.bound-sa-token.sig").unwrap();
    let ca_file = dir.join("ca.crt");
    std::fs::write(&ca_file, ca_pem).unwrap();
    vec![
        ("AZURE_TENANT_ID", TENANT.into()),
        ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-0000000000c1".into()),
        ("AZURE_FEDERATED_TOKEN_FILE", token_file.display().to_string()),
        // Never reached: the request goes to the proxy.
        (
            "AZURE_AUTHORITY_HOST",
            "https://login.microsoftonline.com/".into(),
        ),
        ("AZURE_KUBERNETES_TOKEN_PROXY", format!("{}/binding", proxy.url())),
        ("AZURE_KUBERNETES_SNI_NAME", SNI.into()),
        ("AZURE_KUBERNETES_CA_FILE", ca_file.display().to_string()),
    ]
}

/// Runs the Python client with exactly `env`; the JSON object it printed.
async fn python_client(env: &[(&str, String)]) -> serde_json::Value {
    run_python(&python(), &["-c", PYTHON_CLIENT, SCOPE], env, "python").await
}

#[tokio::test]
async fn python_and_azure_wi_send_the_same_request_to_the_token_proxy() {
    let (proxy, ca_pem) = TestServer::scripted_tls_for(
        [
            Reply::token("python-at", 3599),
            Reply::token("rust-wi-at", 3599),
            Reply::token("rust-auto-at", 3599),
        ],
        &[SNI],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let env = pod_env(dir.path(), &proxy, &ca_pem);

    let py = python_client(&env).await;
    assert_eq!(py["access_token"], "python-at", "{py}");
    for (credential, expected) in [("workload-identity", "rust-wi-at"), ("auto", "rust-auto-at")] {
        let ours = run_azure_wi(&["token", "--credential", credential, SCOPE], &env).await;
        assert_succeeded(&ours, &format!("azure-wi --credential {credential}"));
        assert_eq!(stdout_json(&ours)["access_token"], expected);
    }

    let requests = proxy.requests();
    assert_eq!(requests.len(), 3, "one request each");
    let python_sent = relevant(&requests[0]);
    assert_eq!(python_sent.1, format!("/binding/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(python_sent.2, Some(proxy.addr().to_string()), "Host: the proxy's");
    assert_eq!(
        python_sent.3.as_deref(),
        Some(SNI),
        "the server name Python sends"
    );
    for ours in &requests[1..] {
        assert_eq!(
            relevant(ours),
            python_sent,
            "azure-wi must send what azure-identity sends"
        );
    }
}

#[tokio::test]
async fn python_and_azure_wi_both_refuse_a_proxy_the_ca_did_not_issue() {
    let (proxy, _) = TestServer::scripted_tls_for([Reply::token("never", 3599)], &[SNI]).await;
    let (_, other_ca) = TestServer::scripted_tls_for([], &[SNI]).await;
    let dir = tempfile::tempdir().unwrap();
    let env = pod_env(dir.path(), &proxy, &other_ca);

    let py = python_client(&env).await;
    assert!(py["error"].is_string(), "python must refuse: {py}");
    let ours = run_azure_wi(&["token", "--credential", "workload-identity", SCOPE], &env).await;
    assert!(!ours.status.success(), "azure-wi must refuse");
    let stderr = String::from_utf8_lossy(&ours.stderr);
    assert!(
        stderr.contains("AZURE_KUBERNETES_CA_FILE"),
        "the message names the CA variable: {stderr}"
    );
    assert_eq!(proxy.request_count(), 0, "no request reached the proxy");
}
