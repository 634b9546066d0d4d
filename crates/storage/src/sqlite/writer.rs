//! The single SQLite writer, with group commit.
//!
//! Every write runs on one thread that owns the write connection. Jobs that
//! arrive while a commit is in progress are collected and run together in the
//! next transaction, each inside its own savepoint (one failing job does not
//! undo the others), and all of them are answered only after that transaction
//! has committed durably. Concurrent redemptions therefore share one fsync.

use crate::error::{StoreError, StoreResult};
use rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use tokio::sync::{mpsc, oneshot};

/// Called once the job's transaction has committed (`Ok`) or failed.
type Completion = Box<dyn FnOnce(StoreResult<()>) + Send>;
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

/// How many jobs one transaction takes at most.
const MAX_GROUP: usize = 1024;

#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    pub(crate) fn start(conn: Connection) -> Writer {
        let (jobs, rx) = mpsc::channel::<Job>(8192);
        std::thread::Builder::new()
            .name("codegate-sqlite-writer".into())
            .spawn(move || run_writer(conn, rx))
            .expect("spawn the SQLite writer thread");
        Writer { jobs }
    }

    /// Runs `f` in the next group transaction and answers after the commit.
    pub(crate) async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(f, false).await
    }

    /// Runs `f` in a transaction of its own (for bulk writes); all or nothing.
    pub(crate) async fn run_alone<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(f, true).await
    }

    async fn submit<T, F>(&self, f: F, alone: bool) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<StoreResult<T>>();
        let work: Work = Box::new(move |conn: &Connection| {
            let result = if alone { run_caught(conn, f) } else { in_savepoint(conn, f) };
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |committed: StoreResult<()>| {
                let _ = answer.send(committed.and(result));
            });
            (ok, completion)
        });
        let job = if alone { Job::Solo(work) } else { Job::Grouped(work) };
        self.jobs.send(job).await.map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        answered.await.map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?
    }
}

fn run_caught<T>(conn: &Connection, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
    catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(StoreError::Internal("a database job panicked".into())))
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = run_caught(conn, f);
    let end = if result.is_ok() { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
    conn.execute_batch(end)?;
    result
}

fn run_writer(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut group: Vec<Work> = Vec::with_capacity(MAX_GROUP);
    let mut solo: Option<Work> = None;
    while let Some(first) = rx.blocking_recv() {
        match first {
            Job::Grouped(work) => group.push(work),
            Job::Solo(work) => solo = Some(work),
        }
        while solo.is_none() && group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(Job::Grouped(work)) => group.push(work),
                Ok(Job::Solo(work)) => solo = Some(work),
                Err(_) => break,
            }
        }
        if !group.is_empty() {
            run_group(&conn, &mut group, true);
        }
        if let Some(work) = solo.take() {
            run_group(&conn, &mut vec![work], false);
        }
    }
    tracing::debug!("database writer stopped: every handle is gone");
}

/// One transaction for the jobs; each is answered after the commit (or its failure).
/// `grouped` jobs guard themselves with a savepoint; a solo job's error rolls it all back.
fn run_group(conn: &Connection, group: &mut Vec<Work>, grouped: bool) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "could not begin a write transaction");
        // Dropping the jobs drops their answer channels: callers see the writer as unavailable.
        group.clear();
        return;
    }
    let mut all_ok = true;
    let completions: Vec<Completion> = group
        .drain(..)
        .map(|job| {
            let (ok, completion) = job(conn);
            all_ok &= ok;
            completion
        })
        .collect();
    if !grouped && !all_ok {
        // A bulk job that failed leaves nothing behind; it is answered with its own error.
        let rolled_back = conn.execute_batch("ROLLBACK").map_err(StoreError::from);
        for done in completions {
            done(rolled_back.as_ref().map(|_| ()).map_err(clone_error));
        }
        return;
    }
    let committed = match conn.execute_batch("COMMIT") {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, "commit failed; every job in it is answered with the failure");
            let _ = conn.execute_batch("ROLLBACK");
            Err(StoreError::from(e))
        }
    };
    for done in completions {
        done(committed.as_ref().map(|_| ()).map_err(clone_error));
    }
}

fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Conflict(c) => StoreError::Conflict(c),
        StoreError::Unavailable(s) => StoreError::Unavailable(s.clone()),
        StoreError::Internal(s) => StoreError::Internal(s.clone()),
    }
}
