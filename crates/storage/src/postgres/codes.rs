use super::projects::counts;
use super::rows::{self, json_text, like_pattern, BATCH_SUMMARY_COLUMNS, CODE_COLUMNS, REDEMPTION_COLUMNS};
use super::{map_err, with_retries, PgStore};
use crate::error::{StoreError, StoreResult};
use crate::{
    Batch, BatchSummary, BulkAction, CodeFilter, CodePage, CodePatch, CodeSelection, CodeStore, InsertReport, LogPage,
    NewCode, PageAt, RedeemOutcome, RedeemRequest, RedemptionFilter, RedemptionStore,
};
use async_trait::async_trait;
use codegate_domain::codes::{check_reactivate, check_verify, CodeFacts, CodeState, ProjectFacts, RedeemFailure};
use codegate_domain::ids::new_id;
use codegate_domain::model::{Code, Project, RedemptionAction, RedemptionLog};
use codegate_domain::normalize::normalize_code;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};
use std::collections::HashSet;

type Check = fn(Option<&CodeFacts>, &ProjectFacts, i64) -> Result<(), RedeemFailure>;

/// PostgreSQL text cannot hold NUL, so no stored code contains one: a lookup
/// with it finds nothing (SQLite would simply not match either).
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// Free text kept in logs (actor, user agent, reason): NUL becomes U+FFFD
/// instead of failing the whole redemption.
fn log_text(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|t| if has_nul(t) { t.replace('\0', "\u{FFFD}") } else { t.clone() })
}

/// Rows per INSERT statement when adding codes.
const INSERT_CHUNK: usize = 5_000;

/// Appends "this code is in state S" (same rules as the domain's `CodeFacts::state`).
fn push_state(qb: &mut QueryBuilder<'_, Postgres>, state: CodeState, now: i64, project_expiry: Option<i64>) {
    match state {
        CodeState::Disabled => {
            qb.push("disabled");
        }
        CodeState::Used => {
            qb.push("NOT disabled AND use_count >= max_uses");
        }
        CodeState::Expired => {
            qb.push("NOT disabled AND use_count < max_uses AND COALESCE(expires_at, ")
                .push_bind(project_expiry)
                .push(") <= ")
                .push_bind(now);
        }
        CodeState::Unused => {
            qb.push("NOT disabled AND use_count < max_uses AND (COALESCE(expires_at, ")
                .push_bind(project_expiry)
                .push(") IS NULL OR COALESCE(expires_at, ")
                .push_bind(project_expiry)
                .push(") > ")
                .push_bind(now)
                .push(")");
        }
    }
}

/// Appends the WHERE conditions of a filter over one project's codes.
fn push_filter(qb: &mut QueryBuilder<'_, Postgres>, project: &Project, filter: &CodeFilter, now: i64) {
    qb.push("project_id = ").push_bind(project.id.clone());
    if let Some(state) = filter.state {
        qb.push(" AND ");
        push_state(qb, state, now, project.expires_at);
    }
    if filter.search.as_deref().is_some_and(has_nul) {
        qb.push(" AND FALSE");
    } else if let Some(s) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        qb.push(" AND (code LIKE ")
            .push_bind(like_pattern(s))
            .push(" ESCAPE '\\' OR code_norm LIKE ")
            .push_bind(like_pattern(&normalize_code(s, project.rules.normalize)))
            .push(" ESCAPE '\\')");
    }
    if let Some(batch) = &filter.batch_id {
        qb.push(" AND batch_id = ").push_bind(batch.clone());
    }
}

async fn load_code(c: &mut PgConnection, project_id: &str, code_id: &str) -> sqlx::Result<Option<Code>> {
    sqlx::query(&format!("SELECT {CODE_COLUMNS} FROM codes WHERE id = $1 AND project_id = $2"))
        .bind(code_id)
        .bind(project_id)
        .try_map(|r| rows::code(&r))
        .fetch_optional(c)
        .await
}

async fn find_by_norm(c: &mut PgConnection, project_id: &str, norm: &str) -> sqlx::Result<Option<Code>> {
    if has_nul(norm) {
        return Ok(None);
    }
    sqlx::query(&format!("SELECT {CODE_COLUMNS} FROM codes WHERE project_id = $1 AND code_norm = $2"))
        .bind(project_id)
        .bind(norm)
        .try_map(|r| rows::code(&r))
        .fetch_optional(c)
        .await
}

async fn project_facts(c: &mut PgConnection, project_id: &str) -> sqlx::Result<Option<ProjectFacts>> {
    sqlx::query("SELECT enabled, expires_at FROM projects WHERE id = $1")
        .bind(project_id)
        .try_map(|r: sqlx::postgres::PgRow| Ok(ProjectFacts { enabled: r.try_get(0)?, expires_at: r.try_get(1)? }))
        .fetch_optional(c)
        .await
}

async fn log_attempt(
    c: &mut PgConnection,
    req: &RedeemRequest,
    code: &Code,
    action: RedemptionAction,
    result: &str,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO redemptions (id, project_id, code_id, code, action, result, reason, actor, ip_address, user_agent, credential, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(new_id())
    .bind(&code.project_id)
    .bind(&code.id)
    .bind(&code.code)
    .bind(action.as_str())
    .bind(result)
    .bind(log_text(&reason.map(str::to_owned)))
    .bind(log_text(&req.actor))
    .bind(log_text(&req.origin.ip_address))
    .bind(log_text(&req.origin.user_agent))
    .bind(log_text(&req.origin.credential))
    .bind(req.now)
    .execute(c)
    .await?;
    Ok(())
}

/// Why a conditional update matched no row, in the documented check order.
/// `None` when the code is redeemable by now (a concurrent change landed in
/// between): the caller runs the whole attempt again.
async fn explain_failure(
    c: &mut PgConnection,
    req: &RedeemRequest,
    action: RedemptionAction,
    check: Check,
) -> sqlx::Result<Option<RedeemOutcome>> {
    let code = find_by_norm(c, &req.project_id, &req.code_norm).await?;
    let Some(project) = project_facts(c, &req.project_id).await? else {
        return Ok(Some(RedeemOutcome::Failure(RedeemFailure::CodeNotFound, None)));
    };
    let failure = match check(code.as_ref().map(Code::facts).as_ref(), &project, req.now) {
        Err(f) => f,
        Ok(()) => return Ok(None),
    };
    if let Some(code) = &code {
        log_attempt(c, req, code, action, "failed", Some(failure.error_code())).await?;
    }
    Ok(Some(RedeemOutcome::Failure(failure, code)))
}

/// The project is open and the code's effective expiry has not passed ($3 is now).
const REDEEMABLE_NOW: &str = "EXISTS (SELECT 1 FROM projects p WHERE p.id = codes.project_id AND p.enabled
       AND (p.expires_at IS NULL OR p.expires_at > $3)
       AND (COALESCE(codes.expires_at, p.expires_at) IS NULL OR COALESCE(codes.expires_at, p.expires_at) > $3))";

/// Advisory-lock class for per-project quota counting (the second key is the project's hash).
const QUOTA_LOCK_CLASS: i32 = 0x6367_7175; // "cgqu"

/// A redemption without a quota: the conditional update and its log row in
/// one statement, which is its own transaction: one round trip instead of
/// four (BEGIN, UPDATE, INSERT, COMMIT). Its answer (ReadyForQuery) arrives
/// after the commit, so a success is still reported only once durable.
async fn redeem_unlimited(pool: &PgPool, req: &RedeemRequest) -> sqlx::Result<Option<RedeemOutcome>> {
    let sql = format!(
        "WITH redeemed AS (
             UPDATE codes SET use_count = use_count + 1, verified_at = $3, verified_by = $4
              WHERE project_id = $1 AND code_norm = $2 AND NOT disabled AND use_count < max_uses AND {REDEEMABLE_NOW}
              RETURNING {CODE_COLUMNS}),
         logged AS (
             INSERT INTO redemptions (id, project_id, code_id, code, action, result, actor, ip_address, user_agent, credential, created_at)
             SELECT $5, project_id, id, code, $6, 'success', $4, $7, $8, $9, $3 FROM redeemed)
         SELECT {CODE_COLUMNS} FROM redeemed"
    );
    let mut c = pool.acquire().await?;
    let updated = sqlx::query(&sql)
        .bind(&req.project_id)
        .bind(&req.code_norm)
        .bind(req.now)
        .bind(log_text(&req.actor))
        .bind(new_id())
        .bind(RedemptionAction::Verify.as_str())
        .bind(log_text(&req.origin.ip_address))
        .bind(log_text(&req.origin.user_agent))
        .bind(log_text(&req.origin.credential))
        .try_map(|r| rows::code(&r))
        .fetch_optional(&mut *c)
        .await?;
    match updated {
        Some(code) => Ok(Some(RedeemOutcome::Success(code))),
        // Nothing was changed: the explanation and its log row need no transaction of their own.
        None => explain_failure(&mut c, req, RedemptionAction::Verify, check_verify).await,
    }
}

async fn redeem_once(pool: &PgPool, req: &RedeemRequest) -> sqlx::Result<Option<RedeemOutcome>> {
    if has_nul(&req.code_norm) {
        return Ok(Some(RedeemOutcome::Failure(RedeemFailure::CodeNotFound, None)));
    }
    if req.quota.is_none() {
        return redeem_unlimited(pool, req).await;
    }
    let mut tx = pool.begin().await?;
    if let Some((max, period)) = req.quota {
        // Redemptions of this project queue here until the holder commits, so
        // the count below sees every success before ours: no overshoot.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(QUOTA_LOCK_CLASS)
            .bind(&req.project_id)
            .execute(&mut *tx)
            .await?;
        let used: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM redemptions WHERE project_id = $1 AND result = 'success' AND created_at > $2",
        )
        .bind(&req.project_id)
        .bind(req.now - period)
        .fetch_one(&mut *tx)
        .await?;
        if used >= max {
            return Ok(Some(RedeemOutcome::QuotaExhausted));
        }
    }
    // One conditional update: exactly-once whatever else is in flight, on any replica.
    let sql = format!(
        "UPDATE codes SET use_count = use_count + 1, verified_at = $3, verified_by = $4
          WHERE project_id = $1 AND code_norm = $2 AND NOT disabled AND use_count < max_uses AND {REDEEMABLE_NOW}
          RETURNING {CODE_COLUMNS}"
    );
    let updated = sqlx::query(&sql)
        .bind(&req.project_id)
        .bind(&req.code_norm)
        .bind(req.now)
        .bind(log_text(&req.actor))
        .try_map(|r| rows::code(&r))
        .fetch_optional(&mut *tx)
        .await?;
    let outcome = match updated {
        Some(code) => {
            log_attempt(&mut tx, req, &code, RedemptionAction::Verify, "success", None).await?;
            Some(RedeemOutcome::Success(code))
        }
        None => explain_failure(&mut tx, req, RedemptionAction::Verify, check_verify).await?,
    };
    if outcome.is_some() {
        // Success is reported only once this returns: the commit is durable.
        tx.commit().await?;
    }
    Ok(outcome)
}

async fn reactivate_once(pool: &PgPool, req: &RedeemRequest) -> sqlx::Result<Option<RedeemOutcome>> {
    if has_nul(&req.code_norm) {
        return Ok(Some(RedeemOutcome::Failure(RedeemFailure::CodeNotFound, None)));
    }
    let mut tx = pool.begin().await?;
    let sql = format!(
        "UPDATE codes SET use_count = use_count - 1,
                verified_at = CASE WHEN use_count > 1 THEN verified_at END,
                verified_by = CASE WHEN use_count > 1 THEN verified_by END
          WHERE project_id = $1 AND code_norm = $2 AND NOT disabled AND use_count > 0 AND {REDEEMABLE_NOW}
          RETURNING {CODE_COLUMNS}"
    );
    let updated = sqlx::query(&sql)
        .bind(&req.project_id)
        .bind(&req.code_norm)
        .bind(req.now)
        .try_map(|r| rows::code(&r))
        .fetch_optional(&mut *tx)
        .await?;
    let outcome = match updated {
        Some(code) => {
            log_attempt(&mut tx, req, &code, RedemptionAction::Reactivate, "reactivated", req.reason.as_deref())
                .await?;
            Some(RedeemOutcome::Success(code))
        }
        None => explain_failure(&mut tx, req, RedemptionAction::Reactivate, check_reactivate).await?,
    };
    if outcome.is_some() {
        tx.commit().await?;
    }
    Ok(outcome)
}

/// Runs a redeem/reactivate attempt until it reaches an outcome (a handful of tries).
async fn settle<F, Fut>(mut attempt: F) -> StoreResult<RedeemOutcome>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = sqlx::Result<Option<RedeemOutcome>>>,
{
    for _ in 0..5 {
        if let Some(outcome) = with_retries(&mut attempt).await.map_err(map_err)? {
            return Ok(outcome);
        }
    }
    Err(StoreError::Unavailable("the code kept changing under concurrent requests; retry".into()))
}

/// Codes matching `filter` from a position (a page offset or after a seq),
/// newest first, with their seq. `numbering` is the project's total and next
/// position read together, when the caller has them (unfiltered lists).
async fn select_codes(
    c: &mut PgConnection,
    project: &Project,
    filter: &CodeFilter,
    at: PageAt,
    limit: u32,
    now: i64,
    numbering: Option<(i64, i64)>,
) -> sqlx::Result<Vec<(i64, Code)>> {
    if let (PageAt::Number(page), true, Some((total, next_position))) = (at, filter.is_empty(), numbering) {
        let offset = i64::from(page.saturating_sub(1)) * i64::from(limit);
        if let Some(rows) = page_by_position(c, &project.id, total, next_position, offset, limit).await? {
            return Ok(rows);
        }
    }
    let mut qb = QueryBuilder::new(format!("SELECT {CODE_COLUMNS} FROM codes WHERE "));
    push_filter(&mut qb, project, filter, now);
    let offset = match at {
        PageAt::Number(page) => i64::from(page.saturating_sub(1)) * i64::from(limit),
        PageAt::After(seq) => {
            qb.push(" AND seq < ").push_bind(seq);
            0
        }
    };
    qb.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(limit)).push(" OFFSET ").push_bind(offset);
    qb.build().try_map(|r| rows::code_with_seq(&r)).fetch_all(c).await
}

/// Page of the unfiltered list by an index seek on positions, when they are
/// dense (no code of the project was ever deleted); `None` means walk instead.
/// `total` and `next_position` must come from one snapshot (see `counts`).
async fn page_by_position(
    c: &mut PgConnection,
    project_id: &str,
    total: i64,
    next_position: i64,
    offset: i64,
    limit: u32,
) -> sqlx::Result<Option<Vec<(i64, Code)>>> {
    if total != next_position - 1 {
        return Ok(None);
    }
    let newest_wanted = next_position - 1 - offset;
    let rows = sqlx::query(&format!(
        "SELECT {CODE_COLUMNS} FROM codes WHERE project_id = $1 AND position <= $2 ORDER BY position DESC LIMIT $3"
    ))
    .bind(project_id)
    .bind(newest_wanted)
    .bind(i64::from(limit))
    .try_map(|r| rows::code_with_seq(&r))
    .fetch_all(c)
    .await?;
    Ok(Some(rows))
}

async fn list_in(
    c: &mut PgConnection,
    project: &Project,
    filter: &CodeFilter,
    at: PageAt,
    page_size: u32,
    now: i64,
) -> sqlx::Result<CodePage> {
    let mut numbering = None;
    let total = if filter.search.is_none() && filter.batch_id.is_none() {
        let (n, next_position) = counts(c, &project.id, project.expires_at, now).await?;
        numbering = Some((n.total, next_position));
        match filter.state {
            None => n.total,
            Some(CodeState::Unused) => n.unused,
            Some(CodeState::Used) => n.used,
            Some(CodeState::Disabled) => n.disabled,
            Some(CodeState::Expired) => n.expired,
        }
    } else {
        let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM codes WHERE ");
        push_filter(&mut qb, project, filter, now);
        qb.build_query_scalar::<i64>().fetch_one(&mut *c).await?
    };
    let rows = select_codes(c, project, filter, at, page_size, now, numbering).await?;
    let next = (rows.len() == page_size as usize).then(|| rows.last().map(|r| r.0)).flatten();
    Ok(CodePage { items: rows.into_iter().map(|r| r.1).collect(), total, next })
}

async fn bulk_in(
    pool: &PgPool,
    project: &Project,
    selection: &CodeSelection,
    action: BulkAction,
    now: i64,
) -> sqlx::Result<u64> {
    let change = match action {
        BulkAction::Disable => "UPDATE codes SET disabled = TRUE WHERE NOT disabled AND ",
        BulkAction::Enable => "UPDATE codes SET disabled = FALSE WHERE disabled AND ",
        BulkAction::Delete => "DELETE FROM codes WHERE ",
    };
    let mut qb = QueryBuilder::new(change);
    match selection {
        CodeSelection::Filter(filter) => push_filter(&mut qb, project, filter, now),
        CodeSelection::Ids(ids) => {
            qb.push("project_id = ")
                .push_bind(project.id.clone())
                .push(" AND id = ANY(")
                .push_bind(ids.clone())
                .push(")");
        }
    }
    Ok(qb.build().execute(pool).await?.rows_affected())
}

async fn insert_in(
    pool: &PgPool,
    project_id: &str,
    batch_id: Option<&str>,
    codes: &[NewCode],
    now: i64,
) -> sqlx::Result<InsertReport> {
    let mut tx = pool.begin().await?;
    let mut report = InsertReport::default();
    // The project first (as the foreign key's check would), then its numbering: a
    // project deleted meanwhile (project, then numbering by cascade) waits for
    // this batch instead of deadlocking with it.
    sqlx::query("SELECT 1 FROM projects WHERE id = $1 FOR KEY SHARE").bind(project_id).execute(&mut *tx).await?;
    // Locks the numbering until commit: batches of one project number in turn.
    let mut next_position: i64 = sqlx::query_scalar(
        "INSERT INTO code_positions AS cp (project_id, next_position) VALUES ($1, 1)
         ON CONFLICT (project_id) DO UPDATE SET next_position = cp.next_position
         RETURNING next_position",
    )
    .bind(project_id)
    .fetch_one(&mut *tx)
    .await?;
    for (chunk_no, chunk) in codes.chunks(INSERT_CHUNK).enumerate() {
        // Rows go in offered order; a row whose code (or id) exists, also
        // earlier in this very list, is skipped and reported. Row k of the
        // chunk takes position next_position + k - 1.
        let inserted: HashSet<String> = sqlx::query_scalar(
            "INSERT INTO codes (id, project_id, code, code_norm, disabled, expires_at, max_uses, use_count,
                                verified_at, verified_by, batch_id, metadata, created_at, position)
             SELECT u.id, $1, u.code, u.code_norm, u.disabled, u.expires_at, u.max_uses, u.use_count,
                    u.verified_at, u.verified_by, $2, u.metadata, $3, $14 + u.ord - 1
               FROM UNNEST($4::TEXT[], $5::TEXT[], $6::TEXT[], $7::BOOLEAN[], $8::BIGINT[], $9::BIGINT[],
                           $10::BIGINT[], $11::BIGINT[], $12::TEXT[], $13::TEXT[])
                    WITH ORDINALITY AS u(id, code, code_norm, disabled, expires_at, max_uses, use_count,
                                         verified_at, verified_by, metadata, ord)
              ORDER BY u.ord
             ON CONFLICT DO NOTHING
             RETURNING id",
        )
        .bind(project_id)
        .bind(batch_id)
        .bind(now)
        .bind(chunk.iter().map(|n| n.id.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|n| n.code.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|n| n.code_norm.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|n| n.disabled).collect::<Vec<_>>())
        .bind(chunk.iter().map(|n| n.expires_at).collect::<Vec<_>>())
        .bind(chunk.iter().map(|n| n.max_uses).collect::<Vec<_>>())
        .bind(chunk.iter().map(|n| n.use_count).collect::<Vec<_>>())
        .bind(chunk.iter().map(|n| n.verified_at).collect::<Vec<_>>())
        .bind(chunk.iter().map(|n| n.verified_by.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|n| json_text(&n.metadata)).collect::<Vec<_>>())
        .bind(next_position)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let mut kept = Vec::with_capacity(inserted.len());
        for (i, n) in chunk.iter().enumerate() {
            if inserted.contains(&n.id) {
                kept.push(n.id.clone());
            } else {
                report.duplicates.push(chunk_no * INSERT_CHUNK + i);
            }
        }
        if kept.len() < chunk.len() && !kept.is_empty() {
            // Skipped rows left holes: number the kept ones again, densely.
            let positions: Vec<i64> = (next_position..).take(kept.len()).collect();
            sqlx::query(
                "UPDATE codes SET position = v.position
                   FROM UNNEST($1::TEXT[], $2::BIGINT[]) AS v(id, position) WHERE codes.id = v.id",
            )
            .bind(&kept)
            .bind(&positions)
            .execute(&mut *tx)
            .await?;
        }
        report.inserted += kept.len() as u64;
        next_position += kept.len() as i64;
    }
    sqlx::query("UPDATE code_positions SET next_position = $2 WHERE project_id = $1")
        .bind(project_id)
        .bind(next_position)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(report)
}

async fn update_code_in(
    pool: &PgPool,
    project_id: &str,
    code_id: &str,
    patch: CodePatch,
) -> sqlx::Result<Option<Code>> {
    let mut tx = pool.begin().await?;
    let sql = format!("SELECT {CODE_COLUMNS} FROM codes WHERE id = $1 AND project_id = $2 FOR UPDATE");
    let Some(mut code) =
        sqlx::query(&sql).bind(code_id).bind(project_id).try_map(|r| rows::code(&r)).fetch_optional(&mut *tx).await?
    else {
        return Ok(None);
    };
    patch.apply_to(&mut code);
    sqlx::query("UPDATE codes SET disabled = $2, expires_at = $3, metadata = $4 WHERE id = $1")
        .bind(&code.id)
        .bind(code.disabled)
        .bind(code.expires_at)
        .bind(json_text(&code.metadata))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(code))
}

#[async_trait]
impl CodeStore for PgStore {
    async fn create_batch(&self, b: &Batch) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO batches (id, project_id, name, source, pattern, requested, metadata, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&b.id)
        .bind(&b.project_id)
        .bind(&b.name)
        .bind(b.source)
        .bind(&b.pattern)
        .bind(b.requested)
        .bind(json_text(&b.metadata))
        .bind(b.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn insert_codes(
        &self,
        project_id: &str,
        batch_id: Option<&str>,
        codes: Vec<NewCode>,
        now: i64,
    ) -> StoreResult<InsertReport> {
        with_retries(|| insert_in(&self.pool, project_id, batch_id, &codes, now)).await.map_err(map_err)
    }

    async fn list_codes(
        &self,
        project: &Project,
        filter: &CodeFilter,
        at: PageAt,
        page_size: u32,
        now: i64,
    ) -> StoreResult<CodePage> {
        let mut c = self.pool.acquire().await.map_err(map_err)?;
        list_in(&mut c, project, filter, at, page_size, now).await.map_err(map_err)
    }

    async fn get_code(&self, project_id: &str, code_id: &str) -> StoreResult<Option<Code>> {
        let mut c = self.pool.acquire().await.map_err(map_err)?;
        load_code(&mut c, project_id, code_id).await.map_err(map_err)
    }

    async fn find_code(&self, project_id: &str, code_norm: &str) -> StoreResult<Option<Code>> {
        let mut c = self.pool.acquire().await.map_err(map_err)?;
        find_by_norm(&mut c, project_id, code_norm).await.map_err(map_err)
    }

    async fn update_code(&self, project_id: &str, code_id: &str, patch: CodePatch) -> StoreResult<Option<Code>> {
        with_retries(|| update_code_in(&self.pool, project_id, code_id, patch.clone())).await.map_err(map_err)
    }

    async fn delete_code(&self, project_id: &str, code_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM codes WHERE id = $1 AND project_id = $2")
            .bind(code_id)
            .bind(project_id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn bulk_codes(
        &self,
        project: &Project,
        selection: CodeSelection,
        action: BulkAction,
        now: i64,
    ) -> StoreResult<u64> {
        with_retries(|| bulk_in(&self.pool, project, &selection, action, now)).await.map_err(map_err)
    }

    async fn codes_after(
        &self,
        project: &Project,
        filter: &CodeFilter,
        after: Option<i64>,
        limit: u32,
        now: i64,
    ) -> StoreResult<Vec<(i64, Code)>> {
        let at = after.map_or(PageAt::Number(1), PageAt::After);
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Exports walk a whole filter page after page. Each page must be read
        // from an index in `seq` order and stop at its limit; without this,
        // the planner (on a table whose statistics predate a big insert)
        // gathers every matching row and sorts it for each page, which turns
        // exporting a million-code batch into minutes.
        sqlx::query("SET LOCAL enable_sort = off").execute(&mut *tx).await.map_err(map_err)?;
        let rows = select_codes(&mut tx, project, filter, at, limit, now, None).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(rows)
    }

    async fn list_batches(&self, project_id: &str) -> StoreResult<Vec<BatchSummary>> {
        sqlx::query(&format!(
            "SELECT {BATCH_SUMMARY_COLUMNS} FROM batches b WHERE b.project_id = $1 ORDER BY b.created_at DESC, b.seq DESC"
        ))
        .bind(project_id)
        .try_map(|r: sqlx::postgres::PgRow| rows::batch_summary(&r))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn redeem(&self, request: RedeemRequest) -> StoreResult<RedeemOutcome> {
        settle(|| redeem_once(&self.pool, &request)).await
    }

    async fn reactivate(&self, request: RedeemRequest) -> StoreResult<RedeemOutcome> {
        settle(|| reactivate_once(&self.pool, &request)).await
    }
}

#[async_trait]
impl RedemptionStore for PgStore {
    async fn code_redemptions(&self, code_id: &str, limit: u32) -> StoreResult<Vec<RedemptionLog>> {
        sqlx::query(&format!(
            "SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE code_id = $1 ORDER BY seq DESC LIMIT $2"
        ))
        .bind(code_id)
        .bind(i64::from(limit))
        .try_map(|r| rows::redemption(&r))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn recent_successes(&self, project_id: Option<&str>, limit: u32) -> StoreResult<Vec<RedemptionLog>> {
        let sql = match project_id {
            Some(_) => format!(
                "SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE project_id = $1 AND result = 'success' ORDER BY created_at DESC, seq DESC LIMIT $2"
            ),
            None => format!(
                "SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE result = 'success' AND $1::TEXT IS NULL ORDER BY seq DESC LIMIT $2"
            ),
        };
        sqlx::query(&sql)
            .bind(project_id)
            .bind(i64::from(limit))
            .try_map(|r| rows::redemption(&r))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn list_redemptions(
        &self,
        project_id: &str,
        filter: &RedemptionFilter,
        page: u32,
        page_size: u32,
    ) -> StoreResult<LogPage<RedemptionLog>> {
        let push_where = |qb: &mut QueryBuilder<'_, Postgres>| {
            qb.push(" WHERE project_id = ").push_bind(project_id.to_owned());
            if let Some(result) = &filter.result {
                qb.push(" AND result = ").push_bind(result.clone());
            }
            if let Some(code_id) = &filter.code_id {
                qb.push(" AND code_id = ").push_bind(code_id.clone());
            }
        };
        super::log_page(&self.pool, "redemptions", REDEMPTION_COLUMNS, push_where, page, page_size, rows::redemption)
            .await
    }

    async fn redemptions_per_day(&self, project_id: Option<&str>, since: i64) -> StoreResult<Vec<(i64, i64)>> {
        // Two statements rather than `$1 IS NULL OR …`, so each keeps its index plan.
        let filter = if project_id.is_some() { "project_id = $1" } else { "$1::TEXT IS NULL" };
        let sql = format!(
            "SELECT (created_at / 86400) * 86400 AS day, COUNT(*) FROM redemptions
              WHERE {filter} AND result = 'success' AND created_at >= $2 GROUP BY day ORDER BY day"
        );
        sqlx::query_as::<_, (i64, i64)>(&sql).bind(project_id).bind(since).fetch_all(&self.pool).await.map_err(map_err)
    }
}
