//! GCRA (generic cell rate algorithm): one number per key, the theoretical
//! arrival time (TAT). The same step runs in memory here and as a Lua script
//! in Redis (see `shared.rs`), so both report alike.

use super::settings::Policy;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::Instant;

const MICROS: u64 = 1_000_000;

/// A policy in microseconds: one request is "paid back" every `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub interval: u64,
    pub window: u64,
    pub policy: Policy,
}

impl From<Policy> for Rate {
    fn from(policy: Policy) -> Rate {
        let window = u64::from(policy.window_secs) * MICROS;
        Rate { interval: (window / u64::from(policy.limit.max(1))).max(1), window, policy }
    }
}

/// What one check found. `tat_ahead`: the key's TAT after the check, relative to now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    pub tat_ahead: u64,
}

/// One GCRA step. `cost` 0 only looks (would one more request pass?).
/// Returns the outcome and the TAT to store, when it changes.
pub fn step(rate: Rate, now: u64, stored: Option<u64>, cost: u32) -> (Outcome, Option<u64>) {
    let tat = stored.unwrap_or(now).max(now);
    let next = tat + rate.interval * u64::from(cost.max(1));
    let allowed = next - now <= rate.window;
    if allowed && cost > 0 {
        (Outcome { allowed, tat_ahead: next - now }, Some(next))
    } else {
        (Outcome { allowed, tat_ahead: tat - now }, None)
    }
}

fn ceil_secs(micros: u64) -> u64 {
    micros.div_ceil(MICROS)
}

/// The numbers an answer's rate-limit headers carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    pub policy_name: &'static str,
    pub limit: u32,
    pub window_secs: u32,
    pub remaining: u64,
    /// Seconds until the quota is whole again, or — when nothing remains —
    /// until the next request passes (so `Retry-After` is never earlier).
    pub reset_secs: u64,
    /// Set when this check refused the request.
    pub retry_after: Option<u64>,
}

impl Outcome {
    pub fn report(self, rate: Rate, policy_name: &'static str) -> Report {
        let until_next = || ceil_secs((self.tat_ahead + rate.interval).saturating_sub(rate.window)).max(1);
        let (remaining, reset_secs, retry_after) = if self.allowed {
            let remaining = rate.window.saturating_sub(self.tat_ahead) / rate.interval;
            let reset = if remaining > 0 { ceil_secs(self.tat_ahead) } else { until_next() };
            (remaining, reset, None)
        } else {
            let wait = until_next();
            (0, wait, Some(wait))
        };
        Report {
            policy_name,
            limit: rate.policy.limit,
            window_secs: rate.policy.window_secs,
            remaining,
            reset_secs,
            retry_after,
        }
    }
}

const SHARDS: usize = 64;
/// Keys kept per shard; 64 × 8192 keys of 16 bytes stay well under 20 MB.
const SHARD_CAPACITY: usize = 8192;

/// In-memory GCRA state: hashed keys in sharded maps, bounded in size.
/// A key whose TAT has passed is a full bucket, the same as no key, so
/// eviction of such keys changes nothing.
pub struct LocalBuckets {
    shards: Box<[Mutex<HashMap<u64, u64>>]>,
    hasher: RandomState,
    epoch: Instant,
}

impl Default for LocalBuckets {
    fn default() -> Self {
        LocalBuckets {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }
}

impl LocalBuckets {
    /// Microseconds on a monotonic clock.
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64 + 1
    }

    /// A keyed hash: attackers cannot pick keys that collide.
    pub fn key(&self, parts: impl Hash) -> u64 {
        self.hasher.hash_one(parts)
    }

    pub fn check(&self, key: u64, rate: Rate, cost: u32) -> Outcome {
        let now = self.now();
        let mut shard = self.shards[(key as usize) % SHARDS].lock().unwrap_or_else(|e| e.into_inner());
        let (outcome, store) = step(rate, now, shard.get(&key).copied(), cost);
        if let Some(tat) = store {
            if shard.len() >= SHARD_CAPACITY && !shard.contains_key(&key) {
                shard.retain(|_, tat| *tat > now);
                if shard.len() >= SHARD_CAPACITY {
                    // Still full of live keys: forget one rather than grow.
                    if let Some(victim) = shard.keys().next().copied() {
                        shard.remove(&victim);
                    }
                }
            }
            shard.insert(key, tat);
        }
        outcome
    }

    /// Drops keys whose bucket is whole again.
    pub fn purge(&self) {
        let now = self.now();
        for shard in self.shards.iter() {
            shard.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, tat| *tat > now);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(limit: u32, window_secs: u32) -> Rate {
        Policy { limit, window_secs }.into()
    }

    #[test]
    fn a_burst_of_the_limit_passes_then_one_waits_an_interval() {
        let r = rate(3, 2);
        let mut tat = None;
        let mut remaining = vec![];
        for _ in 0..3 {
            let (o, s) = step(r, 1_000, tat, 1);
            assert!(o.allowed);
            remaining.push(o.report(r, "reads").remaining);
            tat = s;
        }
        assert_eq!(remaining, vec![2, 1, 0]);
        let (o, s) = step(r, 1_000, tat, 1);
        assert!(!o.allowed && s.is_none());
        let report = o.report(r, "reads");
        assert_eq!(report.retry_after, Some(1));
        assert_eq!(report.reset_secs, 1);
        // One interval later exactly one more passes.
        let later = 1_000 + r.interval;
        assert!(step(r, later, tat, 1).0.allowed);
    }

    #[test]
    fn looking_does_not_spend() {
        let r = rate(2, 60);
        let (o, s) = step(r, 5, None, 0);
        assert!(o.allowed && s.is_none());
        assert_eq!(o.report(r, "x").remaining, 2);
        let (_, tat) = step(r, 5, None, 1);
        let (_, tat) = step(r, 5, tat, 1);
        let (o, _) = step(r, 5, tat, 0);
        assert!(!o.allowed);
        assert_eq!(o.report(r, "x").retry_after, Some(30));
    }

    #[test]
    fn retry_after_is_never_earlier_than_reset_when_exhausted() {
        let r = rate(1200, 60);
        let mut tat = None;
        let mut last = None;
        for _ in 0..1201 {
            let (o, s) = step(r, 0, tat, 1);
            tat = s.or(tat);
            last = Some(o);
        }
        let rep = last.unwrap().report(r, "redemption");
        assert_eq!(rep.remaining, 0);
        assert!(rep.retry_after.unwrap() >= rep.reset_secs && rep.retry_after.unwrap() >= 1);
    }

    #[test]
    fn local_buckets_stay_bounded() {
        let buckets = LocalBuckets::default();
        let r = rate(1, 3600);
        for i in 0..(SHARDS * SHARD_CAPACITY + 5000) as u64 {
            buckets.check(buckets.key(i), r, 1);
        }
        assert!(buckets.len() <= SHARDS * SHARD_CAPACITY);
    }
}
