//! Azure Arc: the challenge, the key-file rules through the whole exchange, and the
//! user-assigned echo check.

use std::{path::Path, sync::Arc};

use serde_json::{Value, json};

use super::{RESOURCE, SCOPE, error_of, options, token_of};
use crate::{
    ErrorKind, TokenCredential,
    managed_identity::{
        ManagedIdentityCredential, ManagedIdentitySource, UserAssignedId,
        test_server::{RecordedRequest, Reply, TestServer},
    },
};

const KEY: &str = "arc-challenge-key-s3cret";

struct TokenDir {
    _root: tempfile::TempDir,
    tokens: std::path::PathBuf,
}

fn token_dir() -> TokenDir {
    let root = tempfile::tempdir().unwrap();
    let tokens = root.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    TokenDir { _root: root, tokens }
}

/// An agent that challenges with `realm` and accepts `Basic KEY`, answering `token_body`.
async fn agent(realm: String, token_body: Value) -> TestServer {
    TestServer::with_handler(move |r: &RecordedRequest| match r.header("authorization") {
        None => Reply::json(401, r#"{"error":"unauthorized"}"#)
            .header("WWW-Authenticate", &format!("Basic realm={realm}")),
        Some(a) if a == format!("Basic {KEY}") => Reply::json(200, token_body.to_string()),
        // Echoes what it refused, as a careless agent (or whatever holds the port) might.
        Some(a) => Reply::json(
            401,
            json!({"error": "bad key", "error_description": format!("refused {a}")}).to_string(),
        ),
    })
    .await
}

fn token_body(extra: Value) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut body = json!({
        "access_token": "arc-token", "expires_in": "3600", "expires_on": (now + 3600).to_string(),
        "resource": "https://vault.azure.net/", "token_type": "Bearer"
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

fn arc(server: &TestServer, dir: &Path, id: Option<UserAssignedId>) -> Arc<ManagedIdentityCredential> {
    let endpoint = server.url_for("/metadata/identity/oauth2/token");
    let imds = server.url_for("");
    let mut opts = options(&[("IDENTITY_ENDPOINT", &endpoint), ("IMDS_ENDPOINT", &imds)]);
    opts.platform.arc_token_dir = Some(dir.to_owned());
    opts.user_assigned_id = id;
    ManagedIdentityCredential::new(Some(opts)).unwrap()
}

#[tokio::test]
async fn answers_the_challenge_with_the_key_and_sends_exactly_two_requests() {
    let dir = token_dir();
    let key_file = dir.tokens.join("1234.key");
    std::fs::write(&key_file, KEY).unwrap();
    let server = agent(key_file.display().to_string(), token_body(json!({}))).await;
    let credential = arc(&server, &dir.tokens, None);
    assert_eq!(credential.source(), ManagedIdentitySource::AzureArc);
    assert_eq!(token_of(&credential).await, "arc-token");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(
            (r.method.as_str(), r.path()),
            ("GET", "/metadata/identity/oauth2/token")
        );
        assert_eq!(
            r.query_pairs(),
            [("api-version", "2020-06-01"), ("resource", RESOURCE)]
        );
        assert_eq!(r.header("metadata"), Some("true"));
        assert!(r.body.is_empty());
    }
    assert_eq!(requests[0].header("authorization"), None);
    assert_eq!(
        requests[1].header("authorization"),
        Some(format!("Basic {KEY}").as_str())
    );
}

#[tokio::test]
async fn the_agent_file_selects_arc_at_its_default_endpoint() {
    let dir = token_dir();
    let key_file = dir.tokens.join("k.key");
    std::fs::write(&key_file, KEY).unwrap();
    let server = agent(key_file.display().to_string(), token_body(json!({}))).await;
    let agent_file = dir.tokens.parent().unwrap().join("himds");
    std::fs::write(&agent_file, "").unwrap();
    let mut opts = options(&[]);
    opts.platform.arc_agent_file = Some(agent_file);
    opts.platform.arc_token_dir = Some(dir.tokens.clone());
    opts.platform.arc_default_endpoint = Some(server.url_for("/metadata/identity/oauth2/token"));
    let credential = ManagedIdentityCredential::new(Some(opts)).unwrap();
    assert_eq!(credential.source(), ManagedIdentitySource::AzureArc);
    assert_eq!(token_of(&credential).await, "arc-token");
    assert_eq!(server.requests().len(), 2);
}

/// Each bad realm fails after the first request: the key is never read and never sent.
#[tokio::test]
async fn a_realm_outside_the_rules_is_never_read_or_answered() {
    let dir = token_dir();
    let root = dir.tokens.parent().unwrap().to_owned();
    std::fs::write(dir.tokens.join("good.key"), KEY).unwrap();
    std::fs::write(root.join("outside.key"), KEY).unwrap();
    std::fs::write(dir.tokens.join("plain.txt"), KEY).unwrap();
    std::fs::write(dir.tokens.join("big.key"), "k".repeat(4097)).unwrap();
    std::os::unix::fs::symlink(root.join("outside.key"), dir.tokens.join("link.key")).unwrap();
    let cases = [
        (
            root.join("outside.key").display().to_string(),
            "outside the Azure Arc token directory",
        ),
        (
            format!("{}/../tokens/good.key", dir.tokens.display()),
            "without `..`",
        ),
        (
            dir.tokens.join("link.key").display().to_string(),
            "outside the Azure Arc token directory",
        ),
        (
            dir.tokens.join("plain.txt").display().to_string(),
            "not name a .key file",
        ),
        (
            dir.tokens.join("big.key").display().to_string(),
            "more than the 4096 bytes",
        ),
        ("relative.key".to_owned(), "absolute path"),
    ];
    for (realm, expected) in cases {
        let server = agent(realm.clone(), token_body(json!({}))).await;
        let err = error_of(&arc(&server, &dir.tokens, None)).await;
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{realm}: {err}");
        assert!(err.to_string().contains(expected), "{realm}: {err}");
        assert!(!err.to_string().contains(KEY) && !format!("{err:?}").contains(KEY));
        assert_eq!(
            server.requests().len(),
            1,
            "{realm}: the challenge was not answered"
        );
    }
}

#[tokio::test]
async fn a_missing_or_malformed_challenge_fails() {
    let dir = token_dir();
    for reply in [
        Reply::json(401, "{}"),
        Reply::json(401, "{}").header("WWW-Authenticate", "Bearer realm=/x.key"),
    ] {
        let server = TestServer::replies(vec![reply]).await;
        let err = error_of(&arc(&server, &dir.tokens, None)).await;
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert!(err.to_string().contains("WWW-Authenticate"), "{err}");
    }
    // Not a challenge at all: a token without the 401 step is not trusted.
    let server = TestServer::replies(vec![Reply::json(200, token_body(json!({})).to_string())]).await;
    let err = error_of(&arc(&server, &dir.tokens, None)).await;
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::AuthenticationFailed, Some(200))
    );
    assert!(
        err.to_string().contains("expected a 401 challenge") && !err.to_string().contains("arc-token"),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_key_fails_without_quoting_it() {
    let dir = token_dir();
    let key_file = dir.tokens.join("k.key");
    std::fs::write(&key_file, "a-different-key").unwrap();
    let server = agent(key_file.display().to_string(), token_body(json!({}))).await;
    let err = error_of(&arc(&server, &dir.tokens, None)).await;
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::AuthenticationFailed, Some(401))
    );
    assert!(!err.to_string().contains("a-different-key"), "{err}");
    assert!(err.to_string().contains("refused Basic <redacted>"), "{err}");
    assert_eq!(server.requests().len(), 2, "401 is never retried");
}

#[tokio::test]
async fn a_user_assigned_token_must_echo_the_requested_id() {
    let dir = token_dir();
    let key_file = dir.tokens.join("k.key");
    std::fs::write(&key_file, KEY).unwrap();
    let realm = key_file.display().to_string();
    let cases = [
        (
            UserAssignedId::ClientId("ABC-1".into()),
            json!({"client_id": "abc-1"}),
            true,
        ),
        (UserAssignedId::ClientId("abc-1".into()), json!({}), false),
        (
            UserAssignedId::ClientId("abc-1".into()),
            json!({"client_id": "system-identity"}),
            false,
        ),
        (
            UserAssignedId::ObjectId("o-1".into()),
            json!({"object_id": "o-1"}),
            true,
        ),
        (
            UserAssignedId::ObjectId("o-1".into()),
            json!({"client_id": "o-1"}),
            false,
        ),
        (
            UserAssignedId::ResourceId("/s/r/id".into()),
            json!({"msi_res_id": "/S/R/ID"}),
            true,
        ),
        (
            UserAssignedId::ResourceId("/s/r/id".into()),
            json!({"mi_res_id": "/s/r/id"}),
            true,
        ),
        (
            UserAssignedId::ResourceId("/s/r/id".into()),
            json!({"msi_res_id": "/s/r/other"}),
            false,
        ),
    ];
    for (id, echo, accepted) in cases {
        let server = agent(realm.clone(), token_body(echo.clone())).await;
        let result = arc(&server, &dir.tokens, Some(id.clone()))
            .get_token(&[SCOPE], None)
            .await;
        let (name, value) = id.query_pair(&crate::managed_identity::user_assigned_id::IMDS_NAMES);
        assert_eq!(
            server.requests()[0].query_pairs(),
            [
                ("api-version", "2020-06-01"),
                ("resource", RESOURCE),
                (name, value)
            ]
        );
        match (result, accepted) {
            (Ok(token), true) => assert_eq!(token.token.secret(), "arc-token"),
            (Err(err), false) => {
                assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{id:?} {echo}");
                assert!(
                    err.to_string()
                        .contains("did not confirm the requested user-assigned identity"),
                    "{err}"
                );
                assert!(!err.to_string().contains("arc-token"));
            }
            (other, _) => panic!("{id:?} with echo {echo}: unexpected {other:?}"),
        }
    }
}
