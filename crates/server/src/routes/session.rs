//! Console login: sessions in an HttpOnly, SameSite=Strict cookie, with a CSRF token.

use super::{audit, Audit};
use crate::auth::{BearerCaller, Principal, SESSION_COOKIE};
use crate::dto::UserDto;
use crate::error::ApiError;
use crate::extract::{check_len, parse_json, Body};
use crate::limits::RequestCtx;
use crate::secrets::{hash_password, token_hash, verify_password};
use crate::state::{now, AppState};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use codegate_domain::model::{Session, User};
use codegate_storage::{RequestOrigin, UserPatch};
use rand::distr::{Alphanumeric, SampleString};
use serde::Deserialize;
use serde_json::json;

const SESSION_SECS: i64 = 12 * 3600;
pub const MIN_PASSWORD_CHARS: usize = 10;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    username: String,
    password: String,
}

fn me_json(user: User, csrf_token: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::to_value(UserDto::from(user)).expect("user serialises");
    v["csrf_token"] = json!(csrf_token);
    v
}

/// Behind a TLS-terminating proxy the cookie must be `Secure`.
fn cookie(value: &str, max_age: i64, headers: &HeaderMap, always_secure: bool) -> HeaderValue {
    let tls = always_secure
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie is ASCII")
}

/// Starts a session for `user`; answers with the cookie set.
async fn start_session(state: &AppState, user: User, headers: &HeaderMap) -> Result<Response, ApiError> {
    let value = Alphanumeric.sample_string(&mut rand::rng(), 43);
    let csrf = Alphanumeric.sample_string(&mut rand::rng(), 32);
    let now = now();
    state
        .store
        .create_session(&Session {
            id_hash: token_hash(&value),
            user_id: user.id.clone(),
            csrf_token: csrf.clone(),
            created_at: now,
            expires_at: now + SESSION_SECS,
        })
        .await?;
    let body = json!({"user": me_json(user, None), "csrf_token": csrf});
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&value, SESSION_SECS, headers, state.config.secure_cookies));
    Ok(response)
}

/// A hash to verify against when the user does not exist, so that both cases take as long.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that never matches"))
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login, responses((status = 200, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")))]
pub async fn login(
    State(state): State<AppState>,
    ctx: RequestCtx,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let b: Login = parse_json(&body)?;
    check_len("username", &b.username, 100)?;
    check_len("password", &b.password, 1024)?;
    // Throttled per client IP and per username, before any password is checked.
    state.defences.login_gate(&ctx, &b.username).await?;
    let user = state.store.find_user_by_name(&b.username).await?;
    let hash = user.as_ref().map_or(decoy_hash(), |u| u.password_hash.as_str()).to_owned();
    let password = b.password;
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let user = match user {
        Some(u) if matches && !u.disabled => u,
        // One answer for unknown users, wrong passwords and disabled accounts.
        _ => {
            state.defences.login_failed(&ctx, &b.username).await;
            return Err(ApiError::unauthorized("INVALID_CREDENTIALS", "wrong username or password"));
        }
    };
    let principal =
        Principal::User { user: user.clone(), via: "login".into(), session: None, scopes: vec![], project_id: None };
    let origin = RequestOrigin { ip_address: Some(ctx.ip.to_string()), user_agent: None, credential: None };
    audit(
        &state,
        &principal,
        &origin,
        Audit {
            action: "auth.login",
            resource_type: "user",
            resource_id: Some(&user.id),
            project_id: None,
            detail: None,
        },
    )
    .await?;
    start_session(&state, user, &headers).await
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204, description = "Done"), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: BearerCaller,
) -> Result<Response, ApiError> {
    if let Principal::User { session: Some(session), .. } = &caller.principal {
        state.store.delete_session(&session.id_hash).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie("", 0, &headers, state.config.secure_cookies));
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn me(caller: BearerCaller) -> Result<Json<serde_json::Value>, ApiError> {
    match caller.principal {
        Principal::User { user, session, scopes, .. } => {
            let mut v = me_json(user, session.as_ref().map(|s| s.csrf_token.as_str()));
            v["scopes"] = json!(scopes);
            Ok(Json(v))
        }
        Principal::ApiKey { .. } => Err(ApiError::forbidden("API keys have no user")),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePassword {
    current_password: String,
    new_password: String,
}

#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = ChangePassword, responses((status = 204, description = "Done"), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: BearerCaller,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let Principal::User { user, session, .. } = &caller.principal else {
        return Err(ApiError::forbidden("API keys have no password"));
    };
    let b: ChangePassword = parse_json(&body)?;
    if b.new_password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::validation(format!("the new password must be at least {MIN_PASSWORD_CHARS} characters")));
    }
    check_len("new_password", &b.new_password, 1024)?;
    if b.new_password == b.current_password {
        return Err(ApiError::validation("the new password must differ from the current one"));
    }
    let (current, hash) = (b.current_password.clone(), user.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || verify_password(&current, &hash))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if !ok {
        return Err(ApiError::unauthorized("INVALID_CREDENTIALS", "the current password is wrong"));
    }
    let new = b.new_password;
    let new_hash = tokio::task::spawn_blocking(move || hash_password(&new))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let user = state
        .store
        .update_user(&user.id, UserPatch { password: Some((new_hash, false)), ..Default::default() })
        .await?
        .ok_or(ApiError::NotFound { what: "user" })?;
    // Every other session of this user ends with the old password; this one goes on.
    state.store.delete_user_sessions(&user.id).await?;
    if let Some(current) = session {
        state.store.create_session(current).await?;
    }
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "auth.password_change",
            resource_type: "user",
            resource_id: Some(&user.id),
            project_id: None,
            detail: None,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
