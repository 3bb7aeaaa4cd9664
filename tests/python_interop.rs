//! Interoperability: Python azure-identity's `WorkloadIdentityCredential` and our
//! `azure-wi token` against the same local Microsoft Entra stand-in (https, with a test CA) must
//! send the same request: method, path, form fields (names, values, order) and content type.
//!
//! Python azure-identity is installed by `scripts/test.d/20-python-clients.sh` (pinned version,
//! venv under `$AZWI_CACHE`); this test runs that script itself when the venv is missing, and
//! fails when it cannot.

mod support;

use support::{
    assert_succeeded, python_with_azure_identity as python, run_azure_wi, run_python, stdout_json,
    test_server::{RecordedRequest, Reply, TestServer},
};

const SCOPE: &str = "https://vault.azure.net/.default";

const PYTHON_CLIENT: &str = r#"
import json, sys
from azure.identity import WorkloadIdentityCredential
token = WorkloadIdentityCredential().get_token(sys.argv[1])
print(json.dumps({"access_token": token.token, "expires_on": token.expires_on}))
"#;

fn relevant(r: &RecordedRequest) -> (String, String, Option<String>, Vec<(String, String)>) {
    let content_type = r.header("content-type").map(str::to_owned);
    (r.method.clone(), r.path().to_owned(), content_type, r.form())
}

#[tokio::test]
async fn python_and_azure_wi_send_the_same_token_request() {
    let python = python();
    let (entra, ca_pem) =
        TestServer::scripted_tls([Reply::token("python-at", 3599), Reply::token("rust-at", 3599)]).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.sa-token.sig").unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let env: Vec<(&str, String)> = vec![
        ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47".into()),
        ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-0000000000c1".into()),
        ("AZURE_FEDERATED_TOKEN_FILE", token_file.display().to_string()),
        ("AZURE_AUTHORITY_HOST", format!("{}/", entra.url())),
        ("SSL_CERT_FILE", ca_file.display().to_string()),
        ("REQUESTS_CA_BUNDLE", ca_file.display().to_string()),
    ];

    let py_out = run_python(&python, &["-c", PYTHON_CLIENT, SCOPE], &env, "python").await;
    assert_eq!(py_out["access_token"], "python-at");

    let ours = run_azure_wi(&["token", "--credential", "workload-identity", SCOPE], &env).await;
    assert_succeeded(&ours, "azure-wi");
    let our_out = stdout_json(&ours);
    assert_eq!(our_out["access_token"], "rust-at");

    let requests = entra.requests();
    assert_eq!(requests.len(), 2, "one request each");
    let (python_sent, we_sent) = (relevant(&requests[0]), relevant(&requests[1]));
    assert_eq!(
        we_sent, python_sent,
        "azure-wi must send what azure-identity sends"
    );
    assert_eq!(
        python_sent.1,
        "/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
    );
    let (py_exp, our_exp) = (
        py_out["expires_on"].as_i64().unwrap(),
        our_out["expires_on"].as_i64().unwrap(),
    );
    assert!(
        (our_exp - py_exp).abs() <= 60,
        "both read expires_in 3599: python {py_exp}, ours {our_exp}"
    );
    for r in &requests {
        let id = r.header("x-ms-client-request-id");
        assert_eq!(
            id.map(str::len),
            Some(36),
            "a UUID client request id: {:?}",
            r.headers
        );
    }
}
