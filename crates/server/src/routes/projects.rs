//! Project management (Bearer tokens).

use super::sdk::project_for;
use super::{audit, Audit};
use crate::auth::BearerCaller;
use crate::dto::ProjectDto;
use crate::error::ApiError;
use crate::extract::{check_len, nullable, parse_json, ApiPath, Body};
use crate::state::{now, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use codegate_domain::ids::new_id;
use codegate_domain::model::{CodeRules, Project, Quotas, Scope};
use codegate_storage::ProjectPatch;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateProject {
    name: String,
    #[serde(default)]
    description: String,
    expires_at: Option<i64>,
    #[serde(default = "enabled")]
    status: bool,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    rules: Option<CodeRules>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    quotas: Option<Quotas>,
}

fn enabled() -> bool {
    true
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateProject {
    name: Option<String>,
    description: Option<String>,
    status: Option<bool>,
    #[schema(value_type = Option<i64>)]
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<i64>>,
    #[schema(value_type = Option<Object>)]
    rules: Option<CodeRules>,
    #[schema(value_type = Option<Object>)]
    quotas: Option<Quotas>,
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::validation("name must not be empty"));
    }
    check_len("name", name, 100)?;
    Ok(name.to_owned())
}

fn check_quotas(q: Quotas) -> Result<Quotas, ApiError> {
    let positive = |v: Option<i64>| v.is_none_or(|n| n > 0);
    if !(positive(q.max_codes) && positive(q.max_redemptions) && positive(q.redemption_period_secs)) {
        return Err(ApiError::validation("quotas must be positive numbers (or null for no limit)"));
    }
    Ok(q)
}

fn check_rules(rules: &CodeRules) -> Result<(), ApiError> {
    codegate_domain::generation::Pattern::new(&super::codes::pattern_spec(rules, &Default::default()))
        .map(|_| ())
        .map_err(|e| ApiError::validation(format!("rules: {e}")))
}

#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = CreateProject, responses((status = 201, body = ProjectDto), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: BearerCaller,
    Body(body): Body,
) -> Result<(StatusCode, Json<ProjectDto>), ApiError> {
    caller.principal.require(Scope::Write, None)?;
    let b: CreateProject = parse_json(&body)?;
    let name = check_name(&b.name)?;
    check_len("description", &b.description, 1000)?;
    let rules = b.rules.unwrap_or_default();
    check_rules(&rules)?;
    let now = now();
    let project = Project {
        id: new_id(),
        name,
        description: b.description,
        enabled: b.status,
        expires_at: b.expires_at,
        created_at: now,
        updated_at: now,
        rules,
        quotas: check_quotas(b.quotas.unwrap_or_default())?,
    };
    state.store.create_project(&project).await?;
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "project.create",
            resource_type: "project",
            resource_id: Some(&project.id),
            project_id: Some(&project.id),
            detail: Some(json!({"name": project.name})),
        },
    )
    .await?;
    let counts = Default::default();
    Ok((StatusCode::CREATED, Json(ProjectDto::new(project, Some(counts)))))
}

#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", responses((status = 200, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, caller: BearerCaller) -> Result<Json<serde_json::Value>, ApiError> {
    caller.principal.require(Scope::Read, None)?;
    let restriction = caller.principal.project_restriction().map(str::to_owned);
    let now = now();
    let mut items = Vec::new();
    for project in state.store.list_projects().await? {
        if restriction.as_ref().is_some_and(|r| *r != project.id) {
            continue;
        }
        let counts = state.store.code_counts(&project, now).await?;
        items.push(ProjectDto::new(project, Some(counts)));
    }
    Ok(Json(json!({ "items": items, "total": items.len() })))
}

#[utoipa::path(patch, path = "/api/v1/projects/{pid}", tag = "projects", params(("pid" = String, Path, description = "Project id (32 hex)")), request_body = UpdateProject, responses((status = 200, body = ProjectDto), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    caller: BearerCaller,
    Body(body): Body,
) -> Result<Json<ProjectDto>, ApiError> {
    project_for(&state, &caller.principal, &pid, Scope::Write).await?;
    let b: UpdateProject = parse_json(&body)?;
    let name = b.name.as_deref().map(check_name).transpose()?;
    if let Some(d) = &b.description {
        check_len("description", d, 1000)?;
    }
    if let Some(r) = &b.rules {
        check_rules(r)?;
    }
    let patch = ProjectPatch {
        name,
        description: b.description,
        enabled: b.status,
        expires_at: b.expires_at,
        rules: b.rules,
        quotas: b.quotas.map(check_quotas).transpose()?,
    };
    let now = now();
    let project = state.store.update_project(&pid, patch, now).await?.ok_or(ApiError::NotFound { what: "project" })?;
    state.lookups.forget_project(&project.id);
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "project.update",
            resource_type: "project",
            resource_id: Some(&project.id),
            project_id: Some(&project.id),
            detail: Some(json!({"status": project.enabled, "expires_at": project.expires_at})),
        },
    )
    .await?;
    let counts = state.store.code_counts(&project, now).await?;
    Ok(Json(ProjectDto::new(project, Some(counts))))
}

#[utoipa::path(delete, path = "/api/v1/projects/{pid}", tag = "projects", params(("pid" = String, Path, description = "Project id (32 hex)")), responses((status = 204, description = "Done"), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    caller: BearerCaller,
) -> Result<StatusCode, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Write).await?;
    state.store.delete_project(&project.id).await?;
    state.lookups.forget_project(&project.id);
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "project.delete",
            resource_type: "project",
            resource_id: Some(&project.id),
            project_id: Some(&project.id),
            detail: Some(json!({"name": project.name})),
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
