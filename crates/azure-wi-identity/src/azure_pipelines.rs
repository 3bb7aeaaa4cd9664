//! `AzurePipelinesCredential`: an Azure Pipelines job's OIDC token (from a service connection
//! with workload identity federation) exchanged for a Microsoft Entra token.
//!
//! For every exchange it asks the pipeline's OIDC endpoint for a fresh token:
//! `POST {SYSTEM_OIDCREQUESTURI}?api-version=7.1&serviceConnectionId={id}` with
//! `Authorization: Bearer {system access token}`, `X-TFS-FedAuthRedirect: Suppress` (so a bad
//! token gets a status instead of an HTML sign-in page) and `Content-Type: application/json`, no
//! body; the answer's `oidcToken` is the client assertion. `SYSTEM_OIDCREQUESTURI` is read when
//! a token is requested, so outside a pipeline the credential is unavailable rather than broken.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use super::{
    AccessToken, Env, Error, Result, Secret, TokenCredential, TokenRequestOptions,
    client_assertion::{AssertionExchange, ClientAssertion, ClientAssertionCredentialOptions},
    client_options::ClientOptions,
    entra_error::{excerpt, scrub},
    http::{Limits, RetryPolicy, read_body, send_with_retry},
    plain_http::{self, PlainHttp},
    timeouts::RequestTimeouts,
};

const CREDENTIAL: &str = "AzurePipelinesCredential";
pub(crate) use crate::env_vars::SYSTEM_ACCESSTOKEN;
pub(crate) use crate::env_vars::SYSTEM_OIDCREQUESTURI;
const OIDC_API_VERSION: &str = "7.1";

/// Options of [`AzurePipelinesCredential`].
///
/// Public fields and `Default`, as every options struct here: set the fields you need and end
/// with `..Default::default()`.
#[derive(Clone, Debug, Default)]
pub struct AzurePipelinesCredentialOptions {
    /// The options of the client-assertion exchange, as in
    /// [`WorkloadIdentityCredentialOptions`](crate::WorkloadIdentityCredentialOptions): the
    /// authority host (default `AZURE_AUTHORITY_HOST`, else the public cloud), additionally
    /// allowed tenants, where the variables are read (`env`, `SYSTEM_OIDCREQUESTURI` too), the
    /// timeouts (the OIDC request and the exchange together) and the client options (transport
    /// and retries, for the OIDC request too).
    pub credential_options: ClientAssertionCredentialOptions,
}

/// Authenticates an Azure Pipelines job through a service connection that uses workload
/// identity federation.
///
/// ```no_run
/// use azure_wi_identity::{AzurePipelinesCredential, Secret, TokenCredential};
///
/// # async fn run() -> azure_wi_identity::Result<()> {
/// let credential = AzurePipelinesCredential::new(
///     "72f988bf-86f1-41af-91ab-2d7cd011db47",
///     "00000000-0000-0000-0000-000000000001",
///     "00000000-0000-0000-0000-00000000c0de",
///     Secret::new(std::env::var("SYSTEM_ACCESSTOKEN").unwrap_or_default()),
///     None,
/// )?;
/// let token = credential.get_token(&["https://management.azure.com/.default"], None).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AzurePipelinesCredential {
    exchange: Arc<AssertionExchange>,
}

/// Fetches the job's OIDC token for every exchange.
#[derive(Debug)]
struct OidcToken {
    service_connection_id: String,
    system_access_token: Secret,
    env: Env,
    timeouts: RequestTimeouts,
    client_options: ClientOptions,
    retry: RetryPolicy,
}

#[derive(Deserialize)]
struct OidcResponse {
    #[serde(rename = "oidcToken")]
    oidc_token: Option<String>,
}

#[async_trait]
impl ClientAssertion for OidcToken {
    async fn assertion(&self) -> Result<Secret> {
        let uri = self.env.var(SYSTEM_OIDCREQUESTURI).ok_or_else(|| {
            Error::unavailable(
                CREDENTIAL,
                format!(
                    "{SYSTEM_OIDCREQUESTURI} is not set: this is not an Azure Pipelines job. In a pipeline \
                     the agent sets it; run the step with an AzureCLI@2 or similar task, or map it explicitly"
                ),
            )
        })?;
        let shown = plain_http::redact(&uri);
        let mut url = url::Url::parse(uri.trim_end_matches('/')).map_err(|e| {
            Error::invalid_input(
                CREDENTIAL,
                format!("{SYSTEM_OIDCREQUESTURI}={shown:?} is not a URL ({e})"),
            )
        })?;
        // The job's bearer token goes with the request: never over plain http off this machine.
        plain_http::check(&url, PlainHttp::LoopbackOnly).map_err(|e| {
            Error::invalid_input(
                CREDENTIAL,
                format!(
                    "{SYSTEM_OIDCREQUESTURI}={shown:?} cannot be used: {e}. The system access token is \
                     sent to it; Azure Pipelines sets an https URL"
                ),
            )
        })?;
        url.query_pairs_mut()
            .append_pair("api-version", OIDC_API_VERSION)
            .append_pair("serviceConnectionId", &self.service_connection_id);
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", self.system_access_token.secret()))
            .map_err(|_| {
                Error::invalid_input(
                    CREDENTIAL,
                    "the system access token holds characters a header cannot",
                )
            })?;
        bearer.set_sensitive(true);
        let client = self.client_options.client()?;
        let limits = Some(Limits::start(
            self.timeouts.read_timeout(),
            self.timeouts.deadline(),
        ));
        let response = send_with_retry(
            || {
                client
                    .post(url.clone())
                    .header(AUTHORIZATION, bearer.clone())
                    .header("X-TFS-FedAuthRedirect", "Suppress")
                    .header(CONTENT_TYPE, "application/json")
            },
            &self.retry,
            limits,
        )
        .await
        .map_err(|e| {
            Error::authentication_failed(
                CREDENTIAL,
                format!("cannot reach the OIDC endpoint {}: {e}", url.path()),
            )
            .with_source(e)
        })?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(absent)")
                .to_owned()
        };
        let (e2eid, msedge_ref) = (header("x-vss-e2eid"), header("x-msedge-ref"));
        let secrets = [self.system_access_token.secret()];
        let body = read_body(response, limits).await.map_err(|e| {
            Error::authentication_failed(
                CREDENTIAL,
                scrub(
                    format!(
                        "reading the {} answer of the OIDC endpoint {} failed: {e} (x-vss-e2eid: {e2eid}, \
                         x-msedge-ref: {msedge_ref})",
                        status.as_u16(),
                        url.path()
                    ),
                    &secrets,
                ),
            )
            .with_status(status.as_u16())
            .with_source(e)
        })?;
        if status != reqwest::StatusCode::OK {
            return Err(Error::authentication_failed(
                CREDENTIAL,
                scrub(
                    format!(
                        "{} response from the OIDC endpoint: {}. Check the service connection id and that the \
                         pipeline may use it (x-vss-e2eid: {e2eid}, x-msedge-ref: {msedge_ref})",
                        status.as_u16(),
                        excerpt(&body, &secrets)
                    ),
                    &secrets,
                ),
            )
            .with_status(status.as_u16()));
        }
        match serde_json::from_slice::<OidcResponse>(&body)
            .ok()
            .and_then(|r| r.oidc_token)
            .filter(|t| !t.is_empty())
        {
            Some(token) => Ok(Secret::new(token)),
            None => Err(Error::authentication_failed(
                CREDENTIAL,
                scrub(
                    format!(
                        "OIDC token not found in the response of the OIDC endpoint: {} (x-vss-e2eid: {e2eid}, \
                         x-msedge-ref: {msedge_ref})",
                        excerpt(&body, &secrets)
                    ),
                    &secrets,
                ),
            )),
        }
    }
}

impl AzurePipelinesCredential {
    /// A credential for the service connection `service_connection_id`, federated with
    /// application `client_id` in `tenant_id`; `system_access_token` is the job's
    /// `$(System.AccessToken)`. Empty values and a malformed tenant id are
    /// [`ErrorKind::InvalidInput`](super::ErrorKind::InvalidInput).
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        service_connection_id: impl Into<String>,
        system_access_token: Secret,
        options: Option<AzurePipelinesCredentialOptions>,
    ) -> Result<Arc<Self>> {
        let options = options.unwrap_or_default();
        let service_connection_id = service_connection_id.into();
        if service_connection_id.trim().is_empty() {
            return Err(Error::invalid_input(
                CREDENTIAL,
                "the service connection id is empty: give the id of the Azure Resource Manager service connection",
            ));
        }
        if system_access_token.secret().trim().is_empty() {
            return Err(Error::invalid_input(
                CREDENTIAL,
                format!(
                    "the system access token is empty: map $(System.AccessToken) into the step's environment as \
                     {SYSTEM_ACCESSTOKEN}"
                ),
            ));
        }
        let assertion = OidcToken {
            service_connection_id,
            system_access_token,
            env: options.credential_options.env.clone(),
            timeouts: options.credential_options.timeouts,
            client_options: options.credential_options.client_options.clone(),
            retry: options
                .credential_options
                .client_options
                .retry
                .policy(&RetryPolicy::DEFAULT),
        };
        let exchange = AssertionExchange::new(
            CREDENTIAL,
            tenant_id.into(),
            "the tenant_id argument",
            client_id.into(),
            Arc::new(assertion),
            options.credential_options,
        )?;
        Ok(Arc::new(Self {
            exchange: Arc::new(exchange),
        }))
    }
}

#[async_trait]
impl TokenCredential for AzurePipelinesCredential {
    async fn get_token(&self, scopes: &[&str], options: Option<TokenRequestOptions>) -> Result<AccessToken> {
        self.exchange.get_token(scopes, options).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        ErrorKind,
        test_server::{Reply, TestServer},
    };

    const SCOPE: &str = "https://management.azure.com/.default";
    const OIDC_PATH: &str = "/org/proj/_apis/distributedtask/hubs/build/plans/p1/jobs/j1/oidctoken";

    fn credential(oidc: &TestServer, entra: &TestServer) -> Arc<AzurePipelinesCredential> {
        let env = Env::from_pairs([(SYSTEM_OIDCREQUESTURI, format!("{}{OIDC_PATH}/", oidc.url()))]);
        let options = AzurePipelinesCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                authority_host: Some(entra.url()),
                env,
                ..Default::default()
            },
        };
        AzurePipelinesCredential::new(
            "tenant-p",
            "client-p",
            "sc-1",
            Secret::new("system-token"),
            Some(options),
        )
        .unwrap()
    }

    /// The error `get_token` returns when the OIDC endpoint answers `reply`; Entra is never asked.
    async fn oidc_failure(reply: Reply) -> crate::Error {
        let oidc = TestServer::scripted([reply]).await;
        let entra = TestServer::scripted([]).await;
        let e = credential(&oidc, &entra)
            .get_token(&[SCOPE], None)
            .await
            .unwrap_err();
        assert_eq!(entra.request_count(), 0);
        e
    }

    #[tokio::test]
    async fn oidc_request_then_exchange() {
        let oidc = TestServer::scripted([Reply::json(200, json!({"oidcToken": "oidc-jwt"}))]).await;
        let entra = TestServer::scripted([Reply::token("at", 3599)]).await;
        let token = credential(&oidc, &entra).get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(token.token.secret(), "at");
        let r = &oidc.requests()[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path(), OIDC_PATH, "trailing / stripped");
        assert_eq!(
            r.query(),
            vec![
                ("api-version".into(), "7.1".into()),
                ("serviceConnectionId".into(), "sc-1".into())
            ]
        );
        assert_eq!(r.header("authorization"), Some("Bearer system-token"));
        assert_eq!(r.header("x-tfs-fedauthredirect"), Some("Suppress"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.body.is_empty());
        let e = &entra.requests()[0];
        assert_eq!(e.path(), "/tenant-p/oauth2/v2.0/token");
        let form = e.form();
        assert!(
            form.contains(&("client_assertion".into(), "oidc-jwt".into())),
            "{form:?}"
        );
        assert!(
            form.contains(&("client_id".into(), "client-p".into())),
            "{form:?}"
        );
    }

    #[tokio::test]
    async fn non_200_carries_the_diagnostic_headers() {
        let e = oidc_failure(
            Reply::status(401)
                .header("x-vss-e2eid", "e2e-123")
                .header("x-msedge-ref", "ref-456")
                .body("Bearer system-token is not valid"),
        )
        .await;
        assert_eq!(
            (e.kind(), e.status()),
            (ErrorKind::AuthenticationFailed, Some(401))
        );
        let m = e.to_string();
        assert!(
            m.contains("e2e-123") && m.contains("ref-456") && m.contains("401"),
            "{m}"
        );
        assert!(!m.contains("system-token"), "{m}");
    }

    #[tokio::test]
    async fn missing_oidc_token_quotes_the_body() {
        let body = json!({"count": 1, "value": "There is no explicit reference to service connection sc-1"});
        let m = oidc_failure(Reply::json(200, body)).await.to_string();
        assert!(
            m.contains("OIDC token not found") && m.contains("no explicit reference"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn outside_a_pipeline_it_is_unavailable() {
        let options = AzurePipelinesCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                env: Env::from_pairs::<&str, &str>([]),
                ..Default::default()
            },
        };
        let cred = AzurePipelinesCredential::new("t", "c", "sc", Secret::new("s"), Some(options)).unwrap();
        let e = cred.get_token(&[SCOPE], None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains(SYSTEM_OIDCREQUESTURI), "{e}");
    }

    #[test]
    fn constructor_validates() {
        let new = |t: &str, c: &str, sc: &str, tok: &str| {
            AzurePipelinesCredential::new(t, c, sc, Secret::new(tok), None)
                .map(|_| ())
                .unwrap_err()
        };
        assert!(
            new("bad/tenant?x", "c", "sc", "s")
                .to_string()
                .contains("tenant id")
        );
        assert!(new("t", "", "sc", "s").to_string().contains("client id"));
        assert!(
            new("t", "c", "", "s")
                .to_string()
                .contains("service connection id")
        );
        assert!(new("t", "c", "sc", "").to_string().contains(SYSTEM_ACCESSTOKEN));
    }

    /// Issue 15 item 7: a 300 MiB OIDC answer took 609 MiB and the error said "(empty body)".
    #[tokio::test]
    async fn oversized_oidc_answers_stop_at_the_cap_and_say_so() {
        use azure_wi_test_support::recording_server::Stream;
        for reply in [
            Reply::status(200).stream(Stream::Repeat { len: 300 << 20 }),
            Reply::status(200).stream(Stream::Endless),
            Reply::status(401).stream(Stream::Endless),
        ] {
            let e = oidc_failure(reply).await;
            let m = e.to_string();
            assert_eq!(e.kind(), ErrorKind::AuthenticationFailed, "{m}");
            assert!(
                m.contains(OIDC_PATH) && m.contains("65536 bytes") && !m.contains("(empty body)"),
                "{m}"
            );
        }
    }

    /// Issue 15 item 13: the job's bearer token is never sent over plain http off this machine,
    /// and user info in the URL is refused and never printed.
    #[tokio::test]
    async fn the_bearer_token_never_goes_over_plain_http_off_this_machine() {
        let entra = TestServer::scripted([]).await;
        for (uri, expected) in [
            ("http://10.255.255.1/org/_apis/oidctoken", "plain http"),
            ("http://169.254.169.254/oidctoken", "plain http"),
            ("http://localhost.evil.example/oidctoken", "plain http"),
            ("https://user:s3cr3tpw@dev.azure.com/oidctoken", "user info"),
            ("http://user:s3cr3tpw@127.0.0.1:1/oidctoken", "user info"),
            ("ftp://127.0.0.1/oidctoken", "https"),
        ] {
            let options = AzurePipelinesCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    authority_host: Some(entra.url()),
                    env: Env::from_pairs([(SYSTEM_OIDCREQUESTURI, uri)]),
                    ..Default::default()
                },
            };
            let cred =
                AzurePipelinesCredential::new("t", "c", "sc", Secret::new("system-token"), Some(options))
                    .unwrap();
            let started = std::time::Instant::now();
            let e = cred.get_token(&[SCOPE], None).await.unwrap_err();
            assert!(
                started.elapsed() < std::time::Duration::from_secs(1),
                "{uri}: nothing is sent"
            );
            let m = e.to_string();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{uri}: {m}");
            assert!(
                m.contains(SYSTEM_OIDCREQUESTURI) && m.contains(expected),
                "{uri}: {m}"
            );
            assert!(!m.contains("s3cr3tpw") && !m.contains("system-token"), "{m}");
        }
        assert_eq!(entra.request_count(), 0);
    }
}
