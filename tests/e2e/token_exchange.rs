//! End to end: a service-account token minted by a real kube-apiserver (TokenRequest API, audience
//! `api://AzureADTokenExchange`) is exchanged for an access token at a local Microsoft Entra
//! stand-in, which verifies it against the API server's OIDC discovery document and JWKS.

use azure_wi_test_support::e2e;

use e2e::{
    entra::{Entra, FederatedCredential},
    kube_helpers::{create_service_account, service_account_token},
    testbed::{ENTRA_AUDIENCE, TestBed},
};
use serde_json::Value;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "5b1f1d4c-0a4e-4c6b-9d8e-000000000e2e";
const SCOPE: &str = "https://vault.azure.net/.default";

/// A namespace with ServiceAccount `app`, and a stand-in that trusts exactly that account.
async fn setup(prefix: &str) -> (&'static TestBed, kube::Client, String, Entra) {
    let bed = TestBed::shared().await;
    let client = bed.client().await;
    let ns = bed.namespace(prefix).await;
    create_service_account(&client, &ns, "app", &[]).await;
    create_service_account(&client, &ns, "other", &[]).await;
    let trusted =
        FederatedCredential::for_service_account(TENANT, CLIENT, &bed.url, (&ns, "app"), ENTRA_AUDIENCE);
    let entra = Entra::start(bed.pki(), vec![trusted]).await;
    (bed, client, ns, entra)
}

/// Posts a client-assertion exchange exactly as the credential library does; returns status and body.
async fn exchange(bed: &TestBed, entra: &Entra, client_id: &str, assertion: &str) -> (u16, Value) {
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(bed.ca_pem.as_bytes()).expect("ca")])
        .build()
        .expect("http client");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_assertion", assertion)
        .append_pair(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        )
        .append_pair("client_id", client_id)
        .append_pair("grant_type", "client_credentials")
        .append_pair("scope", SCOPE)
        .finish();
    let response = http
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", entra.authority))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("POST to the Entra stand-in");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// The credential's outcome is an `authentication_failed` error whose message names `code`.
fn assert_authentication_failed(result: &Value, code: &str) {
    assert_eq!(result["error"], "authentication_failed", "{result}");
    assert!(
        result["message"].as_str().is_some_and(|m| m.contains(code)),
        "{result}"
    );
}

/// The credential's outcome expires (`expires_on`, Unix seconds) in the coming hour.
fn assert_expires_within_the_hour(result: &Value) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        result["expires_on"]
            .as_i64()
            .is_some_and(|t| t > now && t <= now + 3600),
        "{result}"
    );
}

fn aadsts(body: &Value) -> u64 {
    body["error_codes"][0]
        .as_u64()
        .unwrap_or_else(|| panic!("no error_codes in {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn service_account_token_is_exchanged_for_an_access_token() {
    let (bed, client, ns, entra) = setup("tx-ok").await;
    let token = service_account_token(&client, &ns, "app", ENTRA_AUDIENCE).await;
    let (status, body) = exchange(bed, &entra, CLIENT, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0), "{body}");
    let issued = entra.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(body["access_token"], issued[0].access_token.as_str());
    assert_eq!(
        (issued[0].client_id.as_str(), issued[0].scope.as_str()),
        (CLIENT, SCOPE)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_of_another_service_account_is_refused() {
    let (bed, client, ns, entra) = setup("tx-subject").await;
    let token = service_account_token(&client, &ns, "other", ENTRA_AUDIENCE).await;
    let (status, body) = exchange(bed, &entra, CLIENT, &token).await;
    assert_eq!((status, aadsts(&body)), (400, 700213), "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains(&format!("system:serviceaccount:{ns}:other")),
        "{description}"
    );
    assert!(entra.issued().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn token_for_another_audience_is_refused() {
    let (bed, client, ns, entra) = setup("tx-audience").await;
    let token = service_account_token(&client, &ns, "app", "api://SomethingElse").await;
    let (status, body) = exchange(bed, &entra, CLIENT, &token).await;
    assert_eq!((status, aadsts(&body)), (400, 700212), "{body}");
    assert!(entra.issued().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn token_with_a_forged_signature_is_refused() {
    let (bed, client, ns, entra) = setup("tx-forged").await;
    let token = service_account_token(&client, &ns, "app", ENTRA_AUDIENCE).await;
    // Same header and claims, the signature of a different (genuine) token.
    let other = service_account_token(&client, &ns, "other", ENTRA_AUDIENCE).await;
    let forged = format!(
        "{}.{}",
        token.rsplit_once('.').expect("jwt").0,
        other.rsplit_once('.').expect("jwt").1
    );
    let (status, body) = exchange(bed, &entra, CLIENT, &forged).await;
    assert_eq!((status, aadsts(&body)), (401, 700027), "{body}");
    // The genuine token still works: the refusal was about the signature.
    let (status, body) = exchange(bed, &entra, CLIENT, &token).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_application_is_refused() {
    let (bed, client, ns, entra) = setup("tx-app").await;
    let token = service_account_token(&client, &ns, "app", ENTRA_AUDIENCE).await;
    let (status, body) = exchange(bed, &entra, "00000000-0000-0000-0000-000000000bad", &token).await;
    assert_eq!((status, aadsts(&body)), (400, 700016), "{body}");
}

/// Gives `command` the environment the webhook gives a pod (`AZURE_*`, with `token` where the
/// projected volume would put it, under `dir`) plus `SSL_CERT_FILE` (the stand-in's CA).
fn pod_environment(
    command: &mut tokio::process::Command,
    bed: &TestBed,
    entra: &Entra,
    dir: &std::path::Path,
    token: &str,
) {
    let token_file = dir.join("token/azure-identity-token");
    std::fs::create_dir_all(token_file.parent().expect("parent")).expect("token dir");
    std::fs::write(&token_file, token).expect("write token");
    command
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_CLIENT_ID", CLIENT)
        .env("AZURE_FEDERATED_TOKEN_FILE", &token_file)
        // The webhook writes the authority host with a trailing slash.
        .env("AZURE_AUTHORITY_HOST", format!("{}/", entra.authority))
        .env("SSL_CERT_FILE", &bed.ca_file);
}

/// Runs [`workload_identity_credential_in_a_pod_environment`] in a child process with the
/// environment the webhook gives a pod (`AZURE_*`) plus `SSL_CERT_FILE` (the stand-in's CA): the
/// library reads both from its process environment. Returns the child's one JSON line.
async fn credential_in_child(bed: &TestBed, entra: &Entra, token: &str) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = tokio::process::Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "--exact",
            "token_exchange::workload_identity_credential_in_a_pod_environment",
            "--ignored",
            "--nocapture",
        ])
        .args(["--test-threads=1", "-q"]);
    pod_environment(&mut command, bed, entra, dir.path(), token);
    let output = command.output().await.expect("run the child test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find(|l| l.starts_with("{\"")).unwrap_or_else(|| {
        panic!(
            "no result from the child: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    serde_json::from_str(line).expect("child JSON")
}

/// The child half of the credential tests (run only by them, in a pod-like environment): what a
/// workload does, `WorkloadIdentityCredential::new(None)` and `get_token`, printing the outcome.
#[tokio::test]
#[ignore = "run by the workload_identity_credential_* tests in a child process with a pod's environment"]
async fn workload_identity_credential_in_a_pod_environment() {
    use azure_wi_identity::{TokenCredential, WorkloadIdentityCredential};
    let result = match WorkloadIdentityCredential::new(None) {
        Ok(credential) => credential.get_token(&[SCOPE], None).await,
        Err(e) => Err(e),
    };
    let line = match result {
        Ok(token) => {
            serde_json::json!({ "access_token": token.token.secret(), "expires_on": token.expires_on.unix_timestamp() })
        }
        Err(e) => serde_json::json!({ "error": e.kind().as_str(), "message": e.to_string() }),
    };
    println!("{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn workload_identity_credential_obtains_the_token() {
    let (bed, client, ns, entra) = setup("wic-ok").await;
    let token = service_account_token(&client, &ns, "app", ENTRA_AUDIENCE).await;
    let result = credential_in_child(bed, &entra, &token).await;
    let issued = entra.issued();
    assert_eq!(issued.len(), 1, "{result}");
    assert_eq!(
        result["access_token"],
        issued[0].access_token.as_str(),
        "{result}"
    );
    assert_expires_within_the_hour(&result);
    assert_eq!(issued[0].scope, SCOPE);
}

#[tokio::test(flavor = "multi_thread")]
async fn workload_identity_credential_is_refused_for_another_subject() {
    let (bed, client, ns, entra) = setup("wic-subject").await;
    let token = service_account_token(&client, &ns, "other", ENTRA_AUDIENCE).await;
    let result = credential_in_child(bed, &entra, &token).await;
    assert_authentication_failed(&result, "AADSTS700213");
    assert!(entra.issued().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn workload_identity_credential_is_refused_for_another_audience() {
    let (bed, client, ns, entra) = setup("wic-audience").await;
    let token = service_account_token(&client, &ns, "app", "api://SomethingElse").await;
    let result = credential_in_child(bed, &entra, &token).await;
    assert_authentication_failed(&result, "AADSTS700212");
}

/// Runs `azure-wi token SCOPE` with a pod's environment; returns (success, stdout JSON or the
/// last stderr line as JSON).
async fn azure_wi_token(bed: &TestBed, entra: &Entra, token: &str) -> (bool, Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_azure-wi"));
    command.args(["token", SCOPE]);
    pod_environment(&mut command, bed, entra, dir.path(), token);
    let output = command.output().await.expect("run azure-wi token");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = if output.status.success() {
        stdout.trim()
    } else {
        stderr.lines().last().unwrap_or_default()
    };
    let json = serde_json::from_str(text).unwrap_or_else(|e| {
        panic!("azure-wi token printed no JSON ({e}):\nstdout: {stdout}\nstderr: {stderr}")
    });
    (output.status.success(), json)
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_wi_token_obtains_the_token() {
    let (bed, client, ns, entra) = setup("cli-ok").await;
    let token = service_account_token(&client, &ns, "app", ENTRA_AUDIENCE).await;
    let (ok, result) = azure_wi_token(bed, &entra, &token).await;
    assert!(ok, "{result}");
    let issued = entra.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(result["access_token"], issued[0].access_token.as_str());
    assert_eq!(result["token_type"], "Bearer");
    assert_expires_within_the_hour(&result);
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_wi_token_is_refused_for_another_subject() {
    let (bed, client, ns, entra) = setup("cli-subject").await;
    let token = service_account_token(&client, &ns, "other", ENTRA_AUDIENCE).await;
    let (ok, result) = azure_wi_token(bed, &entra, &token).await;
    assert!(!ok, "{result}");
    assert_authentication_failed(&result, "AADSTS700213");
    assert!(entra.issued().is_empty());
}
