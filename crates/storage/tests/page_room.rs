//! Room for a redemption in each new code's row (SQLite, migration 0007): a
//! bulk load packs table pages full, and a redemption that made its row
//! longer split the page it sat on. With the room, redeeming every code of a
//! bulk load leaves the table on the pages it had.

mod support;

use codegate_domain::model::Project;
use codegate_storage::sqlite::SqliteStore;
use codegate_storage::{CodeStore, NewCode, ProjectStore, RedeemOutcome, RedeemRequest, RequestOrigin};
use support::{project, T0 as NOW};

const CODES: usize = 3_000;
/// A verifier id of the length the room is sized for.
const VERIFIER: &str = "user-00000000000042";

fn bulk(prefix: &str) -> Vec<NewCode> {
    (0..CODES)
        .map(|i| {
            let code = format!("{prefix}{i:08}");
            support::new_code(&code, &code, 1)
        })
        .collect()
}

async fn redeem_all(store: &SqliteStore, p: &Project, prefix: &str) {
    for i in 0..CODES {
        let code = format!("{prefix}{i:08}");
        let outcome = store
            .redeem(RedeemRequest {
                project_id: p.id.clone(),
                quota: None,
                code: code.clone(),
                code_norm: code,
                actor: Some(VERIFIER.into()),
                reason: None,
                origin: RequestOrigin::default(),
                now: NOW + i as i64,
            })
            .await
            .unwrap();
        assert!(matches!(outcome, RedeemOutcome::Success(_)), "{outcome:?}");
    }
}

/// Leaf pages of the codes table, and how many of `project`'s rows still hold their room.
fn table_pages(path: &std::path::Path, project_id: &str) -> (i64, i64) {
    let c = rusqlite::Connection::open(path).unwrap();
    let leaves = c
        .query_row("SELECT count(*) FROM dbstat WHERE name = 'codes' AND pagetype = 'leaf'", [], |r| r.get(0))
        .unwrap();
    let with_room = c
        .query_row("SELECT count(*) FROM codes WHERE project_id = ?1 AND spare IS NOT NULL", [project_id], |r| r.get(0))
        .unwrap();
    (leaves, with_room)
}

/// A store on a fresh database file, with one project.
struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: SqliteStore,
    p: Project,
}

async fn fixture(name: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("codes.db");
    let store = SqliteStore::open(&path).unwrap();
    let p = project(name);
    store.create_project(&p).await.unwrap();
    Fixture { _dir: dir, path, store, p }
}

#[tokio::test]
async fn redeeming_bulk_loaded_codes_splits_no_table_page() {
    let Fixture { path, store, p, _dir } = fixture("room").await;
    store.insert_codes(&p.id, None, bulk("R"), NOW).await.unwrap();
    let (leaves_before, with_room) = table_pages(&path, &p.id);
    assert_eq!(with_room, CODES as i64, "every new unused code has room");

    redeem_all(&store, &p, "R").await;
    let (leaves_after, with_room) = table_pages(&path, &p.id);
    assert_eq!(with_room, 0, "each redemption used its code's room");
    assert_eq!(leaves_after, leaves_before, "no page of the codes table split");
    let code = store.find_code(&p.id, "R00000007").await.unwrap().unwrap();
    assert_eq!((code.use_count, code.verified_by.as_deref()), (1, Some(VERIFIER)));
}

#[tokio::test]
async fn rows_without_room_split_their_pages() {
    // What codes stored before migration 0007 (or imported as used) do: the
    // same redemptions without the room grow the table. This is what the test
    // above would see if the room went missing.
    let Fixture { path, store, p, _dir } = fixture("no room").await;
    store.insert_codes(&p.id, None, bulk("N"), NOW).await.unwrap();
    // Rows without their room, packed again the way a bulk load packs them.
    rusqlite::Connection::open(&path).unwrap().execute_batch("UPDATE codes SET spare = NULL; VACUUM;").unwrap();
    let (leaves_before, _) = table_pages(&path, &p.id);

    redeem_all(&store, &p, "N").await;
    let (leaves_after, _) = table_pages(&path, &p.id);
    assert!(leaves_after > leaves_before + leaves_before / 10, "{leaves_before} -> {leaves_after} leaf pages");
}

#[tokio::test]
async fn codes_that_cannot_be_redeemed_get_no_room() {
    let Fixture { path, store, p, _dir } = fixture("used").await;
    let mut used = support::new_code("SPENT", "SPENT", 1);
    used.use_count = 1;
    used.verified_at = Some(NOW);
    used.verified_by = Some("importer".into());
    store.insert_codes(&p.id, None, vec![used, support::new_code("FRESH", "FRESH", 1)], NOW).await.unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    let room = |code: &str| -> Option<Vec<u8>> {
        c.query_row("SELECT spare FROM codes WHERE code = ?1", [code], |r| r.get(0)).unwrap()
    };
    assert_eq!(room("SPENT"), None);
    assert!(room("FRESH").is_some_and(|blank| !blank.is_empty() && blank.iter().all(|b| *b == 0)));
}
