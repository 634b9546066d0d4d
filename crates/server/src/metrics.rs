//! Prometheus metrics, served at `/metrics` in the text exposition format.
//!
//! Series (labels are bounded: route templates, methods, status codes and
//! result codes; never a raw path, an id, a code or a credential):
//! - `codegate_http_requests_total{route,method,status}`
//! - `codegate_http_request_duration_seconds{route,method}` (histogram)
//! - `codegate_redemptions_total{operation,result}`: `result` is `success`,
//!   the answer's `error_code`, or `QUOTA_EXHAUSTED`
//! - `codegate_sqlite_group_commit_jobs` (histogram): jobs per SQLite commit
//! - `codegate_db_pool_connections`, `codegate_db_pool_idle_connections`,
//!   `codegate_db_pool_max_connections` `{pool}`: sampled at each scrape
//!
//! Access (`CODEGATE_METRICS`): `on` (default: anyone who reaches the port),
//! `off` (`/metrics` answers 404), or with `CODEGATE_METRICS_TOKEN` set, only
//! callers sending `Authorization: Bearer <that token>`.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use codegate_storage::RedeemOutcome;
use metrics::SharedString;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

pub const HTTP_REQUESTS: &str = "codegate_http_requests_total";
pub const HTTP_DURATION: &str = "codegate_http_request_duration_seconds";
pub const REDEMPTIONS: &str = "codegate_redemptions_total";
/// Recorded by the SQLite writer (`codegate-storage`), named here for the docs.
pub const GROUP_COMMIT_JOBS: &str = "codegate_sqlite_group_commit_jobs";
pub const POOL_CONNECTIONS: &str = "codegate_db_pool_connections";
pub const POOL_IDLE: &str = "codegate_db_pool_idle_connections";
pub const POOL_MAX: &str = "codegate_db_pool_max_connections";

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Who may read `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Open,
    Off,
    Token(String),
}

impl Access {
    pub fn from_env() -> anyhow::Result<Access> {
        let mode = std::env::var("CODEGATE_METRICS").unwrap_or_default();
        let token = std::env::var("CODEGATE_METRICS_TOKEN").ok().filter(|t| !t.trim().is_empty());
        match (mode.trim().to_ascii_lowercase().as_str(), token) {
            ("off" | "false" | "0" | "no", _) => Ok(Access::Off),
            ("" | "on" | "true" | "1" | "yes", Some(t)) => Ok(Access::Token(t.trim().to_owned())),
            ("" | "on" | "true" | "1" | "yes", None) => Ok(Access::Open),
            (other, _) => anyhow::bail!("CODEGATE_METRICS must be on or off (got {other:?})"),
        }
    }
}

/// The access setting, read from the environment once.
pub fn access() -> &'static Access {
    static ACCESS: OnceLock<Access> = OnceLock::new();
    ACCESS.get_or_init(|| {
        Access::from_env().unwrap_or_else(|e| {
            tracing::error!(error = %e, "metrics are off");
            Access::Off
        })
    })
}

/// The process-wide recorder, installed on first use. `None` when another
/// recorder was installed first (an embedding program's): then it owns the series.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), LATENCY_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(GROUP_COMMIT_JOBS.into()), BATCH_BUCKETS))
                .expect("bucket lists are not empty");
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    let upkeep = handle.clone();
                    // Histogram samples wait in buffers until drained: keep them small between scrapes.
                    let _ = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    });
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "another metrics recorder is installed; /metrics shows only pool use");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route template, method and status");
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time to answer (until the response head), by route template and method"
    );
    metrics::describe_counter!(
        REDEMPTIONS,
        "Verify and reactivate outcomes, by operation and result (success or the error_code)"
    );
    metrics::describe_histogram!(GROUP_COMMIT_JOBS, "Jobs committed together in one SQLite transaction");
    metrics::describe_gauge!(POOL_CONNECTIONS, "Open database connections in the pool");
    metrics::describe_gauge!(POOL_IDLE, "Idle database connections in the pool");
    metrics::describe_gauge!(POOL_MAX, "Most connections the pool opens");
}

/// Counts and times every answer. Layered on the router, so the matched
/// route template (not the raw path) is known; requests matching no route are `unmatched`.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (duration, count) = http_series(route, method, response.status().as_u16());
    duration.record(started.elapsed().as_secs_f64());
    count.increment(1);
    response
}

/// One route's series: its latency histogram and its request counter for one status.
type HttpSeries = (metrics::Histogram, metrics::Counter);
/// By (method, status), then by route template.
type HttpSeriesMap = HashMap<(&'static str, u16), HashMap<String, HttpSeries>>;

thread_local! {
    /// Series handles by (method, status) and route template. Looking a series up in the
    /// recorder builds and hashes its labels; a handle is kept instead. Bounded: routes,
    /// methods and status codes are all finite sets.
    static HTTP_SERIES: RefCell<HttpSeriesMap> = RefCell::default();
    static REDEMPTION_SERIES: RefCell<HashMap<(&'static str, &'static str), metrics::Counter>> = RefCell::default();
}

fn http_series(route: &str, method: &'static str, status: u16) -> HttpSeries {
    HTTP_SERIES.with(|series| {
        let mut series = series.borrow_mut();
        let by_route = series.entry((method, status)).or_default();
        if let Some(known) = by_route.get(route) {
            return known.clone();
        }
        let route_label = SharedString::from_owned(route.to_owned());
        let made = (
            metrics::histogram!(HTTP_DURATION, "route" => route_label.clone(), "method" => method),
            metrics::counter!(HTTP_REQUESTS, "route" => route_label, "method" => method, "status" => status.to_string()),
        );
        by_route.insert(route.to_owned(), made.clone());
        made
    })
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// One verify or reactivate outcome.
pub fn redemption(verify: bool, outcome: &RedeemOutcome) {
    let result = match outcome {
        RedeemOutcome::Success(_) => "success",
        RedeemOutcome::Failure(f, _) => f.error_code(),
        RedeemOutcome::QuotaExhausted => "QUOTA_EXHAUSTED",
    };
    let operation = if verify { "verify" } else { "reactivate" };
    REDEMPTION_SERIES.with(|series| {
        series
            .borrow_mut()
            .entry((operation, result))
            .or_insert_with(|| metrics::counter!(REDEMPTIONS, "operation" => operation, "result" => result))
            .increment(1)
    });
}

/// A database pool's use at one moment.
#[derive(Debug, Clone, Copy)]
pub struct PoolUse {
    pub pool: &'static str,
    pub connections: u32,
    pub idle: u32,
    pub max: u32,
}

type Probe = Box<dyn Fn() -> Option<PoolUse> + Send + Sync>;

fn probe_slot() -> &'static RwLock<Option<Probe>> {
    static PROBE: OnceLock<RwLock<Option<Probe>>> = OnceLock::new();
    PROBE.get_or_init(|| RwLock::new(None))
}

/// Watches the pool of the store this process serves (held weakly: a dropped store is not kept alive).
pub fn watch_pool<S: Send + Sync + 'static>(store: &Arc<S>, sample: fn(&S) -> PoolUse) {
    let weak: Weak<S> = Arc::downgrade(store);
    let probe: Probe = Box::new(move || weak.upgrade().map(|s| sample(&s)));
    *probe_slot().write().unwrap_or_else(|e| e.into_inner()) = Some(probe);
}

/// The Prometheus text of every series, with the pool sampled now.
pub fn render() -> String {
    let handle = handle();
    let sampled = probe_slot().read().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|p| p());
    if let Some(u) = sampled {
        metrics::gauge!(POOL_CONNECTIONS, "pool" => u.pool).set(u.connections);
        metrics::gauge!(POOL_IDLE, "pool" => u.pool).set(u.idle);
        metrics::gauge!(POOL_MAX, "pool" => u.pool).set(u.max);
    }
    match handle {
        Some(h) => h.render(),
        None => match sampled {
            Some(u) => format!(
                "# TYPE {POOL_CONNECTIONS} gauge\n{POOL_CONNECTIONS}{{pool=\"{p}\"}} {}\n\
                 # TYPE {POOL_IDLE} gauge\n{POOL_IDLE}{{pool=\"{p}\"}} {}\n\
                 # TYPE {POOL_MAX} gauge\n{POOL_MAX}{{pool=\"{p}\"}} {}\n",
                u.connections,
                u.idle,
                u.max,
                p = u.pool
            ),
            None => String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_to_a_fixed_set() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
