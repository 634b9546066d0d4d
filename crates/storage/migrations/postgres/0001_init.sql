-- CodeGate schema, PostgreSQL. Times are Unix seconds (UTC), as in SQLite;
-- the behaviour mirrors migrations/sqlite (0001 + 0002).

CREATE TABLE projects (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    expires_at    BIGINT,
    rules         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    quotas        TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX projects_name ON projects(name);

-- Counts by stored facts (used = not disabled and use_count >= max_uses),
-- kept by the statement triggers below in the same transaction as every change.
-- Each project has up to 64 slot rows and a change lands in the slot of the
-- connection making it, so concurrent redemptions do not queue on one hot row;
-- a project's counts are the sum of its slots (at most 64 rows, no scan).
-- No foreign key: deleting a project removes its slots explicitly.
CREATE TABLE project_counters (
    project_id    TEXT NOT NULL,
    slot          INTEGER NOT NULL,
    total         BIGINT NOT NULL DEFAULT 0,
    disabled      BIGINT NOT NULL DEFAULT 0,
    used          BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, slot)
);

CREATE TABLE batches (
    seq           BIGSERIAL PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name          TEXT,
    source        TEXT NOT NULL,
    pattern       TEXT,
    requested     BIGINT NOT NULL,
    metadata      TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX batches_project ON batches(project_id, created_at);

CREATE TABLE codes (
    seq           BIGSERIAL PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    code          TEXT NOT NULL,
    code_norm     TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at    BIGINT,
    max_uses      BIGINT NOT NULL DEFAULT 1,
    use_count     BIGINT NOT NULL DEFAULT 0,
    verified_at   BIGINT,
    verified_by   TEXT,
    batch_id      TEXT,
    metadata      TEXT,
    created_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX codes_lookup ON codes(project_id, code_norm);
CREATE INDEX codes_newest ON codes(project_id, seq);
CREATE INDEX codes_batch ON codes(batch_id, seq) WHERE batch_id IS NOT NULL;
-- Live codes with an expiry of their own: what counting expired codes needs.
CREATE INDEX codes_live_expiry ON codes(project_id, expires_at)
    WHERE NOT disabled AND use_count < max_uses AND expires_at IS NOT NULL;

CREATE FUNCTION codegate_counter_slot() RETURNS INTEGER LANGUAGE sql STABLE AS
$$ SELECT pg_backend_pid() % 64 $$;

CREATE FUNCTION codes_counted_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO project_counters AS pc (project_id, slot, total, disabled, used)
    SELECT project_id, codegate_counter_slot(), COUNT(*),
           COUNT(*) FILTER (WHERE disabled),
           COUNT(*) FILTER (WHERE NOT disabled AND use_count >= max_uses)
      FROM new_rows GROUP BY project_id
    ON CONFLICT (project_id, slot) DO UPDATE
       SET total = pc.total + EXCLUDED.total,
           disabled = pc.disabled + EXCLUDED.disabled,
           used = pc.used + EXCLUDED.used;
    RETURN NULL;
END $$;

CREATE FUNCTION codes_counted_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO project_counters AS pc (project_id, slot, total, disabled, used)
    SELECT project_id, codegate_counter_slot(), -COUNT(*),
           -COUNT(*) FILTER (WHERE disabled),
           -COUNT(*) FILTER (WHERE NOT disabled AND use_count >= max_uses)
      FROM old_rows GROUP BY project_id
    ON CONFLICT (project_id, slot) DO UPDATE
       SET total = pc.total + EXCLUDED.total,
           disabled = pc.disabled + EXCLUDED.disabled,
           used = pc.used + EXCLUDED.used;
    RETURN NULL;
END $$;

CREATE FUNCTION codes_counted_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO project_counters AS pc (project_id, slot, total, disabled, used)
    SELECT project_id, codegate_counter_slot(), 0, SUM(d), SUM(u)
      FROM (SELECT project_id, disabled::int AS d, (NOT disabled AND use_count >= max_uses)::int AS u FROM new_rows
            UNION ALL
            SELECT project_id, -(disabled::int), -((NOT disabled AND use_count >= max_uses)::int) FROM old_rows) AS delta
     GROUP BY project_id
    HAVING SUM(d) <> 0 OR SUM(u) <> 0
    ON CONFLICT (project_id, slot) DO UPDATE
       SET disabled = pc.disabled + EXCLUDED.disabled,
           used = pc.used + EXCLUDED.used;
    RETURN NULL;
END $$;

CREATE TRIGGER codes_counted_insert AFTER INSERT ON codes
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION codes_counted_insert();
CREATE TRIGGER codes_counted_delete AFTER DELETE ON codes
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION codes_counted_delete();
CREATE TRIGGER codes_counted_update AFTER UPDATE ON codes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION codes_counted_update();

CREATE TABLE redemptions (
    seq           BIGSERIAL PRIMARY KEY,
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
    created_at    BIGINT NOT NULL
);
CREATE INDEX redemptions_by_code ON redemptions(code_id, seq);
CREATE INDEX redemptions_by_project ON redemptions(project_id, seq);
CREATE INDEX redemptions_successes ON redemptions(project_id, seq) WHERE result = 'success';
CREATE INDEX redemptions_success_time ON redemptions(project_id, created_at) WHERE result = 'success';
CREATE INDEX redemptions_time ON redemptions(created_at) WHERE result = 'success';

CREATE TABLE api_keys (
    id                      TEXT PRIMARY KEY,
    project_id              TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    api_key                 TEXT NOT NULL UNIQUE,
    name                    TEXT,
    sealed_secret           BYTEA NOT NULL,
    sealed_previous_secret  BYTEA,
    previous_valid_until    BIGINT,
    enabled                 BOOLEAN NOT NULL DEFAULT TRUE,
    last_used_at            BIGINT,
    created_at              BIGINT NOT NULL
);
CREATE INDEX api_keys_project ON api_keys(project_id);

CREATE TABLE users (
    id                    TEXT PRIMARY KEY,
    username              TEXT NOT NULL UNIQUE,
    password_hash         TEXT NOT NULL,
    role                  TEXT NOT NULL,
    must_change_password  BOOLEAN NOT NULL DEFAULT TRUE,
    disabled              BOOLEAN NOT NULL DEFAULT FALSE,
    created_at            BIGINT NOT NULL
);

CREATE TABLE access_tokens (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    display_prefix  TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    project_id      TEXT REFERENCES projects(id) ON DELETE CASCADE,
    expires_at      BIGINT,
    revoked_at      BIGINT,
    last_used_at    BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX access_tokens_user ON access_tokens(user_id);

CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE audit_log (
    seq            BIGSERIAL PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    resource_type  TEXT NOT NULL,
    resource_id    TEXT,
    project_id     TEXT,
    result         TEXT NOT NULL,
    ip_address     TEXT,
    detail         TEXT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX audit_log_project ON audit_log(project_id, seq);
CREATE INDEX audit_log_actor ON audit_log(actor, seq);
