-- Less work per redemption (see docs/performance.md, eleventh session).
--
-- A log row's id is a UUIDv7 minted by the writer and never looked up: its
-- UNIQUE index only cost a B-tree insert per redemption. SQLite cannot drop a
-- column constraint, so the table is rebuilt (once; every row and its seq kept).
CREATE TABLE redemptions_rebuilt (
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL,
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
    created_at    INTEGER NOT NULL,
    previous_seq  INTEGER
);
INSERT INTO redemptions_rebuilt
    (seq, id, project_id, code_id, code, action, result, reason, actor, ip_address, user_agent, credential, created_at, previous_seq)
    SELECT seq, id, project_id, code_id, code, action, result, reason, actor, ip_address, user_agent, credential, created_at, previous_seq
      FROM redemptions ORDER BY seq;
DROP TABLE redemptions;
ALTER TABLE redemptions_rebuilt RENAME TO redemptions;
CREATE INDEX redemptions_by_project ON redemptions(project_id, seq);
CREATE INDEX redemptions_success_time ON redemptions(project_id, created_at) WHERE result = 'success';
