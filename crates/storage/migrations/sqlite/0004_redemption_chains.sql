-- Less work per redemption (see docs/performance.md).
--
-- A code's log as a chain instead of an index by code. The index's leaf for a
-- code sits on a random page, the second random page (after the code's own
-- row) that every redemption dirtied and wrote to the WAL. Now the code row,
-- written anyway, holds its newest log row (log_head) and each log row the one
-- before it for the same code (previous_seq). log_head_before is where an
-- UPDATE leaves the old head for its RETURNING clause (SQLite evaluates every
-- SET expression on the old row, and RETURNING sees only the new one).
ALTER TABLE codes ADD COLUMN log_head INTEGER;
ALTER TABLE codes ADD COLUMN log_head_before INTEGER;
ALTER TABLE redemptions ADD COLUMN previous_seq INTEGER;

UPDATE redemptions SET previous_seq = chain.previous
  FROM (SELECT seq, LAG(seq) OVER (PARTITION BY code_id ORDER BY seq) AS previous FROM redemptions) AS chain
 WHERE redemptions.seq = chain.seq AND chain.previous IS NOT NULL;

UPDATE codes SET log_head = heads.seq
  FROM (SELECT code_id, MAX(seq) AS seq FROM redemptions GROUP BY code_id) AS heads
 WHERE codes.id = heads.code_id;

DROP INDEX redemptions_by_code;

-- Recent successes of a project read redemptions_success_time (project_id,
-- created_at, and the row id after them): the same order as this index.
DROP INDEX redemptions_successes;

-- Redemptions move the used counter themselves, once per group commit
-- (sqlite/deferred.rs); the trigger follows the other changes that decide
-- whether a code counts as used or disabled. Only redemptions change use_count.
DROP TRIGGER codes_counted_update;
CREATE TRIGGER codes_counted_update AFTER UPDATE OF disabled, max_uses ON codes BEGIN
    UPDATE project_counters
       SET disabled = disabled + NEW.disabled - OLD.disabled,
           used = used + (NEW.disabled = 0 AND NEW.use_count >= NEW.max_uses)
                       - (OLD.disabled = 0 AND OLD.use_count >= OLD.max_uses)
     WHERE project_id = NEW.project_id;
END;
