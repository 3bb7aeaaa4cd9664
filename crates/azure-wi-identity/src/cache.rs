//! The token cache inside every credential: a map behind one lock.
//!
//! Entries are keyed by what the caller asked for: the scopes exactly as given (never the
//! `resource` an endpoint echoes: IMDS echoes `https://management.azure.com/` with a trailing
//! slash), the requested tenant and the CAE flag. For each key:
//!
//! - a cached token is returned until its refresh time: `refresh_on` when the token has one,
//!   and never later than 5 minutes before `expires_on`;
//! - after that, the first caller starts ONE background refresh while every caller keeps getting
//!   the still-valid token; a failed refresh is logged, the valid token keeps being served and
//!   the next attempt waits 30 s;
//! - an expired (or absent) token is fetched synchronously, and concurrent callers of the same
//!   key share that one fetch (single flight); other keys are never blocked by it;
//! - a request carrying `claims` skips the lookup and always fetches; its token then replaces the
//!   entry, since it satisfies the resource that challenged the old one.
//!
//! The cache is bounded: it holds at most [`MAX_ENTRIES`] keys, and an entry nobody asked for in
//! [`MAX_IDLE`] is dropped. Both are enforced when a key is added (the only time the map grows,
//! and a moment that goes to the network anyway): idle entries go first, then the least recently
//! used. A caller can therefore make the cache forget a token (by asking for many other keys),
//! never make it grow: the proxy turns any `resource` up to 2,048 characters into a scope.
//!
//! The lock is a `std::sync::Mutex` held only to read or write the map, never across an await;
//! the single flight of a key is a `tokio::sync::Mutex` of its own. A cache hit is one lock, one
//! hash of the key and one clone of the token. Deadlines are `tokio::time::Instant`s (monotonic,
//! and driven by `tokio::time::pause` in tests), converted from the token's wall-clock times when
//! it is stored.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use time::OffsetDateTime;
use tokio::time::Instant;

use super::{AccessToken, Result, TokenRequestOptions};

/// A token is refreshed at the latest this long before it expires.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// After a refresh attempt, the next proactive attempt waits this long.
pub(crate) const REFRESH_RETRY_DELAY: Duration = Duration::from_secs(30);
/// The most keys one cache holds (a workload uses a handful: scopes x tenants).
pub(crate) const MAX_ENTRIES: usize = 128;
/// An entry nobody asked for in this long is dropped (tokens live about an hour; a later request
/// fetches again).
pub(crate) const MAX_IDLE: Duration = Duration::from_secs(3600);

/// Whether the request carries claims (it then always goes to the network).
fn wants_claims(options: Option<&TokenRequestOptions>) -> bool {
    options
        .and_then(|o| o.claims.as_deref())
        .is_some_and(|c| !c.is_empty())
}

/// What a token is cached under: the scopes as given, a non-empty tenant, the CAE flag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    scopes: Vec<String>,
    tenant: Option<String>,
    cae: bool,
}

impl CacheKey {
    fn new(scopes: &[&str], options: Option<&TokenRequestOptions>) -> Self {
        Self {
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            tenant: options
                .and_then(|o| o.tenant_id.as_deref())
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            cae: options.is_some_and(|o| o.enable_cae),
        }
    }
}

/// A stored token and its deadlines on the monotonic clock.
struct Cached {
    token: AccessToken,
    refresh_at: Instant,
    expires_at: Instant,
}

impl Cached {
    fn new(token: AccessToken, now: Instant) -> Self {
        let wall = OffsetDateTime::now_utc();
        let at = |t: OffsetDateTime| now + Duration::try_from(t - wall).unwrap_or(Duration::ZERO);
        let expires_at = at(token.expires_on);
        let mut refresh_at = expires_at.checked_sub(REFRESH_MARGIN).unwrap_or(now).max(now);
        if let Some(refresh_on) = token.refresh_on {
            refresh_at = refresh_at.min(at(refresh_on));
        }
        Self {
            token,
            refresh_at,
            expires_at,
        }
    }
}

/// The state of one key.
struct Entry {
    cached: Option<Cached>,
    /// Held while a fetch of this key is on the wire: the single flight.
    flight: Arc<tokio::sync::Mutex<()>>,
    /// Whether a background refresh is scheduled or running.
    refreshing: bool,
    /// When the last network attempt started (the 30 s throttle).
    last_attempt: Option<Instant>,
    /// When a caller last asked for this key (the idle bound and least-recently-used eviction).
    last_used: Instant,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            cached: None,
            flight: Arc::default(),
            refreshing: false,
            last_attempt: None,
            last_used: now,
        }
    }

    /// The cached token if it has not expired at `now`.
    fn unexpired(&self, now: Instant) -> Option<AccessToken> {
        self.cached
            .as_ref()
            .filter(|c| now < c.expires_at)
            .map(|c| c.token.clone())
    }

    /// Claims the right to start a background refresh: none is running and the last attempt is
    /// at least [`REFRESH_RETRY_DELAY`] old.
    fn begin_background_refresh(&mut self, now: Instant) -> bool {
        if self.refreshing
            || self
                .last_attempt
                .is_some_and(|t| now.duration_since(t) < REFRESH_RETRY_DELAY)
        {
            return false;
        }
        self.refreshing = true;
        self.last_attempt = Some(now);
        true
    }
}

/// The map and its bounds.
struct Entries {
    map: HashMap<CacheKey, Entry>,
    max_entries: usize,
    max_idle: Duration,
}

impl Entries {
    /// The entry of `key`, added if needed; adding first drops idle entries, then the least
    /// recently used ones, so that the map never holds more than `max_entries`.
    fn entry(&mut self, key: &CacheKey, now: Instant) -> &mut Entry {
        if !self.map.contains_key(key) {
            let max_idle = self.max_idle;
            self.map.retain(|_, e| now.duration_since(e.last_used) < max_idle);
            while self.map.len() >= self.max_entries {
                let Some(oldest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                self.map.remove(&oldest);
            }
            self.map.insert(key.clone(), Entry::new(now));
        }
        self.map.get_mut(key).expect("inserted above")
    }

    /// Stores `token` under `key` (re-adding the entry if it was evicted meanwhile).
    fn store(&mut self, key: &CacheKey, token: AccessToken) {
        let now = Instant::now();
        self.entry(key, now).cached = Some(Cached::new(token, now));
    }
}

/// Lets a background refresh store its token and clear `refreshing` however it ends (success,
/// error, panic, runtime shutdown).
struct Refresh {
    entries: Arc<Mutex<Entries>>,
    key: CacheKey,
}

impl Drop for Refresh {
    fn drop(&mut self) {
        if let Some(entry) = lock(&self.entries).map.get_mut(&self.key) {
            entry.refreshing = false;
        }
    }
}

fn lock(entries: &Mutex<Entries>) -> MutexGuard<'_, Entries> {
    entries.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A per-credential token cache; see the module documentation for its rules.
pub(crate) struct TokenCache {
    /// Shared with background refreshes, which store into it.
    entries: Arc<Mutex<Entries>>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.len())
            .finish()
    }
}

impl TokenCache {
    /// An empty cache with the default bounds ([`MAX_ENTRIES`], [`MAX_IDLE`]).
    pub(crate) fn new() -> Self {
        Self::with_bounds(MAX_ENTRIES, MAX_IDLE)
    }

    /// An empty cache holding at most `max_entries` keys (at least one), each for at most
    /// `max_idle` without a request.
    pub(crate) fn with_bounds(max_entries: usize, max_idle: Duration) -> Self {
        Self {
            entries: Arc::new(Mutex::new(Entries {
                map: HashMap::new(),
                max_entries: max_entries.max(1),
                max_idle,
            })),
        }
    }

    /// How many keys the cache holds.
    pub(crate) fn len(&self) -> usize {
        lock(&self.entries).map.len()
    }

    /// Returns a cached token for (`scopes`, tenant, CAE) or gets one with `fetch`, following the
    /// rules of the module documentation. `fetch` runs at most once per call, possibly in a
    /// background task after this call has returned.
    pub(crate) async fn get_token<F, Fut>(
        &self,
        scopes: &[&str],
        options: Option<&TokenRequestOptions>,
        fetch: F,
    ) -> Result<AccessToken>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<AccessToken>> + Send + 'static,
    {
        let key = CacheKey::new(scopes, options);
        let now = Instant::now();
        if wants_claims(options) {
            lock(&self.entries).entry(&key, now).last_attempt = Some(now);
            let token = fetch().await?;
            lock(&self.entries).store(&key, token.clone());
            return Ok(token);
        }

        let flight = {
            let mut entries = lock(&self.entries);
            let entry = entries.entry(&key, now);
            entry.last_used = now;
            match &entry.cached {
                Some(c) if now < c.refresh_at => return Ok(c.token.clone()),
                Some(c) if now < c.expires_at => {
                    let token = c.token.clone();
                    if entry.begin_background_refresh(now) {
                        let refresh = Refresh {
                            entries: self.entries.clone(),
                            key,
                        };
                        let flight = entry.flight.clone();
                        tokio::spawn(async move {
                            let _flight = flight.lock().await;
                            match fetch().await {
                                Ok(token) => lock(&refresh.entries).store(&refresh.key, token),
                                Err(error) => tracing::warn!(
                                    %error,
                                    "background token refresh failed; serving the cached token, next attempt in 30 s"
                                ),
                            }
                        });
                    }
                    return Ok(token);
                }
                _ => entry.flight.clone(),
            }
        };

        let _flight = flight.lock().await;
        let now = Instant::now();
        {
            let mut entries = lock(&self.entries);
            let entry = entries.entry(&key, now);
            if let Some(token) = entry.unexpired(now) {
                return Ok(token);
            }
            entry.last_attempt = Some(now);
        }
        let token = fetch().await?;
        lock(&self.entries).store(&key, token.clone());
        Ok(token)
    }

    /// The cached token for (`scopes`, tenant, CAE) when it is fresh (before its refresh time) and
    /// the request has no claims, for callers that must do work (allocate, validate) before they
    /// can call [`get_token`](Self::get_token).
    pub(crate) fn fresh(
        &self,
        scopes: &[&str],
        options: Option<&TokenRequestOptions>,
    ) -> Option<AccessToken> {
        if wants_claims(options) {
            return None;
        }
        let key = CacheKey::new(scopes, options);
        let now = Instant::now();
        let mut entries = lock(&self.entries);
        let entry = entries.map.get_mut(&key)?;
        let cached = entry.cached.as_ref().filter(|c| now < c.refresh_at)?;
        let token = cached.token.clone();
        entry.last_used = now;
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::Error;

    const SCOPE: &[&str] = &["https://vault.azure.net/.default"];

    /// A fetch that counts its calls and returns `token-N` living `lifetime`, or fails.
    #[derive(Clone)]
    struct Fetcher {
        calls: Arc<AtomicUsize>,
        lifetime: time::Duration,
        refresh_in: Option<time::Duration>,
        fail: Arc<AtomicBool>,
        delay: Duration,
    }

    impl Fetcher {
        fn new(lifetime_secs: i64) -> Self {
            Self {
                calls: Arc::default(),
                lifetime: time::Duration::seconds(lifetime_secs),
                refresh_in: None,
                fail: Arc::default(),
                delay: Duration::ZERO,
            }
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        fn fetch(&self) -> impl FnOnce() -> futures_fetch::Fut + Send + 'static {
            let this = self.clone();
            move || {
                Box::pin(async move {
                    let n = this.calls.fetch_add(1, Ordering::SeqCst) + 1;
                    if !this.delay.is_zero() {
                        tokio::time::sleep(this.delay).await;
                    }
                    if this.fail.load(Ordering::SeqCst) {
                        return Err(Error::authentication_failed("test", format!("fetch {n} refused")));
                    }
                    let now = OffsetDateTime::now_utc();
                    Ok(AccessToken::new(format!("token-{n}"), now + this.lifetime)
                        .with_refresh_on(this.refresh_in.map(|r| now + r)))
                })
            }
        }
    }

    mod futures_fetch {
        pub(super) type Fut =
            std::pin::Pin<Box<dyn std::future::Future<Output = crate::Result<crate::AccessToken>> + Send>>;
    }

    async fn get(cache: &TokenCache, f: &Fetcher) -> Result<String> {
        cache
            .get_token(SCOPE, None, f.fetch())
            .await
            .map(|t| t.token.secret().to_owned())
    }

    /// Lets spawned background tasks run to completion (time is paused, so this is instant).
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_token_is_served_from_the_cache() {
        let (cache, f) = (TokenCache::new(), Fetcher::new(3600));
        assert_eq!(get(&cache, &f).await.unwrap(), "token-1");
        tokio::time::advance(Duration::from_secs(3000)).await;
        assert_eq!(get(&cache, &f).await.unwrap(), "token-1");
        assert_eq!(f.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn within_five_minutes_of_expiry_one_background_refresh_serves_the_old_token_meanwhile() {
        let (cache, mut f) = (TokenCache::new(), Fetcher::new(3600));
        get(&cache, &f).await.unwrap();
        f.delay = Duration::from_secs(2);
        tokio::time::advance(Duration::from_secs(3301)).await;
        for _ in 0..5 {
            assert_eq!(
                get(&cache, &f).await.unwrap(),
                "token-1",
                "old token while refreshing"
            );
        }
        settle().await;
        assert_eq!(f.calls(), 2, "exactly one background refresh");
        tokio::time::advance(Duration::from_secs(3)).await;
        settle().await;
        assert_eq!(get(&cache, &f).await.unwrap(), "token-2");
        assert_eq!(f.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_on_is_honoured() {
        let (cache, mut f) = (TokenCache::new(), Fetcher::new(86400));
        f.refresh_in = Some(time::Duration::seconds(43200));
        get(&cache, &f).await.unwrap();
        tokio::time::advance(Duration::from_secs(43190)).await;
        assert_eq!(get(&cache, &f).await.unwrap(), "token-1");
        assert_eq!(f.calls(), 1, "before refresh_on: no fetch");
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(get(&cache, &f).await.unwrap(), "token-1");
        settle().await;
        assert_eq!(f.calls(), 2, "after refresh_on: background refresh");
        assert_eq!(get(&cache, &f).await.unwrap(), "token-2");
    }

    #[tokio::test(start_paused = true)]
    async fn failed_background_refresh_keeps_the_token_and_waits_30_seconds() {
        let (cache, f) = (TokenCache::new(), Fetcher::new(3600));
        get(&cache, &f).await.unwrap();
        f.fail.store(true, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(3400)).await;
        assert_eq!(get(&cache, &f).await.unwrap(), "token-1");
        settle().await;
        assert_eq!(f.calls(), 2);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(get(&cache, &f).await.unwrap(), "token-1");
        settle().await;
        assert_eq!(f.calls(), 2, "throttled for 30 s");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(get(&cache, &f).await.unwrap(), "token-1");
        settle().await;
        assert_eq!(f.calls(), 3, "next attempt after 30 s");
        f.fail.store(false, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(30)).await;
        get(&cache, &f).await.unwrap();
        settle().await;
        assert_eq!(get(&cache, &f).await.unwrap(), "token-4");
    }

    #[tokio::test(start_paused = true)]
    async fn expired_token_is_fetched_synchronously_and_errors_propagate() {
        let (cache, f) = (TokenCache::new(), Fetcher::new(3600));
        get(&cache, &f).await.unwrap();
        // A throttled background attempt must not stop a required refresh.
        f.fail.store(true, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(3590)).await;
        get(&cache, &f).await.unwrap();
        settle().await;
        assert_eq!(f.calls(), 2);
        tokio::time::advance(Duration::from_secs(10)).await;
        let e = get(&cache, &f).await.unwrap_err();
        assert!(e.to_string().contains("fetch 3 refused"), "{e}");
        f.fail.store(false, Ordering::SeqCst);
        assert_eq!(get(&cache, &f).await.unwrap(), "token-4");
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_answers_only_fresh_claimless_requests() {
        let (cache, f) = (TokenCache::new(), Fetcher::new(3600));
        assert!(cache.fresh(SCOPE, None).is_none());
        get(&cache, &f).await.unwrap();
        assert_eq!(cache.fresh(SCOPE, None).unwrap().token.secret(), "token-1");
        let claims = TokenRequestOptions {
            claims: Some("{}".into()),
            ..Default::default()
        };
        assert!(cache.fresh(SCOPE, Some(&claims)).is_none());
        tokio::time::advance(Duration::from_secs(3301)).await;
        assert!(
            cache.fresh(SCOPE, None).is_none(),
            "in the refresh window the slow path decides"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_key_is_served_and_a_token_inside_its_refresh_window_is_never_fresh() {
        let (cache, mut f) = (TokenCache::new(), Fetcher::new(3600));
        let other: &[&str] = &["https://storage.azure.com/.default"];
        get(&cache, &f).await.unwrap();
        assert_eq!(cache.fresh(SCOPE, None).unwrap().token.secret(), "token-1");
        cache.get_token(other, None, f.fetch()).await.unwrap();
        assert_eq!(cache.fresh(other, None).unwrap().token.secret(), "token-2");
        // The first key is still served, and the second keeps its own token.
        assert_eq!(get(&cache, &f).await.unwrap(), "token-1");
        assert_eq!(cache.fresh(other, None).unwrap().token.secret(), "token-2");
        // A token already inside its refresh window is stored but never fresh.
        f.lifetime = time::Duration::seconds(200);
        let claims = TokenRequestOptions {
            claims: Some("{}".into()),
            ..Default::default()
        };
        let t = cache.get_token(other, Some(&claims), f.fetch()).await.unwrap();
        assert_eq!(t.token.secret(), "token-3");
        assert!(cache.fresh(other, None).is_none());
        assert_eq!(f.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn claims_bypass_the_lookup_and_replace_the_entry() {
        let (cache, f) = (TokenCache::new(), Fetcher::new(3600));
        get(&cache, &f).await.unwrap();
        let options = TokenRequestOptions {
            claims: Some(r#"{"access_token":{"nbf":{"essential":true}}}"#.into()),
            ..Default::default()
        };
        let t = cache.get_token(SCOPE, Some(&options), f.fetch()).await.unwrap();
        assert_eq!(t.token.secret(), "token-2");
        assert_eq!(get(&cache, &f).await.unwrap(), "token-2");
        assert_eq!(f.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_cover_scopes_tenant_and_cae() {
        let (cache, f) = (TokenCache::new(), Fetcher::new(3600));
        let tenant = TokenRequestOptions {
            tenant_id: Some("other".into()),
            ..Default::default()
        };
        let cae = TokenRequestOptions {
            enable_cae: true,
            ..Default::default()
        };
        let requests: [(&[&str], Option<&TokenRequestOptions>); 6] = [
            (&["a/.default"], None),
            (&["b/.default"], None),
            (&["a/.default", "b/.default"], None),
            (&["b/.default", "a/.default"], None),
            (&["a/.default"], Some(&tenant)),
            (&["a/.default"], Some(&cae)),
        ];
        for round in 0..2 {
            for (i, (scopes, options)) in requests.iter().enumerate() {
                let t = cache.get_token(scopes, *options, f.fetch()).await.unwrap();
                assert_eq!(t.token.secret(), format!("token-{}", i + 1), "round {round}");
            }
        }
        assert_eq!(f.calls(), 6);
        let default_options = TokenRequestOptions::default();
        let t = cache
            .get_token(&["a/.default"], Some(&default_options), f.fetch())
            .await
            .unwrap();
        assert_eq!(t.token.secret(), "token-1", "default options equal no options");
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_concurrent_callers_on_a_cold_cache_cause_one_fetch() {
        let cache = Arc::new(TokenCache::new());
        let mut f = Fetcher::new(3600);
        f.delay = Duration::from_secs(1);
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let (cache, f) = (cache.clone(), f.clone());
                tokio::spawn(async move { get(&cache, &f).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), "token-1");
        }
        assert_eq!(f.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn one_keys_fetch_never_blocks_another_key() {
        let cache = Arc::new(TokenCache::new());
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        let c = cache.clone();
        let stuck = tokio::spawn(async move {
            c.get_token(&["slow/.default"], None, move || async move {
                let _ = hold.await;
                Ok(AccessToken::new(
                    "slow",
                    OffsetDateTime::now_utc() + time::Duration::hours(1),
                ))
            })
            .await
        });
        settle().await;
        let f = Fetcher::new(3600);
        assert_eq!(
            get(&cache, &f).await.unwrap(),
            "token-1",
            "another key is served while one is stuck"
        );
        release.send(()).unwrap();
        assert_eq!(stuck.await.unwrap().unwrap().token.secret(), "slow");
    }

    #[test]
    fn keys_keep_scope_boundaries() {
        let owned = CacheKey::new(&["x", "y"], None);
        assert_eq!(owned, CacheKey::new(&["x", "y"], None));
        assert_ne!(CacheKey::new(&["xy"], None), owned);
        assert_ne!(CacheKey::new(&["x y"], None), owned);
    }

    /// A scope of the longest kind the proxy accepts (2,048 characters), made distinct by `i`.
    fn long_scope(i: usize) -> String {
        format!("api://{i:08}/{}/.default", "x".repeat(2048 - 24))
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_distinct_scopes_stays_within_the_bound() {
        let (cache, f) = (TokenCache::new(), Fetcher::new(3600));
        const FLOOD: usize = 10_000;
        for i in 0..FLOOD {
            // Paused time stands still: step it, or every entry would be equally old and which
            // one is evicted would depend on the map's hash order.
            tokio::time::advance(Duration::from_millis(1)).await;
            let scope = long_scope(i);
            cache.get_token(&[&scope], None, f.fetch()).await.unwrap();
            assert!(
                cache.len() <= MAX_ENTRIES,
                "{} entries after {} scopes",
                cache.len(),
                i + 1
            );
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert_eq!(f.calls(), FLOOD);
        // The most recent keys are still cached; the first ones were evicted.
        let last = long_scope(FLOOD - 1);
        let t = cache.get_token(&[&last], None, f.fetch()).await.unwrap();
        assert_eq!(t.token.secret(), format!("token-{FLOOD}"));
        assert_eq!(f.calls(), FLOOD);
        let first = long_scope(0);
        let t = cache.get_token(&[&first], None, f.fetch()).await.unwrap();
        assert_eq!(t.token.secret(), format!("token-{}", FLOOD + 1));
        assert_eq!(cache.len(), MAX_ENTRIES);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_evicts_the_least_recently_used_key() {
        let (cache, f) = (TokenCache::with_bounds(3, MAX_IDLE), Fetcher::new(3600));
        for scope in ["a", "b", "c"] {
            cache.get_token(&[scope], None, f.fetch()).await.unwrap();
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // "a" is used again, so "b" is now the least recently used.
        cache.get_token(&["a"], None, f.fetch()).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        cache.get_token(&["d"], None, f.fetch()).await.unwrap();
        assert_eq!(cache.len(), 3);
        assert_eq!(f.calls(), 4);
        for (scope, token) in [("a", "token-1"), ("c", "token-3"), ("d", "token-4")] {
            let t = cache.get_token(&[scope], None, f.fetch()).await.unwrap();
            assert_eq!(t.token.secret(), token, "{scope} kept");
        }
        assert_eq!(f.calls(), 4);
        let t = cache.get_token(&["b"], None, f.fetch()).await.unwrap();
        assert_eq!(t.token.secret(), "token-5", "b was evicted");
    }

    #[tokio::test(start_paused = true)]
    async fn entries_idle_for_the_idle_bound_are_dropped_when_a_key_is_added() {
        let (cache, f) = (TokenCache::new(), Fetcher::new(86400));
        for i in 0..10 {
            cache
                .get_token(&[&format!("s{i}")], None, f.fetch())
                .await
                .unwrap();
        }
        tokio::time::advance(MAX_IDLE - Duration::from_secs(60)).await;
        // "s0" is asked for again (a cache hit): it stays; the other nine go idle.
        cache.get_token(&["s0"], None, f.fetch()).await.unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            cache.len(),
            10,
            "idle entries are dropped only when a key is added"
        );
        cache.get_token(&["new"], None, f.fetch()).await.unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(f.calls(), 11);
        let t = cache.get_token(&["s0"], None, f.fetch()).await.unwrap();
        assert_eq!(t.token.secret(), "token-1");
        let t = cache.get_token(&["s1"], None, f.fetch()).await.unwrap();
        assert_eq!(t.token.secret(), "token-12", "s1 was dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_background_refresh_of_an_evicted_key_stays_within_the_bound() {
        let (cache, mut f) = (TokenCache::with_bounds(2, MAX_IDLE), Fetcher::new(3600));
        cache.get_token(&["a"], None, f.fetch()).await.unwrap();
        f.delay = Duration::from_secs(2);
        tokio::time::advance(Duration::from_secs(3400)).await;
        // "a" starts a background refresh, then two other keys push it out.
        cache.get_token(&["a"], None, f.fetch()).await.unwrap();
        f.delay = Duration::ZERO;
        cache.get_token(&["b"], None, f.fetch()).await.unwrap();
        cache.get_token(&["c"], None, f.fetch()).await.unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        settle().await;
        assert_eq!(f.calls(), 4);
        assert!(cache.len() <= 2, "{} entries", cache.len());
    }
}
