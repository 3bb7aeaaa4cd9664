//! `ClientOptions` seen from a user's crate: a caller's transport carries the requests to
//! Microsoft Entra ID and the Azure Pipelines OIDC endpoint (every options struct passes it on),
//! the library's bounds stay on top of it, and the retry options set the count and the schedule.
//! The endpoints are the shared recording server; retry schedules run on tokio's paused clock.

use std::{path::Path, sync::Arc, time::Duration};

use azure_wi_identity::{
    AzurePipelinesCredential, AzurePipelinesCredentialOptions, ClientAssertionCredential,
    ClientAssertionCredentialOptions, ClientOptions, Env, ErrorKind, ExponentialRetryOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, ManagedIdentitySource, PlatformCredential,
    PlatformCredentialOptions, RequestTimeouts, RetryOptions, Secret, TokenCredential, Transport,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
    reqwest::header::{HeaderMap, HeaderValue},
};
use azure_wi_test_support::recording_server::{RecordedRequest, Reply, Stream, TestServer};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "00000000-0000-0000-0000-000000000001";
const SCOPE: &str = "https://vault.azure.net/.default";
const MARK: &str = "x-caller-transport";

/// A caller's transport: the library's defaults plus a default header the servers can see.
fn marked_transport() -> Transport {
    let mut headers = HeaderMap::new();
    headers.insert(MARK, HeaderValue::from_static("yes"));
    Transport::from_builder(Transport::default_builder().unwrap().default_headers(headers)).unwrap()
}

fn with_transport() -> ClientOptions {
    ClientOptions {
        transport: Some(marked_transport()),
        ..Default::default()
    }
}

fn with_retry(retry: RetryOptions) -> ClientOptions {
    ClientOptions {
        retry,
        ..Default::default()
    }
}

fn marked(r: &RecordedRequest) -> bool {
    r.header(MARK) == Some("yes")
}

fn assertion_credential(entra: &TestServer, client_options: ClientOptions) -> Arc<ClientAssertionCredential> {
    assertion_credential_with(entra, client_options, RequestTimeouts::default())
}

fn assertion_credential_with(
    entra: &TestServer,
    client_options: ClientOptions,
    timeouts: RequestTimeouts,
) -> Arc<ClientAssertionCredential> {
    ClientAssertionCredential::with_callback(
        TENANT,
        CLIENT,
        || async { Ok(Secret::new("assertion")) },
        Some(ClientAssertionCredentialOptions {
            authority_host: Some(entra.url()),
            env: Env::from_pairs::<&str, &str>([]),
            timeouts,
            client_options,
            ..Default::default()
        }),
    )
    .unwrap()
}

/// The variables the webhook injects, pointing at `entra`, with a token file in `dir`.
fn webhook_env(dir: &Path, entra: &TestServer) -> Vec<(String, String)> {
    let file = dir.join("token");
    std::fs::write(&file, "service-account-token").unwrap();
    vec![
        ("AZURE_TENANT_ID".into(), TENANT.into()),
        ("AZURE_CLIENT_ID".into(), CLIENT.into()),
        ("AZURE_FEDERATED_TOKEN_FILE".into(), file.display().to_string()),
        ("AZURE_AUTHORITY_HOST".into(), entra.url()),
    ]
}

fn gaps(server: &TestServer) -> Vec<Duration> {
    let r = server.requests();
    r.windows(2).map(|w| w[1].at - w[0].at).collect()
}

fn secs<const N: usize>(s: [f64; N]) -> [Duration; N] {
    s.map(Duration::from_secs_f64)
}

fn imds_token(token: &str) -> Reply {
    Reply::json(
        200,
        serde_json::json!({"access_token": token, "expires_in": "3599", "expires_on": "1", "resource": "https://vault.azure.net", "token_type": "Bearer"}),
    )
}

#[tokio::test]
async fn a_caller_transport_carries_the_exchange() {
    let entra = TestServer::scripted([Reply::token("t1", 3599), Reply::token("t2", 3599)]).await;
    let token = assertion_credential(&entra, with_transport())
        .get_token(&[SCOPE], None)
        .await
        .unwrap();
    assert_eq!(token.token.secret(), "t1");
    // Without one, the library's own client: no such header.
    assertion_credential(&entra, ClientOptions::default())
        .get_token(&[SCOPE], None)
        .await
        .unwrap();
    let requests = entra.requests();
    assert_eq!(requests.len(), 2);
    assert!(marked(&requests[0]) && !marked(&requests[1]), "{requests:?}");
    // The library's request is unchanged on the caller's client.
    for r in &requests {
        assert_eq!(r.path(), format!("/{TENANT}/oauth2/v2.0/token"));
        assert_eq!(
            r.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert!(r.header("x-ms-client-request-id").is_some());
    }
}

#[tokio::test]
async fn every_options_struct_passes_the_transport_on() {
    let dir = tempfile::tempdir().unwrap();

    // Workload identity, through its nested credential_options.
    let entra = TestServer::scripted([Reply::token("wi", 3599)]).await;
    let env = Env::from_pairs(webhook_env(dir.path(), &entra));
    let credential = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            env,
            client_options: with_transport(),
            ..Default::default()
        },
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(
        credential.get_token(&[SCOPE], None).await.unwrap().token.secret(),
        "wi"
    );
    assert!(marked(&entra.requests()[0]), "workload identity");

    // The platform chain, to its workload identity branch.
    let entra = TestServer::scripted([Reply::token("platform", 3599)]).await;
    let credential = PlatformCredential::new(Some(PlatformCredentialOptions {
        env: Env::from_pairs(webhook_env(dir.path(), &entra)),
        client_options: with_transport(),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(
        credential.get_token(&[SCOPE], None).await.unwrap().token.secret(),
        "platform"
    );
    assert!(marked(&entra.requests()[0]), "platform credential");

    // Managed identity's workload-identity branch.
    let entra = TestServer::scripted([Reply::token("mi-wi", 3599)]).await;
    let credential = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        env: Env::from_pairs(webhook_env(dir.path(), &entra)),
        client_options: with_transport(),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(credential.source(), ManagedIdentitySource::WorkloadIdentity);
    assert_eq!(
        credential.get_token(&[SCOPE], None).await.unwrap().token.secret(),
        "mi-wi"
    );
    assert!(
        marked(&entra.requests()[0]),
        "managed identity (workload identity)"
    );

    // Azure Pipelines: the OIDC request and the exchange.
    let oidc = TestServer::scripted([Reply::json(200, r#"{"oidcToken":"oidc-jwt"}"#)]).await;
    let entra = TestServer::scripted([Reply::token("pipelines", 3599)]).await;
    let credential = AzurePipelinesCredential::new(
        TENANT,
        CLIENT,
        "00000000-0000-0000-0000-00000000c0de",
        Secret::new("system-access-token"),
        Some(AzurePipelinesCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                authority_host: Some(entra.url()),
                env: Env::from_pairs([("SYSTEM_OIDCREQUESTURI", oidc.url_for("/oidctoken"))]),
                client_options: with_transport(),
                ..Default::default()
            },
        }),
    )
    .unwrap();
    assert_eq!(
        credential.get_token(&[SCOPE], None).await.unwrap().token.secret(),
        "pipelines"
    );
    assert!(marked(&oidc.requests()[0]), "the Pipelines OIDC request");
    assert!(marked(&entra.requests()[0]), "the Pipelines exchange");
    assert_eq!(
        entra.requests()[0]
            .form()
            .iter()
            .find(|(k, _)| k == "client_assertion")
            .unwrap()
            .1,
        "oidc-jwt"
    );

    // The metadata endpoints keep the library's client (never a caller's proxy), as documented.
    let imds = TestServer::scripted([imds_token("imds")]).await;
    let credential = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        env: Env::from_pairs([("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.url())]),
        client_options: with_transport(),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(
        credential.get_token(&[SCOPE], None).await.unwrap().token.secret(),
        "imds"
    );
    assert!(!marked(&imds.requests()[0]), "IMDS uses the library's client");
}

#[tokio::test]
async fn a_caller_transport_never_follows_a_redirect() {
    // The caller asked for redirects; a redirected exchange would resend the assertion (307).
    let elsewhere = TestServer::scripted([Reply::token("stolen", 3599)]).await;
    let entra =
        TestServer::scripted([Reply::status(307).header("location", &elsewhere.url_for("/steal"))]).await;
    let builder = Transport::default_builder()
        .unwrap()
        .redirect(azure_wi_identity::reqwest::redirect::Policy::limited(10));
    let options = ClientOptions {
        transport: Some(Transport::from_builder(builder).unwrap()),
        retry: RetryOptions::none(),
    };
    let e = assertion_credential(&entra, options)
        .get_token(&[SCOPE], None)
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.status()),
        (ErrorKind::AuthenticationFailed, Some(307)),
        "{e}"
    );
    assert_eq!(entra.request_count(), 1);
    assert_eq!(
        elsewhere.request_count(),
        0,
        "the assertion went to the redirect's target"
    );
}

/// The library's deadline and read timeout bound a caller's client that has none.
#[tokio::test(start_paused = true)]
async fn the_deadline_holds_with_a_caller_transport() {
    let entra = TestServer::with_handler(|_| Reply::status(200).stream(Stream::Silent)).await;
    let timeouts = RequestTimeouts {
        deadline: Some(Duration::from_secs(8)),
        read_timeout: Some(Duration::from_secs(2)),
    };
    let started = tokio::time::Instant::now();
    let e = assertion_credential_with(&entra, with_transport(), timeouts)
        .get_token(&[SCOPE], None)
        .await
        .unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(8));
    assert!(e.to_string().contains("gave up after 8 s"), "{e}");
    assert!(entra.requests().iter().all(marked));
}

#[tokio::test]
async fn the_body_bound_holds_with_a_caller_transport() {
    let huge = Reply::token("t", 3599).stream(Stream::Endless);
    let entra = TestServer::scripted([huge]).await;
    let e = assertion_credential(&entra, with_transport())
        .get_token(&[SCOPE], None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("larger than 65536 bytes"), "{e}");
    assert!(marked(&entra.requests()[0]));
}

#[tokio::test(start_paused = true)]
async fn no_retries_means_one_request_then_the_error() {
    let zero = RetryOptions::exponential(ExponentialRetryOptions {
        max_retries: 0,
        ..Default::default()
    });
    for retry in [zero, RetryOptions::none()] {
        let entra = TestServer::scripted([Reply::json(503, "{}"), Reply::token("t", 3599)]).await;
        let e = assertion_credential(&entra, with_retry(retry.clone()))
            .get_token(&[SCOPE], None)
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(503), "{retry:?}: {e}");
        assert_eq!(entra.request_count(), 1, "{retry:?}");
    }
    // The same script with the default options is retried (the test tells the two apart).
    let entra = TestServer::scripted([Reply::json(503, "{}"), Reply::token("t", 3599)]).await;
    assertion_credential(&entra, ClientOptions::default())
        .get_token(&[SCOPE], None)
        .await
        .unwrap();
    assert_eq!(entra.request_count(), 2);

    // IMDS, whose own schedule retries a 500 five times.
    let imds = TestServer::scripted([Reply::json(500, "{}"), imds_token("t")]).await;
    let e = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        env: Env::from_pairs([("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.url())]),
        client_options: with_retry(RetryOptions::none()),
        ..Default::default()
    }))
    .unwrap()
    .get_token(&[SCOPE], None)
    .await
    .unwrap_err();
    assert_eq!(e.status(), Some(500), "{e}");
    assert_eq!(imds.request_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_custom_schedule_is_followed() {
    let retry = RetryOptions::exponential(ExponentialRetryOptions {
        initial_delay: Duration::from_secs(2),
        max_retries: 3,
        max_delay: Duration::from_secs(5),
    });
    let busy = || Reply::json(503, "{}");
    let entra = TestServer::scripted([busy(), busy(), busy(), Reply::token("t", 3599)]).await;
    let token = assertion_credential(&entra, with_retry(retry.clone()))
        .get_token(&[SCOPE], None)
        .await
        .unwrap();
    assert_eq!(token.token.secret(), "t");
    assert_eq!(gaps(&entra), secs([2.0, 4.0, 5.0]));

    // Exhausted: the last answer is the error.
    let entra = TestServer::scripted([busy(), busy(), busy(), busy(), Reply::token("t", 3599)]).await;
    let e = assertion_credential(&entra, with_retry(retry.clone()))
        .get_token(&[SCOPE], None)
        .await
        .unwrap_err();
    assert_eq!((e.status(), entra.request_count()), (Some(503), 4), "{e}");

    // Set explicitly, it wins over IMDS's own schedule (0, 5, 10 s after a 410).
    let gone = || Reply::json(410, "{}");
    let imds = TestServer::scripted([gone(), gone(), imds_token("imds")]).await;
    let token = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        env: Env::from_pairs([("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.url())]),
        client_options: with_retry(retry),
        ..Default::default()
    }))
    .unwrap()
    .get_token(&[SCOPE], None)
    .await
    .unwrap();
    assert_eq!(token.token.secret(), "imds");
    assert_eq!(gaps(&imds), secs([2.0, 4.0]));
}
