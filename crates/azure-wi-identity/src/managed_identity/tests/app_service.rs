//! App Service (2019-08-01): the exact request and every answer.

use serde_json::json;

use super::{RESOURCE, SCOPE, credential, lifetime};
use crate::{
    ErrorKind, TokenCredential,
    managed_identity::{
        UserAssignedId,
        test_server::{Reply, TestServer},
    },
};

const HEADER: &str = "app-service-identity-header-s3cret";

fn app_service_token(token: &str, expires_on: String) -> Reply {
    Reply::json(
        200,
        json!({"access_token": token, "expires_on": expires_on, "resource": RESOURCE, "token_type": "Bearer", "client_id": "c"})
            .to_string(),
    )
}

fn in_an_hour() -> String {
    (time::OffsetDateTime::now_utc().unix_timestamp() + 3600).to_string()
}

#[tokio::test]
async fn sends_exactly_the_app_service_request_for_each_selector() {
    let cases = [
        (None, None),
        (
            Some(UserAssignedId::ClientId("cid".into())),
            Some(("client_id", "cid")),
        ),
        (
            Some(UserAssignedId::ObjectId("oid".into())),
            Some(("object_id", "oid")),
        ),
        // App Service ignores `msi_res_id`: a resource id must go as `mi_res_id`.
        (
            Some(UserAssignedId::ResourceId("/subscriptions/s/rg/x".into())),
            Some(("mi_res_id", "/subscriptions/s/rg/x")),
        ),
    ];
    for (id, selector) in cases {
        let server = TestServer::replies(vec![app_service_token("app-token", in_an_hour())]).await;
        let endpoint = server.url_for("/msi/token");
        let credential = credential(
            &[("IDENTITY_ENDPOINT", &endpoint), ("IDENTITY_HEADER", HEADER)],
            id.clone(),
        );
        let token = credential.get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(token.token.secret(), "app-token");
        assert!((3590..=3600).contains(&lifetime(&token)));
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!((r.method.as_str(), r.path()), ("GET", "/msi/token"));
        let mut expected = vec![("api-version", "2019-08-01"), ("resource", RESOURCE)];
        expected.extend(selector);
        assert_eq!(r.query_pairs(), expected, "{id:?}");
        assert_eq!(r.header("x-identity-header"), Some(HEADER));
        assert_eq!(r.header("metadata"), Some("true"));
        assert!(r.body.is_empty());
    }
}

#[tokio::test]
async fn a_refusal_fails_with_the_platform_message_and_never_the_header() {
    let refusal = Reply::json(
        400,
        json!({"statusCode": 400, "message": format!("Unable to load requested managed identity. header={HEADER}"), "correlationId": "corr-7"}).to_string(),
    );
    let server = TestServer::replies(vec![refusal]).await;
    let endpoint = server.url_for("/msi/token");
    let credential = credential(
        &[("IDENTITY_ENDPOINT", &endpoint), ("IDENTITY_HEADER", HEADER)],
        Some(UserAssignedId::ResourceId("/subscriptions/s/x".into())),
    );
    let err = credential.get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::AuthenticationFailed, Some(400))
    );
    let msg = err.to_string();
    assert!(
        msg.contains("Unable to load requested managed identity") && msg.contains("corr-7"),
        "{msg}"
    );
    assert!(msg.contains("mi_res_id=/subscriptions/s/x"), "{msg}");
    assert!(
        !msg.contains(HEADER) && !format!("{err:?}").contains(HEADER),
        "{msg}"
    );
    assert_eq!(server.requests().len(), 1, "400 is not retried");
}

#[tokio::test(start_paused = true)]
async fn retries_on_azure_cores_schedule_then_reports_a_non_json_answer_as_unavailable() {
    let bad_gateway = Reply::text(502, "Bad Gateway");
    let server = TestServer::replies(vec![bad_gateway]).await;
    let endpoint = server.url_for("/msi/token");
    let credential = credential(
        &[("IDENTITY_ENDPOINT", &endpoint), ("IDENTITY_HEADER", HEADER)],
        None,
    );
    let err = credential.get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("IDENTITY_ENDPOINT=http://127.0.0.1:"),
        "{message}"
    );
    assert!(
        message.contains("did not answer like an App Service identity endpoint"),
        "{message}"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 4, "three status retries");
    let gaps: Vec<_> = requests.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert_eq!(gaps, [0.0, 1.6, 3.2].map(std::time::Duration::from_secs_f64));
}

#[tokio::test]
async fn a_wrong_header_is_explained() {
    let server = TestServer::replies(vec![Reply::json(
        401,
        r#"{"statusCode":401,"message":"Unauthorized"}"#,
    )])
    .await;
    let endpoint = server.url_for("/msi/token");
    let credential = credential(
        &[("IDENTITY_ENDPOINT", &endpoint), ("IDENTITY_HEADER", HEADER)],
        None,
    );
    let err = credential.get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("IDENTITY_HEADER was refused"), "{err}");
}

#[test]
fn a_malformed_endpoint_is_refused_naming_the_variable() {
    let mut options = super::options(&[
        ("IDENTITY_ENDPOINT", "localhost:42/token"),
        ("IDENTITY_HEADER", HEADER),
    ]);
    options.user_assigned_id = None;
    let err = crate::managed_identity::ManagedIdentityCredential::new(Some(options)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("IDENTITY_ENDPOINT"), "{err}");
    assert!(!err.to_string().contains(HEADER));
}
