use crate::error::problem;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Alive: answers as long as the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => {
            let mut body = json!({"status": "ok", "database": "ok"});
            // Redis only shares limits between replicas: without it this replica still serves (local limits).
            if let Some(redis) = state.defences.redis_status().await {
                body["redis"] = json!(redis);
            }
            Json(body).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "NOT_READY",
                "the database does not answer",
                Some(json!({"database": "unreachable"})),
            )
        }
    }
}
