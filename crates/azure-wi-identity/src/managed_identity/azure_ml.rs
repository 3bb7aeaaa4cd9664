//! Azure Machine Learning compute instances and clusters (api-version 2017-09-01).
//!
//! `GET {MSI_ENDPOINT}?api-version=2017-09-01&resource=R[&clientid|&object_id|&msi_res_id]` with
//! `secret: {MSI_SECRET}`. The client id parameter is `clientid`, without underscore. Like
//! azure-identity, `DEFAULT_IDENTITY_CLIENT_ID` is not sent on its own: select the compute's
//! identity explicitly if a signed-in user's token is not wanted.

use super::{
    MSI_ENDPOINT, MSI_SECRET,
    secret_endpoint::{Platform, SecretEndpoint},
    user_assigned_id::AZURE_ML_NAMES,
};
const NAME: &str = "ManagedIdentityCredential (Azure ML)";
pub(crate) const PLATFORM: Platform = Platform {
    name: NAME,
    endpoint_var: MSI_ENDPOINT,
    secret_var: MSI_SECRET,
    api_version: "2017-09-01",
    names: &AZURE_ML_NAMES,
    secret_header: "secret",
    metadata: false,
    description: "an Azure ML",
    hint,
};

/// What to check after a JSON answer other than a token (whatever its status).
fn hint(endpoint: &SecretEndpoint, _status: u16) -> String {
    match &endpoint.user_assigned_id {
        Some(id) => {
            let (name, value) = id.query_pair(&AZURE_ML_NAMES);
            format!(
                "check that the identity with {} {value} (sent as {name}={value}) is assigned to the compute",
                id.kind_name()
            )
        }
        None => "check that the compute has a managed identity".to_owned(),
    }
}
