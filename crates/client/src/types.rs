//! Request and answer shapes. Answers keep fields this client does not know in
//! `extra`, so a newer server's additions survive a round trip (e.g. `--json`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fields of an answer that have no typed home here.
pub type Extra = Map<String, Value>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Statistics {
    pub total_codes: i64,
    pub used_codes: i64,
    pub unused_codes: i64,
    pub disabled_codes: i64,
    pub expired_codes: i64,
}

/// How a project's codes are generated and matched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_char: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        *self == Rules::default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// true = enabled.
    pub status: bool,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: Option<i64>,
    #[serde(default)]
    pub rules: Option<Rules>,
    #[serde(default)]
    pub statistics: Option<Statistics>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerificationLog {
    pub id: String,
    pub verified_at: i64,
    pub verified_by: Option<String>,
    pub ip_address: Option<String>,
    /// `success`, `failed` or `reactivated`.
    pub result: String,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Code {
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
    /// `unused`, `used`, `disabled` or `expired`.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub use_count: Option<i64>,
    #[serde(default)]
    pub max_uses: Option<i64>,
    #[serde(default)]
    pub batch_id: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Present on single-code answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_logs: Option<Vec<VerificationLog>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodePage {
    pub items: Vec<Code>,
    pub total: i64,
    pub page: u32,
    pub page_size: u32,
    pub total_pages: i64,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// The answer of verify and reactivate; business failures are `success: false`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedeemResult {
    pub success: bool,
    pub code_id: Option<String>,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactivated_at: Option<i64>,
    #[serde(default)]
    pub message: String,
    pub error_code: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub use_count: Option<i64>,
    #[serde(default)]
    pub max_uses: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecentVerification {
    pub code: String,
    pub verified_at: i64,
    pub verified_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectStatistics {
    pub project_id: String,
    #[serde(flatten)]
    pub counts: Statistics,
    pub usage_rate: f64,
    #[serde(default)]
    pub recent_verifications: Vec<RecentVerification>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub project_id: String,
    pub api_key: String,
    pub name: Option<String>,
    pub is_active: bool,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
    /// Only on create and rotate: shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A personal access token's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub display_prefix: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub revoked_at: Option<i64>,
    #[serde(default)]
    pub last_used_at: Option<i64>,
    pub created_at: i64,
    /// Only on create and rotate: shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerateResult {
    pub batch_id: String,
    pub count: u64,
    /// The codes, when the server returned them inline (at most 10,000).
    #[serde(default)]
    pub codes: Vec<String>,
    #[serde(default)]
    pub codes_inline: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rejection {
    pub line: u64,
    pub code: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportResult {
    pub batch_id: String,
    pub imported: u64,
    #[serde(default)]
    pub rejected: Vec<Rejection>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkResult {
    pub affected: u64,
}

/// `{items: [...]}` answers.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Items<T> {
    pub items: Vec<T>,
}

// ---- requests -------------------------------------------------------------

#[derive(Debug, Clone, Default, Serialize)]
pub struct NewProject {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// false creates the project disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Rules>,
}

/// A partial update: only the fields set are sent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProjectUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<bool>,
    /// `Some(None)` clears the expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Rules>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GenerateRequest {
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_char: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CodeUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// `Some(None)` clears the expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// Which codes a listing, export or bulk action covers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CodeFilter {
    /// `unused`, `used`, `disabled` or `expired`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
}

impl CodeFilter {
    pub(crate) fn push_query(&self, q: &mut Vec<(&'static str, String)>) {
        if let Some(s) = &self.status {
            q.push(("status", s.clone()));
        }
        if let Some(s) = &self.search {
            q.push(("search", s.clone()));
        }
        if let Some(b) = &self.batch_id {
            q.push(("batch_id", b.clone()));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    Disable,
    Enable,
    Delete,
}

#[derive(Debug, Clone, Serialize)]
pub struct BulkRequest {
    pub action: BulkAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<CodeFilter>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NewToken {
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// File formats of import and export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Jsonl,
}

impl FileFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Jsonl => "jsonl",
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            FileFormat::Csv => "text/csv",
            FileFormat::Jsonl => "application/x-ndjson",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let v = json!({"id":"a","code":"X","status":false,"is_disabled":false,"is_expired":false,
            "expires_at":null,"verified_at":null,"verified_by":null,"created_at":1,"future":42});
        let c: Code = serde_json::from_value(v).unwrap();
        assert_eq!(c.extra["future"], 42);
        assert_eq!(serde_json::to_value(&c).unwrap()["future"], 42);
    }

    #[test]
    fn updates_send_only_what_is_set() {
        let u = ProjectUpdate { expires_at: Some(None), ..Default::default() };
        assert_eq!(serde_json::to_value(&u).unwrap(), json!({"expires_at": null}));
    }
}
