//! Property tests of the SQLite store on a real file: random operation
//! sequences through the `Store` traits agree with the domain rules, and the
//! counters behind statistics always equal a recount of the codes.

mod support;

use codegate_domain::codes::{check_reactivate, check_verify, CodeFacts, CodeState};
use codegate_domain::ids::new_id;
use codegate_domain::model::{CodeCounts, Project};
use codegate_domain::normalize::normalize_code;
use codegate_storage::sqlite::SqliteStore;
use codegate_storage::{
    CodeFilter, CodePatch, CodeStore, NewCode, PageAt, ProjectPatch, ProjectStore, RedeemOutcome, RedeemRequest,
    RequestOrigin,
};
use proptest::prelude::*;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

const START: i64 = support::T0;
/// The codes a sequence plays with; each op picks one and a way of typing it.
const CODES: [&str; 5] = ["ALPHA-1", "BRAVO-2", "CHARLIE-3", "DELTA-4", "ECHO-5"];

#[derive(Debug, Clone)]
enum Op {
    Insert { code: usize, typed: usize, max_uses: i64, use_count: i64, disabled: bool, expires: Option<i64> },
    Redeem(usize, usize),
    Reactivate(usize, usize),
    SetDisabled(usize, bool),
    SetExpiry(usize, Option<i64>),
    SetProjectEnabled(bool),
    SetProjectExpiry(Option<i64>),
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let code = 0..CODES.len();
    let typed = 0..3usize;
    let offset = prop_oneof![Just(0i64), -30i64..30];
    prop_oneof![
        3 => (code.clone(), typed.clone(), 1i64..4, 0i64..4, prop::bool::weighted(0.2),
              prop::option::weighted(0.3, offset.clone()))
            .prop_map(|(code, typed, max_uses, use_count, disabled, expires)| Op::Insert {
                code, typed, max_uses, use_count: use_count.min(max_uses), disabled, expires,
            }),
        5 => (code.clone(), typed.clone()).prop_map(|(c, t)| Op::Redeem(c, t)),
        3 => (code.clone(), typed).prop_map(|(c, t)| Op::Reactivate(c, t)),
        1 => (code.clone(), any::<bool>()).prop_map(|(c, d)| Op::SetDisabled(c, d)),
        1 => (code, prop::option::of(offset.clone())).prop_map(|(c, e)| Op::SetExpiry(c, e)),
        1 => prop::bool::weighted(0.8).prop_map(Op::SetProjectEnabled),
        1 => prop::option::weighted(0.3, offset).prop_map(Op::SetProjectExpiry),
        2 => (0i64..20).prop_map(Op::Advance),
    ]
}

/// The ways a person may type a code; with normalisation on they all match.
fn typed(code: &str, how: usize) -> String {
    match how {
        0 => code.to_owned(),
        1 => code.to_lowercase(),
        _ => code.replace('-', " "),
    }
}

fn new_project() -> Project {
    support::project("props")
}

fn request(project: &Project, code: &str, now: i64) -> RedeemRequest {
    RedeemRequest {
        project_id: project.id.clone(),
        quota: None,
        code: code.to_owned(),
        code_norm: normalize_code(code, project.rules.normalize),
        actor: Some("prop".into()),
        reason: None,
        origin: RequestOrigin::default(),
        now,
    }
}

/// Every code of the project, by walking all pages.
async fn all_codes(store: &SqliteStore, project: &Project, now: i64) -> Vec<codegate_domain::model::Code> {
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

fn recount(codes: &[codegate_domain::model::Code], project: &Project, now: i64) -> CodeCounts {
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

/// Counters equal a recount, each state filter lists exactly its codes, and
/// the store holds what the model expects.
async fn check_consistent(
    store: &SqliteStore,
    project: &Project,
    model: &HashMap<String, (String, CodeFacts)>,
    now: i64,
) {
    let codes = all_codes(store, project, now).await;
    let counted = store.code_counts(project, now).await.unwrap();
    let recounted = recount(&codes, project, now);
    assert_eq!(counted, recounted, "counters vs recount at {now}");
    for state in [CodeState::Unused, CodeState::Used, CodeState::Disabled, CodeState::Expired] {
        let filter = CodeFilter { state: Some(state), ..Default::default() };
        let page = store.list_codes(project, &filter, PageAt::Number(1), 100, now).await.unwrap();
        let expected = codes.iter().filter(|c| c.state(project.expires_at, now) == state).count();
        assert_eq!(page.items.len(), expected, "listing by {state:?}");
        assert_eq!(page.total as usize, expected, "total of {state:?}");
        assert!(page.items.iter().all(|c| c.state(project.expires_at, now) == state));
    }
    assert_eq!(codes.len(), model.len());
    for code in &codes {
        assert!((0..=code.max_uses).contains(&code.use_count), "{code:?}");
        let norm = normalize_code(&code.code, true);
        let (id, facts) = model.get(&norm).expect("stored code is in the model");
        assert_eq!(&code.id, id);
        assert_eq!(&code.facts(), facts, "facts of {}", code.code);
    }
}

async fn run_sequence(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("x.db")).unwrap();
    let mut project = new_project();
    store.create_project(&project).await.unwrap();
    let mut now = START;
    // Normalised code -> (id, facts): what the store must hold.
    let mut model: HashMap<String, (String, CodeFacts)> = HashMap::new();
    let id_of = |model: &HashMap<String, (String, CodeFacts)>, i: usize| {
        model.get(&normalize_code(CODES[i], true)).map(|m| m.0.clone())
    };

    for op in ops {
        match op {
            Op::Insert { code, typed: how, max_uses, use_count, disabled, expires } => {
                let text = typed(CODES[code], how);
                let norm = normalize_code(&text, true);
                let n = NewCode {
                    id: new_id(),
                    code: text,
                    code_norm: norm.clone(),
                    disabled,
                    expires_at: expires.map(|d| now + d),
                    max_uses,
                    use_count,
                    verified_at: None,
                    verified_by: None,
                    metadata: None,
                };
                let facts = CodeFacts { disabled, use_count, max_uses, expires_at: n.expires_at };
                let id = n.id.clone();
                let report = store.insert_codes(&project.id, None, vec![n], now).await.unwrap();
                match model.entry(norm) {
                    Entry::Occupied(known) => {
                        assert_eq!((report.inserted, report.duplicates), (0, vec![0]), "duplicate of {}", known.key())
                    }
                    Entry::Vacant(slot) => {
                        assert_eq!(report.inserted, 1);
                        slot.insert((id, facts));
                    }
                }
            }
            Op::Redeem(code, how) | Op::Reactivate(code, how) => {
                let is_verify = matches!(op, Op::Redeem(..));
                let text = typed(CODES[code], how);
                let norm = normalize_code(&text, true);
                let before = model.get(&norm).map(|m| m.1);
                let check = if is_verify { check_verify } else { check_reactivate };
                let expected = check(before.as_ref(), &project.facts(), now);
                let req = request(&project, &text, now);
                let outcome =
                    if is_verify { store.redeem(req).await.unwrap() } else { store.reactivate(req).await.unwrap() };
                match (outcome, expected) {
                    (RedeemOutcome::Success(row), Ok(())) => {
                        let entry = model.get_mut(&norm).unwrap();
                        entry.1.use_count += if is_verify { 1 } else { -1 };
                        assert_eq!(row.facts(), entry.1, "row after {op:?}");
                        if is_verify {
                            assert_eq!(row.verified_at, Some(now));
                        }
                    }
                    (RedeemOutcome::Failure(f, row), Err(e)) => {
                        assert_eq!(f, e, "failure of {op:?}");
                        assert_eq!(row.map(|r| r.facts()), before, "a failure changes nothing");
                    }
                    (got, want) => panic!("{op:?}: store said {got:?}, domain says {want:?}"),
                }
            }
            Op::SetDisabled(code, disabled) => {
                let Some(id) = id_of(&model, code) else { continue };
                let patch = CodePatch { disabled: Some(disabled), ..Default::default() };
                let row = store.update_code(&project.id, &id, patch).await.unwrap().unwrap();
                let entry = model.get_mut(&normalize_code(CODES[code], true)).unwrap();
                entry.1.disabled = disabled;
                assert_eq!(row.facts(), entry.1);
            }
            Op::SetExpiry(code, expires) => {
                let Some(id) = id_of(&model, code) else { continue };
                let expires_at = expires.map(|d| now + d);
                let patch = CodePatch { expires_at: Some(expires_at), ..Default::default() };
                let row = store.update_code(&project.id, &id, patch).await.unwrap().unwrap();
                let entry = model.get_mut(&normalize_code(CODES[code], true)).unwrap();
                entry.1.expires_at = expires_at;
                assert_eq!(row.facts(), entry.1);
            }
            Op::SetProjectEnabled(enabled) => {
                let patch = ProjectPatch { enabled: Some(enabled), ..Default::default() };
                project = store.update_project(&project.id, patch, now).await.unwrap().unwrap();
                assert_eq!(project.enabled, enabled);
            }
            Op::SetProjectExpiry(expires) => {
                let expires_at = expires.map(|d| now + d);
                let patch = ProjectPatch { expires_at: Some(expires_at), ..Default::default() };
                project = store.update_project(&project.id, patch, now).await.unwrap().unwrap();
                assert_eq!(project.expires_at, expires_at);
            }
            Op::Advance(secs) => now += secs,
        }
        check_consistent(&store, &project, &model, now).await;
    }
}

proptest! {
    // Each case is a fresh database file with durable commits: keep the count modest.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_agree_with_the_domain_and_the_counters(
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run_sequence(ops));
    }
}

/// 64 tasks race to redeem the same 50 codes: exactly one success per code.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_redeems_succeed_exactly_once_per_code() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("x.db")).unwrap());
    let project = new_project();
    store.create_project(&project).await.unwrap();
    let codes: Vec<String> = (0..50).map(|i| format!("RACE-{i:03}")).collect();
    let new_codes = codes
        .iter()
        .map(|c| NewCode {
            id: new_id(),
            code: c.clone(),
            code_norm: normalize_code(c, true),
            disabled: false,
            expires_at: None,
            max_uses: 1,
            use_count: 0,
            verified_at: None,
            verified_by: None,
            metadata: None,
        })
        .collect();
    let report = store.insert_codes(&project.id, None, new_codes, START).await.unwrap();
    assert_eq!(report.inserted, 50);

    let mut tasks = Vec::new();
    for task in 0..64 {
        let (store, project, codes) = (store.clone(), project.clone(), codes.clone());
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            // Each task walks the codes from a different start, so every code is contended.
            for i in 0..codes.len() {
                let code = &codes[(i + task) % codes.len()];
                match store.redeem(request(&project, code, START)).await.unwrap() {
                    RedeemOutcome::Success(row) => won.push(row.code),
                    RedeemOutcome::Failure(f, _) => {
                        assert_eq!(f, codegate_domain::RedeemFailure::CodeAlreadyUsed)
                    }
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
    assert_eq!(wins.len(), 50, "every code was redeemed once");
    assert!(wins.values().all(|n| *n == 1), "exactly one success per code: {wins:?}");
    let counts = store.code_counts(&project, START).await.unwrap();
    assert_eq!((counts.total, counts.used, counts.unused), (50, 50, 0));
    let listed = all_codes(&store, &project, START).await;
    assert!(listed.iter().all(|c| c.use_count == 1));
}
