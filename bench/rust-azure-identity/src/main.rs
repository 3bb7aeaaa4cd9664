//! Cached `get_token` cost: azure-wi's ManagedIdentityCredential and ClientAssertionCredential
//! vs azure_identity's ManagedIdentityCredential, all against one local App Service-style endpoint
//! on the same runtime. Prints one JSON object (nanoseconds per call, best of 5 runs).

#[path = "../../../src/credential/test_server.rs"]
mod test_server;

use std::{future::Future, time::Instant};

use test_server::{Reply, TestServer};

const SCOPE: &str = "https://vault.azure.net/.default";
const CALLS: u32 = 200_000;

async fn best_ns<F, Fut>(f: F) -> f64
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..CALLS {
            f().await;
        }
        best = best.min(start.elapsed().as_nanos() as f64 / f64::from(CALLS));
    }
    (best * 10.0).round() / 10.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let server = TestServer::with_handler(|_| {
        let expires_on = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        Reply::json(
            200,
            serde_json::json!({"access_token": "bench-token", "expires_on": expires_on.to_string(),
                "resource": "https://vault.azure.net", "token_type": "Bearer", "expires_in": "3599"}),
        )
    })
    .await;
    let endpoint = format!("{}/msi/token", server.url());
    std::env::set_var("IDENTITY_ENDPOINT", &endpoint);
    std::env::set_var("IDENTITY_HEADER", "bench-header");

    // azure_identity
    let theirs = azure_identity::ManagedIdentityCredential::new(None).expect("azure_identity MI");
    {
        use azure_core::credentials::TokenCredential;
        theirs.get_token(&[SCOPE], None).await.expect("azure_identity token");
    }
    let theirs_ns = best_ns(|| async {
        use azure_core::credentials::TokenCredential;
        theirs.get_token(&[SCOPE], None).await.unwrap();
    })
    .await;

    // azure-wi
    use azure_wi::credential::TokenCredential;
    let ours = azure_wi::credential::ManagedIdentityCredential::new(None).expect("azure-wi MI");
    ours.get_token(&[SCOPE], None).await.expect("azure-wi token");
    let ours_ns = best_ns(|| async {
        ours.get_token(&[SCOPE], None).await.unwrap();
    })
    .await;

    let entra = TestServer::with_handler(|_| Reply::token("entra-token", 3599)).await;
    let options = azure_wi::credential::ClientAssertionCredentialOptions {
        authority_host: Some(entra.url()),
        ..Default::default()
    };
    let assertion = azure_wi::credential::ClientAssertionCredential::with_callback(
        "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "00000000-0000-0000-0000-0000000000c1",
        || async { Ok(azure_wi::credential::Secret::new("assertion")) },
        Some(options),
    )
    .unwrap();
    assertion.get_token(&[SCOPE], None).await.unwrap();
    let assertion_ns = best_ns(|| async {
        assertion.get_token(&[SCOPE], None).await.unwrap();
    })
    .await;

    println!(
        "{}",
        serde_json::json!({
            "azure_identity_managed_identity_cached_ns": theirs_ns,
            "azure_wi_managed_identity_cached_ns": ours_ns,
            "azure_wi_client_assertion_cached_ns": assertion_ns,
            "calls_per_run": CALLS,
        })
    );
}
