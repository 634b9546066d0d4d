-- Each code's position in its project (1, 2, 3, … in insertion order), so that
-- page N of the unfiltered list is an index seek instead of an OFFSET walk
-- (as SQLite's migration 0003). Positions are dense while no code of the
-- project was ever deleted: then total = next_position - 1, and the code at
-- offset k from the newest has position next_position - 1 - k. After a
-- deletion the store walks as before.
ALTER TABLE codes ADD COLUMN position BIGINT;

-- Numbering rewrites every row. Without the secondary indexes it writes the
-- rows and the two key indexes only; building the others afterwards is
-- quicker than updating them row by row (half the time in all).
DROP INDEX codes_lookup;
DROP INDEX codes_newest;
DROP INDEX codes_batch;
DROP INDEX codes_live_expiry;
WITH ranked AS (SELECT seq, ROW_NUMBER() OVER (PARTITION BY project_id ORDER BY seq) AS pos FROM codes)
UPDATE codes SET position = ranked.pos FROM ranked WHERE codes.seq = ranked.seq;

-- One row per project that has had codes. Adding codes locks it until commit,
-- so concurrent batches of one project (on any replica) number in turn.
CREATE TABLE code_positions (
    project_id     TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    next_position  BIGINT NOT NULL
);
INSERT INTO code_positions (project_id, next_position)
SELECT project_id, COUNT(*) + 1 FROM codes GROUP BY project_id;

CREATE INDEX codes_position ON codes(project_id, position);
-- As in 0001.
CREATE UNIQUE INDEX codes_lookup ON codes(project_id, code_norm);
CREATE INDEX codes_newest ON codes(project_id, seq);
CREATE INDEX codes_batch ON codes(batch_id, seq) WHERE batch_id IS NOT NULL;
CREATE INDEX codes_live_expiry ON codes(project_id, expires_at)
    WHERE NOT disabled AND use_count < max_uses AND expires_at IS NOT NULL;

-- One index answers both "successes of a project since T" (quotas, the daily
-- chart) and "a project's latest successes" (statistics, ordered by time then
-- seq). With two candidates, a planner working from statistics gathered while
-- the log was still empty read the time index and sorted every success.
DROP INDEX redemptions_successes;
DROP INDEX redemptions_success_time;
CREATE INDEX redemptions_success_time ON redemptions(project_id, created_at, seq) WHERE result = 'success';
