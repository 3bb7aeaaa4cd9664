//! Azure Machine Learning compute instances and clusters (api-version 2017-09-01).
//!
//! `GET {MSI_ENDPOINT}?api-version=2017-09-01&resource=R[&clientid|&object_id|&msi_res_id]` with
//! `secret: {MSI_SECRET}`. The client id parameter is `clientid`, without underscore. Like
//! azure-identity, `DEFAULT_IDENTITY_CLIENT_ID` is not sent on its own: select the compute's
//! identity explicitly if a signed-in user's token is not wanted.

use super::{
    MSI_ENDPOINT, MSI_SECRET, UserAssignedId,
    response::Received,
    secret_endpoint::{Platform, SecretEndpoint},
    user_assigned_id::AZURE_ML_NAMES,
};
use crate::credential::{AccessToken, Error, Result};

const NAME: &str = "ManagedIdentityCredential (Azure ML)";
const PLATFORM: Platform = Platform {
    name: NAME,
    endpoint_var: MSI_ENDPOINT,
    secret_var: MSI_SECRET,
    api_version: "2017-09-01",
    names: &AZURE_ML_NAMES,
    secret_header: "secret",
    metadata: false,
};

/// The Azure ML source.
#[derive(Debug)]
pub(crate) struct AzureMl(SecretEndpoint);

impl AzureMl {
    pub(crate) fn new(
        env: &crate::credential::Env,
        user_assigned_id: Option<UserAssignedId>,
    ) -> Result<Self> {
        SecretEndpoint::new(env, &PLATFORM, user_assigned_id).map(Self)
    }

    pub(crate) async fn request_token(&self, resource: &str) -> Result<AccessToken> {
        self.0
            .get_token(resource)
            .await?
            .map_err(|received| self.refusal(&received))
    }

    fn refusal(&self, received: &Received) -> Error {
        let server = received.server_message(&[&self.0.secret]);
        if !received.speaks_json() {
            return Error::unavailable(
                NAME,
                format!(
                    "{MSI_ENDPOINT}={} did not answer like an Azure ML identity endpoint ({server})",
                    self.0.url
                ),
            );
        }
        let hint = match &self.0.user_assigned_id {
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
