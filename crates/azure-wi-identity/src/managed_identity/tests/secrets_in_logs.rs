//! Secrets never reach logs or `Debug` output: every credential source exchanges a token against
//! its local stand-in (success, and a refusal that quotes the secret back) with every tracing event
//! and `log` record of every crate captured at TRACE level; the capture, and the `Debug` of the
//! credentials, options, tokens and errors, must not contain any secret.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

use super::{RESOURCE, SCOPE, credential, imds_token, options};
use crate::{
    AccessToken, AzurePipelinesCredential, AzurePipelinesCredentialOptions, ClientAssertionCredentialOptions,
    Env, Secret, TokenCredential, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
    managed_identity::{
        ManagedIdentityCredential,
        test_server::{Reply, TestServer, self_signed_tls},
    },
    test_server as entra,
};

/// Everything written by the subscriber.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Captures every event of this thread (the test runtime is current-thread, so the stand-ins,
/// the HTTP client's connections and the credentials all log here) at TRACE, spans included.
fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    // `log` records (rustls, ...) are forwarded to the current tracing subscriber.
    let _ = tracing_log::LogTracer::init();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // A callsite that another test's thread registered while this subscriber was being set may
    // have cached "no interest" (seen once as a capture without TRACE events): recompute.
    tracing::callsite::rebuild_interest_cache();
    (capture, guard)
}

fn assert_absent(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} contains the secret {secret:?}:\n{text}"
        );
    }
}

const WI_ASSERTION: &str = "wi-assertion-5ecret-0a1b2c";
const WI_TOKEN: &str = "wi-access-token-5ecret-3d4e";
const PIPELINES_SYSTEM: &str = "pipelines-system-access-token-5ecret";
const PIPELINES_OIDC: &str = "pipelines-oidc-assertion-5ecret";
const PIPELINES_TOKEN: &str = "pipelines-access-token-5ecret";
const IMDS_TOKEN: &str = "imds-access-token-5ecret";
const APP_SERVICE_HEADER: &str = "app-service-identity-header-5ecret";
const APP_SERVICE_TOKEN: &str = "app-service-access-token-5ecret";
const ML_SECRET: &str = "azure-ml-msi-secret-5ecret";
const ML_TOKEN: &str = "azure-ml-access-token-5ecret";
const SF_HEADER: &str = "service-fabric-header-5ecret";
const SF_TOKEN: &str = "service-fabric-access-token-5ecret";
const ARC_KEY: &str = "arc-challenge-key-5ecret";
const ARC_TOKEN: &str = "arc-access-token-5ecret";
const CLOUD_SHELL_TOKEN: &str = "cloud-shell-access-token-5ecret";

const ALL: [&str; 15] = [
    WI_ASSERTION,
    WI_TOKEN,
    PIPELINES_SYSTEM,
    PIPELINES_OIDC,
    PIPELINES_TOKEN,
    IMDS_TOKEN,
    APP_SERVICE_HEADER,
    APP_SERVICE_TOKEN,
    ML_SECRET,
    ML_TOKEN,
    SF_HEADER,
    SF_TOKEN,
    ARC_KEY,
    ARC_TOKEN,
    CLOUD_SHELL_TOKEN,
];

/// An Entra-style refusal that quotes `secret` back (a misbehaving or hostile server).
fn echoing_refusal(status: u16, secret: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": "invalid_request", "error_description": format!("refused {secret}"), "message": format!("refused {secret}")})
            .to_string(),
    )
}

/// Collects what must stay clean: the `Debug` of everything a caller can print.
#[derive(Default)]
struct Printed(String);

impl Printed {
    fn debug(&mut self, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{value:?}\n{value:#?}\n"));
    }
    fn result(&mut self, result: &crate::Result<AccessToken>) {
        match result {
            Ok(token) => self.debug(token),
            Err(error) => {
                self.debug(error);
                self.0.push_str(&format!("{error}\n"));
                let mut source = std::error::Error::source(error);
                while let Some(cause) = source {
                    self.0.push_str(&format!("{cause}\n{cause:?}\n"));
                    source = cause.source();
                }
            }
        }
    }
}

#[tokio::test]
async fn no_secret_reaches_trace_logs_or_debug_output() {
    let (logs, _guard) = capture();
    let mut printed = Printed::default();
    let mut served = Vec::new();

    // Workload identity: the token file's assertion, Entra's token; then Entra echoing the assertion.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, WI_ASSERTION).unwrap();
    let entra_wi = entra::TestServer::scripted([
        entra::Reply::token(WI_TOKEN, 3599),
        entra::Reply::json(
            400,
            json!({"error": "invalid_client", "error_description": format!("AADSTS700024: {WI_ASSERTION}")}),
        ),
    ])
    .await;
    let wi_options = WorkloadIdentityCredentialOptions {
        tenant_id: Some("tenant-1".into()),
        client_id: Some("client-1".into()),
        token_file_path: Some(token_file.clone()),
        credential_options: ClientAssertionCredentialOptions {
            authority_host: Some(entra_wi.url()),
            env: Env::from_pairs::<&str, &str>([]),
            ..Default::default()
        },
        ..Default::default()
    };
    printed.debug(&wi_options);
    let wi = WorkloadIdentityCredential::new(Some(wi_options)).unwrap();
    printed.debug(&wi);
    let ok = wi.get_token(&[SCOPE], None).await;
    served.push(
        ok.as_ref()
            .map(|t| t.token.secret().to_owned())
            .unwrap_or_default(),
    );
    printed.result(&ok);
    let refused = wi.get_token(&["https://storage.azure.com/.default"], None).await;
    assert!(refused.is_err(), "Entra's refusal is an error");
    printed.result(&refused);

    // Azure Pipelines: the system access token, the OIDC token, Entra's token; then the OIDC
    // endpoint echoing the system access token.
    let oidc = entra::TestServer::scripted([
        entra::Reply::json(200, json!({"oidcToken": PIPELINES_OIDC})),
        entra::Reply::json(401, json!({"message": format!("bad token {PIPELINES_SYSTEM}")})),
    ])
    .await;
    let entra_p = entra::TestServer::scripted([entra::Reply::token(PIPELINES_TOKEN, 3599)]).await;
    let p_options = AzurePipelinesCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            authority_host: Some(entra_p.url()),
            env: Env::from_pairs([("SYSTEM_OIDCREQUESTURI", format!("{}/oidctoken", oidc.url()))]),
            ..Default::default()
        },
    };
    printed.debug(&p_options);
    let pipelines = AzurePipelinesCredential::new(
        "tenant-p",
        "client-p",
        "sc-1",
        Secret::new(PIPELINES_SYSTEM),
        Some(p_options),
    )
    .unwrap();
    printed.debug(&pipelines);
    let ok = pipelines.get_token(&[SCOPE], None).await;
    served.push(
        ok.as_ref()
            .map(|t| t.token.secret().to_owned())
            .unwrap_or_default(),
    );
    printed.result(&ok);
    let refused = pipelines
        .get_token(&["https://storage.azure.com/.default"], None)
        .await;
    assert!(refused.is_err(), "the OIDC refusal is an error");
    printed.result(&refused);

    // Managed identity, IMDS.
    let imds = TestServer::replies(vec![imds_token(IMDS_TOKEN, 3600)]).await;
    let mut imds_options = options(&[]);
    imds_options.platform.imds_base = Some(imds.url_for(""));
    printed.debug(&imds_options);
    let imds_credential = ManagedIdentityCredential::new(Some(imds_options)).unwrap();
    let ok = imds_credential.get_token(&[SCOPE], None).await;
    served.push(
        ok.as_ref()
            .map(|t| t.token.secret().to_owned())
            .unwrap_or_default(),
    );
    printed.result(&ok);

    // App Service: the identity header; a refusal quoting it, then a token.
    let app = TestServer::replies(vec![
        echoing_refusal(401, APP_SERVICE_HEADER),
        imds_token(APP_SERVICE_TOKEN, 3600),
    ])
    .await;
    let endpoint = app.url_for("/msi/token");
    let app_credential = credential(
        &[
            ("IDENTITY_ENDPOINT", &endpoint),
            ("IDENTITY_HEADER", APP_SERVICE_HEADER),
        ],
        None,
    );
    printed.debug(&app_credential);
    printed.result(&app_credential.get_token(&[SCOPE], None).await);
    let ok = app_credential.get_token(&[SCOPE], None).await;
    served.push(
        ok.as_ref()
            .map(|t| t.token.secret().to_owned())
            .unwrap_or_default(),
    );
    printed.result(&ok);

    // Azure ML: MSI_SECRET; a refusal quoting it, then a token.
    let ml = TestServer::replies(vec![
        echoing_refusal(400, ML_SECRET),
        Reply::json(200, json!({"access_token": ML_TOKEN, "expires_in": 3600, "resource": RESOURCE, "token_type": "Bearer"}).to_string()),
    ])
    .await;
    let endpoint = ml.url_for("/msi/auth");
    let ml_credential = credential(&[("MSI_ENDPOINT", &endpoint), ("MSI_SECRET", ML_SECRET)], None);
    printed.debug(&ml_credential);
    printed.result(&ml_credential.get_token(&[SCOPE], None).await);
    let ok = ml_credential.get_token(&[SCOPE], None).await;
    served.push(
        ok.as_ref()
            .map(|t| t.token.secret().to_owned())
            .unwrap_or_default(),
    );
    printed.result(&ok);

    // Service Fabric: the identity header over the pinned TLS endpoint.
    let (tls, thumbprint) = self_signed_tls();
    let expires_on = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let sf_body = json!({"token_type": "Bearer", "access_token": SF_TOKEN, "expires_on": expires_on, "resource": RESOURCE}).to_string();
    let sf = TestServer::with_handler_tls(tls, move |_| Reply::json(200, sf_body.clone())).await;
    let endpoint = sf.url_for("/metadata/identity/oauth2/token");
    let sf_credential = credential(
        &[
            ("IDENTITY_ENDPOINT", &endpoint),
            ("IDENTITY_HEADER", SF_HEADER),
            ("IDENTITY_SERVER_THUMBPRINT", &thumbprint),
        ],
        None,
    );
    printed.debug(&sf_credential);
    let ok = sf_credential.get_token(&[SCOPE], None).await;
    served.push(
        ok.as_ref()
            .map(|t| t.token.secret().to_owned())
            .unwrap_or_default(),
    );
    printed.result(&ok);

    // Azure Arc: the challenge key file.
    #[cfg(unix)]
    {
        let root = tempfile::tempdir().unwrap();
        let tokens = root.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let key_file = tokens.join("challenge.key");
        std::fs::write(&key_file, ARC_KEY).unwrap();
        let realm = key_file.display().to_string();
        let arc_body = json!({"access_token": ARC_TOKEN, "expires_in": "3600", "resource": RESOURCE, "token_type": "Bearer"}).to_string();
        let arc = TestServer::with_handler(move |r| match r.header("authorization") {
            Some(a) if a == format!("Basic {ARC_KEY}") => Reply::json(200, arc_body.clone()),
            _ => Reply::json(401, r#"{"error":"unauthorized"}"#)
                .header("WWW-Authenticate", &format!("Basic realm={realm}")),
        })
        .await;
        let endpoint = arc.url_for("/metadata/identity/oauth2/token");
        let imds_base = arc.url_for("");
        let mut arc_options = options(&[("IDENTITY_ENDPOINT", &endpoint), ("IMDS_ENDPOINT", &imds_base)]);
        arc_options.platform.arc_token_dir = Some(tokens.clone());
        printed.debug(&arc_options);
        let arc_credential = ManagedIdentityCredential::new(Some(arc_options)).unwrap();
        printed.debug(&arc_credential);
        let ok = arc_credential.get_token(&[SCOPE], None).await;
        served.push(
            ok.as_ref()
                .map(|t| t.token.secret().to_owned())
                .unwrap_or_default(),
        );
        printed.result(&ok);
    }

    // Cloud Shell.
    let shell = TestServer::replies(vec![imds_token(CLOUD_SHELL_TOKEN, 3600)]).await;
    let endpoint = shell.url_for("/oauth2/token");
    let shell_credential = credential(&[("MSI_ENDPOINT", &endpoint)], None);
    let ok = shell_credential.get_token(&[SCOPE], None).await;
    served.push(
        ok.as_ref()
            .map(|t| t.token.secret().to_owned())
            .unwrap_or_default(),
    );
    printed.result(&ok);

    drop(_guard);
    // Every exchange succeeded, so every secret really went through the code under test.
    let mut expected = vec![
        WI_TOKEN,
        PIPELINES_TOKEN,
        IMDS_TOKEN,
        APP_SERVICE_TOKEN,
        ML_TOKEN,
        SF_TOKEN,
    ];
    if cfg!(unix) {
        expected.push(ARC_TOKEN);
    }
    expected.push(CLOUD_SHELL_TOKEN);
    assert_eq!(served, expected);
    let text = logs.text();
    // The capture really is at TRACE and really saw the exchanges.
    assert!(text.contains("TRACE"), "no TRACE event captured:\n{text}");
    assert!(
        text.contains("token received"),
        "no credential event captured:\n{text}"
    );
    assert_absent("the TRACE log", &text, &ALL);
    assert!(printed.0.contains("Secret"), "the Debug output was not collected");
    assert_absent("the Debug output", &printed.0, &ALL);
}
