//! ServiceAccounts for the mutation: a compact watch-fed cache, with a direct GET on a miss.
//!
//! - The cache ([`AccountCache`]) follows a metadata-only watch of every ServiceAccount and keeps,
//!   per ServiceAccount, its name and `azure.workload.identity/*` annotations, nothing else (the
//!   decoder of [`AccountMeta`] skips every other field without allocating it).
//! - The webhook does not wait for the cache: until its first complete list has arrived
//!   ([`ServiceAccounts::is_synced`]), and on any miss afterwards (e.g. a ServiceAccount created a
//!   moment before its pod, before the watch delivered it), a lookup makes one direct GET.
//!   Concurrent lookups of the same (namespace, name) share that GET, and GETs are rate-limited
//!   (token bucket) so a burst of pods cannot flood the API server; a lookup waiting for the rate
//!   limit takes the cache's answer if the cache has synced in the meantime.
//! - Every lookup is bounded by a timeout shorter than the API server's webhook timeout (10 s by
//!   default), so the webhook answers with a clear denial instead of timing out.
//! - [`ServiceAccounts::from_static`] fills the same cache once from a fixed list, with no client
//!   (`--service-account-file`: offline preview, benchmarks).
//!
//! The watch is kube-rs's [`watcher()`]; the cache and the decoder are ours: kube-rs's reflector
//! `Store` costs 9.6 MiB more heap with 10,000 ServiceAccounts (BENCHMARKS.md: "kube-rs where it does the job").

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{
    FutureExt, StreamExt,
    future::{BoxFuture, Shared},
};
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use tokio::time::Instant;

pub use super::service_account_meta::ANNOTATION_PREFIX;
use azure_wi_core::ServiceAccount;

use super::{
    metrics::{Metrics, MissResult},
    service_account_cache::AccountCache,
    service_account_meta::AccountMeta,
};
use crate::server::Shutdown;

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
type SharedGet = Shared<BoxFuture<'static, GetResult>>;

/// The GETs in flight, by key, each with a number that tells it from a later GET of the same key.
#[derive(Default)]
struct InFlight {
    next: u64,
    gets: HashMap<Key, (u64, SharedGet)>,
}

/// ServiceAccount lookups for the admission handler. Cheap to clone.
#[derive(Clone)]
pub struct ServiceAccounts {
    cache: Arc<AccountCache>,
    /// For misses; `None`: a miss means not found.
    client: Option<Client>,
    options: LookupOptions,
    in_flight: Arc<Mutex<InFlight>>,
    limiter: Arc<Mutex<TokenBucket>>,
    metrics: Metrics,
}

impl fmt::Debug for ServiceAccounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccounts")
            .field("cache", &self.cache)
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
        let cache = Arc::new(AccountCache::new());
        // `AccountMeta` is a metadata-only resource: list and watch ask for `PartialObjectMetadata`.
        let api: Api<AccountMeta> = Api::all(client.clone());
        let stream = watcher::watcher(api, watcher::Config::default().any_semantic()).default_backoff();
        let (feed, synced_gauge) = (cache.clone(), metrics.service_account_cache_synced.clone());
        let driver = async move {
            let started = Instant::now();
            let drain = stream.for_each(|event| {
                match event {
                    Ok(event) => {
                        let first_sync = matches!(event, watcher::Event::InitDone) && !feed.is_synced();
                        feed.apply(event);
                        if first_sync {
                            synced_gauge.set(1);
                            tracing::info!(
                                count = feed.len(),
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "ServiceAccount cache synced"
                            );
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "ServiceAccount watch failed; retrying with backoff")
                    }
                }
                futures::future::ready(())
            });
            tokio::select! {
                () = shutdown.wait() => {}
                () = drain => {}
            }
        };
        (Self::from_cache(cache, Some(client), options, metrics), driver)
    }

    /// Lookups over an existing cache (fed by the caller), with `client` for misses (`None`: a
    /// miss means not found).
    pub fn from_cache(
        cache: Arc<AccountCache>,
        client: Option<Client>,
        options: LookupOptions,
        metrics: Metrics,
    ) -> Self {
        let limiter = TokenBucket::new(options.gets_per_second, options.burst);
        Self {
            cache,
            client,
            options,
            in_flight: Arc::default(),
            limiter: Arc::new(Mutex::new(limiter)),
            metrics,
        }
    }

    /// A fixed set of ServiceAccounts, keyed by (namespace, name), in a cache filled once (synced);
    /// nothing else exists (no client: a miss is not found).
    pub fn from_static(
        accounts: impl IntoIterator<Item = (String, ServiceAccount)>,
        metrics: Metrics,
    ) -> Self {
        let cache = AccountCache::new();
        cache.apply(watcher::Event::Init);
        for (namespace, account) in accounts {
            let annotations: Vec<(&str, &str)> = account
                .annotations
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            cache.apply(watcher::Event::InitApply(AccountMeta::new(
                &namespace,
                &account.name,
                &annotations,
            )));
        }
        cache.apply(watcher::Event::InitDone);
        Self::from_cache(Arc::new(cache), None, LookupOptions::default(), metrics)
    }

    /// Number of ServiceAccounts held.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether the cache holds a complete list (always true for a static set). Until then every
    /// lookup asks the API server directly.
    pub fn is_synced(&self) -> bool {
        self.cache.is_synced()
    }

    /// Whether `namespace` is known to exist: it holds a ServiceAccount (every namespace has its
    /// `default` one). Used to keep metric labels to real namespaces.
    pub fn knows_namespace(&self, namespace: &str) -> bool {
        self.cache.has_namespace(namespace)
    }

    /// Whether no ServiceAccount is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ServiceAccount `name` in `namespace`, from the cache or, on a miss, from the API server.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<ServiceAccount, LookupError> {
        let (cache, client) = (&self.cache, &self.client);
        if let Some(cached) = cache.get(namespace, name) {
            return Ok(cached);
        }
        let not_found = || LookupError::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let Some(client) = client else {
            self.metrics.observe_miss(MissResult::not_found);
            return Err(not_found());
        };
        let deadline = Instant::now() + self.options.timeout;
        let (fetch, _leave) = self.shared_get(cache, client, namespace, name, deadline);
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

    /// The GET for (namespace, name), shared with every concurrent miss for the same key, and the
    /// guard that ends the sharing when this lookup stops waiting for it: however it stops (an
    /// answer, its timeout, its admission request dropped), the next miss makes a GET of its own
    /// instead of joining one that may hang until the client's read timeout.
    fn shared_get(
        &self,
        cache: &Arc<AccountCache>,
        client: &Client,
        namespace: &str,
        name: &str,
        deadline: Instant,
    ) -> (SharedGet, LeaveOnDrop<'_>) {
        let key = (namespace.to_owned(), name.to_owned());
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((id, shared)) = in_flight.gets.get(&key) {
            let leave = LeaveOnDrop {
                in_flight: &self.in_flight,
                key,
                id: *id,
            };
            return (shared.clone(), leave);
        }
        // A metadata-only GET, decoded as leanly as the watch's objects.
        let api: Api<AccountMeta> = Api::namespaced(client.clone(), namespace);
        let limiter = self.limiter.clone();
        let (cache, namespace, name) = (cache.clone(), namespace.to_owned(), name.to_owned());
        let fut = async move {
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
                if cache.is_synced()
                    && let Some(cached) = cache.get(&namespace, &name)
                {
                    return Ok(Some(cached));
                }
            }
            match api.get_opt(&name).await {
                Ok(found) => Ok(found.map(|sa| to_service_account(&name, sa))),
                Err(error) => Err(error.to_string()),
            }
        }
        .boxed()
        .shared();
        let id = in_flight.next;
        in_flight.next += 1;
        in_flight.gets.insert(key.clone(), (id, fut.clone()));
        (
            fut,
            LeaveOnDrop {
                in_flight: &self.in_flight,
                key,
                id,
            },
        )
    }
}

/// Removes a shared GET from [`InFlight`] when a lookup that waited for it stops waiting, unless a
/// later GET of the same key has taken its place.
struct LeaveOnDrop<'a> {
    in_flight: &'a Mutex<InFlight>,
    key: Key,
    id: u64,
}

impl Drop for LeaveOnDrop<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if in_flight
            .gets
            .get(&self.key)
            .is_some_and(|(id, _)| *id == self.id)
        {
            in_flight.gets.remove(&self.key);
        }
    }
}

fn to_service_account(name: &str, sa: AccountMeta) -> ServiceAccount {
    ServiceAccount {
        name: name.to_owned(),
        annotations: sa.metadata.annotations.unwrap_or_default(),
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

    use kube::runtime::watcher::Event;
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

    fn accounts_with(handler: Option<Arc<Handler>>) -> (ServiceAccounts, Arc<AccountCache>, Metrics) {
        let cache = Arc::new(AccountCache::new());
        let client = handler.map(|h| fake_client(h).0);
        let metrics = Metrics::new();
        (
            ServiceAccounts::from_cache(cache.clone(), client, LookupOptions::default(), metrics.clone()),
            cache,
            metrics,
        )
    }

    #[tokio::test]
    async fn cached_accounts_come_from_the_cache_without_api_calls() {
        let handler: Arc<Handler> = Arc::new(|_| panic!("no API call expected"));
        let (accounts, cache, _) = accounts_with(Some(handler));
        let sa = AccountMeta::new(
            "team-a",
            "app",
            &[(CLIENT_ID, "1111"), ("kubectl.kubernetes.io/x", "y")],
        );
        assert!(!accounts.is_synced());
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(sa));
        assert!(!accounts.is_synced());
        cache.apply(Event::InitDone);
        assert!(accounts.is_synced());

        let found = accounts.get("team-a", "app").await.unwrap();
        assert_eq!(found.name, "app");
        assert_eq!(
            found.annotations,
            BTreeMap::from([(CLIENT_ID.to_owned(), "1111".to_owned())])
        );
        assert_eq!(accounts.len(), 1);

        // A later watch event updates and deletes.
        let updated = AccountMeta::new("team-a", "app", &[(CLIENT_ID, "2222")]);
        cache.apply(Event::Apply(updated.clone()));
        assert_eq!(
            accounts.get("team-a", "app").await.unwrap().annotations[CLIENT_ID],
            "2222"
        );
        cache.apply(Event::Delete(updated));
        assert!(accounts.is_empty());
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

    #[tokio::test(start_paused = true)]
    async fn a_lookup_after_a_timed_out_one_makes_a_get_of_its_own() {
        // The API server never answers the first GET, then recovers.
        let answered = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let first = answered.clone();
        let handler: Arc<Handler> = Arc::new(move |_| {
            first
                .swap(true, std::sync::atomic::Ordering::SeqCst)
                .then(|| (200, sa_json("team-a", "app", "5555")))
        });
        let (accounts, _cache, _metrics) = accounts_with(Some(handler));
        let error = accounts.get("team-a", "app").await.unwrap_err();
        assert!(matches!(error, LookupError::Unavailable { .. }), "{error:?}");
        // Joining the hung GET would time out again; a GET of its own gets the account.
        let sa = accounts.get("team-a", "app").await.expect("a fresh GET");
        assert_eq!(sa.annotations[CLIENT_ID], "5555");
        assert!(
            accounts.in_flight.lock().unwrap().gets.is_empty(),
            "nothing left in flight"
        );
    }

    #[tokio::test]
    async fn concurrent_misses_for_one_account_share_one_get() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let handler: Arc<Handler> = Arc::new(|_| Some((200, sa_json("team-a", "app", "4444"))));
        let cache = Arc::new(AccountCache::new());
        let (client, log) = fake_client(handler);
        let accounts =
            ServiceAccounts::from_cache(cache, Some(client), LookupOptions::default(), Metrics::new());
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
        let cache = Arc::new(AccountCache::new());
        let (client, log) = fake_client(handler);
        let options = LookupOptions {
            timeout: Duration::from_secs(1),
            gets_per_second: 10.0,
            burst: 5,
        };
        let accounts = ServiceAccounts::from_cache(cache, Some(client), options, Metrics::new());
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
