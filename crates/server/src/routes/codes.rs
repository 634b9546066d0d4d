//! Code management (Bearer tokens): generation, import, update.

use super::sdk::project_for;
use super::{audit, Audit};
use crate::auth::BearerCaller;
use crate::dto::CodeDto;
use crate::error::ApiError;
use crate::extract::{check_id, check_len, nullable, parse_json, ApiPath, Body};
use crate::state::{now, AppState};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use codegate_domain::generation::{Pattern, PatternSpec};
use codegate_domain::ids::new_id;
use codegate_domain::model::{CodeRules, Project, Scope};
use codegate_domain::normalize::{normalize_code, validate_code};
use codegate_storage::{Batch, BulkAction, CodePatch, CodeSelection, NewCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Generated and imported codes are written in chunks of this many, each one
/// transaction, sorted by code (see `generate`).
const BULK_CHUNK: usize = 100_000;
/// Generated codes are returned inline up to this count.
const INLINE_CODES: u64 = 10_000;
const MAX_METADATA_BYTES: usize = 4096;
const MAX_USES_LIMIT: i64 = 1_000_000;

/// What to generate: a request's choices over the project's rules.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatternOverrides {
    length: Option<usize>,
    prefix: Option<String>,
    suffix: Option<String>,
    charset: Option<String>,
    group: Option<usize>,
    check_char: Option<bool>,
}

impl GenerateBody {
    /// The pattern choices of this request (kept flat in the body: serde cannot
    /// refuse unknown fields next to a flattened struct).
    fn overrides(&self) -> PatternOverrides {
        PatternOverrides {
            length: self.length,
            prefix: self.prefix.clone(),
            suffix: self.suffix.clone(),
            charset: self.charset.clone(),
            group: self.group,
            check_char: self.check_char,
        }
    }
}

pub(crate) fn pattern_spec(rules: &CodeRules, o: &PatternOverrides) -> PatternSpec {
    PatternSpec {
        charset: o.charset.clone().or_else(|| rules.charset.clone()),
        length: o.length.or(rules.length),
        prefix: o.prefix.clone().or_else(|| rules.prefix.clone()),
        suffix: o.suffix.clone().or_else(|| rules.suffix.clone()),
        group: o.group.or(rules.group),
        check_char: o.check_char.unwrap_or(rules.check_char),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenerateBody {
    count: u64,
    length: Option<usize>,
    prefix: Option<String>,
    suffix: Option<String>,
    charset: Option<String>,
    group: Option<usize>,
    check_char: Option<bool>,
    expires_at: Option<i64>,
    max_uses: Option<i64>,
    metadata: Option<Value>,
    batch_name: Option<String>,
}

/// 402 when adding `adding` codes would pass the project's `max_codes` quota.
async fn check_code_quota(state: &AppState, project: &Project, adding: u64) -> Result<(), ApiError> {
    if let Some(max) = project.quotas.max_codes {
        let total = state.store.code_counts(project, now()).await?.total;
        if total + adding as i64 > max {
            return Err(ApiError::QuotaExhausted {
                detail: format!("the project may hold {max} codes; it has {total}, so {adding} more do not fit"),
            });
        }
    }
    Ok(())
}

fn check_max_uses(max_uses: i64) -> Result<i64, ApiError> {
    if (1..=MAX_USES_LIMIT).contains(&max_uses) {
        Ok(max_uses)
    } else {
        Err(ApiError::validation(format!("max_uses must be from 1 to {MAX_USES_LIMIT}")))
    }
}

fn check_metadata(metadata: &Option<Value>) -> Result<(), ApiError> {
    match metadata {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(_)) if metadata.as_ref().unwrap().to_string().len() <= MAX_METADATA_BYTES => Ok(()),
        Some(Value::Object(_)) => {
            Err(ApiError::validation(format!("metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")))
        }
        Some(_) => Err(ApiError::validation("metadata must be a JSON object")),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GenerateAnswer {
    batch_id: String,
    count: u64,
    /// The new codes, when there are at most 10,000 of them; else export the batch.
    codes: Vec<String>,
    codes_inline: bool,
}

#[utoipa::path(post, path = "/api/v1/projects/{pid}/codes/generate", tag = "codes", params(("pid" = String, Path, description = "Project id (32 hex)")), request_body = GenerateBody, responses((status = 201, body = GenerateAnswer), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn generate(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    caller: BearerCaller,
    Body(body): Body,
) -> Result<(StatusCode, Json<GenerateAnswer>), ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Write).await?;
    let b: GenerateBody = parse_json(&body)?;
    let pattern =
        Pattern::new(&pattern_spec(&project.rules, &b.overrides())).map_err(|e| ApiError::validation(e.to_string()))?;
    pattern.check_count(b.count).map_err(|e| ApiError::validation(e.to_string()))?;
    check_code_quota(&state, &project, b.count).await?;
    let max_uses = check_max_uses(b.max_uses.unwrap_or(1))?;
    check_metadata(&b.metadata)?;
    if let Some(n) = &b.batch_name {
        check_len("batch_name", n, 100)?;
    }
    let now = now();
    let batch = Batch {
        id: new_id(),
        project_id: project.id.clone(),
        name: b.batch_name,
        source: "generate",
        pattern: Some(format!("{pattern:?}")),
        requested: b.count as i64,
        metadata: b.metadata.clone(),
        created_at: now,
    };
    state.store.create_batch(&batch).await?;

    let inline = b.count <= INLINE_CODES;
    let mut shown = Vec::new();
    let mut remaining = b.count as usize;
    let mut fruitless_rounds = 0;
    while remaining > 0 {
        // The whole shortfall is drawn and sorted before anything is written, so
        // its chunks cover disjoint ranges of the lookup index, one after the
        // other: each chunk extends its own part of the index instead of
        // touching nearly every leaf of it (and writing each to the WAL again).
        let drawn = draw_sorted(&pattern, project.rules.normalize, remaining).await?;
        let mut drawn = drawn.into_iter().peekable();
        let mut inserted = 0;
        while drawn.peek().is_some() {
            let chunk: Vec<NewCode> = drawn
                .by_ref()
                .take(BULK_CHUNK)
                .map(|(code_norm, code)| NewCode {
                    id: new_id(),
                    code_norm,
                    code,
                    disabled: false,
                    expires_at: b.expires_at,
                    max_uses,
                    use_count: 0,
                    verified_at: None,
                    verified_by: None,
                    metadata: b.metadata.clone(),
                })
                .collect();
            let codes: Vec<String> = if inline { chunk.iter().map(|c| c.code.clone()).collect() } else { Vec::new() };
            let report = state.store.insert_codes(&project.id, Some(&batch.id), chunk, now).await?;
            if inline {
                let mut skipped = report.duplicates.iter().peekable();
                for (i, code) in codes.into_iter().enumerate() {
                    if skipped.next_if_eq(&&i).is_none() {
                        shown.push(code);
                    }
                }
            }
            inserted += report.inserted as usize;
        }
        remaining -= inserted;
        // Collisions are retried; a pattern that keeps colliding is nearly full.
        fruitless_rounds = if inserted == 0 { fruitless_rounds + 1 } else { 0 };
        if fruitless_rounds >= 5 {
            return Err(ApiError::Conflict {
                code: "PATTERN_EXHAUSTED",
                detail: format!(
                    "only {} of {} codes could be made unique in this project",
                    b.count as usize - remaining,
                    b.count
                ),
            });
        }
    }
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "codes.generate",
            resource_type: "batch",
            resource_id: Some(&batch.id),
            project_id: Some(&project.id),
            detail: Some(json!({"count": b.count})),
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(GenerateAnswer { batch_id: batch.id, count: b.count, codes: shown, codes_inline: inline }),
    ))
}

/// `count` fresh codes as (normalized, as shown) pairs, sorted by the
/// normalized form and without repeats (a repeat would only be refused by the
/// unique index). Drawn on a blocking thread: a million take a moment.
async fn draw_sorted(pattern: &Pattern, normalize: bool, count: usize) -> Result<Vec<(String, String)>, ApiError> {
    let pattern = pattern.clone();
    tokio::task::spawn_blocking(move || {
        let mut rng = rand::rng();
        let mut drawn: Vec<(String, String)> = (0..count)
            .map(|_| {
                let code = pattern.generate(&mut rng);
                (normalize_code(&code, normalize), code)
            })
            .collect();
        drawn.sort_unstable();
        drawn.dedup_by(|later, earlier| later.0 == earlier.0);
        drawn
    })
    .await
    .map_err(|e| ApiError::internal(format!("drawing codes failed: {e}")))
}

/// One row of an import, after parsing.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub(crate) struct ImportRow {
    code: Option<String>,
    expires_at: Option<i64>,
    max_uses: Option<i64>,
    metadata: Option<Value>,
    disabled: Option<bool>,
    use_count: Option<i64>,
    verified_at: Option<i64>,
    verified_by: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Rejection {
    line: u64,
    code: Option<String>,
    reason: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportAnswer {
    batch_id: String,
    imported: u64,
    rejected: Vec<Rejection>,
}

fn parse_int(field: &str, s: &str) -> Result<Option<i64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| format!("{field} must be an integer"))
}

fn parse_bool(field: &str, s: &str) -> Result<Option<bool>, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "1" | "true" | "yes" => Ok(Some(true)),
        "0" | "false" | "no" => Ok(Some(false)),
        _ => Err(format!("{field} must be true or false")),
    }
}

/// Where a row of an import body starts, and its line number (for answers).
#[derive(Clone, Copy)]
struct RowStart {
    line: u64,
    offset: u64,
}

/// A parsed row where it starts, or why it was refused (with the code when known).
type ParsedRow = (RowStart, Result<ImportRow, (Option<String>, String)>);

/// Which CSV column holds which field, from the header row.
struct CsvColumns {
    code: usize,
    /// expires_at, max_uses, metadata, disabled, use_count, verified_at, verified_by.
    fields: [Option<usize>; 7],
}

impl CsvColumns {
    fn from_headers(headers: &csv::StringRecord) -> Result<CsvColumns, ApiError> {
        let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let code = col("code").ok_or_else(|| ApiError::validation("the CSV header must name a 'code' column"))?;
        let fields =
            ["expires_at", "max_uses", "metadata", "disabled", "use_count", "verified_at", "verified_by"].map(col);
        Ok(CsvColumns { code, fields })
    }

    fn row(&self, record: &csv::StringRecord) -> Result<ImportRow, (Option<String>, String)> {
        let get = |c: Option<usize>| c.and_then(|i| record.get(i)).unwrap_or("");
        let code = record.get(self.code).map(str::to_owned);
        let cols = &self.fields;
        let parsed = (|| -> Result<ImportRow, String> {
            let metadata = get(cols[2]).trim();
            Ok(ImportRow {
                code: code.clone(),
                expires_at: parse_int("expires_at", get(cols[0]))?,
                max_uses: parse_int("max_uses", get(cols[1]))?,
                metadata: if metadata.is_empty() {
                    None
                } else {
                    Some(serde_json::from_str(metadata).map_err(|_| "metadata must be JSON".to_owned())?)
                },
                disabled: parse_bool("disabled", get(cols[3]))?,
                use_count: parse_int("use_count", get(cols[4]))?,
                verified_at: parse_int("verified_at", get(cols[5]))?,
                verified_by: Some(get(cols[6]).to_owned()).filter(|s| !s.is_empty()),
            })
        })();
        parsed.map_err(|reason| (code, reason))
    }
}

fn csv_reader(body: &[u8]) -> Result<(csv::Reader<&[u8]>, CsvColumns), ApiError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::Headers).from_reader(body);
    let headers = reader.headers().map_err(|e| ApiError::validation(format!("invalid CSV header: {e}")))?;
    let columns = CsvColumns::from_headers(headers)?;
    Ok((reader, columns))
}

/// Parses CSV with a header row naming at least `code`.
fn parse_csv(body: &[u8]) -> Result<impl Iterator<Item = Result<ParsedRow, ApiError>> + '_, ApiError> {
    let (reader, columns) = csv_reader(body)?;
    Ok(reader.into_records().map(move |record| {
        let record = record.map_err(|e| ApiError::validation(format!("invalid CSV: {e}")))?;
        let at = record
            .position()
            .map_or(RowStart { line: 0, offset: 0 }, |p| RowStart { line: p.line(), offset: p.byte() });
        Ok((at, columns.row(&record)))
    }))
}

fn jsonl_row(line: &[u8]) -> Result<ImportRow, (Option<String>, String)> {
    serde_json::from_slice::<ImportRow>(line).map_err(|e| {
        let code = serde_json::from_slice::<Value>(line).ok().and_then(|v| v["code"].as_str().map(str::to_owned));
        (code, format!("invalid JSON line: {e}"))
    })
}

/// Parses JSON Lines: one object per line; blank lines are skipped.
fn parse_jsonl(body: &[u8]) -> impl Iterator<Item = ParsedRow> + '_ {
    let mut offset = 0u64;
    body.split(|b| *b == b'\n')
        .enumerate()
        .map(move |(i, line)| {
            let at = RowStart { line: i as u64 + 1, offset };
            offset += line.len() as u64 + 1;
            (at, line)
        })
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(at, line)| (at, jsonl_row(line)))
}

/// The rows of an import body, parsed as they are read: a million-row file is
/// walked once to check it, then read again row by row in the order the codes are
/// written (see [`RowReader`]), rather than held parsed in memory.
fn import_rows(
    body: &[u8],
    jsonl: bool,
) -> Result<Box<dyn Iterator<Item = Result<ParsedRow, ApiError>> + Send + '_>, ApiError> {
    Ok(if jsonl { Box::new(parse_jsonl(body).map(Ok)) } else { Box::new(parse_csv(body)?) })
}

/// Reads single rows of an import body again, where the first walk found them.
enum RowReader<'a> {
    Csv { reader: Box<csv::Reader<std::io::Cursor<&'a [u8]>>>, columns: CsvColumns, record: csv::StringRecord },
    Jsonl(&'a [u8]),
}

impl<'a> RowReader<'a> {
    fn new(body: &'a [u8], jsonl: bool) -> Result<RowReader<'a>, ApiError> {
        if jsonl {
            return Ok(RowReader::Jsonl(body));
        }
        let (_, columns) = csv_reader(body)?;
        // Rows are read one at a time from wherever they start: a small buffer, refilled at each seek.
        let reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(false)
            .buffer_capacity(256)
            .from_reader(std::io::Cursor::new(body));
        Ok(RowReader::Csv { reader: Box::new(reader), columns, record: csv::StringRecord::new() })
    }

    fn row_at(&mut self, at: RowStart) -> Result<ImportRow, (Option<String>, String)> {
        match self {
            RowReader::Jsonl(body) => {
                let rest = usize::try_from(at.offset).ok().and_then(|o| body.get(o..)).unwrap_or_default();
                jsonl_row(rest.split(|b| *b == b'\n').next().unwrap_or_default())
            }
            RowReader::Csv { reader, columns, record } => {
                let mut position = csv::Position::new();
                position.set_byte(at.offset).set_line(at.line);
                let read = reader.seek(position).and_then(|()| reader.read_record(record));
                match read {
                    Ok(true) => columns.row(record),
                    Ok(false) => Err((None, "the row could not be read again".into())),
                    Err(e) => Err((None, format!("invalid CSV: {e}"))),
                }
            }
        }
    }
}

fn to_new_code(project: &Project, row: ImportRow) -> Result<NewCode, String> {
    let code = row.code.ok_or("code is missing")?;
    validate_code(&code)?;
    let max_uses = row.max_uses.unwrap_or(1);
    if !(1..=MAX_USES_LIMIT).contains(&max_uses) {
        return Err(format!("max_uses must be from 1 to {MAX_USES_LIMIT}"));
    }
    let use_count = row.use_count.unwrap_or(0);
    if !(0..=max_uses).contains(&use_count) {
        return Err("use_count must be from 0 to max_uses".into());
    }
    if !matches!(row.metadata, None | Some(Value::Object(_)) | Some(Value::Null)) {
        return Err("metadata must be a JSON object".into());
    }
    Ok(NewCode {
        id: new_id(),
        code_norm: normalize_code(&code, project.rules.normalize),
        code,
        disabled: row.disabled.unwrap_or(false),
        expires_at: row.expires_at,
        max_uses,
        use_count,
        verified_at: row.verified_at,
        verified_by: row.verified_by,
        metadata: row.metadata.filter(|m| !m.is_null()),
    })
}

#[utoipa::path(post, path = "/api/v1/projects/{pid}/codes/import", tag = "codes", params(("pid" = String, Path, description = "Project id (32 hex)")), request_body(content = String, content_type = "text/csv", description = "CSV with a header row naming `code`; or JSON Lines with Content-Type application/x-ndjson"), responses((status = 200, body = ImportAnswer), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn import(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    caller: BearerCaller,
    request: Request,
) -> Result<Json<ImportAnswer>, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Write).await?;
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let jsonl =
        content_type.contains("ndjson") || content_type.contains("jsonl") || content_type.contains("json-lines");
    let limit = state.config.max_import_bytes;
    let body = crate::extract::read_body(request.into_body(), limit).await?;
    // Parsing a large file takes a while: it runs on the blocking pool, off the async workers.
    let walked = {
        let (body, project) = (body.clone(), project.clone());
        on_blocking_pool(move || first_walk(&body, jsonl, &project)).await??
    };
    let FirstWalk { requested, parsed, mut rejected, valid } = walked;
    check_code_quota(&state, &project, parsed).await?;

    let now = now();
    let batch = Batch {
        id: new_id(),
        project_id: project.id.clone(),
        name: None,
        source: "import",
        pattern: None,
        requested,
        metadata: None,
        created_at: now,
    };
    state.store.create_batch(&batch).await?;
    let mut imported = 0;
    // One chunk is written while the next is read; chunks still commit one after another.
    let mut in_flight: Option<tokio::task::JoinHandle<Result<Flushed, ApiError>>> = None;
    for part in valid.chunks(BULK_CHUNK) {
        let starts: Vec<RowStart> = part.iter().map(|(_, at)| *at).collect();
        let chunk = {
            let (body, project) = (body.clone(), project.clone());
            on_blocking_pool(move || read_rows(&body, jsonl, &project, &starts)).await??
        };
        rejected.extend(chunk.rejected);
        if let Some(previous) = in_flight.take() {
            imported += settle(previous, &mut rejected).await?;
        }
        in_flight = Some(tokio::spawn(flush(state.clone(), project.id.clone(), batch.id.clone(), chunk.codes, now)));
    }
    if let Some(previous) = in_flight.take() {
        imported += settle(previous, &mut rejected).await?;
    }
    rejected.sort_by_key(|r| r.line);
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "codes.import",
            resource_type: "batch",
            resource_id: Some(&batch.id),
            project_id: Some(&project.id),
            detail: Some(json!({"imported": imported, "rejected": rejected.len()})),
        },
    )
    .await?;
    Ok(Json(ImportAnswer { batch_id: batch.id, imported, rejected }))
}

/// What the first walk over an import body found, before anything is written.
struct FirstWalk {
    requested: i64,
    /// Rows that parsed (what the quota is checked against).
    parsed: u64,
    rejected: Vec<Rejection>,
    /// Each valid row's normalised code and where the row starts, in index order:
    /// stable, so that of two rows with the same code the earlier line comes first
    /// and is the one kept.
    valid: Vec<(String, RowStart)>,
}

/// Checks every row of an import body; valid rows are only noted, not kept parsed.
fn first_walk(body: &[u8], jsonl: bool, project: &Project) -> Result<FirstWalk, ApiError> {
    let mut walked = FirstWalk { requested: 0, parsed: 0, rejected: Vec::new(), valid: Vec::new() };
    for row in import_rows(body, jsonl)? {
        let (at, row) = row?;
        walked.requested += 1;
        walked.parsed += u64::from(row.is_ok());
        match row.and_then(|r| to_new_code(project, r).map_err(|e| (None, e))) {
            Ok(code) => walked.valid.push((code.code_norm, at)),
            Err((code, reason)) => walked.rejected.push(Rejection { line: at.line, code, reason }),
        }
    }
    // Written in this order, like generated codes (see `generate`): each chunk extends
    // its own range of the lookup index.
    walked.valid.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(walked)
}

/// One chunk's rows, read again: the codes with their lines, and rows refused on the way.
struct ChunkRows {
    codes: Vec<(u64, NewCode)>,
    rejected: Vec<Rejection>,
}

/// The rows of one chunk, read again from where the first walk found them, in that
/// (index) order; their ids are drawn here, so they follow it too.
fn read_rows(body: &[u8], jsonl: bool, project: &Project, starts: &[RowStart]) -> Result<ChunkRows, ApiError> {
    let mut rows = RowReader::new(body, jsonl)?;
    let mut read = ChunkRows { codes: Vec::with_capacity(starts.len()), rejected: Vec::new() };
    for &at in starts {
        match rows.row_at(at).and_then(|r| to_new_code(project, r).map_err(|e| (None, e))) {
            Ok(code) => read.codes.push((at.line, code)),
            Err((code, reason)) => read.rejected.push(Rejection { line: at.line, code, reason }),
        }
    }
    Ok(read)
}

async fn on_blocking_pool<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ApiError::internal(format!("an import step failed: {e}")))
}

/// What writing one chunk of an import did.
struct Flushed {
    imported: u64,
    rejected: Vec<Rejection>,
}

async fn flush(
    state: AppState,
    project_id: String,
    batch_id: String,
    chunk: Vec<(u64, NewCode)>,
    now: i64,
) -> Result<Flushed, ApiError> {
    if chunk.is_empty() {
        return Ok(Flushed { imported: 0, rejected: Vec::new() });
    }
    // Already in index order (see `first_walk`), with time-ordered ids drawn in that
    // order by `read_rows`: the id index is appended to.
    let (lines, codes): (Vec<u64>, Vec<NewCode>) = chunk.into_iter().unzip();
    let names: Vec<String> = codes.iter().map(|c| c.code.clone()).collect();
    let report = state.store.insert_codes(&project_id, Some(&batch_id), codes, now).await?;
    let rejected = report
        .duplicates
        .into_iter()
        .map(|i| Rejection { line: lines[i], code: Some(names[i].clone()), reason: "duplicate code".into() })
        .collect();
    Ok(Flushed { imported: report.inserted, rejected })
}

/// Waits for a chunk written in the background and takes in its outcome.
async fn settle(
    flushing: tokio::task::JoinHandle<Result<Flushed, ApiError>>,
    rejected: &mut Vec<Rejection>,
) -> Result<u64, ApiError> {
    let flushed = flushing.await.map_err(|e| ApiError::internal(format!("an import chunk failed: {e}")))??;
    rejected.extend(flushed.rejected);
    Ok(flushed.imported)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateCode {
    disabled: Option<bool>,
    #[schema(value_type = Option<i64>)]
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<i64>>,
    #[schema(value_type = Option<Object>)]
    #[serde(default, deserialize_with = "nullable")]
    metadata: Option<Option<Value>>,
}

#[utoipa::path(patch, path = "/api/v1/projects/{pid}/codes/{code_id}", tag = "codes", params(("pid" = String, Path, description = "Project id (32 hex)"), ("code_id" = String, Path, description = "Code id (32 hex)")), request_body = UpdateCode, responses((status = 200, body = CodeDto), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    ApiPath((pid, code_id)): ApiPath<(String, String)>,
    caller: BearerCaller,
    Body(body): Body,
) -> Result<Json<CodeDto>, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Write).await?;
    check_id(&code_id, "code")?;
    let b: UpdateCode = parse_json(&body)?;
    if let Some(m) = &b.metadata {
        check_metadata(m)?;
    }
    let patch = CodePatch { disabled: b.disabled, expires_at: b.expires_at, metadata: b.metadata };
    let code =
        state.store.update_code(&project.id, &code_id, patch).await?.ok_or(ApiError::NotFound { what: "code" })?;
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "code.update",
            resource_type: "code",
            resource_id: Some(&code.id),
            project_id: Some(&project.id),
            detail: Some(json!({"disabled": code.disabled, "expires_at": code.expires_at})),
        },
    )
    .await?;
    Ok(Json(CodeDto::new(code, project.expires_at, now())))
}

#[utoipa::path(delete, path = "/api/v1/projects/{pid}/codes/{code_id}", tag = "codes", params(("pid" = String, Path, description = "Project id (32 hex)"), ("code_id" = String, Path, description = "Code id (32 hex)")), responses((status = 204, description = "Done"), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    ApiPath((pid, code_id)): ApiPath<(String, String)>,
    caller: BearerCaller,
) -> Result<StatusCode, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Write).await?;
    check_id(&code_id, "code")?;
    if !state.store.delete_code(&project.id, &code_id).await? {
        return Err(ApiError::NotFound { what: "code" });
    }
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "code.delete",
            resource_type: "code",
            resource_id: Some(&code_id),
            project_id: Some(&project.id),
            detail: None,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkFilter {
    status: Option<String>,
    batch_id: Option<String>,
    search: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkBody {
    action: String,
    ids: Option<Vec<String>>,
    filter: Option<BulkFilter>,
}

const MAX_BULK_IDS: usize = 10_000;

#[utoipa::path(post, path = "/api/v1/projects/{pid}/codes/bulk", tag = "codes", params(("pid" = String, Path, description = "Project id (32 hex)")), request_body = BulkBody, responses((status = 200, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn bulk(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    caller: BearerCaller,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Write).await?;
    let b: BulkBody = parse_json(&body)?;
    let action = match b.action.as_str() {
        "disable" => BulkAction::Disable,
        "enable" => BulkAction::Enable,
        "delete" => BulkAction::Delete,
        _ => return Err(ApiError::validation("action must be one of disable, enable, delete")),
    };
    let selection = match (b.ids, b.filter) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > MAX_BULK_IDS {
                return Err(ApiError::validation(format!("ids must hold 1 to {MAX_BULK_IDS} code ids")));
            }
            if let Some(bad) = ids.iter().find(|id| !codegate_domain::ids::is_valid_id(id)) {
                return Err(ApiError::validation(format!("'{bad}' is not a code id")));
            }
            CodeSelection::Ids(ids)
        }
        (None, Some(f)) => {
            // The same rules as the listing's query parameters.
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (k, v) in [("status", f.status), ("batch_id", f.batch_id), ("search", f.search)] {
                if let Some(v) = v {
                    query.append_pair(k, &v);
                }
            }
            CodeSelection::Filter(super::sdk::parse_list_query(Some(&query.finish()))?.filter)
        }
        _ => return Err(ApiError::validation("give either ids or filter")),
    };
    let affected = state.store.bulk_codes(&project, selection, action, now()).await?;
    audit(
        &state,
        &caller.principal,
        &caller.origin,
        Audit {
            action: "codes.bulk",
            resource_type: "code",
            resource_id: None,
            project_id: Some(&project.id),
            detail: Some(json!({"action": b.action, "affected": affected})),
        },
    )
    .await?;
    Ok(Json(json!({ "affected": affected })))
}

#[utoipa::path(get, path = "/api/v1/projects/{pid}/batches", tag = "codes", params(("pid" = String, Path, description = "Project id (32 hex)")), responses((status = 200, body = Object), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn batches(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    caller: BearerCaller,
) -> Result<Json<Value>, ApiError> {
    let project = project_for(&state, &caller.principal, &pid, Scope::Read).await?;
    let items: Vec<Value> = state
        .store
        .list_batches(&project.id)
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "id": s.batch.id, "name": s.batch.name, "source": s.batch.source, "requested": s.batch.requested,
                "code_count": s.code_count, "metadata": s.batch.metadata, "created_at": s.batch.created_at,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// Rows per database read while exporting.
const EXPORT_CHUNK: u32 = 2_000;
const EXPORT_COLUMNS: [&str; 12] = [
    "id",
    "code",
    "state",
    "disabled",
    "use_count",
    "max_uses",
    "expires_at",
    "verified_at",
    "verified_by",
    "batch_id",
    "metadata",
    "created_at",
];

fn export_row(dto: CodeDto) -> Vec<String> {
    let opt = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    vec![
        dto.id,
        dto.code,
        dto.state.to_owned(),
        dto.is_disabled.to_string(),
        dto.use_count.to_string(),
        dto.max_uses.to_string(),
        opt(dto.expires_at),
        opt(dto.verified_at),
        dto.verified_by.unwrap_or_default(),
        dto.batch_id.unwrap_or_default(),
        dto.metadata.map(|m| m.to_string()).unwrap_or_default(),
        dto.created_at.to_string(),
    ]
}

#[utoipa::path(get, path = "/api/v1/projects/{pid}/codes/export", tag = "codes", params(("pid" = String, Path, description = "Project id (32 hex)"), ("format" = Option<String>, Query, description = "csv (default) or jsonl"), ("status" = Option<String>, Query), ("batch_id" = Option<String>, Query), ("search" = Option<String>, Query)), responses((status = 200, description = "Done"), (status = "default", description = "A problem", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    ApiPath(pid): ApiPath<String>,
    uri: axum::http::Uri,
    caller: BearerCaller,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let project = project_for(&state, &caller.principal, &pid, Scope::Read).await?;
    let pairs = crate::extract::query_pairs(uri.query());
    let jsonl = match crate::extract::param(&pairs, "format").unwrap_or("csv") {
        "csv" => false,
        "jsonl" | "ndjson" => true,
        _ => return Err(ApiError::validation("format must be csv or jsonl")),
    };
    let filter = super::sdk::parse_list_query(uri.query())?.filter;
    let disposition = format!("attachment; filename=\"codes-{}.{}\"", project.id, if jsonl { "jsonl" } else { "csv" });
    // Walk the codes by position so memory stays flat however many there are.
    let stream = futures_util::stream::unfold(Some((None::<i64>, true)), move |position| {
        let (state, project, filter) = (state.clone(), project.clone(), filter.clone());
        async move {
            let (after, first) = position?;
            let now = now();
            let rows = match state.store.codes_after(&project, &filter, after, EXPORT_CHUNK, now).await {
                Ok(rows) => rows,
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
            };
            let next = (rows.len() == EXPORT_CHUNK as usize).then(|| rows.last().map(|r| (Some(r.0), false))).flatten();
            let mut out = Vec::with_capacity(rows.len() * 160);
            if jsonl {
                for (_, code) in rows {
                    serde_json::to_writer(&mut out, &CodeDto::new(code, project.expires_at, now))
                        .expect("code serialises");
                    out.push(b'\n');
                }
            } else {
                let mut w = csv::Writer::from_writer(&mut out);
                if first {
                    w.write_record(EXPORT_COLUMNS).expect("in-memory write");
                }
                for (_, code) in rows {
                    w.write_record(export_row(CodeDto::new(code, project.expires_at, now))).expect("in-memory write");
                }
                w.flush().expect("in-memory flush");
                drop(w);
            }
            if out.is_empty() && next.is_none() && !first {
                return None;
            }
            Some((Ok::<_, std::io::Error>(bytes::Bytes::from(out)), next))
        }
    });
    let content_type = if jsonl { "application/x-ndjson" } else { "text/csv; charset=utf-8" };
    Ok((
        [(header::CONTENT_TYPE, content_type.to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}
