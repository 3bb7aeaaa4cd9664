//! IMDS: the exact request, every answer, the retry schedules and the probe.

use std::time::Duration;

use super::{RESOURCE, SCOPE, credential, error_of, imds_token, lifetime, options};
use crate::{
    ErrorKind, TokenCredential,
    managed_identity::{
        ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
        test_server::{RecordedRequest, Reply, TestServer},
    },
};

const PATH: &str = "/metadata/identity/oauth2/token";

fn pod_identity(server: &TestServer) -> Vec<(&'static str, String)> {
    // A trailing slash is stripped, as azure-identity does.
    vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url_for("/"))]
}

fn imds(server: &TestServer, id: Option<UserAssignedId>) -> std::sync::Arc<ManagedIdentityCredential> {
    let pairs = pod_identity(server);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    credential(&pairs, id)
}

/// A credential with the probe on, pointed at `server` without disabling the probe.
fn probing(server_base: String) -> std::sync::Arc<ManagedIdentityCredential> {
    let mut options = options(&[]);
    options.enable_imds_probe = true;
    options.platform.imds_base = Some(server_base);
    ManagedIdentityCredential::new(Some(options)).unwrap()
}

fn gaps(requests: &[RecordedRequest]) -> Vec<Duration> {
    requests.windows(2).map(|w| w[1].at - w[0].at).collect()
}

fn secs(s: &[f64]) -> Vec<Duration> {
    s.iter().map(|s| Duration::from_secs_f64(*s)).collect()
}

#[tokio::test]
async fn sends_exactly_the_system_assigned_request() {
    let server = TestServer::replies(vec![imds_token("imds-token", 86399)]).await;
    let token = imds(&server, None).get_token(&[SCOPE], None).await.unwrap();
    assert_eq!(token.token.secret(), "imds-token");
    assert_eq!(token.token_type, "Bearer");
    assert!(
        (86390..=86399).contains(&lifetime(&token)),
        "{}",
        lifetime(&token)
    );
    // A day-long token is refreshed at half its life.
    let refresh_in = (token.refresh_on.unwrap() - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((43190..=43199).contains(&refresh_in), "{refresh_in}");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path()), ("GET", PATH));
    assert_eq!(
        r.query_pairs(),
        [("api-version", "2018-02-01"), ("resource", RESOURCE)]
    );
    assert_eq!(r.header("metadata"), Some("true"));
    assert_eq!(r.header("authorization"), None);
    assert_eq!(r.header("x-identity-header"), None);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn sends_each_user_assigned_selector_under_its_imds_name() {
    for (id, name) in [
        (UserAssignedId::ClientId("cid".into()), "client_id"),
        (UserAssignedId::ObjectId("oid".into()), "object_id"),
        (UserAssignedId::ResourceId("/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/n".into()), "msi_res_id"),
    ] {
        let server = TestServer::replies(vec![imds_token("t", 3600)]).await;
        imds(&server, Some(id.clone())).get_token(&[SCOPE], None).await.unwrap();
        let r = &server.requests()[0];
        let expected = [("api-version", "2018-02-01"), ("resource", RESOURCE), (name, id.value())];
        assert_eq!(r.query_pairs(), expected, "{id:?}");
    }
}

#[tokio::test]
async fn accepts_integer_expiries_and_json_numbers() {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for body in [
        serde_json::json!({"access_token": "a", "expires_in": 3600, "token_type": "Bearer"}),
        serde_json::json!({"access_token": "a", "expires_on": now + 3600, "resource": "https://vault.azure.net/"}),
        serde_json::json!({"access_token": "a", "expires_on": (now + 3600).to_string()}),
    ] {
        let server = TestServer::replies(vec![Reply::json(200, body.to_string())]).await;
        let token = imds(&server, None).get_token(&[SCOPE], None).await.unwrap();
        assert!(
            (3590..=3600).contains(&lifetime(&token)),
            "{body}: {}",
            lifetime(&token)
        );
        assert_eq!(token.refresh_on, None, "{body}");
    }
}

#[tokio::test]
async fn identity_not_found_is_unavailable_and_names_the_id_that_was_sent() {
    let not_found = Reply::json(
        400,
        r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
    );
    let server = TestServer::replies(vec![not_found]).await;
    let err = error_of(&imds(
        &server,
        Some(UserAssignedId::ClientId("11111111-2222".into())),
    ))
    .await;
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let msg = err.to_string();
    for part in [
        "client id 11111111-2222",
        "client_id=11111111-2222",
        "Identity not found",
        "assign",
    ] {
        assert!(msg.contains(part), "{part}: {msg}");
    }
    assert_eq!(server.requests().len(), 1, "400 is not retried");

    let server = TestServer::replies(vec![Reply::json(
        400,
        r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
    )])
    .await;
    let err = imds(&server, None).get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("system-assigned"), "{err}");
}

#[tokio::test]
async fn docker_desktops_403_and_non_imds_answers_are_unavailable() {
    let docker = Reply::text(
        403,
        "connecting to 169.254.169.254:80: connecting to 169.254.169.254:80: dial tcp 169.254.169.254:80: connectex: A socket operation was attempted to an unreachable network.",
    );
    let server = TestServer::replies(vec![docker]).await;
    let err = imds(&server, None).get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("unreachable"), "{err}");

    let html = Reply::status(200)
        .header("Content-Type", "text/html")
        .body("<html>hi</html>");
    let server = TestServer::replies(vec![html]).await;
    let err = imds(&server, None).get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn other_refusals_fail_with_the_status_and_a_token_less_answer_names_the_field() {
    let server = TestServer::replies(vec![Reply::json(
        403,
        r#"{"error":"forbidden","error_description":"nope"}"#,
    )])
    .await;
    let err = imds(&server, None).get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::AuthenticationFailed, Some(403))
    );
    assert!(err.to_string().contains("forbidden: nope"), "{err}");

    let server = TestServer::replies(vec![Reply::json(200, r#"{"expires_in":"3600"}"#)]).await;
    let err = imds(&server, None).get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
    assert!(err.to_string().contains("access_token"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn retries_5xx_404_and_429_on_the_imds_schedule() {
    let mut replies: Vec<Reply> = [500, 404, 429, 503, 502]
        .iter()
        .map(|s| Reply::json(*s, "{}"))
        .collect();
    replies.push(imds_token("after-retries", 3600));
    let server = TestServer::replies(replies).await;
    let token = imds(&server, None).get_token(&[SCOPE], None).await.unwrap();
    assert_eq!(token.token.secret(), "after-retries");
    let requests = server.requests();
    assert_eq!(requests.len(), 6);
    assert_eq!(gaps(&requests), secs(&[0.0, 1.6, 3.2, 6.4, 12.8]));
    assert!(
        requests
            .iter()
            .all(|r| r.header("metadata") == Some("true") && r.query() == requests[0].query())
    );
}

#[tokio::test(start_paused = true)]
async fn gone_uses_the_longer_schedule_and_exhaustion_fails_with_the_last_status() {
    let server = TestServer::replies(vec![Reply::json(410, r#"{"error":"gone"}"#)]).await;
    let err = imds(&server, None).get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::AuthenticationFailed, Some(410))
    );
    assert!(err.to_string().contains("after 5 retries"), "{err}");
    let requests = server.requests();
    assert_eq!(requests.len(), 6);
    assert_eq!(gaps(&requests), secs(&[0.0, 5.0, 10.0, 20.0, 40.0]));
}

#[tokio::test(start_paused = true)]
async fn retry_after_sets_the_delay() {
    let throttled = Reply::json(
        429,
        r#"{"error":"invalid_request","error_description":"Temporarily throttled, too many requests"}"#,
    )
    .header("Retry-After", "7");
    let server = TestServer::replies(vec![throttled.clone(), throttled, imds_token("t", 3600)]).await;
    imds(&server, None).get_token(&[SCOPE], None).await.unwrap();
    assert_eq!(gaps(&server.requests()), secs(&[7.0, 7.0]));
}

#[tokio::test(start_paused = true)]
async fn throttling_that_outlasts_the_retries_explains_caching() {
    let server = TestServer::replies(vec![Reply::json(
        429,
        r#"{"error":"invalid_request","error_description":"Temporarily throttled, too many requests"}"#,
    )])
    .await;
    let err = imds(&server, None).get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert!(err.to_string().contains("reuse one credential"), "{err}");
    assert_eq!(server.requests().len(), 6);
}

#[tokio::test]
async fn the_probe_goes_first_without_the_metadata_header_and_is_remembered() {
    // A real IMDS answers a request without `Metadata: true` with 400.
    let server = TestServer::with_handler(|r| match r.header("metadata") {
        Some("true") => imds_token("t", 3600),
        _ => Reply::json(
            400,
            r#"{"error":"invalid_request","error_description":"Required metadata header not specified"}"#,
        ),
    })
    .await;
    let credential = probing(server.url_for(""));
    credential.get_token(&[SCOPE], None).await.unwrap();
    credential
        .get_token(&["https://storage.azure.com/.default"], None)
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "one probe, then two real requests");
    assert_eq!(requests[0].header("metadata"), None);
    assert_eq!(requests[0].path(), PATH);
    assert_eq!(
        requests[0].query(),
        requests[1].query(),
        "the probe is the same GET"
    );
    assert_eq!(requests[1].header("metadata"), Some("true"));
    assert_eq!(requests[2].header("metadata"), Some("true"));
}

#[tokio::test]
async fn a_failed_probe_is_unavailable_and_not_remembered() {
    let docker = Reply::text(403, "A socket operation was attempted to an unreachable network.");
    let probe_ok = Reply::json(400, r#"{"error":"invalid_request"}"#);
    let server = TestServer::replies(vec![docker, probe_ok, imds_token("t", 3600)]).await;
    let credential = probing(server.url_for(""));
    let err = credential.get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(
        server.requests().len(),
        1,
        "a failed probe is not followed by a real request"
    );
    credential.get_token(&[SCOPE], None).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "the next call probed again");
    assert_eq!(requests[1].header("metadata"), None);
}

#[tokio::test]
async fn no_listener_makes_the_probe_unavailable_without_retrying() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let credential = probing(format!("http://127.0.0.1:{port}"));
    let err = credential.get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.to_string().contains("no response from the IMDS endpoint"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_listener_that_never_answers_makes_the_probe_give_up() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let started = tokio::time::Instant::now();
    let err = probing(base).get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(started.elapsed(), crate::managed_identity::imds::PROBE_TIMEOUT);
    hold.abort();
}

#[tokio::test]
async fn pod_identity_host_turns_the_probe_off() {
    let server = TestServer::replies(vec![imds_token("t", 3600)]).await;
    let pairs = pod_identity(&server);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let credential = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        enable_imds_probe: true,
        ..options(&pairs)
    }))
    .unwrap();
    credential.get_token(&[SCOPE], None).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("metadata"), Some("true"));
}

#[test]
fn a_malformed_pod_identity_host_is_refused_naming_the_variable() {
    for bad in ["not a url", "ftp://host", "http://host/?x=1"] {
        let err =
            ManagedIdentityCredential::new(Some(options(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", bad)])))
                .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        assert!(
            err.to_string().contains("AZURE_POD_IDENTITY_AUTHORITY_HOST"),
            "{err}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn no_listener_for_a_real_request_is_unavailable_after_the_connection_retries() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let credential = credential(
        &[(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            &format!("http://127.0.0.1:{port}"),
        )],
        None,
    );
    let err = credential.get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("no response from"), "{err}");
}

#[tokio::test]
async fn a_server_refresh_in_sets_the_refresh_time() {
    let body = serde_json::json!({"access_token": "a", "expires_in": "86399", "refresh_in": "600", "token_type": "Bearer"});
    let server = TestServer::replies(vec![Reply::json(200, body.to_string())]).await;
    let token = imds(&server, None).get_token(&[SCOPE], None).await.unwrap();
    let refresh_in = (token.refresh_on.unwrap() - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((590..=600).contains(&refresh_in), "{refresh_in}");
}
