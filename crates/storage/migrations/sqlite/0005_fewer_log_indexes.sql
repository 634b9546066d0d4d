-- Less work per redemption (see docs/performance.md).
--
-- Successes per day across all projects read each project's range of
-- redemptions_success_time (project_id, created_at) instead of an index of
-- their own: every redemption inserted an entry into both, and only the
-- all-projects dashboard read this one.
DROP INDEX redemptions_time;
