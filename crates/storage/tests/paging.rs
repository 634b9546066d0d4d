//! Page numbers and cursors list the same codes in the same order: whether
//! page N is found by an index seek on positions (a project whose codes were
//! never deleted) or by walking (after a deletion).

mod support;

use codegate_domain::model::Project;
use codegate_storage::sqlite::SqliteStore;
use codegate_storage::{CodeFilter, CodeStore, NewCode, PageAt, ProjectStore};
use support::{new_code, project, T0 as NOW};

fn codes(prefix: &str, range: std::ops::Range<usize>) -> Vec<NewCode> {
    range.map(|i| new_code(&format!("{prefix}-{i:05}"), &format!("{prefix}{i:05}"), 1)).collect()
}

/// Every code, newest first, by following cursors.
async fn by_cursor(store: &SqliteStore, p: &Project) -> Vec<String> {
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

async fn assert_pages_match(store: &SqliteStore, p: &Project) {
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

#[tokio::test]
async fn page_numbers_and_cursors_agree_before_and_after_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("paging.db")).unwrap();
    let (a, b) = (project("a"), project("b"));
    store.create_project(&a).await.unwrap();
    store.create_project(&b).await.unwrap();
    // Interleaved batches of two projects, with duplicates that are skipped.
    store.insert_codes(&a.id, None, codes("A", 0..40), NOW).await.unwrap();
    store.insert_codes(&b.id, None, codes("B", 0..25), NOW).await.unwrap();
    let report = store.insert_codes(&a.id, None, codes("A", 30..75), NOW).await.unwrap();
    assert_eq!((report.inserted, report.duplicates.len()), (35, 10));
    store.insert_codes(&b.id, None, codes("B", 25..30), NOW).await.unwrap();

    let all = by_cursor(&store, &a).await;
    assert_eq!(all.len(), 75);
    assert_eq!(all.first().map(String::as_str), Some("A-00074"), "newest first");
    assert_pages_match(&store, &a).await;
    assert_pages_match(&store, &b).await;

    // A deletion leaves a hole in the positions: pages must still be right.
    let victim =
        store.list_codes(&a, &CodeFilter::default(), PageAt::Number(3), 10, NOW).await.unwrap().items[4].clone();
    assert!(store.delete_code(&a.id, &victim.id).await.unwrap());
    store.insert_codes(&a.id, None, codes("A", 75..80), NOW).await.unwrap();
    let after = by_cursor(&store, &a).await;
    assert_eq!(after.len(), 79);
    assert!(!after.contains(&victim.code));
    assert_pages_match(&store, &a).await;
    assert_pages_match(&store, &b).await;
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
