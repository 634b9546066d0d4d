//! Builders shared by the storage tests (each test file is its own crate and
//! uses some of them).
#![allow(dead_code)]

pub mod postgres;

use codegate_domain::ids::new_id;
use codegate_domain::model::{CodeRules, Project, Quotas};
use codegate_storage::NewCode;

/// The tests' clock: 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600;

/// An enabled project with default rules, created at [`T0`].
pub fn project(name: &str) -> Project {
    Project {
        id: new_id(),
        name: name.into(),
        description: String::new(),
        enabled: true,
        expires_at: None,
        created_at: T0,
        updated_at: T0,
        rules: CodeRules::default(),
        quotas: Quotas::default(),
    }
}

/// A fresh, enabled, unused code without expiry or metadata.
pub fn new_code(code: &str, code_norm: &str, max_uses: i64) -> NewCode {
    NewCode {
        id: new_id(),
        code: code.into(),
        code_norm: code_norm.into(),
        disabled: false,
        expires_at: None,
        max_uses,
        use_count: 0,
        verified_at: None,
        verified_by: None,
        metadata: None,
    }
}

/// SQL that takes a database back to before migration 0006 (leaner
/// redemptions), and so before 0007: log ids under a UNIQUE constraint, the
/// codes' room under its old name. The caller also deletes their rows from
/// `schema_migrations`.
pub const BEFORE_LEANER_REDEMPTIONS: &str = "
    ALTER TABLE codes RENAME COLUMN spare TO log_head_before;
    CREATE TABLE redemptions_old (
        seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
        project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        code_id TEXT NOT NULL, code TEXT NOT NULL, action TEXT NOT NULL, result TEXT NOT NULL,
        reason TEXT, actor TEXT, ip_address TEXT, user_agent TEXT, credential TEXT,
        created_at INTEGER NOT NULL, previous_seq INTEGER);
    INSERT INTO redemptions_old SELECT seq, id, project_id, code_id, code, action, result, reason, actor,
        ip_address, user_agent, credential, created_at, previous_seq FROM redemptions;
    DROP TABLE redemptions;
    ALTER TABLE redemptions_old RENAME TO redemptions;
    CREATE INDEX redemptions_by_project ON redemptions(project_id, seq);
    CREATE INDEX redemptions_success_time ON redemptions(project_id, created_at) WHERE result = 'success';";

/// SQL that takes a database back to before migration 0004 (redemption
/// chains), and so before 0005 to 0007, as an older binary left it; the caller also
/// deletes their rows from `schema_migrations` (with those of any other
/// migration it undoes).
pub const BEFORE_REDEMPTION_CHAINS: &str = "
    CREATE INDEX redemptions_time ON redemptions(created_at) WHERE result = 'success';
    ALTER TABLE codes DROP COLUMN log_head;
    ALTER TABLE codes DROP COLUMN spare;
    ALTER TABLE redemptions DROP COLUMN previous_seq;
    CREATE INDEX redemptions_by_code ON redemptions(code_id, seq);
    CREATE INDEX redemptions_successes ON redemptions(project_id, seq) WHERE result = 'success';
    DROP TRIGGER codes_counted_update;
    CREATE TRIGGER codes_counted_update AFTER UPDATE OF disabled, use_count, max_uses ON codes BEGIN
        UPDATE project_counters
           SET disabled = disabled + NEW.disabled - OLD.disabled,
               used = used + (NEW.disabled = 0 AND NEW.use_count >= NEW.max_uses)
                           - (OLD.disabled = 0 AND OLD.use_count >= OLD.max_uses)
         WHERE project_id = NEW.project_id;
    END;";
