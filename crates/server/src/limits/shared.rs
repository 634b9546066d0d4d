//! The Redis that replicas share (`CODEGATE_REDIS_URL`): rate-limit buckets,
//! seen nonces and idempotency records. Every call answers `None` when Redis
//! cannot be used right now; callers then fall back to their in-memory state,
//! so a Redis outage degrades sharing, never service.

use super::gcra::{Outcome, Rate};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The GCRA step of `gcra.rs`, atomically, on Redis' clock (so replicas agree).
/// KEYS[1] bucket; ARGV interval µs, window µs, cost. Returns {allowed, tat_ahead µs}.
const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local n = cost
if n < 1 then n = 1 end
local nxt = tat + interval * n
if nxt - now <= window then
  if cost > 0 then
    redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1)
    return {1, string.format('%d', nxt - now)}
  end
  return {1, string.format('%d', tat - now)}
end
return {0, string.format('%d', tat - now)}
"#;

const DELETE_IF_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

pub struct RedisLink {
    client: redis::Client,
    conn: RwLock<Option<ConnectionManager>>,
    healthy: AtomicBool,
    /// An outage is logged once, and so is the recovery.
    down_reported: AtomicBool,
    ever_up: AtomicBool,
    prefix: String,
    /// Where Redis is, for logs: host and port only, never a password.
    addr: String,
    gcra: Script,
    delete_if: Script,
}

impl RedisLink {
    pub fn new(url: &str, prefix: &str) -> anyhow::Result<Arc<RedisLink>> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("CODEGATE_REDIS_URL is not usable: {e}"))?;
        let addr = client.get_connection_info().addr.to_string();
        Ok(Arc::new(RedisLink {
            client,
            conn: RwLock::new(None),
            healthy: AtomicBool::new(false),
            down_reported: AtomicBool::new(false),
            ever_up: AtomicBool::new(false),
            prefix: prefix.to_owned(),
            addr,
            gcra: Script::new(GCRA_LUA),
            delete_if: Script::new(DELETE_IF_LUA),
        }))
    }

    /// A key under this installation's prefix.
    pub fn key(&self, kind: &str, id: &str) -> String {
        format!("{}:{kind}:{id}", self.prefix)
    }

    /// Tries to connect (once); logs the result.
    pub async fn connect(&self) -> bool {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(1))
            .set_response_timeout(Duration::from_millis(500))
            .set_number_of_retries(1);
        match ConnectionManager::new_with_config(self.client.clone(), config).await {
            Ok(conn) => {
                *self.conn.write().unwrap_or_else(|e| e.into_inner()) = Some(conn);
                self.mark_healthy();
                true
            }
            Err(e) => {
                self.mark_failed(&e);
                false
            }
        }
    }

    /// Reconnects and re-checks in the background while Redis is away.
    pub fn keep_alive(self: &Arc<Self>) {
        let link = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                let Some(link) = link.upgrade() else { return };
                if link.healthy.load(Ordering::Relaxed) {
                    continue;
                }
                let current = link.conn.read().unwrap_or_else(|e| e.into_inner()).clone();
                match current {
                    None => {
                        link.connect().await;
                    }
                    Some(mut conn) => match redis::cmd("PING").query_async::<String>(&mut conn).await {
                        Ok(_) => link.mark_healthy(),
                        Err(e) => link.mark_failed(&e),
                    },
                }
            }
        });
    }

    fn mark_healthy(&self) {
        self.healthy.store(true, Ordering::Relaxed);
        let was_down = self.down_reported.swap(false, Ordering::Relaxed);
        if was_down || !self.ever_up.swap(true, Ordering::Relaxed) {
            tracing::info!(redis = %self.addr, "Redis is reachable: rate limits, nonces and idempotency keys are shared");
        }
    }

    fn mark_failed(&self, e: &redis::RedisError) {
        self.healthy.store(false, Ordering::Relaxed);
        if !self.down_reported.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                redis = %self.addr,
                error = %e,
                "Redis is unreachable: serving with this replica's local limits until it is back"
            );
        }
    }

    /// A connection, when Redis is believed reachable.
    fn usable(&self) -> Option<ConnectionManager> {
        if !self.healthy.load(Ordering::Relaxed) {
            return None;
        }
        self.conn.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn settle<T>(&self, result: redis::RedisResult<T>) -> Option<T> {
        result.map_err(|e| self.mark_failed(&e)).ok()
    }

    pub async fn gcra(&self, key: &str, rate: Rate, cost: u32) -> Option<Outcome> {
        let mut conn = self.usable()?;
        let result: redis::RedisResult<(i64, String)> =
            self.gcra.key(key).arg(rate.interval).arg(rate.window).arg(cost).invoke_async(&mut conn).await;
        let (allowed, ahead) = self.settle(result)?;
        Some(Outcome { allowed: allowed == 1, tat_ahead: ahead.parse::<f64>().map(|f| f.max(0.0) as u64).ok()? })
    }

    /// `SET key value NX EX secs`: `Some(true)` when this call stored it.
    pub async fn set_new(&self, key: &str, value: &str, secs: u64) -> Option<bool> {
        let mut conn = self.usable()?;
        let result: redis::RedisResult<Option<String>> =
            redis::cmd("SET").arg(key).arg(value).arg("NX").arg("EX").arg(secs.max(1)).query_async(&mut conn).await;
        self.settle(result).map(|r| r.is_some())
    }

    pub async fn set(&self, key: &str, value: &str, secs: u64) -> Option<()> {
        let mut conn = self.usable()?;
        let result: redis::RedisResult<()> = conn.set_ex(key, value, secs.max(1)).await;
        self.settle(result)
    }

    /// Deletes `key` only while it still holds `value` (compare-and-delete).
    pub async fn delete_if(&self, key: &str, value: &str) -> Option<()> {
        let mut conn = self.usable()?;
        let result: redis::RedisResult<i64> = self.delete_if.key(key).arg(value).invoke_async(&mut conn).await;
        self.settle(result).map(|_| ())
    }

    pub async fn get(&self, key: &str) -> Option<Option<String>> {
        let mut conn = self.usable()?;
        let result: redis::RedisResult<Option<String>> = conn.get(key).await;
        self.settle(result)
    }

    /// For `/readyz`: asks Redis now.
    pub async fn status(&self) -> &'static str {
        let current = self.conn.read().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(mut conn) = current else { return "unreachable" };
        match tokio::time::timeout(Duration::from_secs(1), redis::cmd("PING").query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) => {
                self.mark_healthy();
                "ok"
            }
            Ok(Err(e)) => {
                self.mark_failed(&e);
                "unreachable"
            }
            Err(_) => "unreachable",
        }
    }
}
