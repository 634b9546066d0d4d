//! Personal access tokens: shown once, stored as hashes, revocable and rotatable.

use super::{audit, Audit};
use crate::auth::{BearerCaller, Principal};
use crate::dto::TokenDto;
use crate::error::ApiError;
use crate::extract::{check_id, check_len, param, parse_json, query_pairs, ApiPath, Body};
use crate::secrets::new_access_token;
use crate::state::{now, AppState};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Json;
use codegate_domain::ids::new_id;
use codegate_domain::model::{AccessToken, Scope, User};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    name: String,
    #[schema(value_type = Vec<String>)]
    scopes: Vec<Scope>,
    project_id: Option<String>,
    expires_at: Option<i64>,
}

fn user_of(p: &Principal) -> Result<(&User, &[Scope], Option<&str>), ApiError> {
    match p {
        Principal::User { user, scopes, project_id, .. } => Ok((user, scopes, project_id.as_deref())),
        Principal::ApiKey { .. } => Err(ApiError::forbidden("API keys cannot manage tokens")),
    }
}

fn with_secret(token: AccessToken, secret: String) -> serde_json::Value {
    let mut v = serde_json::to_value(TokenDto::from(token)).expect("token serialises");
    v["token"] = json!(secret);
    v
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(("all" = Option<bool>, Query)), responses((status = 200, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    uri: Uri,
    caller: BearerCaller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (user, _, _) = user_of(&caller.principal)?;
    let all = param(&query_pairs(uri.query()), "all") == Some("true");
    if all {
        caller.principal.require(Scope::Admin, None)?;
    }
    let items: Vec<TokenDto> =
        state.store.list_tokens(if all { None } else { Some(&user.id) }).await?.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "items": items })))
}

/// Issues a token for `user` and records it; the value is returned once.
async fn issue(
    state: &AppState,
    user_id: &str,
    name: String,
    scopes: Vec<Scope>,
    project_id: Option<String>,
    expires_at: Option<i64>,
) -> Result<(AccessToken, String), ApiError> {
    let (secret, token_hash) = new_access_token();
    let token = AccessToken {
        id: new_id(),
        user_id: user_id.to_owned(),
        name,
        display_prefix: secret[..12].to_owned(),
        token_hash,
        scopes,
        project_id,
        expires_at,
        revoked_at: None,
        last_used_at: None,
        created_at: now(),
    };
    state.store.create_token(&token).await?;
    Ok((token, secret))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken, responses((status = 201, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: BearerCaller,
    Body(body): Body,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let (user, own_scopes, own_project) = user_of(&caller.principal)?;
    let b: CreateToken = parse_json(&body)?;
    let name = b.name.trim().to_owned();
    if name.is_empty() {
        return Err(ApiError::validation("name must not be empty"));
    }
    check_len("name", &name, 100)?;
    if b.scopes.is_empty() {
        return Err(ApiError::validation("scopes must name at least one of read, write, verify, keys, admin"));
    }
    // Least privilege: a token never gets more than its creator has.
    if let Some(s) = b.scopes.iter().find(|s| !user.role.allows(**s) || !own_scopes.contains(s)) {
        return Err(ApiError::forbidden(format!("you cannot grant the '{}' scope", s.as_str())));
    }
    let project_id = match (own_project, b.project_id) {
        (Some(own), Some(p)) if own != p => {
            return Err(ApiError::forbidden("your token is restricted to another project"))
        }
        (Some(own), _) => Some(own.to_owned()),
        (None, p) => p,
    };
    if let Some(p) = &project_id {
        check_id(p, "project")?;
        state.store.get_project(p).await?.ok_or(ApiError::NotFound { what: "project" })?;
    }
    if b.expires_at.is_some_and(|t| t <= now()) {
        return Err(ApiError::validation("expires_at must be in the future"));
    }
    let mut scopes = b.scopes;
    scopes.sort();
    scopes.dedup();
    let (token, secret) = issue(&state, &user.id, name, scopes, project_id, b.expires_at).await?;
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "token.create",
            resource_type: "token",
            resource_id: Some(&token.id),
            project_id: token.project_id.as_deref(),
            detail: Some(json!({"name": token.name, "scopes": token.scopes})),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(with_secret(token, secret))))
}

/// A token the caller may manage: their own, or anyone's with the admin scope.
async fn own_token(state: &AppState, caller: &BearerCaller, id: &str) -> Result<AccessToken, ApiError> {
    let (user, _, _) = user_of(&caller.principal)?;
    check_id(id, "token")?;
    let token = state.store.get_token(id).await?.ok_or(ApiError::NotFound { what: "token" })?;
    if token.user_id != user.id {
        caller.principal.require(Scope::Admin, None).map_err(|_| ApiError::NotFound { what: "token" })?;
    }
    Ok(token)
}

#[utoipa::path(post, path = "/api/v1/tokens/{id}/rotate", tag = "tokens", params(("id" = String, Path)), responses((status = 201, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    caller: BearerCaller,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let old = own_token(&state, &caller, &id).await?;
    if old.revoked_at.is_some() {
        return Err(ApiError::Conflict { code: "TOKEN_REVOKED", detail: "a revoked token cannot be rotated".into() });
    }
    let (token, secret) =
        issue(&state, &old.user_id, old.name.clone(), old.scopes.clone(), old.project_id.clone(), old.expires_at)
            .await?;
    state.store.revoke_token(&old.id, now()).await?;
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "token.rotate",
            resource_type: "token",
            resource_id: Some(&token.id),
            project_id: token.project_id.as_deref(),
            detail: Some(json!({"replaces": old.id})),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(with_secret(token, secret))))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)), responses((status = 204, description = "Done"), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    caller: BearerCaller,
) -> Result<StatusCode, ApiError> {
    let token = own_token(&state, &caller, &id).await?;
    state.store.revoke_token(&token.id, now()).await?;
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "token.revoke",
            resource_type: "token",
            resource_id: Some(&token.id),
            project_id: token.project_id.as_deref(),
            detail: None,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
