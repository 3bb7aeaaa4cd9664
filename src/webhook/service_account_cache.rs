//! The ServiceAccount cache: a compact map fed by watch events, holding per ServiceAccount only its
//! name and its `azure.workload.identity/*` annotations.
//!
//! Layout: namespace -> name -> annotations, with the namespace stored once per namespace and each
//! annotation key stored once per cache (interned); an account without such annotations costs its
//! name and one map slot. A watch (re)start ([`Event::Init`]) fills a new map that replaces the
//! visible one at [`Event::InitDone`], so readers never see a half-listed cluster; from the first
//! `InitDone` on the cache is *synced*.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use kube::runtime::watcher::Event;

use azure_wi_core::ServiceAccount;

use super::service_account_meta::AccountMeta;

/// name -> annotations, for one namespace.
type Names = HashMap<Box<str>, Annotations>;
/// namespace -> name -> annotations.
type Accounts = HashMap<Box<str>, Names>;
/// (interned key, value) pairs; empty (no allocation) for most ServiceAccounts.
type Annotations = Box<[(Arc<str>, Box<str>)]>;

#[derive(Default)]
struct State {
    visible: Accounts,
    /// The map being filled by a (re)list, until its `InitDone`.
    listing: Option<Accounts>,
    /// Annotation keys, stored once.
    keys: HashSet<Arc<str>>,
}

/// The cache (see the module docs). Shared by the watch that feeds it and every lookup.
#[derive(Default)]
pub struct AccountCache {
    state: RwLock<State>,
    synced: AtomicBool,
}

impl std::fmt::Debug for AccountCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountCache")
            .field("len", &self.len())
            .field("synced", &self.is_synced())
            .finish()
    }
}

impl AccountCache {
    /// An empty cache, not synced.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a complete list has been received at least once.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Number of ServiceAccounts visible to lookups.
    pub fn len(&self) -> usize {
        self.read().visible.values().map(HashMap::len).sum()
    }

    /// Whether no ServiceAccount is visible.
    pub fn is_empty(&self) -> bool {
        self.read().visible.values().all(HashMap::is_empty)
    }

    /// Whether the cache holds a ServiceAccount in `namespace` (every namespace has its `default`
    /// one, so once synced this is whether the namespace exists).
    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.read().visible.contains_key(namespace)
    }

    /// The ServiceAccount, if the cache holds it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<ServiceAccount> {
        let state = self.read();
        let annotations = state.visible.get(namespace)?.get(name)?;
        Some(ServiceAccount {
            name: name.to_owned(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    /// Applies one watch event. Objects without a name or namespace are ignored.
    pub fn apply(&self, event: Event<AccountMeta>) {
        let mut state = self.write();
        match event {
            Event::Init => state.listing = Some(Accounts::new()),
            Event::InitApply(object) => {
                let state = &mut *state;
                let target = state.listing.get_or_insert_default();
                insert(target, &mut state.keys, object);
            }
            Event::InitDone => {
                let mut listed = state.listing.take().unwrap_or_default();
                listed.shrink_to_fit();
                state.visible = listed;
                // Keys no ServiceAccount uses any more went with the old map.
                state.keys.retain(|k| Arc::strong_count(k) > 1);
                drop(state);
                self.synced.store(true, Ordering::Release);
            }
            Event::Apply(object) => {
                let state = &mut *state;
                insert(&mut state.visible, &mut state.keys, object);
            }
            Event::Delete(object) => {
                let (Some(namespace), Some(name)) = (&object.metadata.namespace, &object.metadata.name)
                else {
                    return;
                };
                if let Some(names) = state.visible.get_mut(namespace.as_str()) {
                    names.remove(name.as_str());
                    if names.is_empty() {
                        state.visible.remove(namespace.as_str());
                    }
                }
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // Every write leaves the maps consistent before it can panic: recover a poisoned lock.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn insert(accounts: &mut Accounts, keys: &mut HashSet<Arc<str>>, object: AccountMeta) {
    let meta = object.metadata;
    let (Some(namespace), Some(name)) = (meta.namespace, meta.name) else {
        return;
    };
    let annotations: Annotations = meta
        .annotations
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (intern(keys, k), v.into_boxed_str()))
        .collect();
    let names = match accounts.get_mut(namespace.as_str()) {
        Some(names) => names,
        None => accounts.entry(namespace.into_boxed_str()).or_default(),
    };
    names.insert(name.into_boxed_str(), annotations);
}

fn intern(keys: &mut HashSet<Arc<str>>, key: String) -> Arc<str> {
    if let Some(existing) = keys.get(key.as_str()) {
        return existing.clone();
    }
    let key: Arc<str> = Arc::from(key);
    keys.insert(key.clone());
    key
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const CLIENT_ID: &str = "azure.workload.identity/client-id";

    fn sa(ns: &str, name: &str, id: &str) -> AccountMeta {
        AccountMeta::new(ns, name, &[(CLIENT_ID, id), ("other", "x")])
    }

    #[test]
    fn a_list_becomes_visible_at_init_done_and_marks_the_cache_synced() {
        let cache = AccountCache::new();
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(sa("a", "one", "1")));
        cache.apply(Event::InitApply(AccountMeta::new("b", "plain", &[])));
        assert!(!cache.is_synced());
        assert!(
            cache.get("a", "one").is_none(),
            "a half-listed cluster is visible"
        );
        cache.apply(Event::InitDone);
        assert!(cache.is_synced());
        assert_eq!(cache.len(), 2);
        let one = cache.get("a", "one").unwrap();
        assert_eq!(one.name, "one");
        assert_eq!(
            one.annotations,
            BTreeMap::from([(CLIENT_ID.to_owned(), "1".to_owned())])
        );
        assert!(cache.get("b", "plain").unwrap().annotations.is_empty());
        assert!(cache.get("a", "plain").is_none() && cache.get("c", "one").is_none());
    }

    #[test]
    fn watch_events_update_and_delete() {
        let cache = AccountCache::new();
        cache.apply(Event::Init);
        cache.apply(Event::InitDone);
        cache.apply(Event::Apply(sa("a", "one", "1")));
        cache.apply(Event::Apply(sa("a", "one", "2")));
        assert_eq!(cache.get("a", "one").unwrap().annotations[CLIENT_ID], "2");
        cache.apply(Event::Delete(sa("a", "one", "2")));
        assert!(cache.get("a", "one").is_none());
        assert!(cache.is_empty());
        // A delete of something never seen, or without a namespace, changes nothing.
        cache.apply(Event::Delete(sa("z", "none", "0")));
        cache.apply(Event::Apply(AccountMeta {
            metadata: kube::api::ObjectMeta {
                name: Some("no-namespace".into()),
                ..Default::default()
            },
        }));
        assert!(cache.is_empty());
    }

    #[test]
    fn a_relist_replaces_the_old_contents_at_once() {
        let cache = AccountCache::new();
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(sa("a", "gone", "1")));
        cache.apply(Event::InitApply(sa("a", "kept", "1")));
        cache.apply(Event::InitDone);
        // The watch restarts (e.g. after 410 Gone): the old contents stay visible until the new
        // list is complete, then accounts deleted in between are gone.
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(sa("a", "kept", "2")));
        assert_eq!(cache.get("a", "gone").unwrap().annotations[CLIENT_ID], "1");
        cache.apply(Event::InitDone);
        assert!(cache.get("a", "gone").is_none());
        assert_eq!(cache.get("a", "kept").unwrap().annotations[CLIENT_ID], "2");
        assert!(cache.is_synced());
    }

    #[test]
    fn annotation_keys_are_stored_once() {
        let cache = AccountCache::new();
        cache.apply(Event::Init);
        for i in 0..100 {
            cache.apply(Event::InitApply(sa("a", &format!("sa-{i}"), "1")));
        }
        cache.apply(Event::InitDone);
        let state = cache.read();
        assert_eq!(state.keys.len(), 1);
        let key = state.keys.iter().next().unwrap();
        // 100 accounts + the interning set share one allocation.
        assert_eq!(Arc::strong_count(key), 101);
    }
}
