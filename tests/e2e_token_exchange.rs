//! End to end: a service-account token minted by a real kube-apiserver (TokenRequest API, audience
//! `api://AzureADTokenExchange`) is exchanged for an access token at a local Microsoft Entra
//! stand-in, which verifies it against the API server's OIDC discovery document and JWKS.

#[path = "e2e/mod.rs"]
mod e2e;

use e2e::{
    entra::{Entra, FederatedCredential},
    kube_helpers::{create_service_account, service_account_token},
    testbed::{ENTRA_AUDIENCE, TestBed},
};
use serde_json::Value;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "5b1f1d4c-0a4e-4c6b-9d8e-000000000e2e";
const SCOPE: &str = "https://vault.azure.net/.default";

/// A namespace with ServiceAccount `app`, and a stand-in that trusts exactly that account.
async fn setup(prefix: &str) -> (&'static TestBed, kube::Client, String, Entra) {
    let bed = TestBed::shared().await;
    let client = bed.client().await;
    let ns = bed.namespace(prefix).await;
    create_service_account(&client, &ns, "app", &[]).await;
    create_service_account(&client, &ns, "other", &[]).await;
    let entra = Entra::start(
        bed.pki(),
        vec![FederatedCredential {
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            issuer: bed.url.clone(),
            subject: format!("system:serviceaccount:{ns}:app"),
            audience: ENTRA_AUDIENCE.into(),
        }],
    )
    .await;
    (bed, client, ns, entra)
}

/// Posts a client-assertion exchange exactly as the credential library does; returns status and body.
async fn exchange(bed: &TestBed, entra: &Entra, client_id: &str, assertion: &str) -> (u16, Value) {
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(bed.ca_pem.as_bytes()).expect("ca")])
        .build()
        .expect("http client");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_assertion", assertion)
        .append_pair(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        )
        .append_pair("client_id", client_id)
        .append_pair("grant_type", "client_credentials")
        .append_pair("scope", SCOPE)
        .finish();
    let response = http
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", entra.authority))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("POST to the Entra stand-in");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn aadsts(body: &Value) -> u64 {
    body["error_codes"][0]
        .as_u64()
        .unwrap_or_else(|| panic!("no error_codes in {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn service_account_token_is_exchanged_for_an_access_token() {
    let (bed, client, ns, entra) = setup("tx-ok").await;
    let token = service_account_token(&client, &ns, "app", ENTRA_AUDIENCE).await;
    let (status, body) = exchange(bed, &entra, CLIENT, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0), "{body}");
    let issued = entra.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(body["access_token"], issued[0].access_token.as_str());
    assert_eq!(
        (issued[0].client_id.as_str(), issued[0].scope.as_str()),
        (CLIENT, SCOPE)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_of_another_service_account_is_refused() {
    let (bed, client, ns, entra) = setup("tx-subject").await;
    let token = service_account_token(&client, &ns, "other", ENTRA_AUDIENCE).await;
    let (status, body) = exchange(bed, &entra, CLIENT, &token).await;
    assert_eq!((status, aadsts(&body)), (400, 700213), "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains(&format!("system:serviceaccount:{ns}:other")),
        "{description}"
    );
    assert!(entra.issued().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn token_for_another_audience_is_refused() {
    let (bed, client, ns, entra) = setup("tx-audience").await;
    let token = service_account_token(&client, &ns, "app", "api://SomethingElse").await;
    let (status, body) = exchange(bed, &entra, CLIENT, &token).await;
    assert_eq!((status, aadsts(&body)), (400, 700212), "{body}");
    assert!(entra.issued().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn token_with_a_forged_signature_is_refused() {
    let (bed, client, ns, entra) = setup("tx-forged").await;
    let token = service_account_token(&client, &ns, "app", ENTRA_AUDIENCE).await;
    // Same header and claims, the signature of a different (genuine) token.
    let other = service_account_token(&client, &ns, "other", ENTRA_AUDIENCE).await;
    let forged = format!(
        "{}.{}",
        token.rsplit_once('.').expect("jwt").0,
        other.rsplit_once('.').expect("jwt").1
    );
    let (status, body) = exchange(bed, &entra, CLIENT, &forged).await;
    assert_eq!((status, aadsts(&body)), (401, 700027), "{body}");
    // The genuine token still works: the refusal was about the signature.
    let (status, body) = exchange(bed, &entra, CLIENT, &token).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_application_is_refused() {
    let (bed, client, ns, entra) = setup("tx-app").await;
    let token = service_account_token(&client, &ns, "app", ENTRA_AUDIENCE).await;
    let (status, body) = exchange(bed, &entra, "00000000-0000-0000-0000-000000000bad", &token).await;
    assert_eq!((status, aadsts(&body)), (400, 700016), "{body}");
}
