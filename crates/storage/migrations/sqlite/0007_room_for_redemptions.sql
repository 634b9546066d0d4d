-- Room in each new code's row for its first redemption (see docs/performance.md,
-- thirteenth session).
--
-- A redemption makes a code's row longer: the time, who verified it and the
-- link to its log row go where NULLs were. Bulk loads fill table pages to the
-- brim, so that growth split a page (three or four pages dirtied and written
-- to the WAL instead of one). New unused codes now carry a blank `spare` blob
-- that the first redemption sets to NULL: the row keeps its size and stays on
-- its page. The column is the unused `log_head_before` of migration 0004
-- (nothing writes it since the eleventh session), renamed.
ALTER TABLE codes RENAME COLUMN log_head_before TO spare;
UPDATE codes SET spare = NULL WHERE spare IS NOT NULL;
