//! Cloud Shell: the exact POST and its answers; user-assigned identities refused.

use serde_json::json;

use super::{RESOURCE, SCOPE, assert_no_user_assigned_id, credential, error_of, lifetime, options};
use crate::{
    ErrorKind, TokenCredential,
    managed_identity::{
        UserAssignedId,
        test_server::{Reply, TestServer},
    },
};

#[tokio::test]
async fn posts_exactly_the_cloud_shell_form() {
    let body = json!({"access_token": "user-token", "expires_in": "3599", "expires_on": "1", "not_before": "1", "resource": RESOURCE, "token_type": "Bearer"});
    let server = TestServer::replies(vec![Reply::json(200, body.to_string())]).await;
    let endpoint = server.url_for("/oauth2/token");
    let credential = credential(&[("MSI_ENDPOINT", &endpoint)], None);
    let token = credential.get_token(&[SCOPE], None).await.unwrap();
    assert_eq!(token.token.secret(), "user-token");
    assert!(
        (3590..=3599).contains(&lifetime(&token)),
        "expires_in wins over expires_on"
    );
    let r = &server.requests()[0];
    assert_eq!((r.method.as_str(), r.path()), ("POST", "/oauth2/token"));
    assert!(r.query().is_empty());
    assert_eq!(r.header("metadata"), Some("true"));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.form(), [("resource".to_owned(), RESOURCE.to_owned())]);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "resource=https%3A%2F%2Fvault.azure.net"
    );
}

#[test]
fn a_user_assigned_identity_is_refused_when_the_credential_is_built() {
    for id in [
        UserAssignedId::ClientId("c".into()),
        UserAssignedId::ResourceId("/s/x".into()),
    ] {
        let opts = options(&[("MSI_ENDPOINT", "http://localhost:50342/oauth2/token")]);
        assert_no_user_assigned_id(opts, id, "Cloud Shell");
    }
}

#[tokio::test]
async fn a_token_less_json_answer_fails_and_a_non_json_one_is_unavailable() {
    let server = TestServer::replies(vec![Reply::json(
        400,
        r#"{"error":{"code":"BadRequest","message":"not signed in"}}"#,
    )])
    .await;
    let endpoint = server.url_for("/oauth2/token");
    let err = error_of(&credential(&[("MSI_ENDPOINT", &endpoint)], None)).await;
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::AuthenticationFailed, Some(400))
    );
    assert!(err.to_string().contains("BadRequest: not signed in"), "{err}");

    let server = TestServer::replies(vec![Reply::text(404, "Not Found")]).await;
    let endpoint = server.url_for("/oauth2/token");
    let err = error_of(&credential(&[("MSI_ENDPOINT", &endpoint)], None)).await;
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}
