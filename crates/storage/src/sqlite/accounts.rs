use super::rows::{
    self, scopes_text, API_KEY_COLUMNS, TOKEN_COLUMNS, TOKEN_COLUMN_COUNT, USER_COLUMNS,
};
use super::{unique_violation, SqliteStore};
use crate::error::StoreResult;
use crate::{AccountStore, AuditStore, KeyStore};
use async_trait::async_trait;
use codegate_domain::model::{AccessToken, ApiKey, AuditEntry, User};
use rusqlite::{params, OptionalExtension};

#[async_trait]
impl KeyStore for SqliteStore {
    async fn create_api_key(&self, k: &ApiKey) -> StoreResult<()> {
        let k = k.clone();
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    k.id,
                    k.project_id,
                    k.api_key,
                    k.name,
                    k.sealed_secret,
                    k.sealed_previous_secret,
                    k.previous_valid_until,
                    k.enabled,
                    k.last_used_at,
                    k.created_at
                ],
            )
            .map_err(|e| unique_violation(e, "api_key"))?;
            Ok(())
        })
        .await
    }

    async fn find_api_key(&self, api_key: &str) -> StoreResult<Option<ApiKey>> {
        let api_key = api_key.to_owned();
        self.read(move |c| {
            let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE api_key = ?1");
            Ok(c.prepare_cached(&sql)?
                .query_row([api_key], rows::api_key)
                .optional()?)
        })
        .await
    }

    async fn list_api_keys(&self, project_id: &str) -> StoreResult<Vec<ApiKey>> {
        let project_id = project_id.to_owned();
        self.read(move |c| {
            let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE project_id = ?1 ORDER BY created_at DESC, id");
            let mut stmt = c.prepare_cached(&sql)?;
            let list = stmt.query_map([project_id], rows::api_key)?.collect::<Result<Vec<_>, _>>()?;
            Ok(list)
        })
        .await
    }

    async fn delete_api_key(&self, project_id: &str, id: &str) -> StoreResult<bool> {
        let (p, id) = (project_id.to_owned(), id.to_owned());
        self.write(move |c| {
            Ok(c.execute(
                "DELETE FROM api_keys WHERE id = ?1 AND project_id = ?2",
                [id, p],
            )? > 0)
        })
        .await
    }

    async fn touch_api_key(&self, id: &str, now: i64) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |c| {
            c.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")?
                .execute(params![id, now])?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_user(&self, u: &User) -> StoreResult<()> {
        let u = u.clone();
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                params![
                    u.id,
                    u.username,
                    u.password_hash,
                    u.role.as_str(),
                    u.must_change_password,
                    u.disabled,
                    u.created_at
                ],
            )
            .map_err(|e| unique_violation(e, "username"))?;
            Ok(())
        })
        .await
    }

    async fn count_users(&self) -> StoreResult<i64> {
        self.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?))
            .await
    }

    async fn find_user_by_name(&self, username: &str) -> StoreResult<Option<User>> {
        let username = username.to_owned();
        self.read(move |c| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1");
            Ok(c.prepare_cached(&sql)?
                .query_row([username], |r| rows::user_at(r, 0))
                .optional()?)
        })
        .await
    }

    async fn create_token(&self, t: &AccessToken) -> StoreResult<()> {
        let t = t.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO access_tokens (id, user_id, name, token_hash, display_prefix, scopes, project_id, expires_at, revoked_at, last_used_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    t.id,
                    t.user_id,
                    t.name,
                    t.token_hash,
                    t.display_prefix,
                    scopes_text(&t.scopes),
                    t.project_id,
                    t.expires_at,
                    t.revoked_at,
                    t.last_used_at,
                    t.created_at
                ],
            )
            .map_err(|e| unique_violation(e, "token"))?;
            Ok(())
        })
        .await
    }

    async fn find_token(&self, token_hash: &str) -> StoreResult<Option<(AccessToken, User)>> {
        let token_hash = token_hash.to_owned();
        self.read(move |c| {
            let user_columns = USER_COLUMNS.split(", ").map(|col| format!("u.{col}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT {TOKEN_COLUMNS}, {user_columns} FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?1"
            );
            Ok(c
                .prepare_cached(&sql)?
                .query_row([token_hash], |r| Ok((rows::token(r)?, rows::user_at(r, TOKEN_COLUMN_COUNT)?)))
                .optional()?)
        })
        .await
    }

    async fn touch_token(&self, id: &str, now: i64) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |c| {
            c.prepare_cached("UPDATE access_tokens SET last_used_at = ?2 WHERE id = ?1")?
                .execute(params![id, now])?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        let e = e.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO audit_log (id, actor, action, resource_type, resource_id, project_id, result, ip_address, detail, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                e.id,
                e.actor,
                e.action,
                e.resource_type,
                e.resource_id,
                e.project_id,
                e.result,
                e.ip_address,
                e.detail.as_ref().map(|d| d.to_string()),
                e.created_at
            ])?;
            Ok(())
        })
        .await
    }
}
