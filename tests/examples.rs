//! The programs in `examples/` run as processes against local stand-ins for the endpoints they
//! talk to (an App Service identity endpoint, a GitHub Actions OIDC endpoint, Microsoft Entra),
//! and send what those endpoints expect. `cargo test` builds the examples first.

mod support;

use std::{path::PathBuf, process::Output};

use serde_json::json;
use support::test_server::{Reply, TestServer};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} was not built: run the whole `cargo test` (it builds examples) or `cargo build --examples`",
        path.display()
    );
    path
}

async fn run(name: &str, args: &[&str], env: &[(&str, String)]) -> Output {
    tokio::process::Command::new(example(name))
        .env_clear()
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn user_assigned_identity_asks_app_service_for_the_client_id() {
    let expires_on = now() + 3600;
    let endpoint = TestServer::scripted([Reply::json(
        200,
        json!({"access_token": "uami-token", "expires_on": expires_on.to_string(),
               "resource": "https://management.azure.com", "token_type": "Bearer",
               "client_id": "6f1c0f0e-1111-4a4a-9b9b-000000000042"}),
    )])
    .await;
    let env = [
        ("IDENTITY_ENDPOINT", format!("{}/msi/token", endpoint.url())),
        ("IDENTITY_HEADER", "header-secret".to_owned()),
    ];
    let out = run(
        "user_assigned_identity",
        &["6f1c0f0e-1111-4a4a-9b9b-000000000042"],
        &env,
    )
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let expected_expiry = time::OffsetDateTime::from_unix_timestamp(expires_on as i64).unwrap();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        vec![
            "managed identity source: app_service".to_owned(),
            format!("token for https://management.azure.com/.default expires at {expected_expiry}"),
        ]
    );
    assert!(!stdout.contains("uami-token"));
    let r = &endpoint.requests()[0];
    assert_eq!((r.method.as_str(), r.path()), ("GET", "/msi/token"));
    let mut query = r.query();
    query.sort();
    assert_eq!(
        query,
        [
            ("api-version", "2019-08-01"),
            ("client_id", "6f1c0f0e-1111-4a4a-9b9b-000000000042"),
            ("resource", "https://management.azure.com"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!(r.header("x-identity-header"), Some("header-secret"));
}

#[tokio::test]
async fn user_assigned_identity_without_an_argument_is_a_usage_error() {
    let out = run("user_assigned_identity", &[], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("usage: user_assigned_identity CLIENT_ID"));
}

#[tokio::test]
async fn custom_assertion_sends_the_github_oidc_token_to_entra() {
    // One stand-in plays both the runner's OIDC endpoint and Microsoft Entra, by path.
    let server = TestServer::with_handler(|r| match r.path() {
        "/oidc" => Reply::json(200, json!({"value": "github-oidc-jwt", "count": 1})),
        _ => Reply::token("entra-token", 3599),
    })
    .await;
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let env = [
        ("AZURE_TENANT_ID", tenant.to_owned()),
        (
            "AZURE_CLIENT_ID",
            "00000000-0000-0000-0000-0000000000c1".to_owned(),
        ),
        ("AZURE_AUTHORITY_HOST", server.url()),
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            format!("{}/oidc?api-version=2.0", server.url()),
        ),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-bearer".to_owned()),
    ];
    let out = run("custom_assertion", &[], &env).await;
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).starts_with("token expires at "),
        "{}",
        text(&out.stdout)
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let oidc = &requests[0];
    assert_eq!((oidc.method.as_str(), oidc.path()), ("GET", "/oidc"));
    let mut query = oidc.query();
    query.sort();
    assert_eq!(
        query,
        [("api-version", "2.0"), ("audience", "api://AzureADTokenExchange")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!(oidc.header("authorization"), Some("Bearer runner-bearer"));
    let exchange = &requests[1];
    assert_eq!(exchange.path(), format!("/{tenant}/oauth2/v2.0/token"));
    let form = exchange.form();
    assert!(
        form.contains(&("client_assertion".into(), "github-oidc-jwt".into())),
        "{form:?}"
    );
    assert!(
        form.contains(&("scope".into(), "https://management.azure.com/.default".into())),
        "{form:?}"
    );
}

#[tokio::test]
async fn custom_assertion_outside_github_actions_says_what_is_missing() {
    let env = [
        (
            "AZURE_TENANT_ID",
            "72f988bf-86f1-41af-91ab-2d7cd011db47".to_owned(),
        ),
        (
            "AZURE_CLIENT_ID",
            "00000000-0000-0000-0000-0000000000c1".to_owned(),
        ),
    ];
    let out = run("custom_assertion", &[], &env).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ACTIONS_ID_TOKEN_REQUEST_URL is not set"),
        "{stderr}"
    );
}
