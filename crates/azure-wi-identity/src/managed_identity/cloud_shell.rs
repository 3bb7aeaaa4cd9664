//! Azure Cloud Shell: the signed-in portal user's token.
//!
//! `POST {MSI_ENDPOINT}` with `Metadata: true` and the form body `resource=R`. Cloud Shell cannot
//! select a user-assigned identity (it would silently return the user's token), so one is refused
//! when the credential is built.

use std::fmt;

use url::Url;

use super::{
    MSI_ENDPOINT, UserAssignedId, endpoint_url, local_client,
    response::{Received, send},
};
use crate::{
    AccessToken, Error, Result,
    http::{Limits, RetryPolicy},
};

const NAME: &str = "ManagedIdentityCredential (Cloud Shell)";

/// The Cloud Shell source.
pub(crate) struct CloudShell {
    url: Url,
    client: reqwest::Client,
    retry: RetryPolicy,
}

impl fmt::Debug for CloudShell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudShell")
            .field("url", &self.url.as_str())
            .finish()
    }
}

impl CloudShell {
    pub(crate) fn new(
        env: &crate::Env,
        user_assigned_id: Option<&UserAssignedId>,
        retry: RetryPolicy,
    ) -> Result<Self> {
        if let Some(id) = user_assigned_id {
            return Err(Error::invalid_input(
                NAME,
                format!(
                    "Cloud Shell cannot select a user-assigned identity (asked for {id}); it only issues \
                     the signed-in user's token. Remove the user-assigned id"
                ),
            ));
        }
        Ok(Self {
            url: endpoint_url(env, MSI_ENDPOINT, NAME)?,
            client: local_client()?,
            retry,
        })
    }

    pub(crate) async fn request_token(&self, resource: &str, limits: Limits) -> Result<AccessToken> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("resource", resource)
            .finish();
        let build = || {
            self.client
                .post(self.url.clone())
                .header("Metadata", "true")
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.clone())
        };
        let (received, request_time) = send(NAME, self.url.as_str(), build, &self.retry, limits).await?;
        if received.is_success() {
            return Ok(received.token(NAME, request_time)?.token);
        }
        Err(refusal(&self.url, &received))
    }
}

fn refusal(url: &Url, received: &Received) -> Error {
    let server = received.server_message(&[]);
    if !received.speaks_json() {
        return Error::unavailable(
            NAME,
            format!("{MSI_ENDPOINT}={url} did not answer like the Cloud Shell token endpoint ({server})"),
        );
    }
    Error::authentication_failed(NAME, format!("{server}; sign in to Cloud Shell again"))
        .with_status(received.status)
}
