//! azure-wi's ManagedIdentityCredential (and ClientAssertionCredential) vs azure_identity's
//! ManagedIdentityCredential, all against one local App Service-style endpoint on the same runtime:
//! cached `get_token` cost (nanoseconds per call, thread CPU time and wall time, median/min/max of
//! 7 interleaved rounds; the ratio is per round, in percent; called on the concrete types, through
//! `Arc<dyn TokenCredential>` of each library, and ours through `azure_core`'s trait as the Azure
//! SDK's clients call it), cold acquisition (a new
//! credential and its first token, median of 200), and the wire requests that 1,000 concurrent
//! callers of one cold credential cause. Prints one JSON object.

use azure_wi_test_support::recording_server as test_server;

use std::{future::Future, time::Instant};

use test_server::{Reply, TestServer};

const SCOPE: &str = "https://vault.azure.net/.default";
const CALLS: u32 = 200_000;

const COLD_CALLS: usize = 200;
const ROUNDS: usize = 7;
const CONCURRENT_CALLERS: usize = 1000;

/// Median, min and max of `runs` as a JSON object (rounded to 0.1).
fn stats(mut runs: Vec<f64>) -> serde_json::Value {
    runs.sort_by(f64::total_cmp);
    let r = |v: f64| (v * 10.0).round() / 10.0;
    serde_json::json!({"median": r(runs[runs.len() / 2]), "min": r(runs[0]), "max": r(runs[runs.len() - 1])})
}

/// CPU time of the calling thread (immune to time slices lost to other processes on a loaded
/// machine; the cached path never leaves the thread).
fn thread_cpu_ns() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

/// One run of CALLS cached calls: (wall ns per call, thread CPU ns per call).
async fn cached_run<F, Fut>(f: &F) -> (f64, f64)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let (start, cpu) = (Instant::now(), thread_cpu_ns());
    for _ in 0..CALLS {
        f().await;
    }
    let calls = f64::from(CALLS);
    (
        start.elapsed().as_nanos() as f64 / calls,
        (thread_cpu_ns() - cpu) / calls,
    )
}

/// Microseconds per cold acquisition (a new credential, its first token over the wire).
async fn cold_us<F, Fut>(f: F) -> serde_json::Value
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut runs = Vec::new();
    for _ in 0..COLD_CALLS {
        let start = Instant::now();
        f().await;
        runs.push(start.elapsed().as_nanos() as f64 / 1000.0);
    }
    stats(runs)
}

/// Wire requests caused by CONCURRENT_CALLERS tasks calling one cold credential at once.
macro_rules! concurrent_requests {
    ($server:expr, $make:expr, $trait:path) => {{
        let credential = $make;
        let before = $server.request_count();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CONCURRENT_CALLERS {
            let credential = credential.clone();
            tasks.spawn(async move {
                use $trait;
                credential.get_token(&[SCOPE], None).await.map(|_| ()).is_ok()
            });
        }
        let mut ok = 0;
        while let Some(result) = tasks.join_next().await {
            ok += usize::from(result.unwrap_or(false));
        }
        serde_json::json!({"callers": CONCURRENT_CALLERS, "succeeded": ok,
            "wire_requests": $server.request_count() - before})
    }};
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
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
        theirs
            .get_token(&[SCOPE], None)
            .await
            .expect("azure_identity token");
    }
    let theirs_cached = || async {
        use azure_core::credentials::TokenCredential;
        theirs.get_token(&[SCOPE], None).await.unwrap();
    };

    // azure-wi
    use azure_wi_identity::TokenCredential;
    let ours = azure_wi_identity::ManagedIdentityCredential::new(None).expect("azure-wi MI");
    ours.get_token(&[SCOPE], None).await.expect("azure-wi token");
    let ours_cached = || async {
        ours.get_token(&[SCOPE], None).await.unwrap();
    };

    let entra = TestServer::with_handler(|_| Reply::token("entra-token", 3599)).await;
    let options = azure_wi_identity::ClientAssertionCredentialOptions {
        authority_host: Some(entra.url()),
        ..Default::default()
    };
    let assertion = azure_wi_identity::ClientAssertionCredential::with_callback(
        "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "00000000-0000-0000-0000-0000000000c1",
        || async { Ok(azure_wi_identity::Secret::new("assertion")) },
        Some(options),
    )
    .unwrap();
    assertion.get_token(&[SCOPE], None).await.unwrap();
    let assertion_cached = || async {
        assertion.get_token(&[SCOPE], None).await.unwrap();
    };
    // The way SDK clients hold credentials: behind `Arc<dyn …TokenCredential>`; and ours handed
    // to the Azure SDK (azure-wi's `azure-core` feature).
    let theirs_dyn: std::sync::Arc<dyn azure_core::credentials::TokenCredential> = theirs.clone();
    let theirs_dyn_cached = || async {
        theirs_dyn.get_token(&[SCOPE], None).await.unwrap();
    };
    let ours_dyn: std::sync::Arc<dyn azure_wi_identity::TokenCredential> = ours.clone();
    let ours_dyn_cached = || async {
        ours_dyn.get_token(&[SCOPE], None).await.unwrap();
    };
    let ours_core: std::sync::Arc<dyn azure_core::credentials::TokenCredential> = ours.clone();
    let ours_core_cached = || async {
        ours_core.get_token(&[SCOPE], None).await.unwrap();
    };

    // Interleaved rounds, so that each round compares them under the same machine load.
    let (mut theirs_wall, mut theirs_cpu, mut ours_wall, mut ours_cpu) = (vec![], vec![], vec![], vec![]);
    let (mut assertion_wall, mut assertion_cpu, mut ratios) = (vec![], vec![], vec![]);
    let (mut theirs_dyn_cpu, mut ours_dyn_cpu, mut ours_core_cpu, mut dyn_ratios) =
        (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let (_, theirs_c) = cached_run(&theirs_dyn_cached).await;
        let (_, ours_c) = cached_run(&ours_dyn_cached).await;
        let (_, core_c) = cached_run(&ours_core_cached).await;
        theirs_dyn_cpu.push(theirs_c);
        ours_dyn_cpu.push(ours_c);
        ours_core_cpu.push(core_c);
        dyn_ratios.push(ours_c / theirs_c);
        let (w, c) = cached_run(&theirs_cached).await;
        theirs_wall.push(w);
        theirs_cpu.push(c);
        let (w, c2) = cached_run(&ours_cached).await;
        ours_wall.push(w);
        ours_cpu.push(c2);
        ratios.push(c2 / c);
        let (w, c) = cached_run(&assertion_cached).await;
        assertion_wall.push(w);
        assertion_cpu.push(c);
    }

    let theirs_cold = cold_us(|| async {
        use azure_core::credentials::TokenCredential;
        let credential = azure_identity::ManagedIdentityCredential::new(None).unwrap();
        credential.get_token(&[SCOPE], None).await.unwrap();
    })
    .await;
    let ours_cold = cold_us(|| async {
        let credential = azure_wi_identity::ManagedIdentityCredential::new(None).unwrap();
        credential.get_token(&[SCOPE], None).await.unwrap();
    })
    .await;
    let theirs_concurrent = concurrent_requests!(
        server,
        azure_identity::ManagedIdentityCredential::new(None).unwrap(),
        azure_core::credentials::TokenCredential
    );
    let ours_concurrent = concurrent_requests!(
        server,
        azure_wi_identity::ManagedIdentityCredential::new(None).unwrap(),
        azure_wi_identity::TokenCredential
    );

    println!(
        "{}",
        serde_json::json!({
            "azure_identity_managed_identity_cached_cpu_ns": stats(theirs_cpu),
            "azure_wi_managed_identity_cached_cpu_ns": stats(ours_cpu),
            "azure_wi_client_assertion_cached_cpu_ns": stats(assertion_cpu),
            "cached_cpu_ratio_azure_wi_over_azure_identity": stats(ratios.iter().map(|r| r * 100.0).collect()),
            "azure_identity_managed_identity_dyn_cached_cpu_ns": stats(theirs_dyn_cpu),
            "azure_wi_managed_identity_dyn_cached_cpu_ns": stats(ours_dyn_cpu),
            "cached_cpu_ratio_dyn_azure_wi_over_azure_identity": stats(dyn_ratios.iter().map(|r| r * 100.0).collect()),
            "azure_wi_managed_identity_as_azure_core_credential_cached_cpu_ns": stats(ours_core_cpu),
            "azure_identity_managed_identity_cached_wall_ns": stats(theirs_wall),
            "azure_wi_managed_identity_cached_wall_ns": stats(ours_wall),
            "azure_identity_managed_identity_cold_us": theirs_cold,
            "azure_wi_managed_identity_cold_us": ours_cold,
            "azure_identity_1000_concurrent_cold_callers": theirs_concurrent,
            "azure_wi_1000_concurrent_cold_callers": ours_concurrent,
            "azure_wi_client_assertion_cached_wall_ns": stats(assertion_wall),
            "rounds": ROUNDS,
            "cached_calls_per_run": CALLS,
            "cold_acquisitions": COLD_CALLS,
        })
    );
}
