//! Criterion benchmarks of the credential library: a cached `get_token` (the cost every
//! outgoing request pays) and a cold acquisition against a local Microsoft Entra stand-in.
//!
//! `cargo bench --bench credential`

use azure_wi_test_support::recording_server as test_server;

use std::sync::Arc;

use azure_wi_identity::{
    ClientAssertionCredential, ClientAssertionCredentialOptions, Env, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, Secret, TokenCredential,
};
use criterion::{Criterion, criterion_group, criterion_main};
use test_server::{Reply, TestServer};

const SCOPE: &str = "https://vault.azure.net/.default";

fn credential(authority: &str) -> Arc<ClientAssertionCredential> {
    let options = ClientAssertionCredentialOptions {
        authority_host: Some(authority.to_owned()),
        env: Env::from_pairs::<&str, &str>([]),
        ..Default::default()
    };
    ClientAssertionCredential::with_callback(
        "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "00000000-0000-0000-0000-0000000000c1",
        || async { Ok(Secret::new("eyJhbGciOiJSUzI1NiJ9.assertion.sig")) },
        Some(options),
    )
    .expect("valid configuration")
}

/// One cached call, through `&dyn TokenCredential` as SDK clients make it. A cache hit has
/// nothing to wait for, so its future is polled once here instead of through an executor (whose
/// per-iteration `block_on` would cost more than the call itself); a miss fails the benchmark.
fn cached_call(credential: &dyn TokenCredential) -> azure_wi_identity::AccessToken {
    let mut future = credential.get_token(&[SCOPE], None);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(token) => token.unwrap(),
        std::task::Poll::Pending => {
            panic!("the token is not cached: a cache hit completes on its first poll")
        }
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::with_handler(|_| Reply::token("bench-token", 3599)));
    let url = server.url();

    let cached = credential(&url);
    rt.block_on(cached.get_token(&[SCOPE], None)).unwrap();
    c.bench_function("get_token/cached", |b| b.iter(|| cached_call(&*cached)));

    c.bench_function("get_token/cold (local Entra, keep-alive)", |b| {
        b.to_async(&rt)
            .iter(|| async { credential(&url).get_token(&[SCOPE], None).await.unwrap() })
    });

    // Managed identity through the App Service source (the same local endpoint shape the Rust
    // azure_identity crate and Python azure-identity can be pointed at).
    let app_service = rt.block_on(TestServer::with_handler(|_| {
        let expires_on = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        Reply::json(
            200,
            serde_json::json!({"access_token": "mi-token", "expires_on": expires_on.to_string(),
                "resource": "https://vault.azure.net", "token_type": "Bearer"}),
        )
    }));
    let env = Env::from_pairs([
        ("IDENTITY_ENDPOINT", format!("{}/msi/token", app_service.url())),
        ("IDENTITY_HEADER", "bench-header".to_owned()),
    ]);
    let mi = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        env,
        ..Default::default()
    }))
    .expect("App Service source");
    rt.block_on(mi.get_token(&[SCOPE], None)).unwrap();
    c.bench_function("managed_identity_app_service/cached", |b| {
        b.iter(|| cached_call(&*mi))
    });
    drop((server, app_service));
}

criterion_group!(credential_benches, benches);
criterion_main!(credential_benches);
