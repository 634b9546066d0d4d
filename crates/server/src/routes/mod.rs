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

/// A path of the management and SDK API.
macro_rules! api_path {
    ($path:literal) => {
        concat!("/api/v1", $path)
    };
}

pub fn router(state: AppState) -> Router {
    // Full paths rather than `nest`: a nested route rewrites every request's URI on the way in.
    let api = Router::new()
        .route(api_path!("/auth/login"), post(session::login))
        .route(api_path!("/auth/logout"), post(session::logout))
        .route(api_path!("/auth/me"), get(session::me))
        .route(api_path!("/auth/password"), post(session::change_password))
        .route(api_path!("/users"), get(users::list).post(users::create))
        .route(api_path!("/users/{id}"), patch(users::update).delete(users::remove))
        .route(api_path!("/tokens"), get(tokens::list).post(tokens::create))
        .route(api_path!("/tokens/{id}"), delete(tokens::revoke))
        .route(api_path!("/tokens/{id}/rotate"), post(tokens::rotate))
        .route(api_path!("/overview"), get(logs::overview))
        .route(api_path!("/audit-log"), get(logs::audit_log))
        .route(api_path!("/projects"), post(projects::create).get(projects::list))
        .route(api_path!("/projects/{pid}"), get(sdk::get_project).patch(projects::update).delete(projects::remove))
        .route(api_path!("/projects/{pid}/statistics"), get(sdk::statistics))
        .route(api_path!("/projects/{pid}/overview"), get(logs::project_overview))
        .route(api_path!("/projects/{pid}/redemptions"), get(logs::redemptions))
        .route(api_path!("/projects/{pid}/batches"), get(codes::batches))
        .route(api_path!("/projects/{pid}/codes"), get(sdk::list_codes))
        .route(api_path!("/projects/{pid}/codes/verify"), post(sdk::verify))
        .route(api_path!("/projects/{pid}/codes/reactivate"), post(sdk::reactivate))
        .route(api_path!("/projects/{pid}/codes/generate"), post(codes::generate))
        .route(api_path!("/projects/{pid}/codes/import"), post(codes::import))
        .route(api_path!("/projects/{pid}/codes/export"), get(codes::export))
        .route(api_path!("/projects/{pid}/codes/bulk"), post(codes::bulk))
        .route(api_path!("/projects/{pid}/codes/by-code/{code}"), get(sdk::get_code_by_code))
        .route(
            api_path!("/projects/{pid}/codes/{code_id}"),
            get(sdk::get_code).patch(codes::update).delete(codes::remove),
        )
        .route(api_path!("/projects/{pid}/api-keys"), post(keys::create).get(keys::list))
        .route(api_path!("/projects/{pid}/api-keys/{key_id}"), patch(keys::update).delete(keys::remove))
        .route(api_path!("/projects/{pid}/api-keys/{key_id}/rotate"), post(keys::rotate));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::docs))
        .merge(api)
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
