//! Replay protection for signed requests (DESIGN §2). A request with
//! `X-Nonce` is refused when that key already sent that nonce within the
//! timestamp window; without a nonce, a mutating request (POST, PUT, PATCH,
//! DELETE) is refused when its exact signature was already seen. Reads
//! without a nonce stay repeatable.
//!
//! Seen values are kept until their request's timestamp leaves the window
//! (after that the timestamp check refuses them anyway): in Redis when it is
//! configured (`SET NX EX`, shared by replicas), else in bounded memory.

use crate::error::ApiError;
use crate::limits::RedisLink;
use axum::http::Method;
use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

pub struct ReplayGuard {
    redis: Option<Arc<RedisLink>>,
    local: SeenSet,
    window: i64,
}

/// A signed request's facts that replay protection needs.
pub struct SignedFacts<'a> {
    pub api_key: &'a str,
    pub method: &'a Method,
    pub nonce: Option<&'a str>,
    pub signature: &'a str,
    pub timestamp: i64,
}

fn replayed(detail: &str) -> ApiError {
    ApiError::unauthorized("REPLAYED_REQUEST", detail)
}

impl ReplayGuard {
    pub fn new(redis: Option<Arc<RedisLink>>, window_secs: i64) -> ReplayGuard {
        ReplayGuard { redis, local: SeenSet::default(), window: window_secs.max(1) }
    }

    /// Refuses a request that was already seen. Call after the signature matched.
    pub async fn check(&self, r: SignedFacts<'_>, now: i64) -> Result<(), ApiError> {
        let id = match r.nonce {
            Some(nonce) => format!("n:{}:{nonce}", r.api_key),
            None if is_mutating(r.method) => {
                // The signature in lower case: hex in either case is the same request.
                let mut id = String::with_capacity(3 + r.api_key.len() + r.signature.len());
                id.push_str("s:");
                id.push_str(r.api_key);
                id.push(':');
                let at = id.len();
                id.push_str(r.signature);
                id[at..].make_ascii_lowercase();
                id
            }
            None => return Ok(()),
        };
        let keep_secs = (r.timestamp + self.window - now).max(0) as u64 + 1;
        if let Some(link) = &self.redis {
            if let Some(fresh) = link.set_new(&link.key("seen", &id), "1", keep_secs).await {
                return if fresh { Ok(()) } else { Err(self.refusal(r.nonce.is_some())) };
            }
        }
        match self.local.insert(&id, r.timestamp, now, self.window) {
            Seen::Fresh => Ok(()),
            Seen::Again => Err(self.refusal(r.nonce.is_some())),
            Seen::TooOld => Err(replayed(
                "this server is too busy to vouch for a request this old; sign it again with the current time",
            )),
        }
    }

    fn refusal(&self, with_nonce: bool) -> ApiError {
        replayed(if with_nonce {
            "this X-Nonce was already used; send a fresh nonce with every request"
        } else {
            "this signed request was already received; sign every request anew (or send X-Nonce)"
        })
    }

    pub fn purge(&self) {
        self.local.purge(crate::state::now(), self.window);
    }
}

fn is_mutating(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

enum Seen {
    Fresh,
    Again,
    /// Older than anything memory still vouches for (see [`SeenSet`]).
    TooOld,
}

const SHARDS: usize = 32;
/// 32 × 16384 hashes of 16 bytes: under 20 MB, about 20 s of a 25,000 req/s load.
const SHARD_CAPACITY: usize = 16_384;

/// Hashes of seen requests with their timestamps, bounded. When a shard is
/// full of live entries its older half is dropped and its `floor` raised:
/// requests older than the floor can no longer be vouched for and are
/// refused, so a full memory never lets a replay through.
struct SeenSet {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

#[derive(Default)]
struct Shard {
    seen: HashMap<u64, i64>,
    floor: i64,
}

impl Default for SeenSet {
    fn default() -> Self {
        SeenSet { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), hasher: RandomState::new() }
    }
}

impl SeenSet {
    fn insert(&self, id: &str, ts: i64, now: i64, window: i64) -> Seen {
        let key = self.hasher.hash_one(id);
        let mut shard = self.shards[(key as usize) % SHARDS].lock().unwrap_or_else(|e| e.into_inner());
        if ts < shard.floor {
            return Seen::TooOld;
        }
        let live = |t: i64| t + window >= now;
        if let Some(&seen) = shard.seen.get(&key) {
            if live(seen) {
                return Seen::Again;
            }
        }
        if shard.seen.len() >= SHARD_CAPACITY {
            shard.seen.retain(|_, t| live(*t));
            if shard.seen.len() >= SHARD_CAPACITY * 3 / 4 {
                let mut times: Vec<i64> = shard.seen.values().copied().collect();
                let middle = times.len() / 2;
                let median = *times.select_nth_unstable(middle).1;
                shard.floor = shard.floor.max(median);
                let floor = shard.floor;
                shard.seen.retain(|_, t| *t >= floor);
                if shard.seen.len() >= SHARD_CAPACITY * 3 / 4 {
                    // The newer half shares the median's second (a client may send one
                    // timestamp with every request): that second goes too, or the shard
                    // would grow past its bound and redo this walk on every insert.
                    shard.floor = median + 1;
                    shard.seen.retain(|_, t| *t > median);
                }
                let floor = shard.floor;
                if ts < floor {
                    return Seen::TooOld;
                }
            }
        }
        match shard.seen.entry(key) {
            Entry::Occupied(mut e) => {
                e.insert(ts);
            }
            Entry::Vacant(e) => {
                e.insert(ts);
            }
        }
        Seen::Fresh
    }

    fn purge(&self, now: i64, window: i64) {
        for shard in self.shards.iter() {
            shard.lock().unwrap_or_else(|e| e.into_inner()).seen.retain(|_, t| *t + window >= now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_fresh_once_within_the_window() {
        let set = SeenSet::default();
        assert!(matches!(set.insert("a", 100, 100, 300), Seen::Fresh));
        assert!(matches!(set.insert("a", 100, 150, 300), Seen::Again));
        assert!(matches!(set.insert("b", 100, 150, 300), Seen::Fresh));
        // Past the window the timestamp check refuses it; memory may forget it.
        assert!(matches!(set.insert("a", 100, 401, 300), Seen::Fresh));
    }

    #[tokio::test]
    async fn a_signature_replayed_in_capitals_is_still_a_replay() {
        let guard = ReplayGuard::new(None, 300);
        let facts = |signature| SignedFacts {
            api_key: "k",
            method: &axum::http::Method::POST,
            nonce: None,
            signature,
            timestamp: 1_000,
        };
        assert!(guard.check(facts("abcdef12"), 1_000).await.is_ok());
        assert!(guard.check(facts("ABCDEF12"), 1_001).await.is_err());
        assert!(guard.check(facts("abcdef13"), 1_001).await.is_ok(), "another signature is another request");
    }

    #[test]
    fn a_full_memory_refuses_old_requests_instead_of_forgetting_them() {
        let set = SeenSet::default();
        let total = SHARDS * SHARD_CAPACITY * 2;
        let mut too_old = 0;
        for i in 0..total {
            // Timestamps rise through the run, all within the window.
            let ts = 1_000 + (i / 10_000) as i64;
            if matches!(set.insert(&format!("n{i}"), ts, 1_100, 300), Seen::TooOld) {
                too_old += 1;
            }
        }
        let held: usize = set.shards.iter().map(|s| s.lock().unwrap().seen.len()).sum();
        assert!(held <= SHARDS * SHARD_CAPACITY);
        assert_eq!(too_old, 0, "rising timestamps stay above the floor");
        // The very first request cannot be replayed now: it is below the floor.
        assert!(!matches!(set.insert("n0", 1_000, 1_100, 300), Seen::Fresh));
    }

    #[test]
    fn one_timestamp_on_every_request_cannot_outgrow_the_memory() {
        let set = SeenSet::default();
        let total = SHARDS * SHARD_CAPACITY * 2;
        let mut fresh = 0;
        for i in 0..total {
            if matches!(set.insert(&format!("s{i}"), 1_000, 1_000, 300), Seen::Fresh) {
                fresh += 1;
            }
        }
        let largest = set.shards.iter().map(|s| s.lock().unwrap().seen.len()).max().unwrap();
        assert!(largest <= SHARD_CAPACITY, "a shard held {largest} entries");
        assert!(fresh >= SHARDS * SHARD_CAPACITY / 2, "requests were taken until memory was full ({fresh})");
        // Whatever memory had to let go of is refused, never taken a second time.
        for i in (0..total).step_by(97) {
            assert!(!matches!(set.insert(&format!("s{i}"), 1_000, 1_000, 300), Seen::Fresh), "s{i} replayed");
        }
        // A request signed a second later is taken again.
        assert!(matches!(set.insert("later", 1_001, 1_001, 300), Seen::Fresh));
    }
}
