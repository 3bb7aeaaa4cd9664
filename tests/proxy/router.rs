//! Every path, parameter, header and hardening rule of the router, without sockets (except the
//! IMDS stand-in that forwarded requests reach).

use axum::{body::Body, http::StatusCode};
use azure_wi::proxy::{Proxy, ProxyConfig};
use azure_wi_identity::{self as credential, Env};
use serde_json::Value;
use time::OffsetDateTime;

use crate::support::{self, DEFAULT_CLIENT, IDENTITY_HEADER, ImdsStandIn, Recorder, TENANT, get, send};

const CLOSED: &str = "http://127.0.0.1:9";
const TOKEN: &str =
    "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net";

fn description(body: &Value) -> &str {
    body["error_description"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn imds_token_has_imds_shape() {
    let recorder = Recorder::default();
    let router = support::router(&recorder, false, CLOSED);
    let before = OffsetDateTime::now_utc().unix_timestamp();
    let (status, response, body) = send(
        &router,
        get(TOKEN).header("Metadata", "true").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["access_token"],
        format!("token-for:{DEFAULT_CLIENT}:https://vault.azure.net/.default")
    );
    assert_eq!(body["resource"], "https://vault.azure.net");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["client_id"], DEFAULT_CLIENT);
    let expires_in = body["expires_in"].as_i64().expect("expires_in is a JSON number");
    assert!((3590..=3600).contains(&expires_in), "{expires_in}");
    let expires_on: i64 = body["expires_on"]
        .as_str()
        .expect("expires_on is a string")
        .parse()
        .unwrap();
    assert!(
        (before + 3590..=before + 3601).contains(&expires_on),
        "{expires_on}"
    );
    let not_before: i64 = body["not_before"]
        .as_str()
        .expect("not_before is a string")
        .parse()
        .unwrap();
    assert!(not_before >= before && not_before < expires_on);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(
        response.headers()["server"]
            .to_str()
            .unwrap()
            .starts_with("azure-wi/")
    );
    assert_eq!(
        *recorder.created.lock().unwrap(),
        vec![(DEFAULT_CLIENT.to_owned(), TENANT.to_owned())]
    );
}

#[tokio::test]
async fn metadata_segment_is_case_insensitive_and_client_id_is_honoured() {
    let recorder = Recorder::default();
    let router = support::router(&recorder, false, CLOSED);
    let uri = "/MetaData/identity/oauth2/token?api-version=2019-08-01&resource=api%3A%2F%2Fapp&client_id=other-client";
    let (status, _, body) = send(
        &router,
        get(uri).header("metadata", "True").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["access_token"], "token-for:other-client:api://app/.default");
    assert_eq!(body["client_id"], "other-client");
    assert_eq!(
        *recorder.created.lock().unwrap(),
        vec![("other-client".to_owned(), TENANT.to_owned())]
    );
}

#[tokio::test]
async fn scopes_follow_the_resource() {
    let recorder = Recorder::default();
    let router = support::router(&recorder, false, CLOSED);
    for resource in [
        "https%3A%2F%2Fmanagement.azure.com%2F",
        "api%3A%2F%2Fx%2F.default",
    ] {
        let uri = format!("/metadata/identity/oauth2/token?api-version=1&resource={resource}");
        let (status, _, body) = send(
            &router,
            get(&uri).header("Metadata", "true").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        recorder.scopes(),
        ["https://management.azure.com//.default", "api://x/.default"]
    );
}

#[tokio::test]
async fn imds_requires_the_metadata_header() {
    let recorder = Recorder::default();
    let router = support::router(&recorder, false, CLOSED);
    for request in [
        get(TOKEN).body(Body::empty()).unwrap(),
        get(TOKEN)
            .header("Metadata", "false")
            .body(Body::empty())
            .unwrap(),
        get(TOKEN).header("Metadata", "").body(Body::empty()).unwrap(),
    ] {
        let (status, _, body) = send(&router, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_request");
        assert!(description(&body).contains("Metadata: true"), "{body}");
    }
    assert!(recorder.scopes().is_empty(), "no token may be requested");
}

#[tokio::test]
async fn missing_and_bad_parameters_are_named() {
    let recorder = Recorder::default();
    let router = support::router(&recorder, false, CLOSED);
    let cases = [
        (
            "/metadata/identity/oauth2/token?api-version=2018-02-01",
            "'resource'",
        ),
        (
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=",
            "'resource'",
        ),
        (
            "/metadata/identity/oauth2/token?resource=https%3A%2F%2Fx",
            "'api-version'",
        ),
        (
            "/metadata/identity/oauth2/token?api-version=1&resource=a&resource=b",
            "'resource' is given more than once",
        ),
        (
            "/metadata/identity/oauth2/token?api-version=1&resource=a%20b",
            "'resource' is invalid",
        ),
        (
            "/metadata/identity/oauth2/token?api-version=1&resource=a&client_id=a%20b",
            "'client_id' is invalid",
        ),
        (
            "/metadata/identity/oauth2/token?api-version=1&resource=a&mi_res_id=%2Fsubscriptions%2Fx",
            "'mi_res_id' is not supported",
        ),
        (
            "/metadata/identity/oauth2/token?api-version=1&resource=a&msi_res_id=x",
            "'msi_res_id' is not supported",
        ),
        (
            "/metadata/identity/oauth2/token?api-version=1&resource=a&object_id=x",
            "'object_id' is not supported",
        ),
        (
            "/metadata/identity/oauth2/token?api-version=1&resource=a&principal_id=x",
            "'principal_id' is not supported",
        ),
    ];
    for (uri, expected) in cases {
        let (status, _, body) = send(
            &router,
            get(uri).header("Metadata", "true").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body["error"], "invalid_request", "{uri}");
        assert!(description(&body).contains(expected), "{uri}: {body}");
    }
    let long_client = format!("{TOKEN}&client_id={}", "a".repeat(129));
    let (status, _, _) = send(
        &router,
        get(&long_client)
            .header("Metadata", "true")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(recorder.scopes().is_empty());
}

#[tokio::test]
async fn client_id_falls_back_to_azure_client_id_or_is_required() {
    support::install_crypto();
    let recorder = Recorder::default();
    let config =
        ProxyConfig::from_env(&Env::from_pairs([("AZURE_TENANT_ID", TENANT)]), 0, false, CLOSED).unwrap();
    let router = Proxy::new(config, recorder.factory()).unwrap().router();
    let (status, _, body) = send(
        &router,
        get(TOKEN).header("Metadata", "true").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        description(&body).contains("'client_id'") && description(&body).contains("AZURE_CLIENT_ID"),
        "{body}"
    );
    let with_client = format!("{TOKEN}&client_id=abc");
    let (status, _, body) = send(
        &router,
        get(&with_client)
            .header("Metadata", "true")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn forwarded_requests_are_refused_everywhere() {
    let recorder = Recorder::default();
    let imds = ImdsStandIn::start().await;
    let router = support::router(&recorder, true, &imds.url());
    for (name, value) in [("X-Forwarded-For", "10.0.0.1"), ("Forwarded", "for=10.0.0.1")] {
        let imds_token = get(TOKEN)
            .header("Metadata", "true")
            .header(name, value)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(&router, imds_token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert!(description(&body).contains("X-Forwarded-For"), "{body}");
        let app_service = get("/msi/token?api-version=2019-08-01&resource=x")
            .header("X-IDENTITY-HEADER", IDENTITY_HEADER)
            .header(name, value)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(&router, app_service).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["statusCode"], 400, "App Service shape: {body}");
        let forward = get("/metadata/instance")
            .header("Metadata", "true")
            .header(name, value)
            .body(Body::empty())
            .unwrap();
        let (status, _, _) = send(&router, forward).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    assert!(recorder.scopes().is_empty());
    assert_eq!(imds.hits(), 0);
}

#[tokio::test]
async fn only_get_is_allowed() {
    let recorder = Recorder::default();
    let imds = ImdsStandIn::start().await;
    let router = support::router(&recorder, true, &imds.url());
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for uri in [
            TOKEN,
            "/msi/token?api-version=2019-08-01&resource=x",
            "/metadata/instance",
        ] {
            let request = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .header("Metadata", "true")
                .header("X-IDENTITY-HEADER", IDENTITY_HEADER)
                .body(Body::empty())
                .unwrap();
            let (status, _, _) = send(&router, request).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        }
    }
    assert!(recorder.scopes().is_empty());
    assert_eq!(imds.hits(), 0);
}

#[tokio::test]
async fn credential_failures_become_imds_errors_without_secrets() {
    let mut recorder = Recorder {
        failure: Some(|| {
            credential::Error::unavailable("WorkloadIdentityCredential", "Entra is unreachable")
        }),
        ..Recorder::default()
    };
    let router = support::router(&recorder, false, CLOSED);
    let (status, _, body) = send(
        &router,
        get(TOKEN).header("Metadata", "true").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "service_unavailable");
    assert!(
        description(&body).contains("Entra is unreachable") && description(&body).contains(DEFAULT_CLIENT),
        "{body}"
    );

    recorder.failure = Some(|| {
        credential::Error::authentication_failed(
            "WorkloadIdentityCredential",
            "AADSTS70021: no matching federated identity record",
        )
        .with_status(400)
    });
    let router = support::router(&recorder, false, CLOSED);
    let (status, _, body) = send(
        &router,
        get(TOKEN).header("Metadata", "true").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(description(&body).contains("AADSTS70021"), "{body}");
}

#[tokio::test]
async fn app_service_endpoint_is_off_unless_enabled() {
    let recorder = Recorder::default();
    let router = support::router(&recorder, false, CLOSED);
    let request = get("/msi/token?api-version=2019-08-01&resource=x")
        .header("X-IDENTITY-HEADER", IDENTITY_HEADER)
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&router, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["message"].as_str().unwrap().contains("--identity-endpoint"),
        "{body}"
    );
}

#[tokio::test]
async fn app_service_token_has_app_service_shape() {
    let recorder = Recorder::default();
    let router = support::router(&recorder, true, CLOSED);
    let before = OffsetDateTime::now_utc().unix_timestamp();
    for (uri, client) in [
        (
            "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com%2F",
            DEFAULT_CLIENT,
        ),
        (
            "/MSI/token/?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com%2F&client_id=c2",
            "c2",
        ),
    ] {
        let request = get(uri)
            .header("X-IDENTITY-HEADER", IDENTITY_HEADER)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(&router, request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["access_token"],
            format!("token-for:{client}:https://storage.azure.com//.default")
        );
        assert_eq!(body["resource"], "https://storage.azure.com/");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["client_id"], client);
        let expires_on: i64 = body["expires_on"].as_str().expect("a string").parse().unwrap();
        assert!((before + 3590..=before + 3601).contains(&expires_on));
    }
}

#[tokio::test]
async fn app_service_checks_the_identity_header() {
    let recorder = Recorder::default();
    let router = support::router(&recorder, true, CLOSED);
    let uri = "/msi/token?api-version=2019-08-01&resource=x";
    let wrong_same_length = "0".repeat(IDENTITY_HEADER.len());
    let prefix = &IDENTITY_HEADER[..IDENTITY_HEADER.len() - 1];
    let longer = format!("{IDENTITY_HEADER}0");
    for header in [
        None,
        Some(""),
        Some(wrong_same_length.as_str()),
        Some(prefix),
        Some(longer.as_str()),
    ] {
        let mut request = get(uri).header("Metadata", "true");
        if let Some(value) = header {
            request = request.header("X-IDENTITY-HEADER", value);
        }
        let (status, _, body) = send(&router, request.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header:?}");
        assert_eq!(body["statusCode"], 401);
        assert!(
            body["message"].as_str().unwrap().contains("X-IDENTITY-HEADER"),
            "{body}"
        );
        assert!(
            !body.to_string().contains(IDENTITY_HEADER),
            "the secret must not be echoed"
        );
    }
    assert!(recorder.scopes().is_empty());
}

#[tokio::test]
async fn app_service_parameters_are_checked() {
    let recorder = Recorder::default();
    let router = support::router(&recorder, true, CLOSED);
    let cases = [
        ("/msi/token?resource=x", "'api-version'"),
        (
            "/msi/token?api-version=2017-09-01&resource=x",
            "api-version=2019-08-01",
        ),
        ("/msi/token?api-version=2019-08-01", "'resource'"),
        (
            "/msi/token?api-version=2019-08-01&resource=x&mi_res_id=%2Fsubscriptions%2Fs",
            "'mi_res_id' is not supported",
        ),
        (
            "/msi/token?api-version=2019-08-01&resource=x&object_id=o",
            "'object_id' is not supported",
        ),
        (
            "/msi/token?api-version=2019-08-01&resource=x&principal_id=p",
            "'principal_id' is not supported",
        ),
    ];
    for (uri, expected) in cases {
        let request = get(uri)
            .header("X-IDENTITY-HEADER", IDENTITY_HEADER)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(&router, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body["statusCode"], 400);
        assert!(
            body["message"].as_str().unwrap().contains(expected),
            "{uri}: {body}"
        );
        assert!(description(&body).contains(expected), "IMDS fields too: {body}");
    }
    assert!(recorder.scopes().is_empty());
}

#[tokio::test]
async fn instance_metadata_gets_are_forwarded_with_safe_headers() {
    let recorder = Recorder::default();
    let imds = ImdsStandIn::start().await;
    let router = support::router(&recorder, true, &imds.url());
    let request = get("/metadata/instance/compute?api-version=2021-02-01&format=json")
        .header("Metadata", "true")
        .header("X-IDENTITY-HEADER", IDENTITY_HEADER)
        .header("Authorization", "Bearer secret")
        .body(Body::empty())
        .unwrap();
    let (status, response, body) = send(&router, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["path"], "/metadata/instance/compute");
    assert_eq!(body["query"], "api-version=2021-02-01&format=json");
    assert_eq!(body["metadata"], "true");
    assert_eq!(
        body["x-identity-header"], "",
        "the identity header must not leave the pod"
    );
    assert_eq!(body["authorization"], "");
    assert!(
        response.headers().get("set-cookie").is_none(),
        "only safe response headers are copied"
    );
    assert_eq!(imds.hits(), 1);
}

#[tokio::test]
async fn forwarding_refuses_identity_traversal_and_other_paths() {
    let recorder = Recorder::default();
    let imds = ImdsStandIn::start().await;
    let router = support::router(&recorder, false, &imds.url());
    for uri in [
        "/metadata/identity/info",
        "/metadata/Identity/oauth2/token?resource=x",
        "/metadata/../identity/oauth2/token",
        "/metadata/%2e%2e/x",
        "/metadata/a%2fb",
        "/",
        "/other/metadata/instance",
        "/msi/token",
    ] {
        let (status, _, body) = send(
            &router,
            get(uri).header("Metadata", "true").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
        assert_eq!(body["error"], "not_found", "{uri}");
    }
    assert_eq!(imds.hits(), 0);
}

#[tokio::test]
async fn forwarding_does_not_follow_redirects_and_reports_imds_down() {
    let recorder = Recorder::default();
    let imds = ImdsStandIn::start().await;
    let router = support::router(&recorder, false, &imds.url());
    let (status, response, _) = send(
        &router,
        get("/metadata/redirect")
            .header("Metadata", "true")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FOUND);
    assert!(response.headers().get("location").is_none());
    assert_eq!(imds.hits(), 1, "the redirect must not be followed");

    let router = support::router(&recorder, false, CLOSED);
    let (status, _, body) = send(
        &router,
        get("/metadata/instance")
            .header("Metadata", "true")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"], "bad_gateway");
    assert!(description(&body).contains("instance metadata service"), "{body}");
}

#[tokio::test]
async fn readyz_answers_ok() {
    let router = support::router(&Recorder::default(), false, CLOSED);
    let response = tower::ServiceExt::oneshot(router, get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 64).await.unwrap();
    assert_eq!(&body[..], b"ok");
}
