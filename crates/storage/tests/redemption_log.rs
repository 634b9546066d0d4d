//! A code's redemption log, which SQLite keeps as a chain from the code row
//! (migration 0004): each code sees exactly its own attempts, newest first,
//! whatever was interleaved with them, and filters and pages agree with the
//! whole log. Logs written before the chains existed are linked on upgrade,
//! and the upgrade that rebuilds the log table (0006) keeps every row.

mod support;

use codegate_domain::model::{Project, RedemptionLog};
use codegate_storage::sqlite::SqliteStore;
use codegate_storage::{
    CodeStore, ProjectStore, RedeemOutcome, RedeemRequest, RedemptionFilter, RedemptionStore, RequestOrigin,
};
use std::collections::HashMap;
use support::{project, T0 as NOW};

fn new_code(code: &str, max_uses: i64) -> codegate_storage::NewCode {
    support::new_code(code, code, max_uses)
}

fn request(p: &Project, code: &str, actor: &str) -> RedeemRequest {
    RedeemRequest {
        project_id: p.id.clone(),
        quota: None,
        code: code.into(),
        code_norm: code.into(),
        actor: Some(actor.into()),
        reason: Some(format!("because {actor}")),
        origin: RequestOrigin::default(),
        now: NOW,
    }
}

/// Interleaved attempts on several codes; returns each code's expected log (actors, newest first).
async fn exercise(store: &SqliteStore, p: &Project, round: usize) -> HashMap<String, Vec<String>> {
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    let names = ["ALPHA", "BRAVO", "CHARLIE", "DELTA"];
    for step in 0..24 {
        let code = names[(step * 7 + round) % names.len()];
        let actor = format!("r{round}s{step}");
        let outcome = if step % 5 == 4 {
            store.reactivate(request(p, code, &actor)).await.unwrap()
        } else {
            store.redeem(request(p, code, &actor)).await.unwrap()
        };
        // Every attempt on an existing code is logged, succeeded or not.
        assert!(!matches!(outcome, RedeemOutcome::QuotaExhausted));
        expected.entry(code.to_owned()).or_default().insert(0, actor);
    }
    // Attempts on a code that does not exist leave no log.
    let missing = store.redeem(request(p, "NOSUCHCODE", "nobody")).await.unwrap();
    assert!(matches!(missing, RedeemOutcome::Failure(_, None)));
    expected
}

async fn code_id(store: &SqliteStore, p: &Project, code: &str) -> String {
    store.find_code(&p.id, code).await.unwrap().unwrap().id
}

fn actors(logs: &[RedemptionLog]) -> Vec<String> {
    logs.iter().map(|l| l.actor.clone().unwrap()).collect()
}

async fn assert_logs(store: &SqliteStore, p: &Project, expected: &HashMap<String, Vec<String>>) {
    for (code, want) in expected {
        let id = code_id(store, p, code).await;
        let got = store.code_redemptions(&id, 1000).await.unwrap();
        assert_eq!(actors(&got), *want, "{code}");
        assert!(got.iter().all(|l| l.code_id == id && l.code == *code));
        let newest_two = store.code_redemptions(&id, 2).await.unwrap();
        assert_eq!(actors(&newest_two), want[..2.min(want.len())].to_vec());

        // The filtered log of the project says the same, page by page, and counts it.
        let filter = RedemptionFilter { result: None, code_id: Some(id.clone()) };
        let mut paged = Vec::new();
        for page in 1.. {
            let got = store.list_redemptions(&p.id, &filter, page, 4).await.unwrap();
            assert_eq!(got.total as usize, want.len());
            if got.items.is_empty() {
                break;
            }
            paged.extend(actors(&got.items));
        }
        assert_eq!(paged, *want, "{code}, by pages");
        let failed = RedemptionFilter { result: Some("failed".into()), code_id: Some(id.clone()) };
        let got = store.list_redemptions(&p.id, &failed, 1, 100).await.unwrap();
        assert!(got.items.iter().all(|l| l.result == "failed" && l.code_id == id));
        let all = store.list_redemptions(&p.id, &RedemptionFilter::default(), 1, 10_000).await.unwrap();
        let failures_of_code = all.items.iter().filter(|l| l.code_id == id && l.result == "failed").count();
        assert_eq!(got.total as usize, failures_of_code);
    }
}

async fn seeded(path: &std::path::Path) -> (SqliteStore, Project) {
    let store = SqliteStore::open(path).unwrap();
    let p = project("log");
    store.create_project(&p).await.unwrap();
    let codes = vec![new_code("ALPHA", 1), new_code("BRAVO", 3), new_code("CHARLIE", 2), new_code("DELTA", 1)];
    store.insert_codes(&p.id, None, codes, NOW).await.unwrap();
    (store, p)
}

fn merge(mut older: HashMap<String, Vec<String>>, newer: HashMap<String, Vec<String>>) -> HashMap<String, Vec<String>> {
    for (code, mut logs) in newer {
        let old = older.remove(&code).unwrap_or_default();
        logs.extend(old);
        older.insert(code, logs);
    }
    older
}

#[tokio::test]
async fn each_code_sees_exactly_its_own_attempts_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (store, p) = seeded(&dir.path().join("log.db")).await;
    let first = exercise(&store, &p, 0).await;
    assert_logs(&store, &p, &first).await;
    let both = merge(first, exercise(&store, &p, 1).await);
    assert_logs(&store, &p, &both).await;

    // A deleted code's log stays in the project's log and is still found by its id.
    let id = code_id(&store, &p, "BRAVO").await;
    assert!(store.delete_code(&p.id, &id).await.unwrap());
    let filter = RedemptionFilter { result: None, code_id: Some(id.clone()) };
    let got = store.list_redemptions(&p.id, &filter, 1, 1000).await.unwrap();
    assert_eq!(actors(&got.items), both["BRAVO"]);
    assert_eq!(got.total as usize, both["BRAVO"].len());
}

/// A database with a log, taken back by `undo` to before migration `version`,
/// as an older binary left it; returns the project and each code's log.
async fn older_database(
    path: &std::path::Path,
    round: usize,
    undo: &str,
    version: i64,
) -> (Project, HashMap<String, Vec<String>>) {
    let (store, p) = seeded(path).await;
    let before = exercise(&store, &p, round).await;
    drop(store);
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(undo).unwrap();
    c.execute("DELETE FROM schema_migrations WHERE version >= ?1", [version]).unwrap();
    (p, before)
}

#[tokio::test]
async fn logs_written_before_the_chains_are_linked_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    // Before the chains, the rows had no links.
    let (p, before) = older_database(&path, 2, support::BEFORE_REDEMPTION_CHAINS, 4).await;
    let store = SqliteStore::open(&path).unwrap();
    assert_logs(&store, &p, &before).await;
    // New attempts continue the linked chains.
    let all = merge(before, exercise(&store, &p, 3).await);
    assert_logs(&store, &p, &all).await;
}

/// The schema objects of a table, as `name: sql` (SQLite's own UNIQUE indexes have no SQL).
fn schema_of(path: &std::path::Path, table: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut stmt =
        c.prepare("SELECT name, COALESCE(sql, '') FROM sqlite_master WHERE tbl_name = ?1 ORDER BY name").unwrap();
    let rows = stmt.query_map([table], |r| Ok(format!("{}: {}", r.get::<_, String>(0)?, r.get::<_, String>(1)?)));
    rows.unwrap().collect::<Result<Vec<_>, _>>().unwrap()
}

#[tokio::test]
async fn the_log_table_rebuild_keeps_every_row_and_the_chains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v5.db");
    let (p, before) = older_database(&path, 4, support::BEFORE_LEANER_REDEMPTIONS, 6).await;
    let old_log = schema_of(&path, "redemptions");
    assert!(old_log.iter().any(|s| s.starts_with("sqlite_autoindex_redemptions")), "{old_log:?}");
    let log_rows = |path: &std::path::Path| -> Vec<(i64, String, Option<i64>)> {
        let c = rusqlite::Connection::open(path).unwrap();
        let mut stmt = c.prepare("SELECT seq, id, previous_seq FROM redemptions ORDER BY seq").unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
        rows.collect::<Result<Vec<_>, _>>().unwrap()
    };
    let rows_before = log_rows(&path);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(log_rows(&path), rows_before, "every row, with its seq, id and link");
    let log = schema_of(&path, "redemptions");
    assert!(!log.iter().any(|s| s.starts_with("sqlite_autoindex")), "no UNIQUE index on log ids: {log:?}");
    assert!(log.iter().any(|s| s.starts_with("redemptions_by_project:")), "{log:?}");
    assert!(log.iter().any(|s| s.starts_with("redemptions_success_time:")), "{log:?}");
    assert_logs(&store, &p, &before).await;

    // New attempts continue the chains.
    let all = merge(before, exercise(&store, &p, 5).await);
    assert_logs(&store, &p, &all).await;
}
