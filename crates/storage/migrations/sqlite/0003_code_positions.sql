-- Each code's position in its project (1, 2, 3, … in insertion order), so that
-- page N of the unfiltered list is an index seek instead of an OFFSET walk.
-- Positions are dense while no code of the project was ever deleted: then
-- total = next_position - 1, and the code at offset k from the newest has
-- position next_position - 1 - k. After a deletion the store walks as before.
ALTER TABLE codes ADD COLUMN position INTEGER;
ALTER TABLE project_counters ADD COLUMN next_position INTEGER NOT NULL DEFAULT 1;

WITH ranked AS (SELECT seq, ROW_NUMBER() OVER (PARTITION BY project_id ORDER BY seq) AS pos FROM codes)
UPDATE codes SET position = ranked.pos FROM ranked WHERE codes.seq = ranked.seq;

UPDATE project_counters
   SET next_position = 1 + (SELECT COUNT(*) FROM codes WHERE codes.project_id = project_counters.project_id);

CREATE INDEX codes_position ON codes(project_id, position);

-- Counters of inserted codes are added by the store, once per batch, in the
-- same transaction as the rows. A per-row trigger also made SQLite keep a
-- statement journal for every single INSERT, which bulk loads paid for.
DROP TRIGGER codes_counted_insert;
