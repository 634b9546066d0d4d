//! Page numbers and cursors list the same codes in the same order: whether
//! page N is found by an index seek on positions (a project whose codes were
//! never deleted) or by walking (after a deletion). On SQLite and on
//! PostgreSQL.

mod support;

use codegate_domain::model::Project;
use codegate_storage::postgres::PgStore;
use codegate_storage::sqlite::SqliteStore;
use codegate_storage::{CodeFilter, CodeStore, NewCode, PageAt, ProjectStore, Store};
use std::sync::Arc;
use support::postgres::TestDb;
use support::{new_code, project, T0 as NOW};

fn codes(prefix: &str, range: std::ops::Range<usize>) -> Vec<NewCode> {
    range.map(|i| new_code(&format!("{prefix}-{i:05}"), &format!("{prefix}{i:05}"), 1)).collect()
}

/// Every code, newest first, by following cursors.
async fn by_cursor(store: &dyn Store, p: &Project) -> Vec<String> {
    let (mut out, mut at) = (Vec::new(), PageAt::Number(1));
    loop {
        let page = store.list_codes(p, &CodeFilter::default(), at, 7, NOW).await.unwrap();
        out.extend(page.items.into_iter().map(|c| c.code));
        match page.next {
            Some(seq) => at = PageAt::After(seq),
            None => return out,
        }
    }
}

async fn assert_pages_match(store: &dyn Store, p: &Project) {
    let all = by_cursor(store, p).await;
    for size in [1u32, 3, 10, 100] {
        let pages = all.len() / size as usize + 2;
        for n in 1..=pages as u32 {
            let page = store.list_codes(p, &CodeFilter::default(), PageAt::Number(n), size, NOW).await.unwrap();
            let got: Vec<String> = page.items.into_iter().map(|c| c.code).collect();
            let from = ((n - 1) * size) as usize;
            let want: Vec<String> = all.iter().skip(from).take(size as usize).cloned().collect();
            assert_eq!(got, want, "page {n} of size {size}");
            assert_eq!(page.total as usize, all.len());
        }
    }
}

/// Interleaved batches of two projects with skipped duplicates, then a
/// deletion; pages checked against cursors throughout. `positions_dense`
/// checks a project's stored positions the backend's own way, before the
/// deletion.
async fn pages_before_and_after_deletions(store: &dyn Store, positions_dense: impl AsyncFn(&Project)) {
    let (a, b) = (project("a"), project("b"));
    store.create_project(&a).await.unwrap();
    store.create_project(&b).await.unwrap();
    // Interleaved batches of two projects, with duplicates that are skipped.
    store.insert_codes(&a.id, None, codes("A", 0..40), NOW).await.unwrap();
    store.insert_codes(&b.id, None, codes("B", 0..25), NOW).await.unwrap();
    let report = store.insert_codes(&a.id, None, codes("A", 30..75), NOW).await.unwrap();
    assert_eq!((report.inserted, report.duplicates.len()), (35, 10));
    store.insert_codes(&b.id, None, codes("B", 25..30), NOW).await.unwrap();

    let all = by_cursor(store, &a).await;
    assert_eq!(all.len(), 75);
    assert_eq!(all.first().map(String::as_str), Some("A-00074"), "newest first");
    assert_pages_match(store, &a).await;
    assert_pages_match(store, &b).await;
    positions_dense(&a).await;
    positions_dense(&b).await;

    // A deletion leaves a hole in the positions: pages must still be right.
    let victim =
        store.list_codes(&a, &CodeFilter::default(), PageAt::Number(3), 10, NOW).await.unwrap().items[4].clone();
    assert!(store.delete_code(&a.id, &victim.id).await.unwrap());
    store.insert_codes(&a.id, None, codes("A", 75..80), NOW).await.unwrap();
    let after = by_cursor(store, &a).await;
    assert_eq!(after.len(), 79);
    assert!(!after.contains(&victim.code));
    assert_pages_match(store, &a).await;
    assert_pages_match(store, &b).await;
}

#[tokio::test]
async fn page_numbers_and_cursors_agree_before_and_after_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paging.db");
    let store = SqliteStore::open(&path).unwrap();
    let positions_dense = async |p: &Project| {
        let c = rusqlite::Connection::open(&path).unwrap();
        let positions: Vec<i64> = c
            .prepare("SELECT position FROM codes WHERE project_id = ?1 ORDER BY seq")
            .unwrap()
            .query_map([&p.id], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(positions, (1..=positions.len() as i64).collect::<Vec<_>>());
    };
    pages_before_and_after_deletions(&store, positions_dense).await;
}

/// A project's positions in insertion order, and the next one it will hand out.
async fn pg_positions(store: &PgStore, p: &Project) -> (Vec<i64>, i64) {
    let positions = sqlx::query_scalar("SELECT position FROM codes WHERE project_id = $1 ORDER BY seq")
        .bind(&p.id)
        .fetch_all(store.pool())
        .await
        .unwrap();
    let next = sqlx::query_scalar("SELECT next_position FROM code_positions WHERE project_id = $1")
        .bind(&p.id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    (positions, next)
}

async fn assert_pg_positions_dense(store: &PgStore, p: &Project) {
    let (positions, next) = pg_positions(store, p).await;
    assert_eq!(positions, (1..=positions.len() as i64).collect::<Vec<_>>(), "positions 1..n in insertion order");
    assert_eq!(next, positions.len() as i64 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_page_numbers_and_cursors_agree_before_and_after_deletions() {
    let Some(db) = TestDb::new().await else { return };
    let store = db.store().await;
    pages_before_and_after_deletions(&store, async |p: &Project| assert_pg_positions_dense(&store, p).await).await;
}

/// Batches of one project added at once through two pools (two replicas)
/// number in turn: no position is handed out twice or skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_batches_of_one_project_number_densely() {
    let Some(db) = TestDb::new().await else { return };
    let stores = [Arc::new(db.store().await), Arc::new(db.store().await)];
    let a = project("a");
    stores[0].create_project(&a).await.unwrap();
    let batches: Vec<_> = (0..8)
        .map(|i| {
            let (store, id) = (stores[i % 2].clone(), a.id.clone());
            // Each batch overlaps the next by 20 codes: whichever lands second skips them.
            tokio::spawn(async move { store.insert_codes(&id, None, codes("A", i * 100..i * 100 + 120), NOW).await })
        })
        .collect();
    let mut inserted = 0;
    for b in batches {
        inserted += b.await.unwrap().unwrap().inserted;
    }
    assert_eq!(inserted, 7 * 100 + 120);
    assert_pg_positions_dense(&stores[0], &a).await;
    assert_pages_match(stores[1].as_ref(), &a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_positions_of_codes_stored_before_the_upgrade_are_filled_in() {
    let Some(db) = TestDb::new().await else { return };
    let (a, b) = (project("a"), project("b"));
    {
        let store = db.store().await;
        store.create_project(&a).await.unwrap();
        store.create_project(&b).await.unwrap();
        store.insert_codes(&a.id, None, codes("A", 0..20), NOW).await.unwrap();
        store.insert_codes(&b.id, None, codes("B", 0..20), NOW).await.unwrap();
        store.insert_codes(&a.id, None, codes("A", 20..33), NOW).await.unwrap();
        // Back to schema version 1, as an older binary left it.
        sqlx::raw_sql(
            "DROP INDEX codes_position;
             ALTER TABLE codes DROP COLUMN position;
             DROP TABLE code_positions;
             DROP INDEX redemptions_success_time;
             CREATE INDEX redemptions_successes ON redemptions(project_id, seq) WHERE result = 'success';
             CREATE INDEX redemptions_success_time ON redemptions(project_id, created_at) WHERE result = 'success';
             DELETE FROM schema_migrations WHERE version >= 2;",
        )
        .execute(store.pool())
        .await
        .unwrap();
        store.pool().close().await;
    }
    let store = db.store().await;
    assert_eq!(store.code_counts(&a, NOW).await.unwrap().total, 33, "counters survive the upgrade");
    assert_pg_positions_dense(&store, &a).await;
    assert_pg_positions_dense(&store, &b).await;
    assert_pages_match(&store, &a).await;
    store.insert_codes(&a.id, None, codes("A", 33..40), NOW).await.unwrap();
    assert_pg_positions_dense(&store, &a).await;
    assert_pages_match(&store, &a).await;
}

#[tokio::test]
async fn positions_of_codes_stored_before_the_upgrade_are_filled_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let (a, b) = (project("a"), project("b"));
    {
        let store = SqliteStore::open(&path).unwrap();
        store.create_project(&a).await.unwrap();
        store.create_project(&b).await.unwrap();
        store.insert_codes(&a.id, None, codes("A", 0..20), NOW).await.unwrap();
        store.insert_codes(&b.id, None, codes("B", 0..20), NOW).await.unwrap();
        store.insert_codes(&a.id, None, codes("A", 20..33), NOW).await.unwrap();
    }
    // Back to the schema before positions, as an older binary left it.
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(support::BEFORE_REDEMPTION_CHAINS).unwrap();
        c.execute_batch(
            "DROP INDEX codes_position;
             ALTER TABLE codes DROP COLUMN position;
             ALTER TABLE project_counters DROP COLUMN next_position;
             CREATE TRIGGER codes_counted_insert AFTER INSERT ON codes BEGIN
                 UPDATE project_counters
                    SET total = total + 1,
                        disabled = disabled + NEW.disabled,
                        used = used + (NEW.disabled = 0 AND NEW.use_count >= NEW.max_uses)
                  WHERE project_id = NEW.project_id;
             END;
             DELETE FROM schema_migrations WHERE version >= 3;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.code_counts(&a, NOW).await.unwrap().total, 33, "counters survive the upgrade");
    assert_pages_match(&store, &a).await;
    assert_pages_match(&store, &b).await;
    store.insert_codes(&a.id, None, codes("A", 33..40), NOW).await.unwrap();
    assert_eq!(by_cursor(&store, &a).await.len(), 40);
    assert_eq!(store.code_counts(&a, NOW).await.unwrap().total, 40, "counted without the insert trigger");
    assert_pages_match(&store, &a).await;
}
