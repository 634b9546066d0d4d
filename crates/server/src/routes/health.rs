use crate::error::problem;
use crate::metrics::Access;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use subtle::ConstantTimeEq;

/// Alive: answers as long as the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: the database answers and takes writes and, when one is configured,
/// Redis answers too. Without Redis a replica still serves (with limits and
/// replay memory of its own), but it is not ready: a load balancer should
/// prefer replicas that share them. A database that only answers reads (SQLite
/// after a failed sync to disk) needs a restart.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = state.store.ping().await;
    if let Err(e) = &database {
        tracing::warn!(error = %e, "readiness check failed: the database does not answer");
    }
    let writes_refused = state.store.writes_refused();
    if let Some(why) = &writes_refused {
        tracing::warn!(reason = %why, "readiness check failed: the database takes no writes");
    }
    let redis = state.defences.redis_status().await;
    let mut facts = json!({"database": match (&database, &writes_refused) {
        (Err(_), _) => "unreachable",
        (Ok(()), Some(_)) => "read-only",
        (Ok(()), None) => "ok",
    }});
    if let Some(redis) = redis {
        facts["redis"] = json!(redis);
    }
    match (database.is_ok(), redis) {
        (false, _) => {
            problem(StatusCode::SERVICE_UNAVAILABLE, "NOT_READY", "the database does not answer", Some(facts))
        }
        (true, _) if writes_refused.is_some() => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_READY",
            "a sync of the database to disk failed: writes are refused until CodeGate restarts (see the server log)",
            Some(facts),
        ),
        (true, None | Some("ok")) => {
            facts["status"] = json!("ok");
            Json(facts).into_response()
        }
        (true, Some(_)) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_READY",
            "Redis does not answer: this replica serves with local limits only",
            Some(facts),
        ),
    }
}

/// Prometheus metrics (text format 0.0.4). Open by default; `CODEGATE_METRICS=off`
/// hides it, `CODEGATE_METRICS_TOKEN` asks for `Authorization: Bearer <token>`.
/// Labels hold route templates and result codes only: no ids, codes or secrets.
/// (Not in the OpenAPI document: it is for scrapers, not API clients.)
pub async fn metrics(headers: HeaderMap) -> Response {
    match crate::metrics::access() {
        Access::Off => return problem(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route", None),
        Access::Token(expected) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
                return problem(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_TOKEN",
                    "/metrics needs Authorization: Bearer with the metrics token",
                    None,
                );
            }
        }
        Access::Open => {}
    }
    // Rendering walks every series: keep it off the async workers.
    let body = tokio::task::spawn_blocking(crate::metrics::render).await.unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}
