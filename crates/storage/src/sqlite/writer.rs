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
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;

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
        let (answer, answered) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn: &Connection| {
            let result = in_savepoint(conn, f);
            Box::new(move |committed: StoreResult<()>| {
                let _ = answer.send(committed.and(result));
            })
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(StoreError::Internal("a database job panicked".into())));
    let end = if result.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    conn.execute_batch(end)?;
    result
}

fn run_writer(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut group: Vec<Job> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let committed = run_group(&conn, &mut group);
        for done in committed.1 {
            done(committed.0.as_ref().map(|_| ()).map_err(clone_error));
        }
    }
    tracing::debug!("database writer stopped: every handle is gone");
}

fn run_group(conn: &Connection, group: &mut Vec<Job>) -> (StoreResult<()>, Vec<Completion>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = StoreError::from(e);
        // Nothing ran: answer every job with the failure.
        let completions = group
            .drain(..)
            .map(|_| -> Completion { Box::new(|_| {}) })
            .collect::<Vec<_>>();
        tracing::error!(error = %err, "could not begin a write transaction");
        return (Err(err), completions);
    }
    let completions: Vec<Completion> = group.drain(..).map(|job| job(conn)).collect();
    match conn.execute_batch("COMMIT") {
        Ok(()) => (Ok(()), completions),
        Err(e) => {
            tracing::error!(error = %e, "group commit failed; every job in it is answered with the failure");
            let _ = conn.execute_batch("ROLLBACK");
            (Err(StoreError::from(e)), completions)
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
