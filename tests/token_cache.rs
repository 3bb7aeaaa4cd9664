//! The token cache as workloads link it (the library's normal build on the real clock; the unit
//! tests drive tokio's paused clock instead): a cache hit completes on its first poll through
//! every credential and through `Arc<dyn TokenCredential>`, the refresh time is honoured on the
//! real clock, and keys never mix.

use azure_wi_test_support::recording_server as test_server;

use std::{
    future::Future,
    path::Path,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use azure_wi_identity::{
    ClientAssertionCredential, ClientAssertionCredentialOptions, Env, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, PlatformCredential, PlatformCredentialOptions, Secret, TokenCredential,
    TokenRequestOptions, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use serde_json::json;
use test_server::{Reply, TestServer};

const VAULT: &str = "https://vault.azure.net/.default";
const STORAGE: &str = "https://storage.azure.com/.default";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "00000000-0000-0000-0000-0000000000c1";

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An Entra stand-in answering `token-N` (N counts from 1) living `expires_in` seconds, after
/// checking the exchange's required fields.
async fn entra(expires_in: u64) -> TestServer {
    let n = AtomicUsize::new(0);
    TestServer::with_handler(move |request| {
        let form = request.form();
        let field = |k: &str| form.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        if field("grant_type").as_deref() != Some("client_credentials")
            || field("client_assertion").is_none()
            || field("client_id").is_none()
        {
            return Reply::json(400, json!({"error": "invalid_request"}));
        }
        let n = n.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::token(&format!("token-{n}"), expires_in)
    })
    .await
}

fn assertion_credential(entra: &TestServer) -> Arc<ClientAssertionCredential> {
    install_crypto();
    ClientAssertionCredential::with_callback(
        TENANT,
        CLIENT,
        || async { Ok(Secret::new("assertion")) },
        Some(ClientAssertionCredentialOptions {
            authority_host: Some(entra.url()),
            env: Env::from_pairs::<&str, &str>([]),
            ..Default::default()
        }),
    )
    .unwrap()
}

fn token_file(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("token");
    std::fs::write(&file, "service-account-jwt").unwrap();
    file
}

async fn secret(credential: &dyn TokenCredential, scope: &str) -> String {
    credential
        .get_token(&[scope], None)
        .await
        .unwrap()
        .token
        .secret()
        .to_owned()
}

/// Polls `future` once, then awaits the rest: whether it completed at once (a cache hit has
/// nothing to wait for; a request on the wire has) and its output.
async fn first_poll<F: Future + Unpin>(mut future: F) -> (bool, F::Output) {
    match Pin::new(&mut future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => (true, output),
        Poll::Pending => (false, future.await),
    }
}

#[tokio::test]
async fn a_cache_hit_completes_on_its_first_poll_through_every_credential() {
    let entra = entra(3599).await;
    let dir = tempfile::tempdir().unwrap();
    let file = token_file(dir.path());
    let workload = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT.into()),
        token_file_path: Some(file.clone()),
        credential_options: ClientAssertionCredentialOptions {
            authority_host: Some(entra.url()),
            env: Env::from_pairs::<&str, &str>([]),
            ..Default::default()
        },
        ..Default::default()
    }))
    .unwrap();
    let app_service = TestServer::with_handler(|_| {
        let expires_on = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        Reply::json(
            200,
            json!({"access_token": "mi-token", "expires_on": expires_on.to_string(), "token_type": "Bearer"}),
        )
    })
    .await;
    let managed = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        env: Env::from_pairs([
            ("IDENTITY_ENDPOINT", format!("{}/msi/token", app_service.url())),
            ("IDENTITY_HEADER", "header".to_owned()),
        ]),
        ..Default::default()
    }))
    .unwrap();
    let platform = PlatformCredential::new(Some(PlatformCredentialOptions {
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT.into()),
        token_file_path: Some(file),
        authority_host: Some(entra.url()),
        env: Env::from_pairs::<&str, &str>([]),
        ..Default::default()
    }))
    .unwrap();
    let credentials: [(&str, Arc<dyn TokenCredential>); 4] = [
        ("ClientAssertionCredential", assertion_credential(&entra)),
        ("WorkloadIdentityCredential", workload),
        ("ManagedIdentityCredential", managed),
        ("PlatformCredential", platform),
    ];
    for (name, credential) in &credentials {
        let (ready, first) = first_poll(credential.get_token(&[VAULT], None)).await;
        assert!(!ready, "{name}: the first request goes to the network");
        let first = first.unwrap();
        let (ready, hit) = first_poll(credential.get_token(&[VAULT], None)).await;
        assert!(ready, "{name}: a fresh cached token completes on the first poll");
        assert_eq!(hit.unwrap().token, first.token, "{name}");
        // Claims always go to the network, and their token replaces the cached one.
        let claims = TokenRequestOptions {
            claims: Some(r#"{"access_token":{"nbf":{"essential":true}}}"#.into()),
            ..Default::default()
        };
        let (ready, challenged) = first_poll(credential.get_token(&[VAULT], Some(claims))).await;
        assert!(!ready, "{name}: claims bypass the cache");
        challenged.unwrap();
    }
    assert_eq!(
        entra.request_count(),
        3 * 2,
        "one exchange and one claims exchange each"
    );
    assert_eq!(app_service.request_count(), 2);
}

#[tokio::test]
async fn the_refresh_time_is_honoured_on_the_real_clock() {
    // 302 s of life: the cache refreshes 300 s before expiry, so 2 s from now.
    let entra = entra(302).await;
    let credential = assertion_credential(&entra);
    assert_eq!(secret(&*credential, VAULT).await, "token-1");
    let (ready, hit) = first_poll(credential.get_token(&[VAULT], None)).await;
    assert!(ready, "fresh: answered from the cache at once");
    assert_eq!(hit.unwrap().token.secret(), "token-1");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Past the refresh time the request goes through the refresh rules, which serve the
    // still-valid token (a refresh waits 30 s after the last request to Entra, as in
    // azure-identity).
    for _ in 0..3 {
        let late = credential.get_token(&[VAULT], None).await;
        assert_eq!(late.unwrap().token.secret(), "token-1");
    }
    assert_eq!(entra.request_count(), 1, "the refresh is throttled");
}

#[tokio::test]
async fn alternating_scopes_each_get_their_own_token() {
    let entra = entra(3599).await;
    let credential = assertion_credential(&entra);
    let vault = secret(&*credential, VAULT).await;
    let storage = secret(&*credential, STORAGE).await;
    assert_ne!(vault, storage);
    for _ in 0..100 {
        assert_eq!(secret(&*credential, VAULT).await, vault);
        assert_eq!(secret(&*credential, STORAGE).await, storage);
    }
    // A tenant is part of the key too.
    let other_tenant = TokenRequestOptions {
        tenant_id: Some(TENANT.to_owned()),
        ..Default::default()
    };
    let with_tenant = credential.get_token(&[VAULT], Some(other_tenant)).await.unwrap();
    assert_ne!(with_tenant.token.secret(), vault);
    assert_eq!(secret(&*credential, VAULT).await, vault);
    assert_eq!(entra.request_count(), 3);
}
