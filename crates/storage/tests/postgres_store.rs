//! The storage behaviour on a real PostgreSQL (127.0.0.1:5432 unless
//! `CODEGATE_TEST_DATABASE_URL` names another server). Every test makes a
//! database of its own and drops it afterwards.
//!
//! Without a reachable server the tests say so and pass locally; in CI
//! (`CI=true`) they fail, so the suite can never be skipped silently there.

mod support;

use codegate_domain::codes::{check_reactivate, check_verify, CodeFacts, CodeState};
use codegate_domain::ids::new_id;
use codegate_domain::model::{
    AccessToken, ApiKey, AuditEntry, Code, CodeCounts, Project, Quotas, RedemptionLog, Role, Scope, Session, User,
};
use codegate_domain::normalize::normalize_code;
use codegate_domain::RedeemFailure;
use codegate_storage::postgres::PgStore;
use codegate_storage::sqlite::SqliteStore;
use codegate_storage::{
    AuditFilter, Batch, BulkAction, CodeFilter, CodePatch, CodeSelection, CodeStore, NewCode, PageAt, ProjectPatch,
    ProjectStore, RedeemOutcome, RedeemRequest, RedemptionFilter, RedemptionStore, RequestOrigin, SealedSecrets, Store,
    StoreError, UserPatch,
};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use support::postgres::TestDb;

const START: i64 = support::T0;

// ------------------------------------------------------------------ helpers

fn new_project(name: &str) -> Project {
    support::project(name)
}

fn new_code(code: &str) -> NewCode {
    support::new_code(code, &normalize_code(code, true), 1)
}

fn request(project: &Project, code: &str, now: i64) -> RedeemRequest {
    RedeemRequest {
        project_id: project.id.clone(),
        quota: None,
        code: code.to_owned(),
        code_norm: normalize_code(code, project.rules.normalize),
        actor: Some("tester".into()),
        reason: None,
        origin: RequestOrigin {
            ip_address: Some("127.0.0.1".into()),
            user_agent: Some("ua".into()),
            credential: Some("key".into()),
        },
        now,
    }
}

async fn all_codes(store: &dyn Store, project: &Project, now: i64) -> Vec<Code> {
    let mut out = Vec::new();
    for page in 1.. {
        let p = store.list_codes(project, &CodeFilter::default(), PageAt::Number(page), 100, now).await.unwrap();
        let n = p.items.len();
        out.extend(p.items);
        if n < 100 {
            break;
        }
    }
    out
}

fn recount(codes: &[Code], project: &Project, now: i64) -> CodeCounts {
    let mut c = CodeCounts::default();
    for code in codes {
        c.total += 1;
        match code.state(project.expires_at, now) {
            CodeState::Unused => c.unused += 1,
            CodeState::Used => c.used += 1,
            CodeState::Disabled => c.disabled += 1,
            CodeState::Expired => c.expired += 1,
        }
    }
    c
}

async fn assert_counters_match_recount(store: &dyn Store, project: &Project, now: i64) {
    let codes = all_codes(store, project, now).await;
    assert_eq!(store.code_counts(project, now).await.unwrap(), recount(&codes, project, now), "counters vs recount");
    for state in [CodeState::Unused, CodeState::Used, CodeState::Disabled, CodeState::Expired] {
        let filter = CodeFilter { state: Some(state), ..Default::default() };
        let page = store.list_codes(project, &filter, PageAt::Number(1), 100, now).await.unwrap();
        let expected = codes.iter().filter(|c| c.state(project.expires_at, now) == state).count();
        assert_eq!((page.items.len(), page.total as usize), (expected, expected), "listing by {state:?}");
    }
}

// ------------------------------------------------------------------ exactly once

/// 64 tasks over two stores (two "replicas", each with its own pool) race to
/// redeem the same 50 codes: exactly one success per code, one success log row
/// per code, and the counters equal a recount.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_redeems_on_two_pools_succeed_exactly_once_per_code() {
    let Some(db) = TestDb::new().await else { return };
    let replicas = [Arc::new(db.store().await), Arc::new(db.store().await)];
    let project = new_project("race");
    replicas[0].create_project(&project).await.unwrap();
    let codes: Vec<String> = (0..50).map(|i| format!("RACE-{i:03}")).collect();
    let report = replicas[0].insert_codes(&project.id, None, codes.iter().map(|c| new_code(c)).collect(), START).await;
    assert_eq!(report.unwrap().inserted, 50);

    let mut tasks = Vec::new();
    for task in 0..64usize {
        let (store, project, codes) = (replicas[task % 2].clone(), project.clone(), codes.clone());
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            // Each task walks the codes from a different start, so every code is contended.
            for i in 0..codes.len() {
                let code = &codes[(i + task) % codes.len()];
                match store.redeem(request(&project, code, START)).await.unwrap() {
                    RedeemOutcome::Success(row) => won.push(row.code),
                    RedeemOutcome::Failure(f, _) => assert_eq!(f, RedeemFailure::CodeAlreadyUsed),
                    other => panic!("unexpected {other:?}"),
                }
            }
            won
        }));
    }
    let mut wins: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        for code in t.await.unwrap() {
            *wins.entry(code).or_default() += 1;
        }
    }
    assert_eq!(wins.len(), 50, "every code was redeemed");
    assert!(wins.values().all(|n| *n == 1), "exactly one success per code: {wins:?}");

    let store = replicas[1].as_ref();
    let counts = store.code_counts(&project, START).await.unwrap();
    assert_eq!((counts.total, counts.used, counts.unused), (50, 50, 0));
    assert_counters_match_recount(store, &project, START).await;
    let successes = store
        .list_redemptions(&project.id, &RedemptionFilter { result: Some("success".into()), code_id: None }, 1, 100)
        .await
        .unwrap();
    assert_eq!(successes.total, 50, "one success row per code");
    let failures = store
        .list_redemptions(&project.id, &RedemptionFilter { result: Some("failed".into()), code_id: None }, 1, 1)
        .await
        .unwrap();
    assert_eq!(failures.total, 64 * 50 - 50, "every losing attempt is logged as failed");
}

/// A redemption quota counted inside the transaction holds under concurrency.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redemption_quota_is_never_overshot_by_concurrent_redeems() {
    let Some(db) = TestDb::new().await else { return };
    let store = Arc::new(db.store().await);
    let project = new_project("quota");
    store.create_project(&project).await.unwrap();
    let codes: Vec<String> = (0..40).map(|i| format!("Q-{i:03}")).collect();
    store.insert_codes(&project.id, None, codes.iter().map(|c| new_code(c)).collect(), START).await.unwrap();

    let tasks: Vec<_> = codes
        .iter()
        .map(|code| {
            let (store, mut req) = (store.clone(), request(&project, code, START));
            req.quota = Some((10, 3600));
            tokio::spawn(async move { store.redeem(req).await.unwrap() })
        })
        .collect();
    let (mut ok, mut exhausted) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            RedeemOutcome::Success(_) => ok += 1,
            RedeemOutcome::QuotaExhausted => exhausted += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, exhausted), (10, 30));
    assert_eq!(store.code_counts(&project, START).await.unwrap().used, 10);
}

// ------------------------------------------------------------------ same behaviour as SQLite

/// Sorted-field summaries without the ids a store makes up itself.
fn log_line(l: &RedemptionLog) -> String {
    format!(
        "{}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{}",
        l.code, l.action, l.result, l.reason, l.actor, l.ip_address, l.user_agent, l.credential, l.created_at
    )
}

/// Drives every trait method through one scenario and writes down what the
/// store answered. Both stores must answer the same.
async fn transcript(store: &dyn Store) -> Vec<String> {
    let mut t = Vec::new();
    let mut project = new_project("parity");
    project.id = "0123456789abcdef0123456789abcdef".into();
    project.rules.normalize = true;
    store.create_project(&project).await.unwrap();
    let clash = Project { id: new_id(), ..project.clone() };
    t.push(format!("dup project: {:?}", store.create_project(&clash).await.err()));
    let other = Project { id: "f".repeat(32), name: "other".into(), created_at: START + 1, ..project.clone() };
    store.create_project(&other).await.unwrap();
    t.push(format!("projects: {:?}", store.list_projects().await.unwrap().iter().map(|p| &p.name).collect::<Vec<_>>()));

    let batch = Batch {
        id: "b".repeat(32),
        project_id: project.id.clone(),
        name: Some("spring".into()),
        source: "generate",
        pattern: Some("XXXX".into()),
        requested: 6,
        metadata: Some(serde_json::json!({"plan": "pro"})),
        created_at: START,
    };
    store.create_batch(&batch).await.unwrap();
    let mut offered = Vec::new();
    for (i, text) in ["AAAA-1111", "BBBB-2222", "CCCC-3333", "aaaa 1111", "DDDD-4444", "EEEE-5555"].iter().enumerate() {
        let mut n = new_code(text);
        n.id = format!("{:032x}", i + 1);
        n.metadata = Some(serde_json::json!({"n": i}));
        if i == 4 {
            n.expires_at = Some(START + 10);
        }
        if i == 5 {
            n.max_uses = 3;
        }
        offered.push(n);
    }
    let report = store.insert_codes(&project.id, Some(&batch.id), offered, START).await.unwrap();
    t.push(format!("insert: {} {:?}", report.inserted, report.duplicates));
    t.push(format!(
        "batches: {:?}",
        store
            .list_batches(&project.id)
            .await
            .unwrap()
            .iter()
            .map(|b| (&b.batch.name, b.code_count, &b.batch.metadata))
            .collect::<Vec<_>>()
    ));

    let at = |now: i64, code: &str| request(&project, code, now);
    for (now, code) in [
        (START, "aaaa1111"),
        (START, "AAAA-1111"),
        (START, "nope"),
        (START + 20, "DDDD-4444"),
        (START, "EEEE-5555"),
        (START, "eeee5555"),
    ] {
        t.push(format!("redeem {code}: {:?}", store.redeem(at(now, code)).await.unwrap()));
    }
    let mut reactivate = at(START + 1, "AAAA-1111");
    reactivate.reason = Some("support".into());
    t.push(format!("reactivate: {:?}", store.reactivate(reactivate.clone()).await.unwrap()));
    t.push(format!("reactivate again: {:?}", store.reactivate(reactivate).await.unwrap()));
    let patch = CodePatch { disabled: Some(true), metadata: Some(None), ..Default::default() };
    t.push(format!("update: {:?}", store.update_code(&project.id, &format!("{:032x}", 2), patch).await.unwrap()));
    t.push(format!("redeem disabled: {:?}", store.redeem(at(START, "BBBB-2222")).await.unwrap()));
    t.push(format!("get: {:?}", store.get_code(&project.id, &format!("{:032x}", 3)).await.unwrap()));
    t.push(format!("find: {:?}", store.find_code(&project.id, "EEEE5555").await.unwrap()));
    t.push(format!("counts: {:?}", store.code_counts(&project, START + 20).await.unwrap()));
    // NUL cannot be stored in PostgreSQL text: such lookups find nothing, as in SQLite.
    t.push(format!("find NUL: {:?}", store.find_code(&project.id, "AAAA\u{0}1111").await.unwrap()));
    let mut nul = at(START, "A\0B");
    nul.actor = Some("x\0y".into());
    t.push(format!("redeem NUL: {:?}", store.redeem(nul.clone()).await.unwrap()));
    t.push(format!("reactivate NUL: {:?}", store.reactivate(nul).await.unwrap()));
    let search = CodeFilter { search: Some("A\0".into()), ..Default::default() };
    t.push(format!(
        "search NUL: {:?}",
        store.list_codes(&project, &search, PageAt::Number(1), 5, START).await.unwrap().total
    ));

    for (filter, label) in [
        (CodeFilter { search: Some("bbb".into()), ..Default::default() }, "search"),
        (CodeFilter { state: Some(CodeState::Expired), ..Default::default() }, "expired"),
        (CodeFilter { batch_id: Some(batch.id.clone()), ..Default::default() }, "batch"),
        (CodeFilter { search: Some("%".into()), ..Default::default() }, "wildcard"),
    ] {
        let page = store.list_codes(&project, &filter, PageAt::Number(1), 2, START + 20).await.unwrap();
        t.push(format!("list {label}: {} {:?}", page.total, page.items.iter().map(|c| &c.code).collect::<Vec<_>>()));
        if let Some(next) = page.next {
            let rest = store.list_codes(&project, &filter, PageAt::After(next), 10, START + 20).await.unwrap();
            t.push(format!("  next: {:?}", rest.items.iter().map(|c| &c.code).collect::<Vec<_>>()));
            let after = store.codes_after(&project, &filter, Some(next), 10, START + 20).await.unwrap();
            t.push(format!("  after: {:?}", after.iter().map(|c| &c.1.code).collect::<Vec<_>>()));
        }
    }
    let first = store.codes_after(&project, &CodeFilter::default(), None, 3, START).await.unwrap();
    t.push(format!("codes_after: {:?}", first.iter().map(|c| &c.1.code).collect::<Vec<_>>()));

    let logs = store.code_redemptions(&format!("{:032x}", 1), 10).await.unwrap();
    t.push(format!("code logs: {:?}", logs.iter().map(log_line).collect::<Vec<_>>()));
    let recent = store.recent_successes(Some(&project.id), 10).await.unwrap();
    t.push(format!("recent: {:?}", recent.iter().map(log_line).collect::<Vec<_>>()));
    t.push(format!("recent all: {}", store.recent_successes(None, 10).await.unwrap().len()));
    let page = store.list_redemptions(&project.id, &RedemptionFilter::default(), 2, 3).await.unwrap();
    t.push(format!("redemptions p2: {} {:?}", page.total, page.items.iter().map(log_line).collect::<Vec<_>>()));
    t.push(format!("per day: {:?}", store.redemptions_per_day(Some(&project.id), 0).await.unwrap()));
    t.push(format!("per day all: {:?}", store.redemptions_per_day(None, START).await.unwrap()));

    let ids = CodeSelection::Ids(vec![format!("{:032x}", 3), format!("{:032x}", 99)]);
    t.push(format!("bulk disable ids: {}", store.bulk_codes(&project, ids, BulkAction::Disable, START).await.unwrap()));
    let used = CodeSelection::Filter(CodeFilter { state: Some(CodeState::Disabled), ..Default::default() });
    t.push(format!("bulk enable: {}", store.bulk_codes(&project, used, BulkAction::Enable, START).await.unwrap()));
    let search = CodeSelection::Filter(CodeFilter { search: Some("dddd".into()), ..Default::default() });
    t.push(format!("bulk delete: {}", store.bulk_codes(&project, search, BulkAction::Delete, START).await.unwrap()));
    t.push(format!("delete code: {}", store.delete_code(&project.id, &format!("{:032x}", 3)).await.unwrap()));
    t.push(format!("counts after bulk: {:?}", store.code_counts(&project, START).await.unwrap()));

    let patch = ProjectPatch {
        name: Some("renamed".into()),
        expires_at: Some(Some(START + 5)),
        quotas: Some(Quotas { max_codes: Some(10), ..Default::default() }),
        ..Default::default()
    };
    project = store.update_project(&project.id, patch, START + 2).await.unwrap().unwrap();
    t.push(format!("project: {project:?}"));
    t.push(format!("get project: {:?}", store.get_project(&project.id).await.unwrap() == Some(project.clone())));
    let rename = ProjectPatch { name: Some("other".into()), ..Default::default() };
    t.push(format!("rename clash: {:?}", store.update_project(&project.id, rename, START).await.err()));
    t.push(format!("counts expired project: {:?}", store.code_counts(&project, START + 30).await.unwrap()));
    t.push(format!("missing project: {:?}", store.update_project("x", ProjectPatch::default(), 0).await.unwrap()));

    // Keys.
    let key = ApiKey {
        id: "k".repeat(32),
        project_id: project.id.clone(),
        api_key: "a".repeat(32),
        name: Some("backend".into()),
        sealed_secret: vec![1, 2, 3],
        sealed_previous_secret: None,
        previous_valid_until: None,
        enabled: true,
        last_used_at: None,
        created_at: START,
    };
    store.create_api_key(&key).await.unwrap();
    t.push(format!("dup key: {:?}", store.create_api_key(&ApiKey { id: new_id(), ..key.clone() }).await.err()));
    store.touch_api_key(&key.id, START + 9).await.unwrap();
    t.push(format!("disable key: {:?}", store.set_api_key_enabled(&project.id, &key.id, false).await.unwrap()));
    t.push(format!("rotate: {:?}", store.rotate_api_key(&project.id, &key.id, vec![9], START + 99).await.unwrap()));
    t.push(format!("rotate missing: {:?}", store.rotate_api_key(&project.id, "nope", vec![9], 0).await.unwrap()));
    t.push(format!("find key: {:?}", store.find_api_key(&key.api_key).await.unwrap()));
    t.push(format!("list keys: {}", store.list_api_keys(&project.id).await.unwrap().len()));
    let sealed = store.sealed_secrets().await.unwrap();
    t.push(format!("sealed: {sealed:?}"));
    let resealed: Vec<_> = sealed
        .iter()
        .map(|read| (read.clone(), SealedSecrets { secret: vec![7, 7], previous: Some(vec![8]), ..read.clone() }))
        .collect();
    // A pair whose key is gone fails the whole call, and nothing is written.
    let mut stale = resealed.clone();
    stale.push((SealedSecrets { key_id: "gone".into(), ..sealed[0].clone() }, sealed[0].clone()));
    let refused = store.reseal_secrets(stale).await.err();
    assert!(matches!(refused, Some(StoreError::Conflict("api_key_changed"))), "{refused:?}");
    t.push(format!("reseal stale: {refused:?}"));
    assert_eq!(store.sealed_secrets().await.unwrap(), sealed, "nothing written");
    store.reseal_secrets(resealed.clone()).await.unwrap();
    let after = store.sealed_secrets().await.unwrap();
    assert_eq!(after, resealed.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>());
    t.push(format!("after reseal: {after:?}"));
    // What was read is no longer stored: a second write of the same pairs is refused.
    t.push(format!("reseal twice: {:?}", store.reseal_secrets(resealed).await.err()));
    t.push(format!(
        "delete key: {} {}",
        store.delete_api_key(&project.id, &key.id).await.unwrap(),
        store.delete_api_key(&project.id, &key.id).await.unwrap()
    ));

    // Accounts.
    let user = User {
        id: "u".repeat(32),
        username: "alice".into(),
        password_hash: "hash".into(),
        role: Role::Admin,
        must_change_password: true,
        disabled: false,
        created_at: START,
    };
    store.create_user(&user).await.unwrap();
    t.push(format!("dup user: {:?}", store.create_user(&User { id: new_id(), ..user.clone() }).await.err()));
    t.push(format!(
        "users: {} {:?}",
        store.count_users().await.unwrap(),
        store.find_user_by_name("alice").await.unwrap()
    ));
    let token = AccessToken {
        id: "t".repeat(32),
        user_id: user.id.clone(),
        name: "ci".into(),
        token_hash: "h".repeat(64),
        display_prefix: "cgp_abcd".into(),
        scopes: vec![Scope::Read, Scope::Verify],
        project_id: Some(project.id.clone()),
        expires_at: Some(START + 1000),
        revoked_at: None,
        last_used_at: None,
        created_at: START,
    };
    store.create_token(&token).await.unwrap();
    t.push(format!("dup token: {:?}", store.create_token(&AccessToken { id: new_id(), ..token.clone() }).await.err()));
    store.touch_token(&token.id, START + 3).await.unwrap();
    t.push(format!("find token: {:?}", store.find_token(&token.token_hash).await.unwrap()));
    t.push(format!(
        "tokens: {:?} {:?}",
        store.list_tokens(Some(&user.id)).await.unwrap(),
        store.list_tokens(None).await.unwrap().len()
    ));
    t.push(format!(
        "revoke: {} {}",
        store.revoke_token(&token.id, START + 4).await.unwrap(),
        store.revoke_token(&token.id, START + 5).await.unwrap()
    ));
    t.push(format!("get token: {:?}", store.get_token(&token.id).await.unwrap()));
    let patch = UserPatch { role: Some(Role::Viewer), password: Some(("new".into(), false)), ..Default::default() };
    t.push(format!("update user: {:?}", store.update_user(&user.id, patch).await.unwrap()));
    t.push(format!(
        "get user: {:?} {:?}",
        store.get_user(&user.id).await.unwrap(),
        store.list_users().await.unwrap().len()
    ));
    let session = Session {
        id_hash: "s".repeat(64),
        user_id: user.id.clone(),
        csrf_token: "csrf".into(),
        created_at: START,
        expires_at: START + 60,
    };
    store.create_session(&session).await.unwrap();
    t.push(format!("session: {:?}", store.find_session(&session.id_hash, START + 1).await.unwrap()));
    t.push(format!("session expired: {:?}", store.find_session(&session.id_hash, START + 61).await.unwrap()));
    store.delete_user_sessions(&user.id).await.unwrap();
    t.push(format!("session gone: {:?}", store.find_session(&session.id_hash, START + 1).await.unwrap()));
    store.create_session(&session).await.unwrap();
    store.delete_session(&session.id_hash).await.unwrap();
    t.push(format!("session deleted: {:?}", store.find_session(&session.id_hash, START + 1).await.unwrap()));

    // Audit.
    for (i, action) in ["project.create", "code.generate", "project.create"].iter().enumerate() {
        let entry = AuditEntry {
            id: format!("{:032x}", 100 + i),
            actor: if i == 1 { "bob".into() } else { "alice".into() },
            action: (*action).into(),
            resource_type: "project".into(),
            resource_id: Some(project.id.clone()),
            project_id: Some(project.id.clone()),
            result: "success".into(),
            ip_address: Some("127.0.0.1".into()),
            detail: Some(serde_json::json!({"i": i})),
            created_at: START + i as i64,
        };
        store.record_audit(&entry).await.unwrap();
    }
    let filter = AuditFilter { actor: Some("alice".into()), ..Default::default() };
    t.push(format!("audit: {:?}", store.list_audit(&filter, 1, 1).await.unwrap()));
    let filter = AuditFilter {
        action: Some("code.generate".into()),
        project_id: Some(project.id.clone()),
        ..Default::default()
    };
    t.push(format!("audit 2: {:?}", store.list_audit(&filter, 1, 10).await.unwrap().total));

    t.push(format!(
        "delete user: {} {}",
        store.delete_user(&user.id).await.unwrap(),
        store.delete_user(&user.id).await.unwrap()
    ));
    t.push(format!(
        "delete project: {} {}",
        store.delete_project(&project.id).await.unwrap(),
        store.delete_project(&project.id).await.unwrap()
    ));
    t.push(format!("counts deleted: {:?}", store.code_counts(&project, START).await.unwrap()));
    t.push(format!("ping: {:?}", store.ping().await.is_ok()));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_method_answers_as_sqlite_does() {
    let Some(db) = TestDb::new().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path().join("x.db")).unwrap();
    let expected = transcript(&sqlite).await;
    let got = transcript(&db.store().await).await;
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(g, e, "step {i} differs (left: PostgreSQL, right: SQLite)");
    }
    assert_eq!(got.len(), expected.len());
}

// ------------------------------------------------------------------ errors, migrations, recovery

#[tokio::test]
async fn an_unreachable_server_is_unavailable_not_a_fault() {
    // Nothing listens on port 1.
    match PgStore::connect("postgres://postgres@127.0.0.1:1/none").await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {:?}", other.err()),
    }
}

/// Replicas starting at once: one migrates, the others wait and find it done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_migrate_once() {
    let Some(db) = TestDb::new().await else { return };
    let starts: Vec<_> = (0..6)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { PgStore::connect(&url).await.map(|_| ()) })
        })
        .collect();
    for s in starts {
        s.await.unwrap().expect("every replica starts");
    }
    let store = db.store().await;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(versions, vec![1, 2]);
}

/// Connections killed under the pool (as a database restart does) are
/// replaced by themselves: the next calls work without reopening the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_recovers_when_its_connections_are_killed() {
    let Some(db) = TestDb::new().await else { return };
    let store = db.store().await;
    let project = new_project("recover");
    store.create_project(&project).await.unwrap();
    // Warm several connections.
    let warm: Vec<_> = (0..4).map(|_| store.ping()).collect();
    for w in warm {
        w.await.unwrap();
    }
    let admin = PgStore::connect(&db.url).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'codegate') k",
    )
    .fetch_one(admin.pool())
    .await
    .unwrap();
    assert!(killed >= 1, "the store had live connections to kill");
    // Connections idle this long are tested before use (sooner, a query is the test).
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    store.ping().await.expect("ping after the kill");
    assert_eq!(store.get_project(&project.id).await.unwrap().unwrap().name, "recover");
}

// ------------------------------------------------------------------ random sequences

#[derive(Debug, Clone)]
enum Op {
    Insert { code: usize, max_uses: i64, use_count: i64, disabled: bool, expires: Option<i64> },
    Redeem(usize),
    Reactivate(usize),
    SetDisabled(usize, bool),
    SetExpiry(usize, Option<i64>),
    SetProjectEnabled(bool),
    SetProjectExpiry(Option<i64>),
    Advance(i64),
}

const CODES: [&str; 5] = ["ALPHA-1", "BRAVO-2", "CHARLIE-3", "DELTA-4", "ECHO-5"];

fn op() -> impl Strategy<Value = Op> {
    let code = 0..CODES.len();
    let offset = prop_oneof![Just(0i64), -30i64..30];
    prop_oneof![
        3 => (code.clone(), 1i64..4, 0i64..4, prop::bool::weighted(0.2), prop::option::weighted(0.3, offset.clone()))
            .prop_map(|(code, max_uses, use_count, disabled, expires)| Op::Insert {
                code, max_uses, use_count: use_count.min(max_uses), disabled, expires,
            }),
        5 => code.clone().prop_map(Op::Redeem),
        3 => code.clone().prop_map(Op::Reactivate),
        1 => (code.clone(), any::<bool>()).prop_map(|(c, d)| Op::SetDisabled(c, d)),
        1 => (code, prop::option::of(offset.clone())).prop_map(|(c, e)| Op::SetExpiry(c, e)),
        1 => prop::bool::weighted(0.8).prop_map(Op::SetProjectEnabled),
        1 => prop::option::weighted(0.3, offset).prop_map(Op::SetProjectExpiry),
        2 => (0i64..20).prop_map(Op::Advance),
    ]
}

/// One sequence on a project of its own; the model is what the domain says.
async fn run_sequence(store: &PgStore, ops: Vec<Op>) {
    let mut project = new_project(&format!("props-{}", new_id()));
    store.create_project(&project).await.unwrap();
    let mut now = START;
    let mut model: HashMap<String, (String, CodeFacts)> = HashMap::new();
    for op in ops {
        match op {
            Op::Insert { code, max_uses, use_count, disabled, expires } => {
                let mut n = new_code(CODES[code]);
                (n.max_uses, n.use_count, n.disabled, n.expires_at) =
                    (max_uses, use_count, disabled, expires.map(|d| now + d));
                let facts = CodeFacts { disabled, use_count, max_uses, expires_at: n.expires_at };
                let (id, norm) = (n.id.clone(), n.code_norm.clone());
                let report = store.insert_codes(&project.id, None, vec![n], now).await.unwrap();
                assert_eq!(report.inserted, u64::from(!model.contains_key(&norm)));
                model.entry(norm).or_insert((id, facts));
            }
            Op::Redeem(code) | Op::Reactivate(code) => {
                let is_verify = matches!(op, Op::Redeem(..));
                let norm = normalize_code(CODES[code], true);
                let before = model.get(&norm).map(|m| m.1);
                let check = if is_verify { check_verify } else { check_reactivate };
                let expected = check(before.as_ref(), &project.facts(), now);
                let req = request(&project, CODES[code], now);
                let outcome = if is_verify { store.redeem(req).await } else { store.reactivate(req).await };
                match (outcome.unwrap(), expected) {
                    (RedeemOutcome::Success(row), Ok(())) => {
                        let entry = model.get_mut(&norm).unwrap();
                        entry.1.use_count += if is_verify { 1 } else { -1 };
                        assert_eq!(row.facts(), entry.1);
                    }
                    (RedeemOutcome::Failure(f, row), Err(e)) => {
                        assert_eq!(f, e);
                        assert_eq!(row.map(|r| r.facts()), before);
                    }
                    (got, want) => panic!("{op:?}: store said {got:?}, domain says {want:?}"),
                }
            }
            Op::SetDisabled(code, disabled) => {
                let Some((id, facts)) = model.get_mut(&normalize_code(CODES[code], true)) else { continue };
                let patch = CodePatch { disabled: Some(disabled), ..Default::default() };
                facts.disabled = disabled;
                assert_eq!(store.update_code(&project.id, id, patch).await.unwrap().unwrap().facts(), *facts);
            }
            Op::SetExpiry(code, expires) => {
                let Some((id, facts)) = model.get_mut(&normalize_code(CODES[code], true)) else { continue };
                facts.expires_at = expires.map(|d| now + d);
                let patch = CodePatch { expires_at: Some(facts.expires_at), ..Default::default() };
                assert_eq!(store.update_code(&project.id, id, patch).await.unwrap().unwrap().facts(), *facts);
            }
            Op::SetProjectEnabled(enabled) => {
                let patch = ProjectPatch { enabled: Some(enabled), ..Default::default() };
                project = store.update_project(&project.id, patch, now).await.unwrap().unwrap();
            }
            Op::SetProjectExpiry(expires) => {
                let patch = ProjectPatch { expires_at: Some(expires.map(|d| now + d)), ..Default::default() };
                project = store.update_project(&project.id, patch, now).await.unwrap().unwrap();
            }
            Op::Advance(secs) => now += secs,
        }
        assert_counters_match_recount(store, &project, now).await;
        let codes = all_codes(store, &project, now).await;
        assert_eq!(codes.len(), model.len());
        for code in &codes {
            let (id, facts) = &model[&normalize_code(&code.code, true)];
            assert_eq!((&code.id, &code.facts()), (id, facts));
        }
    }
}

#[test]
fn random_sequences_agree_with_the_domain_and_the_counters() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let Some(db) = rt.block_on(TestDb::new()) else { return };
    let store = rt.block_on(db.store());
    let config = ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(ops in prop::collection::vec(op(), 1..30))| {
        rt.block_on(run_sequence(&store, ops));
    });
    rt.block_on(store.close());
}
