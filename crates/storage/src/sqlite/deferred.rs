//! Counter changes of one group transaction, applied once just before it
//! commits: a group of redemptions of one project moves `used` by one
//! statement instead of one trigger run (and its statement journal) each.
//! Also the next redemption log id of the open group transaction, read from
//! the table once per transaction instead of once per redemption.
//!
//! Only jobs that run bare in the group (redemptions, see [`super::writer`])
//! add to it: their failure rolls the whole group back, and the writer then
//! discards what they added. Everything runs on the writer's thread.

use crate::error::StoreResult;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

thread_local! {
    static USED: RefCell<HashMap<String, i64>> = RefCell::new(HashMap::new());
    /// `Some` while this thread's connection is in a group transaction: the
    /// next log id once it was read (no other connection can write meanwhile).
    static NEXT_LOG_SEQ: Cell<Option<Option<i64>>> = const { Cell::new(None) };
}

/// The writer opened a group transaction.
pub(super) fn begin() {
    NEXT_LOG_SEQ.set(Some(None));
}

/// The id for the next redemption log row. `read` asks the table; inside a
/// group transaction it is asked once, and the ids counted on from there.
pub(super) fn next_log_seq(read: impl FnOnce() -> StoreResult<i64>) -> StoreResult<i64> {
    match NEXT_LOG_SEQ.get() {
        None => read(),
        Some(known) => {
            let seq = match known {
                Some(seq) => seq,
                None => read()?,
            };
            NEXT_LOG_SEQ.set(Some(Some(seq + 1)));
            Ok(seq)
        }
    }
}

/// `delta` codes of `project_id` became used (negative: stopped being used).
pub(super) fn add_used(project_id: &str, delta: i64) {
    if delta == 0 {
        return;
    }
    USED.with(|m| {
        let mut used = m.borrow_mut();
        // Every redemption of a group passes here: no key copy once the project has an entry.
        match used.get_mut(project_id) {
            Some(sum) => *sum += delta,
            None => {
                used.insert(project_id.to_owned(), delta);
            }
        }
    });
}

/// Writes the changes into the transaction about to commit, and forgets them.
pub(super) fn apply(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    NEXT_LOG_SEQ.set(None);
    let pending = USED.with(|m| std::mem::take(&mut *m.borrow_mut()));
    for (project_id, delta) in pending.into_iter().filter(|(_, d)| *d != 0) {
        conn.prepare_cached("UPDATE project_counters SET used = used + ?2 WHERE project_id = ?1")?
            .execute(rusqlite::params![project_id, delta])?;
    }
    Ok(())
}

/// The transaction was rolled back: nothing it added happened.
pub(super) fn discard() {
    NEXT_LOG_SEQ.set(None);
    USED.with(|m| m.borrow_mut().clear());
}
