//! Azure Machine Learning compute instances and clusters (api-version 2017-09-01).
//!
//! `GET {MSI_ENDPOINT}?api-version=2017-09-01&resource=R[&clientid|&object_id|&msi_res_id]` with
//! `secret: {MSI_SECRET}`. The client id parameter is `clientid`, without underscore. Like
//! azure-identity, `DEFAULT_IDENTITY_CLIENT_ID` is not sent on its own: select the compute's
//! identity explicitly if a signed-in user's token is not wanted.

use std::fmt;

use reqwest::header::HeaderValue;
use url::Url;

use super::{
    MSI_ENDPOINT, MSI_SECRET, UserAssignedId, endpoint_url, local_client,
    response::{Received, send},
    secret_header, token_url,
    user_assigned_id::AZURE_ML_NAMES,
};
use crate::credential::{AccessToken, Error, Result, Secret, http::RetryPolicy};

const NAME: &str = "ManagedIdentityCredential (Azure ML)";
const API_VERSION: &str = "2017-09-01";

/// The Azure ML source.
pub(crate) struct AzureMl {
    url: Url,
    secret: Secret,
    header: HeaderValue,
    user_assigned_id: Option<UserAssignedId>,
    client: reqwest::Client,
}

impl fmt::Debug for AzureMl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureMl")
            .field("url", &self.url.as_str())
            .field("msi_secret", &self.secret)
            .field("user_assigned_id", &self.user_assigned_id)
            .finish()
    }
}

impl AzureMl {
    pub(crate) fn new(
        env: &crate::credential::Env,
        user_assigned_id: Option<UserAssignedId>,
    ) -> Result<Self> {
        let url = endpoint_url(env, MSI_ENDPOINT, NAME)?;
        let (secret, header) = secret_header(env, MSI_SECRET, NAME)?;
        Ok(Self {
            url,
            secret,
            header,
            user_assigned_id,
            client: local_client()?,
        })
    }

    pub(crate) async fn request_token(&self, resource: &str) -> Result<AccessToken> {
        let url = token_url(
            &self.url,
            API_VERSION,
            resource,
            self.user_assigned_id.as_ref(),
            &AZURE_ML_NAMES,
        );
        let build = || self.client.get(url.clone()).header("secret", self.header.clone());
        let (received, request_time) = send(NAME, self.url.as_str(), build, &RetryPolicy::DEFAULT).await?;
        if received.is_success() {
            return Ok(received.token(NAME, request_time)?.token);
        }
        Err(self.refusal(&received))
    }

    fn refusal(&self, received: &Received) -> Error {
        let server = received.server_message(&[&self.secret]);
        if !received.speaks_json() {
            return Error::unavailable(
                NAME,
                format!(
                    "{MSI_ENDPOINT}={} did not answer like an Azure ML identity endpoint ({server})",
                    self.url
                ),
            );
        }
        let hint = match &self.user_assigned_id {
            Some(id) => {
                let (name, value) = id.query_pair(&AZURE_ML_NAMES);
                format!(
                    "check that the identity with {} {value} (sent as {name}={value}) is assigned to the compute",
                    id.kind_name()
                )
            }
            None => "check that the compute has a managed identity".to_owned(),
        };
        Error::authentication_failed(NAME, format!("{server}; {hint}")).with_status(received.status)
    }
}
