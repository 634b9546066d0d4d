//! PostgreSQL, for several replicas sharing one database. Same behaviour as
//! the SQLite store: every write is one transaction whose answer is sent after
//! the commit; redemptions are one conditional `UPDATE … RETURNING` plus the
//! log row; counters are kept by statement triggers (see the migrations).

mod accounts;
mod codes;
mod from_sqlite;
mod migrate;
mod projects;
mod provision;
mod rows;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use from_sqlite::{copy_from_sqlite, CopyReport};
pub use provision::{create_database, database_name, drop_database, server_url_with_database};
/// The driver, for callers (tests, tools) that inspect a CodeGate database with plain SQL.
pub use sqlx;

use crate::error::{StoreError, StoreResult};
use crate::Store;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

/// Connection pool limits. Every replica opens at most `max_connections`.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a request waits for a connection before it is answered 503.
    pub acquire_timeout: Duration,
    /// Longest single statement (a stuck query must not hold a connection forever).
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(60),
        }
    }
}

impl PoolSettings {
    /// Defaults, overridden by `CODEGATE_DB_MAX_CONNECTIONS` and `CODEGATE_DB_ACQUIRE_TIMEOUT_MS`.
    pub fn from_env() -> PoolSettings {
        let mut s = PoolSettings::default();
        if let Some(n) = std::env::var("CODEGATE_DB_MAX_CONNECTIONS").ok().and_then(|v| v.parse().ok()) {
            s.max_connections = n;
        }
        if let Some(ms) = std::env::var("CODEGATE_DB_ACQUIRE_TIMEOUT_MS").ok().and_then(|v| v.parse().ok()) {
            s.acquire_timeout = Duration::from_millis(ms);
        }
        s
    }
}

pub struct PgStore {
    pool: PgPool,
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn connect_options(url: &str, settings: &PoolSettings) -> StoreResult<PgConnectOptions> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Internal(format!("invalid PostgreSQL URL: {e}")))?
        .application_name("codegate")
        .options([("statement_timeout", format!("{}ms", settings.statement_timeout.as_millis()))])
        .disable_statement_logging();
    Ok(options)
}

fn pool_options(settings: &PoolSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(Duration::from_secs(300))
        .max_lifetime(Duration::from_secs(1800))
        // A connection broken by a database restart is found and replaced
        // before use, so the pool recovers by itself. Only connections idle
        // for a while are tested: a ping is a round trip, and under load it
        // would double each query's. (A broken connection that was busy
        // fails its request once; sqlx tests every connection it takes back.)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// How long a pooled connection may sit unused before it is tested on acquire.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

impl PgStore {
    /// Connects, applies pending migrations (one replica at a time) and returns the store.
    pub async fn connect(url: &str) -> StoreResult<PgStore> {
        Self::connect_with(url, PoolSettings::from_env()).await
    }

    pub async fn connect_with(url: &str, settings: PoolSettings) -> StoreResult<PgStore> {
        let options = connect_options(url, &settings)?;
        migrate::run(&options).await?;
        let pool = pool_options(&settings).connect_lazy_with(options);
        Ok(PgStore { pool })
    }

    /// For synchronous callers inside a Tokio runtime (of any flavour): migrates
    /// on a helper thread, then returns a pool that connects on first use.
    pub fn open_blocking(url: &str) -> StoreResult<PgStore> {
        let settings = PoolSettings::from_env();
        let options = connect_options(url, &settings)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Internal("PgStore::open_blocking needs a Tokio runtime".into()));
        }
        let for_migrations = options.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| StoreError::Internal(e.to_string()))?
                .block_on(migrate::run(&for_migrations))
        })
        .join()
        .map_err(|_| StoreError::Internal("the migration thread panicked".into()))??;
        Ok(PgStore { pool: pool_options(&settings).connect_lazy_with(options) })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection (waits for the ones in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }
}

/// SQLSTATE classes that mean "the database is not reachable or is going
/// away": connection exceptions (08), operator intervention (57: shutdown,
/// restart), insufficient resources (53: too many connections).
fn is_unavailable_state(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57") || code.starts_with("53")
}

/// Serialization failures and deadlocks: the transaction may simply be run again.
fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40001") | Some("40P01")))
}

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) => match db.code() {
            Some(code) if is_unavailable_state(&code) => StoreError::Unavailable(e.to_string()),
            _ if is_retryable(&e) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Internal(e.to_string()),
        },
        _ => StoreError::Internal(e.to_string()),
    }
}

/// Maps a uniqueness failure to a conflict the API can explain.
pub(crate) fn unique_violation(e: sqlx::Error, what: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => map_err(e),
    }
}

/// Runs a transaction body again when PostgreSQL asks for it (deadlock,
/// serialization failure); anything else is answered as it is.
pub(crate) async fn with_retries<T, F, Fut>(mut attempt: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(e) if is_retryable(&e) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(5 * tries)).await;
            }
            other => return other,
        }
    }
}

/// One page of a log table (`seq` descending) and how many rows match:
/// `filter` appends the WHERE clause to both the count and the select.
pub(crate) async fn log_page<T, F>(
    pool: &PgPool,
    table: &str,
    columns: &str,
    filter: F,
    page: u32,
    page_size: u32,
    read: fn(&sqlx::postgres::PgRow) -> sqlx::Result<T>,
) -> StoreResult<crate::LogPage<T>>
where
    T: Send + Unpin,
    F: Fn(&mut sqlx::QueryBuilder<'_, sqlx::Postgres>),
{
    let mut c = pool.acquire().await.map_err(map_err)?;
    let mut count = sqlx::QueryBuilder::new(format!("SELECT COUNT(*) FROM {table}"));
    filter(&mut count);
    let total = count.build_query_scalar::<i64>().fetch_one(&mut *c).await.map_err(map_err)?;
    let mut select = sqlx::QueryBuilder::new(format!("SELECT {columns} FROM {table}"));
    filter(&mut select);
    select
        .push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::from(page_size))
        .push(" OFFSET ")
        .push_bind(i64::from(page.saturating_sub(1)) * i64::from(page_size));
    let items = select.build().try_map(|r| read(&r)).fetch_all(&mut *c).await.map_err(map_err)?;
    Ok(crate::LogPage { items, total })
}
