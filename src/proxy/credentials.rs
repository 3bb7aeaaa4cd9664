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
    self, AccessToken, Env, TokenCredential, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

/// Builds the credential for a (client id, tenant) pair.
pub type CredentialFactory =
    Arc<dyn Fn(&str, &str) -> azure_wi_identity::Result<Arc<dyn TokenCredential>> + Send + Sync>;

/// Builds [`WorkloadIdentityCredential`]s for the requested client id and tenant, reading the
/// token file (`AZURE_FEDERATED_TOKEN_FILE`) and authority (`AZURE_AUTHORITY_HOST`) from `env`.
pub fn workload_identity_factory(env: Env) -> CredentialFactory {
    Arc::new(move |client_id: &str, tenant_id: &str| {
        let options = WorkloadIdentityCredentialOptions {
            client_id: Some(client_id.to_owned()),
            tenant_id: Some(tenant_id.to_owned()),
            env: env.clone(),
            ..Default::default()
        };
        Ok(WorkloadIdentityCredential::new(Some(options))? as Arc<dyn TokenCredential>)
    })
}

/// Checks at start-up what [`workload_identity_factory`]'s credentials will need, so that a
/// proxy that could never serve a token fails loudly instead of reporting ready:
/// `AZURE_AUTHORITY_HOST` (https, or http on loopback, by the library's rules), the tenant, and
/// `AZURE_FEDERATED_TOKEN_FILE` naming a readable regular file.
pub fn check_workload_identity(env: &Env, tenant_id: &str, client_id: Option<&str>) -> Result<(), Error> {
    // The library's own checks (authority host, tenant), through the credential it will build;
    // any syntactically valid client id does (the request may name another).
    let options = WorkloadIdentityCredentialOptions {
        client_id: Some(
            client_id
                .unwrap_or("00000000-0000-0000-0000-000000000000")
                .to_owned(),
        ),
        tenant_id: Some(tenant_id.to_owned()),
        env: env.clone(),
        ..Default::default()
    };
    let credential = WorkloadIdentityCredential::new(Some(options)).map_err(Error::Credential)?;
    let path = credential.token_file_path();
    let unusable = |why: String| {
        Error::invalid(
            "AZURE_FEDERATED_TOKEN_FILE",
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
    /// Creation runs under the map's lock (the factory does no I/O), so concurrent first requests
    /// share one credential. A failed creation is not remembered.
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
    use azure_wi_identity::{TokenFuture, TokenRequestOptions};

    #[derive(Debug)]
    struct Named(String);

    impl TokenCredential for Named {
        fn get_token<'a>(&'a self, scopes: &'a [&'a str], _: Option<TokenRequestOptions>) -> TokenFuture<'a> {
            TokenFuture::ready(Ok(AccessToken::new(
                format!("{}|{}", self.0, scopes.join(" ")),
                OffsetDateTime::now_utc(),
            )))
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
