//! Routing: every path of the API in one table.

mod codes;
mod health;
mod keys;
mod logs;
pub mod openapi;
mod projects;
mod sdk;
mod session;
mod tokens;
mod users;

use crate::auth::Principal;
use crate::error::{problem, ApiError};
use crate::state::{now, AppState};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post};
use axum::Router;
use codegate_domain::ids::new_id;
use codegate_domain::model::AuditEntry;
use codegate_storage::RequestOrigin;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/auth/login", post(session::login))
        .route("/auth/logout", post(session::logout))
        .route("/auth/me", get(session::me))
        .route("/auth/password", post(session::change_password))
        .route("/users", get(users::list).post(users::create))
        .route("/users/{id}", patch(users::update).delete(users::remove))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", delete(tokens::revoke))
        .route("/tokens/{id}/rotate", post(tokens::rotate))
        .route("/overview", get(logs::overview))
        .route("/audit-log", get(logs::audit_log))
        .route("/projects", post(projects::create).get(projects::list))
        .route("/projects/{pid}", get(sdk::get_project).patch(projects::update).delete(projects::remove))
        .route("/projects/{pid}/statistics", get(sdk::statistics))
        .route("/projects/{pid}/overview", get(logs::project_overview))
        .route("/projects/{pid}/redemptions", get(logs::redemptions))
        .route("/projects/{pid}/batches", get(codes::batches))
        .route("/projects/{pid}/codes", get(sdk::list_codes))
        .route("/projects/{pid}/codes/verify", post(sdk::verify))
        .route("/projects/{pid}/codes/reactivate", post(sdk::reactivate))
        .route("/projects/{pid}/codes/generate", post(codes::generate))
        .route("/projects/{pid}/codes/import", post(codes::import))
        .route("/projects/{pid}/codes/export", get(codes::export))
        .route("/projects/{pid}/codes/bulk", post(codes::bulk))
        .route("/projects/{pid}/codes/by-code/{code}", get(sdk::get_code_by_code))
        .route("/projects/{pid}/codes/{code_id}", get(sdk::get_code).patch(codes::update).delete(codes::remove))
        .route("/projects/{pid}/api-keys", post(keys::create).get(keys::list))
        .route("/projects/{pid}/api-keys/{key_id}", patch(keys::update).delete(keys::remove))
        .route("/projects/{pid}/api-keys/{key_id}/rotate", post(keys::rotate));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::docs))
        .nest("/api/v1", api)
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    problem(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route", None)
}

async fn method_not_allowed() -> impl IntoResponse {
    problem(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "this route does not take that method", None)
}

/// Keeps a management action in the audit log.
pub(crate) struct Audit<'a> {
    pub action: &'static str,
    pub resource_type: &'static str,
    pub resource_id: Option<&'a str>,
    pub project_id: Option<&'a str>,
    pub detail: Option<serde_json::Value>,
}

pub(crate) async fn audit(
    state: &AppState,
    who: &Principal,
    origin: &RequestOrigin,
    what: Audit<'_>,
) -> Result<(), ApiError> {
    let entry = AuditEntry {
        id: new_id(),
        actor: who.actor(),
        action: what.action.to_owned(),
        resource_type: what.resource_type.to_owned(),
        resource_id: what.resource_id.map(str::to_owned),
        project_id: what.project_id.map(str::to_owned),
        result: "success".to_owned(),
        ip_address: origin.ip_address.clone(),
        detail: what.detail,
        created_at: now(),
    };
    state.store.record_audit(&entry).await?;
    Ok(())
}
