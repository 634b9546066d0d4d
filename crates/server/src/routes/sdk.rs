//! The seven SDK endpoints (DESIGN §2), wire-compatible with `codegate-sdk` 0.1.1.
//! They accept signed requests (API keys) and Bearer tokens with the right scope.

use crate::auth::{Caller, Principal};
use crate::dto::{
    CodeDetailDto, CodeDto, CodeListDto, LogDto, ProjectDto, ProjectStatisticsDto, RecentVerificationDto, RedeemDto,
};
use crate::error::ApiError;
use crate::extract::{check_id, check_len, parse_json, query_pairs, ApiPath};
use crate::limits::RedemptionGuard;
use crate::state::{now, AppState};
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use codegate_domain::codes::{has_passed, CodeState};
use codegate_domain::model::{Code, Project, Scope};
use codegate_domain::normalize::normalize_code;
use codegate_storage::{CodeFilter, PageAt, RedeemOutcome, RedeemRequest};
use serde::Deserialize;
use std::sync::Arc;

/// How many log rows a code's detail carries.
const CODE_LOG_LIMIT: u32 = 100;
const RECENT_VERIFICATIONS: u32 = 10;

/// Loads the project a call is about, after checking the caller may act on it.
/// Reads through an API key of a disabled or expired project are refused (401).
pub(crate) async fn project_for(
    state: &AppState,
    principal: &Principal,
    pid: &str,
    scope: Scope,
) -> Result<Arc<Project>, ApiError> {
    principal.require(scope, Some(pid))?;
    check_id(pid, "project")?;
    let project =
        state.lookups.shared_project(state.store.as_ref(), pid).await?.ok_or(ApiError::NotFound { what: "project" })?;
    if principal.is_api_key() && scope == Scope::Read {
        if !project.enabled {
            return Err(ApiError::unauthorized("PROJECT_DISABLED", "the project is disabled"));
        }
        if has_passed(project.expires_at, now()) {
            return Err(ApiError::unauthorized("PROJECT_EXPIRED", "the project has expired"));
        }
    }
    Ok(project)
}

#[utoipa::path(get, path = "/api/v1/projects/{pid}", tag = "sdk", params(("pid" = String, Path, description = "Project id (32 hex)")), responses((status = 200, body = ProjectDto), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("hmac" = [])))]
pub async fn get_project(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    caller: Caller,
) -> Result<Json<ProjectDto>, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Read).await?;
    let counts = state.store.code_counts(&project, now()).await?;
    Ok(Json(ProjectDto::new(Project::clone(&project), Some(counts))))
}

#[utoipa::path(get, path = "/api/v1/projects/{pid}/statistics", tag = "sdk", params(("pid" = String, Path, description = "Project id (32 hex)")), responses((status = 200, body = ProjectStatisticsDto), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("hmac" = [])))]
pub async fn statistics(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    caller: Caller,
) -> Result<Json<ProjectStatisticsDto>, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Read).await?;
    let counts = state.store.code_counts(&project, now()).await?;
    let recent = state.store.recent_successes(Some(&project.id), RECENT_VERIFICATIONS).await?;
    let usage_rate =
        if counts.total == 0 { 0.0 } else { (counts.used as f64 / counts.total as f64 * 10_000.0).round() / 10_000.0 };
    Ok(Json(ProjectStatisticsDto {
        project_id: project.id.clone(),
        counts: counts.into(),
        usage_rate,
        recent_verifications: recent
            .into_iter()
            .map(|l| RecentVerificationDto { code: l.code, verified_at: l.created_at, verified_by: l.actor })
            .collect(),
    }))
}

/// Listing parameters after validation.
pub(crate) struct ListQuery {
    pub page: u32,
    pub page_size: u32,
    pub filter: CodeFilter,
    pub cursor: Option<i64>,
}

pub(crate) fn parse_list_query(query: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery { page: 1, page_size: 20, filter: CodeFilter::default(), cursor: None };
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "page" => {
                q.page = value
                    .parse()
                    .ok()
                    .filter(|p| (1..=10_000_000).contains(p))
                    .ok_or_else(|| ApiError::validation("page must be an integer from 1 to 10000000"))?
            }
            "page_size" => {
                q.page_size = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=100).contains(s))
                    .ok_or_else(|| ApiError::validation("page_size must be an integer from 1 to 100"))?
            }
            "status" if !value.is_empty() => {
                q.filter.state = Some(
                    CodeState::parse(&value)
                        .ok_or_else(|| ApiError::validation("status must be one of unused, used, disabled, expired"))?,
                )
            }
            "search" if !value.is_empty() => {
                check_len("search", &value, 100)?;
                q.filter.search = Some(value);
            }
            "batch_id" if !value.is_empty() => {
                check_id(&value, "batch").map_err(|_| ApiError::validation("batch_id must be 32 hex characters"))?;
                q.filter.batch_id = Some(value);
            }
            "cursor" if !value.is_empty() => q.cursor = Some(decode_cursor(&value)?),
            _ => {}
        }
    }
    Ok(q)
}

fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("s{seq}"))
}

fn decode_cursor(s: &str) -> Result<i64, ApiError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.strip_prefix('s').and_then(|n| n.parse().ok()))
        .ok_or_else(|| ApiError::validation("cursor is not one this server issued"))
}

#[utoipa::path(get, path = "/api/v1/projects/{pid}/codes", tag = "sdk", params(("pid" = String, Path, description = "Project id (32 hex)"), ("page" = Option<u32>, Query, minimum = 1), ("page_size" = Option<u32>, Query, minimum = 1, maximum = 100), ("status" = Option<String>, Query, description = "unused, used, disabled or expired"), ("search" = Option<String>, Query), ("batch_id" = Option<String>, Query), ("cursor" = Option<String>, Query)), responses((status = 200, body = CodeListDto), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("hmac" = [])))]
pub async fn list_codes(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    uri: Uri,
    caller: Caller,
) -> Result<Json<CodeListDto>, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Read).await?;
    let q = parse_list_query(uri.query())?;
    let at = q.cursor.map_or(PageAt::Number(q.page), PageAt::After);
    let now = now();
    let page = state.store.list_codes(&project, &q.filter, at, q.page_size, now).await?;
    let total_pages = (page.total + i64::from(q.page_size) - 1) / i64::from(q.page_size);
    Ok(Json(CodeListDto {
        items: page.items.into_iter().map(|c| CodeDto::new(c, project.expires_at, now)).collect(),
        total: page.total,
        page: q.page,
        page_size: q.page_size,
        total_pages,
        next_cursor: page.next.map(encode_cursor),
    }))
}

async fn code_detail(state: &AppState, project: &Project, code: Code) -> Result<Json<CodeDetailDto>, ApiError> {
    let logs = state.store.code_redemptions(&code.id, CODE_LOG_LIMIT).await?;
    Ok(Json(CodeDetailDto {
        code: CodeDto::new(code, project.expires_at, now()),
        verification_logs: logs.into_iter().map(LogDto::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/projects/{pid}/codes/{code_id}", tag = "sdk", params(("pid" = String, Path, description = "Project id (32 hex)"), ("code_id" = String, Path, description = "Code id (32 hex)")), responses((status = 200, body = CodeDetailDto), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("hmac" = [])))]
pub async fn get_code(
    State(state): State<AppState>,
    ApiPath((pid, code_id)): ApiPath<(String, String)>,
    caller: Caller,
) -> Result<Json<CodeDetailDto>, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Read).await?;
    check_id(&code_id, "code")?;
    let code = state.store.get_code(&project.id, &code_id).await?.ok_or(ApiError::NotFound { what: "code" })?;
    code_detail(&state, &project, code).await
}

#[utoipa::path(get, path = "/api/v1/projects/{pid}/codes/by-code/{code}", tag = "sdk", params(("pid" = String, Path, description = "Project id (32 hex)"), ("code" = String, Path, description = "The code, percent-encoded")), responses((status = 200, body = CodeDetailDto), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("hmac" = [])))]
pub async fn get_code_by_code(
    State(state): State<AppState>,
    ApiPath((pid, code)): ApiPath<(String, String)>,
    caller: Caller,
) -> Result<Json<CodeDetailDto>, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Read).await?;
    check_len("code", &code, 255)?;
    let norm = normalize_code(&code, project.rules.normalize);
    let code = state.store.find_code(&project.id, &norm).await?.ok_or(ApiError::NotFound { what: "code" })?;
    code_detail(&state, &project, code).await
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct VerifyBody {
    code: String,
    verified_by: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct ReactivateBody {
    code: String,
    reactivated_by: Option<String>,
    reason: Option<String>,
}

fn check_code_input(code: &str) -> Result<(), ApiError> {
    if code.trim().is_empty() {
        return Err(ApiError::validation("code must not be empty"));
    }
    check_len("code", code, 255)
}

/// Which way a redemption goes.
#[derive(Clone, Copy, PartialEq)]
enum Redemption {
    Verify,
    Reactivate,
}

async fn redeem(state: &AppState, pid: &str, caller: Caller, kind: Redemption) -> Result<Json<RedeemDto>, ApiError> {
    let project = project_for(state, &caller.principal, pid, Scope::Verify).await?;
    let (code, actor, reason) = match kind {
        Redemption::Verify => {
            let b: VerifyBody = parse_json(&caller.body)?;
            (b.code, b.verified_by, None)
        }
        Redemption::Reactivate => {
            let b: ReactivateBody = parse_json(&caller.body)?;
            (b.code, b.reactivated_by, b.reason)
        }
    };
    check_code_input(&code)?;
    if let Some(a) = &actor {
        check_len(if kind == Redemption::Verify { "verified_by" } else { "reactivated_by" }, a, 255)?;
    }
    if let Some(r) = &reason {
        check_len("reason", r, 1000)?;
    }
    let request = RedeemRequest {
        project_id: project.id.clone(),
        quota: (kind == Redemption::Verify).then(|| project.quotas.redemption_window()).flatten(),
        code_norm: normalize_code(&code, project.rules.normalize),
        code,
        actor,
        reason,
        origin: caller.origin,
        now: now(),
    };
    let (at, input_code) = (request.now, request.code.clone());
    let outcome = match kind {
        Redemption::Verify => state.store.redeem(request).await?,
        Redemption::Reactivate => state.store.reactivate(request).await?,
    };
    crate::metrics::redemption(kind == Redemption::Verify, &outcome);
    let (success, code, failure) = match outcome {
        RedeemOutcome::Success(c) => (true, Some(c), None),
        RedeemOutcome::Failure(f, c) => (false, c, Some(f)),
        RedeemOutcome::QuotaExhausted => {
            return Err(ApiError::QuotaExhausted {
                detail: "the project's redemption quota for this period is used up".into(),
            })
        }
    };
    let when = success.then_some(at);
    // The code's fields move into the answer (no copies of its metadata).
    let (code_id, code, metadata, use_count, max_uses) = match code {
        Some(c) => (Some(c.id), c.code, c.metadata.filter(|_| success), Some(c.use_count), Some(c.max_uses)),
        None => (None, input_code, None, None, None),
    };
    Ok(Json(RedeemDto {
        success,
        code_id,
        code,
        verified_at: (kind == Redemption::Verify).then_some(when),
        reactivated_at: (kind == Redemption::Reactivate).then_some(when),
        message: match (failure, kind) {
            (Some(f), _) => f.message(),
            (None, Redemption::Verify) => "Code verified successfully",
            (None, Redemption::Reactivate) => "Code reactivated successfully",
        },
        error_code: failure.map(|f| f.error_code()),
        metadata,
        use_count,
        max_uses,
    }))
}

/// Redemptions run under the guessing defence and the `Idempotency-Key` (see `limits::RedemptionGuard`).
#[utoipa::path(post, path = "/api/v1/projects/{pid}/codes/verify", tag = "sdk", params(("pid" = String, Path, description = "Project id (32 hex)"), ("Idempotency-Key" = Option<String>, Header)), request_body = VerifyBody, responses((status = 200, body = RedeemDto), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("hmac" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    guard: RedemptionGuard,
    caller: Caller,
) -> Response {
    guard.run(&state, caller, |caller| redeem(&state, &pid, caller, Redemption::Verify)).await
}

#[utoipa::path(post, path = "/api/v1/projects/{pid}/codes/reactivate", tag = "sdk", params(("pid" = String, Path, description = "Project id (32 hex)"), ("Idempotency-Key" = Option<String>, Header)), request_body = ReactivateBody, responses((status = 200, body = RedeemDto), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("hmac" = [])))]
pub async fn reactivate(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    guard: RedemptionGuard,
    caller: Caller,
) -> Response {
    guard.run(&state, caller, |caller| redeem(&state, &pid, caller, Redemption::Reactivate)).await
}
