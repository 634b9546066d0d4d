//! CodeGate's storage: one interface ([`Store`], split per aggregate) and its
//! implementations. The HTTP layer only ever talks to `dyn Store`.

pub mod error;
pub mod postgres;
mod records;
pub mod sqlite;

use async_trait::async_trait;
use codegate_domain::codes::{CodeState, RedeemFailure};
use codegate_domain::model::{
    AccessToken, ApiKey, AuditEntry, Code, CodeCounts, CodeRules, Project, Quotas, RedemptionLog, Role, Session, User,
};
pub use error::{StoreError, StoreResult};

/// Changes to a project; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    /// `Some(None)` clears the expiry.
    pub expires_at: Option<Option<i64>>,
    pub rules: Option<CodeRules>,
    pub quotas: Option<Quotas>,
}

impl ProjectPatch {
    /// Writes the given fields into `project`, changed at `now`.
    pub fn apply_to(self, project: &mut Project, now: i64) {
        let p = project;
        if let Some(name) = self.name {
            p.name = name;
        }
        if let Some(description) = self.description {
            p.description = description;
        }
        if let Some(enabled) = self.enabled {
            p.enabled = enabled;
        }
        if let Some(expires_at) = self.expires_at {
            p.expires_at = expires_at;
        }
        if let Some(rules) = self.rules {
            p.rules = rules;
        }
        if let Some(quotas) = self.quotas {
            p.quotas = quotas;
        }
        p.updated_at = now;
    }
}

/// Changes to a code; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct CodePatch {
    pub disabled: Option<bool>,
    pub expires_at: Option<Option<i64>>,
    pub metadata: Option<Option<serde_json::Value>>,
}

impl CodePatch {
    /// Writes the given fields into `code`.
    pub fn apply_to(self, code: &mut Code) {
        if let Some(disabled) = self.disabled {
            code.disabled = disabled;
        }
        if let Some(expires_at) = self.expires_at {
            code.expires_at = expires_at;
        }
        if let Some(metadata) = self.metadata {
            code.metadata = metadata;
        }
    }
}

/// Which codes a listing or export covers.
#[derive(Debug, Clone, Default)]
pub struct CodeFilter {
    pub state: Option<CodeState>,
    /// Substring of the code (matched as typed and in normalised form).
    pub search: Option<String>,
    pub batch_id: Option<String>,
}

impl CodeFilter {
    /// No condition at all: every code of the project.
    pub fn is_empty(&self) -> bool {
        self.state.is_none() && self.search.is_none() && self.batch_id.is_none()
    }
}

/// Where a page starts: a page number, or an opaque position after a previous page.
#[derive(Debug, Clone, Copy)]
pub enum PageAt {
    Number(u32),
    After(i64),
}

#[derive(Debug, Clone)]
pub struct CodePage {
    pub items: Vec<Code>,
    pub total: i64,
    /// The position after the last item, when more may follow.
    pub next: Option<i64>,
}

/// A generation or import run.
#[derive(Debug, Clone)]
pub struct Batch {
    pub id: String,
    pub project_id: String,
    pub name: Option<String>,
    /// `generate` or `import`.
    pub source: &'static str,
    pub pattern: Option<String>,
    pub requested: i64,
    pub metadata: Option<serde_json::Value>,
    pub created_at: i64,
}

/// A code to insert; `code_norm` is its matching form under the project's rules.
#[derive(Debug, Clone)]
pub struct NewCode {
    pub id: String,
    pub code: String,
    pub code_norm: String,
    pub disabled: bool,
    pub expires_at: Option<i64>,
    pub max_uses: i64,
    pub use_count: i64,
    pub verified_at: Option<i64>,
    pub verified_by: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

/// Which of the offered codes were not inserted because their normalised form exists.
#[derive(Debug, Clone, Default)]
pub struct InsertReport {
    pub inserted: u64,
    /// Indexes into the offered list.
    pub duplicates: Vec<usize>,
}

/// Who is asking and from where; kept with each redemption.
#[derive(Debug, Clone, Default)]
pub struct RequestOrigin {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// Which credential (API key or token id) made the call; never a secret.
    pub credential: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RedeemRequest {
    pub project_id: String,
    /// `(max successes, period seconds)` when the project has a redemption quota.
    pub quota: Option<(i64, i64)>,
    /// The code as typed, for the log.
    pub code: String,
    /// Its matching form under the project's rules.
    pub code_norm: String,
    pub actor: Option<String>,
    /// Reactivation only: why.
    pub reason: Option<String>,
    pub origin: RequestOrigin,
    pub now: i64,
}

#[derive(Debug, Clone)]
pub enum RedeemOutcome {
    /// The change is committed; `code` is the row after it.
    Success(Code),
    /// Nothing changed (a log row was kept when the code exists).
    Failure(RedeemFailure, Option<Code>),
    /// The project's redemption quota for the current period is used up.
    QuotaExhausted,
}

/// Which codes a bulk action touches.
#[derive(Debug, Clone)]
pub enum CodeSelection {
    Ids(Vec<String>),
    Filter(CodeFilter),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    Disable,
    Enable,
    Delete,
}

/// A batch with how many of its codes exist now.
#[derive(Debug, Clone)]
pub struct BatchSummary {
    pub batch: Batch,
    pub code_count: i64,
}

/// One page of a log, with the total matching rows.
#[derive(Debug, Clone)]
pub struct LogPage<T> {
    pub items: Vec<T>,
    pub total: i64,
}

#[derive(Debug, Clone, Default)]
pub struct RedemptionFilter {
    pub result: Option<String>,
    pub code_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub project_id: Option<String>,
}

/// Changes to a user; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// A new password hash, and whether the user must change it at next login.
    pub password: Option<(String, bool)>,
}

impl UserPatch {
    /// Writes the given fields into `user`.
    pub fn apply_to(self, user: &mut User) {
        if let Some(role) = self.role {
            user.role = role;
        }
        if let Some(disabled) = self.disabled {
            user.disabled = disabled;
        }
        if let Some((hash, must_change)) = self.password {
            user.password_hash = hash;
            user.must_change_password = must_change;
        }
    }
}

#[async_trait]
pub trait ProjectStore: Send + Sync {
    async fn create_project(&self, project: &Project) -> StoreResult<()>;
    async fn get_project(&self, id: &str) -> StoreResult<Option<Project>>;
    async fn list_projects(&self) -> StoreResult<Vec<Project>>;
    async fn update_project(&self, id: &str, patch: ProjectPatch, now: i64) -> StoreResult<Option<Project>>;
    async fn delete_project(&self, id: &str) -> StoreResult<bool>;
    /// Counts by derived state, from counters (no scan of the codes).
    async fn code_counts(&self, project: &Project, now: i64) -> StoreResult<CodeCounts>;
}

#[async_trait]
pub trait CodeStore: Send + Sync {
    async fn create_batch(&self, batch: &Batch) -> StoreResult<()>;
    /// Inserts what is new; codes whose normalised form exists are skipped and reported.
    async fn insert_codes(
        &self,
        project_id: &str,
        batch_id: Option<&str>,
        codes: Vec<NewCode>,
        now: i64,
    ) -> StoreResult<InsertReport>;
    async fn list_codes(
        &self,
        project: &Project,
        filter: &CodeFilter,
        at: PageAt,
        page_size: u32,
        now: i64,
    ) -> StoreResult<CodePage>;
    async fn get_code(&self, project_id: &str, code_id: &str) -> StoreResult<Option<Code>>;
    async fn find_code(&self, project_id: &str, code_norm: &str) -> StoreResult<Option<Code>>;
    async fn update_code(&self, project_id: &str, code_id: &str, patch: CodePatch) -> StoreResult<Option<Code>>;
    async fn delete_code(&self, project_id: &str, code_id: &str) -> StoreResult<bool>;
    /// Applies `action` to every selected code of the project; returns how many changed.
    async fn bulk_codes(
        &self,
        project: &Project,
        selection: CodeSelection,
        action: BulkAction,
        now: i64,
    ) -> StoreResult<u64>;
    /// Up to `limit` codes after position `after` (newest first), for streaming exports.
    async fn codes_after(
        &self,
        project: &Project,
        filter: &CodeFilter,
        after: Option<i64>,
        limit: u32,
        now: i64,
    ) -> StoreResult<Vec<(i64, Code)>>;
    async fn list_batches(&self, project_id: &str) -> StoreResult<Vec<BatchSummary>>;
    /// Adds one use, exactly once under any concurrency, with its log row in the same commit.
    async fn redeem(&self, request: RedeemRequest) -> StoreResult<RedeemOutcome>;
    /// Gives one use back, with its log row in the same commit.
    async fn reactivate(&self, request: RedeemRequest) -> StoreResult<RedeemOutcome>;
}

#[async_trait]
pub trait RedemptionStore: Send + Sync {
    async fn code_redemptions(&self, code_id: &str, limit: u32) -> StoreResult<Vec<RedemptionLog>>;
    /// Newest successful redemptions of one project, or of all (`None`).
    async fn recent_successes(&self, project_id: Option<&str>, limit: u32) -> StoreResult<Vec<RedemptionLog>>;
    async fn list_redemptions(
        &self,
        project_id: &str,
        filter: &RedemptionFilter,
        page: u32,
        page_size: u32,
    ) -> StoreResult<LogPage<RedemptionLog>>;
    /// Successful redemptions per UTC day since `since` (day start, count), oldest first; days without any are absent.
    async fn redemptions_per_day(&self, project_id: Option<&str>, since: i64) -> StoreResult<Vec<(i64, i64)>>;
}

/// An API key's secrets as stored, sealed under the master key: what
/// re-sealing them under a new master key reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecrets {
    pub key_id: String,
    /// The public key id, which each secret is sealed to.
    pub api_key: String,
    pub secret: Vec<u8>,
    pub previous: Option<Vec<u8>>,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    async fn find_api_key(&self, api_key: &str) -> StoreResult<Option<ApiKey>>;
    async fn list_api_keys(&self, project_id: &str) -> StoreResult<Vec<ApiKey>>;
    async fn delete_api_key(&self, project_id: &str, id: &str) -> StoreResult<bool>;
    async fn touch_api_key(&self, id: &str, now: i64) -> StoreResult<()>;
    async fn set_api_key_enabled(&self, project_id: &str, id: &str, enabled: bool) -> StoreResult<Option<ApiKey>>;
    /// Replaces the secret; the previous one stays valid until `previous_valid_until`.
    async fn rotate_api_key(
        &self,
        project_id: &str,
        id: &str,
        sealed_secret: Vec<u8>,
        previous_valid_until: i64,
    ) -> StoreResult<Option<ApiKey>>;
    /// Every API key's sealed secrets.
    async fn sealed_secrets(&self) -> StoreResult<Vec<SealedSecrets>>;
    /// Writes each `(as read, re-sealed)` pair, all in one transaction: nothing
    /// is written, and the answer is `Conflict("api_key_changed")`, if any key
    /// was deleted or its secrets changed since they were read.
    async fn reseal_secrets(&self, changes: Vec<(SealedSecrets, SealedSecrets)>) -> StoreResult<()>;
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn create_user(&self, user: &User) -> StoreResult<()>;
    async fn count_users(&self) -> StoreResult<i64>;
    async fn find_user_by_name(&self, username: &str) -> StoreResult<Option<User>>;
    async fn create_token(&self, token: &AccessToken) -> StoreResult<()>;
    /// The token with this hash and its user.
    async fn find_token(&self, token_hash: &str) -> StoreResult<Option<(AccessToken, User)>>;
    async fn touch_token(&self, id: &str, now: i64) -> StoreResult<()>;
    async fn get_user(&self, id: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn update_user(&self, id: &str, patch: UserPatch) -> StoreResult<Option<User>>;
    async fn delete_user(&self, id: &str) -> StoreResult<bool>;
    /// Tokens of one user, or of everyone (`None`), newest first.
    async fn list_tokens(&self, user_id: Option<&str>) -> StoreResult<Vec<AccessToken>>;
    async fn get_token(&self, id: &str) -> StoreResult<Option<AccessToken>>;
    async fn revoke_token(&self, id: &str, now: i64) -> StoreResult<bool>;
    async fn create_session(&self, session: &Session) -> StoreResult<()>;
    async fn find_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<(Session, User)>>;
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Ends every session of a user (password change, disabling).
    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    async fn list_audit(&self, filter: &AuditFilter, page: u32, page_size: u32) -> StoreResult<LogPage<AuditEntry>>;
}

/// Everything CodeGate keeps.
#[async_trait]
pub trait Store: ProjectStore + CodeStore + RedemptionStore + KeyStore + AccountStore + AuditStore {
    /// Whether the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Why the store takes no writes while it still answers reads, if it does
    /// not (SQLite after a failed sync of its WAL: until a restart).
    fn writes_refused(&self) -> Option<String> {
        None
    }
}
