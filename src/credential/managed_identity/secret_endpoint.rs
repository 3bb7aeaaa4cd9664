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
use crate::credential::{AccessToken, Env, Result, Secret, http::RetryPolicy};

/// An endpoint guarded by a secret header.
pub(crate) struct SecretEndpoint {
    /// The credential name errors carry.
    pub(crate) name: &'static str,
    /// The variable the secret came from (named in `Debug` and in hints).
    secret_var: &'static str,
    pub(crate) url: Url,
    pub(crate) secret: Secret,
    header: HeaderValue,
    pub(crate) user_assigned_id: Option<UserAssignedId>,
    client: reqwest::Client,
}

impl fmt::Debug for SecretEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.name)
            .field("url", &self.url.as_str())
            .field(self.secret_var, &self.secret)
            .field("user_assigned_id", &self.user_assigned_id)
            .finish()
    }
}

impl SecretEndpoint {
    /// Reads `endpoint_var` (an http(s) URL) and `secret_var` (a valid header value); either
    /// missing makes the source unavailable.
    pub(crate) fn new(
        env: &Env,
        name: &'static str,
        endpoint_var: &'static str,
        secret_var: &'static str,
        user_assigned_id: Option<UserAssignedId>,
    ) -> Result<Self> {
        let url = endpoint_url(env, endpoint_var, name)?;
        let (secret, header) = secret_header(env, secret_var, name)?;
        Ok(Self {
            name,
            secret_var,
            url,
            secret,
            header,
            user_assigned_id,
            client: local_client()?,
        })
    }

    /// `GET {url}?api-version=..&resource=..[&<id parameter>]` with the secret in `secret_header`
    /// (and `Metadata: true` when `metadata`), retried by the default policy. A success is parsed
    /// into a token; any other answer comes back for the source to explain.
    pub(crate) async fn get_token(
        &self,
        api_version: &str,
        resource: &str,
        names: &SelectorNames,
        secret_header: &'static str,
        metadata: bool,
    ) -> Result<std::result::Result<AccessToken, Received>> {
        let url = token_url(
            &self.url,
            api_version,
            resource,
            self.user_assigned_id.as_ref(),
            names,
        );
        let build = || {
            let request = self
                .client
                .get(url.clone())
                .header(secret_header, self.header.clone());
            if metadata {
                request.header("Metadata", "true")
            } else {
                request
            }
        };
        let (received, request_time) =
            send(self.name, self.url.as_str(), build, &RetryPolicy::DEFAULT).await?;
        if received.is_success() {
            return Ok(Ok(received.token(self.name, request_time)?.token));
        }
        Ok(Err(received))
    }
}
