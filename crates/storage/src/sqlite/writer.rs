//! The single SQLite writer, with group commit.
//!
//! Every write runs on one thread that owns the write connection. Jobs that
//! arrive while a commit is in progress, or while the next transaction is
//! still open, run together in that transaction, each inside its own
//! savepoint (one failing job does not undo the others), and all of them are
//! answered only after that transaction has committed durably: the sync
//! thread (`super::durability`) answers them once an `fdatasync` of the WAL
//! that began after their commit has returned, while this thread already
//! runs the next transaction. Concurrent redemptions therefore share one sync.
//!
//! Redemptions skip the savepoint (a "lean" job): it costs two statements and a
//! sub-journal copy of every page the job touches, and a redemption only fails
//! on a database error. When a lean job fails, the whole transaction is rolled
//! back and every job in it is answered with that failure: nobody is told of a
//! success that was not committed.
//!
//! Bulk jobs get a larger page cache while they come (see [`CachePolicy`]):
//! a chunk of random inserts into the lookup index dirties more pages than
//! the normal cache holds, and each page spilled early is written twice.

use crate::error::{StoreError, StoreResult};
use rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

use super::durability::{Completion, Syncer, REFUSED_AFTER_FAILED_SYNC};
/// Runs the job; says whether it succeeded, and how to answer once the transaction ends.
type Work = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

/// Small jobs share a transaction, each in a savepoint. Bulk jobs run alone,
/// without a savepoint: inside one, SQLite keeps every page a statement
/// touches in the sub-journal and walks it at each statement's end, which makes
/// large inserts quadratic.
enum Job {
    Grouped(Work),
    Solo(Work),
}

/// How a grouped job guards itself.
#[derive(Clone, Copy, PartialEq)]
enum Guard {
    /// In a savepoint: its failure undoes only itself.
    Savepoint,
    /// Bare: its failure rolls the whole group back.
    Lean,
    /// Alone in its transaction: its failure rolls that back.
    Solo,
}

/// How many jobs one transaction takes at most.
const MAX_GROUP: usize = 1024;

/// The writer's page cache, in KiB: `normal` for everyday writes, `bulk` while
/// bulk jobs keep arriving. The bulk cache is given back once no bulk job has
/// come for [`BULK_LINGER`], so a server that loaded a million codes serves
/// its verify traffic with the normal footprint.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CachePolicy {
    pub normal_kib: u32,
    pub bulk_kib: u32,
}

/// How long the bulk cache outlives the last bulk job (chunks of one request
/// follow each other within milliseconds).
const BULK_LINGER: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Set for good when a sync of the WAL fails (see `durability`).
    sync_failed: Arc<AtomicBool>,
}

impl Writer {
    pub(crate) fn start(conn: Connection, cache: CachePolicy) -> Writer {
        let sync_failed = Arc::new(AtomicBool::new(false));
        let syncer = sync_apart(&conn, sync_failed.clone());
        let (jobs, rx) = mpsc::channel::<Job>(8192);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run_writer(conn, rx, cache, syncer))
            .expect("spawn the SQLite writer thread");
        Writer { jobs, sync_failed }
    }

    /// Why no write is taken, once a sync of the WAL has failed.
    pub(crate) fn refusal(&self) -> Option<&'static str> {
        self.sync_failed.load(Ordering::Acquire).then_some(REFUSED_AFTER_FAILED_SYNC)
    }

    /// Runs `f` in the next group transaction and answers after the commit.
    pub(crate) async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(f, Guard::Savepoint).await
    }

    /// Like [`Writer::run`] without a savepoint, for hot jobs that fail only
    /// on database errors; a failure rolls back (and fails) the whole group.
    pub(crate) async fn run_lean<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(f, Guard::Lean).await
    }

    /// Runs `f` in a transaction of its own (for bulk writes); all or nothing.
    pub(crate) async fn run_alone<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(f, Guard::Solo).await
    }

    async fn submit<T, F>(&self, f: F, guard: Guard) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        if let Some(why) = self.refusal() {
            return Err(StoreError::Unavailable(why.into()));
        }
        let (answer, answered) = oneshot::channel::<StoreResult<T>>();
        let work: Work = Box::new(move |conn: &Connection| {
            let result = if guard == Guard::Savepoint { in_savepoint(conn, f) } else { run_caught(conn, f) };
            // A failed savepoint job has undone itself; a failed bare job poisons the transaction.
            let ok = result.is_ok() || guard == Guard::Savepoint;
            let completion: Completion = Box::new(move |committed: StoreResult<()>| {
                let _ = answer.send(committed.and(result));
            });
            (ok, completion)
        });
        let job = if guard == Guard::Solo { Job::Solo(work) } else { Job::Grouped(work) };
        let stopped = || StoreError::Unavailable(self.refusal().unwrap_or("the database writer has stopped").into());
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// For a WAL database in a file: commits stop syncing (`synchronous = NORMAL`)
/// and a [`Syncer`] makes them durable before anyone is answered. Otherwise
/// (or when that cannot be set up) commits keep syncing themselves.
fn sync_apart(conn: &Connection, failed: Arc<AtomicBool>) -> Option<Syncer> {
    let path = conn.path().filter(|p| !p.is_empty())?;
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).ok()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return None;
    }
    let syncer = match Syncer::start(std::path::Path::new(path), failed) {
        Ok(syncer) => syncer,
        Err(e) => {
            tracing::warn!(error = %e, "no sync thread: every commit syncs the WAL itself");
            return None;
        }
    };
    conn.execute_batch("PRAGMA synchronous = NORMAL").ok()?;
    Some(syncer)
}

fn run_caught<T>(conn: &Connection, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
    catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(StoreError::Internal("a database job panicked".into())))
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    let result = run_caught(conn, f);
    if result.is_err() {
        conn.prepare_cached("ROLLBACK TO job")?.execute([])?;
    }
    conn.prepare_cached("RELEASE job")?.execute([])?;
    result
}

fn run_writer(conn: Connection, mut rx: mpsc::Receiver<Job>, cache: CachePolicy, syncer: Option<Syncer>) {
    let mut solo: Option<Work> = None;
    let mut bulk = BulkCache::new(cache);
    // Only for waiting with a deadline while the bulk cache is held.
    let waiter = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "could not start the database writer");
            return;
        }
    };
    loop {
        let first = if bulk.held() {
            match waiter.block_on(async { tokio::time::timeout(BULK_LINGER, rx.recv()).await }) {
                Ok(job) => job,
                Err(_idle) => {
                    bulk.release(&conn);
                    continue;
                }
            }
        } else {
            rx.blocking_recv()
        };
        let Some(first) = first else { break };
        match first {
            Job::Grouped(work) => {
                bulk.release_if_stale(&conn);
                // Jobs arriving while the transaction is open join it, until a bulk job comes.
                let mut more = || match rx.try_recv() {
                    _ if solo.is_some() => None,
                    Ok(Job::Grouped(work)) => Some(work),
                    Ok(Job::Solo(work)) => {
                        solo = Some(work);
                        None
                    }
                    Err(_) => None,
                };
                run_group(&conn, work, &mut more, syncer.as_ref());
            }
            Job::Solo(work) => solo = Some(work),
        }
        if let Some(work) = solo.take() {
            bulk.hold(&conn);
            run_group(&conn, work, &mut || None, syncer.as_ref());
            bulk.last_job = Instant::now();
        }
    }
    tracing::debug!("database writer stopped: every handle is gone");
}

/// Whether the writer holds the bulk page cache, and since when it is idle.
struct BulkCache {
    policy: CachePolicy,
    held: bool,
    last_job: Instant,
}

impl BulkCache {
    fn new(policy: CachePolicy) -> BulkCache {
        BulkCache { policy, held: false, last_job: Instant::now() }
    }

    fn held(&self) -> bool {
        self.held
    }

    fn hold(&mut self, conn: &Connection) {
        if !self.held && self.policy.bulk_kib > self.policy.normal_kib {
            self.held = set_cache(conn, self.policy.bulk_kib);
        }
    }

    fn release_if_stale(&mut self, conn: &Connection) {
        if self.held && self.last_job.elapsed() >= BULK_LINGER {
            self.release(conn);
        }
    }

    fn release(&mut self, conn: &Connection) {
        if self.held {
            self.held = !set_cache(conn, self.policy.normal_kib);
            // SQLite has freed the pages (into the C library's malloc, which SQLite uses
            // whatever Rust's global allocator is); hand that memory back to the system too.
            #[cfg(target_os = "linux")]
            // SAFETY: malloc_trim only walks the allocator's own free lists.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}

fn set_cache(conn: &Connection, kib: u32) -> bool {
    match conn.execute_batch(&format!("PRAGMA cache_size = -{kib}")) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "could not resize the page cache");
            false
        }
    }
}

/// One transaction for `first` and the jobs `more` hands over while it is
/// open; each is answered after the commit (or its failure), through the
/// `syncer` when there is one. Savepoint jobs undo their own failure; any
/// other failure rolls it all back.
fn run_group(conn: &Connection, first: Work, more: &mut dyn FnMut() -> Option<Work>, syncer: Option<&Syncer>) {
    if syncer.is_some_and(Syncer::failed) {
        // Nothing committed now could be confirmed: the jobs are dropped unrun, and their
        // callers see the refusal (`Writer::submit`).
        drop(first);
        while let Some(job) = more() {
            drop(job);
        }
        return;
    }
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "could not begin a write transaction");
        // Dropping the job drops its answer channel: the caller sees the writer as unavailable.
        drop(first);
        return;
    }
    super::deferred::begin();
    let mut completions: Vec<(bool, Completion)> = Vec::with_capacity(64);
    completions.push(first(conn));
    let mut all_ok = completions[0].0;
    while all_ok && completions.len() < MAX_GROUP {
        let Some(job) = more() else { break };
        let (ok, done) = job(conn);
        all_ok &= ok;
        completions.push((ok, done));
    }
    let jobs = completions.len();
    let counters = if all_ok { super::deferred::apply(conn) } else { Ok(()) };
    if !all_ok || counters.is_err() {
        super::deferred::discard();
        // A failed bulk or lean job leaves nothing behind, nor does anything that shared its
        // transaction: the failed job answers with its own error, the others with this one.
        let rolled_back = match (conn.execute_batch("ROLLBACK"), counters) {
            (Ok(()), Ok(())) => StoreError::Unavailable("another write in the same transaction failed; retry".into()),
            (Ok(()), Err(e)) | (Err(e), _) => StoreError::from(e),
        };
        for (ok, done) in completions {
            done(if ok { Err(clone_error(&rolled_back)) } else { Ok(()) });
        }
        return;
    }
    let committed = match conn.execute_batch("COMMIT") {
        Ok(()) => Ok(()),
        Err(e) => {
            super::deferred::discard();
            tracing::error!(error = %e, "commit failed; every job in it is answered with the failure");
            let _ = conn.execute_batch("ROLLBACK");
            Err(StoreError::from(e))
        }
    };
    metrics::histogram!("codegate_sqlite_group_commit_jobs").record(jobs as f64);
    match (committed, syncer) {
        (Ok(()), Some(syncer)) => syncer.answer_when_durable(completions.into_iter().map(|(_, done)| done).collect()),
        (committed, _) => {
            for (_, done) in completions {
                done(committed.as_ref().map(|_| ()).map_err(clone_error));
            }
        }
    }
}

fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Conflict(c) => StoreError::Conflict(c),
        StoreError::Unavailable(s) => StoreError::Unavailable(s.clone()),
        StoreError::Internal(s) => StoreError::Internal(s.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn start() -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER PRIMARY KEY)").unwrap();
        (Writer::start(conn, CachePolicy { normal_kib: 1024, bulk_kib: 1024 }), dir)
    }

    fn insert(c: &Connection, v: i64) -> StoreResult<()> {
        c.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
        Ok(())
    }

    async fn rows(w: &Writer) -> Vec<i64> {
        w.run(|c| {
            let mut s = c.prepare("SELECT v FROM t ORDER BY v")?;
            let v = s.query_map([], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
            Ok(v)
        })
        .await
        .unwrap()
    }

    async fn answers<T: Send + 'static>(jobs: Vec<tokio::task::JoinHandle<StoreResult<T>>>) -> Vec<StoreResult<T>> {
        let mut answers = Vec::new();
        for job in jobs {
            answers.push(job.await.unwrap());
        }
        answers
    }

    fn spawn_job(
        w: &Writer,
        lean: bool,
        f: impl FnOnce(&Connection) -> StoreResult<()> + Send + 'static,
    ) -> tokio::task::JoinHandle<StoreResult<()>> {
        let w = w.clone();
        tokio::spawn(async move {
            if lean {
                w.run_lean(f).await
            } else {
                w.run(f).await
            }
        })
    }

    /// Keeps the writer busy, so the jobs submitted meanwhile share the next transaction.
    async fn hold(w: &Writer) -> tokio::task::JoinHandle<StoreResult<()>> {
        let busy = spawn_job(w, false, |_| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        busy
    }

    #[tokio::test]
    async fn a_failed_savepoint_job_undoes_only_itself() {
        let (w, _dir) = start();
        let busy = hold(&w).await;
        let jobs = vec![
            spawn_job(&w, true, |c| insert(c, 1)),
            spawn_job(&w, false, |c| {
                insert(c, 2)?;
                Err(StoreError::Conflict("test"))
            }),
            spawn_job(&w, true, |c| insert(c, 3)),
        ];
        tokio::time::sleep(Duration::from_millis(50)).await;
        busy.await.unwrap().unwrap();
        let answers = answers(jobs).await;
        assert!(answers[0].is_ok() && answers[2].is_ok());
        assert!(matches!(answers[1], Err(StoreError::Conflict("test"))));
        assert_eq!(rows(&w).await, vec![1, 3]);
    }

    #[tokio::test]
    async fn a_failed_lean_job_fails_its_whole_transaction_and_leaves_nothing() {
        let (w, _dir) = start();
        let busy = hold(&w).await;
        let mut jobs = vec![spawn_job(&w, true, |c| insert(c, 1))];
        tokio::time::sleep(Duration::from_millis(10)).await;
        jobs.push(spawn_job(&w, true, |c| {
            insert(c, 2)?;
            Err(StoreError::Internal("half done".into()))
        }));
        tokio::time::sleep(Duration::from_millis(10)).await;
        jobs.push(spawn_job(&w, false, |c| insert(c, 3)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let busy = busy.await.unwrap();
        let answers = answers(jobs).await;
        assert!(matches!(&answers[1], Err(StoreError::Internal(m)) if m == "half done"), "its own error");
        assert!(matches!(answers[0], Err(StoreError::Unavailable(_))), "no success that was not committed");
        assert!(matches!(busy, Err(StoreError::Unavailable(_))), "the job it joined failed with it");
        // The transaction takes no more jobs once one failed: the next one runs on its own.
        assert!(answers[2].is_ok());
        assert_eq!(rows(&w).await, vec![3]);
        spawn_job(&w, true, |c| insert(c, 4)).await.unwrap().unwrap();
        assert_eq!(rows(&w).await, vec![3, 4]);
    }

    #[tokio::test]
    async fn jobs_arriving_while_a_transaction_is_open_join_it() {
        let (w, dir) = start();
        // The first job is still running when the second arrives.
        let first = spawn_job(&w, true, |c| {
            std::thread::sleep(Duration::from_millis(200));
            insert(c, 1)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let path = dir.path().join("w.db");
        let (inside, outside) = w
            .run_lean(move |c| {
                let count = |c: &Connection| c.query_row("SELECT COUNT(*) FROM t WHERE v = 1", [], |r| r.get(0));
                let inside: i64 = count(c)?;
                let outside: i64 = count(&Connection::open(&path)?)?;
                Ok((inside, outside))
            })
            .await
            .unwrap();
        first.await.unwrap().unwrap();
        assert_eq!((inside, outside), (1, 0), "it saw the first job's row before that was committed");
        assert_eq!(rows(&w).await, vec![1]);
    }

    #[tokio::test]
    async fn commits_are_answered_only_once_the_wal_is_synced() {
        let (w, dir) = start();
        // Commits leave the syncing to the sync thread.
        let sync_mode: i64 = w.run(|c| Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0))?)).await.unwrap();
        assert_eq!(sync_mode, 1, "NORMAL");
        spawn_job(&w, true, |c| insert(c, 1)).await.unwrap().unwrap();
        // A WAL the sync thread cannot find: the commit happens, but nobody is told it succeeded.
        std::fs::remove_file(dir.path().join("w.db-wal")).unwrap();
        let answer = spawn_job(&w, true, |c| insert(c, 2)).await.unwrap();
        assert!(matches!(answer, Err(StoreError::Unavailable(_))), "{answer:?}");
    }

    #[tokio::test]
    async fn after_a_failed_sync_no_write_is_taken() {
        let (w, dir) = start();
        spawn_job(&w, true, |c| insert(c, 1)).await.unwrap().unwrap();
        assert!(w.refusal().is_none());
        let wal = dir.path().join("w.db-wal");
        std::fs::remove_file(&wal).unwrap();
        let answer = spawn_job(&w, true, |c| insert(c, 2)).await.unwrap();
        assert!(matches!(answer, Err(StoreError::Unavailable(_))), "{answer:?}");
        // A file at the WAL's path again: a sync would succeed there, but the commits
        // it would vouch for went to the unlinked WAL. Nothing is confirmed, or even run.
        std::fs::write(&wal, b"").unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        for lean in [true, false] {
            let ran = ran.clone();
            let answer = spawn_job(&w, lean, move |c| {
                ran.store(true, Ordering::SeqCst);
                insert(c, 3)
            })
            .await
            .unwrap();
            assert!(matches!(&answer, Err(StoreError::Unavailable(m)) if m == REFUSED_AFTER_FAILED_SYNC), "{answer:?}");
        }
        let alone = w.run_alone(|c| insert(c, 4)).await;
        assert!(matches!(alone, Err(StoreError::Unavailable(_))), "{alone:?}");
        assert!(!ran.load(Ordering::SeqCst), "a job ran after the failed sync");
        assert!(w.refusal().is_some(), "the refusal lasts");
    }
}
