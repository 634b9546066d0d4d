//! Moving an installation from SQLite to PostgreSQL: every table copied row by
//! row with all its columns (ids, times, positions), in one PostgreSQL
//! transaction, then checked (row counts and the counters behind statistics).

use super::{map_err, PgStore, PoolSettings};
use crate::error::{StoreError, StoreResult};
use crate::sqlite::SqliteStore;
use rusqlite::{Connection, OpenFlags};
use sqlx::{Postgres, QueryBuilder, Transaction};
use std::path::Path;

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bool,
    Bytes,
}

enum Val {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
}

use Kind::{Bool, Bytes, Int, Text};

struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
}

/// In foreign-key order. `project_counters` is not copied: the triggers
/// rebuild it from the codes, and the check below compares it with SQLite's.
const TABLES: &[Table] = &[
    Table {
        name: "projects",
        columns: &[
            ("id", Text),
            ("name", Text),
            ("description", Text),
            ("enabled", Bool),
            ("expires_at", Int),
            ("rules", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("quotas", Text),
        ],
    },
    Table {
        name: "batches",
        columns: &[
            ("id", Text),
            ("project_id", Text),
            ("name", Text),
            ("source", Text),
            ("pattern", Text),
            ("requested", Int),
            ("metadata", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "codes",
        columns: &[
            ("seq", Int),
            ("id", Text),
            ("project_id", Text),
            ("code", Text),
            ("code_norm", Text),
            ("disabled", Bool),
            ("expires_at", Int),
            ("max_uses", Int),
            ("use_count", Int),
            ("verified_at", Int),
            ("verified_by", Text),
            ("batch_id", Text),
            ("metadata", Text),
            ("created_at", Int),
            ("position", Int),
        ],
    },
    Table {
        name: "redemptions",
        columns: &[
            ("seq", Int),
            ("id", Text),
            ("project_id", Text),
            ("code_id", Text),
            ("code", Text),
            ("action", Text),
            ("result", Text),
            ("reason", Text),
            ("actor", Text),
            ("ip_address", Text),
            ("user_agent", Text),
            ("credential", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "api_keys",
        columns: &[
            ("id", Text),
            ("project_id", Text),
            ("api_key", Text),
            ("name", Text),
            ("sealed_secret", Bytes),
            ("sealed_previous_secret", Bytes),
            ("previous_valid_until", Int),
            ("enabled", Bool),
            ("last_used_at", Int),
            ("created_at", Int),
        ],
    },
    Table {
        name: "users",
        columns: &[
            ("id", Text),
            ("username", Text),
            ("password_hash", Text),
            ("role", Text),
            ("must_change_password", Bool),
            ("disabled", Bool),
            ("created_at", Int),
        ],
    },
    Table {
        name: "access_tokens",
        columns: &[
            ("id", Text),
            ("user_id", Text),
            ("name", Text),
            ("token_hash", Text),
            ("display_prefix", Text),
            ("scopes", Text),
            ("project_id", Text),
            ("expires_at", Int),
            ("revoked_at", Int),
            ("last_used_at", Int),
            ("created_at", Int),
        ],
    },
    Table {
        name: "sessions",
        columns: &[
            ("id_hash", Text),
            ("user_id", Text),
            ("csrf_token", Text),
            ("created_at", Int),
            ("expires_at", Int),
        ],
    },
    Table {
        name: "audit_log",
        columns: &[
            ("seq", Int),
            ("id", Text),
            ("actor", Text),
            ("action", Text),
            ("resource_type", Text),
            ("resource_id", Text),
            ("project_id", Text),
            ("result", Text),
            ("ip_address", Text),
            ("detail", Text),
            ("created_at", Int),
        ],
    },
];

/// Rows per INSERT (well under PostgreSQL's 65,535 bind parameters).
const CHUNK: usize = 1_000;

/// What was copied: rows per table, in copy order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CopyReport {
    pub tables: Vec<(String, i64)>,
}

fn sqlite_err(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(format!("reading the SQLite database: {e}"))
}

/// Up to `CHUNK` rows after `after_rowid`, with the last rowid read.
fn read_chunk(conn: &Connection, table: &Table, after_rowid: i64) -> StoreResult<(Vec<Vec<Val>>, Option<i64>)> {
    let columns = table.columns.iter().map(|c| c.0).collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT rowid, {columns} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT {CHUNK}", table.name);
    let mut stmt = conn.prepare_cached(&sql).map_err(sqlite_err)?;
    let mut rows = stmt.query([after_rowid]).map_err(sqlite_err)?;
    let (mut out, mut last) = (Vec::new(), None);
    while let Some(r) = rows.next().map_err(sqlite_err)? {
        last = Some(r.get::<_, i64>(0).map_err(sqlite_err)?);
        let mut row = Vec::with_capacity(table.columns.len());
        for (i, (_, kind)) in table.columns.iter().enumerate() {
            let at = i + 1;
            row.push(match kind {
                Int => Val::Int(r.get(at).map_err(sqlite_err)?),
                Text => Val::Text(r.get(at).map_err(sqlite_err)?),
                Bool => Val::Bool(r.get::<_, Option<i64>>(at).map_err(sqlite_err)?.map(|v| v != 0)),
                Bytes => Val::Bytes(r.get(at).map_err(sqlite_err)?),
            });
        }
        out.push(row);
    }
    Ok((out, last))
}

async fn insert_rows(tx: &mut Transaction<'_, Postgres>, table: &Table, rows: Vec<Vec<Val>>) -> sqlx::Result<()> {
    let columns = table.columns.iter().map(|c| c.0).collect::<Vec<_>>().join(", ");
    let mut qb = QueryBuilder::<Postgres>::new(format!("INSERT INTO {} ({columns}) ", table.name));
    qb.push_values(rows, |mut b, row| {
        for v in row {
            match v {
                Val::Int(x) => {
                    b.push_bind(x);
                }
                Val::Text(x) => {
                    b.push_bind(x);
                }
                Val::Bool(x) => {
                    b.push_bind(x);
                }
                Val::Bytes(x) => {
                    b.push_bind(x);
                }
            }
        }
    });
    qb.build().execute(&mut **tx).await?;
    Ok(())
}

fn sqlite_count(conn: &Connection, table: &str) -> StoreResult<i64> {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).map_err(sqlite_err)
}

/// Copies the SQLite database at `sqlite_path` into the (empty) PostgreSQL
/// database at `postgres_url`, migrating both to the current schema first.
/// Stop every server using the SQLite file before: writes made during the
/// copy would not be carried over.
pub async fn copy_from_sqlite(sqlite_path: &Path, postgres_url: &str) -> StoreResult<CopyReport> {
    if !sqlite_path.is_file() {
        return Err(StoreError::Internal(format!("no SQLite database at {}", sqlite_path.display())));
    }
    // Brings an older SQLite file to the schema this binary copies.
    drop(SqliteStore::open(sqlite_path)?);
    let conn = Connection::open_with_flags(sqlite_path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite_err)?;
    // One read transaction: every table from the same snapshot.
    conn.execute_batch("BEGIN").map_err(sqlite_err)?;

    let target =
        PgStore::connect_with(postgres_url, PoolSettings { max_connections: 2, ..PoolSettings::default() }).await?;
    let existing: i64 = sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM projects) + (SELECT COUNT(*) FROM users)")
        .fetch_one(target.pool())
        .await
        .map_err(map_err)?;
    if existing > 0 {
        return Err(StoreError::Internal(
            "the PostgreSQL database already holds projects or users; migrate into an empty database \
             (before any `codegate serve` or `init` ran on it)"
                .into(),
        ));
    }

    let mut tx = target.pool().begin().await.map_err(map_err)?;
    let mut report = CopyReport::default();
    for table in TABLES {
        let mut after = 0;
        let mut copied = 0i64;
        loop {
            let (rows, last) = read_chunk(&conn, table, after)?;
            let Some(last) = last else { break };
            copied += rows.len() as i64;
            insert_rows(&mut tx, table, rows).await.map_err(map_err)?;
            after = last;
        }
        report.tables.push((table.name.to_owned(), copied));
    }
    // New codes are numbered after the copied ones (deep pages stay seeks).
    sqlx::query(
        "INSERT INTO code_positions (project_id, next_position)
         SELECT project_id, COALESCE(MAX(position), 0) + 1 FROM codes GROUP BY project_id",
    )
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    // New rows continue after the copied sequence numbers (cursors stay valid).
    for table in ["codes", "redemptions", "audit_log", "batches"] {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'seq'), COALESCE((SELECT MAX(seq) FROM {table}), 0) + 1, false)"
        ))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)?;

    verify(&conn, &target, &report).await?;
    conn.execute_batch("COMMIT").map_err(sqlite_err)?;
    target.close().await;
    Ok(report)
}

/// Row counts match table by table, and the counters rebuilt by PostgreSQL's
/// triggers equal SQLite's for every project.
async fn verify(conn: &Connection, target: &PgStore, report: &CopyReport) -> StoreResult<()> {
    for (table, copied) in &report.tables {
        let in_sqlite = sqlite_count(conn, table)?;
        let in_pg: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(target.pool())
            .await
            .map_err(map_err)?;
        if in_sqlite != in_pg || in_pg != *copied {
            return Err(StoreError::Internal(format!(
                "copy check failed for {table}: SQLite has {in_sqlite} rows, PostgreSQL {in_pg}"
            )));
        }
    }
    let mut stmt = conn
        .prepare("SELECT project_id, total, disabled, used FROM project_counters ORDER BY project_id")
        .map_err(sqlite_err)?;
    let sqlite_counters = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?)))
        .map_err(sqlite_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite_err)?;
    for (project_id, total, disabled, used) in sqlite_counters {
        let pg: (i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(total), 0)::BIGINT, COALESCE(SUM(disabled), 0)::BIGINT, COALESCE(SUM(used), 0)::BIGINT
               FROM project_counters WHERE project_id = $1",
        )
        .bind(&project_id)
        .fetch_one(target.pool())
        .await
        .map_err(map_err)?;
        if pg != (total, disabled, used) {
            return Err(StoreError::Internal(format!(
                "copy check failed: counters of project {project_id} are {pg:?} in PostgreSQL, {:?} in SQLite",
                (total, disabled, used)
            )));
        }
    }
    Ok(())
}
