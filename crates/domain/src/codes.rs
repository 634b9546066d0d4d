//! The state of a code and the rules of redeeming (verify) and reactivating it.
//!
//! State is derived at read time from stored facts; it is never stored.

use serde::{Deserialize, Serialize};

/// What a person sees for a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeState {
    Unused,
    Used,
    Disabled,
    Expired,
}

impl CodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeState::Unused => "unused",
            CodeState::Used => "used",
            CodeState::Disabled => "disabled",
            CodeState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<CodeState> {
        match s {
            "unused" => Some(CodeState::Unused),
            "used" => Some(CodeState::Used),
            "disabled" => Some(CodeState::Disabled),
            "expired" => Some(CodeState::Expired),
            _ => None,
        }
    }
}

/// The stored facts about a code that its state depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeFacts {
    pub disabled: bool,
    pub use_count: i64,
    pub max_uses: i64,
    /// The code's own expiry; `None` falls back to the project's.
    pub expires_at: Option<i64>,
}

/// The stored facts about a project that redemption depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectFacts {
    pub enabled: bool,
    pub expires_at: Option<i64>,
}

/// An expiry has passed once `now` reaches it.
pub fn has_passed(expires_at: Option<i64>, now: i64) -> bool {
    matches!(expires_at, Some(t) if t <= now)
}

impl CodeFacts {
    pub fn is_used(&self) -> bool {
        self.use_count >= self.max_uses
    }

    /// The expiry in force: the code's own, else the project's.
    pub fn effective_expiry(&self, project_expires_at: Option<i64>) -> Option<i64> {
        self.expires_at.or(project_expires_at)
    }

    pub fn is_expired(&self, project_expires_at: Option<i64>, now: i64) -> bool {
        has_passed(self.effective_expiry(project_expires_at), now)
    }

    /// disabled, else used, else expired, else unused.
    pub fn state(&self, project_expires_at: Option<i64>, now: i64) -> CodeState {
        if self.disabled {
            CodeState::Disabled
        } else if self.is_used() {
            CodeState::Used
        } else if self.is_expired(project_expires_at, now) {
            CodeState::Expired
        } else {
            CodeState::Unused
        }
    }
}

/// Why a verify or reactivate did not go through. These are business outcomes
/// (answered with HTTP 200 and `success: false`), not protocol errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedeemFailure {
    CodeNotFound,
    CodeDisabled,
    CodeAlreadyUsed,
    CodeAlreadyUnused,
    CodeExpired,
    ProjectDisabled,
    ProjectExpired,
}

impl RedeemFailure {
    pub fn error_code(self) -> &'static str {
        match self {
            RedeemFailure::CodeNotFound => "CODE_NOT_FOUND",
            RedeemFailure::CodeDisabled => "CODE_DISABLED",
            RedeemFailure::CodeAlreadyUsed => "CODE_ALREADY_USED",
            RedeemFailure::CodeAlreadyUnused => "CODE_ALREADY_UNUSED",
            RedeemFailure::CodeExpired => "CODE_EXPIRED",
            RedeemFailure::ProjectDisabled => "PROJECT_DISABLED",
            RedeemFailure::ProjectExpired => "PROJECT_EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<RedeemFailure> {
        [
            RedeemFailure::CodeNotFound,
            RedeemFailure::CodeDisabled,
            RedeemFailure::CodeAlreadyUsed,
            RedeemFailure::CodeAlreadyUnused,
            RedeemFailure::CodeExpired,
            RedeemFailure::ProjectDisabled,
            RedeemFailure::ProjectExpired,
        ]
        .into_iter()
        .find(|f| f.error_code() == s)
    }

    pub fn message(self) -> &'static str {
        match self {
            RedeemFailure::CodeNotFound => "Code not found",
            RedeemFailure::CodeDisabled => "Code is disabled",
            RedeemFailure::CodeAlreadyUsed => "Code has already been used",
            RedeemFailure::CodeAlreadyUnused => "Code is unused; there is nothing to reactivate",
            RedeemFailure::CodeExpired => "Code has expired",
            RedeemFailure::ProjectDisabled => "Project is disabled",
            RedeemFailure::ProjectExpired => "Project has expired",
        }
    }
}

/// Whether a verify may add one use, checked in the documented order:
/// not found, disabled, already used, expired, project disabled, project expired.
pub fn check_verify(code: Option<&CodeFacts>, project: &ProjectFacts, now: i64) -> Result<(), RedeemFailure> {
    let code = code.ok_or(RedeemFailure::CodeNotFound)?;
    if code.disabled {
        return Err(RedeemFailure::CodeDisabled);
    }
    if code.is_used() {
        return Err(RedeemFailure::CodeAlreadyUsed);
    }
    check_expiry_and_project(code, project, now)
}

/// Whether a reactivate may give one use back: not found, disabled, already
/// unused (no use to give back), expired, project disabled, project expired.
pub fn check_reactivate(code: Option<&CodeFacts>, project: &ProjectFacts, now: i64) -> Result<(), RedeemFailure> {
    let code = code.ok_or(RedeemFailure::CodeNotFound)?;
    if code.disabled {
        return Err(RedeemFailure::CodeDisabled);
    }
    if code.use_count <= 0 {
        return Err(RedeemFailure::CodeAlreadyUnused);
    }
    check_expiry_and_project(code, project, now)
}

fn check_expiry_and_project(code: &CodeFacts, project: &ProjectFacts, now: i64) -> Result<(), RedeemFailure> {
    if code.is_expired(project.expires_at, now) {
        return Err(RedeemFailure::CodeExpired);
    }
    if !project.enabled {
        return Err(RedeemFailure::ProjectDisabled);
    }
    if has_passed(project.expires_at, now) {
        return Err(RedeemFailure::ProjectExpired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600;

    fn fresh() -> CodeFacts {
        CodeFacts { disabled: false, use_count: 0, max_uses: 1, expires_at: None }
    }

    fn open_project() -> ProjectFacts {
        ProjectFacts { enabled: true, expires_at: None }
    }

    #[test]
    fn state_precedence_is_disabled_used_expired_unused() {
        let mut c = fresh();
        assert_eq!(c.state(None, NOW), CodeState::Unused);
        c.expires_at = Some(NOW);
        assert_eq!(c.state(None, NOW), CodeState::Expired);
        c.use_count = 1;
        assert_eq!(c.state(None, NOW), CodeState::Used);
        c.disabled = true;
        assert_eq!(c.state(None, NOW), CodeState::Disabled);
    }

    #[test]
    fn project_expiry_applies_only_without_own_expiry() {
        let c = fresh();
        assert_eq!(c.state(Some(NOW - 1), NOW), CodeState::Expired);
        let own = CodeFacts { expires_at: Some(NOW + 60), ..fresh() };
        assert_eq!(own.state(Some(NOW - 1), NOW), CodeState::Unused);
    }

    #[test]
    fn verify_checks_in_documented_order() {
        let p = open_project();
        assert_eq!(check_verify(None, &p, NOW), Err(RedeemFailure::CodeNotFound));
        let everything_wrong = CodeFacts { disabled: true, use_count: 1, max_uses: 1, expires_at: Some(0) };
        let closed = ProjectFacts { enabled: false, expires_at: Some(0) };
        assert_eq!(check_verify(Some(&everything_wrong), &closed, NOW), Err(RedeemFailure::CodeDisabled));
        let used_and_expired = CodeFacts { disabled: false, ..everything_wrong };
        assert_eq!(check_verify(Some(&used_and_expired), &closed, NOW), Err(RedeemFailure::CodeAlreadyUsed));
        let expired = CodeFacts { use_count: 0, ..used_and_expired };
        assert_eq!(check_verify(Some(&expired), &closed, NOW), Err(RedeemFailure::CodeExpired));
        let valid_own_expiry = CodeFacts { expires_at: Some(NOW + 10), ..expired };
        assert_eq!(check_verify(Some(&valid_own_expiry), &closed, NOW), Err(RedeemFailure::ProjectDisabled));
        let expired_project = ProjectFacts { enabled: true, expires_at: Some(NOW) };
        assert_eq!(check_verify(Some(&valid_own_expiry), &expired_project, NOW), Err(RedeemFailure::ProjectExpired));
        assert_eq!(check_verify(Some(&valid_own_expiry), &p, NOW), Ok(()));
    }

    #[test]
    fn multi_use_codes_stay_redeemable_until_max_uses() {
        let p = open_project();
        let mut c = CodeFacts { max_uses: 3, ..fresh() };
        for _ in 0..3 {
            assert_eq!(check_verify(Some(&c), &p, NOW), Ok(()));
            c.use_count += 1;
        }
        assert_eq!(check_verify(Some(&c), &p, NOW), Err(RedeemFailure::CodeAlreadyUsed));
    }

    #[test]
    fn reactivate_needs_a_use_to_give_back() {
        let p = open_project();
        assert_eq!(check_reactivate(Some(&fresh()), &p, NOW), Err(RedeemFailure::CodeAlreadyUnused));
        let used = CodeFacts { use_count: 1, ..fresh() };
        assert_eq!(check_reactivate(Some(&used), &p, NOW), Ok(()));
        let disabled = CodeFacts { disabled: true, ..used };
        assert_eq!(check_reactivate(Some(&disabled), &p, NOW), Err(RedeemFailure::CodeDisabled));
    }

    #[test]
    fn error_codes_round_trip() {
        for f in [RedeemFailure::CodeNotFound, RedeemFailure::ProjectExpired, RedeemFailure::CodeAlreadyUnused] {
            assert_eq!(RedeemFailure::parse(f.error_code()), Some(f));
        }
    }
}
