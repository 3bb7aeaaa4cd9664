//! Azure Machine Learning compute instances and clusters (api-version 2017-09-01).
//!
//! `GET {MSI_ENDPOINT}?api-version=2017-09-01&resource=R[&clientid|&object_id|&msi_res_id]` with
//! `secret: {MSI_SECRET}`. The client id parameter is `clientid`, without underscore. Like
//! azure-identity, `DEFAULT_IDENTITY_CLIENT_ID` is not sent on its own: select the compute's
//! identity explicitly if a signed-in user's token is not wanted.

use super::{
    MSI_ENDPOINT, MSI_SECRET,
    response::Received,
    secret_endpoint::{Platform, SecretEndpoint},
    user_assigned_id::AZURE_ML_NAMES,
};
use crate::credential::Error;

const NAME: &str = "ManagedIdentityCredential (Azure ML)";
pub(crate) const PLATFORM: Platform = Platform {
    name: NAME,
    endpoint_var: MSI_ENDPOINT,
    secret_var: MSI_SECRET,
    api_version: "2017-09-01",
    names: &AZURE_ML_NAMES,
    secret_header: "secret",
    metadata: false,
    refusal,
};

/// Explains an answer other than a token.
fn refusal(endpoint: &SecretEndpoint, received: &Received) -> Error {
    let server = received.server_message(&[&endpoint.secret]);
    if !received.speaks_json() {
        return Error::unavailable(
            NAME,
            format!(
                "{MSI_ENDPOINT}={} did not answer like an Azure ML identity endpoint ({server})",
                endpoint.url
            ),
        );
    }
    let hint = match &endpoint.user_assigned_id {
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
