//! Managed identity: the public [`ManagedIdentityCredential`], the choice of its source, and one
//! module per platform source.
//!
//! The source is chosen once, when the credential is built, from the environment, in
//! azure-identity's order, with MSAL's check for an installed Azure Arc agent; an
//! `IDENTITY_ENDPOINT` without `IDENTITY_HEADER` or `IMDS_ENDPOINT` is ignored with a warning:
//!
//! | variables set (non-empty) | source |
//! | --- | --- |
//! | `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` + `IDENTITY_SERVER_THUMBPRINT` | Service Fabric |
//! | `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` | App Service, Functions, Container Apps |
//! | `IDENTITY_ENDPOINT` + `IMDS_ENDPOINT` | Azure Arc |
//! | `MSI_ENDPOINT` + `MSI_SECRET` | Azure Machine Learning |
//! | `MSI_ENDPOINT` | Cloud Shell |
//! | `AZURE_AUTHORITY_HOST` + `AZURE_TENANT_ID` + `AZURE_FEDERATED_TOKEN_FILE` | workload identity token exchange |
//! | the Azure Arc agent is installed (`/opt/azcmagent/bin/himds`) | Azure Arc |
//! | anything else | IMDS (`169.254.169.254`, or `AZURE_POD_IDENTITY_AUTHORITY_HOST`) |
//!
//! Every source sends the request azure-identity sends (method, path, api-version, parameter
//! names, headers, body); see `docs/managed-identity.md`.

mod app_service;
pub(crate) mod arc_key_file;
mod azure_arc;
mod azure_ml;
mod cloud_shell;
mod imds;
pub(crate) mod response;
mod secret_endpoint;
mod service_fabric;
mod thumbprint;
mod user_assigned_id;
mod workload_identity;

#[cfg(test)]
use azure_wi_test_support::recording_server as test_server;
#[cfg(test)]
mod tests;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use reqwest::header::HeaderValue;
use url::Url;

pub use user_assigned_id::UserAssignedId;

use secret_endpoint::SecretEndpoint;

use crate::{
    AccessToken, ClientOptions, Env, Error, RequestTimeouts, Result, Secret, TokenCredential,
    TokenRequestOptions,
    cache::TokenCache,
    http::{Limits, RetryPolicy, client_builder},
    plain_http::{self, PlainHttp},
    timeouts::with_deadline,
};

/// The name errors carry before a source is known.
const CREDENTIAL: &str = "ManagedIdentityCredential";

pub(crate) use crate::env_vars::AZURE_AUTHORITY_HOST;
pub(crate) use crate::env_vars::AZURE_FEDERATED_TOKEN_FILE;
pub(crate) use crate::env_vars::AZURE_POD_IDENTITY_AUTHORITY_HOST;
pub(crate) use crate::env_vars::AZURE_TENANT_ID;
pub(crate) use crate::env_vars::IDENTITY_ENDPOINT;
pub(crate) use crate::env_vars::IDENTITY_HEADER;
pub(crate) use crate::env_vars::IDENTITY_SERVER_THUMBPRINT;
pub(crate) use crate::env_vars::IMDS_ENDPOINT;
pub(crate) use crate::env_vars::MSI_ENDPOINT;
pub(crate) use crate::env_vars::MSI_SECRET;

/// Where a [`ManagedIdentityCredential`] gets its tokens, chosen once from the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ManagedIdentitySource {
    /// The Azure Instance Metadata Service (VMs, VM scale sets, AKS nodes, Container Instances,
    /// or an IMDS-compatible host named by `AZURE_POD_IDENTITY_AUTHORITY_HOST`).
    Imds,
    /// App Service, Functions, Container Apps, Automation (api-version 2019-08-01).
    AppService,
    /// A Service Fabric application (api-version 2019-07-01-preview, pinned TLS).
    ServiceFabric,
    /// An Azure Arc-enabled server (api-version 2020-06-01, key-file challenge).
    AzureArc,
    /// An Azure Machine Learning compute instance or cluster (api-version 2017-09-01).
    AzureMl,
    /// Azure Cloud Shell (the signed-in user's token).
    CloudShell,
    /// Kubernetes workload identity: the service-account token exchanged with Microsoft Entra.
    WorkloadIdentity,
}

impl ManagedIdentitySource {
    /// A short stable name: `imds`, `app_service`, `service_fabric`, `azure_arc`, `azure_ml`,
    /// `cloud_shell`, `workload_identity`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Imds => "imds",
            Self::AppService => "app_service",
            Self::ServiceFabric => "service_fabric",
            Self::AzureArc => "azure_arc",
            Self::AzureMl => "azure_ml",
            Self::CloudShell => "cloud_shell",
            Self::WorkloadIdentity => "workload_identity",
        }
    }

    /// The name errors from this source carry.
    pub(crate) fn credential_name(self) -> &'static str {
        match self {
            Self::Imds => "ManagedIdentityCredential (IMDS)",
            Self::AppService => "ManagedIdentityCredential (App Service)",
            Self::ServiceFabric => "ManagedIdentityCredential (Service Fabric)",
            Self::AzureArc => "ManagedIdentityCredential (Azure Arc)",
            Self::AzureMl => "ManagedIdentityCredential (Azure ML)",
            Self::CloudShell => "ManagedIdentityCredential (Cloud Shell)",
            Self::WorkloadIdentity => "ManagedIdentityCredential (workload identity)",
        }
    }
}

impl fmt::Display for ManagedIdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options of a [`ManagedIdentityCredential`].
///
/// Public fields and `Default`, as every options struct here: set the fields you need and end
/// with `..Default::default()`.
///
/// ```
/// use azure_wi_identity::managed_identity::{ManagedIdentityCredentialOptions, UserAssignedId};
///
/// let options = ManagedIdentityCredentialOptions {
///     user_assigned_id: Some(UserAssignedId::ClientId("00000000-0000-0000-0000-000000000001".into())),
///     ..Default::default()
/// };
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManagedIdentityCredentialOptions {
    /// The user-assigned identity to use; `None` asks for the system-assigned identity (or, on
    /// IMDS, the only identity of a resource that has exactly one). Service Fabric and Cloud
    /// Shell cannot select one: the credential refuses to build there.
    pub user_assigned_id: Option<UserAssignedId>,
    /// Where the platform variables are read from (the process environment by default).
    pub env: Env,
    /// Probe IMDS before the first real request (a 1 s connect timeout, no retries), so that a
    /// credential chain moves on quickly where there is no IMDS. Set by the platform chain;
    /// ignored when `AZURE_POD_IDENTITY_AUTHORITY_HOST` names the endpoint.
    pub enable_imds_probe: bool,
    /// Skip the workload-identity branch of source selection (set by a chain that tries
    /// workload identity itself before managed identity).
    pub exclude_workload_identity: bool,
    /// The per-read timeout and the overall deadline of a token request (IMDS's default deadline
    /// is 120 s, for its maintenance retry schedule).
    pub timeouts: RequestTimeouts,
    /// The retry settings of every source, and the transport of the workload-identity branch's
    /// requests to Microsoft Entra ID. The metadata endpoints themselves (IMDS, App Service,
    /// Service Fabric, Azure Arc, Azure ML, Cloud Shell) always use the library's clients: no
    /// proxy, Service Fabric's pinned certificate (see [`Transport`](crate::Transport)).
    pub client_options: ClientOptions,
    /// Test seams: platform paths and the IMDS base URL. Only in the crate's own tests, so that
    /// every field of the struct stays public (`..Default::default()` needs that).
    #[cfg(test)]
    pub(crate) platform: PlatformPaths,
}

impl ManagedIdentityCredentialOptions {
    /// The platform locations: the defaults, or a test's replacements.
    pub(crate) fn platform(&self) -> &PlatformPaths {
        #[cfg(test)]
        {
            &self.platform
        }
        #[cfg(not(test))]
        {
            static PLATFORM_DEFAULTS: PlatformPaths = PlatformPaths {
                imds_base: None,
                arc_agent_file: None,
                arc_token_dir: None,
                arc_default_endpoint: None,
            };
            &PLATFORM_DEFAULTS
        }
    }
}

/// Platform locations, replaceable in tests.
#[derive(Clone, Debug, Default)]
pub(crate) struct PlatformPaths {
    /// The IMDS base URL, without turning the probe off (unlike
    /// `AZURE_POD_IDENTITY_AUTHORITY_HOST`).
    pub(crate) imds_base: Option<String>,
    /// The file whose presence means the Arc agent is installed.
    pub(crate) arc_agent_file: Option<PathBuf>,
    /// The directory the Arc agent writes challenge keys to.
    pub(crate) arc_token_dir: Option<PathBuf>,
    /// The endpoint used when Arc is detected by its agent file.
    pub(crate) arc_default_endpoint: Option<String>,
}

impl PlatformPaths {
    fn arc_agent_file(&self, env: &Env) -> Option<PathBuf> {
        self.arc_agent_file
            .clone()
            .or_else(|| arc_key_file::platform_agent_file(env))
    }
}

/// Picks the source from the environment, in azure-identity's order (see the module docs).
/// `arc_agent_installed` is whether the Arc agent's file exists.
pub(crate) fn select_source(
    env: &Env,
    arc_agent_installed: bool,
    exclude_workload_identity: bool,
) -> ManagedIdentitySource {
    use ManagedIdentitySource as S;
    if env.is_set(IDENTITY_ENDPOINT) {
        if env.is_set(IDENTITY_HEADER) {
            return if env.is_set(IDENTITY_SERVER_THUMBPRINT) {
                S::ServiceFabric
            } else {
                S::AppService
            };
        }
        if env.is_set(IMDS_ENDPOINT) {
            return S::AzureArc;
        }
        tracing::warn!(
            "IDENTITY_ENDPOINT is set without IDENTITY_HEADER or IMDS_ENDPOINT; it is ignored and the \
             managed identity source is chosen from the other variables"
        );
    }
    if env.is_set(MSI_ENDPOINT) {
        return if env.is_set(MSI_SECRET) {
            S::AzureMl
        } else {
            S::CloudShell
        };
    }
    if !exclude_workload_identity
        && [AZURE_AUTHORITY_HOST, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE]
            .iter()
            .all(|v| env.is_set(v))
    {
        return S::WorkloadIdentity;
    }
    if arc_agent_installed {
        return S::AzureArc;
    }
    S::Imds
}

/// `scopes` as the single AAD v1 resource the managed identity endpoints take: exactly one scope,
/// with a trailing `/.default` removed.
pub(crate) fn scope_to_resource(credential: &'static str, scopes: &[&str]) -> Result<String> {
    let [scope] = scopes else {
        return Err(Error::invalid_input(
            credential,
            format!(
                "managed identity requires exactly one scope per token request, got {}; request one \
                 scope such as https://management.azure.com/.default",
                scopes.len()
            ),
        ));
    };
    let resource = scope.strip_suffix("/.default").unwrap_or(scope);
    if resource.is_empty() || resource.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid_input(
            credential,
            format!(
                "the scope {scope:?} is not a resource URI; pass a scope such as https://vault.azure.net/.default"
            ),
        ));
    }
    Ok(resource.to_owned())
}

/// `base` with the query every managed identity endpoint takes: `api-version`, `resource`, and the
/// user-assigned identity under this platform's parameter name.
pub(crate) fn token_url(
    base: &Url,
    api_version: &str,
    resource: &str,
    user_assigned_id: Option<&UserAssignedId>,
    names: &user_assigned_id::SelectorNames,
) -> Url {
    let mut url = base.clone();
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("api-version", api_version)
            .append_pair("resource", resource);
        if let Some(id) = user_assigned_id {
            let (name, value) = id.query_pair(names);
            query.append_pair(name, value);
        }
    }
    url
}

/// The URL in variable `var`: an absolute URL with a host and no user info, https or plain http
/// to this machine or its link ([`PlainHttp::LoopbackOrLinkLocal`]). Errors quote the value with
/// any user info replaced by `***`.
pub(crate) fn endpoint_url(env: &Env, var: &str, credential: &'static str) -> Result<Url> {
    let value = env
        .var(var)
        .ok_or_else(|| Error::unavailable(credential, format!("{var} is not set")))?;
    let shown = plain_http::redact(&value);
    let url = Url::parse(value.trim()).map_err(|e| {
        Error::invalid_input(
            credential,
            format!("{var}={shown:?} is not a URL ({e}); it is set by the platform, check it"),
        )
    })?;
    plain_http::check(&url, PlainHttp::LoopbackOrLinkLocal).map_err(|e| {
        Error::invalid_input(
            credential,
            format!("{var}={shown:?} cannot be used: {e}; it is set by the platform, check it"),
        )
    })?;
    Ok(url)
}

/// The secret in variable `var`, and the header value carrying it (marked sensitive, so that
/// neither it nor its `Debug` is ever logged).
pub(crate) fn secret_header(env: &Env, var: &str, credential: &'static str) -> Result<(Secret, HeaderValue)> {
    let value = env
        .var(var)
        .ok_or_else(|| Error::unavailable(credential, format!("{var} is not set")))?;
    let mut header = HeaderValue::from_str(&value).map_err(|_| {
        Error::invalid_input(
            credential,
            format!("{var} holds characters that cannot be sent in an HTTP header"),
        )
    })?;
    header.set_sensitive(true);
    Ok((Secret::new(value), header))
}

/// The client of the local metadata endpoints, built on first use.
pub(crate) fn local_client() -> Result<reqwest::Client> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    built(&CLIENT, client_builder)
}

/// The client in `cell`, built on first use. Metadata endpoints are local and token requests rare:
/// never through a proxy, and no idle connections kept (a pooled connection would be tied to the
/// tokio runtime that opened it).
pub(crate) fn built(
    cell: &OnceLock<reqwest::Client>,
    builder: impl FnOnce() -> reqwest::ClientBuilder,
) -> Result<reqwest::Client> {
    if let Some(client) = cell.get() {
        return Ok(client.clone());
    }
    let client = builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| {
            Error::unavailable(
                "ManagedIdentityCredential",
                format!("the HTTP client cannot be built: {e}"),
            )
            .with_source(e)
        })?;
    Ok(cell.get_or_init(|| client).clone())
}

/// One of the HTTP endpoint sources.
#[derive(Debug)]
enum Endpoint {
    Imds(imds::Imds),
    AppService(SecretEndpoint),
    ServiceFabric(service_fabric::ServiceFabric),
    AzureArc(azure_arc::AzureArc),
    AzureMl(SecretEndpoint),
    CloudShell(cloud_shell::CloudShell),
}

impl Endpoint {
    /// One token request under the overall deadline of `timeouts`.
    async fn request_token(
        &self,
        resource: &str,
        claims: bool,
        timeouts: &RequestTimeouts,
    ) -> Result<AccessToken> {
        tracing::debug!(
            source = self.source().as_str(),
            resource,
            claims,
            "requesting a managed identity token"
        );
        let deadline = match self {
            Self::Imds(_) => timeouts.imds_deadline(),
            _ => timeouts.deadline(),
        };
        let limits = Limits::start(timeouts.read_timeout(), deadline);
        let request = async {
            match self {
                Self::Imds(s) => s.request_token(resource, limits).await,
                Self::AppService(s) => s.request_token(resource, limits).await,
                Self::ServiceFabric(s) => s.request_token(resource, claims, limits).await,
                Self::AzureArc(s) => s.request_token(resource, limits).await,
                Self::AzureMl(s) => s.request_token(resource, limits).await,
                Self::CloudShell(s) => s.request_token(resource, limits).await,
            }
        };
        let name = self.source().credential_name();
        let endpoint = format!("the {} endpoint", self.source());
        let result = with_deadline(deadline, &endpoint, request, |message| {
            Error::unavailable(name, message)
        })
        .await;
        if let Err(error) = &result {
            tracing::debug!(source = self.source().as_str(), resource, kind = %error.kind(), %error, "managed identity token request failed");
        }
        result
    }

    fn source(&self) -> ManagedIdentitySource {
        match self {
            Self::Imds(_) => ManagedIdentitySource::Imds,
            Self::AppService(_) => ManagedIdentitySource::AppService,
            Self::ServiceFabric(_) => ManagedIdentitySource::ServiceFabric,
            Self::AzureArc(_) => ManagedIdentitySource::AzureArc,
            Self::AzureMl(_) => ManagedIdentitySource::AzureMl,
            Self::CloudShell(_) => ManagedIdentitySource::CloudShell,
        }
    }
}

enum Inner {
    Endpoint {
        endpoint: Arc<Endpoint>,
        cache: TokenCache,
        timeouts: RequestTimeouts,
    },
    WorkloadIdentity(Arc<dyn TokenCredential>),
}

/// Authenticates as the managed identity of the Azure resource the code runs on.
///
/// The source (IMDS, App Service, Service Fabric, Azure Arc, Azure ML, Cloud Shell, or workload
/// identity token exchange) is chosen once, by [`ManagedIdentityCredential::new`], from the
/// environment; [`ManagedIdentityCredential::source`] tells which. Tokens are cached per scope:
/// a cached token is served until its refresh time, and concurrent callers share one request.
///
/// Managed identity takes exactly one scope per request, ignores `tenant_id` and `enable_cae`,
/// and treats `claims` as "fetch a new token" (the endpoints take no claims).
///
/// ```no_run
/// use azure_wi_identity::{TokenCredential, managed_identity::ManagedIdentityCredential};
///
/// # async fn run() -> azure_wi_identity::Result<()> {
/// let credential = ManagedIdentityCredential::new(None)?;
/// let token = credential.get_token(&["https://vault.azure.net/.default"], None).await?;
/// # Ok(()) }
/// ```
pub struct ManagedIdentityCredential {
    source: ManagedIdentitySource,
    inner: Inner,
}

impl ManagedIdentityCredential {
    /// Chooses the source from the environment and validates its configuration.
    ///
    /// Fails with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when a
    /// variable of the chosen source is malformed, or when a user-assigned identity is asked for
    /// on a platform that cannot select one (Service Fabric, Cloud Shell).
    pub fn new(options: Option<ManagedIdentityCredentialOptions>) -> Result<Arc<Self>> {
        let options = options.unwrap_or_default();
        if let Some(id) = &options.user_assigned_id {
            id.validate().map_err(|m| Error::invalid_input(CREDENTIAL, m))?;
        }
        let env = &options.env;
        let agent_installed = options
            .platform()
            .arc_agent_file(env)
            .as_deref()
            .is_some_and(Path::exists);
        let source = select_source(env, agent_installed, options.exclude_workload_identity);
        tracing::debug!(source = source.as_str(), "managed identity source selected");
        let id = options.user_assigned_id.clone();
        // azure-core's schedule, or the caller's (IMDS and Service Fabric apply it to their own).
        let retry = options.client_options.retry.policy(&RetryPolicy::DEFAULT);
        let endpoint = match source {
            ManagedIdentitySource::WorkloadIdentity => {
                let credential = workload_identity::delegate(
                    id,
                    env.clone(),
                    options.timeouts,
                    options.client_options.clone(),
                )?;
                return Ok(Arc::new(Self {
                    source,
                    inner: Inner::WorkloadIdentity(credential),
                }));
            }
            ManagedIdentitySource::Imds => Endpoint::Imds(imds::Imds::new(&options)?),
            ManagedIdentitySource::AppService => {
                Endpoint::AppService(SecretEndpoint::new(env, &app_service::PLATFORM, id, retry)?)
            }
            ManagedIdentitySource::ServiceFabric => Endpoint::ServiceFabric(
                service_fabric::ServiceFabric::new(env, id.as_ref(), &options.client_options.retry)?,
            ),
            ManagedIdentitySource::AzureArc => Endpoint::AzureArc(azure_arc::AzureArc::new(&options)?),
            ManagedIdentitySource::AzureMl => {
                Endpoint::AzureMl(SecretEndpoint::new(env, &azure_ml::PLATFORM, id, retry)?)
            }
            ManagedIdentitySource::CloudShell => {
                Endpoint::CloudShell(cloud_shell::CloudShell::new(env, id.as_ref(), retry)?)
            }
        };
        Ok(Arc::new(Self {
            source,
            inner: Inner::Endpoint {
                endpoint: Arc::new(endpoint),
                cache: TokenCache::new(),
                timeouts: options.timeouts,
            },
        }))
    }

    /// The source chosen at construction.
    pub fn source(&self) -> ManagedIdentitySource {
        self.source
    }
}

impl fmt::Debug for ManagedIdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("ManagedIdentityCredential");
        s.field("source", &self.source);
        match &self.inner {
            Inner::Endpoint { endpoint, .. } => s.field("endpoint", endpoint),
            Inner::WorkloadIdentity(credential) => s.field("credential", credential),
        };
        s.finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl TokenCredential for ManagedIdentityCredential {
    async fn get_token(&self, scopes: &[&str], options: Option<TokenRequestOptions>) -> Result<AccessToken> {
        let (endpoint, cache, timeouts) = match &self.inner {
            Inner::WorkloadIdentity(credential) => return credential.get_token(scopes, options).await,
            Inner::Endpoint {
                endpoint,
                cache,
                timeouts,
            } => (endpoint, cache, *timeouts),
        };
        // The cache first, before validating the scope and building the resource: a fresh token
        // cached under these scopes (only scopes that passed `scope_to_resource` ever reach the
        // cache) answers. See BENCHMARKS.md.
        let wants_claims = options
            .as_ref()
            .and_then(|o| o.claims.as_deref())
            .is_some_and(|c| !c.is_empty());
        if !wants_claims && let Some(token) = cache.fresh(scopes, None) {
            return Ok(token);
        }
        self.fetch_token(endpoint, cache, timeouts, scopes, options).await
    }
}

impl ManagedIdentityCredential {
    /// The cache miss: validates the scope, then fetches (or joins a fetch in flight).
    async fn fetch_token(
        &self,
        endpoint: &Arc<Endpoint>,
        cache: &TokenCache,
        timeouts: RequestTimeouts,
        scopes: &[&str],
        options: Option<TokenRequestOptions>,
    ) -> Result<AccessToken> {
        let resource = scope_to_resource(self.source.credential_name(), scopes)?;
        // Managed identity ignores tenant_id and enable_cae: they must not split the cache.
        let claims = options.and_then(|o| o.claims).filter(|c| !c.is_empty());
        let has_claims = claims.is_some();
        let key_options = claims.map(|c| TokenRequestOptions {
            claims: Some(c),
            ..Default::default()
        });
        let endpoint = endpoint.clone();
        cache
            .get_token(scopes, key_options.as_ref(), move || async move {
                endpoint.request_token(&resource, has_claims, &timeouts).await
            })
            .await
    }
}
