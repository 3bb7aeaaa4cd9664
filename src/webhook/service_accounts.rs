//! ServiceAccounts for the mutation: kube-rs's reflector over a metadata-only watch, with a direct
//! GET on a miss.
//!
//! - The cache is a [`kube::runtime::reflector`] [`Store`] fed by a [`watcher`] of every
//!   ServiceAccount's metadata (`PartialObjectMetadata`: the API server never sends `secrets`),
//!   each object reduced by [`WatchStreamExt::modify`] to its name, namespace and
//!   `azure.workload.identity/*` annotations before the store keeps it.
//! - The webhook does not wait for the cache: until its first complete list has arrived
//!   ([`Store::wait_until_ready`], [`ServiceAccounts::is_synced`]), and on any miss afterwards
//!   (e.g. a ServiceAccount created a moment before its pod, before the watch delivered it), a
//!   lookup makes one direct GET. Concurrent lookups of the same (namespace, name) share that GET,
//!   and GETs are rate-limited (token bucket) so a burst of pods cannot flood the API server; a
//!   lookup waiting for the rate limit takes the cache's answer if the cache has synced meanwhile.
//! - Every lookup is bounded by a timeout shorter than the API server's webhook timeout (10 s by
//!   default), so the webhook answers with a clear denial instead of timing out.
//! - [`ServiceAccounts::from_static`] fills the same store once from a fixed list, with no client
//!   (`--service-account-file`: offline preview, benchmarks).

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{
    FutureExt, StreamExt,
    future::{BoxFuture, Shared},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Api, Client,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tokio::time::Instant;

use super::{
    metrics::{Metrics, MissResult},
    mutation::ServiceAccount,
};
use crate::server::Shutdown;

pub use super::service_account_meta::{ANNOTATION_PREFIX, AccountMeta};

/// Reduces a ServiceAccount's metadata to what the webhook reads: name, namespace and the
/// `azure.workload.identity/*` annotations (no labels, managed fields, resourceVersion, uid...).
pub fn keep_what_the_webhook_reads(account: &mut AccountMeta) {
    let meta = std::mem::take(&mut account.metadata);
    let annotations: BTreeMap<String, String> = meta
        .annotations
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, _)| key.starts_with(ANNOTATION_PREFIX))
        .collect();
    account.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..ObjectMeta::default()
    };
}

/// A reduced ServiceAccount as the store holds it (annotations outside [`ANNOTATION_PREFIX`]
/// are dropped, as the watch drops them).
pub fn account_meta(namespace: &str, name: &str, annotations: &[(&str, &str)]) -> AccountMeta {
    let mut account = AccountMeta {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
    };
    keep_what_the_webhook_reads(&mut account);
    account
}

type Key = (String, String);

/// Why a ServiceAccount could not be provided.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The ServiceAccount does not exist.
    #[error(
        "serviceaccounts \"{name}\" not found in namespace \"{namespace}\": create the ServiceAccount \
         before the pod, or set spec.serviceAccountName to an existing one"
    )]
    NotFound {
        /// The request's namespace.
        namespace: String,
        /// The ServiceAccount's name.
        name: String,
    },
    /// The API server could not be asked in time.
    #[error(
        "cannot look up serviceaccounts \"{name}\" in namespace \"{namespace}\": {reason}; the pod \
         can be retried once the Kubernetes API server is reachable"
    )]
    Unavailable {
        /// The request's namespace.
        namespace: String,
        /// The ServiceAccount's name.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

/// Tuning of the miss path.
#[derive(Clone, Copy, Debug)]
pub struct LookupOptions {
    /// Upper bound on a lookup that needs the API server (including waiting for the rate limit).
    pub timeout: Duration,
    /// Direct GETs allowed per second, on average.
    pub gets_per_second: f64,
    /// Direct GETs allowed in a burst.
    pub burst: u32,
}

impl Default for LookupOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(3),
            gets_per_second: 10.0,
            burst: 20,
        }
    }
}

type GetResult = Result<Option<ServiceAccount>, String>;

/// ServiceAccount lookups for the admission handler. Cheap to clone.
#[derive(Clone)]
pub struct ServiceAccounts {
    store: Store<AccountMeta>,
    /// Set once the store holds a complete list (by the driver of [`ServiceAccounts::watch`]).
    synced: Arc<AtomicBool>,
    /// For misses; `None`: a miss means not found.
    client: Option<Client>,
    options: LookupOptions,
    in_flight: Arc<Mutex<HashMap<Key, Shared<BoxFuture<'static, GetResult>>>>>,
    limiter: Arc<Mutex<TokenBucket>>,
    metrics: Metrics,
}

impl fmt::Debug for ServiceAccounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccounts")
            .field("cached", &self.store.len())
            .field("synced", &self.is_synced())
            .field("client", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

impl ServiceAccounts {
    /// Starts watching every ServiceAccount of the cluster. The returned future drives the watch
    /// (spawn it); lookups work at once (direct GETs until the cache has synced).
    pub fn watch(
        client: Client,
        options: LookupOptions,
        metrics: Metrics,
        shutdown: Shutdown,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (store, writer) = reflector::store();
        let api: Api<AccountMeta> = Api::all(client.clone());
        let events = watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(keep_what_the_webhook_reads);
        let drain = reflector::reflector(writer, events).for_each(|event| {
            if let Err(error) = event {
                tracing::warn!(%error, "ServiceAccount watch failed; retrying with backoff");
            }
            futures::future::ready(())
        });
        let accounts = Self::new(store, Some(client), options, metrics);
        let ready = accounts.track_sync();
        let driver = async move {
            tokio::select! {
                () = shutdown.wait() => {}
                _ = futures::future::join(drain, ready) => {}
            }
        };
        (accounts, driver)
    }

    /// A fixed set of ServiceAccounts, keyed by (namespace, name); nothing else exists (no client:
    /// a miss is not found).
    pub fn from_static(
        accounts: impl IntoIterator<Item = (String, ServiceAccount)>,
        metrics: Metrics,
    ) -> Self {
        let mut writer = reflector::store::Writer::default();
        writer.apply_watcher_event(&watcher::Event::Init);
        for (namespace, account) in accounts {
            let annotations: Vec<(&str, &str)> = account
                .annotations
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let meta = account_meta(&namespace, &account.name, &annotations);
            writer.apply_watcher_event(&watcher::Event::InitApply(meta));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let accounts = Self::new(writer.as_reader(), None, LookupOptions::default(), metrics);
        accounts.synced.store(true, Ordering::Release);
        accounts
    }

    /// Lookups over `store` (fed by the caller), with `client` for misses (`None`: a miss means
    /// not found). Not synced until [`ServiceAccounts::watch`]'s driver or
    /// [`ServiceAccounts::from_static`] says so.
    fn new(
        store: Store<AccountMeta>,
        client: Option<Client>,
        options: LookupOptions,
        metrics: Metrics,
    ) -> Self {
        let limiter = TokenBucket::new(options.gets_per_second, options.burst);
        Self {
            store,
            synced: Arc::default(),
            client,
            options,
            in_flight: Arc::default(),
            limiter: Arc::new(Mutex::new(limiter)),
            metrics,
        }
    }

    /// Waits for the store's first complete list ([`Store::wait_until_ready`]), then marks the
    /// lookups synced, sets the gauge and logs it.
    fn track_sync(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        let (store, synced, gauge) = (
            self.store.clone(),
            self.synced.clone(),
            self.metrics.service_account_cache_synced.clone(),
        );
        async move {
            let started = Instant::now();
            if store.wait_until_ready().await.is_ok() {
                synced.store(true, Ordering::Release);
                gauge.set(1);
                tracing::info!(
                    count = store.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "ServiceAccount cache synced"
                );
            }
        }
    }

    /// Number of ServiceAccounts held.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no ServiceAccount is held.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Whether the cache holds a complete list (always true for a static set). Until then every
    /// lookup asks the API server directly.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Whether `namespace` is known to exist: it holds a ServiceAccount (every namespace has its
    /// `default` one, looked up first; else a scan of the store, on denied lookups only). Used to
    /// keep metric labels to real namespaces.
    pub fn knows_namespace(&self, namespace: &str) -> bool {
        self.cached(namespace, "default").is_some()
            || self
                .store
                .find(|sa| sa.metadata.namespace.as_deref() == Some(namespace))
                .is_some()
    }

    fn cached(&self, namespace: &str, name: &str) -> Option<ServiceAccount> {
        let found = self.store.get(&ObjectRef::new(name).within(namespace))?;
        Some(to_service_account(name, &found))
    }

    /// The ServiceAccount `name` in `namespace`, from the cache or, on a miss, from the API server.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<ServiceAccount, LookupError> {
        if let Some(cached) = self.cached(namespace, name) {
            return Ok(cached);
        }
        let not_found = || LookupError::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let Some(client) = &self.client else {
            self.metrics.observe_miss(MissResult::not_found);
            return Err(not_found());
        };
        let deadline = Instant::now() + self.options.timeout;
        let fetch = self.shared_get(client, namespace, name, deadline);
        let outcome = match tokio::time::timeout_at(deadline, fetch).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {:?}", self.options.timeout)),
        };
        match outcome {
            Ok(Some(sa)) => {
                self.metrics.observe_miss(MissResult::found);
                Ok(sa)
            }
            Ok(None) => {
                self.metrics.observe_miss(MissResult::not_found);
                Err(not_found())
            }
            Err(reason) => {
                self.metrics.observe_miss(MissResult::error);
                Err(LookupError::Unavailable {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    reason,
                })
            }
        }
    }

    /// The GET for (namespace, name), shared with every concurrent miss for the same key.
    fn shared_get(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
        deadline: Instant,
    ) -> Shared<BoxFuture<'static, GetResult>> {
        let key = (namespace.to_owned(), name.to_owned());
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = in_flight.get(&key) {
            return shared.clone();
        }
        // A metadata-only GET, reduced like the watch's objects.
        let api: Api<AccountMeta> = Api::namespaced(client.clone(), namespace);
        let (limiter, registry, owned_key) = (self.limiter.clone(), self.in_flight.clone(), key.clone());
        let (accounts, name) = (self.clone(), name.to_owned());
        let namespace = namespace.to_owned();
        let fut = async move {
            let result = async {
                let wait = limiter
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .acquire(Instant::now());
                if Instant::now() + wait > deadline {
                    return Err("too many ServiceAccount lookups in flight (rate limited)".to_owned());
                }
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                    // The cache may have synced (or received the account) while this waited.
                    if accounts.is_synced()
                        && let Some(cached) = accounts.cached(&namespace, &name)
                    {
                        return Ok(Some(cached));
                    }
                }
                match api.get_opt(&name).await {
                    Ok(found) => Ok(found.map(|mut sa| {
                        keep_what_the_webhook_reads(&mut sa);
                        to_service_account(&name, &sa)
                    })),
                    Err(error) => Err(error.to_string()),
                }
            }
            .await;
            registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&owned_key);
            result
        }
        .boxed()
        .shared();
        in_flight.insert(key, fut.clone());
        fut
    }
}

fn to_service_account(name: &str, sa: &AccountMeta) -> ServiceAccount {
    ServiceAccount {
        name: name.to_owned(),
        annotations: sa.metadata.annotations.clone().unwrap_or_default(),
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` stored.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: rate.max(0.001),
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Takes a token and returns how long to wait before using it (zero if one was available).
    fn acquire(&mut self, now: Instant) -> Duration {
        if let Some(last) = self.last {
            self.tokens = (self.tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
        }
        self.last = Some(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, sync::Arc};

    use kube::runtime::{reflector::store::Writer, watcher::Event};
    use serde_json::json;

    use super::*;
    use crate::webhook::test_support::{Handler, fake_client, not_found};

    const CLIENT_ID: &str = "azure.workload.identity/client-id";

    fn sa_json(ns: &str, name: &str, client_id: &str) -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": ns, "annotations": {CLIENT_ID: client_id, "other": "x"}},
            "secrets": [{"name": "token"}]
        })
    }

    /// Lookups over a store the test feeds through the returned writer.
    fn accounts_with(handler: Option<Arc<Handler>>) -> (ServiceAccounts, Writer<AccountMeta>, Metrics) {
        let (store, writer) = reflector::store();
        let client = handler.map(|h| fake_client(h).0);
        let metrics = Metrics::new();
        (
            ServiceAccounts::new(store, client, LookupOptions::default(), metrics.clone()),
            writer,
            metrics,
        )
    }

    #[tokio::test]
    async fn cached_accounts_come_from_the_cache_without_api_calls() {
        let handler: Arc<Handler> = Arc::new(|_| panic!("no API call expected"));
        let (accounts, mut cache, _) = accounts_with(Some(handler));
        let sync = tokio::spawn(accounts.track_sync());
        let sa = account_meta(
            "team-a",
            "app",
            &[(CLIENT_ID, "1111"), ("kubectl.kubernetes.io/x", "y")],
        );
        assert!(!accounts.is_synced());
        cache.apply_watcher_event(&Event::Init);
        cache.apply_watcher_event(&Event::InitApply(sa));
        tokio::task::yield_now().await;
        assert!(!accounts.is_synced());
        assert!(accounts.is_empty(), "a half-listed cluster is visible");
        cache.apply_watcher_event(&Event::InitDone);
        sync.await.unwrap();
        assert!(accounts.is_synced());

        let found = accounts.get("team-a", "app").await.unwrap();
        assert_eq!(found.name, "app");
        assert_eq!(
            found.annotations,
            BTreeMap::from([(CLIENT_ID.to_owned(), "1111".to_owned())])
        );
        assert_eq!(accounts.len(), 1);

        // A later watch event updates and deletes.
        let updated = account_meta("team-a", "app", &[(CLIENT_ID, "2222")]);
        cache.apply_watcher_event(&Event::Apply(updated.clone()));
        assert_eq!(
            accounts.get("team-a", "app").await.unwrap().annotations[CLIENT_ID],
            "2222"
        );
        cache.apply_watcher_event(&Event::Delete(updated));
        assert!(accounts.is_empty());
    }

    #[tokio::test]
    async fn a_relist_replaces_the_old_contents_at_once() {
        let (accounts, mut cache, _) = accounts_with(None);
        cache.apply_watcher_event(&Event::Init);
        cache.apply_watcher_event(&Event::InitApply(account_meta("a", "gone", &[(CLIENT_ID, "1")])));
        cache.apply_watcher_event(&Event::InitApply(account_meta("a", "kept", &[(CLIENT_ID, "1")])));
        cache.apply_watcher_event(&Event::InitDone);
        // The watch restarts (e.g. after 410 Gone): the old contents stay visible until the new
        // list is complete, then accounts deleted in between are gone.
        cache.apply_watcher_event(&Event::Init);
        cache.apply_watcher_event(&Event::InitApply(account_meta("a", "kept", &[(CLIENT_ID, "2")])));
        assert_eq!(
            accounts.get("a", "gone").await.unwrap().annotations[CLIENT_ID],
            "1"
        );
        cache.apply_watcher_event(&Event::InitDone);
        assert!(accounts.get("a", "gone").await.is_err());
        assert_eq!(
            accounts.get("a", "kept").await.unwrap().annotations[CLIENT_ID],
            "2"
        );
    }

    #[test]
    fn only_the_workload_identity_annotations_are_kept() {
        let mut sa: AccountMeta = serde_json::from_value(json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {
                "name": "app", "namespace": "team-a", "resourceVersion": "42", "uid": "u-1",
                "labels": {"app": "x"},
                "annotations": {
                    CLIENT_ID: "1111",
                    "azure.workload.identity/tenant-id": "t",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}"
                },
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:metadata": {}}}]
            }
        }))
        .unwrap();
        keep_what_the_webhook_reads(&mut sa);
        let expected = ObjectMeta {
            name: Some("app".into()),
            namespace: Some("team-a".into()),
            annotations: Some(BTreeMap::from([
                (CLIENT_ID.to_owned(), "1111".to_owned()),
                ("azure.workload.identity/tenant-id".to_owned(), "t".to_owned()),
            ])),
            ..ObjectMeta::default()
        };
        assert_eq!(sa.metadata, expected);
        // No workload identity annotation: no annotations at all.
        let plain = account_meta("ns", "sa", &[("a", "b")]);
        assert!(plain.metadata.annotations.is_none());
    }

    #[tokio::test]
    async fn the_watch_lists_metadata_keeps_only_the_annotations_and_reports_sync() {
        let handler: Arc<Handler> = Arc::new(|r| {
            assert!(r.path.starts_with("/api/v1/serviceaccounts?"), "{}", r.path);
            if r.path.contains("watch=true") {
                return None; // a watch that stays open with no events
            }
            Some((
                200,
                json!({
                    "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                    "metadata": {"resourceVersion": "10"},
                    "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                        "metadata": {"name": "app", "namespace": "team-a", "resourceVersion": "9",
                            "annotations": {CLIENT_ID: "5555", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                            "managedFields": [{"manager": "kubectl", "operation": "Apply"}]}}]
                }),
            ))
        });
        let (client, log) = fake_client(handler);
        let metrics = Metrics::new();
        let shutdown = Shutdown::new();
        let (accounts, driver) = ServiceAccounts::watch(
            client,
            LookupOptions::default(),
            metrics.clone(),
            shutdown.clone(),
        );
        assert!(!accounts.is_synced());
        let task = tokio::spawn(driver);
        let synced = async {
            while !accounts.is_synced() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(20), synced)
            .await
            .is_err()
        {
            panic!("the cache never synced; requests: {:?}", log.lock().unwrap());
        }
        assert!(metrics.encode().contains("azwi_service_account_cache_synced 1"));
        assert_eq!(
            accounts.get("team-a", "app").await.unwrap().annotations,
            BTreeMap::from([(CLIENT_ID.to_owned(), "5555".to_owned())])
        );
        assert_eq!(accounts.len(), 1);
        // The cached lookup made no request besides the list and the watch.
        assert!(
            log.lock()
                .unwrap()
                .iter()
                .all(|r| r.path.starts_with("/api/v1/serviceaccounts?")),
            "{:?}",
            log.lock().unwrap()
        );
        shutdown.trigger();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn before_the_cache_has_synced_a_lookup_gets_the_account_directly() {
        // The list never answers: the cache stays unsynced, yet lookups are answered.
        let handler: Arc<Handler> = Arc::new(|r| {
            if r.path.starts_with("/api/v1/serviceaccounts?") {
                return None;
            }
            assert_eq!(r.path, "/api/v1/namespaces/team-a/serviceaccounts/app");
            Some((200, sa_json("team-a", "app", "6666")))
        });
        let (client, log) = fake_client(handler);
        let shutdown = Shutdown::new();
        let (accounts, driver) =
            ServiceAccounts::watch(client, LookupOptions::default(), Metrics::new(), shutdown.clone());
        let task = tokio::spawn(driver);
        let found = accounts.get("team-a", "app").await.unwrap();
        assert!(!accounts.is_synced());
        assert_eq!(found.annotations[CLIENT_ID], "6666");
        assert_eq!(found.annotations.len(), 1, "{:?}", found.annotations);
        let gets = log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with("/api/v1/namespaces/"))
            .count();
        assert_eq!(gets, 1);
        shutdown.trigger();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_miss_is_answered_by_a_direct_get() {
        let handler: Arc<Handler> = Arc::new(|r| {
            assert_eq!(r.path, "/api/v1/namespaces/team-a/serviceaccounts/new-sa");
            Some((200, sa_json("team-a", "new-sa", "3333")))
        });
        let (accounts, _cache, metrics) = accounts_with(Some(handler));
        let found = accounts.get("team-a", "new-sa").await.unwrap();
        assert_eq!(
            found.annotations,
            BTreeMap::from([(CLIENT_ID.to_owned(), "3333".to_owned())])
        );
        assert!(
            metrics
                .encode()
                .contains(r#"azwi_service_account_cache_misses_total{result="found"} 1"#)
        );
    }

    #[tokio::test]
    async fn a_missing_account_is_a_clear_not_found() {
        let handler: Arc<Handler> = Arc::new(|_| Some(not_found("serviceaccounts", "ghost")));
        let (accounts, _cache, metrics) = accounts_with(Some(handler));
        let error = accounts.get("team-a", "ghost").await.unwrap_err();
        assert!(matches!(error, LookupError::NotFound { .. }));
        let message = error.to_string();
        assert!(
            message.starts_with(r#"serviceaccounts "ghost" not found in namespace "team-a""#),
            "{message}"
        );
        assert!(message.contains("spec.serviceAccountName"), "{message}");
        assert!(
            metrics
                .encode()
                .contains(r#"azwi_service_account_cache_misses_total{result="not_found"} 1"#)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_api_server_is_a_bounded_unavailable() {
        let handler: Arc<Handler> = Arc::new(|_| None);
        let (accounts, _cache, metrics) = accounts_with(Some(handler));
        let error = accounts.get("team-a", "app").await.unwrap_err();
        match &error {
            LookupError::Unavailable { reason, .. } => {
                assert!(reason.contains("no answer within 3s"), "{reason}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(error.to_string().contains("API server is reachable"), "{error}");
        assert!(
            metrics
                .encode()
                .contains(r#"azwi_service_account_cache_misses_total{result="error"} 1"#)
        );
    }

    #[tokio::test]
    async fn concurrent_misses_for_one_account_share_one_get() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let handler: Arc<Handler> = Arc::new(|_| Some((200, sa_json("team-a", "app", "4444"))));
        let (client, log) = fake_client(handler);
        let accounts = ServiceAccounts::new(
            reflector::store().0,
            Some(client),
            LookupOptions::default(),
            Metrics::new(),
        );
        let lookups: Vec<_> = (0..20)
            .map(|_| {
                let (accounts, gate) = (accounts.clone(), gate.clone());
                tokio::spawn(async move {
                    let _permit = gate.acquire().await;
                    accounts.get("team-a", "app").await
                })
            })
            .collect();
        // Hold every lookup at the gate, then release them together so the GETs overlap.
        tokio::task::yield_now().await;
        gate.add_permits(20);
        for lookup in lookups {
            assert_eq!(lookup.await.unwrap().unwrap().annotations[CLIENT_ID], "4444");
        }
        let gets = log.lock().unwrap().len();
        assert!((1..20).contains(&gets), "20 concurrent misses made {gets} GETs");
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_turns_a_flood_of_misses_into_bounded_denials() {
        let handler: Arc<Handler> = Arc::new(|r| {
            let name = r.path.rsplit('/').next().unwrap_or_default().to_owned();
            Some(not_found("serviceaccounts", &name))
        });
        let (client, log) = fake_client(handler);
        let options = LookupOptions {
            timeout: Duration::from_secs(1),
            gets_per_second: 10.0,
            burst: 5,
        };
        let accounts = ServiceAccounts::new(reflector::store().0, Some(client), options, Metrics::new());
        let results = futures::future::join_all((0..100).map(|i| {
            let accounts = accounts.clone();
            async move { accounts.get("team-a", &format!("sa-{i}")).await }
        }))
        .await;
        let gets = log.lock().unwrap().len();
        // 5 at once plus 10 per second for the 1 s budget; the rest are refused without a GET.
        assert!(gets <= 16, "{gets} GETs went out");
        let not_found = results
            .iter()
            .filter(|r| matches!(r, Err(LookupError::NotFound { .. })))
            .count();
        let limited = results
            .iter()
            .filter(|r| matches!(r, Err(LookupError::Unavailable { reason, .. }) if reason.contains("rate limited")))
            .count();
        let timed_out = results
            .iter()
            .filter(
                |r| matches!(r, Err(LookupError::Unavailable { reason, .. }) if reason.contains("no answer")),
            )
            .count();
        assert!(
            not_found >= 5 && not_found <= gets,
            "{not_found} not found, {gets} GETs"
        );
        assert!(limited >= 80, "{limited} refused by the rate limit");
        assert_eq!(not_found + limited + timed_out, 100);
    }

    #[tokio::test]
    async fn without_a_client_a_miss_is_not_found() {
        let (accounts, _cache, _) = accounts_with(None);
        assert!(matches!(
            accounts.get("a", "b").await,
            Err(LookupError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn static_accounts_answer_by_namespace_and_name() {
        let sa = ServiceAccount {
            name: "app".into(),
            annotations: BTreeMap::new(),
        };
        let accounts = ServiceAccounts::from_static([("team-a".to_owned(), sa.clone())], Metrics::new());
        assert_eq!(accounts.get("team-a", "app").await.unwrap(), sa);
        assert!(matches!(
            accounts.get("team-b", "app").await,
            Err(LookupError::NotFound { .. })
        ));
    }

    #[test]
    fn token_bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 2);
        assert_eq!(bucket.acquire(start), Duration::ZERO);
        assert_eq!(bucket.acquire(start), Duration::ZERO);
        let wait = bucket.acquire(start);
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // A second later the bucket is full again (capped at the burst).
        let later = start + Duration::from_secs(1);
        assert_eq!(bucket.acquire(later), Duration::ZERO);
        assert_eq!(bucket.acquire(later), Duration::ZERO);
        assert!(bucket.acquire(later) > Duration::ZERO);
    }
}
