//! The records CodeGate keeps. Plain data shared by storage and HTTP.

use crate::codes::{CodeFacts, CodeState, ProjectFacts};
use serde::{Deserialize, Serialize};

/// How codes of a project are generated and matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodeRules {
    pub charset: Option<String>,
    pub length: Option<usize>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub group: Option<usize>,
    pub check_char: bool,
    /// Match case-insensitively, ignoring spaces and dashes. On by default.
    pub normalize: bool,
}

impl Default for CodeRules {
    fn default() -> Self {
        CodeRules {
            charset: None,
            length: None,
            prefix: None,
            suffix: None,
            group: None,
            check_char: false,
            normalize: true,
        }
    }
}

/// Limits of a project; `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// Codes the project may hold.
    pub max_codes: Option<i64>,
    /// Successful redemptions allowed per `redemption_period_secs`.
    pub max_redemptions: Option<i64>,
    pub redemption_period_secs: Option<i64>,
    /// Rate limits of this project that replace the server's defaults.
    pub rate_limits: Option<RateLimitOverrides>,
}

/// Per-project rate limits (DESIGN §5); an absent category keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitOverrides {
    pub redemption: Option<RateLimitRule>,
    pub reads: Option<RateLimitRule>,
    pub failed_redemptions: Option<RateLimitRule>,
    pub bulk: Option<RateLimitRule>,
    pub management: Option<RateLimitRule>,
}

/// `limit` requests per `window_secs` seconds; zero is refused when parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    pub limit: std::num::NonZeroU32,
    pub window_secs: std::num::NonZeroU32,
}

impl Quotas {
    /// The redemption window in force, when a redemption quota is set.
    pub fn redemption_window(&self) -> Option<(i64, i64)> {
        self.max_redemptions.map(|max| (max, self.redemption_period_secs.unwrap_or(30 * 86_400)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub rules: CodeRules,
    pub quotas: Quotas,
}

impl Project {
    pub fn facts(&self) -> ProjectFacts {
        ProjectFacts { enabled: self.enabled, expires_at: self.expires_at }
    }
}

/// Counts of codes by derived state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CodeCounts {
    pub total: i64,
    pub used: i64,
    pub unused: i64,
    pub disabled: i64,
    pub expired: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Code {
    pub id: String,
    pub project_id: String,
    pub code: String,
    pub disabled: bool,
    pub expires_at: Option<i64>,
    pub max_uses: i64,
    pub use_count: i64,
    pub verified_at: Option<i64>,
    pub verified_by: Option<String>,
    pub batch_id: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub created_at: i64,
}

impl Code {
    pub fn facts(&self) -> CodeFacts {
        CodeFacts {
            disabled: self.disabled,
            use_count: self.use_count,
            max_uses: self.max_uses,
            expires_at: self.expires_at,
        }
    }

    pub fn state(&self, project_expires_at: Option<i64>, now: i64) -> CodeState {
        self.facts().state(project_expires_at, now)
    }

    /// A verify that `check_verify` allowed: one use more, with who and when.
    pub fn record_verify(&mut self, now: i64, verified_by: Option<&str>) {
        self.use_count += 1;
        self.verified_at = Some(now);
        self.verified_by = verified_by.map(str::to_owned);
    }

    /// A reactivate that `check_reactivate` allowed: one use given back; the
    /// last one takes the verification (who and when) with it.
    pub fn record_reactivate(&mut self) {
        self.use_count -= 1;
        if self.use_count == 0 {
            self.verified_at = None;
            self.verified_by = None;
        }
    }
}

/// One verify or reactivate attempt on an existing code.
#[derive(Debug, Clone, PartialEq)]
pub struct RedemptionLog {
    pub id: String,
    pub project_id: String,
    pub code_id: String,
    pub code: String,
    pub action: RedemptionAction,
    /// `success`, `failed` or `reactivated`.
    pub result: String,
    /// The business error code of a failed attempt, or the reason given for a reactivation.
    pub reason: Option<String>,
    pub actor: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub credential: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedemptionAction {
    Verify,
    Reactivate,
}

impl RedemptionAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RedemptionAction::Verify => "verify",
            RedemptionAction::Reactivate => "reactivate",
        }
    }
}

/// An HMAC credential of one project. The secret is kept sealed (encrypted) by
/// the layer that owns the master key; storage only sees the sealed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub project_id: String,
    pub api_key: String,
    pub name: Option<String>,
    pub sealed_secret: Vec<u8>,
    /// After a rotation the previous secret keeps working until `previous_valid_until`.
    pub sealed_previous_secret: Option<Vec<u8>>,
    pub previous_valid_until: Option<i64>,
    pub enabled: bool,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    /// The scopes a role may exercise at most.
    pub fn allows(self, scope: Scope) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => scope != Scope::Admin,
            Role::Viewer => scope == Scope::Read,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub must_change_password: bool,
    pub disabled: bool,
    pub created_at: i64,
}

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read projects, codes, statistics, logs.
    Read,
    /// Create and change projects and codes (generate, import, update).
    Write,
    /// Redeem and reactivate codes.
    Verify,
    /// Manage HMAC API keys.
    Keys,
    /// Manage users, tokens of others, and see the audit log.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [Scope::Read, Scope::Write, Scope::Verify, Scope::Keys, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Verify => "verify",
            Scope::Keys => "keys",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A personal access token. Only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub token_hash: String,
    /// The first characters of the token, so people can tell tokens apart.
    pub display_prefix: String,
    pub scopes: Vec<Scope>,
    pub project_id: Option<String>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

/// A management action, for the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: String,
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub project_id: Option<String>,
    pub result: String,
    pub ip_address: Option<String>,
    pub detail: Option<serde_json::Value>,
    pub created_at: i64,
}

/// A console login. Only the hash of the cookie value is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: String,
    pub user_id: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[cfg(test)]
mod redemption_tests {
    use super::Code;

    fn code(max_uses: i64) -> Code {
        Code {
            id: "c".into(),
            project_id: "p".into(),
            code: "ABC".into(),
            disabled: false,
            expires_at: None,
            max_uses,
            use_count: 0,
            verified_at: None,
            verified_by: None,
            batch_id: None,
            metadata: None,
            created_at: 0,
        }
    }

    #[test]
    fn a_verify_takes_a_use_and_a_reactivate_gives_it_back() {
        let mut c = code(2);
        c.record_verify(10, Some("alice"));
        assert_eq!((c.use_count, c.verified_at, c.verified_by.as_deref()), (1, Some(10), Some("alice")));
        c.record_verify(20, None);
        assert_eq!((c.use_count, c.verified_at, c.verified_by.as_deref()), (2, Some(20), None));
        assert!(c.facts().is_used());
        // Giving back one of two uses keeps the last verification.
        c.record_reactivate();
        assert_eq!((c.use_count, c.verified_at), (1, Some(20)));
        c.record_reactivate();
        assert_eq!((c.use_count, c.verified_at, c.verified_by), (0, None, None));
    }
}
