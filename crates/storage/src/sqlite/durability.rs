//! Makes committed group transactions durable before their jobs are answered,
//! on a thread of its own, so that the writer runs the next group while the
//! previous one's `fdatasync` is in flight.
//!
//! The writer connection commits with `synchronous = NORMAL`: in WAL mode a
//! commit then writes its frames to the WAL without syncing it (SQLite still
//! syncs the WAL before every checkpoint, so the database file only ever
//! receives durable frames, and a power cut loses at most the commits not yet
//! synced, never consistency). This thread syncs the WAL file and only then
//! answers every job committed before the sync began: one `fdatasync` covers
//! all groups committed while the previous one ran.
//!
//! Readers may see a commit a moment before it is durable. A write never
//! builds an answer on one: whatever it read, its own answer waits for a
//! later sync, which covers everything committed before it.
//!
//! Once a sync has failed, that no longer holds: the kernel may have dropped
//! the pages it could not write and still report the next sync a success,
//! and SQLite's recovery stops at the first WAL frame that did not reach the
//! disk, taking every later commit with it. So the first failure is final:
//! from then on no commit is confirmed and the writer takes no more jobs,
//! until a restart recovers the database from what the disk really holds.

use crate::error::{StoreError, StoreResult};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

/// Answers a job once its transaction's fate is known.
pub(super) type Completion = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// Hands committed jobs to the sync thread.
pub(super) struct Syncer {
    committed: mpsc::Sender<Vec<Completion>>,
    failed: Arc<AtomicBool>,
}

impl Syncer {
    /// Starts the sync thread for the WAL of the database at `db_path`; it
    /// sets `failed` at the first sync that fails.
    pub(super) fn start(db_path: &Path, failed: Arc<AtomicBool>) -> std::io::Result<Syncer> {
        let mut wal = db_path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let (committed, rx) = mpsc::channel();
        let flag = failed.clone();
        std::thread::Builder::new().name("sqlite-sync".into()).spawn(move || run(&wal, &rx, &flag))?;
        Ok(Syncer { committed, failed })
    }

    /// Whether a sync has failed (and no commit can be confirmed any more).
    pub(super) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Answers `jobs` (all of one committed transaction) once the WAL is synced.
    pub(super) fn answer_when_durable(&self, jobs: Vec<Completion>) {
        if let Err(mpsc::SendError(jobs)) = self.committed.send(jobs) {
            // The sync thread is gone: nobody can vouch for these commits.
            for done in jobs {
                done(Err(unsynced()));
            }
        }
    }
}

const UNSYNCED: &str = "the write was committed but could not be made durable";

/// Why every write is refused once a sync has failed.
pub(super) const REFUSED_AFTER_FAILED_SYNC: &str =
    "an earlier sync of the database to disk failed: no write can be confirmed until CodeGate restarts";

fn unsynced() -> StoreError {
    StoreError::Unavailable(UNSYNCED.into())
}

fn run(wal: &Path, committed: &mpsc::Receiver<Vec<Completion>>, failed: &AtomicBool) {
    let mut file = None;
    while let Ok(first) = committed.recv() {
        // Everything committed so far is in the WAL already: one sync covers it all.
        let mut waiting = vec![first];
        waiting.extend(committed.try_iter());
        let synced = if failed.load(Ordering::Acquire) {
            Err(REFUSED_AFTER_FAILED_SYNC)
        } else {
            sync(wal, &mut file).map_err(|e| {
                failed.store(true, Ordering::Release);
                tracing::error!(
                    error = %e,
                    "could not sync the database's WAL to disk: the writes waiting for it are answered with an \
                     error, and no write is taken any more. Restart CodeGate once the disk is sound"
                );
                UNSYNCED
            })
        };
        for done in waiting.into_iter().flatten() {
            done(synced.map_err(|why| StoreError::Unavailable(why.into())));
        }
    }
}

/// `fdatasync` of the WAL file, reopened when SQLite has replaced it.
fn sync(wal: &Path, file: &mut Option<File>) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let on_disk = std::fs::metadata(wal)?;
        let same = match file {
            Some(f) => f.metadata().is_ok_and(|m| m.ino() == on_disk.ino() && m.dev() == on_disk.dev()),
            None => false,
        };
        if !same {
            *file = Some(File::open(wal)?);
        }
    }
    #[cfg(not(unix))]
    if file.is_none() {
        *file = Some(std::fs::OpenOptions::new().write(true).open(wal)?);
    }
    file.as_ref().expect("opened above").sync_data()
}
