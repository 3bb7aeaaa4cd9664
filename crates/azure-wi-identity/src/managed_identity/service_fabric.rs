//! Service Fabric applications (api-version 2019-07-01-preview).
//!
//! `GET {IDENTITY_ENDPOINT}?api-version=2019-07-01-preview&resource=R` with
//! `Secret: {IDENTITY_HEADER}`, over https only, to a server whose leaf certificate has the SHA-1
//! thumbprint `IDENTITY_SERVER_THUMBPRINT` (see [`super::thumbprint`]): a plain http endpoint is
//! refused when the credential is built, a certificate mismatch ends the handshake, and in both
//! cases the secret is never sent. A claims-driven refresh also sends
//! `token_sha256_to_refresh` (the hex SHA-256 of the token being replaced), as MSAL does. The
//! identity is configured in the application manifest: a user-assigned id cannot be selected.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
};

use reqwest::header::HeaderValue;
use url::Url;

use super::{
    IDENTITY_ENDPOINT, IDENTITY_HEADER, IDENTITY_SERVER_THUMBPRINT, UserAssignedId, endpoint_url,
    response::{Received, send},
    secret_header,
    thumbprint::{Thumbprint, ThumbprintVerifier},
};
use crate::{
    AccessToken, Env, Error, Result, RetryOptions, Secret,
    http::{Limits, RetryPolicy, client_builder},
};

const NAME: &str = "ManagedIdentityCredential (Service Fabric)";
const API_VERSION: &str = "2019-07-01-preview";

/// azure-core's defaults, except that a refused connection or handshake (a thumbprint mismatch
/// is one) is not retried: it is not transient.
const POLICY: RetryPolicy = RetryPolicy {
    max_connect_retries: 0,
    ..RetryPolicy::DEFAULT
};

/// The Service Fabric source.
pub(crate) struct ServiceFabric {
    url: Url,
    secret: Secret,
    header: HeaderValue,
    thumbprint: Thumbprint,
    /// The certificate thumbprint of the last refused handshake, set by the verifier.
    mismatch: Arc<Mutex<Option<Thumbprint>>>,
    /// The last token issued per resource, for `token_sha256_to_refresh`.
    issued: Mutex<HashMap<String, Secret>>,
    client: reqwest::Client,
    retry: RetryPolicy,
}

impl fmt::Debug for ServiceFabric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceFabric")
            .field("url", &self.url.as_str())
            .field("identity_header", &self.secret)
            .field("server_thumbprint", &self.thumbprint)
            .finish()
    }
}

impl ServiceFabric {
    pub(crate) fn new(
        env: &Env,
        user_assigned_id: Option<&UserAssignedId>,
        retry: &RetryOptions,
    ) -> Result<Self> {
        if let Some(id) = user_assigned_id {
            return Err(Error::invalid_input(
                NAME,
                format!(
                    "Service Fabric cannot select a user-assigned identity at request time (asked for {id}); \
                     the application's identity is set in its manifest. Remove the user-assigned id"
                ),
            ));
        }
        let url = endpoint_url(env, IDENTITY_ENDPOINT, NAME)?;
        if url.scheme() != "https" {
            return Err(Error::invalid_input(
                NAME,
                format!(
                    "{IDENTITY_ENDPOINT}={url} is not https; Service Fabric's token endpoint must be reached \
                     over TLS so that {IDENTITY_HEADER} is only sent to the pinned server"
                ),
            ));
        }
        let (secret, header) = secret_header(env, IDENTITY_HEADER, NAME)?;
        let thumbprint_text = env.var(IDENTITY_SERVER_THUMBPRINT).unwrap_or_default();
        let thumbprint = Thumbprint::parse(&thumbprint_text).map_err(|m| Error::invalid_input(NAME, m))?;
        let mismatch = Arc::new(Mutex::new(None));
        let tls = ThumbprintVerifier::client_config(thumbprint, mismatch.clone())
            .map_err(|e| Error::unavailable(NAME, format!("TLS cannot be configured: {e}")))?;
        let client = client_builder()
            .tls_backend_preconfigured(tls)
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| Error::unavailable(NAME, format!("the HTTP client cannot be built: {e}")))?;
        Ok(Self {
            url,
            secret,
            header,
            thumbprint,
            mismatch,
            issued: Mutex::new(HashMap::new()),
            client,
            // A caller's schedule too never retries a refused handshake.
            retry: RetryPolicy {
                max_connect_retries: 0,
                ..retry.policy(&POLICY)
            },
        })
    }

    pub(crate) async fn request_token(
        &self,
        resource: &str,
        claims: bool,
        limits: Limits,
    ) -> Result<AccessToken> {
        let replaced = if claims {
            self.issued.lock().expect("issued tokens").get(resource).cloned()
        } else {
            None
        };
        let mut url = self.url.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("api-version", API_VERSION)
                .append_pair("resource", resource);
            if let Some(token) = &replaced {
                query.append_pair("token_sha256_to_refresh", &sha256_hex(token.secret()));
            }
        }
        let build = || self.client.get(url.clone()).header("Secret", self.header.clone());
        let (received, request_time) = match send(NAME, self.url.as_str(), build, &self.retry, limits).await {
            Ok(answer) => answer,
            Err(e) => return Err(self.pinning_failure().unwrap_or(e)),
        };
        if !received.is_success() {
            return Err(self.refusal(&received));
        }
        let token = received.token(NAME, request_time)?.token;
        self.issued
            .lock()
            .expect("issued tokens")
            .insert(resource.to_owned(), token.token.clone());
        Ok(token)
    }

    /// A thumbprint mismatch is a failure (someone else answered), not an absent endpoint.
    fn pinning_failure(&self) -> Option<Error> {
        let actual = self.mismatch.lock().expect("mismatch").take()?;
        Some(Error::authentication_failed(
            NAME,
            format!(
                "the server at {} presented a certificate with SHA-1 thumbprint {actual}, not the \
                 {IDENTITY_SERVER_THUMBPRINT} {}; {IDENTITY_HEADER} was not sent. If the cluster certificate \
                 was rotated, restart the application so that it gets the new thumbprint",
                self.url, self.thumbprint
            ),
        ))
    }

    fn refusal(&self, received: &Received) -> Error {
        let server = received.server_message(&[&self.secret]);
        let code = received
            .json()
            .and_then(|j| j.pointer("/error/code")?.as_str().map(str::to_owned));
        let hint = match code.as_deref() {
            Some("SecretHeaderNotFound") => {
                format!("{IDENTITY_HEADER} was refused; it is set by the platform")
            }
            Some("ManagedIdentityNotFound") => {
                "the application has no managed identity; configure one in its application manifest"
                    .to_owned()
            }
            Some("ArgumentNullOrEmpty") => "the resource is missing or malformed; check the scope".to_owned(),
            _ => "check the application's managed identity configuration".to_owned(),
        };
        if !received.speaks_json() {
            return Error::unavailable(
                NAME,
                format!(
                    "{IDENTITY_ENDPOINT}={} did not answer like Service Fabric ({server})",
                    self.url
                ),
            );
        }
        Error::authentication_failed(NAME, format!("{server}; {hint}")).with_status(received.status)
    }
}

fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
