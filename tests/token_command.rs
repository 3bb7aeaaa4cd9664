//! The `azure-wi token` command as a process, against local stand-ins for Microsoft Entra, IMDS
//! and the Azure Pipelines OIDC endpoint.

mod support;

use serde_json::json;
use support::{
    last_stderr_json, run_azure_wi, stdout_json,
    test_server::{Reply, TestServer},
};

const SCOPE: &str = "https://vault.azure.net/.default";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn form(server: &TestServer, i: usize) -> Vec<(String, String)> {
    server.requests()[i].form()
}

fn workload_env(entra: &TestServer, token_file: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("AZURE_TENANT_ID", "tenant-1".into()),
        ("AZURE_CLIENT_ID", "client-1".into()),
        ("AZURE_FEDERATED_TOKEN_FILE", token_file.display().to_string()),
        ("AZURE_AUTHORITY_HOST", format!("{}/", entra.url())),
    ]
}

#[tokio::test]
async fn workload_identity_token_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, "sa-jwt").unwrap();
    let entra = TestServer::scripted([Reply::token("entra-at", 86399)]).await;
    let before = now();
    let out = run_azure_wi(&["token", SCOPE], &workload_env(&entra, &file)).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body = stdout_json(&out);
    assert_eq!(body["access_token"], "entra-at");
    assert_eq!(body["token_type"], "Bearer");
    let expires_on = body["expires_on"].as_i64().unwrap();
    assert!((before + 86399..=now() + 86399).contains(&expires_on), "{body}");
    let refresh_on = body["refresh_on"]
        .as_i64()
        .expect("long-lived tokens get refresh_on");
    assert!((before + 43199..=now() + 43199).contains(&refresh_on), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 4, "{body}");

    let r = &entra.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path()),
        ("POST", "/tenant-1/oauth2/v2.0/token")
    );
    let f = form(&entra, 0);
    assert!(f.contains(&("client_assertion".into(), "sa-jwt".into())), "{f:?}");
    assert!(f.contains(&("client_id".into(), "client-1".into())), "{f:?}");
    assert!(f.contains(&("scope".into(), SCOPE.into())), "{f:?}");
}

#[tokio::test]
async fn short_lived_token_has_null_refresh_on_and_flags_override_env() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("other-token");
    std::fs::write(&file, "flag-jwt").unwrap();
    let entra = TestServer::scripted([Reply::token("at", 3599)]).await;
    let mut env = workload_env(&entra, &dir.path().join("missing"));
    env.retain(|(k, _)| *k != "AZURE_TENANT_ID");
    let file_arg = file.display().to_string();
    let args = [
        "token",
        "--credential",
        "workload-identity",
        "--tenant-id",
        "tenant-2",
        "--client-id",
        "client-2",
        "--token-file",
        &file_arg,
        SCOPE,
    ];
    let out = run_azure_wi(&args, &env).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout_json(&out)["refresh_on"].is_null());
    assert_eq!(entra.requests()[0].path(), "/tenant-2/oauth2/v2.0/token");
    let f = form(&entra, 0);
    assert!(
        f.contains(&("client_assertion".into(), "flag-jwt".into()))
            && f.contains(&("client_id".into(), "client-2".into())),
        "{f:?}"
    );
}

#[tokio::test]
async fn entra_refusal_is_authentication_failed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t");
    std::fs::write(&file, "sa-jwt").unwrap();
    let entra = TestServer::scripted([Reply::json(
        400,
        json!({"error": "invalid_grant", "error_description": "AADSTS70021: No matching federated identity record found.", "error_codes": [70021]}),
    )])
    .await;
    let out = run_azure_wi(&["token", SCOPE], &workload_env(&entra, &file)).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = last_stderr_json(&out);
    assert_eq!(err["error"], "authentication_failed");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("AADSTS70021") && !message.contains("sa-jwt"),
        "{message}"
    );
}

#[tokio::test]
async fn bad_tenant_is_invalid_input_and_never_sent() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t");
    std::fs::write(&file, "sa-jwt").unwrap();
    let entra = TestServer::scripted([]).await;
    let out = run_azure_wi(
        &["token", "--tenant-id", "bad/tenant?x", SCOPE],
        &workload_env(&entra, &file),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(last_stderr_json(&out)["error"], "invalid_input");
    assert_eq!(entra.request_count(), 0);
}

#[tokio::test]
async fn bad_flags_end_with_the_json_error_line() {
    let out = run_azure_wi(&["token", "--no-such-flag", SCOPE], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = last_stderr_json(&out);
    assert_eq!(err["error"], "invalid_input");
    assert!(
        err["message"].as_str().unwrap().contains("--no-such-flag"),
        "{err}"
    );
    let out = run_azure_wi(&["token", "--client-id", "a", "--object-id", "b", SCOPE], &[]).await;
    assert_eq!(
        (out.status.code(), last_stderr_json(&out)["error"].as_str()),
        (Some(2), Some("invalid_input"))
    );
}

#[tokio::test]
async fn auto_falls_back_to_managed_identity() {
    let imds = TestServer::scripted([Reply::json(
        200,
        json!({"access_token": "mi-at", "expires_in": "3599", "expires_on": (now() + 3599).to_string(),
               "resource": "https://vault.azure.net", "token_type": "Bearer", "client_id": "uami"}),
    )])
    .await;
    let env = [("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.url())];
    let out = run_azure_wi(&["token", "--client-id", "uami", SCOPE], &env).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_json(&out)["access_token"], "mi-at");
    let r = &imds.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path()),
        ("GET", "/metadata/identity/oauth2/token")
    );
    let q = r.query();
    assert!(
        q.contains(&("resource".into(), "https://vault.azure.net".into())),
        "{q:?}"
    );
    assert!(q.contains(&("client_id".into(), "uami".into())), "{q:?}");
    assert_eq!(r.header("metadata"), Some("true"));
}

#[tokio::test]
async fn azure_pipelines_oidc_then_exchange() {
    let oidc = TestServer::scripted([Reply::json(200, json!({"oidcToken": "ado-jwt"}))]).await;
    let entra = TestServer::scripted([Reply::token("p-at", 3599)]).await;
    let env = [
        (
            "SYSTEM_OIDCREQUESTURI",
            format!("{}/org/_apis/oidctoken", oidc.url()),
        ),
        ("SYSTEM_ACCESSTOKEN", "job-token".to_owned()),
        ("AZURE_AUTHORITY_HOST", entra.url()),
    ];
    let args = [
        "token",
        "--credential",
        "azure-pipelines",
        "--tenant-id",
        "t-p",
        "--client-id",
        "c-p",
        "--service-connection-id",
        "sc-9",
        SCOPE,
    ];
    let out = run_azure_wi(&args, &env).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_json(&out)["access_token"], "p-at");
    let r = &oidc.requests()[0];
    assert_eq!(r.header("authorization"), Some("Bearer job-token"));
    assert!(r.query().contains(&("serviceConnectionId".into(), "sc-9".into())));
    assert!(form(&entra, 0).contains(&("client_assertion".into(), "ado-jwt".into())));

    // Without SYSTEM_ACCESSTOKEN the credential cannot work here.
    let out = run_azure_wi(
        &args,
        &env[..1]
            .iter()
            .cloned()
            .chain([env[2].clone()])
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    let err = last_stderr_json(&out);
    assert_eq!(err["error"], "credential_unavailable");
    assert!(
        err["message"].as_str().unwrap().contains("SYSTEM_ACCESSTOKEN"),
        "{err}"
    );
}
