//! Azure Arc-enabled servers (the HIMDS agent; api-version 2020-06-01).
//!
//! 1. `GET {endpoint}?api-version=2020-06-01&resource=R[&client_id|&object_id|&msi_res_id]` with
//!    `Metadata: true`; the agent answers `401` with `WWW-Authenticate: Basic realm=<key file>`.
//! 2. The key file is read under the rules of [`super::arc_key_file`] (only a `.key` file of at
//!    most 4096 bytes inside the platform's token directory).
//! 3. The same GET again with `Authorization: Basic <key file contents>`.
//!
//! The endpoint is `IDENTITY_ENDPOINT` when `IDENTITY_ENDPOINT` and `IMDS_ENDPOINT` are set, else
//! the agent's default `http://localhost:40342/metadata/identity/oauth2/token`. When a
//! user-assigned identity is asked for, the response must echo it (older agents ignore the
//! selector and return the machine's system identity): a token that does not is refused.

use std::{fmt, path::PathBuf};

use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::Value;
use url::Url;

use super::{
    IDENTITY_ENDPOINT, IMDS_ENDPOINT, ManagedIdentityCredentialOptions, UserAssignedId,
    arc_key_file::{platform_token_dir, read_key, realm_path},
    endpoint_url, local_client,
    response::{Received, send},
    token_url,
    user_assigned_id::IMDS_NAMES,
};
use crate::{
    AccessToken, Error, Result, Secret,
    http::{Limits, RetryPolicy},
    token_response::TokenResponse,
};

const NAME: &str = "ManagedIdentityCredential (Azure Arc)";
const API_VERSION: &str = "2020-06-01";
const AGENT_ENDPOINT: &str = "http://localhost:40342/metadata/identity/oauth2/token";

/// The Azure Arc source.
pub(crate) struct AzureArc {
    url: Url,
    token_dir: PathBuf,
    user_assigned_id: Option<UserAssignedId>,
    client: reqwest::Client,
    retry: RetryPolicy,
}

impl fmt::Debug for AzureArc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureArc")
            .field("url", &self.url.as_str())
            .field("token_dir", &self.token_dir)
            .field("user_assigned_id", &self.user_assigned_id)
            .finish()
    }
}

impl AzureArc {
    pub(crate) fn new(options: &ManagedIdentityCredentialOptions) -> Result<Self> {
        let env = &options.env;
        let url = if env.is_set(IDENTITY_ENDPOINT) && env.is_set(IMDS_ENDPOINT) {
            endpoint_url(env, IDENTITY_ENDPOINT, NAME)?
        } else {
            let agent = options
                .platform()
                .arc_default_endpoint
                .as_deref()
                .unwrap_or(AGENT_ENDPOINT);
            Url::parse(agent).map_err(|e| {
                Error::invalid_input(NAME, format!("the agent endpoint {agent} is not a URL: {e}"))
            })?
        };
        let token_dir = match options
            .platform()
            .arc_token_dir
            .clone()
            .or_else(|| platform_token_dir(env))
        {
            Some(dir) => dir,
            None if cfg!(windows) => {
                return Err(Error::invalid_input(
                    NAME,
                    "PROGRAMDATA is not set, so the Azure Arc token directory cannot be located; set it (usually C:\\ProgramData)",
                ));
            }
            None => {
                return Err(Error::unavailable(
                    NAME,
                    "Azure Arc managed identity is only supported on Linux and Windows",
                ));
            }
        };
        Ok(Self {
            url,
            token_dir,
            user_assigned_id: options.user_assigned_id.clone(),
            client: local_client()?,
            retry: options.client_options.retry.policy(&RetryPolicy::DEFAULT),
        })
    }

    pub(crate) async fn request_token(&self, resource: &str, limits: Limits) -> Result<AccessToken> {
        let url = token_url(
            &self.url,
            API_VERSION,
            resource,
            self.user_assigned_id.as_ref(),
            &IMDS_NAMES,
        );
        let first = || self.client.get(url.clone()).header("Metadata", "true");
        let (challenge, _) = send(NAME, self.url.as_str(), first, &self.retry, limits).await?;
        if challenge.status != 401 {
            return Err(self.refusal(&challenge, "expected a 401 challenge", &[]));
        }
        let failed = |e: super::arc_key_file::KeyFileError| {
            let message = format!("{e}; the agent's challenge was not answered");
            Error::authentication_failed(NAME, message).with_source(e)
        };
        let realm = realm_path(challenge.www_authenticate.as_deref()).map_err(failed)?;
        let key = read_key(&realm, &self.token_dir).await.map_err(failed)?;
        let mut authorization = HeaderValue::from_str(&format!("Basic {}", key.secret())).map_err(|_| {
            Error::authentication_failed(
                NAME,
                format!("the challenge key file {realm:?} does not hold a printable key"),
            )
        })?;
        authorization.set_sensitive(true);

        let second = || {
            self.client
                .get(url.clone())
                .header("Metadata", "true")
                .header(AUTHORIZATION, authorization.clone())
        };
        let (received, request_time) = send(NAME, self.url.as_str(), second, &self.retry, limits).await?;
        if !received.is_success() {
            // The key is scrubbed from what is quoted: an agent may echo the Authorization value.
            return Err(self.refusal(&received, "the challenge key was not accepted", &[&key]));
        }
        let parsed = received.token(NAME, request_time)?;
        if let Some(id) = &self.user_assigned_id {
            Self::check_echo(id, &parsed, &received)?;
        }
        Ok(parsed.token)
    }

    /// Refuses a token that does not name the requested user-assigned identity.
    fn check_echo(id: &UserAssignedId, parsed: &TokenResponse, received: &Received) -> Result<()> {
        // App Service-style agents may echo a resource id as `mi_res_id`.
        let mi_res_id = received
            .json()
            .and_then(|j| j.get("mi_res_id").and_then(Value::as_str).map(str::to_owned));
        let candidates: Vec<(&str, Option<&str>)> = match id {
            UserAssignedId::ClientId(_) => vec![("client_id", parsed.client_id.as_deref())],
            UserAssignedId::ObjectId(_) => vec![("object_id", parsed.object_id.as_deref())],
            UserAssignedId::ResourceId(_) => {
                vec![
                    ("msi_res_id", parsed.msi_res_id.as_deref()),
                    ("mi_res_id", mi_res_id.as_deref()),
                ]
            }
        };
        let echoed = candidates.into_iter().find_map(|(f, v)| v.map(|v| (f, v)));
        match echoed {
            Some((_, value)) if value.eq_ignore_ascii_case(id.value()) => Ok(()),
            other => {
                let (name, _) = id.query_pair(&IMDS_NAMES);
                let seen = match other {
                    Some((field, value)) => format!("it names {field}={value}"),
                    None => format!("it has no {name} field"),
                };
                Err(Error::authentication_failed(
                    NAME,
                    format!(
                        "Azure Arc did not confirm the requested user-assigned identity ({id}): {seen}. Agents \
                         too old to select user-assigned identities return the machine's system-assigned \
                         identity instead; update the Azure Connected Machine agent, or remove the \
                         user-assigned id to use the system-assigned identity"
                    ),
                ))
            }
        }
    }

    fn refusal(&self, received: &Received, context: &str, secrets: &[&Secret]) -> Error {
        let server = received.server_message(secrets);
        if !received.speaks_json() && !received.is_success() {
            return Error::unavailable(
                NAME,
                format!(
                    "{} did not answer like the Azure Arc agent ({context}; {server}); is himds running?",
                    self.url
                ),
            );
        }
        let hint = match (&self.user_assigned_id, received.status) {
            (Some(id), 400 | 404) => {
                let (name, value) = id.query_pair(&IMDS_NAMES);
                format!(
                    "; the identity with {} {value} (sent as {name}={value}) may not be assigned to this machine",
                    id.kind_name()
                )
            }
            _ => String::new(),
        };
        Error::authentication_failed(NAME, format!("{context}: {server}{hint}")).with_status(received.status)
    }
}
