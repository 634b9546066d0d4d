use super::rows::{self, PROJECT_COLUMNS};
use super::{unique_violation, SqliteStore};
use crate::error::StoreResult;
use crate::{ProjectPatch, ProjectStore};
use async_trait::async_trait;
use codegate_domain::codes::has_passed;
use codegate_domain::model::{CodeCounts, Project};
use rusqlite::{params, Connection, OptionalExtension};

fn load(conn: &Connection, id: &str) -> StoreResult<Option<Project>> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id], rows::project).optional()?)
}

#[async_trait]
impl ProjectStore for SqliteStore {
    async fn create_project(&self, p: &Project) -> StoreResult<()> {
        let p = p.clone();
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO projects ({PROJECT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                params![
                    p.id,
                    p.name,
                    p.description,
                    p.enabled,
                    p.expires_at,
                    serde_json::to_string(&p.rules).unwrap(),
                    p.created_at,
                    p.updated_at,
                    serde_json::to_string(&p.quotas).unwrap()
                ],
            )
            .map_err(|e| unique_violation(e, "project_name"))?;
            c.execute("INSERT INTO project_counters (project_id) VALUES (?1)", [&p.id])?;
            Ok(())
        })
        .await
    }

    async fn get_project(&self, id: &str) -> StoreResult<Option<Project>> {
        let id = id.to_owned();
        self.read(move |c| load(c, &id)).await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        self.read(|c| {
            let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY created_at DESC, id");
            let mut stmt = c.prepare_cached(&sql)?;
            let list = stmt.query_map([], rows::project)?.collect::<Result<Vec<_>, _>>()?;
            Ok(list)
        })
        .await
    }

    async fn update_project(&self, id: &str, patch: ProjectPatch, now: i64) -> StoreResult<Option<Project>> {
        let id = id.to_owned();
        self.write(move |c| {
            let Some(mut p) = load(c, &id)? else { return Ok(None) };
            patch.apply_to(&mut p, now);
            c.execute(
                "UPDATE projects SET name = ?2, description = ?3, enabled = ?4, expires_at = ?5, rules = ?6, updated_at = ?7, quotas = ?8 WHERE id = ?1",
                params![
                    p.id,
                    p.name,
                    p.description,
                    p.enabled,
                    p.expires_at,
                    serde_json::to_string(&p.rules).unwrap(),
                    p.updated_at,
                    serde_json::to_string(&p.quotas).unwrap()
                ],
            )
            .map_err(|e| unique_violation(e, "project_name"))?;
            Ok(Some(p))
        })
        .await
    }

    async fn delete_project(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write_alone(move |c| Ok(c.execute("DELETE FROM projects WHERE id = ?1", [&id])? > 0)).await
    }

    async fn code_counts(&self, project: &Project, now: i64) -> StoreResult<CodeCounts> {
        let (id, project_expiry) = (project.id.clone(), project.expires_at);
        self.read(move |c| counts(c, &id, project_expiry, now)).await
    }
}

/// Counts by derived state from the counters plus two range counts on the
/// partial index of live codes with an expiry of their own.
pub(super) fn counts(
    c: &Connection,
    project_id: &str,
    project_expiry: Option<i64>,
    now: i64,
) -> StoreResult<CodeCounts> {
    let (total, disabled, used): (i64, i64, i64) = c
        .prepare_cached("SELECT total, disabled, used FROM project_counters WHERE project_id = ?1")?
        .query_row([project_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .unwrap_or((0, 0, 0));
    let live = total - disabled - used;
    let live_with_expiry = |cmp: &str| -> StoreResult<i64> {
        let sql = format!(
            "SELECT COUNT(*) FROM codes WHERE project_id = ?1 AND disabled = 0 AND use_count < max_uses
               AND expires_at IS NOT NULL AND expires_at {cmp} ?2"
        );
        Ok(c.prepare_cached(&sql)?.query_row(params![project_id, now], |r| r.get(0))?)
    };
    let own_expired = live_with_expiry("<=")?;
    let expired = if has_passed(project_expiry, now) {
        // Codes without an expiry of their own follow the project's, which has passed.
        live - live_with_expiry(">")?
    } else {
        own_expired
    };
    Ok(CodeCounts { total, used, disabled, expired, unused: live - expired })
}
