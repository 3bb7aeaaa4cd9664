//! Tests of the managed identity credential: source selection, the façade (scopes, cache,
//! options, secrets) here; one file per source beside this one.

mod app_service;
#[cfg(unix)]
mod azure_arc;
mod azure_ml;
mod cloud_shell;
mod hostile;
mod imds;
mod secrets_in_logs;
mod service_fabric;

use std::{path::PathBuf, sync::Arc};

use serde_json::json;
use time::OffsetDateTime;

use super::{
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, ManagedIdentitySource, PlatformPaths,
    UserAssignedId, select_source,
    test_server::{Reply, TestServer},
};
use crate::{Env, ErrorKind, TokenCredential, TokenRequestOptions};

pub(super) const SCOPE: &str = "https://vault.azure.net/.default";
pub(super) const RESOURCE: &str = "https://vault.azure.net";

/// Options reading only `pairs`, with no Arc agent installed.
pub(super) fn options(pairs: &[(&str, &str)]) -> ManagedIdentityCredentialOptions {
    let env = Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ManagedIdentityCredentialOptions {
        env,
        platform: PlatformPaths {
            arc_agent_file: Some(PathBuf::from("/nonexistent/azcmagent/bin/himds")),
            ..PlatformPaths::default()
        },
        ..Default::default()
    }
}

pub(super) fn credential(
    pairs: &[(&str, &str)],
    id: Option<UserAssignedId>,
) -> Arc<ManagedIdentityCredential> {
    let mut options = options(pairs);
    options.user_assigned_id = id;
    ManagedIdentityCredential::new(Some(options)).expect("credential builds")
}

/// A token response as IMDS sends it: every value a string.
pub(super) fn imds_token(token: &str, expires_in: i64) -> Reply {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    Reply::json(
        200,
        json!({
            "access_token": token,
            "client_id": "00000000-0000-0000-0000-0000000000c1",
            "expires_in": expires_in.to_string(),
            "expires_on": (now + expires_in).to_string(),
            "ext_expires_in": expires_in.to_string(),
            "not_before": now.to_string(),
            "resource": "https://vault.azure.net/",
            "token_type": "Bearer"
        })
        .to_string(),
    )
}

/// A system-assigned credential whose IMDS is `server` (`AZURE_POD_IDENTITY_AUTHORITY_HOST`).
fn imds_at(server: &TestServer) -> Arc<ManagedIdentityCredential> {
    credential(
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &server.url_for(""))],
        None,
    )
}

/// `opts` with the user-assigned `id` do not build: `source` cannot select one.
pub(super) fn assert_no_user_assigned_id(
    mut opts: ManagedIdentityCredentialOptions,
    id: UserAssignedId,
    source: &str,
) {
    opts.user_assigned_id = Some(id);
    let err = ManagedIdentityCredential::new(Some(opts)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .contains(&format!("{source} cannot select a user-assigned identity")),
        "{err}"
    );
}

/// The token `credential` gets for [`SCOPE`].
pub(super) async fn token_of(credential: &ManagedIdentityCredential) -> String {
    let token = credential.get_token(&[SCOPE], None).await.unwrap();
    token.token.secret().to_owned()
}

/// The error `credential` fails with for [`SCOPE`].
pub(super) async fn error_of(credential: &ManagedIdentityCredential) -> crate::Error {
    credential.get_token(&[SCOPE], None).await.unwrap_err()
}

/// The token `credential` gets for [`SCOPE`] when the caller passes `claims` (a claims challenge).
pub(super) async fn token_with_claims(credential: &impl TokenCredential, claims: &str) -> String {
    let options = TokenRequestOptions {
        claims: Some(claims.into()),
        ..Default::default()
    };
    let token = credential.get_token(&[SCOPE], Some(options)).await.unwrap();
    token.token.secret().to_owned()
}

/// Seconds between `expires_on` and now, within a few seconds of slack for the test's own run.
pub(super) fn lifetime(token: &crate::AccessToken) -> i64 {
    (token.expires_on - OffsetDateTime::now_utc()).whole_seconds()
}

#[test]
fn source_precedence_follows_azure_identity() {
    use ManagedIdentitySource as S;
    const E: &str = "http://localhost:42/token";
    let wi = [
        ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/"),
        ("AZURE_TENANT_ID", "t"),
        ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
    ];
    // (variables, Arc agent installed, workload identity excluded, expected source)
    type Case<'a> = (Vec<(&'a str, &'a str)>, bool, bool, ManagedIdentitySource);
    #[rustfmt::skip]
    let table: Vec<Case> = vec![
        (vec![], false, false, S::Imds),
        (vec![("IDENTITY_ENDPOINT", E), ("IDENTITY_HEADER", "h"), ("IDENTITY_SERVER_THUMBPRINT", "t")], false, false, S::ServiceFabric),
        (vec![("IDENTITY_ENDPOINT", E), ("IDENTITY_HEADER", "h")], false, false, S::AppService),
        (vec![("IDENTITY_ENDPOINT", E), ("IDENTITY_HEADER", "h"), ("MSI_ENDPOINT", E), ("MSI_SECRET", "s")], false, false, S::AppService),
        (vec![("IDENTITY_ENDPOINT", E), ("IDENTITY_HEADER", "h"), ("IMDS_ENDPOINT", E)], false, false, S::AppService),
        (vec![("IDENTITY_ENDPOINT", E), ("IMDS_ENDPOINT", E)], false, false, S::AzureArc),
        (vec![("IDENTITY_ENDPOINT", E), ("IMDS_ENDPOINT", E), ("IDENTITY_SERVER_THUMBPRINT", "t")], false, false, S::AzureArc),
        (vec![("IDENTITY_ENDPOINT", E), ("IMDS_ENDPOINT", E), ("MSI_ENDPOINT", E), ("MSI_SECRET", "s")], false, false, S::AzureArc),
        (vec![("MSI_ENDPOINT", E), ("MSI_SECRET", "s")], false, false, S::AzureMl),
        (vec![("MSI_ENDPOINT", E)], false, false, S::CloudShell),
        (vec![("MSI_ENDPOINT", E)], true, false, S::CloudShell),
        (wi.to_vec(), false, false, S::WorkloadIdentity),
        (wi.to_vec(), true, false, S::WorkloadIdentity),
        (wi.to_vec(), false, true, S::Imds),
        (wi.to_vec(), true, true, S::AzureArc),
        (wi[1..].to_vec(), false, false, S::Imds),
        ([&wi[..], &[("MSI_ENDPOINT", E)]].concat(), false, false, S::CloudShell),
        (vec![], true, false, S::AzureArc),
        // A lone IDENTITY_ENDPOINT is ignored (and logged).
        (vec![("IDENTITY_ENDPOINT", E)], false, false, S::Imds),
        (vec![("IDENTITY_ENDPOINT", E), ("MSI_ENDPOINT", E)], false, false, S::CloudShell),
        // Empty values count as unset.
        (vec![("IDENTITY_ENDPOINT", ""), ("IDENTITY_HEADER", "h")], false, false, S::Imds),
        (vec![("IDENTITY_ENDPOINT", E), ("IDENTITY_HEADER", ""), ("IMDS_ENDPOINT", E)], false, false, S::AzureArc),
        (vec![("IDENTITY_ENDPOINT", E), ("IDENTITY_HEADER", "h"), ("IDENTITY_SERVER_THUMBPRINT", "")], false, false, S::AppService),
        (vec![("MSI_ENDPOINT", E), ("MSI_SECRET", "")], false, false, S::CloudShell),
    ];
    for (pairs, agent, exclude_wi, expected) in table {
        let env = Env::from_pairs(pairs.iter().copied());
        assert_eq!(
            select_source(&env, agent, exclude_wi),
            expected,
            "{pairs:?} agent={agent} exclude_wi={exclude_wi}"
        );
    }
}

#[test]
fn the_credential_reports_its_source_and_detects_the_arc_agent_file() {
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("himds");
    let mut options = options(&[]);
    assert_eq!(
        ManagedIdentityCredential::new(Some(options.clone()))
            .unwrap()
            .source(),
        ManagedIdentitySource::Imds
    );
    options.platform.arc_agent_file = Some(agent.clone());
    options.platform.arc_token_dir = Some(dir.path().to_owned());
    assert_eq!(
        ManagedIdentityCredential::new(Some(options.clone()))
            .unwrap()
            .source(),
        ManagedIdentitySource::Imds
    );
    std::fs::write(&agent, "").unwrap();
    let credential = ManagedIdentityCredential::new(Some(options)).unwrap();
    assert_eq!(credential.source(), ManagedIdentitySource::AzureArc);
    assert_eq!(credential.source().to_string(), "azure_arc");
    let printed = format!("{credential:?}");
    assert!(printed.contains("localhost:40342"), "{printed}");
}

#[tokio::test]
async fn exactly_one_scope_is_required_and_nothing_is_sent_otherwise() {
    let server = TestServer::replies(vec![imds_token("t", 3600)]).await;
    let credential = imds_at(&server);
    for scopes in [
        &[][..],
        &[SCOPE, "https://storage.azure.com/.default"][..],
        &[""][..],
        &["https://x/ y"][..],
    ] {
        let err = credential.get_token(scopes, None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{scopes:?}: {err}");
        assert!(err.to_string().contains("scope"), "{err}");
    }
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn scopes_become_resources_as_azure_identity_converts_them() {
    let server = TestServer::replies(vec![imds_token("t", 3600)]).await;
    let credential = imds_at(&server);
    for (scope, resource) in [
        (SCOPE, RESOURCE),
        (
            "https://management.azure.com//.default",
            "https://management.azure.com/",
        ),
        ("api://x/Read", "api://x/Read"),
        ("https://storage.azure.com", "https://storage.azure.com"),
    ] {
        credential.get_token(&[scope], None).await.unwrap();
        let last = server.requests().pop().unwrap();
        let sent: Vec<_> = last
            .query_pairs()
            .into_iter()
            .filter(|(k, _)| *k == "resource")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(sent, [resource], "{scope}");
    }
}

#[tokio::test]
async fn the_cache_is_keyed_by_the_requested_scope_not_the_echoed_resource() {
    // Real IMDS echoes the resource with a trailing slash; the cache must still hit.
    let server = TestServer::replies(vec![imds_token("cached-token", 3600)]).await;
    let credential = imds_at(&server);
    for _ in 0..3 {
        let token = credential.get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(token.token.secret(), "cached-token");
    }
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn tenant_id_and_cae_are_ignored_and_do_not_split_the_cache() {
    let server = TestServer::replies(vec![imds_token("t", 3600)]).await;
    let credential = imds_at(&server);
    credential.get_token(&[SCOPE], None).await.unwrap();
    let mut cae = TokenRequestOptions {
        tenant_id: Some("other-tenant".into()),
        ..Default::default()
    };
    cae.enable_cae = true;
    credential.get_token(&[SCOPE], Some(cae)).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0]
            .query()
            .iter()
            .all(|(k, v)| k != "tenant_id" && v != "other-tenant")
    );
}

#[tokio::test]
async fn claims_force_a_new_request_but_are_never_sent() {
    let server = TestServer::replies(vec![imds_token("first", 3600), imds_token("second", 3600)]).await;
    let credential = imds_at(&server);
    assert_eq!(token_of(&credential).await, "first");
    let claims = r#"{"access_token":{"nbf":{"essential":true}}}"#;
    assert_eq!(token_with_claims(&*credential, claims).await, "second");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].query().iter().all(|(k, _)| k != "claims"));
    assert!(requests[1].body.is_empty());
    // The fresh token replaced the cached one.
    assert_eq!(token_of(&credential).await, "second");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn concurrent_callers_on_a_cold_cache_share_one_request() {
    let server = TestServer::replies(vec![imds_token("shared", 3600)]).await;
    let credential = imds_at(&server);
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let credential = credential.clone();
            tokio::spawn(async move { credential.get_token(&[SCOPE], None).await.map(|t| t.token) })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().secret(), "shared");
    }
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn user_assigned_ids_are_validated_when_the_credential_is_built() {
    let mut opts = options(&[]);
    opts.user_assigned_id = Some(UserAssignedId::ClientId(String::new()));
    let err = ManagedIdentityCredential::new(Some(opts)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("client id is empty"), "{err}");
}

#[test]
fn the_workload_identity_branch_takes_only_a_client_id() {
    let wi = [
        ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/"),
        ("AZURE_TENANT_ID", "t"),
        ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
        ("AZURE_CLIENT_ID", "c"),
    ];
    let mut opts = options(&wi);
    opts.user_assigned_id = Some(UserAssignedId::ObjectId("o".into()));
    let err = ManagedIdentityCredential::new(Some(opts)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("client id"), "{err}");
    let credential = ManagedIdentityCredential::new(Some(options(&wi))).unwrap();
    assert_eq!(credential.source(), ManagedIdentitySource::WorkloadIdentity);
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let secret = "Sup3r-s3cret-header";
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("IDENTITY_ENDPOINT", "http://localhost:42/token"),
            ("IDENTITY_HEADER", secret),
        ],
        vec![
            ("MSI_ENDPOINT", "http://localhost:42/token"),
            ("MSI_SECRET", secret),
        ],
        vec![
            (
                "IDENTITY_ENDPOINT",
                "https://localhost:2377/metadata/identity/oauth2/token",
            ),
            ("IDENTITY_HEADER", secret),
            (
                "IDENTITY_SERVER_THUMBPRINT",
                "00112233445566778899AABBCCDDEEFF00112233",
            ),
        ],
    ];
    for pairs in cases {
        let credential = credential(&pairs, None);
        let printed = format!("{credential:?} {:?}", options(&pairs));
        assert!(!printed.contains(secret), "{printed}");
        assert!(
            printed.contains("localhost") && printed.contains("redacted"),
            "{printed}"
        );
    }
}

#[tokio::test]
async fn the_workload_identity_branch_exchanges_the_service_account_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, "service-account-jwt").unwrap();
    let entra = TestServer::replies(vec![Reply::json(
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "entra-token"}).to_string(),
    )])
    .await;
    let authority = entra.url_for("/");
    let file_path = file.display().to_string();
    let wi = [
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
        ("AZURE_TENANT_ID", "tenant-1"),
        ("AZURE_FEDERATED_TOKEN_FILE", file_path.as_str()),
        ("AZURE_CLIENT_ID", "env-client"),
    ];
    for (id, client_id) in [
        (None, "env-client"),
        (
            Some(UserAssignedId::ClientId("uami-client".into())),
            "uami-client",
        ),
    ] {
        let credential = credential(&wi, id);
        assert_eq!(credential.source(), ManagedIdentitySource::WorkloadIdentity);
        let token = credential.get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(token.token.secret(), "entra-token");
        let r = entra.requests().pop().unwrap();
        assert_eq!(
            (r.method.as_str(), r.path()),
            ("POST", "/tenant-1/oauth2/v2.0/token")
        );
        let form = r.form();
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(field("client_id"), Some(client_id));
        assert_eq!(field("client_assertion"), Some("service-account-jwt"));
        assert_eq!(
            field("scope"),
            Some(SCOPE),
            "the exchange takes the scope unchanged"
        );
    }
}

/// Records every tracing event (message and fields, `Debug`-formatted) on this thread.
struct Recorder(Arc<std::sync::Mutex<String>>);

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Visit<'a>(&'a mut String);
        impl tracing::field::Visit for Visit<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={value:?}", field.name()));
            }
        }
        let mut log = self.0.lock().unwrap();
        event.record(&mut Visit(&mut log));
        log.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let _guard = tracing::subscriber::set_default(Recorder(log.clone()));
    let header = "logged-header-s3cret";
    // A refusal that quotes the secret header, then a token.
    let refusal = Reply::json(
        500,
        json!({"statusCode": 500, "message": format!("bad {header}")}).to_string(),
    );
    let server = TestServer::replies(vec![
        refusal.clone(),
        refusal.clone(),
        refusal.clone(),
        refusal,
        imds_token("logged-token-value", 3600),
    ])
    .await;
    let endpoint = server.url_for("/msi/token");
    let credential = credential(
        &[("IDENTITY_ENDPOINT", &endpoint), ("IDENTITY_HEADER", header)],
        None,
    );
    tokio::time::pause();
    let err = credential.get_token(&[SCOPE], None).await.unwrap_err();
    assert!(!err.to_string().contains(header), "{err}");
    credential.get_token(&[SCOPE], None).await.unwrap();
    let log = log.lock().unwrap().clone();
    assert!(
        log.contains("requesting a managed identity token") && log.contains("token received"),
        "{log}"
    );
    assert!(
        !log.contains(header) && !log.contains("logged-token-value"),
        "{log}"
    );
}
