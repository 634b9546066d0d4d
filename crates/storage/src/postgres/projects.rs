use super::rows::{self, PROJECT_COLUMNS};
use super::{map_err, unique_violation, with_retries, PgStore};
use crate::error::StoreResult;
use crate::{ProjectPatch, ProjectStore};
use async_trait::async_trait;
use codegate_domain::codes::has_passed;
use codegate_domain::model::{CodeCounts, Project};
use sqlx::{PgConnection, PgPool, Row};

pub(super) async fn load(c: &mut PgConnection, id: &str, lock: bool) -> sqlx::Result<Option<Project>> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    sqlx::query(&sql).bind(id).try_map(|r| rows::project(&r)).fetch_optional(c).await
}

async fn update_in(pool: &PgPool, id: &str, patch: ProjectPatch, now: i64) -> sqlx::Result<Option<Project>> {
    let mut tx = pool.begin().await?;
    let Some(mut p) = load(&mut tx, id, true).await? else { return Ok(None) };
    patch.apply_to(&mut p, now);
    sqlx::query(
        "UPDATE projects SET name = $2, description = $3, enabled = $4, expires_at = $5, rules = $6, updated_at = $7, quotas = $8
          WHERE id = $1",
    )
    .bind(&p.id)
    .bind(&p.name)
    .bind(&p.description)
    .bind(p.enabled)
    .bind(p.expires_at)
    .bind(serde_json::to_string(&p.rules).unwrap())
    .bind(p.updated_at)
    .bind(serde_json::to_string(&p.quotas).unwrap())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(p))
}

#[async_trait]
impl ProjectStore for PgStore {
    async fn create_project(&self, p: &Project) -> StoreResult<()> {
        sqlx::query(&format!("INSERT INTO projects ({PROJECT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
            .bind(&p.id)
            .bind(&p.name)
            .bind(&p.description)
            .bind(p.enabled)
            .bind(p.expires_at)
            .bind(serde_json::to_string(&p.rules).unwrap())
            .bind(p.created_at)
            .bind(p.updated_at)
            .bind(serde_json::to_string(&p.quotas).unwrap())
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, "project_name"))?;
        Ok(())
    }

    async fn get_project(&self, id: &str) -> StoreResult<Option<Project>> {
        let mut c = self.pool.acquire().await.map_err(map_err)?;
        load(&mut c, id, false).await.map_err(map_err)
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        sqlx::query(&format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY created_at DESC, id"))
            .try_map(|r| rows::project(&r))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn update_project(&self, id: &str, patch: ProjectPatch, now: i64) -> StoreResult<Option<Project>> {
        with_retries(|| update_in(&self.pool, id, patch.clone(), now))
            .await
            .map_err(|e| unique_violation(e, "project_name"))
    }

    async fn delete_project(&self, id: &str) -> StoreResult<bool> {
        with_retries(|| async {
            let mut tx = self.pool.begin().await?;
            let deleted = sqlx::query("DELETE FROM projects WHERE id = $1").bind(id).execute(&mut *tx).await?;
            // The cascade's counter updates land here too; the slots go with the project.
            sqlx::query("DELETE FROM project_counters WHERE project_id = $1").bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(deleted.rows_affected() > 0)
        })
        .await
        .map_err(map_err)
    }

    async fn code_counts(&self, project: &Project, now: i64) -> StoreResult<CodeCounts> {
        let mut c = self.pool.acquire().await.map_err(map_err)?;
        Ok(counts(&mut c, &project.id, project.expires_at, now).await.map_err(map_err)?.0)
    }
}

/// Counts by derived state: the counter slots plus range counts on the partial
/// index of live codes with an expiry of their own; and the position the
/// project's next code will take (1 before its first). One statement, one
/// snapshot: a list page compares the total with that position.
pub(super) async fn counts(
    c: &mut PgConnection,
    project_id: &str,
    project_expiry: Option<i64>,
    now: i64,
) -> sqlx::Result<(CodeCounts, i64)> {
    let project_expired = has_passed(project_expiry, now);
    let row = sqlx::query(
        "SELECT COALESCE(SUM(total), 0)::BIGINT, COALESCE(SUM(disabled), 0)::BIGINT, COALESCE(SUM(used), 0)::BIGINT,
                (SELECT COUNT(*) FROM codes WHERE project_id = $1 AND NOT disabled AND use_count < max_uses
                    AND expires_at IS NOT NULL AND expires_at <= $2),
                CASE WHEN $3 THEN (SELECT COUNT(*) FROM codes WHERE project_id = $1 AND NOT disabled
                    AND use_count < max_uses AND expires_at IS NOT NULL AND expires_at > $2) ELSE 0 END,
                COALESCE((SELECT next_position FROM code_positions WHERE project_id = $1), 1)
           FROM project_counters WHERE project_id = $1",
    )
    .bind(project_id)
    .bind(now)
    .bind(project_expired)
    .fetch_one(c)
    .await?;
    let (total, disabled, used): (i64, i64, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let (own_expired, own_live): (i64, i64) = (row.try_get(3)?, row.try_get(4)?);
    let live = total - disabled - used;
    // Codes without an expiry of their own follow the project's, which may have passed.
    let expired = if project_expired { live - own_live } else { own_expired };
    let next_position: i64 = row.try_get(5)?;
    Ok((CodeCounts { total, used, disabled, expired, unused: live - expired }, next_position))
}
