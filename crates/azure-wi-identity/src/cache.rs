//! The token cache inside every credential.
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
//! The hot path (a fresh token) takes no lock: the most recently stored token is published in an
//! [`ArcSwapOption`] together with its key and the moment it stops being fresh on the coarse
//! monotonic clock (`CLOCK_MONOTONIC_COARSE` on Linux: ~10 ns to read where a precise read costs
//! ~40 ns on the benchmark machine; its few-millisecond resolution is far inside the 5-minute
//! refresh margin). A caller asking for that key gets a clone of the token's `Arc` without hashing,
//! locking or allocating. Other keys go through the map: two uncontended read locks, no
//! allocation (the lookup borrows the caller's scopes through [`hashbrown::Equivalent`]).
//! Deadlines of the map are `tokio::time::Instant`s (monotonic, and driven by
//! `tokio::time::pause` in tests), converted from the token's wall-clock times when it is stored;
//! unit tests drive the hot entry's clock with tokio's paused clock too.

use std::{
    fmt,
    future::Future,
    hash::{Hash, Hasher},
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwapOption;
use hashbrown::{Equivalent, HashMap};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::{AccessToken, Result, TokenRequestOptions};

/// A token is refreshed at the latest this long before it expires.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// After a refresh attempt, the next proactive attempt waits this long.
pub(crate) const REFRESH_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Whether the request carries claims (it then always goes to the network).
fn wants_claims(options: Option<&TokenRequestOptions>) -> bool {
    options
        .and_then(|o| o.claims.as_deref())
        .is_some_and(|c| !c.is_empty())
}

/// The owned key of an entry.
#[derive(Clone, PartialEq, Eq)]
struct CacheKey {
    scopes: Box<[Box<str>]>,
    tenant: Option<Box<str>>,
    cae: bool,
}

/// The borrowed key of a lookup; hashes exactly like the [`CacheKey`] it equals.
struct LookupKey<'a> {
    scopes: &'a [&'a str],
    tenant: Option<&'a str>,
    cae: bool,
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.scopes.len());
        for scope in &self.scopes {
            scope.as_ref().hash(state);
        }
        self.tenant.as_deref().hash(state);
        self.cae.hash(state);
    }
}

impl Hash for LookupKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.scopes.len());
        for scope in self.scopes {
            scope.hash(state);
        }
        self.tenant.hash(state);
        self.cae.hash(state);
    }
}

impl Equivalent<CacheKey> for LookupKey<'_> {
    fn equivalent(&self, key: &CacheKey) -> bool {
        self.cae == key.cae
            && self.tenant == key.tenant.as_deref()
            && self.scopes.len() == key.scopes.len()
            && self
                .scopes
                .iter()
                .zip(key.scopes.iter())
                .all(|(a, b)| *a == b.as_ref())
    }
}

impl<'a> LookupKey<'a> {
    /// The key of a request: its scopes as given, a non-empty tenant, the CAE flag.
    fn new(scopes: &'a [&'a str], options: Option<&'a TokenRequestOptions>) -> Self {
        Self {
            scopes,
            tenant: options
                .and_then(|o| o.tenant_id.as_deref())
                .filter(|t| !t.is_empty()),
            cae: options.is_some_and(|o| o.enable_cae),
        }
    }

    fn to_owned_key(&self) -> CacheKey {
        CacheKey {
            scopes: self.scopes.iter().map(|s| Box::from(*s)).collect(),
            tenant: self.tenant.map(Box::from),
            cae: self.cae,
        }
    }
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
    expires_at: Instant,
}

/// The clock of the hot entry (see the module documentation).
#[cfg(not(test))]
mod fast_clock {
    pub(super) type Instant = coarsetime::Instant;

    pub(super) fn now() -> Instant {
        coarsetime::Instant::now()
    }

    pub(super) fn after(now: Instant, delay: std::time::Duration) -> Instant {
        now + coarsetime::Duration::from(delay)
    }
}

/// Unit tests pause and advance tokio's clock; the hot entry follows it there.
#[cfg(test)]
mod fast_clock {
    pub(super) type Instant = tokio::time::Instant;

    pub(super) fn now() -> Instant {
        tokio::time::Instant::now()
    }

    pub(super) fn after(now: Instant, delay: std::time::Duration) -> Instant {
        now + delay
    }
}

/// The most recently stored token while it is fresh: the lock-free fast path.
struct Hot {
    slot: Arc<Slot>,
    token: AccessToken,
    fresh_until: fast_clock::Instant,
}

/// The state of one key.
struct Slot {
    key: CacheKey,
    cached: RwLock<Option<Cached>>,
    /// Held while a fetch of this key is on the wire: the single flight.
    fetching: tokio::sync::Mutex<()>,
    /// Whether a background refresh is scheduled or running.
    refreshing: AtomicBool,
    /// When the last network attempt started (the 30 s throttle).
    last_attempt: Mutex<Option<Instant>>,
}

impl Slot {
    fn new(key: CacheKey) -> Self {
        Self {
            key,
            cached: RwLock::default(),
            fetching: tokio::sync::Mutex::default(),
            refreshing: AtomicBool::default(),
            last_attempt: Mutex::default(),
        }
    }

    /// The cached token if it has not expired at `now`.
    fn unexpired(&self, now: Instant) -> Option<AccessToken> {
        let cached = self.cached.read().unwrap_or_else(PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|c| now < c.expires_at)
            .map(|c| c.token.clone())
    }

    fn stamp_attempt(&self, now: Instant) {
        *self.last_attempt.lock().unwrap_or_else(PoisonError::into_inner) = Some(now);
    }

    /// Claims the right to start a background refresh: none is running and the last attempt is
    /// at least [`REFRESH_RETRY_DELAY`] old.
    fn begin_background_refresh(&self, now: Instant) -> bool {
        let mut last = self.last_attempt.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| now.duration_since(t) < REFRESH_RETRY_DELAY) {
            return false;
        }
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Stores `token` and, when it is fresh, publishes it as the cache's hot entry (under the
    /// write lock, so that the hot entry never goes back to an older token of this key).
    fn store(self: &Arc<Self>, token: &AccessToken, hot: &ArcSwapOption<Hot>) {
        let (now, wall) = (Instant::now(), OffsetDateTime::now_utc());
        let at = |t: OffsetDateTime| now + Duration::try_from(t - wall).unwrap_or(Duration::ZERO);
        let expires_at = at(token.expires_on);
        let mut refresh_at = expires_at.checked_sub(REFRESH_MARGIN).unwrap_or(now).max(now);
        if let Some(refresh_on) = token.refresh_on {
            refresh_at = refresh_at.min(at(refresh_on));
        }
        let entry = Cached {
            token: token.clone(),
            refresh_at,
            expires_at,
        };
        let mut cached = self.cached.write().unwrap_or_else(PoisonError::into_inner);
        *cached = Some(entry);
        if refresh_at > now {
            hot.store(Some(Arc::new(Hot {
                slot: self.clone(),
                token: token.clone(),
                fresh_until: fast_clock::after(fast_clock::now(), refresh_at - now),
            })));
        } else if hot.load().as_ref().is_some_and(|h| Arc::ptr_eq(&h.slot, self)) {
            hot.store(None);
        }
        drop(cached);
    }
}

/// Resets `refreshing` however the background task ends (success, error, panic, runtime shutdown).
struct RefreshingGuard(Arc<Slot>);

impl Drop for RefreshingGuard {
    fn drop(&mut self) {
        self.0.refreshing.store(false, Ordering::Release);
    }
}

/// A per-credential token cache; see the module documentation for its rules.
pub(crate) struct TokenCache {
    slots: RwLock<HashMap<CacheKey, Arc<Slot>>>,
    /// Shared with background refreshes, which store into it.
    hot: Arc<ArcSwapOption<Hot>>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.slots.read().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("TokenCache").field("entries", &entries).finish()
    }
}

impl TokenCache {
    /// An empty cache.
    pub(crate) fn new() -> Self {
        Self {
            slots: RwLock::new(HashMap::new()),
            hot: Arc::default(),
        }
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
        let key = LookupKey::new(scopes, options);
        if wants_claims(options) {
            let slot = self.slot(&key);
            slot.stamp_attempt(Instant::now());
            let token = fetch().await?;
            slot.store(&token, &self.hot);
            return Ok(token);
        }
        if let Some(token) = self.hot(&key) {
            return Ok(token);
        }

        let now = Instant::now();
        let slot = match self.lookup(&key, now) {
            Ok(token) => return Ok(token),
            Err(Some(slot)) => slot,
            Err(None) => self.slot(&key),
        };

        if let Some(token) = slot.unexpired(now) {
            if slot.begin_background_refresh(now) {
                let guard = RefreshingGuard(slot);
                let hot = self.hot.clone();
                tokio::spawn(async move {
                    let slot = &guard.0;
                    let _flight = slot.fetching.lock().await;
                    match fetch().await {
                        Ok(token) => slot.store(&token, &hot),
                        Err(error) => tracing::warn!(
                            %error,
                            "background token refresh failed; serving the cached token, next attempt in 30 s"
                        ),
                    }
                });
            }
            return Ok(token);
        }

        let _flight = slot.fetching.lock().await;
        let now = Instant::now();
        if let Some(token) = slot.unexpired(now) {
            return Ok(token);
        }
        slot.stamp_attempt(now);
        let token = fetch().await?;
        slot.store(&token, &self.hot);
        Ok(token)
    }

    /// The cached token for (`scopes`, tenant, CAE) when it is fresh (before its refresh time) and
    /// the request has no claims: the allocation-free fast path, for callers that must do work
    /// (allocate) before they can call [`get_token`](Self::get_token).
    pub(crate) fn fresh(
        &self,
        scopes: &[&str],
        options: Option<&TokenRequestOptions>,
    ) -> Option<AccessToken> {
        if wants_claims(options) {
            return None;
        }
        let key = LookupKey::new(scopes, options);
        self.hot(&key).or_else(|| self.lookup(&key, Instant::now()).ok())
    }

    /// The hot entry's token when it is `key`'s and still fresh.
    fn hot(&self, key: &LookupKey<'_>) -> Option<AccessToken> {
        let hot = self.hot.load();
        let hot = hot.as_ref()?;
        (key.equivalent(&hot.slot.key) && fast_clock::now() < hot.fresh_until).then(|| hot.token.clone())
    }

    /// The fresh token of `key`, else its slot if it has one.
    fn lookup(&self, key: &LookupKey<'_>, now: Instant) -> Result<AccessToken, Option<Arc<Slot>>> {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        let slot = slots.get(key).ok_or(None)?;
        let cached = slot.cached.read().unwrap_or_else(PoisonError::into_inner);
        match cached.as_ref().filter(|c| now < c.refresh_at) {
            Some(c) => Ok(c.token.clone()),
            None => Err(Some(slot.clone())),
        }
    }

    /// The slot of `key`, created if needed (a short write lock, never held across an await).
    fn slot(&self, key: &LookupKey<'_>) -> Arc<Slot> {
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get(key) {
            return slot.clone();
        }
        let owned = key.to_owned_key();
        let slot = Arc::new(Slot::new(owned.clone()));
        slots.insert(owned, slot.clone());
        slot
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

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

    /// The key and token of the hot entry, if any.
    fn hot_entry(cache: &TokenCache) -> Option<(Vec<String>, String)> {
        let hot = cache.hot.load();
        hot.as_ref().map(|h| {
            let scopes = h.slot.key.scopes.iter().map(|s| s.to_string()).collect();
            (scopes, h.token.token.secret().to_owned())
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_hot_entry_is_the_latest_fresh_store_and_never_a_stale_token() {
        let (cache, mut f) = (TokenCache::new(), Fetcher::new(3600));
        let other: &[&str] = &["https://storage.azure.com/.default"];
        get(&cache, &f).await.unwrap();
        assert_eq!(
            hot_entry(&cache),
            Some((vec![SCOPE[0].to_owned()], "token-1".to_owned()))
        );
        cache.get_token(other, None, f.fetch()).await.unwrap();
        assert_eq!(
            hot_entry(&cache),
            Some((vec![other[0].to_owned()], "token-2".to_owned()))
        );
        // The first key is still served (by the map), and does not take the hot entry back.
        assert_eq!(get(&cache, &f).await.unwrap(), "token-1");
        assert_eq!(hot_entry(&cache).unwrap().1, "token-2");
        // A token already inside its refresh window is never published, and clears its key's.
        f.lifetime = time::Duration::seconds(200);
        let claims = TokenRequestOptions {
            claims: Some("{}".into()),
            ..Default::default()
        };
        let t = cache.get_token(other, Some(&claims), f.fetch()).await.unwrap();
        assert_eq!(t.token.secret(), "token-3");
        assert_eq!(hot_entry(&cache), None);
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
    fn lookup_and_owned_keys_hash_alike() {
        use std::hash::BuildHasher;
        let state = hashbrown::DefaultHashBuilder::default();
        let lookup = LookupKey {
            scopes: &["x", "y"],
            tenant: Some("t"),
            cae: true,
        };
        let owned = lookup.to_owned_key();
        assert_eq!(state.hash_one(&lookup), state.hash_one(&owned));
        assert!(lookup.equivalent(&owned));
        let other = LookupKey {
            scopes: &["xy"],
            tenant: Some("t"),
            cae: true,
        };
        assert!(!other.equivalent(&owned));
    }
}
