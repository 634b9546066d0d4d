//! Users and roles (the `admin` scope: owners).

use super::{audit, Audit};
use crate::auth::BearerCaller;
use crate::dto::UserDto;
use crate::error::ApiError;
use crate::extract::{check_id, check_len, parse_json, ApiPath, Body};
use crate::secrets::{hash_password, new_password};
use crate::state::{now, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use codegate_domain::ids::new_id;
use codegate_domain::model::{Role, Scope, User};
use codegate_storage::UserPatch;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    username: String,
    #[schema(value_type = String)]
    role: Role,
    password: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUser {
    #[schema(value_type = Option<String>)]
    role: Option<Role>,
    disabled: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, caller: BearerCaller) -> Result<Json<serde_json::Value>, ApiError> {
    caller.principal.require(Scope::Admin, None)?;
    let items: Vec<UserDto> = state.store.list_users().await?.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser, responses((status = 201, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: BearerCaller,
    Body(body): Body,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.principal.require(Scope::Admin, None)?;
    let b: CreateUser = parse_json(&body)?;
    let username = b.username.trim().to_owned();
    if username.is_empty() || username.chars().any(char::is_whitespace) {
        return Err(ApiError::validation("username must be non-empty and without spaces"));
    }
    check_len("username", &username, 100)?;
    let password = match b.password {
        Some(p) if p.chars().count() < super::session::MIN_PASSWORD_CHARS => {
            return Err(ApiError::validation("password must be at least 10 characters"))
        }
        Some(p) => p,
        None => new_password(),
    };
    check_len("password", &password, 1024)?;
    let hash = {
        let p = password.clone();
        tokio::task::spawn_blocking(move || hash_password(&p)).await.map_err(|e| ApiError::internal(e.to_string()))?
    };
    let user = User {
        id: new_id(),
        username,
        password_hash: hash,
        role: b.role,
        must_change_password: true,
        disabled: false,
        created_at: now(),
    };
    state.store.create_user(&user).await?;
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "user.create",
            resource_type: "user",
            resource_id: Some(&user.id),
            project_id: None,
            detail: Some(json!({"username": user.username, "role": user.role})),
        },
    )
    .await?;
    let mut v = serde_json::to_value(UserDto::from(user)).expect("user serialises");
    v["password"] = json!(password);
    Ok((StatusCode::CREATED, Json(v)))
}

/// Refuses changes that would leave no enabled owner.
async fn keep_an_owner(state: &AppState, user: &User, demoted_or_gone: bool) -> Result<(), ApiError> {
    if user.role != Role::Owner || user.disabled || !demoted_or_gone {
        return Ok(());
    }
    let owners = state.store.list_users().await?.into_iter().filter(|u| u.role == Role::Owner && !u.disabled).count();
    if owners <= 1 {
        return Err(ApiError::Conflict { code: "LAST_OWNER", detail: "this is the last enabled owner".into() });
    }
    Ok(())
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)), request_body = UpdateUser, responses((status = 200, body = UserDto), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    caller: BearerCaller,
    Body(body): Body,
) -> Result<Json<UserDto>, ApiError> {
    caller.principal.require(Scope::Admin, None)?;
    check_id(&id, "user")?;
    let b: UpdateUser = parse_json(&body)?;
    let user = state.store.get_user(&id).await?.ok_or(ApiError::NotFound { what: "user" })?;
    keep_an_owner(&state, &user, b.disabled == Some(true) || b.role.is_some_and(|r| r != Role::Owner)).await?;
    let updated = state
        .store
        .update_user(&id, UserPatch { role: b.role, disabled: b.disabled, password: None })
        .await?
        .ok_or(ApiError::NotFound { what: "user" })?;
    if updated.disabled {
        state.store.delete_user_sessions(&id).await?;
    }
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "user.update",
            resource_type: "user",
            resource_id: Some(&id),
            project_id: None,
            detail: Some(json!({"role": updated.role, "disabled": updated.disabled})),
        },
    )
    .await?;
    Ok(Json(updated.into()))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)), responses((status = 204, description = "Done"), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    caller: BearerCaller,
) -> Result<StatusCode, ApiError> {
    caller.principal.require(Scope::Admin, None)?;
    check_id(&id, "user")?;
    let user = state.store.get_user(&id).await?.ok_or(ApiError::NotFound { what: "user" })?;
    if caller.principal.actor() == user.username {
        return Err(ApiError::Conflict {
            code: "CANNOT_DELETE_SELF",
            detail: "you cannot delete your own account".into(),
        });
    }
    keep_an_owner(&state, &user, true).await?;
    state.store.delete_user(&id).await?;
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "user.delete",
            resource_type: "user",
            resource_id: Some(&id),
            project_id: None,
            detail: Some(json!({"username": user.username})),
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
