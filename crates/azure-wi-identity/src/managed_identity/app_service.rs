//! App Service, Functions, Container Apps and Automation (api-version 2019-08-01).
//!
//! `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=R[&client_id|&object_id|&mi_res_id]`
//! with `X-IDENTITY-HEADER: {IDENTITY_HEADER}` and `Metadata: true` (ignored by App Service,
//! needed by Automation). A resource id is sent as `mi_res_id`: App Service ignores `msi_res_id`.

use super::{
    IDENTITY_ENDPOINT, IDENTITY_HEADER,
    secret_endpoint::{Platform, SecretEndpoint},
    user_assigned_id::APP_SERVICE_NAMES,
};
const NAME: &str = "ManagedIdentityCredential (App Service)";
pub(crate) const PLATFORM: Platform = Platform {
    name: NAME,
    endpoint_var: IDENTITY_ENDPOINT,
    secret_var: IDENTITY_HEADER,
    api_version: "2019-08-01",
    names: &APP_SERVICE_NAMES,
    secret_header: "X-IDENTITY-HEADER",
    // Ignored by App Service, needed by Automation.
    metadata: true,
    description: "an App Service",
    hint,
};

/// What to check after a JSON answer other than a token.
fn hint(endpoint: &SecretEndpoint, status: u16) -> String {
    match (&endpoint.user_assigned_id, status) {
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
    }
}
