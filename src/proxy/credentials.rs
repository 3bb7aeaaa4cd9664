//! One credential per (client id, tenant), kept in a bounded map.
//!
//! The proxy keeps credentials, not tokens: each credential has its own token cache, which
//! single-flights concurrent requests for the same scope and refreshes before expiry. A burst of
//! requests for one resource therefore causes one exchange with Microsoft Entra.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
};

use super::Error;
use azure_wi_identity::{
    self, AccessToken, ClientAssertionCredentialOptions, Env, TokenCredential, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions, env_vars::AZURE_FEDERATED_TOKEN_FILE,
};

/// Builds the credential for a (client id, tenant) pair.
pub type CredentialFactory =
    Arc<dyn Fn(&str, &str) -> azure_wi_identity::Result<Arc<dyn TokenCredential>> + Send + Sync>;

/// Builds [`WorkloadIdentityCredential`]s for the requested client id and tenant, reading the
/// token file (`AZURE_FEDERATED_TOKEN_FILE`) and authority (`AZURE_AUTHORITY_HOST`) from `env`.
pub fn workload_identity_factory(env: Env) -> CredentialFactory {
    Arc::new(move |client_id: &str, tenant_id: &str| {
        let options = proxy_options(&env, tenant_id, client_id);
        Ok(WorkloadIdentityCredential::new(Some(options))? as Arc<dyn TokenCredential>)
    })
}

/// The options of the proxy's credentials: `client_id` in `tenant_id`, reading `env`, with
/// `enable_azure_proxy` (the exchange goes through an identity binding's token proxy when the
/// webhook configured one).
fn proxy_options(env: &Env, tenant_id: &str, client_id: &str) -> WorkloadIdentityCredentialOptions {
    WorkloadIdentityCredentialOptions {
        client_id: Some(client_id.to_owned()),
        tenant_id: Some(tenant_id.to_owned()),
        enable_azure_proxy: true,
        credential_options: ClientAssertionCredentialOptions {
            env: env.clone(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Checks at start-up what [`workload_identity_factory`]'s credentials will need, so that a
/// proxy that could never serve a token fails loudly instead of reporting ready:
/// `AZURE_AUTHORITY_HOST` (https, or http on loopback, by the library's rules), the tenant, and
/// `AZURE_FEDERATED_TOKEN_FILE` naming a readable regular file.
pub fn check_workload_identity(env: &Env, tenant_id: &str, client_id: Option<&str>) -> Result<(), Error> {
    // The library's own checks (authority host, tenant), through the credential it will build;
    // any syntactically valid client id does (the request may name another).
    let client_id = client_id.unwrap_or("00000000-0000-0000-0000-000000000000");
    let options = proxy_options(env, tenant_id, client_id);
    let credential = WorkloadIdentityCredential::new(Some(options)).map_err(Error::Credential)?;
    let path = credential.token_file_path();
    let unusable = |why: String| {
        Error::invalid(
            AZURE_FEDERATED_TOKEN_FILE,
            format!(
                "{} {why}; it must name the projected service account token the kubelet writes \
                 (the webhook mounts it at /var/run/secrets/azure/tokens/azure-identity-token)",
                path.display()
            ),
        )
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(unusable("is not a regular file".to_owned())),
        Err(error) => return Err(unusable(format!("cannot be read: {error}"))),
    }
    std::fs::File::open(path).map_err(|error| unusable(format!("cannot be read: {error}")))?;
    Ok(())
}

/// The credentials of the proxy, created on first use and evicted least-recently-used first
/// when more than `capacity` (client id, tenant) pairs have been asked for.
pub struct Credentials {
    factory: CredentialFactory,
    capacity: usize,
    map: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    entries: HashMap<(String, String), Entry>,
    clock: u64,
}

struct Entry {
    credential: Arc<dyn TokenCredential>,
    last_used: u64,
}

impl Credentials {
    /// A map that creates credentials with `factory` and keeps at most `capacity` of them.
    pub fn new(factory: CredentialFactory, capacity: usize) -> Self {
        Self {
            factory,
            capacity: capacity.max(1),
            map: Mutex::new(Lru::default()),
        }
    }

    /// The credential for (`client_id`, `tenant_id`), created if needed.
    ///
    /// Creation runs under the map's lock (the factory's only I/O is reading an identity
    /// binding's CA file, a few KB, bounded), so concurrent first requests share one credential. A failed creation is not remembered.
    pub fn get(
        &self,
        client_id: &str,
        tenant_id: &str,
    ) -> azure_wi_identity::Result<Arc<dyn TokenCredential>> {
        let mut map = self.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.clock += 1;
        let now = map.clock;
        let key = (client_id.to_owned(), tenant_id.to_owned());
        if let Some(entry) = map.entries.get_mut(&key) {
            entry.last_used = now;
            return Ok(entry.credential.clone());
        }
        let credential = (self.factory)(client_id, tenant_id)?;
        if map.entries.len() >= self.capacity {
            let oldest = map
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                tracing::debug!(client_id = %oldest.0, "evicting the least recently used credential");
                map.entries.remove(&oldest);
            }
        }
        map.entries.insert(
            key,
            Entry {
                credential: credential.clone(),
                last_used: now,
            },
        );
        Ok(credential)
    }

    /// A token for `scope` from the credential of (`client_id`, `tenant_id`).
    ///
    /// The request runs in its own task: a client that disconnects does not cancel an exchange
    /// other clients may be waiting for.
    pub async fn token(
        &self,
        client_id: &str,
        tenant_id: &str,
        scope: &str,
    ) -> azure_wi_identity::Result<AccessToken> {
        let credential = self.get(client_id, tenant_id)?;
        let scope = scope.to_owned();
        let task = tokio::spawn(async move { credential.get_token(&[scope.as_str()], None).await });
        match task.await {
            Ok(result) => result,
            Err(join_error) => Err(azure_wi_identity::Error::unavailable(
                "token proxy",
                "the token request task failed; see the proxy's log",
            )
            .with_source(join_error)),
        }
    }

    /// How many credentials are kept.
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entries
            .len()
    }

    /// Whether no credential has been created yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use time::OffsetDateTime;

    use super::*;
    use azure_wi_identity::TokenRequestOptions;

    #[derive(Debug)]
    struct Named(String);

    #[async_trait::async_trait]
    impl TokenCredential for Named {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<TokenRequestOptions>,
        ) -> azure_wi_identity::Result<AccessToken> {
            Ok(AccessToken::new(
                format!("{}|{}", self.0, scopes.join(" ")),
                OffsetDateTime::now_utc(),
            ))
        }
    }

    fn counting_factory(created: Arc<AtomicUsize>) -> CredentialFactory {
        Arc::new(move |client: &str, tenant: &str| {
            created.fetch_add(1, Ordering::SeqCst);
            if client == "refused" {
                return Err(azure_wi_identity::Error::invalid_input("Named", "refused client"));
            }
            Ok(Arc::new(Named(format!("{client}@{tenant}"))) as Arc<dyn TokenCredential>)
        })
    }

    #[tokio::test]
    async fn one_credential_per_pair_and_lru_eviction() {
        let created = Arc::new(AtomicUsize::new(0));
        let credentials = Credentials::new(counting_factory(created.clone()), 2);
        let token = credentials.token("a", "t", "s/.default").await.unwrap();
        assert_eq!(token.token.secret(), "a@t|s/.default");
        credentials.token("a", "t", "other").await.unwrap();
        assert_eq!(created.load(Ordering::SeqCst), 1);
        credentials.get("a", "t2").unwrap();
        assert_eq!(created.load(Ordering::SeqCst), 2);
        credentials.get("a", "t").unwrap(); // now (a, t2) is the least recently used
        credentials.get("b", "t").unwrap(); // evicts (a, t2)
        assert_eq!(credentials.len(), 2);
        credentials.get("a", "t").unwrap();
        assert_eq!(created.load(Ordering::SeqCst), 3, "(a, t) must have survived");
        credentials.get("a", "t2").unwrap();
        assert_eq!(
            created.load(Ordering::SeqCst),
            4,
            "(a, t2) must have been evicted"
        );
    }

    /// The sidecar's credentials use the identity binding the webhook injected into its
    /// container: the exchange goes to the token proxy, with its server name; a binding that
    /// cannot work stops the start-up check, naming the variable.
    #[tokio::test]
    async fn the_sidecar_uses_the_injected_identity_binding() {
        use azure_wi_test_support::recording_server::{Reply, TestServer};
        const SNI: &str = "sidecar.identity-binding.test";
        const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let (proxy, ca) = TestServer::scripted_tls_for([Reply::token("at-sidecar", 3599)], &[SNI]).await;
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "sa-token").unwrap();
        let mut vars = vec![
            (
                "AZURE_FEDERATED_TOKEN_FILE".to_owned(),
                token.display().to_string(),
            ),
            (
                "AZURE_AUTHORITY_HOST".to_owned(),
                "https://127.0.0.1:9/".to_owned(),
            ),
            ("AZURE_KUBERNETES_TOKEN_PROXY".to_owned(), proxy.url()),
            ("AZURE_KUBERNETES_SNI_NAME".to_owned(), SNI.to_owned()),
            ("AZURE_KUBERNETES_CA_DATA".to_owned(), ca),
        ];
        let env = Env::from_pairs(vars.clone());
        check_workload_identity(&env, TENANT, None).unwrap();
        let credentials = Credentials::new(workload_identity_factory(env), 4);
        let token = credentials
            .token(
                "00000000-0000-0000-0000-0000000000s1",
                TENANT,
                "https://vault.azure.net/.default",
            )
            .await
            .unwrap();
        assert_eq!(token.token.secret(), "at-sidecar");
        assert_eq!(proxy.requests()[0].sni.as_deref(), Some(SNI));

        vars.push(("AZURE_KUBERNETES_CA_FILE".to_owned(), "/ca.crt".to_owned()));
        let e = check_workload_identity(&Env::from_pairs(vars), TENANT, None).unwrap_err();
        let text = format!(
            "{e}: {}",
            std::error::Error::source(&e)
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        assert!(
            text.contains("AZURE_KUBERNETES_CA_FILE and AZURE_KUBERNETES_CA_DATA are both set"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn failed_creation_is_not_kept() {
        let created = Arc::new(AtomicUsize::new(0));
        let credentials = Credentials::new(counting_factory(created.clone()), 4);
        assert!(credentials.get("refused", "t").is_err());
        assert!(credentials.get("refused", "t").is_err());
        assert_eq!(created.load(Ordering::SeqCst), 2);
        assert!(credentials.is_empty());
    }
}
