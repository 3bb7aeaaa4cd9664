//! The shape App Service and Azure ML share: the token endpoint comes from one environment
//! variable and a platform secret, sent as a request header, from another; a GET with the
//! resource and the user-assigned id in the query.

use std::fmt;

use reqwest::header::HeaderValue;
use url::Url;

use super::{
    UserAssignedId, endpoint_url, local_client,
    response::{Received, send},
    secret_header, token_url,
    user_assigned_id::SelectorNames,
};
use crate::{
    AccessToken, Env, Error, Result, Secret,
    http::{Limits, RetryPolicy},
};

/// What differs between the platforms that use this shape.
pub(crate) struct Platform {
    /// The credential name errors carry.
    pub(crate) name: &'static str,
    pub(crate) endpoint_var: &'static str,
    pub(crate) secret_var: &'static str,
    pub(crate) api_version: &'static str,
    /// The query parameter names of a user-assigned id.
    pub(crate) names: &'static SelectorNames,
    /// The request header that carries the secret.
    pub(crate) secret_header: &'static str,
    /// Whether `Metadata: true` is sent too.
    pub(crate) metadata: bool,
    /// The platform in "did not answer like {description} identity endpoint".
    pub(crate) description: &'static str,
    /// What to check after a JSON answer other than a token with this HTTP status.
    pub(crate) hint: fn(&SecretEndpoint, u16) -> String,
}

/// An endpoint guarded by a secret header.
pub(crate) struct SecretEndpoint {
    platform: &'static Platform,
    pub(crate) url: Url,
    pub(crate) secret: Secret,
    header: HeaderValue,
    pub(crate) user_assigned_id: Option<UserAssignedId>,
    client: reqwest::Client,
    retry: RetryPolicy,
}

impl fmt::Debug for SecretEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.platform.name)
            .field("url", &self.url.as_str())
            .field(self.platform.secret_var, &self.secret)
            .field("user_assigned_id", &self.user_assigned_id)
            .finish()
    }
}

impl SecretEndpoint {
    /// Reads the platform's endpoint variable (an http(s) URL) and secret variable (a valid
    /// header value); either missing makes the source unavailable.
    pub(crate) fn new(
        env: &Env,
        platform: &'static Platform,
        user_assigned_id: Option<UserAssignedId>,
        retry: RetryPolicy,
    ) -> Result<Self> {
        let url = endpoint_url(env, platform.endpoint_var, platform.name)?;
        let (secret, header) = secret_header(env, platform.secret_var, platform.name)?;
        Ok(Self {
            platform,
            url,
            secret,
            header,
            user_assigned_id,
            client: local_client()?,
            retry,
        })
    }

    /// `GET {url}?api-version=..&resource=..[&<id parameter>]` with the secret header, retried by
    /// the source's policy; an answer other than a token is explained by [`Self::refusal`].
    pub(crate) async fn request_token(&self, resource: &str, limits: Limits) -> Result<AccessToken> {
        let p = self.platform;
        let url = token_url(
            &self.url,
            p.api_version,
            resource,
            self.user_assigned_id.as_ref(),
            p.names,
        );
        let build = || {
            let request = self
                .client
                .get(url.clone())
                .header(p.secret_header, self.header.clone());
            if p.metadata {
                request.header("Metadata", "true")
            } else {
                request
            }
        };
        let (received, request_time) = send(p.name, self.url.as_str(), build, &self.retry, limits).await?;
        if received.is_success() {
            return Ok(received.token(p.name, request_time)?.token);
        }
        Err(self.refusal(&received))
    }

    /// Explains an answer other than a token: an endpoint that does not speak JSON is not this
    /// platform's (unavailable); otherwise the server's message and the platform's hint.
    fn refusal(&self, received: &Received) -> Error {
        let p = self.platform;
        let server = received.server_message(&[&self.secret]);
        if !received.speaks_json() {
            return Error::unavailable(
                p.name,
                format!(
                    "{}={} did not answer like {} identity endpoint ({server})",
                    p.endpoint_var, self.url, p.description
                ),
            );
        }
        let hint = (p.hint)(self, received.status);
        Error::authentication_failed(p.name, format!("{server}; {hint}")).with_status(received.status)
    }
}
