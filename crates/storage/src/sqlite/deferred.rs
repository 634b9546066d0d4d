//! Counter changes of one group transaction, applied once just before it
//! commits: a group of redemptions of one project moves `used` by one
//! statement instead of one trigger run (and its statement journal) each.
//!
//! Only jobs that run bare in the group (redemptions, see [`super::writer`])
//! add to it: their failure rolls the whole group back, and the writer then
//! discards what they added. Everything runs on the writer's thread.

use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    static USED: RefCell<HashMap<String, i64>> = RefCell::new(HashMap::new());
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
    let pending = USED.with(|m| std::mem::take(&mut *m.borrow_mut()));
    for (project_id, delta) in pending.into_iter().filter(|(_, d)| *d != 0) {
        conn.prepare_cached("UPDATE project_counters SET used = used + ?2 WHERE project_id = ?1")?
            .execute(rusqlite::params![project_id, delta])?;
    }
    Ok(())
}

/// The transaction was rolled back: nothing it added happened.
pub(super) fn discard() {
    USED.with(|m| m.borrow_mut().clear());
}
