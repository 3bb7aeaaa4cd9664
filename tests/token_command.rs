//! The `azure-wi token` command as a process, against local stand-ins for Microsoft Entra, IMDS
//! and the Azure Pipelines OIDC endpoint.

mod support;

use serde_json::json;
use support::{
    last_stderr_json, pipelines_args, pipelines_env, run_azure_wi, stdout_json,
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
    let env = pipelines_env(
        format!("{}/org/_apis/oidctoken", oidc.url()),
        "job-token",
        entra.url(),
    );
    let args = pipelines_args(SCOPE);
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

// --- hostile input (issue 15 items 7 to 13) and TLS trust (issue 17 item 2) ---

/// Item 7: an endless Entra answer and a 300 MiB Pipelines answer stop at 64 KiB with an error
/// naming the endpoint and the limit (never "(empty body)").
#[tokio::test]
async fn oversized_answers_stop_at_the_cap() {
    use support::test_server::Stream;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t");
    std::fs::write(&file, "sa-jwt").unwrap();
    let entra = TestServer::scripted([Reply::status(200).stream(Stream::Endless)]).await;
    let out = run_azure_wi(&["token", SCOPE], &workload_env(&entra, &file)).await;
    assert_eq!(out.status.code(), Some(1));
    let message = last_stderr_json(&out)["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(&entra.url()) && message.contains("65536 bytes"),
        "{message}"
    );

    let oidc = TestServer::scripted([Reply::status(200).stream(Stream::Repeat { len: 300 << 20 })]).await;
    let entra = TestServer::scripted([]).await;
    let env = pipelines_env(
        format!("{}/org/_apis/oidctoken", oidc.url()),
        "job-token",
        entra.url(),
    );
    let out = run_azure_wi(&pipelines_args(SCOPE), &env).await;
    assert_eq!(out.status.code(), Some(1));
    let message = last_stderr_json(&out)["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("/org/_apis/oidctoken")
            && message.contains("65536 bytes")
            && !message.contains("(empty body)")
            && !message.contains("job-token"),
        "{message}"
    );
    assert_eq!(entra.request_count(), 0);
}

/// Item 8: `/dev/zero`, a FIFO and a directory as AZURE_FEDERATED_TOKEN_FILE are refused at once,
/// naming the variable and the path; nothing is sent.
#[cfg(unix)]
#[tokio::test]
async fn hostile_token_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let entra = TestServer::scripted([]).await;
    for (file, kind) in [
        (std::path::PathBuf::from("/dev/zero"), "device"),
        (fifo, "FIFO"),
        (dir.path().to_owned(), "directory"),
    ] {
        let env = workload_env(&entra, &file);
        let run = run_azure_wi(&["token", SCOPE], &env);
        let out = tokio::time::timeout(std::time::Duration::from_secs(20), run)
            .await
            .unwrap_or_else(|_| panic!("{} hangs", file.display()));
        assert_eq!(out.status.code(), Some(1), "{}", file.display());
        let message = last_stderr_json(&out)["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("AZURE_FEDERATED_TOKEN_FILE")
                && message.contains(&file.display().to_string())
                && message.contains(kind),
            "{message}"
        );
    }
    assert_eq!(entra.request_count(), 0);
}

/// Item 9: `refresh_in` of 3e11 (any shape) panicked (exit 101); now it is "refresh at expiry".
#[tokio::test]
async fn a_huge_refresh_in_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t");
    std::fs::write(&file, "sa-jwt").unwrap();
    for refresh_in in [
        json!(300_000_000_000i64),
        json!(3e11),
        json!("300000000000"),
        json!(1e300),
    ] {
        let entra = TestServer::scripted([Reply::json(
            200,
            json!({"access_token": "at", "expires_in": 3599, "refresh_in": refresh_in}),
        )])
        .await;
        let out = run_azure_wi(&["token", SCOPE], &workload_env(&entra, &file)).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{refresh_in}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body = stdout_json(&out);
        assert_eq!(body["refresh_on"], body["expires_on"], "{refresh_in}");
    }
}

/// Item 11: a token that is already expired is an authentication failure naming the field.
#[tokio::test]
async fn already_expired_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t");
    std::fs::write(&file, "sa-jwt").unwrap();
    for (answer, field) in [
        (json!({"access_token": "at", "expires_in": 0}), "expires_in"),
        (json!({"access_token": "at", "expires_on": 0}), "expires_on"),
        (json!({"access_token": "at", "expires_on": 1}), "expires_on"),
        (
            json!({"access_token": "at", "expires_on": now() - 60}),
            "expires_on",
        ),
    ] {
        let entra = TestServer::scripted([Reply::json(200, answer.clone())]).await;
        let out = run_azure_wi(&["token", SCOPE], &workload_env(&entra, &file)).await;
        assert_eq!(out.status.code(), Some(1), "{answer}");
        assert!(out.stdout.is_empty(), "{answer}");
        let err = last_stderr_json(&out);
        assert_eq!(err["error"], "authentication_failed");
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains("already expired") && message.contains(&format!("`{field}`")),
            "{message}"
        );
    }
}

/// Item 12: `.`, `..` and a 10,000-character tenant are refused before any request, naming
/// the variable or the flag.
#[tokio::test]
async fn dot_and_overlong_tenants_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t");
    std::fs::write(&file, "sa-jwt").unwrap();
    let entra = TestServer::scripted([]).await;
    let long = "a".repeat(10_000);
    for tenant in [".", "..", long.as_str()] {
        let mut env = workload_env(&entra, &file);
        env[0].1 = tenant.to_owned();
        let out = run_azure_wi(&["token", SCOPE], &env).await;
        assert_eq!(out.status.code(), Some(2));
        let message = last_stderr_json(&out)["message"].as_str().unwrap().to_owned();
        assert!(message.contains("AZURE_TENANT_ID"), "{message}");
        assert!(message.len() < 600, "the tenant is quoted shortened: {message}");
        let out = run_azure_wi(
            &["token", "--tenant-id", tenant, SCOPE],
            &workload_env(&entra, &file),
        )
        .await;
        assert_eq!(out.status.code(), Some(2));
    }
    assert_eq!(entra.request_count(), 0);
}

/// Item 13: no bearer token over plain http off this machine; user info never printed.
#[tokio::test]
async fn plain_http_and_user_info_are_refused() {
    let entra = TestServer::scripted([]).await;
    let env = pipelines_env(
        "http://10.255.255.1/org/_apis/oidctoken".to_owned(),
        "job-token",
        entra.url(),
    );
    let out = run_azure_wi(&pipelines_args(SCOPE), &env).await;
    assert_eq!(out.status.code(), Some(2));
    let message = last_stderr_json(&out)["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("SYSTEM_OIDCREQUESTURI") && message.contains("plain http"),
        "{message}"
    );

    let env = [
        (
            "IDENTITY_ENDPOINT",
            "http://admin:pw-s3cr3t@127.0.0.1:1/msi/token".to_owned(),
        ),
        ("IDENTITY_HEADER", "header-value".to_owned()),
    ];
    let out = run_azure_wi(&["token", "--credential", "managed-identity", SCOPE], &env).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("IDENTITY_ENDPOINT"), "{stderr}");
    assert!(
        !stderr.contains("pw-s3cr3t") && !stderr.contains("admin:"),
        "{stderr}"
    );
    assert_eq!(entra.request_count(), 0);
}

/// Issue 17 item 2: a self-signed CA:TRUE certificate in SSL_CERT_FILE is trusted (rustls
/// alone said `invalid peer certificate: Other(OtherErr)`); a certificate that is not in it is
/// refused in words naming SSL_CERT_FILE.
#[tokio::test]
async fn self_signed_ca_certificate_in_ssl_cert_file() {
    use support::test_server::self_signed;
    let now_t = time::OffsetDateTime::now_utc();
    let (from, to) = (now_t - time::Duration::days(1), now_t + time::Duration::days(30));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t");
    std::fs::write(&file, "sa-jwt").unwrap();
    let (cert, key, pem) = self_signed(&["127.0.0.1", "localhost"], true, from, to);
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, &pem).unwrap();
    let entra = TestServer::scripted_tls_with([Reply::token("tls-at", 3599)], vec![cert], key).await;
    let mut env = workload_env(&entra, &file);
    env.push(("SSL_CERT_FILE", bundle.display().to_string()));
    let out = run_azure_wi(&["token", SCOPE], &env).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_json(&out)["access_token"], "tls-at");

    let (other, other_key, _) = self_signed(&["127.0.0.1", "localhost"], true, from, to);
    let stranger = TestServer::scripted_tls_with([], vec![other], other_key).await;
    let mut env = workload_env(&stranger, &file);
    env.push(("SSL_CERT_FILE", bundle.display().to_string()));
    let out = run_azure_wi(&["token", SCOPE], &env).await;
    assert_eq!(out.status.code(), Some(1));
    let message = last_stderr_json(&out)["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(&format!("SSL_CERT_FILE={}", bundle.display())) && !message.contains("OtherErr"),
        "{message}"
    );
}

/// Item 10: a server dripping its answer (a byte every 5 s) kept the command waiting for ever;
/// now the overall deadline (`--timeout`, default 60 s) ends it and names itself.
#[tokio::test]
async fn a_dripping_entra_is_stopped_by_the_deadline() {
    use support::test_server::Stream;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t");
    std::fs::write(&file, "sa-jwt").unwrap();
    let entra = TestServer::scripted([Reply::token("at", 3599).stream(Stream::Drip {
        every: std::time::Duration::from_secs(5),
    })])
    .await;
    let started = std::time::Instant::now();
    let out = run_azure_wi(&["token", "--timeout", "2", SCOPE], &workload_env(&entra, &file)).await;
    let waited = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let message = last_stderr_json(&out)["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("gave up after 2 s, the overall deadline") && message.contains(&entra.url()),
        "{message}"
    );
    assert!(waited < std::time::Duration::from_secs(15), "{waited:?}");
}
