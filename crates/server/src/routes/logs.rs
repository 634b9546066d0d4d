//! Redemption log, audit log and the dashboard overview.

use super::sdk::project_for;
use crate::auth::BearerCaller;
use crate::dto::{AuditDto, PageDto, RedemptionDto, StatisticsDto};
use crate::error::ApiError;
use crate::extract::{check_id, paging, param, query_pairs, ApiPath};
use crate::state::{now, AppState};
use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use codegate_domain::model::{CodeCounts, Scope};
use codegate_storage::{AuditFilter, RedemptionFilter};
use serde_json::{json, Value};

const DAY: i64 = 86_400;
const CHART_DAYS: i64 = 30;
const RECENT: u32 = 10;

#[utoipa::path(get, path = "/api/v1/projects/{pid}/redemptions", tag = "logs", params(("pid" = String, Path, description = "Project id (32 hex)"), ("page" = Option<u32>, Query, minimum = 1), ("page_size" = Option<u32>, Query, minimum = 1, maximum = 100), ("result" = Option<String>, Query), ("code_id" = Option<String>, Query)), responses((status = 200, body = PageDto<RedemptionDto>), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn redemptions(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    uri: Uri,
    caller: BearerCaller,
) -> Result<Json<PageDto<RedemptionDto>>, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Read).await?;
    let q = query_pairs(uri.query());
    let (page, page_size) = paging(&q)?;
    let result = param(&q, "result").map(str::to_owned);
    if result.as_deref().is_some_and(|r| !["success", "failed", "reactivated"].contains(&r)) {
        return Err(ApiError::validation("result must be one of success, failed, reactivated"));
    }
    let code_id = param(&q, "code_id").map(str::to_owned);
    if let Some(c) = &code_id {
        check_id(c, "code").map_err(|_| ApiError::validation("code_id must be 32 hex characters"))?;
    }
    let logs =
        state.store.list_redemptions(&project.id, &RedemptionFilter { result, code_id }, page, page_size).await?;
    Ok(Json(PageDto::new(logs.items.into_iter().map(Into::into).collect(), logs.total, page, page_size)))
}

#[utoipa::path(get, path = "/api/v1/audit-log", tag = "logs", params(("page" = Option<u32>, Query, minimum = 1), ("page_size" = Option<u32>, Query, minimum = 1, maximum = 100), ("actor" = Option<String>, Query), ("action" = Option<String>, Query), ("project_id" = Option<String>, Query)), responses((status = 200, body = PageDto<AuditDto>), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn audit_log(
    State(state): State<AppState>,
    uri: Uri,
    caller: BearerCaller,
) -> Result<Json<PageDto<AuditDto>>, ApiError> {
    caller.principal.require(Scope::Admin, None)?;
    let q = query_pairs(uri.query());
    let (page, page_size) = paging(&q)?;
    let filter = AuditFilter {
        actor: param(&q, "actor").map(str::to_owned),
        action: param(&q, "action").map(str::to_owned),
        project_id: param(&q, "project_id").map(str::to_owned),
    };
    let entries = state.store.list_audit(&filter, page, page_size).await?;
    Ok(Json(PageDto::new(entries.items.into_iter().map(Into::into).collect(), entries.total, page, page_size)))
}

/// 30 days, oldest first, with zero for days without redemptions.
fn chart(days: Vec<(i64, i64)>, today: i64) -> Vec<Value> {
    (0..CHART_DAYS)
        .rev()
        .map(|back| {
            let day = today - back * DAY;
            let count = days.iter().find(|(d, _)| *d == day).map_or(0, |(_, n)| *n);
            json!({"day": format_day(day), "count": count})
        })
        .collect()
}

/// `YYYY-MM-DD` of a UTC day start (civil-from-days, proleptic Gregorian).
fn format_day(day_start: i64) -> String {
    let z = day_start / DAY + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

async fn overview_of(state: &AppState, project_id: Option<&str>, totals: CodeCounts) -> Result<Json<Value>, ApiError> {
    let today = now() / DAY * DAY;
    let days = state.store.redemptions_per_day(project_id, today - (CHART_DAYS - 1) * DAY).await?;
    let recent = state.store.recent_successes(project_id, RECENT).await?;
    Ok(Json(json!({
        "totals": StatisticsDto::from(totals),
        "redemptions_per_day": chart(days, today),
        "recent_redemptions": recent.into_iter().map(|l| json!({
            "project_id": l.project_id, "code": l.code, "verified_at": l.created_at, "verified_by": l.actor,
        })).collect::<Vec<_>>(),
    })))
}

#[utoipa::path(get, path = "/api/v1/overview", tag = "logs", responses((status = 200, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn overview(State(state): State<AppState>, caller: BearerCaller) -> Result<Json<Value>, ApiError> {
    caller.principal.require(Scope::Read, None)?;
    if let Some(pid) = caller.principal.project_restriction() {
        let project = project_for(&state, &caller.principal, pid, Scope::Read).await?;
        let counts = state.store.code_counts(&project, now()).await?;
        return overview_of(&state, Some(&project.id), counts).await;
    }
    let mut totals = CodeCounts::default();
    let now = now();
    for project in state.store.list_projects().await? {
        let c = state.store.code_counts(&project, now).await?;
        totals.total += c.total;
        totals.used += c.used;
        totals.unused += c.unused;
        totals.disabled += c.disabled;
        totals.expired += c.expired;
    }
    let mut v = overview_of(&state, None, totals).await?.0;
    v["projects"] = json!(state.store.list_projects().await?.len());
    Ok(Json(v))
}

#[utoipa::path(get, path = "/api/v1/projects/{pid}/overview", tag = "logs", params(("pid" = String, Path, description = "Project id (32 hex)")), responses((status = 200, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn project_overview(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    caller: BearerCaller,
) -> Result<Json<Value>, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Read).await?;
    let counts = state.store.code_counts(&project, now()).await?;
    overview_of(&state, Some(&project.id), counts).await
}

#[cfg(test)]
mod tests {
    use super::format_day;

    #[test]
    fn days_format_as_utc_dates() {
        assert_eq!(format_day(0), "1970-01-01");
        assert_eq!(format_day(1_767_225_600), "2026-01-01");
        assert_eq!(format_day(951_782_400), "2000-02-29");
    }
}
