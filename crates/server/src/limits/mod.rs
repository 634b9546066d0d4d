//! Abuse protection (DESIGN §5): rate limits by endpoint category (GCRA, in
//! memory or shared through Redis), the guessing defence on redemptions,
//! login throttling, client-IP resolution behind proxies, and slow-client
//! cut-offs. Replay protection and idempotency live in `crate::replay` and
//! `crate::idempotency`; they share this module's Redis link.
//!
//! How a request meets the limits: the [`middleware`] resolves the client IP
//! and puts a [`RateSlot`] in the request; the credential extractors in
//! `auth.rs` call [`admit`], which picks the category from method and path,
//! spends one unit from the credential's bucket and notes the result in the
//! slot; the middleware writes the slot out as `RateLimit*` headers.

mod client_ip;
mod gcra;
mod guessing;
mod listener;
mod login;
pub mod settings;
mod shared;
mod slow;

pub use client_ip::ClientIp;
pub use guessing::RedemptionGuard;
pub use listener::serve_connections;
pub use settings::{Category, Policy, Settings};
pub(crate) use shared::RedisLink;

use crate::auth::Principal;
use crate::error::{problem, ApiError};
use crate::idempotency::IdempotencyCache;
use crate::replay::ReplayGuard;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use gcra::{LocalBuckets, Rate, Report};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything that defends the service, shared by all requests.
pub struct Defences {
    pub settings: Settings,
    buckets: LocalBuckets,
    redis: Option<Arc<RedisLink>>,
    pub replay: ReplayGuard,
    pub idempotency: Arc<IdempotencyCache>,
}

impl Defences {
    /// Builds the defences; with `CODEGATE_REDIS_URL`, connects to Redis
    /// (or keeps trying in the background while serving with local state).
    pub async fn start(settings: Settings, signature_window_secs: i64) -> anyhow::Result<Arc<Defences>> {
        let redis = match settings.redis_url.as_deref() {
            Some(url) => {
                let link = RedisLink::new(url, &settings.redis_prefix)?;
                link.connect().await;
                link.keep_alive();
                Some(link)
            }
            None => None,
        };
        if !settings.enabled {
            tracing::warn!("CODEGATE_RATE_LIMITS=off: rate limits are lifted; use this only on a trusted network");
        }
        let defences = Arc::new(Defences {
            buckets: LocalBuckets::default(),
            replay: ReplayGuard::new(redis.clone(), signature_window_secs),
            idempotency: Arc::new(IdempotencyCache::new(redis.clone())),
            redis,
            settings,
        });
        defences.purge_periodically();
        Ok(defences)
    }

    /// Forgets expired buckets, nonces and idempotency records, so memory stays bounded.
    fn purge_periodically(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(d) = me.upgrade() else { return };
                d.buckets.purge();
                d.replay.purge();
                d.idempotency.purge();
            }
        });
    }

    /// `None` without Redis; else `"ok"` or `"unreachable"`.
    pub async fn redis_status(&self) -> Option<&'static str> {
        match &self.redis {
            Some(link) => Some(link.status().await),
            None => None,
        }
    }

    /// Spends `cost` (0: only looks) from `identity`'s bucket of `category`.
    async fn check(&self, category: Category, policy: Policy, identity: &str, cost: u32) -> Report {
        let rate = Rate::from(policy);
        let shared = match &self.redis {
            Some(link) => link.gcra(&link.key("rl", &format!("{}:{identity}", category.name())), rate, cost).await,
            None => None,
        };
        let outcome =
            shared.unwrap_or_else(|| self.buckets.check(self.buckets.key((category.index(), identity)), rate, cost));
        outcome.report(rate, category.name())
    }

    /// The policy of `category` for a call about `project_id`: the project's
    /// override when it has one, else the server's.
    async fn policy_for(&self, state: &AppState, category: Category, project_id: Option<&str>) -> Policy {
        let default = self.settings.policy(category);
        let Some(pid) = project_id.filter(|p| codegate_domain::ids::is_valid_id(p)) else { return default };
        let overrides = match state.lookups.shared_project(state.store.as_ref(), pid).await {
            Ok(project) => project.and_then(|p| p.quotas.rate_limits.clone()),
            Err(e) => {
                tracing::debug!(error = %e, "could not read a project's rate limits; using the defaults");
                None
            }
        };
        let Some(overrides) = overrides else { return default };
        let rule = match category {
            Category::Redemption => overrides.redemption,
            Category::Reads => overrides.reads,
            Category::FailedRedemptions => overrides.failed_redemptions,
            Category::Bulk => overrides.bulk,
            Category::Management => overrides.management,
            Category::Login | Category::Unauthenticated => None,
        };
        rule.map_or(default, |r| Policy { limit: r.limit.get(), window_secs: r.window_secs.get() })
    }
}

/// The rate-limit results of one request, written out as headers at the end.
#[derive(Clone, Default)]
pub struct RateSlot(Arc<Mutex<Vec<Report>>>);

impl RateSlot {
    /// Notes a result; a second result of the same policy keeps the tighter one.
    fn record(&self, report: Report) {
        let mut reports = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match reports.iter_mut().find(|r| r.policy_name == report.policy_name) {
            Some(existing) => {
                let tighter = report.retry_after.is_some() && existing.retry_after.is_none()
                    || (report.retry_after.is_some() == existing.retry_after.is_some()
                        && report.remaining < existing.remaining);
                if tighter {
                    *existing = report;
                }
            }
            None => reports.push(report),
        }
    }

    fn write(&self, headers: &mut HeaderMap) {
        let reports = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(primary) = reports.iter().find(|r| r.retry_after.is_some()).or(reports.first()) else { return };
        let join = |f: &dyn Fn(&Report) -> String| reports.iter().map(f).collect::<Vec<_>>().join(", ");
        let policy = join(&|r| format!("\"{}\";q={};w={}", r.policy_name, r.limit, r.window_secs));
        let state = join(&|r| format!("\"{}\";r={};t={}", r.policy_name, r.remaining, r.reset_secs));
        let mut put = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        };
        put("ratelimit-policy", policy);
        put("ratelimit", state);
        put("x-ratelimit-limit", primary.limit.to_string());
        put("x-ratelimit-remaining", primary.remaining.to_string());
        put("x-ratelimit-reset", primary.reset_secs.to_string());
        if let Some(wait) = primary.retry_after {
            put("retry-after", wait.to_string());
        }
    }
}

/// What a handler needs to apply limits itself (login, redemptions).
pub struct RequestCtx {
    pub ip: IpAddr,
    slot: Option<RateSlot>,
    /// The project named in the path, if any.
    project_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestCtx {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        let ip = ClientIp::from_request_parts(parts, state).await?.0;
        Ok(RequestCtx {
            ip,
            slot: parts.extensions.get::<RateSlot>().cloned(),
            project_id: project_in_path(full_path(parts)).map(str::to_owned),
        })
    }
}

impl RequestCtx {
    fn record(&self, report: Report) {
        if let Some(slot) = &self.slot {
            slot.record(report);
        }
    }
}

fn refusal(report: &Report, code: &'static str) -> Option<ApiError> {
    report.retry_after.map(|retry_after| ApiError::RateLimited { code, policy: report.policy_name, retry_after })
}

/// The first layer every request passes: client IP, slow-body cut-off, and
/// the rate-limit headers of the answer.
pub async fn middleware(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let d = &state.defences;
    if let Some(peer) = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) {
        let ip = client_ip::resolve(peer, req.headers(), &d.settings.trusted_proxies);
        req.extensions_mut().insert(ClientIp(ip));
    }
    let timed_out = slow::TimedOut::default();
    if !http_body::Body::is_end_stream(req.body()) {
        let (parts, body) = req.into_parts();
        req =
            Request::from_parts(parts, slow::DeadlineBody::wrap(body, d.settings.body_read_timeout, timed_out.clone()));
    }
    let slot = d.settings.enabled.then(RateSlot::default);
    if let Some(slot) = &slot {
        req.extensions_mut().insert(slot.clone());
    }
    let mut response = next.run(req).await;
    if timed_out.is_set() {
        response = problem(StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT", "the request body arrived too slowly", None);
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(slot) = slot {
        slot.write(response.headers_mut());
    }
    response
}

/// Called by the credential extractors with the authentication result:
/// refused credentials count against the client IP's `unauthenticated`
/// limit; accepted ones spend from the credential's bucket of the route's
/// category. Either way the answer may become a 429.
pub async fn admit(
    state: &AppState,
    parts: &Parts,
    authenticated: Result<Principal, ApiError>,
) -> Result<Principal, ApiError> {
    let d = &state.defences;
    if !d.settings.enabled {
        return authenticated;
    }
    let slot = parts.extensions.get::<RateSlot>();
    let note = |report: &Report| {
        if let Some(slot) = slot {
            slot.record(*report);
        }
    };
    match authenticated {
        Err(e @ ApiError::Unauthorized { .. }) => {
            let ip = ClientIp::of(parts).map_or_else(|| "unknown".to_owned(), |c| c.0.to_string());
            let category = Category::Unauthenticated;
            let report = d.check(category, d.settings.policy(category), &ip, 1).await;
            note(&report);
            Err(refusal(&report, "RATE_LIMITED").unwrap_or(e))
        }
        Err(e) => Err(e),
        Ok(principal) => {
            let path = full_path(parts);
            let category = categorise(&parts.method, path);
            let project = principal.project_restriction().or_else(|| project_in_path(path));
            let policy = d.policy_for(state, category, project).await;
            let report = d.check(category, policy, &identity(&principal), 1).await;
            note(&report);
            match refusal(&report, "RATE_LIMITED") {
                Some(e) => Err(e),
                None => Ok(principal),
            }
        }
    }
}

/// The path as the client sent it (outside any nesting).
fn full_path(parts: &Parts) -> &str {
    parts.extensions.get::<OriginalUri>().map_or(parts.uri.path(), |o| o.0.path())
}

/// Which limit a route counts against.
pub fn categorise(method: &Method, path: &str) -> Category {
    let path = path.trim_end_matches('/');
    let ends = |suffix: &str| path.ends_with(suffix);
    if method == Method::POST && (ends("/codes/verify") || ends("/codes/reactivate")) {
        Category::Redemption
    } else if (method == Method::POST && (ends("/codes/generate") || ends("/codes/import")))
        || (method == Method::GET && ends("/codes/export"))
    {
        Category::Bulk
    } else if method == Method::GET || method == Method::HEAD {
        Category::Reads
    } else {
        Category::Management
    }
}

/// `{pid}` of `/api/v1/projects/{pid}/…`.
fn project_in_path(path: &str) -> Option<&str> {
    let mut segments = path.split('/').skip_while(|s| *s != "projects");
    segments.next()?;
    segments.next().filter(|s| !s.is_empty())
}

/// The credential a bucket belongs to; never a secret.
pub(crate) fn identity(principal: &Principal) -> String {
    match principal {
        Principal::ApiKey { api_key, .. } => format!("key:{api_key}"),
        Principal::User { via, .. } if via.starts_with("token:") => via.clone(),
        Principal::User { user, .. } => format!("user:{}", user.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_into_their_categories() {
        let p = "/api/v1/projects/0123456789abcdef0123456789abcdef";
        assert_eq!(categorise(&Method::POST, &format!("{p}/codes/verify")), Category::Redemption);
        assert_eq!(categorise(&Method::POST, &format!("{p}/codes/reactivate")), Category::Redemption);
        assert_eq!(categorise(&Method::GET, &format!("{p}/codes/by-code/verify")), Category::Reads);
        assert_eq!(categorise(&Method::POST, &format!("{p}/codes/generate")), Category::Bulk);
        assert_eq!(categorise(&Method::POST, &format!("{p}/codes/import")), Category::Bulk);
        assert_eq!(categorise(&Method::GET, &format!("{p}/codes/export")), Category::Bulk);
        assert_eq!(categorise(&Method::GET, &format!("{p}/statistics")), Category::Reads);
        assert_eq!(categorise(&Method::PATCH, p), Category::Management);
        assert_eq!(categorise(&Method::POST, "/api/v1/tokens"), Category::Management);
        assert_eq!(project_in_path(&format!("{p}/codes")), Some(&p[17..]));
        assert_eq!(project_in_path("/api/v1/projects"), None);
        assert_eq!(project_in_path("/api/v1/users"), None);
    }

    #[test]
    fn headers_name_the_policy_and_the_refusal() {
        let slot = RateSlot::default();
        let rate = Rate::from(Policy { limit: 3, window_secs: 2 });
        let (o, _) = gcra::step(rate, 0, None, 1);
        slot.record(o.report(rate, "reads"));
        let mut h = HeaderMap::new();
        slot.write(&mut h);
        assert_eq!(h["ratelimit-policy"], "\"reads\";q=3;w=2");
        assert_eq!(h["ratelimit"], "\"reads\";r=2;t=1");
        assert_eq!(h["x-ratelimit-remaining"], "2");
        assert!(h.get("retry-after").is_none());
    }
}
