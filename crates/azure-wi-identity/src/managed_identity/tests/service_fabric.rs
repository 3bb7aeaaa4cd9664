//! Service Fabric: pinned TLS (real rustls handshakes against a self-signed server), the exact
//! request, and that the secret never leaves without a matching thumbprint.

use std::sync::Arc;

use serde_json::json;

use super::{
    RESOURCE, SCOPE, assert_no_user_assigned_id, credential, error_of, options, token_of, token_with_claims,
};
use crate::{
    ErrorKind, TokenCredential,
    managed_identity::{
        ManagedIdentityCredential, ManagedIdentitySource, UserAssignedId,
        test_server::{Reply, TestServer, self_signed_tls},
    },
};

const SECRET: &str = "service-fabric-s3cret";

fn sf_token(token: &str) -> Reply {
    let expires_on = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    Reply::json(200, json!({"token_type": "Bearer", "access_token": token, "expires_on": expires_on, "resource": RESOURCE}).to_string())
}

async fn pinned_server(replies: Vec<Reply>) -> (TestServer, String) {
    let (config, thumbprint) = self_signed_tls();
    let queue = std::sync::Mutex::new(std::collections::VecDeque::from(replies));
    let server = TestServer::with_handler_tls(config, move |_| {
        queue.lock().unwrap().pop_front().expect("a scripted reply")
    })
    .await;
    (server, thumbprint)
}

fn sf(endpoint: &str, thumbprint: &str) -> Arc<ManagedIdentityCredential> {
    credential(
        &[
            ("IDENTITY_ENDPOINT", endpoint),
            ("IDENTITY_HEADER", SECRET),
            ("IDENTITY_SERVER_THUMBPRINT", thumbprint),
        ],
        None,
    )
}

#[tokio::test]
async fn sends_exactly_the_service_fabric_request_to_the_pinned_server() {
    let (server, thumbprint) = pinned_server(vec![sf_token("sf-token")]).await;
    let credential = sf(&server.url_for("/metadata/identity/oauth2/token"), &thumbprint);
    assert_eq!(credential.source(), ManagedIdentitySource::ServiceFabric);
    let token = credential.get_token(&[SCOPE], None).await.unwrap();
    assert_eq!(token.token.secret(), "sf-token");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path()),
        ("GET", "/metadata/identity/oauth2/token")
    );
    assert_eq!(
        r.query_pairs(),
        [("api-version", "2019-07-01-preview"), ("resource", RESOURCE)]
    );
    assert_eq!(r.header("secret"), Some(SECRET));
    assert_eq!(r.header("metadata"), None);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn the_thumbprint_matches_in_any_case_and_with_colons() {
    let (server, thumbprint) = pinned_server(vec![sf_token("t")]).await;
    let colons: Vec<String> = thumbprint
        .to_lowercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let credential = sf(&server.url_for("/token"), &colons.join(":"));
    assert_eq!(token_of(&credential).await, "t");
}

#[tokio::test]
async fn a_thumbprint_mismatch_fails_before_the_secret_is_sent() {
    let (server, thumbprint) = pinned_server(vec![sf_token("never")]).await;
    // Same length, one digit changed.
    let mut wrong: Vec<char> = thumbprint.chars().collect();
    wrong[0] = if wrong[0] == 'A' { 'B' } else { 'A' };
    let wrong: String = wrong.into_iter().collect();
    let credential = sf(&server.url_for("/token"), &wrong);
    let err = credential.get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&thumbprint) && msg.contains(&wrong) && msg.contains("was not sent"),
        "{msg}"
    );
    assert!(!msg.contains(SECRET));
    assert!(server.requests().is_empty(), "no request reached the server");
}

/// A caller's retry options do not make a refused handshake (a pinning failure) retried: the
/// error comes at once, not after the schedule's 2 + 4 + 8 s.
#[tokio::test]
async fn a_caller_s_retry_options_never_retry_a_pinning_failure() {
    let (server, thumbprint) = pinned_server(vec![sf_token("never")]).await;
    let wrong = if thumbprint.starts_with('A') { "B" } else { "A" }.to_owned() + &thumbprint[1..];
    let mut opts = options(&[
        ("IDENTITY_ENDPOINT", &server.url_for("/token")),
        ("IDENTITY_HEADER", SECRET),
        ("IDENTITY_SERVER_THUMBPRINT", &wrong),
    ]);
    opts.client_options.retry = crate::RetryOptions::exponential(crate::ExponentialRetryOptions {
        initial_delay: std::time::Duration::from_secs(2),
        max_retries: 3,
        max_delay: std::time::Duration::from_secs(30),
    });
    let credential = ManagedIdentityCredential::new(Some(opts)).unwrap();
    let started = std::time::Instant::now();
    let err = credential.get_token(&[SCOPE], None).await.unwrap_err();
    assert!(err.to_string().contains("was not sent"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn plain_http_is_refused_before_anything_is_sent() {
    let server = TestServer::replies(vec![sf_token("never")]).await;
    let mut opts = options(&[
        ("IDENTITY_ENDPOINT", &server.url_for("/token")),
        ("IDENTITY_HEADER", SECRET),
        (
            "IDENTITY_SERVER_THUMBPRINT",
            "00112233445566778899AABBCCDDEEFF00112233",
        ),
    ]);
    opts.user_assigned_id = None;
    let err = ManagedIdentityCredential::new(Some(opts)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("not https"), "{err}");
    assert!(!err.to_string().contains(SECRET));
    assert!(server.requests().is_empty());
}

#[test]
fn a_malformed_thumbprint_and_a_user_assigned_id_are_refused() {
    let pairs = [
        ("IDENTITY_ENDPOINT", "https://localhost:2377/token"),
        ("IDENTITY_HEADER", SECRET),
        ("IDENTITY_SERVER_THUMBPRINT", "not-a-thumbprint"),
    ];
    let err = ManagedIdentityCredential::new(Some(options(&pairs))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("IDENTITY_SERVER_THUMBPRINT"), "{err}");

    let pairs = [
        ("IDENTITY_ENDPOINT", "https://localhost:2377/token"),
        ("IDENTITY_HEADER", SECRET),
        (
            "IDENTITY_SERVER_THUMBPRINT",
            "00112233445566778899AABBCCDDEEFF00112233",
        ),
    ];
    assert_no_user_assigned_id(
        options(&pairs),
        UserAssignedId::ClientId("c".into()),
        "Service Fabric",
    );
}

#[tokio::test]
async fn a_claims_refresh_names_the_token_it_replaces() {
    let (server, thumbprint) = pinned_server(vec![sf_token("first-token"), sf_token("second-token")]).await;
    let credential = sf(&server.url_for("/token"), &thumbprint);
    credential.get_token(&[SCOPE], None).await.unwrap();
    assert_eq!(token_with_claims(&*credential, "{}").await, "second-token");
    let requests = server.requests();
    let expected_hash: String = ring::digest::digest(&ring::digest::SHA256, b"first-token")
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        requests[1].query_pairs(),
        [
            ("api-version", "2019-07-01-preview"),
            ("resource", RESOURCE),
            ("token_sha256_to_refresh", expected_hash.as_str())
        ]
    );
}

#[tokio::test]
async fn errors_carry_the_service_fabric_code_and_hint() {
    let refusal = Reply::json(
        404,
        r#"{"error":{"code":"ManagedIdentityNotFound","message":"no identity"}}"#,
    );
    let (server, thumbprint) = pinned_server(vec![refusal]).await;
    let err = error_of(&sf(&server.url_for("/token"), &thumbprint)).await;
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::AuthenticationFailed, Some(404))
    );
    assert!(
        err.to_string().contains("ManagedIdentityNotFound: no identity")
            && err.to_string().contains("manifest"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1, "404 is not retried");
}

#[tokio::test]
async fn a_server_with_the_certificate_but_not_its_key_is_refused() {
    let (config, thumbprint) = crate::managed_identity::test_server::impostor_tls();
    let server = TestServer::with_handler_tls(config, |_| sf_token("never")).await;
    let err = error_of(&sf(&server.url_for("/token"), &thumbprint)).await;
    assert_ne!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(!err.to_string().contains(SECRET));
    assert!(
        server.requests().is_empty(),
        "the handshake signature check stopped it"
    );
}
