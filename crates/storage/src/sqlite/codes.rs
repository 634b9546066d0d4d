use super::projects::counts;
use super::rows::{self, columns_of, json_text, like_pattern, BATCH_SUMMARY_COLUMNS, CODE_COLUMNS, REDEMPTION_COLUMNS};
use super::SqliteStore;
use crate::error::StoreResult;
use crate::{
    Batch, BatchSummary, BulkAction, CodeFilter, CodePage, CodePatch, CodeSelection, CodeStore, InsertReport, LogPage,
    NewCode, PageAt, RedeemOutcome, RedeemRequest, RedemptionFilter, RedemptionStore,
};
use async_trait::async_trait;
use codegate_domain::codes::{check_reactivate, check_verify, CodeFacts, CodeState, ProjectFacts, RedeemFailure};
use codegate_domain::model::{Code, Project, RedemptionAction, RedemptionLog};
use codegate_domain::normalize::normalize_code;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use std::sync::LazyLock;

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

fn load_code(c: &Connection, project_id: &str, code_id: &str) -> StoreResult<Option<Code>> {
    let sql = format!("SELECT {CODE_COLUMNS} FROM codes WHERE id = ?1 AND project_id = ?2");
    Ok(c.prepare_cached(&sql)?.query_row([code_id, project_id], rows::code).optional()?)
}

fn find_by_norm(c: &Connection, project_id: &str, norm: &str) -> StoreResult<Option<Code>> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {CODE_COLUMNS} FROM codes WHERE project_id = ?1 AND code_norm = ?2"));
    Ok(c.prepare_cached(&SQL)?.query_row([project_id, norm], rows::code).optional()?)
}

/// What a redemption is decided on, read inside the write transaction: the
/// project's facts and, when the project has it, the code.
struct RedemptionFacts {
    project: ProjectFacts,
    code: Option<StoredCode>,
}

/// A code with its row id and the newest row of its log.
struct StoredCode {
    code: Code,
    seq: i64,
    log_head: Option<i64>,
}

/// One lookup for the project and its code; `None` when the project is gone.
fn redemption_facts(c: &Connection, project_id: &str, norm: &str) -> StoreResult<Option<RedemptionFacts>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {}, c.log_head, p.enabled, p.expires_at
               FROM projects p LEFT JOIN codes c ON c.project_id = p.id AND c.code_norm = ?2
              WHERE p.id = ?1",
            columns_of(CODE_COLUMNS, "c")
        )
    });
    // CODE_COLUMNS ends with the row id (`seq`); the three columns after it follow.
    static AT: LazyLock<usize> = LazyLock::new(|| CODE_COLUMNS.split(',').count());
    let facts = c
        .prepare_cached(&SQL)?
        .query_row(params![project_id, norm], |r| {
            let project = ProjectFacts { enabled: r.get(*AT + 1)?, expires_at: r.get(*AT + 2)? };
            let code = match r.get::<_, Option<i64>>(*AT - 1)? {
                Some(seq) => Some(StoredCode { code: rows::code(r)?, seq, log_head: r.get(*AT)? }),
                None => None,
            };
            Ok(RedemptionFacts { project, code })
        })
        .optional()?;
    Ok(facts)
}

/// Where a new log row goes: its row id (SQLite would pick the same, one past
/// the largest), and the code's previous newest log row, which it points at.
#[derive(Clone, Copy)]
struct LogLink {
    seq: i64,
    previous: Option<i64>,
}

/// The row id the next log row gets (inside the write transaction: nobody else inserts).
fn next_log_seq(c: &Connection) -> StoreResult<i64> {
    super::deferred::next_log_seq(|| {
        Ok(c.prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM redemptions")?.query_row([], |r| r.get(0))?)
    })
}

#[allow(clippy::too_many_arguments)]
fn log_attempt(
    c: &Connection,
    req: &RedeemRequest,
    code: &Code,
    link: LogLink,
    action: RedemptionAction,
    result: &str,
    reason: Option<&str>,
) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO redemptions (seq, previous_seq, id, project_id, code_id, code, action, result, reason, actor, ip_address, user_agent, credential, created_at)
         VALUES (?13, ?14, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        log_id(),
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
        req.now,
        link.seq,
        link.previous
    ])?;
    Ok(())
}

/// Log ids are time-ordered (UUIDv7) so new rows land at the right edge of the
/// id index instead of on a random page: fewer pages written per redemption.
fn log_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Writes a redemption's change to the code's row (by row id) and its log row.
///
/// Read, decide, write: the domain rules decide on what [`redemption_facts`]
/// read, and nothing can change the row in between, since every write runs on
/// the one writer connection inside `BEGIN IMMEDIATE` (which also keeps other
/// processes out). A single `UPDATE … RETURNING` did the same, but SQLite
/// copies every `RETURNING` row through an ephemeral table of its own.
///
/// The row gives up its `spare` room (migration 0007) for what it gains, so it
/// keeps its size and its page does not split.
fn apply_redemption(
    c: &Connection,
    req: &RedeemRequest,
    stored: StoredCode,
    action: RedemptionAction,
    result: &str,
    reason: Option<&str>,
) -> StoreResult<Code> {
    let link = LogLink { seq: next_log_seq(c)?, previous: stored.log_head };
    let code = stored.code;
    c.prepare_cached(
        "UPDATE codes SET use_count = ?2, verified_at = ?3, verified_by = ?4, log_head = ?5, spare = NULL WHERE seq = ?1",
    )?
    .execute(params![stored.seq, code.use_count, code.verified_at, code.verified_by, link.seq])?;
    log_attempt(c, req, &code, link, action, result, reason)?;
    Ok(code)
}

/// A refused attempt: logged on the code when it exists, nothing else changes.
fn refuse(
    c: &Connection,
    req: &RedeemRequest,
    stored: Option<StoredCode>,
    action: RedemptionAction,
    failure: RedeemFailure,
) -> StoreResult<RedeemOutcome> {
    let Some(stored) = stored else {
        return Ok(RedeemOutcome::Failure(failure, None));
    };
    let link = LogLink { seq: next_log_seq(c)?, previous: stored.log_head };
    c.prepare_cached("UPDATE codes SET log_head = ?2, spare = NULL WHERE seq = ?1")?
        .execute(params![stored.seq, link.seq])?;
    log_attempt(c, req, &stored.code, link, action, "failed", Some(failure.error_code()))?;
    Ok(RedeemOutcome::Failure(failure, Some(stored.code)))
}

type Check = fn(Option<&CodeFacts>, &ProjectFacts, i64) -> Result<(), RedeemFailure>;

/// What the domain rules make of an attempt on what [`redemption_facts`] read.
enum Decision {
    Apply(StoredCode),
    Refuse(RedeemFailure, Option<StoredCode>),
}

fn decide(facts: Option<RedemptionFacts>, check: Check, now: i64) -> Decision {
    let Some(facts) = facts else {
        return Decision::Refuse(RedeemFailure::CodeNotFound, None);
    };
    match (check(facts.code.as_ref().map(|s| s.code.facts()).as_ref(), &facts.project, now), facts.code) {
        (Ok(()), Some(stored)) => Decision::Apply(stored),
        (Ok(()), None) => Decision::Refuse(RedeemFailure::CodeNotFound, None),
        (Err(failure), stored) => Decision::Refuse(failure, stored),
    }
}

fn redeem_in(c: &Connection, req: &RedeemRequest) -> StoreResult<RedeemOutcome> {
    if let Some((max, period)) = req.quota {
        // Counted inside the write transaction, so concurrent redemptions cannot overshoot.
        let used: i64 = c
            .prepare_cached(
                "SELECT COUNT(*) FROM redemptions WHERE project_id = ?1 AND result = 'success' AND created_at > ?2",
            )?
            .query_row(params![req.project_id, req.now - period], |r| r.get(0))?;
        if used >= max {
            return Ok(RedeemOutcome::QuotaExhausted);
        }
    }
    let facts = redemption_facts(c, &req.project_id, &req.code_norm)?;
    let mut stored = match decide(facts, check_verify, req.now) {
        Decision::Apply(stored) => stored,
        Decision::Refuse(failure, stored) => return refuse(c, req, stored, RedemptionAction::Verify, failure),
    };
    stored.code.record_verify(req.now, req.actor.as_deref());
    // The code was enabled and below max_uses (the check); the used counter moves once per group.
    super::deferred::add_used(&stored.code.project_id, i64::from(stored.code.facts().is_used()));
    Ok(RedeemOutcome::Success(apply_redemption(c, req, stored, RedemptionAction::Verify, "success", None)?))
}

fn reactivate_in(c: &Connection, req: &RedeemRequest) -> StoreResult<RedeemOutcome> {
    let facts = redemption_facts(c, &req.project_id, &req.code_norm)?;
    let mut stored = match decide(facts, check_reactivate, req.now) {
        Decision::Apply(stored) => stored,
        Decision::Refuse(failure, stored) => return refuse(c, req, stored, RedemptionAction::Reactivate, failure),
    };
    let was_used = stored.code.facts().is_used();
    stored.code.record_reactivate();
    let now_used = stored.code.facts().is_used();
    super::deferred::add_used(&stored.code.project_id, i64::from(now_used) - i64::from(was_used));
    Ok(RedeemOutcome::Success(apply_redemption(
        c,
        req,
        stored,
        RedemptionAction::Reactivate,
        "reactivated",
        req.reason.as_deref(),
    )?))
}

/// The WHERE clause of a filter over one project's codes, with its parameters
/// at fixed positions: ?1 project, ?2 now, ?3 project expiry, ?4/?5 search, ?6 batch.
fn filter_sql(project: &Project, filter: &CodeFilter, now: i64) -> (String, Vec<Value>) {
    let mut conditions = vec!["project_id = ?1".to_owned()];
    if let Some(state) = filter.state {
        conditions.push(state_condition(state).to_owned());
    }
    let (raw_search, norm_search) = match filter.search.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => {
            conditions.push("(code LIKE ?4 ESCAPE '\\' OR code_norm LIKE ?5 ESCAPE '\\')".into());
            (Value::Text(like_pattern(s)), Value::Text(like_pattern(&normalize_code(s, project.rules.normalize))))
        }
        None => (Value::Null, Value::Null),
    };
    if filter.batch_id.is_some() {
        conditions.push("batch_id = ?6".into());
    }
    let args = vec![
        Value::Text(project.id.clone()),
        Value::Integer(now),
        project.expires_at.map_or(Value::Null, Value::Integer),
        raw_search,
        norm_search,
        filter.batch_id.clone().map_or(Value::Null, Value::Text),
    ];
    (conditions.join(" AND "), args)
}

/// Positional parameters are fixed; bind the ones a statement uses.
fn bind_used<'a>(stmt: &rusqlite::Statement<'_>, args: &'a [Value]) -> impl rusqlite::Params + 'a {
    params_from_iter(args.iter().take(stmt.parameter_count()))
}

/// Codes matching `filter` from a position (a page offset or after a seq), newest first, with their seq.
fn select_codes(
    c: &Connection,
    project: &Project,
    filter: &CodeFilter,
    at: PageAt,
    limit: u32,
    now: i64,
) -> StoreResult<Vec<(i64, Code)>> {
    if let (PageAt::Number(page), true) = (at, filter.is_empty()) {
        let offset = i64::from(page.saturating_sub(1)) * i64::from(limit);
        if let Some(rows) = page_by_position(c, &project.id, offset, limit)? {
            return Ok(rows);
        }
    }
    let (where_clause, mut args) = filter_sql(project, filter, now);
    let (position, after, offset) = match at {
        PageAt::Number(page) => ("", Value::Null, i64::from(page.saturating_sub(1)) * i64::from(limit)),
        PageAt::After(seq) => (" AND seq < ?7", Value::Integer(seq), 0),
    };
    args.extend([after, Value::Integer(i64::from(limit)), Value::Integer(offset)]);
    // Deferred join: skip `OFFSET` rows walking the (project_id, seq) index in order (never a
    // sort: the planner may otherwise pick the lookup index), then read only the page's rows.
    let sql = format!(
        "SELECT {CODE_COLUMNS} FROM codes WHERE seq IN
           (SELECT seq FROM codes INDEXED BY codes_newest WHERE {where_clause}{position} ORDER BY seq DESC LIMIT ?8 OFFSET ?9)
         ORDER BY seq DESC"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let params = bind_used(&stmt, &args);
    let rows =
        stmt.query_map(params, |r| Ok((r.get::<_, i64>(12)?, rows::code(r)?)))?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Page of the unfiltered list by an index seek on positions, when they are
/// dense (no code of the project was ever deleted); `None` when they are not.
fn page_by_position(
    c: &Connection,
    project_id: &str,
    offset: i64,
    limit: u32,
) -> StoreResult<Option<Vec<(i64, Code)>>> {
    let counters: Option<(i64, i64)> = c
        .prepare_cached("SELECT total, next_position FROM project_counters WHERE project_id = ?1")?
        .query_row([project_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((total, next_position)) = counters else { return Ok(None) };
    if total != next_position - 1 {
        return Ok(None);
    }
    let newest_wanted = next_position - 1 - offset;
    let sql = format!(
        "SELECT {CODE_COLUMNS} FROM codes INDEXED BY codes_position
          WHERE project_id = ?1 AND position <= ?2 ORDER BY position DESC LIMIT ?3"
    );
    let rows = c
        .prepare_cached(&sql)?
        .query_map(params![project_id, newest_wanted, limit], |r| Ok((r.get::<_, i64>(12)?, rows::code(r)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(rows))
}

fn list_in(
    c: &Connection,
    project: &Project,
    filter: &CodeFilter,
    at: PageAt,
    page_size: u32,
    now: i64,
) -> StoreResult<CodePage> {
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
        let (where_clause, args) = filter_sql(project, filter, now);
        let mut stmt = c.prepare_cached(&format!("SELECT COUNT(*) FROM codes WHERE {where_clause}"))?;
        let params = bind_used(&stmt, &args);
        stmt.query_row(params, |r| r.get(0))?
    };
    let rows = select_codes(c, project, filter, at, page_size, now)?;
    let next = (rows.len() == page_size as usize).then(|| rows.last().map(|r| r.0)).flatten();
    Ok(CodePage { items: rows.into_iter().map(|r| r.1).collect(), total, next })
}

fn bulk_in(
    c: &Connection,
    project: &Project,
    selection: &CodeSelection,
    action: BulkAction,
    now: i64,
) -> StoreResult<u64> {
    let change = match action {
        BulkAction::Disable => "UPDATE codes SET disabled = 1 WHERE disabled = 0 AND",
        BulkAction::Enable => "UPDATE codes SET disabled = 0 WHERE disabled = 1 AND",
        BulkAction::Delete => "DELETE FROM codes WHERE",
    };
    match selection {
        CodeSelection::Filter(filter) => {
            let (where_clause, args) = filter_sql(project, filter, now);
            let mut stmt = c.prepare(&format!("{change} {where_clause}"))?;
            let params = bind_used(&stmt, &args);
            Ok(stmt.execute(params)? as u64)
        }
        CodeSelection::Ids(ids) => {
            let mut stmt = c.prepare_cached(&format!("{change} project_id = ?1 AND id = ?2"))?;
            let mut changed = 0;
            for id in ids {
                changed += stmt.execute(params![project.id, id])? as u64;
            }
            Ok(changed)
        }
    }
}

/// Blank bytes a new unused code's row carries for its first redemption (the
/// `spare` column, migration 0007): the redemption time (4 to 6 bytes), the
/// log link (3 or 4) and a verifier id of up to ~22 bytes then fit without the
/// row growing. A longer id still grows the row, by less.
const REDEMPTION_ROOM_BYTES: i64 = 32;

fn insert_in(
    c: &Connection,
    project_id: &str,
    batch_id: Option<&str>,
    codes: &[NewCode],
    now: i64,
) -> StoreResult<InsertReport> {
    let mut next_position: i64 = c
        .prepare_cached("SELECT next_position FROM project_counters WHERE project_id = ?1")?
        .query_row([project_id], |r| r.get(0))
        .optional()?
        .unwrap_or(1);
    let mut stmt = c.prepare_cached(
        "INSERT INTO codes (id, project_id, code, code_norm, disabled, expires_at, max_uses, use_count, verified_at, verified_by, batch_id, metadata, created_at, position, spare)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                 CASE WHEN ?8 < ?7 THEN zeroblob(?15) END)
         ON CONFLICT DO NOTHING",
    )?;
    let mut report = InsertReport::default();
    let (mut disabled, mut used) = (0i64, 0i64);
    // The codes of one bulk request usually share their metadata: its JSON text is
    // made once per run of equal values, not once per row.
    let mut metadata: Option<(&serde_json::Value, String)> = None;
    for (i, n) in codes.iter().enumerate() {
        let metadata_text = n.metadata.as_ref().map(|value| {
            if !matches!(&metadata, Some((last, _)) if *last == value) {
                metadata = Some((value, value.to_string()));
            }
            metadata.as_ref().map_or("", |(_, text)| text.as_str())
        });
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
            metadata_text,
            now,
            next_position,
            REDEMPTION_ROOM_BYTES
        ])?;
        if changed == 0 {
            report.duplicates.push(i);
        } else {
            report.inserted += 1;
            next_position += 1;
            disabled += i64::from(n.disabled);
            used += i64::from(!n.disabled && n.use_count >= n.max_uses);
        }
    }
    // What the update and delete triggers keep current from here on.
    c.prepare_cached(
        "UPDATE project_counters
            SET total = total + ?2, disabled = disabled + ?3, used = used + ?4, next_position = ?5
          WHERE project_id = ?1",
    )?
    .execute(params![project_id, report.inserted as i64, disabled, used, next_position])?;
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
        self.write_alone(move |c| insert_in(c, &project_id, batch_id.as_deref(), &codes, now)).await
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
        self.read(move |c| list_in(c, &project, &filter, at, page_size, now)).await
    }

    async fn get_code(&self, project_id: &str, code_id: &str) -> StoreResult<Option<Code>> {
        let (p, id) = (project_id.to_owned(), code_id.to_owned());
        self.read(move |c| load_code(c, &p, &id)).await
    }

    async fn find_code(&self, project_id: &str, code_norm: &str) -> StoreResult<Option<Code>> {
        let (p, n) = (project_id.to_owned(), code_norm.to_owned());
        self.read(move |c| find_by_norm(c, &p, &n)).await
    }

    async fn update_code(&self, project_id: &str, code_id: &str, patch: CodePatch) -> StoreResult<Option<Code>> {
        let (p, id) = (project_id.to_owned(), code_id.to_owned());
        self.write(move |c| {
            let Some(mut code) = load_code(c, &p, &id)? else {
                return Ok(None);
            };
            patch.apply_to(&mut code);
            c.prepare_cached("UPDATE codes SET disabled = ?2, expires_at = ?3, metadata = ?4 WHERE id = ?1")?
                .execute(params![code.id, code.disabled, code.expires_at, json_text(&code.metadata)])?;
            Ok(Some(code))
        })
        .await
    }

    async fn delete_code(&self, project_id: &str, code_id: &str) -> StoreResult<bool> {
        let (p, id) = (project_id.to_owned(), code_id.to_owned());
        self.write(move |c| Ok(c.execute("DELETE FROM codes WHERE id = ?1 AND project_id = ?2", [id, p])? > 0)).await
    }

    async fn bulk_codes(
        &self,
        project: &Project,
        selection: CodeSelection,
        action: BulkAction,
        now: i64,
    ) -> StoreResult<u64> {
        let project = project.clone();
        self.write_alone(move |c| bulk_in(c, &project, &selection, action, now)).await
    }

    async fn codes_after(
        &self,
        project: &Project,
        filter: &CodeFilter,
        after: Option<i64>,
        limit: u32,
        now: i64,
    ) -> StoreResult<Vec<(i64, Code)>> {
        let (project, filter) = (project.clone(), filter.clone());
        let at = after.map_or(PageAt::Number(1), PageAt::After);
        self.read(move |c| select_codes(c, &project, &filter, at, limit, now)).await
    }

    async fn list_batches(&self, project_id: &str) -> StoreResult<Vec<BatchSummary>> {
        let project_id = project_id.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {BATCH_SUMMARY_COLUMNS} FROM batches b WHERE b.project_id = ?1 ORDER BY b.created_at DESC, b.rowid DESC"
            ))?;
            let list = stmt
                .query_map([project_id], rows::batch_summary)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(list)
        })
        .await
    }

    async fn redeem(&self, request: RedeemRequest) -> StoreResult<RedeemOutcome> {
        self.write_lean(move |c| redeem_in(c, &request)).await
    }

    async fn reactivate(&self, request: RedeemRequest) -> StoreResult<RedeemOutcome> {
        self.write_lean(move |c| reactivate_in(c, &request)).await
    }
}

/// A `WITH` clause naming `chain`: the row ids of one code's log (the code id
/// in parameter `code_id`), from the code's head along each row's `previous_seq`
/// (see migration 0004).
fn code_log_chain(code_id: &str) -> String {
    format!(
        "WITH RECURSIVE chain(seq) AS (
            SELECT log_head FROM codes WHERE id = {code_id} AND log_head IS NOT NULL
            UNION ALL
            SELECT r.previous_seq FROM redemptions r JOIN chain ON r.seq = chain.seq WHERE r.previous_seq IS NOT NULL)"
    )
}

#[async_trait]
impl RedemptionStore for SqliteStore {
    async fn code_redemptions(&self, code_id: &str, limit: u32) -> StoreResult<Vec<RedemptionLog>> {
        let code_id = code_id.to_owned();
        self.read(move |c| {
            let sql = format!(
                "{} SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE seq IN chain ORDER BY seq DESC LIMIT ?2",
                code_log_chain("?1")
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let list = stmt.query_map(params![code_id, limit], rows::redemption)?.collect::<Result<Vec<_>, _>>()?;
            Ok(list)
        })
        .await
    }

    async fn recent_successes(&self, project_id: Option<&str>, limit: u32) -> StoreResult<Vec<RedemptionLog>> {
        let project_id = project_id.map(str::to_owned);
        self.read(move |c| {
            let sql = match project_id {
                Some(_) => format!("SELECT {REDEMPTION_COLUMNS} FROM redemptions INDEXED BY redemptions_success_time WHERE project_id = ?1 AND result = 'success' ORDER BY created_at DESC, seq DESC LIMIT ?2"),
                None => format!("SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE result = 'success' AND ?1 IS NULL ORDER BY seq DESC LIMIT ?2"),
            };
            let mut stmt = c.prepare_cached(&sql)?;
            let list = stmt.query_map(params![project_id, limit], rows::redemption)?.collect::<Result<Vec<_>, _>>()?;
            Ok(list)
        })
        .await
    }

    async fn list_redemptions(
        &self,
        project_id: &str,
        filter: &RedemptionFilter,
        page: u32,
        page_size: u32,
    ) -> StoreResult<LogPage<RedemptionLog>> {
        let (project_id, filter) = (project_id.to_owned(), filter.clone());
        self.read(move |c| {
            let mut where_clause = "project_id = ?1".to_owned();
            if filter.result.is_some() {
                where_clause.push_str(" AND result = ?2");
            }
            let mut chain = String::new();
            if let Some(code_id) = &filter.code_id {
                where_clause.push_str(" AND code_id = ?3");
                // A live code's log is its chain; a deleted code's log is found by a walk of the project's.
                let live = c
                    .prepare_cached("SELECT 1 FROM codes WHERE id = ?1")?
                    .query_row([code_id], |_| Ok(()))
                    .optional()?
                    .is_some();
                if live {
                    chain = code_log_chain("?3");
                    where_clause.push_str(" AND seq IN chain");
                }
            }
            let args: Vec<Value> = vec![
                Value::Text(project_id),
                filter.result.map_or(Value::Null, Value::Text),
                filter.code_id.map_or(Value::Null, Value::Text),
                Value::Integer(i64::from(page_size)),
                Value::Integer(i64::from(page.saturating_sub(1)) * i64::from(page_size)),
            ];
            let mut count =
                c.prepare_cached(&format!("{chain} SELECT COUNT(*) FROM redemptions WHERE {where_clause}"))?;
            let params = bind_used(&count, &args);
            let total = count.query_row(params, |r| r.get(0))?;
            let sql = format!("{chain} SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE {where_clause} ORDER BY seq DESC LIMIT ?4 OFFSET ?5");
            let mut stmt = c.prepare_cached(&sql)?;
            let params = bind_used(&stmt, &args);
            let items = stmt.query_map(params, rows::redemption)?.collect::<Result<Vec<_>, _>>()?;
            Ok(LogPage { items, total })
        })
        .await
    }

    async fn redemptions_per_day(&self, project_id: Option<&str>, since: i64) -> StoreResult<Vec<(i64, i64)>> {
        let project_id = project_id.map(str::to_owned);
        self.read(move |c| {
            // All projects: each project's range of the success-time index (migration 0005);
            // CROSS JOIN keeps the projects outside, as SQLite would otherwise scan the whole index.
            let sql = match project_id {
                Some(_) => {
                    "SELECT (created_at / 86400) * 86400 AS day, COUNT(*) FROM redemptions
                      WHERE project_id = ?1 AND result = 'success' AND created_at >= ?2 GROUP BY day ORDER BY day"
                }
                None => {
                    "SELECT (r.created_at / 86400) * 86400 AS day, COUNT(*)
                       FROM projects p CROSS JOIN redemptions r INDEXED BY redemptions_success_time
                         ON r.project_id = p.id AND r.result = 'success' AND r.created_at >= ?2
                      WHERE ?1 IS NULL GROUP BY day ORDER BY day"
                }
            };
            let mut stmt = c.prepare_cached(sql)?;
            let days = stmt
                .query_map(params![project_id, since], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(days)
        })
        .await
    }
}
