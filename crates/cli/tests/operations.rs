//! docs/operations.md, procedure by procedure, against the real binary:
//! monitoring (`/metrics`, request ids), backup under load and restore,
//! upgrading an older database, and key rotation.

mod common;

use common::{now, spawn_serve, test_database_url, Key, TestServer, BIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

fn on_postgres(s: &TestServer) -> bool {
    test_database_url(s.data_dir.path()).is_some()
}

/// One sample of a Prometheus text exposition: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn parse_samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample line: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a numeric value: {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), Vec::new()),
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').unwrap_or_else(|| panic!("labels end with }}: {line}"));
                let mut labels = Vec::new();
                let mut chars = rest.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "quoted label value: {line}");
                    let mut value = String::new();
                    loop {
                        match chars.next() {
                            Some('\\') => value.push(chars.next().unwrap()),
                            Some('"') => break,
                            Some(c) => value.push(c),
                            None => panic!("unterminated label value: {line}"),
                        }
                    }
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                    labels.push((key, value));
                }
                (name.to_owned(), labels)
            }
        };
        out.push(Sample { name, labels, value });
    }
    out
}

/// The value of the one series `name` whose labels include all of `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v)))
        .collect();
    assert!(matching.len() <= 1, "{name} {labels:?} matches several series: {matching:?}");
    matching.first().map(|s| s.value)
}

async fn scrape(s: &TestServer) -> (String, Vec<Sample>) {
    let resp = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "Prometheus text format: {ct}");
    let text = resp.text().await.unwrap();
    let samples = parse_samples(&text);
    (text, samples)
}

async fn verify(s: &TestServer, key: &Key, pid: &str, code: &str) -> Value {
    let body = json!({"code": code, "verified_by": "ops-test"}).to_string();
    let (status, r) = s.signed(key, Method::POST, &format!("/api/v1/projects/{pid}/codes/verify"), Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    r
}

/// Every code of a project and its state, from the JSON Lines export.
async fn states(s: &TestServer, pid: &str) -> HashMap<String, String> {
    let resp = s
        .http
        .get(s.url(&format!("/api/v1/projects/{pid}/codes/export?format=jsonl")))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    text.lines()
        .map(|l| {
            let c: Value = serde_json::from_str(l).unwrap();
            (c["code"].as_str().unwrap().to_owned(), c["state"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// Runs `codegate ARGS` to its end (bounded: a server that should have refused
/// to start is killed after two minutes); returns success and stderr.
fn run_to_end(args: &[&str], dir: &Path, envs: &[(&str, &str)]) -> (bool, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .envs(envs.iter().copied())
        .env("CODEGATE_RATE_LIMITS", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.success(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("codegate {args:?} did not end");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Restarts the server of `s` on its data directory (same database), with `envs`.
fn restart(s: &mut TestServer, envs: &[(&str, &str)]) {
    s.stop();
    let (child, base, _) = spawn_serve(s.data_dir.path(), envs);
    s.child = child;
    s.base = base;
}

// ---------------------------------------------------------------- monitoring

/// "Monitoring": the series move with the traffic, labels are route templates,
/// nothing secret or unbounded reaches a label, request ids are echoed.
#[tokio::test]
async fn metrics_follow_the_traffic() {
    let s = TestServer::start().await;
    let pid = s.create_project("metrics").await;
    let key = s.create_key(&pid).await;
    let codes = s.generate(&pid, json!({"count": 6})).await;
    for c in &codes[..3] {
        assert_eq!(verify(&s, &key, &pid, c).await["success"], true);
    }
    assert_eq!(verify(&s, &key, &pid, &codes[0]).await["error_code"], "CODE_ALREADY_USED");
    assert_eq!(verify(&s, &key, &pid, "NO-SUCH-CODE").await["error_code"], "CODE_NOT_FOUND");
    let (status, _) =
        s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes/by-code/{}", codes[4]), None).await;
    assert_eq!(status, StatusCode::OK);

    let (text, m) = scrape(&s).await;
    let verify_route = "/api/v1/projects/{pid}/codes/verify";
    let redemptions = |m: &[Sample], result: &str| {
        value(m, "codegate_redemptions_total", &[("operation", "verify"), ("result", result)]).unwrap_or(0.0)
    };
    assert_eq!(redemptions(&m, "success"), 3.0, "{text}");
    assert_eq!(redemptions(&m, "CODE_ALREADY_USED"), 1.0);
    assert_eq!(redemptions(&m, "CODE_NOT_FOUND"), 1.0);
    assert_eq!(
        value(&m, "codegate_http_requests_total", &[("route", verify_route), ("method", "POST"), ("status", "200")]),
        Some(5.0)
    );
    assert_eq!(
        value(&m, "codegate_http_request_duration_seconds_count", &[("route", verify_route), ("method", "POST")]),
        Some(5.0)
    );
    let inf = value(
        &m,
        "codegate_http_request_duration_seconds_bucket",
        &[("route", verify_route), ("method", "POST"), ("le", "+Inf")],
    );
    assert_eq!(inf, Some(5.0), "the histogram's last bucket holds every request");
    assert_eq!(
        value(
            &m,
            "codegate_http_requests_total",
            &[("route", "/api/v1/projects/{pid}/codes/by-code/{code}"), ("method", "GET"), ("status", "200")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "codegate_http_requests_total",
            &[("route", "/api/v1/projects"), ("method", "POST"), ("status", "201")]
        ),
        Some(1.0)
    );

    // Labels are templates and codes: no id, code or credential anywhere.
    let secrets = [pid.as_str(), key.api_key.as_str(), key.secret.as_str(), s.token.as_str(), "NO-SUCH-CODE"];
    for secret in secrets.into_iter().chain(codes.iter().map(String::as_str)) {
        assert!(!text.contains(secret), "{secret} appears in /metrics");
    }
    for sample in m.iter().filter(|s| s.name.starts_with("codegate_http_")) {
        let route = &sample.labels.iter().find(|(k, _)| k == "route").unwrap().1;
        assert!(route.starts_with('/') || route == "unmatched", "{route}");
    }

    // Database pool use, sampled at the scrape.
    let pool = if on_postgres(&s) { "postgres" } else { "sqlite_read" };
    let open = value(&m, "codegate_db_pool_connections", &[("pool", pool)]).expect("pool size");
    let idle = value(&m, "codegate_db_pool_idle_connections", &[("pool", pool)]).expect("idle connections");
    let max = value(&m, "codegate_db_pool_max_connections", &[("pool", pool)]).expect("pool limit");
    assert!(open >= 1.0 && idle <= open && open <= max, "{open} {idle} {max}");

    // Group commit (SQLite's single writer): every successful verify was a job in some commit.
    if !on_postgres(&s) {
        let commits = value(&m, "codegate_sqlite_group_commit_jobs_count", &[]).expect("batch sizes");
        let jobs = value(&m, "codegate_sqlite_group_commit_jobs_sum", &[]).unwrap();
        assert!(commits >= 1.0 && jobs >= 3.0 && jobs >= commits, "{commits} commits, {jobs} jobs");
    }

    // The series move: one more success, and the first scrape itself was counted.
    assert_eq!(verify(&s, &key, &pid, &codes[5]).await["success"], true);
    let (_, again) = scrape(&s).await;
    assert_eq!(redemptions(&again, "success"), 4.0);
    assert_eq!(
        value(&again, "codegate_http_requests_total", &[("route", "/metrics"), ("method", "GET"), ("status", "200")]),
        Some(1.0)
    );

    // Request ids: a caller's id comes back; without one the server makes one.
    let resp = s.http.get(s.url("/healthz")).header("X-Request-Id", "ops-check-42").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "ops-check-42");
    let resp = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let made = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let ready: Value = resp.json().await.unwrap();
    assert_eq!(ready["database"], "ok");
}

/// "Monitoring", access: `CODEGATE_METRICS=off` hides the endpoint,
/// `CODEGATE_METRICS_TOKEN` guards it; a bad setting stops the start.
#[tokio::test]
async fn metrics_access_is_configurable() {
    let mut s = TestServer::start_with(&[("CODEGATE_METRICS", "off")]).await;
    let (status, p) = common::read(s.http.get(s.url("/metrics")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{p}");

    restart(&mut s, &[("CODEGATE_METRICS_TOKEN", "scrape-me-0123456789")]);
    let (status, _) = common::read(s.http.get(s.url("/metrics")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let admin = s.http.get(s.url("/metrics")).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(admin.status(), StatusCode::UNAUTHORIZED, "the admin token is not the metrics token");
    let ok = s.http.get(s.url("/metrics")).bearer_auth("scrape-me-0123456789").send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok.text().await.unwrap().contains("codegate_http_requests_total"));

    s.stop();
    let db = test_database_url(s.data_dir.path());
    let mut envs = vec![("CODEGATE_METRICS", "sometimes")];
    if let Some(url) = &db {
        envs.push(("CODEGATE_DATABASE_URL", url));
    }
    let (started, err) = run_to_end(&["serve", "--listen", "127.0.0.1:0"], s.data_dir.path(), &envs);
    assert!(!started && err.contains("CODEGATE_METRICS"), "{err}");
}

// ---------------------------------------------------------------- backup and restore

/// "Backup" and "Restore": `codegate backup` (SQLite) or `pg_dump` (PostgreSQL)
/// while verifies run, then the copy restored with master.key in a new data
/// directory serves every code in a consistent state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_into_a_new_data_dir() {
    let s = Arc::new(TestServer::start().await);
    let pg = test_database_url(s.data_dir.path());
    const TOTAL: usize = 1500;
    const LOAD_END: usize = 1400;
    let pid = s.create_project("backup").await;
    let key = s.create_key(&pid).await;
    let codes = Arc::new(s.generate(&pid, json!({"count": TOTAL})).await);
    for c in &codes[..20] {
        assert_eq!(verify(&s, &key, &pid, c).await["success"], true);
    }

    // Load: workers verify codes 20.. until told to stop.
    let next = Arc::new(AtomicUsize::new(20));
    let answered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (s, key, pid, codes) = (s.clone(), key.clone(), pid.clone(), codes.clone());
        let (next, answered, stop) = (next.clone(), answered.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            // (index, sent at, answered at) of each success.
            let mut done: Vec<(usize, Instant, Instant)> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= LOAD_END {
                    break;
                }
                let sent = Instant::now();
                let r = verify(&s, &key, &pid, &codes[i]).await;
                assert_eq!(r["success"], true, "{r}");
                done.push((i, sent, Instant::now()));
                answered.fetch_add(1, Ordering::SeqCst);
            }
            done
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while answered.load(Ordering::SeqCst) < 40 {
        assert!(Instant::now() < deadline, "the load does not progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("codegate-backup");
    let backup_started = Instant::now();
    let out = {
        let (dir, file, pg) = (s.data_dir.path().to_owned(), file.clone(), pg.clone());
        tokio::task::spawn_blocking(move || match pg {
            None => Command::new(BIN).args(["backup", "--json", "--data-dir"]).arg(dir).arg("--to").arg(file).output(),
            Some(url) => Command::new("pg_dump").arg("--format=custom").arg("--file").arg(file).arg(url).output(),
        })
        .await
        .unwrap()
        .unwrap()
    };
    let backup_ended = Instant::now();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Option<Value> = pg.is_none().then(|| serde_json::from_slice(&out.stdout).unwrap());
    stop.store(true, Ordering::SeqCst);
    let mut done = Vec::new();
    for w in workers {
        done.extend(w.await.unwrap());
    }
    assert!(next.load(Ordering::SeqCst) < LOAD_END, "the load ran until after the backup ended");
    // Writes after the backup do not reach the copy.
    for c in &codes[LOAD_END..LOAD_END + 50] {
        assert_eq!(verify(&s, &key, &pid, c).await["success"], true);
    }

    // Restore as documented: the copy becomes codegate.db, master.key goes with it.
    // (PostgreSQL: pg_restore into a new, empty database.)
    let restored = tempfile::tempdir().unwrap();
    match test_database_url(restored.path()) {
        None => {
            std::fs::copy(&file, restored.path().join("codegate.db")).unwrap();
        }
        Some(url) => {
            let out = Command::new("pg_restore").args(["--no-owner", "--dbname"]).arg(url).arg(&file).output().unwrap();
            assert!(out.status.success(), "pg_restore: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    std::fs::copy(s.data_dir.path().join("master.key"), restored.path().join("master.key")).unwrap();
    let (child, base, _) = spawn_serve(restored.path(), &[]);
    let r = TestServer {
        child,
        base,
        token: s.token.clone(),
        data_dir: restored,
        http: s.http.clone(),
        banner: String::new(),
    };
    let (status, ready) = common::read(r.http.get(r.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{ready}");

    let state = states(&r, &pid).await;
    assert_eq!(state.len(), TOTAL, "every code is in the copy");
    if let Some(summary) = &summary {
        assert_eq!(summary["codes"], TOTAL as i64, "{summary}");
    }
    let used = |i: usize| state[&codes[i]] == "used";
    for i in 0..20 {
        assert!(used(i), "verified before the backup: {}", codes[i]);
    }
    for i in LOAD_END..TOTAL {
        assert!(!used(i), "verified after the backup (or never): {}", codes[i]);
    }
    let answered_at: HashMap<usize, (Instant, Instant)> = done.iter().map(|(i, s, a)| (*i, (*s, *a))).collect();
    for i in 20..LOAD_END {
        match answered_at.get(&i) {
            // Answered before the backup began: committed, so in the copy.
            Some((_, at)) if *at < backup_started => assert!(used(i), "{}", codes[i]),
            // Sent after the backup ended: not in the copy.
            Some((sent, _)) if *sent > backup_ended => assert!(!used(i), "{}", codes[i]),
            Some(_) => {}
            None => assert!(!used(i), "never verified, yet used in the copy: {}", codes[i]),
        }
    }
    let during = done.iter().filter(|(_, sent, at)| *at >= backup_started && *sent <= backup_ended).count();
    eprintln!(
        "{} verifies under load, {during} of them during the backup; the copy holds {} used codes",
        done.len(),
        state.values().filter(|v| *v == "used").count()
    );
    // One snapshot: counters, codes and the redemption log agree.
    let used_count = state.values().filter(|v| *v == "used").count() as i64;
    let (status, log) = r.admin(Method::GET, &format!("/api/v1/projects/{pid}/redemptions?page_size=1"), None).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["total"], used_count, "one log row per used code");
    if let Some(summary) = &summary {
        assert_eq!(summary["redemptions"], used_count, "{summary}");
    }
    let (status, stats) = r.admin(Method::GET, &format!("/api/v1/projects/{pid}/statistics"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["total_codes"], TOTAL as i64);
    assert_eq!(stats["used_codes"], used_count, "{stats}");

    // The restored server takes the same API key and goes on redeeming.
    assert_eq!(verify(&r, &key, &pid, &codes[0]).await["error_code"], "CODE_ALREADY_USED");
    assert_eq!(verify(&r, &key, &pid, &codes[TOTAL - 1]).await["success"], true);
}

// ---------------------------------------------------------------- upgrade

/// Tables with their columns, and index names: what a schema comparison needs.
fn schema(conn: &rusqlite::Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name != 'schema_migrations' ORDER BY type, name")
        .unwrap();
    let objects: Vec<(String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    let mut out = Vec::new();
    for (kind, name) in objects {
        if kind == "table" {
            let mut cols = conn
                .prepare(&format!("SELECT name, type, \"notnull\", dflt_value FROM pragma_table_info('{name}')"))
                .unwrap();
            let cols: Vec<String> = cols
                .query_map([], |r| {
                    Ok(format!(
                        "{}:{}:{}:{:?}",
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?
                    ))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            out.push(format!("table {name} ({})", cols.join(", ")));
        } else {
            out.push(format!("{kind} {name}"));
        }
    }
    out
}

/// Drops every table, index, trigger and column that `target` (a schema from
/// [`schema`]) does not have, and forgets the later migrations.
fn downgrade_to(conn: &rusqlite::Connection, target: &[String]) {
    let mut stmt = conn
        .prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name != 'schema_migrations' ORDER BY type = 'table'")
        .unwrap();
    let objects: Vec<(String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    for (kind, name) in objects {
        let kept = target.iter().any(|t| t == &format!("{kind} {name}") || t.starts_with(&format!("table {name} (")));
        if !kept {
            conn.execute_batch(&format!("DROP {} \"{name}\"", kind.to_uppercase())).unwrap();
        } else if kind == "table" {
            let wanted = target.iter().find(|t| t.starts_with(&format!("table {name} ("))).unwrap();
            let mut cols = conn.prepare(&format!("SELECT name FROM pragma_table_info('{name}')")).unwrap();
            let cols: Vec<String> = cols.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
            for col in cols {
                if !wanted.contains(&format!("({col}:")) && !wanted.contains(&format!(", {col}:")) {
                    conn.execute_batch(&format!("ALTER TABLE \"{name}\" DROP COLUMN \"{col}\"")).unwrap();
                }
            }
        }
    }
    // What a later migration dropped (a trigger, an index) comes back as version 1 made it.
    let v1 = rusqlite::Connection::open_in_memory().unwrap();
    v1.execute_batch(include_str!("../../storage/migrations/sqlite/0001_init.sql")).unwrap();
    let mut stmt = v1
        .prepare("SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL")
        .unwrap();
    let wanted: Vec<(String, String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect();
    for (kind, name, sql) in wanted {
        let present: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = ?1 AND name = ?2", [&kind, &name], |r| r.get(0))
            .unwrap();
        if present == 0 {
            conn.execute_batch(&sql).unwrap();
        }
    }
    conn.execute("DELETE FROM schema_migrations WHERE version > 1", []).unwrap();
}

fn migrations(conn: &rusqlite::Connection) -> Vec<i64> {
    let mut stmt = conn.prepare("SELECT version FROM schema_migrations ORDER BY version").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

/// "Upgrade": a data directory at the first schema version (as an older
/// release left it) is migrated by the current binary on start and served;
/// (SQLite: PostgreSQL has a single schema version so far.)
#[tokio::test]
async fn upgrade_migrates_an_older_database_on_start() {
    let mut s = TestServer::start().await;
    if on_postgres(&s) {
        eprintln!("SQLite only: PostgreSQL has one schema version so far (see a_newer_database_is_refused)");
        return;
    }
    let pid = s.create_project("upgrade").await;
    let key = s.create_key(&pid).await;
    let codes = s.generate(&pid, json!({"count": 10})).await;
    for c in &codes[..2] {
        assert_eq!(verify(&s, &key, &pid, c).await["success"], true);
    }
    s.stop();
    let db = s.data_dir.path().join("codegate.db");

    // Undo every migration after the first, so the file is what version 1 made.
    let first_only = {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(include_str!("../../storage/migrations/sqlite/0001_init.sql")).unwrap();
        schema(&c)
    };
    let current = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let current = schema(&conn);
        downgrade_to(&conn, &first_only);
        assert_eq!(schema(&conn), first_only, "the database is now exactly at version 1");
        assert_eq!(migrations(&conn), vec![1]);
        current
    };

    // The current binary migrates it on start, and serves the old data.
    let (child, base, _) = spawn_serve(s.data_dir.path(), &[]);
    s.child = child;
    s.base = base;
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        assert_eq!(schema(&conn), current, "migrated to the schema a fresh install has");
        let applied = migrations(&conn);
        assert_eq!(applied, (1..=applied.len() as i64).collect::<Vec<_>>());
        assert!(applied.len() >= 2);
    }
    let (status, p) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}"), None).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["statistics"]["total_codes"], 10);
    assert_eq!(p["statistics"]["used_codes"], 2);
    assert_eq!(verify(&s, &key, &pid, &codes[0]).await["error_code"], "CODE_ALREADY_USED");
    assert_eq!(verify(&s, &key, &pid, &codes[2]).await["success"], true, "the API key survived");
}

// ---------------------------------------------------------------- key rotation

async fn signed_status(s: &TestServer, key: &Key, path: &str) -> StatusCode {
    s.signed(key, Method::GET, path, None).await.0
}

/// "Key rotation": an API key's old secret works through the grace period and
/// is refused after it; a rotated token replaces the old one at once; a new
/// master key needs every API key rotated, and leaves tokens alone.
#[tokio::test]
async fn keys_rotate_as_documented() {
    let mut s = TestServer::start().await;
    let pid = s.create_project("rotation").await;
    let path = format!("/api/v1/projects/{pid}");

    // API key with a grace period: both secrets work until it ends, then only the new one.
    let key = s.create_key(&pid).await;
    let (status, r) =
        s.admin(Method::POST, &format!("{path}/api-keys/{}/rotate", key.id), Some(json!({"grace_seconds": 2}))).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let rotated_at = now();
    let new = Key { secret: r["secret"].as_str().unwrap().into(), ..key.clone() };
    assert_eq!(r["api_key"], key.api_key.as_str(), "the key id stays; only the secret changes");
    assert_eq!(signed_status(&s, &new, &path).await, StatusCode::OK);
    // Wait for the server's clock to pass the end of the grace period.
    while now() <= rotated_at + 3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, p) = s.signed(&key, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "after the grace period: {p}");
    assert_eq!(p["code"], "INVALID_SIGNATURE");
    assert_eq!(signed_status(&s, &new, &path).await, StatusCode::OK);

    // Inside a long grace period the old secret still works; grace 0 ends it at once.
    let (_, r) = s
        .admin(Method::POST, &format!("{path}/api-keys/{}/rotate", key.id), Some(json!({"grace_seconds": 86400})))
        .await;
    let newer = Key { secret: r["secret"].as_str().unwrap().into(), ..key.clone() };
    assert_eq!(signed_status(&s, &new, &path).await, StatusCode::OK, "old secret inside the grace period");
    assert_eq!(signed_status(&s, &newer, &path).await, StatusCode::OK);

    // Token rotation: the old token stops at once.
    let (status, t) =
        s.admin(Method::POST, "/api/v1/tokens", Some(json!({"name": "deploy", "scopes": ["read", "verify"]}))).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let old_token = t["token"].as_str().unwrap().to_owned();
    let (status, r) =
        s.admin(Method::POST, &format!("/api/v1/tokens/{}/rotate", t["id"].as_str().unwrap()), None).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let new_token = r["token"].as_str().unwrap().to_owned();
    assert_eq!(s.bearer(&old_token, Method::GET, &path, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(s.bearer(&new_token, Method::GET, &path, None).await.0, StatusCode::OK);

    // Master key: restart with a new one; sealed API secrets no longer open,
    // tokens (hashed, not sealed) still work; rotating the API key issues a usable secret.
    let new_master = "7a".repeat(32);
    assert_ne!(std::fs::read_to_string(s.data_dir.path().join("master.key")).unwrap().trim(), new_master);
    restart(&mut s, &[("CODEGATE_MASTER_KEY", &new_master)]);
    assert_eq!(signed_status(&s, &newer, &path).await, StatusCode::UNAUTHORIZED, "sealed with the old master key");
    assert_eq!(s.bearer(&new_token, Method::GET, &path, None).await.0, StatusCode::OK);
    let (status, r) =
        s.admin(Method::POST, &format!("{path}/api-keys/{}/rotate", key.id), Some(json!({"grace_seconds": 0}))).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let resealed = Key { secret: r["secret"].as_str().unwrap().into(), ..key.clone() };
    assert_eq!(signed_status(&s, &resealed, &path).await, StatusCode::OK);
    // It stays with the new master key across restarts.
    restart(&mut s, &[("CODEGATE_MASTER_KEY", &new_master)]);
    assert_eq!(signed_status(&s, &resealed, &path).await, StatusCode::OK);
}

/// "Monitoring", logs: with `CODEGATE_LOG_FORMAT=json` every line is a JSON
/// object; a request's lines carry its `X-Request-Id` and route template, and
/// the code in the path is not logged.
#[tokio::test]
async fn json_logs_carry_the_request_id() {
    let s = TestServer::start().await;
    let pid = s.create_project("logs").await;
    let codes = s.generate(&pid, json!({"count": 1})).await;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    // A second server on the same data directory (the database takes it), logging to a file.
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(s.data_dir.path())
        .envs(test_database_url(s.data_dir.path()).map(|url| ("CODEGATE_DATABASE_URL", url)))
        .env("CODEGATE_LOG", "info,tower_http=debug")
        .env("CODEGATE_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let base = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0, "server exited before listening");
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            break addr.to_owned();
        }
    };
    let resp = s
        .http
        .get(format!("{base}/api/v1/projects/{pid}/codes/by-code/{}", codes[0]))
        .bearer_auth(&s.token)
        .header("X-Request-Id", "trace-me-7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-request-id"], "trace-me-7");
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();

    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("a JSON log line: {l}"))).collect();
    let ours: Vec<&Value> = lines.iter().filter(|l| l["span"]["request_id"] == "trace-me-7").collect();
    assert!(!ours.is_empty(), "the request's lines carry its id: {log}");
    assert!(ours.iter().all(|l| l["span"]["route"] == "/api/v1/projects/{pid}/codes/by-code/{code}"), "{log}");
    assert!(!log.contains(&codes[0]), "the code is not logged: {log}");
    assert!(!log.contains(&s.token), "the token is not logged");
}

/// "Health": once a sync of the SQLite WAL has failed, no write is confirmed
/// (not even when a later sync could succeed) and `/readyz` says so, until a
/// restart recovers the database from what the disk holds.
#[tokio::test]
async fn a_failed_disk_sync_stops_writes_until_a_restart() {
    let mut s = TestServer::start().await;
    if on_postgres(&s) {
        return; // PostgreSQL makes its own commits durable
    }
    let pid = s.create_project("disk").await;
    let key = s.create_key(&pid).await;
    let codes = s.generate(&pid, json!({"count": 3})).await;
    verify(&s, &key, &pid, &codes[0]).await;

    let verify_path = format!("/api/v1/projects/{pid}/codes/verify");
    let attempt = |code: &str| json!({"code": code}).to_string();
    // The WAL vanishes under the server: the next commit cannot be made durable.
    let wal = s.data_dir.path().join("codegate.db-wal");
    std::fs::remove_file(&wal).unwrap();
    let (status, p) = s.signed(&key, Method::POST, &verify_path, Some(&attempt(&codes[1]))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{p}");
    assert_eq!(p["code"], "SERVICE_UNAVAILABLE", "{p}");
    // A file at its path again, which a sync would find: still nothing is confirmed.
    std::fs::write(&wal, b"").unwrap();
    let (status, p) = s.signed(&key, Method::POST, &verify_path, Some(&attempt(&codes[2]))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{p}");
    let (status, p) = s.admin(Method::POST, "/api/v1/projects", Some(json!({"name": "after"}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{p}");
    let (status, ready) = common::read(s.http.get(s.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["code"], "NOT_READY", "{ready}");
    assert_eq!(ready["database"], "read-only", "{ready}");
    // Reads still answer meanwhile.
    let (status, info) = s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}"), None).await;
    assert_eq!(status, StatusCode::OK, "{info}");

    restart(&mut s, &[]);
    let (status, ready) = common::read(s.http.get(s.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let (status, p) = s.admin(Method::POST, "/api/v1/projects", Some(json!({"name": "after"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
}

/// Runs SQL on a PostgreSQL database with psql.
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql").args(["-v", "ON_ERROR_STOP=1", "-tA", "-c", sql]).arg(url).output().unwrap();
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// "Upgrade", going back: a binary older than the database's schema refuses
/// to start and changes nothing; with the schema it knows, it serves again.
#[tokio::test]
async fn a_newer_database_is_refused() {
    let mut s = TestServer::start().await;
    let pid = s.create_project("newer").await;
    let key = s.create_key(&pid).await;
    let codes = s.generate(&pid, json!({"count": 2})).await;
    s.stop();
    let pg = test_database_url(s.data_dir.path());
    let future = "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)";
    match &pg {
        Some(url) => {
            psql(url, future);
        }
        None => {
            rusqlite::Connection::open(s.data_dir.path().join("codegate.db")).unwrap().execute(future, []).unwrap();
        }
    }
    let mut envs = Vec::new();
    if let Some(url) = &pg {
        envs.push(("CODEGATE_DATABASE_URL", url.as_str()));
    }
    let (started, err) = run_to_end(&["serve", "--listen", "127.0.0.1:0"], s.data_dir.path(), &envs);
    assert!(!started, "a database newer than the binary is refused");
    assert!(err.contains("newer than this binary knows"), "{err}");
    let forget = "DELETE FROM schema_migrations WHERE version = 9999";
    match &pg {
        Some(url) => {
            psql(url, forget);
        }
        None => {
            rusqlite::Connection::open(s.data_dir.path().join("codegate.db")).unwrap().execute(forget, []).unwrap();
        }
    }
    let (child, base, _) = spawn_serve(s.data_dir.path(), &[]);
    s.child = child;
    s.base = base;
    assert_eq!(verify(&s, &key, &pid, &codes[0]).await["success"], true, "nothing was lost");
}

/// The binary's allocator is jemalloc with the options compiled into it
/// (`_rjem_malloc_conf` in `main.rs`): freed pages go back within three seconds,
/// which keeps the serving RSS near its working set after a bulk load. A typo
/// in the option string or a lost export would only show as a warning on stderr
/// and a slower return of memory, so this asks jemalloc itself what it runs with.
#[test]
fn the_allocator_runs_with_the_configured_decay() {
    let out = Command::new(BIN)
        .arg("--help")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .expect("run codegate --help");
    assert!(out.status.success());
    let stats = String::from_utf8_lossy(&out.stderr);
    assert!(!stats.contains("Invalid conf"), "jemalloc rejected an option:\n{stats}");
    for option in ["opt.dirty_decay_ms: 3000", "opt.muzzy_decay_ms: 0"] {
        assert!(stats.contains(option), "jemalloc does not report {option:?}; its stats:\n{stats}");
    }
}
