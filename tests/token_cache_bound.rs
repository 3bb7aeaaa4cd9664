//! The token cache's bound, measured as a workload sees it: a flood of distinct 2,048-character
//! scopes (what the proxy makes of hostile `resource` values) through a real
//! `ClientAssertionCredential` leaves resident memory where it was once the cache is full.
//!
//! Its own test binary, because it reads the resident memory of the whole process; the Entra
//! stand-in (azure-wi-test-support's) answers every exchange and keeps no token it issues, so that
//! the only memory that could grow is the credential's.

use azure_wi_identity::{
    ClientAssertionCredential, ClientAssertionCredentialOptions, Env, Secret, TokenCredential,
};
use azure_wi_test_support::entra::{Entra, Trust};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const ASSERTION: &str = "assertion";

/// The process's resident memory in bytes (`/proc/self/statm`, Linux).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux)");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// The Microsoft Entra stand-in (`azure_wi_test_support::entra`) on loopback, for the tenant and
/// assertion of the credential below, keeping no token it issues.
async fn entra() -> Entra {
    let trust = Trust::Assertion {
        tenant: TENANT.into(),
        assertion: ASSERTION.into(),
    };
    let entra = Entra::start_plain(trust, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    entra.forget_issued();
    entra
}

/// The exchange number in one of the stand-in's (JWT-shaped) tokens: its `uti` claim.
fn exchange_of(token: &str) -> String {
    use base64::Engine as _;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).expect("JWT-shaped"))
        .expect("base64url");
    let claims: serde_json::Value = serde_json::from_slice(&claims).expect("JSON claims");
    claims["uti"].as_str().expect("uti").to_owned()
}

/// A scope of the longest kind the proxy makes (a 2,048-character resource + `/.default`).
fn scope(i: usize) -> String {
    format!("api://{i:08}/{}/.default", "x".repeat(2048 - 15))
}

#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_distinct_scopes_leaves_resident_memory_where_a_full_cache_put_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let entra = entra().await;
    let credential = ClientAssertionCredential::with_callback(
        TENANT,
        "00000000-0000-0000-0000-0000000000c1",
        || async { Ok(Secret::new(ASSERTION)) },
        Some(ClientAssertionCredentialOptions {
            authority_host: Some(entra.authority.clone()),
            env: Env::from_pairs::<&str, &str>([]),
            ..Default::default()
        }),
    )
    .unwrap();

    // Fill the cache (its bound is 128 keys) and warm the HTTP client.
    const WARM: usize = 500;
    const FLOOD: usize = 3_000;
    for i in 0..WARM {
        credential.get_token(&[&scope(i)], None).await.unwrap();
    }
    let full = resident_bytes();
    for i in WARM..WARM + FLOOD {
        credential.get_token(&[&scope(i)], None).await.unwrap();
    }
    let after = resident_bytes();
    let growth = after.saturating_sub(full);
    eprintln!(
        "resident: {full} bytes with a full cache, {after} bytes after {FLOOD} more distinct scopes \
         (growth {growth} bytes)"
    );
    assert_eq!(
        entra.exchanges(),
        (WARM + FLOOD) as u64,
        "one exchange per distinct scope"
    );
    // An unbounded cache keeps every scope (2 KiB) and token (about 4 KiB: the stand-in's token
    // names the 2 KiB resource): about 18 MB here.
    assert!(
        growth < 3 * 1024 * 1024,
        "resident memory grew by {growth} bytes over {FLOOD} distinct scopes"
    );
    // The most recent scope is still served from the cache.
    let last = scope(WARM + FLOOD - 1);
    let token = credential.get_token(&[&last], None).await.unwrap();
    assert_eq!(
        exchange_of(token.token.secret()),
        format!("exchange-{}", WARM + FLOOD)
    );
    assert_eq!(
        entra.exchanges(),
        (WARM + FLOOD) as u64,
        "answered from the cache"
    );
}
