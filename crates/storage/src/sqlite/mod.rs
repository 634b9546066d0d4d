//! The embedded default: one SQLite file in WAL mode. Reads use a pool of
//! connections on blocking threads; every write goes through [`writer::Writer`].
//!
//! Its threads are named `sqlite-writer`, `sqlite-sync` and `sqlite-checkpt`:
//! Linux keeps 15 bytes of a thread's name, and within those they differ, so
//! `top -H` and the benchmark's per-thread report tell them apart.

mod accounts;
mod codes;
mod deferred;
mod durability;
mod migrate;
mod projects;
mod rows;
mod wal_vfs;
mod writer;

use crate::error::{StoreError, StoreResult};
use crate::Store;
use async_trait::async_trait;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;
use writer::{CachePolicy, Writer};

type ReadPool = r2d2::Pool<SqliteConnectionManager>;

/// Read connections in the pool, and reads running at once.
const READ_CONNECTIONS: u32 = 8;

pub struct SqliteStore {
    reads: ReadPool,
    /// One permit per read connection, taken before a read gets a blocking
    /// thread: reads beyond the pool's size wait here, as tasks, instead of
    /// each holding one of the server's few blocking threads parked on the pool.
    read_slots: std::sync::Arc<tokio::sync::Semaphore>,
    writer: Writer,
    path: PathBuf,
    stop_checkpoints: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop_checkpoints.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Copies the WAL back into the database file on its own thread (PASSIVE:
/// never blocks the writer), so commits never wait for a checkpoint.
///
/// It chases the writer: SQLite starts the WAL over from its beginning only
/// when a write transaction begins after every frame was copied, and under a
/// steady load a checkpoint every half second never catches up (the WAL grew
/// by gigabytes during a bulk load or a long verify run, each commit
/// appending fresh blocks to the file). Passes follow each other while there
/// is work and pause briefly once one finds the WAL fully copied.
fn start_checkpointer(path: &Path, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> StoreResult<()> {
    let conn = Connection::open(path)?;
    configure(&conn, 1024)?;
    std::thread::Builder::new()
        .name("sqlite-checkpt".into())
        .spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let pass = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                });
                let pause = match pass {
                    // Nothing was left to copy: the WAL is idle or will restart at the next write.
                    Ok((0, log, copied)) if copied >= log => CHECKPOINT_IDLE_PAUSE,
                    Ok(_) => CHECKPOINT_BUSY_PAUSE,
                    Err(e) => {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                        Duration::from_millis(500)
                    }
                };
                std::thread::sleep(pause);
            }
        })
        .map_err(|e| StoreError::Internal(format!("spawn the checkpoint thread: {e}")))?;
    Ok(())
}

/// Pauses of the checkpoint thread: after a pass that found everything copied,
/// and after one that copied frames (more are likely waiting).
const CHECKPOINT_IDLE_PAUSE: Duration = Duration::from_millis(20);
const CHECKPOINT_BUSY_PAUSE: Duration = Duration::from_millis(5);

/// SQLite counts every allocation under one process-wide mutex unless told
/// not to; every thread that touches a database contends on it. Only possible
/// before SQLite is first used in the process (later it is a no-op refusal).
fn without_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int argument; sqlite3_config
        // only reads it, and refuses (SQLITE_MISUSE) once SQLite is initialised.
        let _ = unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int) };
    });
}

/// Settings every connection gets. `synchronous = FULL` makes each commit
/// durable before anyone is told it succeeded; the writer connection then
/// hands that sync to a thread of its own (`durability.rs`), which answers
/// nobody before it.
fn configure(conn: &Connection, cache_kib: u32) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -{cache_kib};"
    ))
}

/// Bytes per database page of a new database (SQLite's default is 4096).
const PAGE_SIZE: u32 = 2048;

/// Page cache of the writer and of each reader, in KiB.
const WRITER_CACHE_KIB: u32 = 8 * 1024;
const READER_CACHE_KIB: u32 = 4 * 1024;
/// The writer's cache while bulk loads run: a sorted chunk of codes walks the
/// lookup index once, and pages it dirtied stay here instead of being spilled
/// to the WAL early (see `writer::CachePolicy`).
const BULK_CACHE_KIB: u32 = 64 * 1024;

/// The writer's connection, through the VFS that writes each commit's WAL
/// frames at once (`wal_vfs`), or SQLite's default one if that is unavailable.
fn open_for_writing(path: &Path) -> StoreResult<Connection> {
    match wal_vfs::register() {
        Ok(()) => Ok(Connection::open_with_flags_and_vfs(path, rusqlite::OpenFlags::default(), wal_vfs::NAME)?),
        Err(e) => {
            tracing::warn!(error = %e, "SQLite's default VFS for the writer: each WAL frame is written on its own");
            Ok(Connection::open(path)?)
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<SqliteStore> {
        without_memory_statistics();
        let path = path.as_ref().to_path_buf();
        let mut conn = open_for_writing(&path)?;
        // New databases only (an existing file keeps its page size). A redemption dirties
        // two random pages (the code's row, the by-code log index); each goes to the WAL
        // whole at every commit, so smaller pages halve the bytes written per verify.
        conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Internal(format!("SQLite refused WAL mode (got {mode})")));
        }
        configure(&conn, WRITER_CACHE_KIB)?;
        migrate::run(&mut conn)?;
        // Checkpoints run on their own thread, not inside a commit that someone waits for.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        start_checkpointer(&path, stop.clone())?;
        let manager = SqliteConnectionManager::file(&path)
            .with_flags(rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(|c| configure(c, READER_CACHE_KIB));
        let reads = r2d2::Pool::builder()
            .max_size(READ_CONNECTIONS)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(5))
            .build(manager)?;
        Ok(SqliteStore {
            reads,
            read_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(READ_CONNECTIONS as usize)),
            writer: Writer::start(conn, CachePolicy { normal_kib: WRITER_CACHE_KIB, bulk_kib: BULK_CACHE_KIB }),
            path,
            stop_checkpoints: stop,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The read pool's use, for metrics: (open connections, idle ones, most it opens).
    pub fn read_pool_state(&self) -> (u32, u32, u32) {
        let state = self.reads.state();
        (state.connections, state.idle_connections, self.reads.max_size())
    }

    /// Runs a read on a blocking thread with a pooled connection.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = self.reads.clone();
        let slot = self
            .read_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("reads have stopped".into()))?;
        tokio::task::spawn_blocking(move || {
            let read = f(&*pool.get()?);
            // The connection is back in the pool before the next read may take it.
            drop(slot);
            read
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }

    /// A bulk write: its own transaction, all or nothing.
    async fn write_alone<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.writer.run_alone(f).await
    }

    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.writer.run(f).await
    }

    /// A hot write without a savepoint (see [`writer`]): redemptions.
    async fn write_lean<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.writer.run_lean(f).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    fn writes_refused(&self) -> Option<String> {
        self.writer.refusal().map(str::to_owned)
    }
}

/// Maps a uniqueness failure on a named index to a conflict the API can explain.
fn unique_violation(e: rusqlite::Error, what: &'static str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict(what)
        }
        _ => StoreError::from(e),
    }
}
