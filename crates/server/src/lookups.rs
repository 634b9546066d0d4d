//! Short-lived in-memory copies of API keys and projects, so that a signed
//! request (every verify) reads nothing from the database before its write.
//!
//! An entry lives [`TTL`]: another replica's change (a revoked key, a disabled
//! project) is seen here within that time, well inside DESIGN's 5 seconds. A
//! change made through this replica forgets the entry at once. Only hits are
//! kept: an unknown key or project is asked of the database every time, so a
//! key created elsewhere works at once and junk keys cannot fill the memory.

use crate::secrets::MasterKey;
use codegate_domain::model::{ApiKey, Project};
use codegate_storage::{Store, StoreResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a copy is trusted.
pub const TTL: Duration = Duration::from_secs(2);
/// Entries per map; a full map is emptied rather than grown.
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct Lookups {
    keys: TtlMap<Arc<ApiKey>>,
    projects: TtlMap<Arc<Project>>,
    opened: Mutex<HashMap<Vec<u8>, Arc<str>>>,
}

impl Lookups {
    /// The API key with this public id, from memory when fresh.
    pub async fn api_key(&self, store: &dyn Store, api_key: &str) -> StoreResult<Option<Arc<ApiKey>>> {
        if let Some(key) = self.keys.get(api_key) {
            return Ok(Some(key));
        }
        let key = store.find_api_key(api_key).await?.map(Arc::new);
        if let Some(k) = &key {
            self.keys.put(api_key, k.clone());
        }
        Ok(key)
    }

    /// The project with this id, from memory when fresh.
    pub async fn project(&self, store: &dyn Store, id: &str) -> StoreResult<Option<Project>> {
        Ok(self.shared_project(store, id).await?.map(|p| Project::clone(&p)))
    }

    /// Like [`Lookups::project`], without copying it (for a glance at one field).
    pub async fn shared_project(&self, store: &dyn Store, id: &str) -> StoreResult<Option<Arc<Project>>> {
        if let Some(project) = self.projects.get(id) {
            return Ok(Some(project));
        }
        let project = store.get_project(id).await?.map(Arc::new);
        if let Some(p) = &project {
            self.projects.put(id, p.clone());
        }
        Ok(project)
    }

    /// Keeps the copy's `last_used_at` in step with the one just written, so
    /// the once-a-minute refresh is not repeated for every cached request.
    pub fn note_key_used(&self, api_key: &str, at: i64) {
        self.keys.update(api_key, |k| Arc::make_mut(k).last_used_at = Some(at));
    }

    /// The plain secret sealed in `sealed` for the API key `context`.
    pub fn opened_secret(&self, master_key: &MasterKey, sealed: &[u8], context: &str) -> Option<Arc<str>> {
        if let Some(secret) = self.opened_secrets().get(sealed) {
            return Some(secret.clone());
        }
        let secret: Arc<str> = master_key.open(sealed, context)?.into();
        let mut opened = self.opened_secrets();
        if opened.len() >= CAPACITY {
            opened.clear();
        }
        opened.insert(sealed.to_vec(), secret.clone());
        Some(secret)
    }

    /// After any change to API keys (created, disabled, rotated, deleted).
    pub fn forget_keys(&self) {
        self.keys.clear();
        // A deleted or rotated key's secret does not stay in memory.
        self.opened_secrets().clear();
    }

    fn opened_secrets(&self) -> MutexGuard<'_, HashMap<Vec<u8>, Arc<str>>> {
        self.opened.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After a change to the project (its keys go with a deleted project).
    pub fn forget_project(&self, id: &str) {
        self.projects.remove(id);
        self.forget_keys();
    }
}

struct TtlMap<V> {
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V> Default for TtlMap<V> {
    fn default() -> Self {
        TtlMap { entries: Mutex::new(HashMap::new()) }
    }
}

impl<V: Clone> TtlMap<V> {
    fn get(&self, key: &str) -> Option<V> {
        self.lock().get(key).filter(|(at, _)| at.elapsed() < TTL).map(|(_, v)| v.clone())
    }

    fn put(&self, key: &str, value: V) {
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key.to_owned(), (Instant::now(), value));
    }

    fn update(&self, key: &str, f: impl FnOnce(&mut V)) {
        if let Some((_, v)) = self.lock().get_mut(key) {
            f(v);
        }
    }

    fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Instant, V)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
