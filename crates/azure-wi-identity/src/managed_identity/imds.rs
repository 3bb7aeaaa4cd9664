//! The Azure Instance Metadata Service (VMs, scale sets, AKS nodes, Container Instances, and
//! IMDS-compatible hosts such as pod identity).
//!
//! `GET {base}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=R[&client_id|&object_id|&msi_res_id]`
//! with `Metadata: true`; `base` is `AZURE_POD_IDENTITY_AUTHORITY_HOST` (trailing `/` removed) or
//! `http://169.254.169.254`. Retried on 404, 410, 429 and 5xx with the IMDS schedule.
//!
//! Inside a credential chain the first request is preceded by a probe: the same GET without the
//! `Metadata` header, a 1 s connect timeout and no retry. Any HTTP answer proves IMDS exists (the
//! expected one is a 400 for the missing header) and is remembered; no answer, or Docker Desktop's
//! 403 "unreachable network", makes the credential unavailable and is not remembered.

use std::{
    fmt,
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use url::Url;

use super::{
    AZURE_POD_IDENTITY_AUTHORITY_HOST, ManagedIdentityCredentialOptions, ManagedIdentitySource,
    UserAssignedId, built,
    response::{Received, error_chain, send},
    user_assigned_id::IMDS_NAMES,
};
use crate::{
    AccessToken, Error, Result,
    http::{Limits, RetryPolicy, client_builder},
    plain_http::{self, PlainHttp},
};

const NAME: &str = "ManagedIdentityCredential (IMDS)";
const DEFAULT_BASE: &str = "http://169.254.169.254";
const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
const API_VERSION: &str = "2018-02-01";
/// Connect timeout of real requests (azure-identity's IMDS pipeline).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Connect timeout of the probe.
pub(crate) const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a probe may take in all: a listener that accepts but never answers is not IMDS.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The IMDS source.
pub(crate) struct Imds {
    url: Url,
    user_assigned_id: Option<UserAssignedId>,
    /// `Some` when the probe is on; holds whether it has succeeded.
    probe: Option<AtomicBool>,
    client: reqwest::Client,
    retry: RetryPolicy,
}

impl fmt::Debug for Imds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imds")
            .field("url", &self.url.as_str())
            .field("user_assigned_id", &self.user_assigned_id)
            .field("probe", &self.probe.is_some())
            .finish()
    }
}

impl Imds {
    pub(crate) fn new(options: &ManagedIdentityCredentialOptions) -> Result<Self> {
        let pod_identity = options.env.var(AZURE_POD_IDENTITY_AUTHORITY_HOST);
        let base = pod_identity
            .clone()
            .or_else(|| options.platform().imds_base.clone());
        let url = match base {
            Some(base) => parse_base(&base, pod_identity.is_some())?,
            None => Url::parse(&format!("{DEFAULT_BASE}{TOKEN_PATH}")).expect("the IMDS URL is valid"),
        };
        let probe = (options.enable_imds_probe && pod_identity.is_none()).then(|| AtomicBool::new(false));
        Ok(Self {
            url,
            user_assigned_id: options.user_assigned_id.clone(),
            probe,
            client: imds_client()?,
            retry: options.client_options.retry.policy(&RetryPolicy::IMDS),
        })
    }

    pub(crate) async fn request_token(&self, resource: &str, limits: Limits) -> Result<AccessToken> {
        let url = self.token_url(resource);
        if let Some(probed) = &self.probe
            && !probed.load(Ordering::Acquire)
        {
            probe(&url).await?;
            probed.store(true, Ordering::Release);
        }
        let build = || self.client.get(url.clone()).header("Metadata", "true");
        let (received, request_time) = send(NAME, self.url.as_str(), build, &self.retry, limits).await?;
        if received.is_success() && received.speaks_json() {
            return Ok(received.token(NAME, request_time)?.token);
        }
        Err(self.refusal(&received))
    }

    fn token_url(&self, resource: &str) -> Url {
        super::token_url(
            &self.url,
            API_VERSION,
            resource,
            self.user_assigned_id.as_ref(),
            &IMDS_NAMES,
        )
    }

    /// The error for a non-2xx answer (after retries).
    fn refusal(&self, received: &Received) -> Error {
        let server = received.server_message(&[]);
        if received.status == 400 {
            // azure-identity: the identity is not there; a chain may try something else.
            return Error::unavailable(NAME, self.identity_not_found(&server));
        }
        if is_docker_desktop_refusal(received) {
            return Error::unavailable(NAME, docker_desktop_message(&server));
        }
        if !received.speaks_json() {
            return Error::unavailable(
                NAME,
                format!(
                    "the endpoint {} answered with something that is not IMDS ({server}); this is not an \
                     Azure VM, scale set or AKS node",
                    self.url
                ),
            );
        }
        let hint = match received.status {
            429 => {
                "IMDS throttles callers that do not cache tokens; reuse one credential instead of creating one per request"
            }
            404 | 410 | 500..=599 => "IMDS kept failing after 5 retries; it may be updating, try again later",
            _ => "check the managed identity configuration of this resource",
        };
        Error::authentication_failed(NAME, format!("{server}; {hint}")).with_status(received.status)
    }

    fn identity_not_found(&self, server: &str) -> String {
        match &self.user_assigned_id {
            Some(id) => {
                let (name, value) = id.query_pair(&IMDS_NAMES);
                format!(
                    "the user-assigned identity with {} {value} (sent as {name}={value}) is not assigned to \
                     this resource ({server}); assign it to the VM, scale set or AKS node pool \
                     (`az vm identity assign --identities <resource id>`), or correct the {}",
                    id.kind_name(),
                    id.kind_name()
                )
            }
            None => format!(
                "no system-assigned identity is enabled on this resource, or it has several user-assigned \
                 identities and none was selected ({server}); enable the system-assigned identity, or \
                 select a user-assigned identity by client id, object id or resource id"
            ),
        }
    }
}

/// The probe: any HTTP answer means IMDS exists.
async fn probe(url: &Url) -> Result<()> {
    let attempt = async {
        let response = probe_client()?
            .get(url.clone())
            .send()
            .await
            .map_err(|e| no_response(url, &e))?;
        Received::read(response, None)
            .await
            .map_err(|e| no_response(url, &e))
    };
    let received = attempt.await?;
    if is_docker_desktop_refusal(&received) {
        return Err(Error::unavailable(
            NAME,
            docker_desktop_message(&received.server_message(&[])),
        ));
    }
    tracing::debug!(status = received.status, "IMDS probe answered");
    Ok(())
}

fn no_response(url: &Url, e: &(dyn std::error::Error + 'static)) -> Error {
    Error::unavailable(
        NAME,
        format!(
            "no response from the IMDS endpoint {} ({}); this is not an Azure VM, scale set or AKS node \
             with a managed identity",
            url.as_str().split('?').next().unwrap_or_default(),
            error_chain(e)
        ),
    )
}

/// Docker Desktop answers requests to 169.254.169.254 with 403 "...unreachable network".
fn is_docker_desktop_refusal(received: &Received) -> bool {
    received.status == 403 && received.text().contains("unreachable")
}

fn docker_desktop_message(server: &str) -> String {
    format!(
        "the IMDS endpoint is unreachable from here ({server}); this is not an Azure VM, scale set or AKS node"
    )
}

fn parse_base(base: &str, from_env: bool) -> Result<Url> {
    let what = if from_env {
        AZURE_POD_IDENTITY_AUTHORITY_HOST
    } else {
        "the IMDS base URL"
    };
    let bad = |why: &str| {
        Error::invalid_input(
            ManagedIdentitySource::Imds.credential_name(),
            format!(
                "{what}={:?} {why}; set it to a URL such as http://169.254.169.254",
                plain_http::redact(base)
            ),
        )
    };
    let url = Url::parse(&format!("{}{TOKEN_PATH}", base.trim_end_matches('/')))
        .map_err(|_| bad("is not a URL"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    plain_http::check(&url, PlainHttp::LoopbackOrLinkLocal)
        .map_err(|e| bad(&format!("cannot be used: {e}")))?;
    Ok(url)
}

fn imds_client() -> Result<reqwest::Client> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    built(&CLIENT, || client_builder().connect_timeout(CONNECT_TIMEOUT))
}

fn probe_client() -> Result<reqwest::Client> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    built(&CLIENT, || {
        client_builder()
            .connect_timeout(PROBE_CONNECT_TIMEOUT)
            .timeout(PROBE_TIMEOUT)
    })
}
