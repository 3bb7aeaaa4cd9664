//! The options rule of `azure_wi_identity`, seen from another crate (as a user sees it): every
//! options struct is built with a struct literal and `..Default::default()`, so it must keep
//! public fields, `Default`, and no `#[non_exhaustive]` (this file stops compiling otherwise).
//! Each test also checks that the fields set reach the credential.

use std::path::Path;

use azure_wi_identity::{
    AzurePipelinesCredential, AzurePipelinesCredentialOptions, ClientAssertionCredential,
    ClientAssertionCredentialOptions, ClientOptions, Env, ErrorKind, ExponentialRetryOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, ManagedIdentitySource, PlatformCredential,
    PlatformCredentialOptions, RetryOptions, Secret, TokenCredential, TokenRequestOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "00000000-0000-0000-0000-000000000001";

#[test]
fn workload_identity_options_reach_the_credential() {
    let credential = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT.into()),
        token_file_path: Some("/var/run/secrets/azure/tokens/azure-identity-token".into()),
        credential_options: ClientAssertionCredentialOptions {
            env: Env::from_pairs::<&str, &str>([]),
            ..Default::default()
        },
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(
        credential.token_file_path(),
        Path::new("/var/run/secrets/azure/tokens/azure-identity-token")
    );
}

#[test]
fn is_configured_lives_on_the_credential() {
    let webhook_env = Env::from_pairs([
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", CLIENT),
        ("AZURE_FEDERATED_TOKEN_FILE", "/t"),
    ]);
    assert!(WorkloadIdentityCredential::is_configured(&webhook_env));
    assert!(!WorkloadIdentityCredential::is_configured(&Env::from_pairs([(
        "AZURE_TENANT_ID",
        TENANT
    )])));
}

#[test]
fn managed_identity_options_reach_the_credential() {
    let env = Env::from_pairs([
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token"),
        ("IDENTITY_HEADER", "h"),
    ]);
    let credential = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id: Some(UserAssignedId::ClientId(CLIENT.into())),
        env,
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(credential.source(), ManagedIdentitySource::AppService);
    // A user-assigned id is checked when the options are used: an empty one is refused.
    let e = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id: Some(UserAssignedId::ClientId(String::new())),
        ..Default::default()
    }))
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn platform_options_use_the_names_of_the_options_they_feed() {
    // The same field names as WorkloadIdentityCredentialOptions: a malformed tenant passed here
    // reaches workload identity and is refused up front.
    let e = PlatformCredential::new(Some(PlatformCredentialOptions {
        tenant_id: Some("bad/tenant?x".into()),
        client_id: Some(CLIENT.into()),
        token_file_path: Some("/t".into()),
        env: Env::from_pairs::<&str, &str>([]),
        ..Default::default()
    }))
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("bad/tenant?x"), "{e}");
    // user_assigned_id, as in ManagedIdentityCredentialOptions: an empty one is refused too.
    let e = PlatformCredential::new(Some(PlatformCredentialOptions {
        user_assigned_id: Some(UserAssignedId::ObjectId(String::new())),
        env: Env::from_pairs::<&str, &str>([]),
        ..Default::default()
    }))
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn assertion_options_reach_the_credentials() {
    let e = ClientAssertionCredential::with_callback(
        TENANT,
        CLIENT,
        || async { Ok(Secret::new("assertion")) },
        Some(ClientAssertionCredentialOptions {
            authority_host: Some("http://login.example.com".into()),
            ..Default::default()
        }),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = AzurePipelinesCredential::new(
        TENANT,
        CLIENT,
        "00000000-0000-0000-0000-00000000c0de",
        Secret::new("system-access-token"),
        Some(AzurePipelinesCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                authority_host: Some("http://login.example.com".into()),
                ..Default::default()
            },
        }),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test]
async fn token_request_options_are_a_plain_struct() {
    let options = TokenRequestOptions {
        tenant_id: Some("bad/tenant?x".into()),
        ..Default::default()
    };
    assert!(options.claims.is_none() && !options.enable_cae);
    let credential = ClientAssertionCredential::with_callback(
        TENANT,
        CLIENT,
        || async { Ok(Secret::new("assertion")) },
        Some(ClientAssertionCredentialOptions {
            env: Env::from_pairs::<&str, &str>([]),
            ..Default::default()
        }),
    )
    .unwrap();
    // The tenant is checked before anything is sent (nothing listens at the default authority).
    let e = credential
        .get_token(&["https://vault.azure.net/.default"], Some(options))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[test]
fn client_options_follow_the_options_rule() {
    // The same shape as azure_core's: `retry` and `transport` fields, `ExponentialRetryOptions`
    // with public fields and `Default`, `RetryOptions::none()`; in every credential's options.
    let retry = RetryOptions::exponential(ExponentialRetryOptions {
        max_retries: 2,
        ..Default::default()
    });
    let client_options = ClientOptions {
        retry: retry.clone(),
        ..Default::default()
    };
    assert!(client_options.transport.is_none());
    assert_ne!(retry, RetryOptions::default());
    assert_ne!(RetryOptions::none(), RetryOptions::default());
    let assertion = ClientAssertionCredentialOptions {
        client_options: client_options.clone(),
        ..Default::default()
    };
    let pipelines = AzurePipelinesCredentialOptions {
        credential_options: assertion.clone(),
    };
    let workload = WorkloadIdentityCredentialOptions {
        credential_options: assertion,
        ..Default::default()
    };
    let managed = ManagedIdentityCredentialOptions {
        client_options: client_options.clone(),
        ..Default::default()
    };
    let platform = PlatformCredentialOptions {
        client_options,
        ..Default::default()
    };
    for retried in [
        &pipelines.credential_options.client_options.retry,
        &workload.credential_options.client_options.retry,
        &managed.client_options.retry,
        &platform.client_options.retry,
    ] {
        assert_eq!(retried, &retry);
    }
}
