//! The JSON shapes of answers. SDK shapes are fixed by `codegate-sdk` 0.1.1:
//! fields may be added, none removed or retyped.

use codegate_domain::model::{ApiKey, Code, CodeCounts, Project, RedemptionLog};
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize, utoipa::ToSchema)]
pub struct StatisticsDto {
    pub total_codes: i64,
    pub used_codes: i64,
    pub unused_codes: i64,
    pub disabled_codes: i64,
    pub expired_codes: i64,
}

impl From<CodeCounts> for StatisticsDto {
    fn from(c: CodeCounts) -> Self {
        StatisticsDto {
            total_codes: c.total,
            used_codes: c.used,
            unused_codes: c.unused,
            disabled_codes: c.disabled,
            expired_codes: c.expired,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProjectDto {
    pub id: String,
    pub name: String,
    pub description: String,
    /// true = enabled.
    pub status: bool,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    #[schema(value_type = Object)]
    pub rules: codegate_domain::model::CodeRules,
    #[schema(value_type = Object)]
    pub quotas: codegate_domain::model::Quotas,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics: Option<StatisticsDto>,
}

impl ProjectDto {
    pub fn new(p: Project, counts: Option<CodeCounts>) -> Self {
        ProjectDto {
            id: p.id,
            name: p.name,
            description: p.description,
            status: p.enabled,
            expires_at: p.expires_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
            rules: p.rules,
            quotas: p.quotas,
            statistics: counts.map(Into::into),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CodeDto {
    pub id: String,
    pub code: String,
    /// true = used (no uses left).
    pub status: bool,
    pub is_disabled: bool,
    pub is_expired: bool,
    pub expires_at: Option<i64>,
    pub verified_at: Option<i64>,
    pub verified_by: Option<String>,
    pub created_at: i64,
    pub state: &'static str,
    pub use_count: i64,
    pub max_uses: i64,
    pub batch_id: Option<String>,
    pub metadata: Option<Value>,
}

impl CodeDto {
    pub fn new(c: Code, project_expires_at: Option<i64>, now: i64) -> Self {
        let facts = c.facts();
        CodeDto {
            status: facts.is_used(),
            is_disabled: c.disabled,
            is_expired: facts.is_expired(project_expires_at, now),
            state: facts.state(project_expires_at, now).as_str(),
            id: c.id,
            code: c.code,
            expires_at: c.expires_at,
            verified_at: c.verified_at,
            verified_by: c.verified_by,
            created_at: c.created_at,
            use_count: c.use_count,
            max_uses: c.max_uses,
            batch_id: c.batch_id,
            metadata: c.metadata,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LogDto {
    pub id: String,
    pub verified_at: i64,
    pub verified_by: Option<String>,
    pub ip_address: Option<String>,
    /// `success`, `failed` or `reactivated`.
    pub result: String,
    pub action: &'static str,
    pub reason: Option<String>,
}

impl From<RedemptionLog> for LogDto {
    fn from(l: RedemptionLog) -> Self {
        LogDto {
            id: l.id,
            verified_at: l.created_at,
            verified_by: l.actor,
            ip_address: l.ip_address,
            result: l.result,
            action: l.action.as_str(),
            reason: l.reason,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CodeDetailDto {
    #[serde(flatten)]
    pub code: CodeDto,
    pub verification_logs: Vec<LogDto>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CodeListDto {
    pub items: Vec<CodeDto>,
    pub total: i64,
    pub page: u32,
    pub page_size: u32,
    pub total_pages: i64,
    /// Pass as `cursor` for the next page; walking by cursor stays fast at any depth.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RecentVerificationDto {
    pub code: String,
    pub verified_at: i64,
    pub verified_by: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProjectStatisticsDto {
    pub project_id: String,
    #[serde(flatten)]
    pub counts: StatisticsDto,
    pub usage_rate: f64,
    pub recent_verifications: Vec<RecentVerificationDto>,
}

/// The answer of verify and reactivate; business failures are `success: false`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RedeemDto {
    pub success: bool,
    pub code_id: Option<String>,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub verified_at: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub reactivated_at: Option<Option<i64>>,
    pub message: &'static str,
    pub error_code: Option<&'static str>,
    pub metadata: Option<Value>,
    pub use_count: Option<i64>,
    pub max_uses: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyDto {
    pub id: String,
    pub project_id: String,
    pub api_key: String,
    pub name: Option<String>,
    pub is_active: bool,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

impl From<ApiKey> for ApiKeyDto {
    fn from(k: ApiKey) -> Self {
        ApiKeyDto {
            id: k.id,
            project_id: k.project_id,
            api_key: k.api_key,
            name: k.name,
            is_active: k.enabled,
            last_used_at: k.last_used_at,
            created_at: k.created_at,
        }
    }
}

/// A new key: the only answer that ever carries the secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NewApiKeyDto {
    #[serde(flatten)]
    pub key: ApiKeyDto,
    pub secret: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserDto {
    pub id: String,
    pub username: String,
    #[schema(value_type = String)]
    pub role: codegate_domain::model::Role,
    pub must_change_password: bool,
    pub disabled: bool,
    pub created_at: i64,
}

impl From<codegate_domain::model::User> for UserDto {
    fn from(u: codegate_domain::model::User) -> Self {
        UserDto {
            id: u.id,
            username: u.username,
            role: u.role,
            must_change_password: u.must_change_password,
            disabled: u.disabled,
            created_at: u.created_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenDto {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub display_prefix: String,
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<codegate_domain::model::Scope>,
    pub project_id: Option<String>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

impl From<codegate_domain::model::AccessToken> for TokenDto {
    fn from(t: codegate_domain::model::AccessToken) -> Self {
        TokenDto {
            id: t.id,
            user_id: t.user_id,
            name: t.name,
            display_prefix: t.display_prefix,
            scopes: t.scopes,
            project_id: t.project_id,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
            created_at: t.created_at,
        }
    }
}

/// A page of a log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PageDto<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: u32,
    pub page_size: u32,
    pub total_pages: i64,
}

impl<T> PageDto<T> {
    pub fn new(items: Vec<T>, total: i64, page: u32, page_size: u32) -> Self {
        PageDto {
            items,
            total,
            page,
            page_size,
            total_pages: (total + i64::from(page_size) - 1) / i64::from(page_size),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RedemptionDto {
    pub id: String,
    pub project_id: String,
    pub code_id: String,
    pub code: String,
    pub action: &'static str,
    pub result: String,
    pub reason: Option<String>,
    pub actor: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub credential: Option<String>,
    pub created_at: i64,
}

impl From<RedemptionLog> for RedemptionDto {
    fn from(l: RedemptionLog) -> Self {
        RedemptionDto {
            id: l.id,
            project_id: l.project_id,
            code_id: l.code_id,
            code: l.code,
            action: l.action.as_str(),
            result: l.result,
            reason: l.reason,
            actor: l.actor,
            ip_address: l.ip_address,
            user_agent: l.user_agent,
            credential: l.credential,
            created_at: l.created_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditDto {
    pub id: String,
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub project_id: Option<String>,
    pub result: String,
    pub ip_address: Option<String>,
    pub detail: Option<Value>,
    pub created_at: i64,
}

impl From<codegate_domain::model::AuditEntry> for AuditDto {
    fn from(a: codegate_domain::model::AuditEntry) -> Self {
        AuditDto {
            id: a.id,
            actor: a.actor,
            action: a.action,
            resource_type: a.resource_type,
            resource_id: a.resource_id,
            project_id: a.project_id,
            result: a.result,
            ip_address: a.ip_address,
            detail: a.detail,
            created_at: a.created_at,
        }
    }
}
