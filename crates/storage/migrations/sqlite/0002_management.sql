-- Management: project quotas, console sessions, indexes for logs and dashboards.

ALTER TABLE projects ADD COLUMN quotas TEXT NOT NULL DEFAULT '{}';

CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

-- Redemptions per day and quota windows read successes by time.
CREATE INDEX redemptions_success_time ON redemptions(project_id, created_at) WHERE result = 'success';
CREATE INDEX redemptions_time ON redemptions(created_at) WHERE result = 'success';
CREATE INDEX audit_log_actor ON audit_log(actor, seq);
