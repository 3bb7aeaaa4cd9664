//! `PlatformCredential`: the identity of wherever the code runs, a
//! [`ChainedTokenCredential`](crate::ChainedTokenCredential) of the platform's sources.
//!
//! The platform chain is workload identity, then managed identity (with the IMDS probe, so that
//! off Azure the chain answers quickly): in a pod mutated by the workload identity webhook it
//! uses the pod's federated identity; elsewhere on Azure (a VM, an AKS node, App Service, Arc...)
//! the managed identity. It is what azure-identity's `DefaultAzureCredential` does with only its
//! platform sources.

use std::{path::PathBuf, sync::Arc};

use super::{
    AccessToken, ChainedTokenCredential, ClientAssertionCredentialOptions, Env, Error, ErrorKind, Result,
    TokenCredential, TokenRequestOptions,
    managed_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId},
    workload_identity::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions},
};

/// Options of [`PlatformCredential`]. Unset values come from the environment.
///
/// Each field has the name and meaning of the same field in the options of the credential it is
/// passed to: [`WorkloadIdentityCredentialOptions`] (`tenant_id`, `client_id`,
/// `token_file_path`, `authority_host`, `additionally_allowed_tenants`) or
/// [`ManagedIdentityCredentialOptions`] (`user_assigned_id`); `env`, `timeouts` and
/// `client_options` go to both. Public fields
/// and `Default`, as every options struct here: set the fields you need and end with
/// `..Default::default()`.
///
/// ```no_run
/// use azure_wi_identity::{PlatformCredential, PlatformCredentialOptions, UserAssignedId};
///
/// # fn run() -> azure_wi_identity::Result<()> {
/// // One user-assigned identity, whether the pod uses workload identity or the node's IMDS:
/// let credential = PlatformCredential::new(Some(PlatformCredentialOptions {
///     user_assigned_id: Some(UserAssignedId::ClientId("00000000-0000-0000-0000-000000000001".into())),
///     ..Default::default()
/// }))?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct PlatformCredentialOptions {
    /// Workload identity's tenant. Default: `AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// Workload identity's client id. Default: the client id of `user_assigned_id` when it is
    /// given by client id, else `AZURE_CLIENT_ID`.
    pub client_id: Option<String>,
    /// Workload identity's projected service-account token. Default: `AZURE_FEDERATED_TOKEN_FILE`.
    pub token_file_path: Option<PathBuf>,
    /// Workload identity's authority host. Default: `AZURE_AUTHORITY_HOST`, else the public cloud.
    pub authority_host: Option<String>,
    /// Tenants besides the configured one that a request's `tenant_id` may name (`"*"`: any);
    /// workload identity only (managed identity ignores a request's tenant).
    pub additionally_allowed_tenants: Vec<String>,
    /// The user-assigned managed identity to ask for when the chain reaches managed identity;
    /// `None`: the system-assigned identity.
    pub user_assigned_id: Option<UserAssignedId>,
    /// Where every variable is read (the process environment by default).
    pub env: Env,
    /// The per-read timeout and the overall deadline of a token request, for both credentials.
    pub timeouts: super::RequestTimeouts,
    /// The HTTP transport and the retry settings, for both credentials (the transport carries
    /// workload identity's requests to Microsoft Entra ID; managed identity endpoints keep the
    /// library's clients, see [`Transport`](super::Transport)).
    pub client_options: super::ClientOptions,
}

/// Workload identity where it is configured, otherwise managed identity.
///
/// ```no_run
/// use azure_wi_identity::{PlatformCredential, TokenCredential};
///
/// # async fn run() -> azure_wi_identity::Result<()> {
/// let credential = PlatformCredential::new(None)?;
/// let token = credential.get_token(&["https://vault.azure.net/.default"], None).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PlatformCredential {
    chain: ChainedTokenCredential,
}

/// Stands in for a credential that could not be built here: always unavailable, with the reason.
#[derive(Debug)]
struct Unbuilt {
    name: &'static str,
    reason: String,
}

#[async_trait::async_trait]
impl TokenCredential for Unbuilt {
    async fn get_token(&self, _: &[&str], _: Option<TokenRequestOptions>) -> Result<AccessToken> {
        Err(Error::unavailable(self.name, self.reason.clone()))
    }
}

impl PlatformCredential {
    /// The chain [workload identity, managed identity] for this environment. Configuration
    /// errors (a malformed tenant id or authority) fail here; a credential that cannot work here
    /// stays in the chain as an unavailable attempt.
    pub fn new(options: Option<PlatformCredentialOptions>) -> Result<Arc<Self>> {
        let options = options.unwrap_or_default();
        let wi_client_id = options
            .client_id
            .clone()
            .or_else(|| match &options.user_assigned_id {
                Some(UserAssignedId::ClientId(id)) => Some(id.clone()),
                _ => None,
            });
        let workload: Arc<dyn TokenCredential> =
            match WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                tenant_id: options.tenant_id,
                client_id: wi_client_id,
                token_file_path: options.token_file_path,
                // Beyond azure-identity: the identity binding whenever the webhook set it up.
                enable_azure_proxy: true,
                credential_options: ClientAssertionCredentialOptions {
                    authority_host: options.authority_host,
                    additionally_allowed_tenants: options.additionally_allowed_tenants,
                    env: options.env.clone(),
                    timeouts: options.timeouts,
                    client_options: options.client_options.clone(),
                },
            })) {
                Ok(c) => c,
                Err(e) if e.kind() == ErrorKind::Unavailable => Arc::new(Unbuilt {
                    name: "WorkloadIdentityCredential",
                    reason: e.message().to_owned(),
                }),
                Err(e) => return Err(e),
            };
        let mut mi_options = ManagedIdentityCredentialOptions {
            user_assigned_id: options.user_assigned_id,
            env: options.env,
            timeouts: options.timeouts,
            client_options: options.client_options,
            ..Default::default()
        };
        // Off Azure the chain answers quickly; workload identity was tried just before.
        mi_options.enable_imds_probe = true;
        mi_options.exclude_workload_identity = true;
        let managed: Arc<dyn TokenCredential> = match ManagedIdentityCredential::new(Some(mi_options)) {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::Unavailable => Arc::new(Unbuilt {
                name: "ManagedIdentityCredential",
                reason: e.message().to_owned(),
            }),
            Err(e) => return Err(e),
        };
        let chain = ChainedTokenCredential::named("PlatformCredential", vec![workload, managed])?;
        Ok(Arc::new(Self { chain }))
    }
}

#[async_trait::async_trait]
impl TokenCredential for PlatformCredential {
    async fn get_token(&self, scopes: &[&str], options: Option<TokenRequestOptions>) -> Result<AccessToken> {
        self.chain.get_token(scopes, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_wi_test_support::recording_server::{Reply, TestServer};

    /// A `PlatformCredential` reading only `env`.
    fn platform(env: Env) -> Result<std::sync::Arc<PlatformCredential>> {
        PlatformCredential::new(Some(PlatformCredentialOptions {
            env,
            ..Default::default()
        }))
    }

    /// The Key Vault token of a `PlatformCredential` reading only `env`.
    async fn vault_token(env: Env) -> AccessToken {
        platform(env)
            .unwrap()
            .get_token(&["https://vault.azure.net/.default"], None)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn platform_uses_workload_identity_when_configured() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "sa-token").unwrap();
        let entra = TestServer::scripted([Reply::token("wi-token", 3599)]).await;
        let imds = TestServer::scripted([]).await;
        let env = Env::from_pairs([
            ("AZURE_TENANT_ID", "tenant".to_owned()),
            ("AZURE_CLIENT_ID", "client".to_owned()),
            ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
            ("AZURE_AUTHORITY_HOST", entra.url()),
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.url()),
        ]);
        let token = vault_token(env).await;
        assert_eq!(token.token.secret(), "wi-token");
        assert_eq!((entra.request_count(), imds.request_count()), (1, 0));
    }

    #[tokio::test]
    async fn platform_falls_back_to_managed_identity() {
        let imds = TestServer::scripted([Reply::json(
            200,
            serde_json::json!({"access_token": "mi-token", "expires_in": "3599", "expires_on": "1", "resource": "https://vault.azure.net", "token_type": "Bearer"}),
        )])
        .await;
        let env = Env::from_pairs([("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.url())]);
        let token = vault_token(env).await;
        assert_eq!(token.token.secret(), "mi-token");
        let r = &imds.requests()[0];
        assert_eq!(r.path(), "/metadata/identity/oauth2/token");
        assert!(
            r.query()
                .contains(&("resource".into(), "https://vault.azure.net".into())),
            "{:?}",
            r.query()
        );
    }

    #[tokio::test]
    async fn platform_rejects_bad_configuration_up_front() {
        let env = Env::from_pairs([
            ("AZURE_TENANT_ID", "bad/tenant?x"),
            ("AZURE_CLIENT_ID", "client"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent"),
        ]);
        let e = platform(env).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
