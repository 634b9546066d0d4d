use super::projects::counts;
use super::rows::{self, json_text, CODE_COLUMNS, REDEMPTION_COLUMNS};
use super::SqliteStore;
use crate::error::{StoreError, StoreResult};
use crate::{
    Batch, CodeFilter, CodePage, CodePatch, CodeStore, InsertReport, NewCode, PageAt,
    RedeemOutcome, RedeemRequest, RedemptionStore,
};
use async_trait::async_trait;
use codegate_domain::codes::{check_reactivate, check_verify, CodeState, RedeemFailure};
use codegate_domain::ids::new_id;
use codegate_domain::model::{Code, Project, RedemptionAction, RedemptionLog};
use codegate_domain::normalize::normalize_code;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

/// SQL for "this code is in state S". Parameters: ?2 now, ?3 the project's expiry.
fn state_condition(state: CodeState) -> &'static str {
    match state {
        CodeState::Disabled => "disabled = 1",
        CodeState::Used => "disabled = 0 AND use_count >= max_uses",
        CodeState::Expired => "disabled = 0 AND use_count < max_uses AND COALESCE(expires_at, ?3) <= ?2",
        CodeState::Unused => {
            "disabled = 0 AND use_count < max_uses AND (COALESCE(expires_at, ?3) IS NULL OR COALESCE(expires_at, ?3) > ?2)"
        }
    }
}

fn like_pattern(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

fn load_code(c: &Connection, project_id: &str, code_id: &str) -> StoreResult<Option<Code>> {
    let sql = format!("SELECT {CODE_COLUMNS} FROM codes WHERE id = ?1 AND project_id = ?2");
    Ok(c.prepare_cached(&sql)?
        .query_row([code_id, project_id], rows::code)
        .optional()?)
}

fn find_by_norm(c: &Connection, project_id: &str, norm: &str) -> StoreResult<Option<Code>> {
    let sql = format!("SELECT {CODE_COLUMNS} FROM codes WHERE project_id = ?1 AND code_norm = ?2");
    Ok(c.prepare_cached(&sql)?
        .query_row([project_id, norm], rows::code)
        .optional()?)
}

fn project_facts(
    c: &Connection,
    project_id: &str,
) -> StoreResult<Option<codegate_domain::codes::ProjectFacts>> {
    Ok(
        c.prepare_cached("SELECT enabled, expires_at FROM projects WHERE id = ?1")?
            .query_row([project_id], |r| {
                Ok(codegate_domain::codes::ProjectFacts {
                    enabled: r.get(0)?,
                    expires_at: r.get(1)?,
                })
            })
            .optional()?,
    )
}

fn log_attempt(
    c: &Connection,
    req: &RedeemRequest,
    code: &Code,
    action: RedemptionAction,
    result: &str,
    reason: Option<&str>,
) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO redemptions (id, project_id, code_id, code, action, result, reason, actor, ip_address, user_agent, credential, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        new_id(),
        code.project_id,
        code.id,
        code.code,
        action.as_str(),
        result,
        reason,
        req.actor,
        req.origin.ip_address,
        req.origin.user_agent,
        req.origin.credential,
        req.now
    ])?;
    Ok(())
}

/// Why a conditional update matched no row, in the documented check order.
fn explain_failure(
    c: &Connection,
    req: &RedeemRequest,
    action: RedemptionAction,
    check: fn(
        Option<&codegate_domain::codes::CodeFacts>,
        &codegate_domain::codes::ProjectFacts,
        i64,
    ) -> Result<(), RedeemFailure>,
) -> StoreResult<RedeemOutcome> {
    let code = find_by_norm(c, &req.project_id, &req.code_norm)?;
    let Some(project) = project_facts(c, &req.project_id)? else {
        return Ok(RedeemOutcome::Failure(RedeemFailure::CodeNotFound, None));
    };
    let failure = match check(code.as_ref().map(Code::facts).as_ref(), &project, req.now) {
        Err(f) => f,
        Ok(()) => {
            return Err(StoreError::Internal(
                "conditional update refused a redeemable code".into(),
            ))
        }
    };
    if let Some(code) = &code {
        log_attempt(c, req, code, action, "failed", Some(failure.error_code()))?;
    }
    Ok(RedeemOutcome::Failure(failure, code))
}

/// The project is open and the code's effective expiry has not passed.
const REDEEMABLE_NOW: &str = "EXISTS (SELECT 1 FROM projects p WHERE p.id = codes.project_id AND p.enabled = 1
       AND (p.expires_at IS NULL OR p.expires_at > ?3)
       AND (COALESCE(codes.expires_at, p.expires_at) IS NULL OR COALESCE(codes.expires_at, p.expires_at) > ?3))";

fn redeem_in(c: &Connection, req: &RedeemRequest) -> StoreResult<RedeemOutcome> {
    // One conditional update: exactly-once whatever else is in flight.
    let sql = format!(
        "UPDATE codes SET use_count = use_count + 1, verified_at = ?3, verified_by = ?4
          WHERE project_id = ?1 AND code_norm = ?2 AND disabled = 0 AND use_count < max_uses AND {REDEEMABLE_NOW}
          RETURNING {CODE_COLUMNS}"
    );
    let updated = c
        .prepare_cached(&sql)?
        .query_row(
            params![req.project_id, req.code_norm, req.now, req.actor],
            rows::code,
        )
        .optional()?;
    match updated {
        Some(code) => {
            log_attempt(c, req, &code, RedemptionAction::Verify, "success", None)?;
            Ok(RedeemOutcome::Success(code))
        }
        None => explain_failure(c, req, RedemptionAction::Verify, check_verify),
    }
}

fn reactivate_in(c: &Connection, req: &RedeemRequest) -> StoreResult<RedeemOutcome> {
    let sql = format!(
        "UPDATE codes SET use_count = use_count - 1,
                verified_at = CASE WHEN use_count > 1 THEN verified_at END,
                verified_by = CASE WHEN use_count > 1 THEN verified_by END
          WHERE project_id = ?1 AND code_norm = ?2 AND disabled = 0 AND use_count > 0 AND {REDEEMABLE_NOW}
          RETURNING {CODE_COLUMNS}"
    );
    let updated = c
        .prepare_cached(&sql)?
        .query_row(params![req.project_id, req.code_norm, req.now], rows::code)
        .optional()?;
    match updated {
        Some(code) => {
            log_attempt(
                c,
                req,
                &code,
                RedemptionAction::Reactivate,
                "reactivated",
                req.reason.as_deref(),
            )?;
            Ok(RedeemOutcome::Success(code))
        }
        None => explain_failure(c, req, RedemptionAction::Reactivate, check_reactivate),
    }
}

fn list_in(
    c: &Connection,
    project: &Project,
    filter: &CodeFilter,
    at: PageAt,
    page_size: u32,
    now: i64,
) -> StoreResult<CodePage> {
    let mut conditions = vec!["project_id = ?1".to_owned()];
    if let Some(state) = filter.state {
        conditions.push(state_condition(state).to_owned());
    }
    let (raw_search, norm_search) = match filter.search.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => {
            conditions.push("(code LIKE ?4 ESCAPE '\\' OR code_norm LIKE ?5 ESCAPE '\\')".into());
            (
                Value::Text(like_pattern(s)),
                Value::Text(like_pattern(&normalize_code(s, project.rules.normalize))),
            )
        }
        None => (Value::Null, Value::Null),
    };
    if filter.batch_id.is_some() {
        conditions.push("batch_id = ?6".into());
    }
    let where_clause = conditions.join(" AND ");
    let base: Vec<Value> = vec![
        Value::Text(project.id.clone()),
        Value::Integer(now),
        project.expires_at.map_or(Value::Null, Value::Integer),
        raw_search,
        norm_search,
        filter.batch_id.clone().map_or(Value::Null, Value::Text),
    ];

    let total = if filter.search.is_none() && filter.batch_id.is_none() {
        let n = counts(c, &project.id, project.expires_at, now)?;
        match filter.state {
            None => n.total,
            Some(CodeState::Unused) => n.unused,
            Some(CodeState::Used) => n.used,
            Some(CodeState::Disabled) => n.disabled,
            Some(CodeState::Expired) => n.expired,
        }
    } else {
        let sql = format!("SELECT COUNT(*) FROM codes WHERE {where_clause}");
        let mut stmt = c.prepare_cached(&sql)?;
        // Positional parameters are fixed (?1..?9); bind the ones this statement uses.
        let used = stmt.parameter_count();
        stmt.query_row(params_from_iter(base.iter().take(used)), |r| r.get(0))?
    };

    let (position, after, offset) = match at {
        PageAt::Number(page) => (
            "",
            Value::Null,
            i64::from(page.saturating_sub(1)) * i64::from(page_size),
        ),
        PageAt::After(seq) => (" AND seq < ?7", Value::Integer(seq), 0),
    };
    let sql = format!(
        "SELECT {CODE_COLUMNS} FROM codes WHERE {where_clause}{position}
          ORDER BY seq DESC LIMIT ?8 OFFSET ?9"
    );
    let mut args = base;
    args.extend([
        after,
        Value::Integer(i64::from(page_size)),
        Value::Integer(offset),
    ]);
    let mut stmt = c.prepare_cached(&sql)?;
    let used = stmt.parameter_count();
    let rows = stmt
        .query_map(params_from_iter(args.iter().take(used)), |r| {
            Ok((rows::code(r)?, r.get::<_, i64>(12)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let next = (rows.len() == page_size as usize)
        .then(|| rows.last().map(|r| r.1))
        .flatten();
    Ok(CodePage {
        items: rows.into_iter().map(|r| r.0).collect(),
        total,
        next,
    })
}

fn insert_in(
    c: &Connection,
    project_id: &str,
    batch_id: Option<&str>,
    codes: &[NewCode],
    now: i64,
) -> StoreResult<InsertReport> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO codes (id, project_id, code, code_norm, disabled, expires_at, max_uses, use_count, verified_at, verified_by, batch_id, metadata, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT DO NOTHING",
    )?;
    let mut report = InsertReport::default();
    for (i, n) in codes.iter().enumerate() {
        let changed = stmt.execute(params![
            n.id,
            project_id,
            n.code,
            n.code_norm,
            n.disabled,
            n.expires_at,
            n.max_uses,
            n.use_count,
            n.verified_at,
            n.verified_by,
            batch_id,
            json_text(&n.metadata),
            now
        ])?;
        if changed == 0 {
            report.duplicates.push(i);
        } else {
            report.inserted += 1;
        }
    }
    Ok(report)
}

#[async_trait]
impl CodeStore for SqliteStore {
    async fn create_batch(&self, b: &Batch) -> StoreResult<()> {
        let b = b.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO batches (id, project_id, name, source, pattern, requested, metadata, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![b.id, b.project_id, b.name, b.source, b.pattern, b.requested, json_text(&b.metadata), b.created_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn insert_codes(
        &self,
        project_id: &str,
        batch_id: Option<&str>,
        codes: Vec<NewCode>,
        now: i64,
    ) -> StoreResult<InsertReport> {
        let (project_id, batch_id) = (project_id.to_owned(), batch_id.map(str::to_owned));
        self.write(move |c| insert_in(c, &project_id, batch_id.as_deref(), &codes, now))
            .await
    }

    async fn list_codes(
        &self,
        project: &Project,
        filter: &CodeFilter,
        at: PageAt,
        page_size: u32,
        now: i64,
    ) -> StoreResult<CodePage> {
        let (project, filter) = (project.clone(), filter.clone());
        self.read(move |c| list_in(c, &project, &filter, at, page_size, now))
            .await
    }

    async fn get_code(&self, project_id: &str, code_id: &str) -> StoreResult<Option<Code>> {
        let (p, id) = (project_id.to_owned(), code_id.to_owned());
        self.read(move |c| load_code(c, &p, &id)).await
    }

    async fn find_code(&self, project_id: &str, code_norm: &str) -> StoreResult<Option<Code>> {
        let (p, n) = (project_id.to_owned(), code_norm.to_owned());
        self.read(move |c| find_by_norm(c, &p, &n)).await
    }

    async fn update_code(
        &self,
        project_id: &str,
        code_id: &str,
        patch: CodePatch,
    ) -> StoreResult<Option<Code>> {
        let (p, id) = (project_id.to_owned(), code_id.to_owned());
        self.write(move |c| {
            let Some(mut code) = load_code(c, &p, &id)? else {
                return Ok(None);
            };
            if let Some(disabled) = patch.disabled {
                code.disabled = disabled;
            }
            if let Some(expires_at) = patch.expires_at {
                code.expires_at = expires_at;
            }
            if let Some(metadata) = patch.metadata {
                code.metadata = metadata;
            }
            c.prepare_cached(
                "UPDATE codes SET disabled = ?2, expires_at = ?3, metadata = ?4 WHERE id = ?1",
            )?
            .execute(params![
                code.id,
                code.disabled,
                code.expires_at,
                json_text(&code.metadata)
            ])?;
            Ok(Some(code))
        })
        .await
    }

    async fn redeem(&self, request: RedeemRequest) -> StoreResult<RedeemOutcome> {
        self.write(move |c| redeem_in(c, &request)).await
    }

    async fn reactivate(&self, request: RedeemRequest) -> StoreResult<RedeemOutcome> {
        self.write(move |c| reactivate_in(c, &request)).await
    }
}

#[async_trait]
impl RedemptionStore for SqliteStore {
    async fn code_redemptions(&self, code_id: &str, limit: u32) -> StoreResult<Vec<RedemptionLog>> {
        let code_id = code_id.to_owned();
        self.read(move |c| {
            let sql = format!("SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE code_id = ?1 ORDER BY seq DESC LIMIT ?2");
            let mut stmt = c.prepare_cached(&sql)?;
            let list = stmt.query_map(params![code_id, limit], rows::redemption)?.collect::<Result<Vec<_>, _>>()?;
            Ok(list)
        })
        .await
    }

    async fn recent_successes(
        &self,
        project_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<RedemptionLog>> {
        let project_id = project_id.to_owned();
        self.read(move |c| {
            let sql = format!(
                "SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE project_id = ?1 AND result = 'success' ORDER BY seq DESC LIMIT ?2"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let list = stmt.query_map(params![project_id, limit], rows::redemption)?.collect::<Result<Vec<_>, _>>()?;
            Ok(list)
        })
        .await
    }
}
