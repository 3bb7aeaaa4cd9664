//! The workload-identity branch of managed identity: when `AZURE_AUTHORITY_HOST`,
//! `AZURE_TENANT_ID` and `AZURE_FEDERATED_TOKEN_FILE` are all set (the workload identity webhook
//! sets them), azure-identity's managed identity exchanges the service-account token with
//! Microsoft Entra instead of calling a metadata endpoint. The client id is the user-assigned
//! client id, else `AZURE_CLIENT_ID`.

use std::sync::Arc;

use super::{ManagedIdentitySource, UserAssignedId};
use crate::{
    ClientAssertionCredentialOptions, ClientOptions, Env, Error, RequestTimeouts, Result, TokenCredential,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

/// The credential the workload-identity branch delegates to.
pub(crate) fn delegate(
    user_assigned_id: Option<UserAssignedId>,
    env: Env,
    timeouts: RequestTimeouts,
    client_options: ClientOptions,
) -> Result<Arc<dyn TokenCredential>> {
    let client_id = match user_assigned_id {
        None => None,
        Some(UserAssignedId::ClientId(id)) => Some(id),
        Some(other) => {
            return Err(Error::invalid_input(
                ManagedIdentitySource::WorkloadIdentity.credential_name(),
                format!(
                    "workload identity selects the identity by client id only, not by {}; pass the \
                     identity's client id instead (or unset AZURE_FEDERATED_TOKEN_FILE to use a metadata \
                     endpoint)",
                    other.kind_name()
                ),
            ));
        }
    };
    let credential = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        client_id,
        credential_options: ClientAssertionCredentialOptions {
            env,
            timeouts,
            client_options,
            ..Default::default()
        },
        ..Default::default()
    }))?;
    Ok(credential)
}
