use crate::error::problem;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Alive: answers as long as the process serves HTTP.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: the database answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({"status": "ok", "database": "ok"})).into_response(),
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
