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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: Option<String>,
}

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
    Ok((
        StatusCode::CREATED,
        Json(NewApiKeyDto {
            key: key.into(),
            secret,
        }),
    ))
}

pub async fn list(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    caller: BearerCaller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Keys).await?;
    let items: Vec<ApiKeyDto> = state
        .store
        .list_api_keys(&project.id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(json!({ "items": items })))
}

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
