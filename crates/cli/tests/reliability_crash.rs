//! Crash safety: signed verify load from concurrent tasks, the server killed
//! with SIGKILL at a random moment, restarted on the same data directory —
//! several rounds. Every verify answered `success: true` must stay redeemed,
//! no code may exceed its uses, and the counters and the database must be
//! sound. Runs on SQLite, and on PostgreSQL when CODEGATE_TEST_DATABASE_URL
//! is set (scripts/test.sh's PostgreSQL pass): there the database server
//! survives and only CodeGate is killed, with the same invariants checked
//! by queries against the test's own database.

mod common;

use common::{init, now, signed_request, spawn_serve, Key};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ROUNDS: usize = 4;
const TASKS: usize = 8;
// Enough that four rounds of full-speed load never run out before the kill.
const SINGLE_USE: usize = 30_000;
const MULTI_USE: usize = 20;
const MAX_USES: i64 = 3;

/// A random number from the standard library's per-process random hasher keys.
fn random_below(n: u64) -> u64 {
    RandomState::new().hash_one(std::time::SystemTime::now()) % n
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

async fn admin(http: &reqwest::Client, base: &str, token: &str, path: &str, body: Value) -> Value {
    let resp = http.post(format!("{base}{path}")).bearer_auth(token).json(&body).send().await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

/// What the clients were told, across all rounds.
#[derive(Default)]
struct Answers {
    /// Successful verifies per code.
    successes: HashMap<String, i64>,
    /// How many verifies were answered at all.
    answered: usize,
}

struct Load {
    base: String,
    key: Key,
    path: String,
    single: Vec<String>,
    multi: Vec<String>,
    /// Next single-use code to try; shared by the tasks and kept across rounds.
    next: AtomicUsize,
    answers: Mutex<Answers>,
    /// Makes every request body unique, so no signature repeats (replay protection).
    serial: AtomicUsize,
}

/// One verify; `None` when the server did not answer (it is being killed).
async fn verify(http: &reqwest::Client, load: &Load, code: &str) -> Option<Value> {
    let n = load.serial.fetch_add(1, Ordering::Relaxed);
    let body = json!({"code": code, "verified_by": format!("crash-{n}")}).to_string();
    let resp =
        signed_request(http, &load.base, &load.key, Method::POST, &load.path, Some(&body), now()).send().await.ok()?;
    let status = resp.status();
    let answer: Value = resp.json().await.ok()?;
    assert_eq!(status, StatusCode::OK, "verify answered {status}: {answer}");
    let mut a = load.answers.lock().unwrap();
    a.answered += 1;
    if answer["success"] == true {
        let count = a.successes.entry(code.to_owned()).or_default();
        *count += 1;
        let limit = if load.multi.iter().any(|m| m == code) { MAX_USES } else { 1 };
        assert!(*count <= limit, "{code} answered success {count} times (max {limit})");
    } else {
        assert_eq!(answer["error_code"], "CODE_ALREADY_USED", "{answer}");
    }
    Some(answer)
}

/// Verifies codes until the server stops answering or the codes run out.
async fn drive(load: Arc<Load>, task: usize) {
    let http = client();
    for round in 0usize.. {
        // Mostly fresh single-use codes; now and then a multi-use code or a
        // code already redeemed, whose second success would be a bug.
        let code = match round % 8 {
            3 => load.multi[(task + round) % load.multi.len()].clone(),
            6 => {
                let known: Option<String> = {
                    let a = load.answers.lock().unwrap();
                    a.successes.keys().nth(round % 97).cloned()
                };
                match known {
                    Some(c) => c,
                    None => continue,
                }
            }
            _ => {
                let i = load.next.fetch_add(1, Ordering::Relaxed);
                match load.single.get(i) {
                    Some(c) => c.clone(),
                    None => return,
                }
            }
        };
        if verify(&http, &load, &code).await.is_none() {
            return;
        }
    }
}

fn kill_hard(child: &mut Child) {
    // std's kill is SIGKILL on Unix: no chance to flush or drain anything.
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The running server; killed when the test ends, also when it fails half way.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the database next to the live server (the SQLite file, or the
/// test's PostgreSQL database) and checks it.
fn check_database(dir: &Path, successes: &HashMap<String, i64>) {
    common::db_integrity_check(dir);

    let over = common::db_int(dir, "SELECT COUNT(*) FROM codes WHERE use_count > max_uses OR use_count < 0", &[]);
    assert_eq!(over, 0, "no code beyond its uses");

    // The counters kept by triggers (one row per project on SQLite, summed
    // slots on PostgreSQL) against a full recount of the codes.
    let rows = common::db_rows(
        dir,
        "SELECT p.id,
                (SELECT CAST(COALESCE(SUM(pc.total), 0) AS BIGINT) FROM project_counters pc WHERE pc.project_id = p.id),
                (SELECT CAST(COALESCE(SUM(pc.disabled), 0) AS BIGINT) FROM project_counters pc WHERE pc.project_id = p.id),
                (SELECT CAST(COALESCE(SUM(pc.used), 0) AS BIGINT) FROM project_counters pc WHERE pc.project_id = p.id),
                (SELECT COUNT(*) FROM codes c WHERE c.project_id = p.id),
                (SELECT COUNT(*) FROM codes c WHERE c.project_id = p.id AND c.disabled),
                (SELECT COUNT(*) FROM codes c WHERE c.project_id = p.id AND NOT c.disabled AND c.use_count >= c.max_uses)
           FROM projects p",
        &[],
    );
    assert!(!rows.is_empty());
    for row in rows {
        let counters = [row[1].int(), row[2].int(), row[3].int()];
        let recount = [row[4].int(), row[5].int(), row[6].int()];
        assert!(recount[0] > 0, "project {} has codes", row[0].text());
        assert_eq!(counters, recount, "project {}: counters (total, disabled, used) vs recount", row[0].text());
    }

    // The use and its log row commit together: uses equal logged successes.
    let mismatched: Vec<Vec<common::Cell>> = common::db_rows(
        dir,
        "SELECT c.code, c.use_count,
                (SELECT COUNT(*) FROM redemptions r WHERE r.code_id = c.id AND r.result = 'success')
              - (SELECT COUNT(*) FROM redemptions r WHERE r.code_id = c.id AND r.result = 'reactivated')
           FROM codes c",
        &[],
    )
    .into_iter()
    .filter(|r| r[1] != r[2])
    .collect();
    assert!(mismatched.is_empty(), "use_count vs logged successes: {mismatched:?}");

    // Every verify answered `success: true` is held by the database.
    let stored: HashMap<String, i64> = common::db_rows(dir, "SELECT code, use_count FROM codes", &[])
        .into_iter()
        .map(|r| (r[0].text().to_owned(), r[1].int()))
        .collect();
    for (code, answered) in successes {
        let stored = stored.get(code).copied().unwrap_or_else(|| panic!("{code} is not in the database"));
        assert!(stored >= *answered, "{code}: answered {answered} successes, database holds {stored} uses");
    }
}

/// Every code the API lists as used, walking all pages.
async fn used_through_api(http: &reqwest::Client, base: &str, key: &Key, pid: &str) -> HashSet<String> {
    let mut used = HashSet::new();
    for page in 1.. {
        let path = format!("/api/v1/projects/{pid}/codes?page={page}&page_size=100&status=used");
        let resp = signed_request(http, base, key, Method::GET, &path, None, now()).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        let items = body["items"].as_array().unwrap();
        for item in items {
            assert_eq!(item["status"], true);
            used.insert(item["code"].as_str().unwrap().to_owned());
        }
        if items.len() < 100 {
            break;
        }
    }
    used
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redeemed_codes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let token = init(dir.path())["token"].as_str().unwrap().to_owned();
    let (child, base, _) = spawn_serve(dir.path(), &[]);
    let mut server = Server(child);
    let http = client();

    let project = admin(&http, &base, &token, "/api/v1/projects", json!({"name": "crash"})).await;
    let pid = project["id"].as_str().unwrap().to_owned();
    let k = admin(&http, &base, &token, &format!("/api/v1/projects/{pid}/api-keys"), json!({})).await;
    let key = Key {
        id: k["id"].as_str().unwrap().into(),
        api_key: k["api_key"].as_str().unwrap().into(),
        secret: k["secret"].as_str().unwrap().into(),
    };
    let generate = format!("/api/v1/projects/{pid}/codes/generate");
    let codes_of = |v: Value| -> Vec<String> {
        v["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect()
    };
    // Generate answers with the codes up to 10,000 per request.
    let mut single = Vec::with_capacity(SINGLE_USE);
    while single.len() < SINGLE_USE {
        let count = (SINGLE_USE - single.len()).min(10_000);
        single.extend(codes_of(admin(&http, &base, &token, &generate, json!({"count": count})).await));
    }
    let multi =
        codes_of(admin(&http, &base, &token, &generate, json!({"count": MULTI_USE, "max_uses": MAX_USES})).await);

    let mut load = Arc::new(Load {
        base: base.clone(),
        key: key.clone(),
        path: format!("/api/v1/projects/{pid}/codes/verify"),
        single,
        multi,
        next: AtomicUsize::new(0),
        answers: Mutex::new(Answers::default()),
        serial: AtomicUsize::new(0),
    });

    let mut base = base;
    for round in 0..ROUNDS {
        let before = load.answers.lock().unwrap().answered;
        let tasks: Vec<_> = (0..TASKS).map(|t| tokio::spawn(drive(load.clone(), t))).collect();
        // Let the load get going, then kill at a random moment within it.
        for _ in 0..200 {
            if load.answers.lock().unwrap().answered >= before + 50 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tokio::time::sleep(Duration::from_millis(random_below(400))).await;
        kill_hard(&mut server.0);
        for t in tasks {
            t.await.unwrap();
        }
        let (c, b, _) = spawn_serve(dir.path(), &[]);
        server = Server(c);
        base = b;
        Arc::get_mut(&mut load).expect("tasks are done").base = base.clone();
        let answered = load.answers.lock().unwrap().answered;
        assert!(answered > before, "round {round} answered verifies before the kill");
        let next = load.next.load(Ordering::Relaxed);
        assert!(next < SINGLE_USE, "round {round}: the load was still running when killed");
        eprintln!("round {round}: {} verifies answered before SIGKILL", answered - before);
    }

    let successes = load.answers.lock().unwrap().successes.clone();
    assert!(!successes.is_empty());
    // Through the API: every success is listed as used and refuses a second verify.
    let used = used_through_api(&http, &base, &key, &pid).await;
    for (code, n) in &successes {
        let multi = load.multi.contains(code);
        if !multi || *n == MAX_USES {
            assert!(used.contains(code), "{code} was answered success but is not used");
            let again = verify(&http, &load, code).await.expect("server answers");
            assert_eq!(again["error_code"], "CODE_ALREADY_USED", "{code}: {again}");
        }
    }
    check_database(dir.path(), &successes);
    kill_hard(&mut server.0);
    common::drop_test_database(dir.path());
}
