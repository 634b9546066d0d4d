use super::rows::{
    self, scopes_text, API_KEY_COLUMNS, AUDIT_COLUMNS, SEALED_SECRETS_COLUMNS, TOKEN_COLUMNS, TOKEN_COLUMN_COUNT,
    USER_COLUMNS,
};
use super::{unique_violation, SqliteStore};
use crate::error::{StoreError, StoreResult};
use crate::{AccountStore, AuditFilter, AuditStore, KeyStore, LogPage, SealedSecrets, UserPatch};
use async_trait::async_trait;
use codegate_domain::model::{AccessToken, ApiKey, AuditEntry, Session, User};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

fn load_key(c: &Connection, project_id: &str, id: &str) -> StoreResult<Option<ApiKey>> {
    let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?1 AND project_id = ?2");
    Ok(c.prepare_cached(&sql)?.query_row([id, project_id], rows::api_key).optional()?)
}

fn load_user(c: &Connection, id: &str) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1");
    Ok(c.prepare_cached(&sql)?.query_row([id], |r| rows::user_at(r, 0)).optional()?)
}

fn token_select(where_clause: &str) -> String {
    format!("SELECT {TOKEN_COLUMNS} FROM access_tokens t WHERE {where_clause}")
}

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
            Ok(c.prepare_cached(&sql)?.query_row([api_key], rows::api_key).optional()?)
        })
        .await
    }

    async fn list_api_keys(&self, project_id: &str) -> StoreResult<Vec<ApiKey>> {
        let project_id = project_id.to_owned();
        self.read(move |c| {
            let sql =
                format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE project_id = ?1 ORDER BY created_at DESC, id");
            let mut stmt = c.prepare_cached(&sql)?;
            let list = stmt.query_map([project_id], rows::api_key)?.collect::<Result<Vec<_>, _>>()?;
            Ok(list)
        })
        .await
    }

    async fn delete_api_key(&self, project_id: &str, id: &str) -> StoreResult<bool> {
        let (p, id) = (project_id.to_owned(), id.to_owned());
        self.write(move |c| Ok(c.execute("DELETE FROM api_keys WHERE id = ?1 AND project_id = ?2", [id, p])? > 0)).await
    }

    async fn set_api_key_enabled(&self, project_id: &str, id: &str, enabled: bool) -> StoreResult<Option<ApiKey>> {
        let (p, id) = (project_id.to_owned(), id.to_owned());
        self.write(move |c| {
            c.execute("UPDATE api_keys SET enabled = ?3 WHERE id = ?1 AND project_id = ?2", params![id, p, enabled])?;
            load_key(c, &p, &id)
        })
        .await
    }

    async fn rotate_api_key(
        &self,
        project_id: &str,
        id: &str,
        sealed_secret: Vec<u8>,
        previous_valid_until: i64,
    ) -> StoreResult<Option<ApiKey>> {
        let (p, id) = (project_id.to_owned(), id.to_owned());
        self.write(move |c| {
            c.execute(
                "UPDATE api_keys SET sealed_previous_secret = sealed_secret, previous_valid_until = ?3, sealed_secret = ?4
                  WHERE id = ?1 AND project_id = ?2",
                params![id, p, previous_valid_until, sealed_secret],
            )?;
            load_key(c, &p, &id)
        })
        .await
    }

    async fn touch_api_key(&self, id: &str, now: i64) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |c| {
            c.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")?.execute(params![id, now])?;
            Ok(())
        })
        .await
    }

    async fn sealed_secrets(&self) -> StoreResult<Vec<SealedSecrets>> {
        self.read(|c| {
            let sql = format!("SELECT {SEALED_SECRETS_COLUMNS} FROM api_keys ORDER BY id");
            let list = c.prepare(&sql)?.query_map([], rows::sealed_secrets)?.collect::<Result<Vec<_>, _>>()?;
            Ok(list)
        })
        .await
    }

    async fn reseal_secrets(&self, changes: Vec<(SealedSecrets, SealedSecrets)>) -> StoreResult<()> {
        // One transaction of its own: a failure leaves every key as it was.
        self.write_alone(move |c| {
            let mut update = c.prepare(
                "UPDATE api_keys SET sealed_secret = ?4, sealed_previous_secret = ?5
                  WHERE id = ?1 AND sealed_secret = ?2 AND sealed_previous_secret IS ?3",
            )?;
            for (read, resealed) in &changes {
                let params = params![read.key_id, read.secret, read.previous, resealed.secret, resealed.previous];
                if update.execute(params)? != 1 {
                    return Err(StoreError::Conflict("api_key_changed"));
                }
            }
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
        self.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?)).await
    }

    async fn find_user_by_name(&self, username: &str) -> StoreResult<Option<User>> {
        let username = username.to_owned();
        self.read(move |c| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1");
            Ok(c.prepare_cached(&sql)?.query_row([username], |r| rows::user_at(r, 0)).optional()?)
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

    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        let id = id.to_owned();
        self.read(move |c| load_user(c, &id)).await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_at, username"))?;
            let list = stmt.query_map([], |r| rows::user_at(r, 0))?.collect::<Result<Vec<_>, _>>()?;
            Ok(list)
        })
        .await
    }

    async fn update_user(&self, id: &str, patch: UserPatch) -> StoreResult<Option<User>> {
        let id = id.to_owned();
        self.write(move |c| {
            let Some(mut u) = load_user(c, &id)? else { return Ok(None) };
            patch.apply_to(&mut u);
            c.execute(
                "UPDATE users SET role = ?2, disabled = ?3, password_hash = ?4, must_change_password = ?5 WHERE id = ?1",
                params![u.id, u.role.as_str(), u.disabled, u.password_hash, u.must_change_password],
            )?;
            Ok(Some(u))
        })
        .await
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |c| Ok(c.execute("DELETE FROM users WHERE id = ?1", [id])? > 0)).await
    }

    async fn list_tokens(&self, user_id: Option<&str>) -> StoreResult<Vec<AccessToken>> {
        let user_id = user_id.map(str::to_owned);
        self.read(move |c| {
            let sql = token_select("(?1 IS NULL OR t.user_id = ?1) ORDER BY t.created_at DESC, t.id");
            let mut stmt = c.prepare_cached(&sql)?;
            let list = stmt.query_map([user_id], rows::token)?.collect::<Result<Vec<_>, _>>()?;
            Ok(list)
        })
        .await
    }

    async fn get_token(&self, id: &str) -> StoreResult<Option<AccessToken>> {
        let id = id.to_owned();
        self.read(move |c| Ok(c.prepare_cached(&token_select("t.id = ?1"))?.query_row([id], rows::token).optional()?))
            .await
    }

    async fn revoke_token(&self, id: &str, now: i64) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE access_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )? > 0)
        })
        .await
    }

    async fn create_session(&self, s: &Session) -> StoreResult<()> {
        let s = s.clone();
        self.write(move |c| {
            // Expired sessions are swept whenever a new one starts.
            c.execute("DELETE FROM sessions WHERE expires_at <= ?1", [s.created_at])?;
            c.execute(
                "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.id_hash, s.user_id, s.csrf_token, s.created_at, s.expires_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn find_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<(Session, User)>> {
        let id_hash = id_hash.to_owned();
        self.read(move |c| {
            let user_columns = USER_COLUMNS.split(", ").map(|col| format!("u.{col}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT s.id_hash, s.user_id, s.csrf_token, s.created_at, s.expires_at, {user_columns}
                   FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?1 AND s.expires_at > ?2"
            );
            Ok(c.prepare_cached(&sql)?
                .query_row(params![id_hash, now], |r| {
                    Ok((
                        Session {
                            id_hash: r.get(0)?,
                            user_id: r.get(1)?,
                            csrf_token: r.get(2)?,
                            created_at: r.get(3)?,
                            expires_at: r.get(4)?,
                        },
                        rows::user_at(r, 5)?,
                    ))
                })
                .optional()?)
        })
        .await
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        let id_hash = id_hash.to_owned();
        self.write(move |c| {
            c.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
            Ok(())
        })
        .await
    }

    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<()> {
        let user_id = user_id.to_owned();
        self.write(move |c| {
            c.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
            Ok(())
        })
        .await
    }

    async fn touch_token(&self, id: &str, now: i64) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |c| {
            c.prepare_cached("UPDATE access_tokens SET last_used_at = ?2 WHERE id = ?1")?.execute(params![id, now])?;
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

    async fn list_audit(&self, filter: &AuditFilter, page: u32, page_size: u32) -> StoreResult<LogPage<AuditEntry>> {
        let filter = filter.clone();
        self.read(move |c| {
            let where_clause =
                "(?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR project_id = ?3)";
            let args: Vec<Value> = vec![
                filter.actor.map_or(Value::Null, Value::Text),
                filter.action.map_or(Value::Null, Value::Text),
                filter.project_id.map_or(Value::Null, Value::Text),
                Value::Integer(i64::from(page_size)),
                Value::Integer(i64::from(page.saturating_sub(1)) * i64::from(page_size)),
            ];
            let total = c
                .prepare_cached(&format!("SELECT COUNT(*) FROM audit_log WHERE {where_clause}"))?
                .query_row(params_from_iter(args[..3].iter()), |r| r.get(0))?;
            let sql = format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {where_clause} ORDER BY seq DESC LIMIT ?4 OFFSET ?5"
            );
            let items = c
                .prepare_cached(&sql)?
                .query_map(params_from_iter(args.iter()), rows::audit)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(LogPage { items, total })
        })
        .await
    }
}
