//! Azure Machine Learning (2017-09-01): the exact request and every expiry shape it has used.

use serde_json::json;

use super::{RESOURCE, SCOPE, credential, lifetime, token_of};
use crate::{
    ErrorKind, TokenCredential,
    managed_identity::{
        UserAssignedId,
        test_server::{Reply, TestServer},
    },
};

const SECRET: &str = "azure-ml-msi-s3cret";

#[tokio::test]
async fn sends_exactly_the_azure_ml_request_for_each_selector() {
    let cases = [
        (None, None),
        // The 2017 API spells the client id `clientid`.
        (
            Some(UserAssignedId::ClientId("cid".into())),
            Some(("clientid", "cid")),
        ),
        (
            Some(UserAssignedId::ObjectId("oid".into())),
            Some(("object_id", "oid")),
        ),
        (
            Some(UserAssignedId::ResourceId("/subscriptions/s/x".into())),
            Some(("msi_res_id", "/subscriptions/s/x")),
        ),
    ];
    let expires_on = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    for (id, selector) in cases {
        let body = json!({"access_token": "ml-token", "expires_in": 3600, "expires_on": expires_on, "resource": RESOURCE, "token_type": "Bearer"});
        let server = TestServer::replies(vec![Reply::json(200, body.to_string())]).await;
        let endpoint = server.url_for("/msi/auth");
        let credential = credential(&[("MSI_ENDPOINT", &endpoint), ("MSI_SECRET", SECRET)], id.clone());
        assert_eq!(token_of(&credential).await, "ml-token");
        let r = &server.requests()[0];
        assert_eq!((r.method.as_str(), r.path()), ("GET", "/msi/auth"));
        let mut expected = vec![("api-version", "2017-09-01"), ("resource", RESOURCE)];
        expected.extend(selector);
        assert_eq!(r.query_pairs(), expected, "{id:?}");
        assert_eq!(r.header("secret"), Some(SECRET));
        assert_eq!(r.header("metadata"), None);
        assert!(r.body.is_empty());
    }
}

#[tokio::test]
async fn reads_integer_epoch_and_both_date_string_styles() {
    let now = time::OffsetDateTime::now_utc();
    let in_2h = now + time::Duration::hours(2);
    let linux = format!(
        "{:02}/{:02}/{} {:02}:{:02}:{:02} +00:00",
        u8::from(in_2h.month()),
        in_2h.day(),
        in_2h.year(),
        in_2h.hour(),
        in_2h.minute(),
        in_2h.second()
    );
    let (h12, marker) = match in_2h.hour() {
        0 => (12, "AM"),
        h @ 1..=11 => (h, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    let windows = format!(
        "{}/{}/{} {}:{:02}:{:02} {marker} +00:00",
        u8::from(in_2h.month()),
        in_2h.day(),
        in_2h.year(),
        h12,
        in_2h.minute(),
        in_2h.second()
    );
    for expires_on in [json!(in_2h.unix_timestamp()), json!(linux), json!(windows)] {
        let body = json!({"access_token": "t", "expires_on": expires_on, "resource": RESOURCE, "token_type": "Bearer"});
        let server = TestServer::replies(vec![Reply::json(200, body.to_string())]).await;
        let endpoint = server.url_for("/msi/auth");
        let credential = credential(&[("MSI_ENDPOINT", &endpoint), ("MSI_SECRET", SECRET)], None);
        let token = credential.get_token(&[SCOPE], None).await.unwrap();
        assert!(
            (7190..=7200).contains(&lifetime(&token)),
            "{expires_on}: {}",
            lifetime(&token)
        );
        assert!(token.refresh_on.is_some(), "two-hour tokens get a refresh time");
    }
}

#[tokio::test]
async fn a_refusal_fails_and_never_quotes_the_secret() {
    let server = TestServer::replies(vec![Reply::json(
        400,
        json!({"error": "invalid_request", "error_description": format!("bad secret {SECRET}")}).to_string(),
    )])
    .await;
    let endpoint = server.url_for("/msi/auth");
    let credential = credential(
        &[("MSI_ENDPOINT", &endpoint), ("MSI_SECRET", SECRET)],
        Some(UserAssignedId::ClientId("cid".into())),
    );
    let err = credential.get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::AuthenticationFailed, Some(400))
    );
    assert!(err.to_string().contains("clientid=cid"), "{err}");
    assert!(
        !err.to_string().contains(SECRET) && !format!("{err:?}").contains(SECRET),
        "{err}"
    );
}
