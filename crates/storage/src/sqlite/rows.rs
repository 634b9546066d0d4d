//! Row ↔ record mapping shared by the SQLite modules.

use codegate_domain::model::{
    AccessToken, ApiKey, AuditEntry, Code, CodeRules, Project, Quotas, RedemptionAction, RedemptionLog, Role, Scope,
    User,
};
use rusqlite::Row;

pub(super) const PROJECT_COLUMNS: &str =
    "id, name, description, enabled, expires_at, rules, created_at, updated_at, quotas";

pub(super) fn project(r: &Row) -> rusqlite::Result<Project> {
    let rules: String = r.get(5)?;
    Ok(Project {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        enabled: r.get(3)?,
        expires_at: r.get(4)?,
        rules: serde_json::from_str::<CodeRules>(&rules).unwrap_or_default(),
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        quotas: serde_json::from_str::<Quotas>(&r.get::<_, String>(8)?).unwrap_or_default(),
    })
}

pub(super) const CODE_COLUMNS: &str =
    "id, project_id, code, disabled, expires_at, max_uses, use_count, verified_at, verified_by, batch_id, metadata, created_at, seq";

pub(super) fn code(r: &Row) -> rusqlite::Result<Code> {
    Ok(Code {
        id: r.get(0)?,
        project_id: r.get(1)?,
        code: r.get(2)?,
        disabled: r.get(3)?,
        expires_at: r.get(4)?,
        max_uses: r.get(5)?,
        use_count: r.get(6)?,
        verified_at: r.get(7)?,
        verified_by: r.get(8)?,
        batch_id: r.get(9)?,
        metadata: json_column(r.get(10)?),
        created_at: r.get(11)?,
    })
}

pub(super) fn json_column(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

pub(super) fn json_text(value: &Option<serde_json::Value>) -> Option<String> {
    value.as_ref().map(|v| v.to_string())
}

pub(super) const REDEMPTION_COLUMNS: &str =
    "id, project_id, code_id, code, action, result, reason, actor, ip_address, user_agent, credential, created_at";

pub(super) fn redemption(r: &Row) -> rusqlite::Result<RedemptionLog> {
    let action: String = r.get(4)?;
    Ok(RedemptionLog {
        id: r.get(0)?,
        project_id: r.get(1)?,
        code_id: r.get(2)?,
        code: r.get(3)?,
        action: if action == "reactivate" { RedemptionAction::Reactivate } else { RedemptionAction::Verify },
        result: r.get(5)?,
        reason: r.get(6)?,
        actor: r.get(7)?,
        ip_address: r.get(8)?,
        user_agent: r.get(9)?,
        credential: r.get(10)?,
        created_at: r.get(11)?,
    })
}

pub(super) const API_KEY_COLUMNS: &str =
    "id, project_id, api_key, name, sealed_secret, sealed_previous_secret, previous_valid_until, enabled, last_used_at, created_at";

pub(super) fn api_key(r: &Row) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        project_id: r.get(1)?,
        api_key: r.get(2)?,
        name: r.get(3)?,
        sealed_secret: r.get(4)?,
        sealed_previous_secret: r.get(5)?,
        previous_valid_until: r.get(6)?,
        enabled: r.get(7)?,
        last_used_at: r.get(8)?,
        created_at: r.get(9)?,
    })
}

pub(super) const USER_COLUMNS: &str = "id, username, password_hash, role, must_change_password, disabled, created_at";

/// Reads a user from `offset` onwards (so joins can reuse it).
pub(super) fn user_at(r: &Row, offset: usize) -> rusqlite::Result<User> {
    let role: String = r.get(offset + 3)?;
    Ok(User {
        id: r.get(offset)?,
        username: r.get(offset + 1)?,
        password_hash: r.get(offset + 2)?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        must_change_password: r.get(offset + 4)?,
        disabled: r.get(offset + 5)?,
        created_at: r.get(offset + 6)?,
    })
}

pub(super) const TOKEN_COLUMNS: &str =
    "t.id, t.user_id, t.name, t.token_hash, t.display_prefix, t.scopes, t.project_id, t.expires_at, t.revoked_at, t.last_used_at, t.created_at";
pub(super) const TOKEN_COLUMN_COUNT: usize = 11;

pub(super) fn token(r: &Row) -> rusqlite::Result<AccessToken> {
    let scopes: String = r.get(5)?;
    Ok(AccessToken {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        token_hash: r.get(3)?,
        display_prefix: r.get(4)?,
        scopes: scopes.split(',').filter_map(Scope::parse).collect(),
        project_id: r.get(6)?,
        expires_at: r.get(7)?,
        revoked_at: r.get(8)?,
        last_used_at: r.get(9)?,
        created_at: r.get(10)?,
    })
}

pub(super) fn scopes_text(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

pub(super) const AUDIT_COLUMNS: &str =
    "id, actor, action, resource_type, resource_id, project_id, result, ip_address, detail, created_at";

pub(super) fn audit(r: &Row) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.get(0)?,
        actor: r.get(1)?,
        action: r.get(2)?,
        resource_type: r.get(3)?,
        resource_id: r.get(4)?,
        project_id: r.get(5)?,
        result: r.get(6)?,
        ip_address: r.get(7)?,
        detail: json_column(r.get(8)?),
        created_at: r.get(9)?,
    })
}
