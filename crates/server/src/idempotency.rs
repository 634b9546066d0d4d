//! `Idempotency-Key` on verify and reactivate (DESIGN §2): a retry with the
//! same key and credential within 24 h gets the first answer again; the same
//! key with another request is a 422 `IDEMPOTENCY_KEY_REUSED`; a retry while
//! the first request still runs is a 409 `IDEMPOTENCY_IN_PROGRESS`.
//!
//! Records live in Redis when it is configured (shared by replicas), else in
//! bounded memory. Only successful (2xx) answers are kept: after an error
//! the key is released, so a retry runs again.

use crate::auth::Caller;
use crate::error::{problem, ApiError};
use crate::limits::RedisLink;
use axum::body::Body;
use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const MAX_KEY_CHARS: usize = 255;
/// How long a first answer is kept for retries.
const KEEP: Duration = Duration::from_secs(24 * 3600);
/// How long a running request holds its key (should it never finish).
const PENDING: Duration = Duration::from_secs(60);
/// Records kept in memory (answers are a few hundred bytes).
const LOCAL_CAPACITY: usize = 50_000;
/// Answers larger than this are not kept.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The `Idempotency-Key` header and what the request is, for the fingerprint.
pub struct IdempotencyKey {
    /// `Some(Err)` when the header is malformed (refused after authentication).
    key: Option<Result<String, &'static str>>,
    method: String,
    path: String,
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let key = parts.headers.get("idempotency-key").map(|v| {
            let v = v.to_str().map_err(|_| "Idempotency-Key must be printable ASCII")?.trim();
            if v.is_empty() || v.chars().count() > MAX_KEY_CHARS {
                return Err("Idempotency-Key must be 1 to 255 characters");
            }
            Ok(v.to_owned())
        });
        // What the fingerprint covers; only kept when there is a key to fingerprint.
        let (method, path) = match key {
            Some(_) => (
                parts.method.to_string(),
                parts.extensions.get::<OriginalUri>().map_or(parts.uri.path(), |o| o.0.path()).to_owned(),
            ),
            None => (String::new(), String::new()),
        };
        Ok(IdempotencyKey { key, method, path })
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Record {
    /// SHA-256 of method, path and body, hex.
    fingerprint: String,
    /// `None` while the first request runs.
    answer: Option<Answer>,
    /// Who holds a pending record, so only they release it.
    owner: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: String,
}

struct LocalRecord {
    record: Record,
    expires: Instant,
}

pub struct IdempotencyCache {
    redis: Option<Arc<RedisLink>>,
    local: Mutex<HashMap<String, LocalRecord>>,
}

/// Holds a key while its request runs; releases it if dropped unfinished.
pub struct Claim {
    cache: Arc<IdempotencyCache>,
    scope: String,
    record: Record,
    /// Where the pending record went: Redis or memory.
    shared: bool,
    done: bool,
}

impl IdempotencyKey {
    /// Takes the key for this request: `Ok(None)` without a key, `Ok(Some)`
    /// when this request is the first, else the answer to send instead.
    pub async fn claim(self, state: &crate::state::AppState, caller: &Caller) -> Result<Option<Claim>, Response> {
        let Some(key) = self.key else { return Ok(None) };
        let key = key.map_err(|detail| ApiError::validation(detail).into_response())?;
        let scope = hex::encode(Sha256::digest(format!("{}\n{key}", crate::limits::identity(&caller.principal))));
        let mut fp = Sha256::new();
        fp.update(self.method.as_bytes());
        fp.update(b"\n");
        fp.update(self.path.as_bytes());
        fp.update(b"\n");
        fp.update(&caller.body);
        let record = Record {
            fingerprint: hex::encode(fp.finalize()),
            answer: None,
            owner: Alphanumeric.sample_string(&mut rand::rng(), 24),
        };
        state.defences.idempotency.clone().claim(scope, record).await
    }
}

impl IdempotencyCache {
    pub fn new(redis: Option<Arc<RedisLink>>) -> IdempotencyCache {
        IdempotencyCache { redis, local: Mutex::new(HashMap::new()) }
    }

    async fn claim(self: Arc<Self>, scope: String, record: Record) -> Result<Option<Claim>, Response> {
        let json = serde_json::to_string(&record).expect("record serialises");
        if let Some(link) = &self.redis {
            let key = link.key("idem", &scope);
            // Twice: the record may expire between SET NX and GET.
            for _ in 0..2 {
                match link.set_new(&key, &json, PENDING.as_secs()).await {
                    Some(true) => return Ok(Some(self.held(scope, record, true))),
                    Some(false) => match link.get(&key).await {
                        Some(Some(found)) => match serde_json::from_str::<Record>(&found) {
                            Ok(found) => return Err(verdict(&found, &record)),
                            Err(_) => return Err(ApiError::internal("unreadable idempotency record").into_response()),
                        },
                        Some(None) => continue,
                        None => break,
                    },
                    None => break,
                }
            }
        }
        let mut local = self.lock();
        let now = Instant::now();
        if let Some(found) = local.get(&scope).filter(|r| r.expires > now) {
            return Err(verdict(&found.record, &record));
        }
        if local.len() >= LOCAL_CAPACITY {
            evict(&mut local, now);
        }
        local.insert(scope.clone(), LocalRecord { record: record.clone(), expires: now + PENDING });
        drop(local);
        Ok(Some(self.held(scope, record, false)))
    }

    fn held(self: Arc<Self>, scope: String, record: Record, shared: bool) -> Claim {
        Claim { cache: self, scope, record, shared, done: false }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LocalRecord>> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn purge(&self) {
        let now = Instant::now();
        self.lock().retain(|_, r| r.expires > now);
    }
}

/// Makes room: expired records first, then the older half.
fn evict(local: &mut HashMap<String, LocalRecord>, now: Instant) {
    local.retain(|_, r| r.expires > now);
    if local.len() >= LOCAL_CAPACITY {
        let mut expiries: Vec<Instant> = local.values().map(|r| r.expires).collect();
        let middle = expiries.len() / 2;
        let cut = *expiries.select_nth_unstable(middle).1;
        local.retain(|_, r| r.expires > cut);
    }
}

/// The answer to a request whose key is already taken.
fn verdict(found: &Record, mine: &Record) -> Response {
    if found.fingerprint != mine.fingerprint {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key was already used with a different request",
            None,
        );
    }
    match &found.answer {
        None => problem(
            StatusCode::CONFLICT,
            "IDEMPOTENCY_IN_PROGRESS",
            "a request with this Idempotency-Key is still being processed; retry shortly",
            None,
        ),
        Some(answer) => {
            let mut response =
                (StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK), answer.body.clone()).into_response();
            if let Some(ct) = answer.content_type.as_deref().and_then(|c| HeaderValue::from_str(c).ok()) {
                response.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
    }
}

impl Claim {
    /// Keeps a successful answer for retries (and returns it); after any
    /// other answer the key is released.
    pub async fn finish(mut self, response: Response) -> Response {
        self.done = true;
        if !response.status().is_success() {
            self.release().await;
            return response;
        }
        let (parts, body) = response.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_ANSWER_BYTES).await {
            Ok(b) => b,
            Err(e) => {
                self.release().await;
                return ApiError::internal(format!("reading an answer to keep: {e}")).into_response();
            }
        };
        match std::str::from_utf8(&bytes) {
            Ok(text) => {
                let content_type =
                    parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
                self.record.answer =
                    Some(Answer { status: parts.status.as_u16(), content_type, body: text.to_owned() });
                self.store().await;
            }
            Err(_) => self.release().await,
        }
        Response::from_parts(parts, Body::from(bytes))
    }

    async fn store(&self) {
        let json = serde_json::to_string(&self.record).expect("record serialises");
        if self.shared {
            if let Some(link) = &self.cache.redis {
                if link.set(&link.key("idem", &self.scope), &json, KEEP.as_secs()).await.is_some() {
                    return;
                }
            }
        }
        let expires = Instant::now() + KEEP;
        self.cache.lock().insert(self.scope.clone(), LocalRecord { record: self.record.clone(), expires });
    }

    async fn release(&self) {
        if self.shared {
            if let Some(link) = &self.cache.redis {
                let pending = serde_json::to_string(&self.record).expect("record serialises");
                link.delete_if(&link.key("idem", &self.scope), &pending).await;
            }
        }
        release_local(&self.cache, &self.scope, &self.record.owner);
    }
}

fn release_local(cache: &IdempotencyCache, scope: &str, owner: &str) {
    let mut local = cache.lock();
    if local.get(scope).is_some_and(|r| r.record.answer.is_none() && r.record.owner == owner) {
        local.remove(scope);
    }
}

impl Drop for Claim {
    /// A request that never finished (client gone, panic) frees its key.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        release_local(&self.cache, &self.scope, &self.record.owner);
        if let (true, Some(link)) = (self.shared, self.cache.redis.clone()) {
            let key = link.key("idem", &self.scope);
            let pending = serde_json::to_string(&self.record).expect("record serialises");
            tokio::spawn(async move {
                link.delete_if(&key, &pending).await;
            });
        }
    }
}
