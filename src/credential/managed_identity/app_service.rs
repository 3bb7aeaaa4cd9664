//! App Service, Functions, Container Apps and Automation (api-version 2019-08-01).
//!
//! `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=R[&client_id|&object_id|&mi_res_id]`
//! with `X-IDENTITY-HEADER: {IDENTITY_HEADER}` and `Metadata: true` (ignored by App Service,
//! needed by Automation). A resource id is sent as `mi_res_id`: App Service ignores `msi_res_id`.

use std::fmt;

use reqwest::header::HeaderValue;
use url::Url;

use super::{
    IDENTITY_ENDPOINT, IDENTITY_HEADER, UserAssignedId, endpoint_url, local_client,
    response::{Received, send},
    secret_header, token_url,
    user_assigned_id::APP_SERVICE_NAMES,
};
use crate::credential::{AccessToken, Error, Result, Secret, http::RetryPolicy};

const NAME: &str = "ManagedIdentityCredential (App Service)";
const API_VERSION: &str = "2019-08-01";

/// The App Service source.
pub(crate) struct AppService {
    url: Url,
    secret: Secret,
    header: HeaderValue,
    user_assigned_id: Option<UserAssignedId>,
    client: reqwest::Client,
}

impl fmt::Debug for AppService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppService")
            .field("url", &self.url.as_str())
            .field("identity_header", &self.secret)
            .field("user_assigned_id", &self.user_assigned_id)
            .finish()
    }
}

impl AppService {
    pub(crate) fn new(
        env: &crate::credential::Env,
        user_assigned_id: Option<UserAssignedId>,
    ) -> Result<Self> {
        let url = endpoint_url(env, IDENTITY_ENDPOINT, NAME)?;
        let (secret, header) = secret_header(env, IDENTITY_HEADER, NAME)?;
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
            &APP_SERVICE_NAMES,
        );
        let build = || {
            self.client
                .get(url.clone())
                .header("X-IDENTITY-HEADER", self.header.clone())
                .header("Metadata", "true")
        };
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
                    "{IDENTITY_ENDPOINT}={} did not answer like an App Service identity endpoint ({server})",
                    self.url
                ),
            );
        }
        let hint = match (&self.user_assigned_id, received.status) {
            (Some(id), 400 | 404) => {
                let (name, value) = id.query_pair(&APP_SERVICE_NAMES);
                format!(
                    "the user-assigned identity with {} {value} (sent as {name}={value}) may not be assigned to \
                     this app; add it under Identity > User assigned, or correct the {}",
                    id.kind_name(),
                    id.kind_name()
                )
            }
            (None, 400 | 404) => {
                "enable the app's system-assigned identity, or select a user-assigned identity".to_owned()
            }
            (_, 401 | 403) => {
                format!("{IDENTITY_HEADER} was refused; it is set by the platform, do not override it")
            }
            _ => "check the app's managed identity configuration".to_owned(),
        };
        Error::authentication_failed(NAME, format!("{server}; {hint}")).with_status(received.status)
    }
}
