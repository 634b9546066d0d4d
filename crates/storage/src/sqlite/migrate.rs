//! Versioned migrations, applied in order on start; each runs once.

use crate::error::{StoreError, StoreResult};
use rusqlite::Connection;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, "management", include_str!("../../migrations/sqlite/0002_management.sql")),
    (3, "code_positions", include_str!("../../migrations/sqlite/0003_code_positions.sql")),
    (4, "redemption_chains", include_str!("../../migrations/sqlite/0004_redemption_chains.sql")),
    (5, "fewer_log_indexes", include_str!("../../migrations/sqlite/0005_fewer_log_indexes.sql")),
    (6, "leaner_redemptions", include_str!("../../migrations/sqlite/0006_leaner_redemptions.sql")),
    (7, "room_for_redemptions", include_str!("../../migrations/sqlite/0007_room_for_redemptions.sql")),
];

pub(super) fn run(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )?;
    let applied: i64 = conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?;
    let newest_known = MIGRATIONS.last().map_or(0, |m| m.0);
    if applied > newest_known {
        return Err(StoreError::Internal(format!(
            "the database is at schema version {applied}, newer than this binary knows ({newest_known}); upgrade codegate"
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, strftime('%s','now'))",
            rusqlite::params![version, name],
        )?;
        tx.commit()?;
        tracing::info!(version, name, "applied database migration");
    }
    Ok(())
}
