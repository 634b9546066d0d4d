//! What every handler shares.

use crate::config::ServerConfig;
use crate::secrets::MasterKey;
use codegate_storage::Store;
use std::ops::Deref;
use std::sync::Arc;

/// Handed to every handler and middleware: cloned several times per request,
/// so a clone is one reference count (the master key is not copied, nor
/// wiped again on every drop).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub master_key: MasterKey,
    pub config: Arc<ServerConfig>,
    /// Rate limits, replay protection, idempotency (DESIGN §5).
    pub defences: Arc<crate::limits::Defences>,
    /// Cached API keys and projects for the signed hot path.
    pub lookups: Arc<crate::lookups::Lookups>,
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Unix seconds, UTC.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `last_used_at` is informational: refresh it at most once a minute per
/// credential so that it never costs a write on the hot path.
const LAST_USED_RESOLUTION_SECS: i64 = 60;

fn stale(last_used_at: Option<i64>, now: i64) -> bool {
    last_used_at.is_none_or(|t| now - t >= LAST_USED_RESOLUTION_SECS)
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        master_key: MasterKey,
        config: Arc<ServerConfig>,
        defences: Arc<crate::limits::Defences>,
    ) -> AppState {
        AppState(Arc::new(Shared { store, master_key, config, defences, lookups: Arc::default() }))
    }

    pub fn touch_api_key(&self, api_key: &str, id: &str, last_used_at: Option<i64>, now: i64) {
        if stale(last_used_at, now) {
            self.lookups.note_key_used(api_key, now);
            let (store, id) = (self.store.clone(), id.to_owned());
            tokio::spawn(async move {
                if let Err(e) = store.touch_api_key(&id, now).await {
                    tracing::warn!(error = %e, "could not record API key use");
                }
            });
        }
    }

    pub fn touch_token(&self, id: &str, last_used_at: Option<i64>, now: i64) {
        if stale(last_used_at, now) {
            let (store, id) = (self.store.clone(), id.to_owned());
            tokio::spawn(async move {
                if let Err(e) = store.touch_token(&id, now).await {
                    tracing::warn!(error = %e, "could not record token use");
                }
            });
        }
    }
}
