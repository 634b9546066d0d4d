//! Versioned migrations, applied in order on start. Several replicas may start
//! at once: a session advisory lock lets one migrate while the others wait,
//! then find nothing left to do.

use super::map_err;
use crate::error::{StoreError, StoreResult};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};
use std::time::Duration;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/postgres/0001_init.sql")),
    (2, "positions_and_recent", include_str!("../../migrations/postgres/0002_positions_and_recent.sql")),
];

/// Arbitrary but fixed: the advisory lock key all CodeGate replicas agree on.
const MIGRATION_LOCK: i64 = 0x636f_6465_6761_7465; // "codegate"

pub(super) async fn run(options: &PgConnectOptions) -> StoreResult<()> {
    let mut conn = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(options))
        .await
        .map_err(|_| StoreError::Unavailable("connecting to PostgreSQL timed out".into()))?
        .map_err(map_err)?;
    sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut conn).await.map_err(map_err)?;
    let result = apply(&mut conn).await;
    // Closing the session releases the lock too; unlock explicitly to be quick.
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut conn).await;
    let _ = conn.close().await;
    result
}

async fn apply(conn: &mut PgConnection) -> StoreResult<()> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await
    .map_err(map_err)?;
    let applied: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    let newest_known = MIGRATIONS.last().map_or(0, |m| m.0);
    if applied > newest_known {
        return Err(StoreError::Internal(format!(
            "the database is at schema version {applied}, newer than this binary knows ({newest_known}); upgrade codegate"
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > applied) {
        let mut tx = conn.begin().await.map_err(map_err)?;
        // A plain string runs as a simple query: several statements at once.
        tx.execute(*sql).await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at)
             VALUES ($1, $2, EXTRACT(EPOCH FROM now())::BIGINT)",
        )
        .bind(version)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        tracing::info!(version, name, "applied database migration");
    }
    Ok(())
}

/// Compile-time check: starting a store can run on any Tokio worker.
#[allow(dead_code)]
fn _assert_send(o: &PgConnectOptions, c: &mut PgConnection) {
    fn is_send<T: Send>(_: T) {}
    is_send(apply(c));
    is_send(run(o));
}
