//! HMAC API keys of a project (Bearer tokens with the `keys` scope).

use super::sdk::project_for;
use super::{audit, Audit};
use crate::auth::BearerCaller;
use crate::dto::{ApiKeyDto, NewApiKeyDto};
use crate::error::ApiError;
use crate::extract::{check_id, check_len, ApiPath, Body};
use crate::secrets::{new_api_key, new_api_secret};
use crate::state::{now, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use codegate_domain::ids::new_id;
use codegate_domain::model::{ApiKey, Scope};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    name: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/projects/{pid}/api-keys", tag = "api-keys", params(("pid" = String, Path, description = "Project id (32 hex)")), request_body = Option<CreateKey>, responses((status = 201, body = NewApiKeyDto), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    caller: BearerCaller,
    Body(body): Body,
) -> Result<(StatusCode, Json<NewApiKeyDto>), ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Keys).await?;
    // The body is optional: `{}` or nothing at all.
    let b: CreateKey = if body.iter().all(u8::is_ascii_whitespace) {
        CreateKey::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    if let Some(n) = &b.name {
        check_len("name", n, 100)?;
    }
    let (api_key, secret) = (new_api_key(), new_api_secret());
    let key = ApiKey {
        id: new_id(),
        project_id: project.id.clone(),
        sealed_secret: state.master_key.seal(&secret, &api_key),
        api_key,
        name: b.name,
        sealed_previous_secret: None,
        previous_valid_until: None,
        enabled: true,
        last_used_at: None,
        created_at: now(),
    };
    state.store.create_api_key(&key).await?;
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "api_key.create",
            resource_type: "api_key",
            resource_id: Some(&key.id),
            project_id: Some(&project.id),
            detail: Some(json!({"api_key": key.api_key, "name": key.name})),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(NewApiKeyDto { key: key.into(), secret })))
}

#[utoipa::path(get, path = "/api/v1/projects/{pid}/api-keys", tag = "api-keys", params(("pid" = String, Path, description = "Project id (32 hex)")), responses((status = 200, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    caller: BearerCaller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Keys).await?;
    let items: Vec<ApiKeyDto> = state.store.list_api_keys(&project.id).await?.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(delete, path = "/api/v1/projects/{pid}/api-keys/{key_id}", tag = "api-keys", params(("pid" = String, Path, description = "Project id (32 hex)"), ("key_id" = String, Path, description = "API key id")), responses((status = 204, description = "Done"), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    ApiPath((pid, key_id)): ApiPath<(String, String)>,
    caller: BearerCaller,
) -> Result<StatusCode, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Keys).await?;
    check_id(&key_id, "API key")?;
    if !state.store.delete_api_key(&project.id, &key_id).await? {
        return Err(ApiError::NotFound { what: "API key" });
    }
    state.lookups.forget_keys();
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "api_key.delete",
            resource_type: "api_key",
            resource_id: Some(&key_id),
            project_id: Some(&project.id),
            detail: None,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateKey {
    enabled: bool,
}

#[utoipa::path(patch, path = "/api/v1/projects/{pid}/api-keys/{key_id}", tag = "api-keys", params(("pid" = String, Path, description = "Project id (32 hex)"), ("key_id" = String, Path, description = "API key id")), request_body = UpdateKey, responses((status = 200, body = ApiKeyDto), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    ApiPath((pid, key_id)): ApiPath<(String, String)>,
    caller: BearerCaller,
    Body(body): Body,
) -> Result<Json<ApiKeyDto>, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Keys).await?;
    check_id(&key_id, "API key")?;
    let b: UpdateKey = crate::extract::parse_json(&body)?;
    let key = state
        .store
        .set_api_key_enabled(&project.id, &key_id, b.enabled)
        .await?
        .ok_or(ApiError::NotFound { what: "API key" })?;
    state.lookups.forget_keys();
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: if b.enabled { "api_key.enable" } else { "api_key.disable" },
            resource_type: "api_key",
            resource_id: Some(&key.id),
            project_id: Some(&project.id),
            detail: None,
        },
    )
    .await?;
    Ok(Json(key.into()))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateKey {
    grace_seconds: Option<i64>,
}

const DEFAULT_GRACE_SECS: i64 = 86_400;
const MAX_GRACE_SECS: i64 = 30 * 86_400;

#[utoipa::path(post, path = "/api/v1/projects/{pid}/api-keys/{key_id}/rotate", tag = "api-keys", params(("pid" = String, Path, description = "Project id (32 hex)"), ("key_id" = String, Path, description = "API key id")), request_body = Option<RotateKey>, responses((status = 201, body = NewApiKeyDto), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    ApiPath((pid, key_id)): ApiPath<(String, String)>,
    caller: BearerCaller,
    Body(body): Body,
) -> Result<(StatusCode, Json<NewApiKeyDto>), ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Keys).await?;
    check_id(&key_id, "API key")?;
    let b: RotateKey = if body.iter().all(u8::is_ascii_whitespace) {
        RotateKey::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let grace = b.grace_seconds.unwrap_or(DEFAULT_GRACE_SECS);
    if !(0..=MAX_GRACE_SECS).contains(&grace) {
        return Err(ApiError::validation(format!("grace_seconds must be from 0 to {MAX_GRACE_SECS}")));
    }
    let existing = state
        .store
        .list_api_keys(&project.id)
        .await?
        .into_iter()
        .find(|k| k.id == key_id)
        .ok_or(ApiError::NotFound { what: "API key" })?;
    let secret = new_api_secret();
    let sealed = state.master_key.seal(&secret, &existing.api_key);
    let key = state
        .store
        .rotate_api_key(&project.id, &key_id, sealed, now() + grace)
        .await?
        .ok_or(ApiError::NotFound { what: "API key" })?;
    state.lookups.forget_keys();
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "api_key.rotate",
            resource_type: "api_key",
            resource_id: Some(&key.id),
            project_id: Some(&project.id),
            detail: Some(json!({"grace_seconds": grace})),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(NewApiKeyDto { key: key.into(), secret })))
}
