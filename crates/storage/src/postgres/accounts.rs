use super::rows::{
    self, scopes_text, user_columns_of, API_KEY_COLUMNS, AUDIT_COLUMNS, SEALED_SECRETS_COLUMNS, TOKEN_COLUMNS,
    TOKEN_COLUMN_COUNT, USER_COLUMNS,
};
use super::{map_err, unique_violation, with_retries, PgStore};
use crate::error::{StoreError, StoreResult};
use crate::{AccountStore, AuditFilter, AuditStore, KeyStore, LogPage, SealedSecrets, UserPatch};
use async_trait::async_trait;
use codegate_domain::model::{AccessToken, ApiKey, AuditEntry, Session, User};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

fn token_select(where_clause: &str) -> String {
    format!("SELECT {TOKEN_COLUMNS} FROM access_tokens t WHERE {where_clause}")
}

async fn update_user_in(pool: &PgPool, id: &str, patch: UserPatch) -> sqlx::Result<Option<User>> {
    let mut tx = pool.begin().await?;
    let Some(mut u) = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .try_map(|r| rows::user_at(&r, 0))
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(None);
    };
    patch.apply_to(&mut u);
    sqlx::query(
        "UPDATE users SET role = $2, disabled = $3, password_hash = $4, must_change_password = $5 WHERE id = $1",
    )
    .bind(&u.id)
    .bind(u.role.as_str())
    .bind(u.disabled)
    .bind(&u.password_hash)
    .bind(u.must_change_password)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(u))
}

#[async_trait]
impl KeyStore for PgStore {
    async fn create_api_key(&self, k: &ApiKey) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&k.id)
        .bind(&k.project_id)
        .bind(&k.api_key)
        .bind(&k.name)
        .bind(&k.sealed_secret)
        .bind(&k.sealed_previous_secret)
        .bind(k.previous_valid_until)
        .bind(k.enabled)
        .bind(k.last_used_at)
        .bind(k.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, "api_key"))?;
        Ok(())
    }

    async fn find_api_key(&self, api_key: &str) -> StoreResult<Option<ApiKey>> {
        sqlx::query(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE api_key = $1"))
            .bind(api_key)
            .try_map(|r| rows::api_key(&r))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn list_api_keys(&self, project_id: &str) -> StoreResult<Vec<ApiKey>> {
        sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE project_id = $1 ORDER BY created_at DESC, id"
        ))
        .bind(project_id)
        .try_map(|r| rows::api_key(&r))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn delete_api_key(&self, project_id: &str, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND project_id = $2")
            .bind(id)
            .bind(project_id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_api_key(&self, id: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn sealed_secrets(&self) -> StoreResult<Vec<SealedSecrets>> {
        sqlx::query(&format!("SELECT {SEALED_SECRETS_COLUMNS} FROM api_keys ORDER BY id"))
            .try_map(|r: PgRow| rows::sealed_secrets(&r))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn reseal_secrets(&self, changes: Vec<(SealedSecrets, SealedSecrets)>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for (read, resealed) in &changes {
            let updated = sqlx::query(
                "UPDATE api_keys SET sealed_secret = $4, sealed_previous_secret = $5
                  WHERE id = $1 AND sealed_secret = $2 AND sealed_previous_secret IS NOT DISTINCT FROM $3",
            )
            .bind(&read.key_id)
            .bind(&read.secret)
            .bind(&read.previous)
            .bind(&resealed.secret)
            .bind(&resealed.previous)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if updated.rows_affected() != 1 {
                // Dropping the transaction rolls back what it wrote.
                return Err(StoreError::Conflict("api_key_changed"));
            }
        }
        tx.commit().await.map_err(map_err)
    }

    async fn set_api_key_enabled(&self, project_id: &str, id: &str, enabled: bool) -> StoreResult<Option<ApiKey>> {
        sqlx::query(&format!(
            "UPDATE api_keys SET enabled = $3 WHERE id = $1 AND project_id = $2 RETURNING {API_KEY_COLUMNS}"
        ))
        .bind(id)
        .bind(project_id)
        .bind(enabled)
        .try_map(|r| rows::api_key(&r))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn rotate_api_key(
        &self,
        project_id: &str,
        id: &str,
        sealed_secret: Vec<u8>,
        previous_valid_until: i64,
    ) -> StoreResult<Option<ApiKey>> {
        sqlx::query(&format!(
            "UPDATE api_keys SET sealed_previous_secret = sealed_secret, previous_valid_until = $3, sealed_secret = $4
              WHERE id = $1 AND project_id = $2 RETURNING {API_KEY_COLUMNS}"
        ))
        .bind(id)
        .bind(project_id)
        .bind(previous_valid_until)
        .bind(sealed_secret)
        .try_map(|r| rows::api_key(&r))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)
    }
}

#[async_trait]
impl AccountStore for PgStore {
    async fn create_user(&self, u: &User) -> StoreResult<()> {
        sqlx::query(&format!("INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(&u.id)
            .bind(&u.username)
            .bind(&u.password_hash)
            .bind(u.role.as_str())
            .bind(u.must_change_password)
            .bind(u.disabled)
            .bind(u.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, "username"))?;
        Ok(())
    }

    async fn count_users(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await.map_err(map_err)
    }

    async fn find_user_by_name(&self, username: &str) -> StoreResult<Option<User>> {
        sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"))
            .bind(username)
            .try_map(|r| rows::user_at(&r, 0))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn create_token(&self, t: &AccessToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO access_tokens (id, user_id, name, token_hash, display_prefix, scopes, project_id, expires_at, revoked_at, last_used_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&t.id)
        .bind(&t.user_id)
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(&t.display_prefix)
        .bind(scopes_text(&t.scopes))
        .bind(&t.project_id)
        .bind(t.expires_at)
        .bind(t.revoked_at)
        .bind(t.last_used_at)
        .bind(t.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, "token"))?;
        Ok(())
    }

    async fn find_token(&self, token_hash: &str) -> StoreResult<Option<(AccessToken, User)>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS}, {} FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
            user_columns_of("u")
        );
        sqlx::query(&sql)
            .bind(token_hash)
            .try_map(|r: PgRow| Ok((rows::token(&r)?, rows::user_at(&r, TOKEN_COLUMN_COUNT)?)))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn touch_token(&self, id: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE access_tokens SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .try_map(|r| rows::user_at(&r, 0))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_at, username"))
            .try_map(|r| rows::user_at(&r, 0))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn update_user(&self, id: &str, patch: UserPatch) -> StoreResult<Option<User>> {
        with_retries(|| update_user_in(&self.pool, id, patch.clone())).await.map_err(map_err)
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&self.pool).await.map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_tokens(&self, user_id: Option<&str>) -> StoreResult<Vec<AccessToken>> {
        sqlx::query(&token_select("($1::TEXT IS NULL OR t.user_id = $1) ORDER BY t.created_at DESC, t.id"))
            .bind(user_id)
            .try_map(|r| rows::token(&r))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn get_token(&self, id: &str) -> StoreResult<Option<AccessToken>> {
        sqlx::query(&token_select("t.id = $1"))
            .bind(id)
            .try_map(|r| rows::token(&r))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn revoke_token(&self, id: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE access_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_session(&self, s: &Session) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Expired sessions are swept whenever a new one starts.
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(s.created_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.id_hash)
        .bind(&s.user_id)
        .bind(&s.csrf_token)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn find_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<(Session, User)>> {
        let sql = format!(
            "SELECT s.id_hash, s.user_id, s.csrf_token, s.created_at, s.expires_at, {}
               FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1 AND s.expires_at > $2",
            user_columns_of("u")
        );
        sqlx::query(&sql)
            .bind(id_hash)
            .bind(now)
            .try_map(|r: PgRow| {
                Ok((
                    Session {
                        id_hash: r.try_get(0)?,
                        user_id: r.try_get(1)?,
                        csrf_token: r.try_get(2)?,
                        created_at: r.try_get(3)?,
                        expires_at: r.try_get(4)?,
                    },
                    rows::user_at(&r, 5)?,
                ))
            })
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

#[async_trait]
impl AuditStore for PgStore {
    async fn record_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (id, actor, action, resource_type, resource_id, project_id, result, ip_address, detail, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&e.id)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.resource_type)
        .bind(&e.resource_id)
        .bind(&e.project_id)
        .bind(&e.result)
        .bind(&e.ip_address)
        .bind(e.detail.as_ref().map(|d| d.to_string()))
        .bind(e.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn list_audit(&self, filter: &AuditFilter, page: u32, page_size: u32) -> StoreResult<LogPage<AuditEntry>> {
        let push_where = |qb: &mut QueryBuilder<'_, Postgres>| {
            qb.push(" WHERE TRUE");
            if let Some(actor) = &filter.actor {
                qb.push(" AND actor = ").push_bind(actor.clone());
            }
            if let Some(action) = &filter.action {
                qb.push(" AND action = ").push_bind(action.clone());
            }
            if let Some(project_id) = &filter.project_id {
                qb.push(" AND project_id = ").push_bind(project_id.clone());
            }
        };
        super::log_page(&self.pool, "audit_log", AUDIT_COLUMNS, push_where, page, page_size, rows::audit).await
    }
}
