//! Reading records from result rows, written once for both backends.
//!
//! Both stores select the same columns in the same order, so the mapping from
//! a row to a domain record is the same code: [`readers!`] expands it for one
//! backend's row type, with that row's getter (`rusqlite::Row::get`,
//! `sqlx::Row::try_get`). A macro rather than a generic function, because
//! rusqlite takes its row mappers as `for<'a> FnOnce(&Row<'a>)`, which a
//! generic function instantiated at one row lifetime is not.

use codegate_domain::model::Scope;

pub(crate) const PROJECT_COLUMNS: &str =
    "id, name, description, enabled, expires_at, rules, created_at, updated_at, quotas";

/// The code's fields, then its position (`seq`, the 13th column) for paging.
pub(crate) const CODE_COLUMNS: &str =
    "id, project_id, code, disabled, expires_at, max_uses, use_count, verified_at, verified_by, batch_id, metadata, created_at, seq";

pub(crate) const REDEMPTION_COLUMNS: &str =
    "id, project_id, code_id, code, action, result, reason, actor, ip_address, user_agent, credential, created_at";

pub(crate) const API_KEY_COLUMNS: &str =
    "id, project_id, api_key, name, sealed_secret, sealed_previous_secret, previous_valid_until, enabled, last_used_at, created_at";

pub(crate) const SEALED_SECRETS_COLUMNS: &str = "id, api_key, sealed_secret, sealed_previous_secret";

pub(crate) const USER_COLUMNS: &str = "id, username, password_hash, role, must_change_password, disabled, created_at";

pub(crate) const TOKEN_COLUMNS: &str =
    "t.id, t.user_id, t.name, t.token_hash, t.display_prefix, t.scopes, t.project_id, t.expires_at, t.revoked_at, t.last_used_at, t.created_at";
pub(crate) const TOKEN_COLUMN_COUNT: usize = 11;

/// A batch and the number of its codes.
pub(crate) const BATCH_SUMMARY_COLUMNS: &str =
    "b.id, b.project_id, b.name, b.source, b.pattern, b.requested, b.metadata, b.created_at,
     (SELECT COUNT(*) FROM codes WHERE batch_id = b.id)";

pub(crate) const AUDIT_COLUMNS: &str =
    "id, actor, action, resource_type, resource_id, project_id, result, ip_address, detail, created_at";

/// A column list qualified with a table alias, for joins.
pub(crate) fn columns_of(columns: &str, alias: &str) -> String {
    columns.split(',').map(|col| format!("{alias}.{}", col.trim())).collect::<Vec<_>>().join(", ")
}

/// `USER_COLUMNS` qualified with a table alias.
pub(crate) fn user_columns_of(alias: &str) -> String {
    columns_of(USER_COLUMNS, alias)
}

/// A JSON column's text as a value (text that does not parse reads as none).
pub(crate) fn json_column(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

pub(crate) fn json_text(value: &Option<serde_json::Value>) -> Option<String> {
    value.as_ref().map(|v| v.to_string())
}

/// A `LIKE … ESCAPE '\'` pattern that matches `s` anywhere, its wildcards taken literally.
pub(crate) fn like_pattern(s: &str) -> String {
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

/// Scopes as stored: comma-separated names.
pub(crate) fn scopes_text(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

/// Defines `project`, `code`, `redemption`, `api_key`, `sealed_secrets`, `user_at`, `token`,
/// `batch_summary` and `audit` for rows of type `$row`, read with `$row::$get(index)` and failing
/// with `$result`'s error. Each reads the columns of the matching `*_COLUMNS`
/// list above, in that order.
macro_rules! readers {
    ($row:ty, $result:ident, $get:ident) => {
        use codegate_domain::model::{
            AccessToken, ApiKey, AuditEntry, Code, CodeRules, Project, Quotas, RedemptionAction, RedemptionLog, Role,
            Scope, User,
        };

        pub(super) fn project(r: &$row) -> $result<Project> {
            let rules: String = r.$get(5)?;
            let quotas: String = r.$get(8)?;
            Ok(Project {
                id: r.$get(0)?,
                name: r.$get(1)?,
                description: r.$get(2)?,
                enabled: r.$get(3)?,
                expires_at: r.$get(4)?,
                rules: serde_json::from_str::<CodeRules>(&rules).unwrap_or_default(),
                created_at: r.$get(6)?,
                updated_at: r.$get(7)?,
                quotas: serde_json::from_str::<Quotas>(&quotas).unwrap_or_default(),
            })
        }

        pub(super) fn code(r: &$row) -> $result<Code> {
            Ok(Code {
                id: r.$get(0)?,
                project_id: r.$get(1)?,
                code: r.$get(2)?,
                disabled: r.$get(3)?,
                expires_at: r.$get(4)?,
                max_uses: r.$get(5)?,
                use_count: r.$get(6)?,
                verified_at: r.$get(7)?,
                verified_by: r.$get(8)?,
                batch_id: r.$get(9)?,
                metadata: $crate::records::json_column(r.$get(10)?),
                created_at: r.$get(11)?,
            })
        }

        pub(super) fn redemption(r: &$row) -> $result<RedemptionLog> {
            let action: String = r.$get(4)?;
            Ok(RedemptionLog {
                id: r.$get(0)?,
                project_id: r.$get(1)?,
                code_id: r.$get(2)?,
                code: r.$get(3)?,
                action: if action == "reactivate" { RedemptionAction::Reactivate } else { RedemptionAction::Verify },
                result: r.$get(5)?,
                reason: r.$get(6)?,
                actor: r.$get(7)?,
                ip_address: r.$get(8)?,
                user_agent: r.$get(9)?,
                credential: r.$get(10)?,
                created_at: r.$get(11)?,
            })
        }

        pub(super) fn api_key(r: &$row) -> $result<ApiKey> {
            Ok(ApiKey {
                id: r.$get(0)?,
                project_id: r.$get(1)?,
                api_key: r.$get(2)?,
                name: r.$get(3)?,
                sealed_secret: r.$get(4)?,
                sealed_previous_secret: r.$get(5)?,
                previous_valid_until: r.$get(6)?,
                enabled: r.$get(7)?,
                last_used_at: r.$get(8)?,
                created_at: r.$get(9)?,
            })
        }

        pub(super) fn sealed_secrets(r: &$row) -> $result<$crate::SealedSecrets> {
            Ok($crate::SealedSecrets {
                key_id: r.$get(0)?,
                api_key: r.$get(1)?,
                secret: r.$get(2)?,
                previous: r.$get(3)?,
            })
        }

        /// Reads a user from `offset` onwards (so joins can reuse it).
        pub(super) fn user_at(r: &$row, offset: usize) -> $result<User> {
            let role: String = r.$get(offset + 3)?;
            Ok(User {
                id: r.$get(offset)?,
                username: r.$get(offset + 1)?,
                password_hash: r.$get(offset + 2)?,
                role: Role::parse(&role).unwrap_or(Role::Viewer),
                must_change_password: r.$get(offset + 4)?,
                disabled: r.$get(offset + 5)?,
                created_at: r.$get(offset + 6)?,
            })
        }

        pub(super) fn token(r: &$row) -> $result<AccessToken> {
            let scopes: String = r.$get(5)?;
            Ok(AccessToken {
                id: r.$get(0)?,
                user_id: r.$get(1)?,
                name: r.$get(2)?,
                token_hash: r.$get(3)?,
                display_prefix: r.$get(4)?,
                scopes: scopes.split(',').filter_map(Scope::parse).collect(),
                project_id: r.$get(6)?,
                expires_at: r.$get(7)?,
                revoked_at: r.$get(8)?,
                last_used_at: r.$get(9)?,
                created_at: r.$get(10)?,
            })
        }

        /// A batch with how many of its codes are left (the 9th column).
        pub(super) fn batch_summary(r: &$row) -> $result<$crate::BatchSummary> {
            let source: String = r.$get(3)?;
            Ok($crate::BatchSummary {
                batch: $crate::Batch {
                    id: r.$get(0)?,
                    project_id: r.$get(1)?,
                    name: r.$get(2)?,
                    source: if source == "import" { "import" } else { "generate" },
                    pattern: r.$get(4)?,
                    requested: r.$get(5)?,
                    metadata: $crate::records::json_column(r.$get(6)?),
                    created_at: r.$get(7)?,
                },
                code_count: r.$get(8)?,
            })
        }

        pub(super) fn audit(r: &$row) -> $result<AuditEntry> {
            Ok(AuditEntry {
                id: r.$get(0)?,
                actor: r.$get(1)?,
                action: r.$get(2)?,
                resource_type: r.$get(3)?,
                resource_id: r.$get(4)?,
                project_id: r.$get(5)?,
                result: r.$get(6)?,
                ip_address: r.$get(7)?,
                detail: $crate::records::json_column(r.$get(8)?),
                created_at: r.$get(9)?,
            })
        }
    };
}
pub(crate) use readers;
