-- CodeGate schema, SQLite. Times are Unix seconds (UTC).

CREATE TABLE projects (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    enabled       INTEGER NOT NULL DEFAULT 1,
    expires_at    INTEGER,
    rules         TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX projects_name ON projects(name);

-- Counts by stored facts, kept by the triggers below in the same transaction
-- as every change, so statistics never scan the codes.
-- used = not disabled and use_count >= max_uses.
CREATE TABLE project_counters (
    project_id    TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    total         INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    used          INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE batches (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name          TEXT,
    source        TEXT NOT NULL,
    pattern       TEXT,
    requested     INTEGER NOT NULL,
    metadata      TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX batches_project ON batches(project_id, created_at);

CREATE TABLE codes (
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    code          TEXT NOT NULL,
    code_norm     TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    expires_at    INTEGER,
    max_uses      INTEGER NOT NULL DEFAULT 1,
    use_count     INTEGER NOT NULL DEFAULT 0,
    verified_at   INTEGER,
    verified_by   TEXT,
    batch_id      TEXT,
    metadata      TEXT,
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX codes_lookup ON codes(project_id, code_norm);
CREATE INDEX codes_newest ON codes(project_id, seq);
CREATE INDEX codes_batch ON codes(batch_id, seq) WHERE batch_id IS NOT NULL;
-- Live codes (neither disabled nor used) with an expiry of their own: what
-- counting expired codes needs.
CREATE INDEX codes_live_expiry ON codes(project_id, expires_at)
    WHERE disabled = 0 AND use_count < max_uses AND expires_at IS NOT NULL;

CREATE TRIGGER codes_counted_insert AFTER INSERT ON codes BEGIN
    UPDATE project_counters
       SET total = total + 1,
           disabled = disabled + NEW.disabled,
           used = used + (NEW.disabled = 0 AND NEW.use_count >= NEW.max_uses)
     WHERE project_id = NEW.project_id;
END;

CREATE TRIGGER codes_counted_delete AFTER DELETE ON codes BEGIN
    UPDATE project_counters
       SET total = total - 1,
           disabled = disabled - OLD.disabled,
           used = used - (OLD.disabled = 0 AND OLD.use_count >= OLD.max_uses)
     WHERE project_id = OLD.project_id;
END;

CREATE TRIGGER codes_counted_update AFTER UPDATE OF disabled, use_count, max_uses ON codes BEGIN
    UPDATE project_counters
       SET disabled = disabled + NEW.disabled - OLD.disabled,
           used = used + (NEW.disabled = 0 AND NEW.use_count >= NEW.max_uses)
                       - (OLD.disabled = 0 AND OLD.use_count >= OLD.max_uses)
     WHERE project_id = NEW.project_id;
END;

CREATE TABLE redemptions (
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    code_id       TEXT NOT NULL,
    code          TEXT NOT NULL,
    action        TEXT NOT NULL,
    result        TEXT NOT NULL,
    reason        TEXT,
    actor         TEXT,
    ip_address    TEXT,
    user_agent    TEXT,
    credential    TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX redemptions_by_code ON redemptions(code_id, seq);
CREATE INDEX redemptions_by_project ON redemptions(project_id, seq);
CREATE INDEX redemptions_successes ON redemptions(project_id, seq) WHERE result = 'success';

CREATE TABLE api_keys (
    id                      TEXT PRIMARY KEY,
    project_id              TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    api_key                 TEXT NOT NULL UNIQUE,
    name                    TEXT,
    sealed_secret           BLOB NOT NULL,
    sealed_previous_secret  BLOB,
    previous_valid_until    INTEGER,
    enabled                 INTEGER NOT NULL DEFAULT 1,
    last_used_at            INTEGER,
    created_at              INTEGER NOT NULL
);
CREATE INDEX api_keys_project ON api_keys(project_id);

CREATE TABLE users (
    id                    TEXT PRIMARY KEY,
    username              TEXT NOT NULL UNIQUE,
    password_hash         TEXT NOT NULL,
    role                  TEXT NOT NULL,
    must_change_password  INTEGER NOT NULL DEFAULT 1,
    disabled              INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL
);

CREATE TABLE access_tokens (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    display_prefix  TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    project_id      TEXT REFERENCES projects(id) ON DELETE CASCADE,
    expires_at      INTEGER,
    revoked_at      INTEGER,
    last_used_at    INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX access_tokens_user ON access_tokens(user_id);

CREATE TABLE audit_log (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    resource_type  TEXT NOT NULL,
    resource_id    TEXT,
    project_id     TEXT,
    result         TEXT NOT NULL,
    ip_address     TEXT,
    detail         TEXT,
    created_at     INTEGER NOT NULL
);
CREATE INDEX audit_log_project ON audit_log(project_id, seq);
