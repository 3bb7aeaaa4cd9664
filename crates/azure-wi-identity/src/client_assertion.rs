//! `ClientAssertionCredential`: exchanges an assertion (a signed JWT from any issuer Microsoft
//! Entra trusts for the application) for an access token, with the client-credentials grant.
//!
//! The request is exactly azure-identity's: `POST {authority}/{tenant}/oauth2/v2.0/token` with
//! `Content-Type: application/x-www-form-urlencoded` and the form fields `client_assertion`,
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, `client_id`,
//! `grant_type=client_credentials`, `scope` (the scopes, unchanged, joined by one space) and
//! `claims` only for a claims challenge or CAE. The assertion callback runs for every request
//! that goes to the network (never for a cached token). [`WorkloadIdentityCredential`] and
//! [`AzurePipelinesCredential`] are built on the same exchange.
//!
//! [`WorkloadIdentityCredential`]: super::WorkloadIdentityCredential
//! [`AzurePipelinesCredential`]: super::AzurePipelinesCredential

use std::{fmt, future::Future, sync::Arc};

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use time::OffsetDateTime;

use super::{
    AccessToken, Env, Error, Result, Secret, TokenCredential, TokenRequestOptions,
    authority::{self, AuthorityError},
    cache::TokenCache,
    client_options::ClientOptions,
    entra_error::entra_error,
    env_vars::AZURE_KUBERNETES_TOKEN_PROXY,
    http::{Limits, RetryPolicy, client_request_id, read_body, send_with_retry},
    identity_binding::BindingTransport,
    timeouts::{RequestTimeouts, with_deadline},
    token_response::parse_token_response,
};

/// The `client_assertion_type` of a JWT bearer assertion.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
pub(crate) use crate::env_vars::AZURE_IDENTITY_DISABLE_MULTITENANTAUTH;
/// Where a per-request tenant comes from, for errors.
const REQUEST_TENANT: &str = "the request's tenant_id option";
/// The claims a CAE-capable client adds.
const CAE_CLIENT_CAPABILITY: &str = "CP1";

/// A source of client assertions for [`ClientAssertionCredential`].
///
/// It is called for every token request that goes to Microsoft Entra; cache inside it if
/// obtaining an assertion is expensive.
///
/// ```
/// use azure_wi_identity::{ClientAssertion, Result, Secret};
///
/// #[derive(Debug)]
/// struct FromVault;
///
/// #[async_trait::async_trait]
/// impl ClientAssertion for FromVault {
///     async fn assertion(&self) -> Result<Secret> {
///         Ok(Secret::new("eyJhbGciOi..."))
///     }
/// }
/// ```
#[async_trait]
pub trait ClientAssertion: Send + Sync + fmt::Debug {
    /// Returns a fresh assertion. Errors are returned to the `get_token` caller unchanged.
    async fn assertion(&self) -> Result<Secret>;
}

/// A [`ClientAssertion`] made from an async closure.
struct AssertionFn<F>(F);

impl<F> fmt::Debug for AssertionFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AssertionFn")
    }
}

#[async_trait]
impl<F, Fut> ClientAssertion for AssertionFn<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<Secret>> + Send,
{
    async fn assertion(&self) -> Result<Secret> {
        (self.0)().await
    }
}

/// Options of [`ClientAssertionCredential`].
///
/// Public fields and `Default`, as every options struct here: set the fields you need and end
/// with `..Default::default()`.
#[derive(Clone, Debug, Default)]
pub struct ClientAssertionCredentialOptions {
    /// The Microsoft Entra authority host, e.g. [`AzureCloud::UsGovernment`]'s. Default:
    /// `AZURE_AUTHORITY_HOST`, else the public cloud.
    ///
    /// [`AzureCloud::UsGovernment`]: super::AzureCloud::UsGovernment
    pub authority_host: Option<String>,
    /// Tenants besides the configured one that a request's `tenant_id` option may name; `"*"`
    /// allows any.
    pub additionally_allowed_tenants: Vec<String>,
    /// Where `AZURE_AUTHORITY_HOST` and `AZURE_IDENTITY_DISABLE_MULTITENANTAUTH` are read.
    pub env: Env,
    /// The per-read timeout and the overall deadline of a token request.
    pub timeouts: RequestTimeouts,
    /// The HTTP transport and the retry settings (default: the library's client and azure-core's
    /// retry schedule).
    pub client_options: ClientOptions,
}

/// Authenticates an application with a client assertion.
///
/// ```no_run
/// use azure_wi_identity::{ClientAssertionCredential, Secret, TokenCredential};
///
/// # async fn run() -> azure_wi_identity::Result<()> {
/// let credential = ClientAssertionCredential::with_callback(
///     "72f988bf-86f1-41af-91ab-2d7cd011db47",
///     "00000000-0000-0000-0000-000000000001",
///     || async { Ok(Secret::new("eyJhbGciOi...an assertion from your issuer")) },
///     None,
/// )?;
/// let token = credential.get_token(&["https://vault.azure.net/.default"], None).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ClientAssertionCredential {
    exchange: Arc<AssertionExchange>,
}

impl ClientAssertionCredential {
    /// A credential for application `client_id` in `tenant_id`, with assertions from
    /// `assertion`. Fails with [`ErrorKind::InvalidInput`](super::ErrorKind::InvalidInput) on a
    /// malformed tenant id, an empty client id or an invalid authority host.
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        assertion: Arc<dyn ClientAssertion>,
        options: Option<ClientAssertionCredentialOptions>,
    ) -> Result<Arc<Self>> {
        let exchange = AssertionExchange::new(
            "ClientAssertionCredential",
            tenant_id.into(),
            "the tenant_id argument",
            client_id.into(),
            assertion,
            options.unwrap_or_default(),
        )?;
        Ok(Arc::new(Self {
            exchange: Arc::new(exchange),
        }))
    }

    /// Like [`new`](Self::new), with assertions from an async closure.
    pub fn with_callback<F, Fut>(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        callback: F,
        options: Option<ClientAssertionCredentialOptions>,
    ) -> Result<Arc<Self>>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Secret>> + Send + 'static,
    {
        Self::new(tenant_id, client_id, Arc::new(AssertionFn(callback)), options)
    }
}

#[async_trait]
impl TokenCredential for ClientAssertionCredential {
    async fn get_token(&self, scopes: &[&str], options: Option<TokenRequestOptions>) -> Result<AccessToken> {
        self.exchange.get_token(scopes, options).await
    }
}

/// The Entra exchange shared by every assertion-based credential, with its token cache.
pub(crate) struct AssertionExchange {
    credential: &'static str,
    tenant_id: String,
    client_id: String,
    authority: String,
    allowed_tenants: Vec<String>,
    multitenant_disabled: bool,
    assertion: Arc<dyn ClientAssertion>,
    timeouts: RequestTimeouts,
    client_options: ClientOptions,
    retry: RetryPolicy,
    cache: TokenCache,
    /// The identity binding's token proxy the requests go to instead of the authority, if any.
    binding: Option<BindingTransport>,
}

impl fmt::Debug for AssertionExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionExchange")
            .field("credential", &self.credential)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("authority", &self.authority)
            .field("assertion", &self.assertion)
            .field("binding", &self.binding)
            .field("client_options", &self.client_options)
            .finish_non_exhaustive()
    }
}

impl AssertionExchange {
    /// `tenant_origin` names where `tenant_id` came from (a variable or an option), for errors.
    pub(crate) fn new(
        credential: &'static str,
        tenant_id: String,
        tenant_origin: &'static str,
        client_id: String,
        assertion: Arc<dyn ClientAssertion>,
        options: ClientAssertionCredentialOptions,
    ) -> Result<Self> {
        let invalid = |e: AuthorityError| Error::invalid_input(credential, e.to_string());
        authority::validate_tenant_id(&tenant_id, tenant_origin).map_err(invalid)?;
        if client_id.trim().is_empty() {
            return Err(Error::invalid_input(
                credential,
                "the client id is empty: give the application's client id",
            ));
        }
        let authority =
            authority::authority_host(options.authority_host.as_deref(), &options.env).map_err(invalid)?;
        Ok(Self {
            credential,
            tenant_id,
            client_id,
            authority,
            allowed_tenants: options.additionally_allowed_tenants,
            multitenant_disabled: options.env.is_set(AZURE_IDENTITY_DISABLE_MULTITENANTAUTH),
            assertion,
            timeouts: options.timeouts,
            retry: options.client_options.retry.policy(&RetryPolicy::DEFAULT),
            client_options: options.client_options,
            cache: TokenCache::new(),
            binding: None,
        })
    }

    /// Sends every request through `binding`'s token proxy.
    pub(crate) fn with_binding(mut self, binding: BindingTransport) -> Self {
        self.binding = Some(binding);
        self
    }

    /// Answers from the cache when a fresh token is there, else validates the request and goes
    /// to the network.
    pub(crate) async fn get_token(
        self: &Arc<Self>,
        scopes: &[&str],
        options: Option<TokenRequestOptions>,
    ) -> Result<AccessToken> {
        // Validation can wait: only validated requests are ever stored, so invalid scopes or
        // tenants never hit the cache.
        if let Some(token) = self.cache.fresh(scopes, options.as_ref()) {
            return Ok(token);
        }
        self.fetch_token(scopes, options.as_ref()).await
    }

    /// Validates the request, then answers it from the cache (filled by a concurrent caller
    /// meanwhile) or the network.
    async fn fetch_token(
        self: &Arc<Self>,
        scopes: &[&str],
        options: Option<&TokenRequestOptions>,
    ) -> Result<AccessToken> {
        authority::validate_scopes(scopes)
            .map_err(|e| Error::invalid_input(self.credential, e.to_string()))?;
        if let Some(tenant) = options
            .and_then(|o| o.tenant_id.as_deref())
            .filter(|t| !t.is_empty())
        {
            authority::validate_tenant_id(tenant, REQUEST_TENANT)
                .map_err(|e| Error::invalid_input(self.credential, e.to_string()))?;
        }
        let tenant = self.resolve_tenant(options.and_then(|o| o.tenant_id.as_deref()))?;
        let claims = claims_parameter(self.credential, options)?;
        let this = self.clone();
        let scope = scopes.join(" ");
        self.cache
            .get_token(scopes, options, move || async move {
                this.request(&tenant, &scope, claims).await
            })
            .await
    }

    /// The tenant a request goes to (azure-identity's rules).
    fn resolve_tenant(&self, requested: Option<&str>) -> Result<String> {
        let Some(requested) = requested.filter(|t| !t.is_empty()) else {
            return Ok(self.tenant_id.clone());
        };
        authority::validate_tenant_id(requested, REQUEST_TENANT)
            .map_err(|e| Error::invalid_input(self.credential, e.to_string()))?;
        if requested == self.tenant_id || self.tenant_id == "adfs" {
            return Ok(self.tenant_id.clone());
        }
        if self.multitenant_disabled {
            tracing::info!(
                credential = self.credential,
                requested,
                "per-request tenant ignored: {AZURE_IDENTITY_DISABLE_MULTITENANTAUTH} is set"
            );
            return Ok(self.tenant_id.clone());
        }
        // A credential for `organizations` with no allow-list goes to any work or school tenant.
        if self.allowed_tenants.iter().any(|t| t == "*" || t == requested)
            || (self.tenant_id == "organizations" && self.allowed_tenants.is_empty())
        {
            return Ok(requested.to_owned());
        }
        Err(Error::authentication_failed(
            self.credential,
            format!(
                "the credential is not configured to acquire tokens for tenant {requested:?}: add it to \
                 additionally_allowed_tenants (or \"*\" for any tenant)"
            ),
        ))
    }

    /// One exchange on the wire, the assertion included, under the overall deadline.
    async fn request(&self, tenant: &str, scope: &str, claims: Option<String>) -> Result<AccessToken> {
        let url = authority::token_endpoint(&self.authority, tenant);
        let url = match &self.binding {
            Some(binding) => binding.binding().request_url(&url),
            None => url,
        };
        let limits = Limits::start(self.timeouts.read_timeout(), self.timeouts.deadline());
        with_deadline(
            self.timeouts.deadline(),
            &url,
            self.exchange(&url, tenant, scope, claims, limits),
            |message| Error::authentication_failed(self.credential, message),
        )
        .await
    }

    async fn exchange(
        &self,
        url: &str,
        tenant: &str,
        scope: &str,
        claims: Option<String>,
        limits: Limits,
    ) -> Result<AccessToken> {
        let assertion = self.assertion.assertion().await?;
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("client_assertion", assertion.secret())
                .append_pair("client_assertion_type", JWT_BEARER)
                .append_pair("client_id", &self.client_id)
                .append_pair("grant_type", "client_credentials")
                .append_pair("scope", scope);
            if let Some(claims) = &claims {
                form.append_pair("claims", claims);
            }
            form.finish()
        };
        let (client, host) = match &self.binding {
            Some(binding) => (binding.client().await, binding.binding().host_header()),
            None => (self.client_options.client()?, None),
        };
        let target = match &self.binding {
            Some(binding) => format!(
                "the identity binding's token proxy ({AZURE_KUBERNETES_TOKEN_PROXY}={}) at {url}",
                binding.binding().proxy()
            ),
            None => format!("Microsoft Entra ID at {url}"),
        };
        tracing::debug!(
            credential = self.credential,
            tenant,
            scope,
            token_proxy = self.binding.is_some(),
            "requesting a token from Microsoft Entra ID"
        );
        let request_time = OffsetDateTime::now_utc();
        let form_type = HeaderValue::from_static("application/x-www-form-urlencoded");
        let request_id = client_request_id();
        let response = send_with_retry(
            || {
                let request = client
                    .post(url)
                    .header(CONTENT_TYPE, form_type.clone())
                    .header("x-ms-client-request-id", request_id.as_str())
                    .body(body.clone());
                match &host {
                    Some(host) => request.header(reqwest::header::HOST, host.clone()),
                    None => request,
                }
            },
            &self.retry,
            Some(limits),
        )
        .await
        .map_err(|e| {
            Error::authentication_failed(self.credential, format!("cannot reach {target}: {e}"))
                .with_source(e)
        })?;
        let status = response.status();
        let bytes = read_body(response, Some(limits)).await.map_err(|e| {
            Error::authentication_failed(
                self.credential,
                format!("reading the answer of {url} failed: {e}"),
            )
            .with_status(status.as_u16())
            .with_source(e)
        })?;
        if status.is_success() {
            return parse_token_response(&bytes, request_time).map_err(|e| {
                Error::authentication_failed(
                    self.credential,
                    format!("unexpected response from Microsoft Entra ID: {e}"),
                )
                .with_source(e)
            });
        }
        Err(entra_error(
            self.credential,
            status.as_u16(),
            &bytes,
            &[assertion.secret()],
        ))
    }
}

/// The `claims` form field: the caller's claims challenge, with the CAE client capability merged
/// in when `enable_cae` is set.
fn claims_parameter(
    credential: &'static str,
    options: Option<&TokenRequestOptions>,
) -> Result<Option<String>> {
    let Some(options) = options else { return Ok(None) };
    let claims = options.claims.as_deref().filter(|c| !c.trim().is_empty());
    if !options.enable_cae {
        return Ok(claims.map(str::to_owned));
    }
    let mut value = match claims {
        Some(c) => serde_json::from_str::<serde_json::Value>(c)
            .ok()
            .filter(serde_json::Value::is_object)
            .ok_or_else(|| Error::invalid_input(credential, "the claims option is not a JSON object"))?,
        None => serde_json::json!({}),
    };
    let access_token = value
        .as_object_mut()
        .expect("checked to be an object")
        .entry("access_token")
        .or_insert_with(|| serde_json::json!({}));
    if let Some(obj) = access_token.as_object_mut() {
        obj.insert(
            "xms_cc".into(),
            serde_json::json!({"values": [CAE_CLIENT_CAPABILITY]}),
        );
    }
    Ok(Some(value.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::{
        ErrorKind,
        test_server::{Reply, TestServer},
    };

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const CLIENT: &str = "00000000-0000-0000-0000-0000000000c1";
    const SCOPE: &str = "https://vault.azure.net/.default";

    /// The credential of [`CLIENT`] in [`TENANT`] whose assertion is always `a`, with `options`.
    fn asserting_a(options: ClientAssertionCredentialOptions) -> Arc<ClientAssertionCredential> {
        ClientAssertionCredential::with_callback(
            TENANT,
            CLIENT,
            || async { Ok(Secret::new("a")) },
            Some(options),
        )
        .unwrap()
    }

    /// Request options asking for a token from `tenant`.
    fn for_tenant(tenant: &str) -> Option<TokenRequestOptions> {
        Some(TokenRequestOptions {
            tenant_id: Some(tenant.into()),
            ..Default::default()
        })
    }

    fn options(server: &TestServer) -> ClientAssertionCredentialOptions {
        ClientAssertionCredentialOptions {
            authority_host: Some(server.url()),
            env: Env::from_pairs::<&str, &str>([]),
            ..Default::default()
        }
    }

    fn credential(server: &TestServer, calls: Arc<AtomicUsize>) -> Arc<ClientAssertionCredential> {
        ClientAssertionCredential::with_callback(
            TENANT,
            CLIENT,
            move || {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                async move { Ok(Secret::new(format!("assertion-{n}"))) }
            },
            Some(options(server)),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn sends_exactly_the_client_credentials_request() {
        let server = TestServer::scripted([Reply::token("at-1", 3599)]).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let cred = credential(&server, calls.clone());
        let token = cred.get_token(&[SCOPE, "api://x/Read"], None).await.unwrap();
        assert_eq!(token.token.secret(), "at-1");
        let r = &server.requests()[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.target, format!("/{TENANT}/oauth2/v2.0/token"));
        assert_eq!(
            r.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let expected: Vec<(String, String)> = [
            ("client_assertion", "assertion-1"),
            ("client_assertion_type", JWT_BEARER),
            ("client_id", CLIENT),
            ("grant_type", "client_credentials"),
            ("scope", "https://vault.azure.net/.default api://x/Read"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(r.form(), expected);
        // Cached: no second request and no second assertion.
        cred.get_token(&[SCOPE, "api://x/Read"], None).await.unwrap();
        assert_eq!((server.request_count(), calls.load(Ordering::SeqCst)), (1, 1));
    }

    #[tokio::test]
    async fn claims_and_cae_go_into_the_claims_field() {
        let server = TestServer::scripted([Reply::token("a", 3599), Reply::token("b", 3599)]).await;
        let cred = credential(&server, Arc::default());
        let challenge = r#"{"access_token":{"nbf":{"essential":true,"value":"1"}}}"#;
        cred.get_token(
            &[SCOPE],
            Some(TokenRequestOptions {
                claims: Some(challenge.into()),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
        let cae = TokenRequestOptions {
            enable_cae: true,
            ..Default::default()
        };
        cred.get_token(&[SCOPE], Some(cae)).await.unwrap();
        let r = server.requests();
        let claims = |i: usize| {
            r[i].form()
                .into_iter()
                .find(|(k, _)| k == "claims")
                .map(|(_, v)| v)
        };
        assert_eq!(claims(0).as_deref(), Some(challenge));
        let cae: serde_json::Value = serde_json::from_str(&claims(1).unwrap()).unwrap();
        assert_eq!(cae, json!({"access_token": {"xms_cc": {"values": ["CP1"]}}}));
        let merged = claims_parameter(
            "t",
            Some(&TokenRequestOptions {
                claims: Some(challenge.into()),
                enable_cae: true,
                ..Default::default()
            }),
        )
        .unwrap()
        .unwrap();
        let merged: serde_json::Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(merged["access_token"]["nbf"]["value"], "1");
        assert_eq!(merged["access_token"]["xms_cc"]["values"][0], "CP1");
    }

    #[tokio::test]
    async fn entra_errors_are_authentication_failures_with_codes_and_no_secrets() {
        let body = json!({"error": "invalid_client",
            "error_description": "AADSTS700024: Client assertion assertion-1 is not within its valid time range.",
            "error_codes": [700024], "trace_id": "tr-1", "correlation_id": "co-1"});
        let server = TestServer::scripted([Reply::json(401, body)]).await;
        let cred = credential(&server, Arc::default());
        let e = cred.get_token(&[SCOPE], None).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.status()),
            (ErrorKind::AuthenticationFailed, Some(401))
        );
        let m = e.to_string();
        assert!(
            m.starts_with("ClientAssertionCredential authentication failed"),
            "{m}"
        );
        for part in ["invalid_client", "AADSTS700024", "700024", "tr-1", "co-1"] {
            assert!(m.contains(part), "{part}: {m}");
        }
        assert!(!m.contains("assertion-1"), "{m}");
    }

    #[tokio::test]
    async fn non_json_errors_and_unusable_successes() {
        let server = TestServer::scripted([
            Reply::status(403).body("<html>denied</html>"),
            Reply::json(200, json!({"token_type": "Bearer"})),
        ])
        .await;
        let cred = credential(&server, Arc::default());
        let e = cred.get_token(&[SCOPE], None).await.unwrap_err();
        assert!(
            e.to_string().contains("HTTP 403") && e.to_string().contains("denied"),
            "{e}"
        );
        let e = cred.get_token(&[SCOPE], None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
        assert!(e.to_string().contains("access_token"), "{e}");
    }

    // Real time: the first retry waits 0 s (paused time would fire the client's read timeout).
    #[tokio::test]
    async fn server_errors_are_retried() {
        let server = TestServer::scripted([Reply::status(503), Reply::token("ok", 3599)]).await;
        let cred = credential(&server, Arc::default());
        assert_eq!(cred.get_token(&[SCOPE], None).await.unwrap().token.secret(), "ok");
        assert_eq!(server.request_count(), 2);
    }

    #[tokio::test]
    async fn bad_input_never_reaches_the_network() {
        let server = TestServer::scripted([]).await;
        let cred = credential(&server, Arc::default());
        for (scopes, options) in [
            (vec![], None),
            (vec!["bad scope"], None),
            (vec![SCOPE], for_tenant("bad/tenant?x")),
        ] {
            let e = cred.get_token(&scopes, options).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        }
        let e = ClientAssertionCredential::with_callback(
            "bad/tenant?x",
            CLIENT,
            || async { Ok(Secret::new("a")) },
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("bad/tenant?x"), "{e}");
        let e =
            ClientAssertionCredential::with_callback(TENANT, " ", || async { Ok(Secret::new("a")) }, None)
                .unwrap_err();
        assert!(e.to_string().contains("client id"), "{e}");
        assert_eq!(server.request_count(), 0);
    }

    #[tokio::test]
    async fn per_request_tenants_follow_the_allow_list() {
        let server = TestServer::with_handler(|_| Reply::token("t", 3599)).await;
        let mut opts = options(&server);
        opts.additionally_allowed_tenants = vec!["contoso.onmicrosoft.com".into()];
        let cred = asserting_a(opts);
        cred.get_token(&[SCOPE], for_tenant("contoso.onmicrosoft.com"))
            .await
            .unwrap();
        assert_eq!(
            server.requests()[0].path(),
            "/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let e = cred
            .get_token(&[SCOPE], for_tenant("fabrikam"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("additionally_allowed_tenants"), "{e}");
        assert_eq!(server.request_count(), 1);

        let mut opts = options(&server);
        opts.env = Env::from_pairs([(AZURE_IDENTITY_DISABLE_MULTITENANTAUTH, "1")]);
        let cred = asserting_a(opts);
        cred.get_token(&[SCOPE], for_tenant("fabrikam")).await.unwrap();
        assert_eq!(
            server.requests()[1].path(),
            format!("/{TENANT}/oauth2/v2.0/token")
        );

        // `organizations` without an allow-list: the requested tenant; with one, the list rules.
        let organizations = |allowed: Vec<String>| {
            let mut opts = options(&server);
            opts.additionally_allowed_tenants = allowed;
            ClientAssertionCredential::with_callback(
                "organizations",
                CLIENT,
                || async { Ok(Secret::new("a")) },
                Some(opts),
            )
            .unwrap()
        };
        organizations(vec![])
            .get_token(&[SCOPE], for_tenant("fabrikam"))
            .await
            .unwrap();
        assert_eq!(server.requests()[2].path(), "/fabrikam/oauth2/v2.0/token");
        let e = organizations(vec!["contoso".into()])
            .get_token(&[SCOPE], for_tenant("fabrikam"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("additionally_allowed_tenants"), "{e}");
        assert_eq!(server.request_count(), 3);
    }

    #[tokio::test]
    async fn assertion_errors_pass_through() {
        let server = TestServer::scripted([]).await;
        let cred = ClientAssertionCredential::with_callback(
            TENANT,
            CLIENT,
            || async { Err(Error::unavailable("MyAssertion", "no assertion here")) },
            Some(options(&server)),
        )
        .unwrap();
        let e = cred.get_token(&[SCOPE], None).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.credential()),
            (ErrorKind::Unavailable, "MyAssertion")
        );
        assert_eq!(server.request_count(), 0);
    }

    /// Issue 15 item 7: an endless or huge Entra answer was read whole (5.3 GB in 4.4 s). Every
    /// shape stops at 64 KiB with an error naming the endpoint and the limit.
    #[tokio::test]
    async fn oversized_and_endless_answers_stop_at_the_cap() {
        use azure_wi_test_support::recording_server::Stream;
        for (name, reply) in [
            ("endless 200", Reply::status(200).stream(Stream::Endless)),
            (
                "announced 1 GiB",
                Reply::status(200).stream(Stream::Repeat { len: 1 << 30 }),
            ),
            ("endless 400", Reply::status(400).stream(Stream::Endless)),
            (
                "just over the cap, unannounced",
                Reply::status(200).body(vec![b' '; 1024]).stream(Stream::Endless),
            ),
        ] {
            let server = TestServer::scripted([reply]).await;
            let cred = credential(&server, Arc::default());
            let e = cred.get_token(&[SCOPE], None).await.unwrap_err();
            let m = e.to_string();
            assert_eq!(e.kind(), ErrorKind::AuthenticationFailed, "{name}: {m}");
            assert!(
                m.contains(&server.url()) && m.contains("65536 bytes"),
                "{name}: {m}"
            );
            assert_eq!(server.request_count(), 1, "{name}: not retried");
        }
        // An answer of exactly the cap is read.
        let mut body = serde_json::to_vec(&json!({"access_token": "t", "expires_in": 3599})).unwrap();
        body.resize(crate::http::MAX_BODY_BYTES, b' ');
        let server = TestServer::scripted([Reply::status(200).body(body)]).await;
        let cred = credential(&server, Arc::default());
        assert_eq!(cred.get_token(&[SCOPE], None).await.unwrap().token.secret(), "t");
    }

    fn with_timeouts(server: &TestServer, timeouts: RequestTimeouts) -> Arc<ClientAssertionCredential> {
        asserting_a(ClientAssertionCredentialOptions {
            timeouts,
            ..options(server)
        })
    }

    /// Issue 15 item 10: a server dripping a byte every 5 s kept the caller waiting for ever
    /// (still waiting at 200 s). On tokio's paused clock: the default 60 s deadline stops it,
    /// and the error names the deadline.
    #[tokio::test(start_paused = true)]
    async fn a_dripping_answer_is_stopped_by_the_overall_deadline() {
        use azure_wi_test_support::recording_server::Stream;
        let drip = Reply::token("t", 3599).stream(Stream::Drip {
            every: std::time::Duration::from_secs(5),
        });
        let server = TestServer::scripted([drip]).await;
        let cred = with_timeouts(&server, RequestTimeouts::default());
        let started = tokio::time::Instant::now();
        let e = cred.get_token(&[SCOPE], None).await.unwrap_err();
        let waited = started.elapsed();
        let m = e.to_string();
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed, "{m}");
        assert!(
            m.contains("gave up after 60 s, the overall deadline") && m.contains(&server.url()),
            "{m}"
        );
        assert!(
            (std::time::Duration::from_secs(60)..std::time::Duration::from_secs(61)).contains(&waited),
            "{waited:?}"
        );
        // reqwest's own timeout is the cause, so that callers (the token proxy) see a timeout.
        let mut cause = std::error::Error::source(&e);
        let mut timed_out = false;
        while let Some(c) = cause {
            timed_out |= c
                .downcast_ref::<reqwest::Error>()
                .is_some_and(reqwest::Error::is_timeout);
            cause = c.source();
        }
        assert!(timed_out, "{e:?}");
    }

    /// A silent server: each attempt ends at the read timeout (retried), the whole at the
    /// deadline; both configurable. A short configured deadline, on the paused clock.
    #[tokio::test(start_paused = true)]
    async fn configured_timeouts_bound_a_silent_server() {
        use azure_wi_test_support::recording_server::Stream;
        let server = TestServer::with_handler(|_| Reply::status(200).stream(Stream::Silent)).await;
        let timeouts = RequestTimeouts {
            deadline: Some(std::time::Duration::from_secs(8)),
            read_timeout: Some(std::time::Duration::from_secs(2)),
        };
        let cred = with_timeouts(&server, timeouts);
        let started = tokio::time::Instant::now();
        let e = cred.get_token(&[SCOPE], None).await.unwrap_err();
        assert_eq!(started.elapsed(), std::time::Duration::from_secs(8));
        assert!(e.to_string().contains("gave up after 8 s"), "{e}");
        // Attempts at 0, 2 (after a 2 s read timeout and no backoff), 5.6 (1.6 s backoff).
        assert_eq!(server.request_count(), 3);

        // With room for every retry, the last read timeout is what is reported.
        let server = TestServer::with_handler(|_| Reply::status(200).stream(Stream::Silent)).await;
        let timeouts = RequestTimeouts {
            deadline: Some(std::time::Duration::from_secs(100)),
            read_timeout: Some(std::time::Duration::from_secs(1)),
        };
        let e = with_timeouts(&server, timeouts)
            .get_token(&[SCOPE], None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("1 s read timeout"), "{e}");
    }
}
