//! Test harness: the real `codegate` binary on a free port with a fresh data
//! directory, spoken to over HTTP like any client.
#![allow(dead_code)]

use codegate_domain::signing::{body_sha256_hex, canonical_query, sign, SignedParts};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const BIN: &str = env!("CARGO_BIN_EXE_codegate");

pub struct TestServer {
    pub child: Child,
    pub base: String,
    pub token: String,
    pub data_dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// What the server printed on stdout before it listened.
    pub banner: String,
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Where the harness notes the PostgreSQL database it made for a data directory.
const TEST_DATABASE_FILE: &str = ".test-database-url";

/// With `CODEGATE_TEST_DATABASE_URL=postgres://…` every data directory gets a
/// fresh database of its own on that server (made on first use, noted in the
/// directory so restarts find it again); otherwise `None`: SQLite in the directory.
pub fn test_database_url(dir: &std::path::Path) -> Option<String> {
    let noted = dir.join(TEST_DATABASE_FILE);
    if let Ok(url) = std::fs::read_to_string(&noted) {
        return Some(url);
    }
    let server = std::env::var("CODEGATE_TEST_DATABASE_URL").ok()?;
    if !codegate_storage::postgres::is_postgres_url(&server) {
        return None;
    }
    // The whole id: UUIDv7s made in the same millisecond share their leading digits.
    let name = format!("cg_{}", codegate_domain::ids::new_id());
    let url = on_own_runtime(async move { codegate_storage::postgres::create_database(&server, &name).await })
        .unwrap_or_else(|e| panic!("CODEGATE_TEST_DATABASE_URL is set but no database could be made there: {e}"));
    std::fs::write(&noted, &url).unwrap();
    Some(url)
}

/// The PostgreSQL database the harness made for `dir`, if it made one (never makes one).
pub fn noted_database_url(dir: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(dir.join(TEST_DATABASE_FILE)).ok()
}

/// One value of a row read with [`db_rows`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl Cell {
    pub fn int(&self) -> i64 {
        match self {
            Cell::Int(n) => *n,
            other => panic!("not an integer: {other:?}"),
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Cell::Text(t) => t,
            other => panic!("not text: {other:?}"),
        }
    }
}

/// Runs `sql` on the database of the server of `dir`, next to the live
/// server: its PostgreSQL database when the harness made one, else the SQLite
/// file (read-only). Write SQL both understand: `$1…` parameters (bound as
/// text), `CASE WHEN`/`NOT` on the `disabled` flag, `CAST(SUM(…) AS BIGINT)`.
pub fn db_rows(dir: &std::path::Path, sql: &str, params: &[&str]) -> Vec<Vec<Cell>> {
    if let Some(url) = noted_database_url(dir) {
        let (sql, params) = (sql.to_owned(), params.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        return on_own_runtime(async move { pg_rows(&url, &sql, &params).await });
    }
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("codegate.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the SQLite database of the test server");
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let columns = stmt.column_count();
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |r| {
            (0..columns)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Cell::Null,
                        rusqlite::types::ValueRef::Integer(n) => Cell::Int(n),
                        rusqlite::types::ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                        other => panic!("unexpected SQLite value {other:?}"),
                    })
                })
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.collect::<Result<_, _>>().unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn pg_rows(url: &str, sql: &str, params: &[String]) -> Vec<Vec<Cell>> {
    use codegate_storage::postgres::sqlx::{self, Column, Connection, Row, TypeInfo};
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    let mut query = sqlx::query(sql);
    for p in params {
        query = query.bind(p.clone());
    }
    let rows = query.fetch_all(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
    rows.iter()
        .map(|r| {
            r.columns()
                .iter()
                .map(|c| {
                    let i = c.ordinal();
                    match c.type_info().name() {
                        "INT8" => r.get::<Option<i64>, _>(i).map_or(Cell::Null, Cell::Int),
                        "INT4" => r.get::<Option<i32>, _>(i).map_or(Cell::Null, |n| Cell::Int(n.into())),
                        "INT2" => r.get::<Option<i16>, _>(i).map_or(Cell::Null, |n| Cell::Int(n.into())),
                        "BOOL" => r.get::<Option<bool>, _>(i).map_or(Cell::Null, |b| Cell::Int(b.into())),
                        "TEXT" | "VARCHAR" | "NAME" => r.get::<Option<String>, _>(i).map_or(Cell::Null, Cell::Text),
                        other => panic!("{sql}: column {i} has type {other}; cast it to BIGINT or TEXT"),
                    }
                })
                .collect()
        })
        .collect()
}

/// The first column of the only row of `sql`, an integer.
pub fn db_int(dir: &std::path::Path, sql: &str, params: &[&str]) -> i64 {
    let rows = db_rows(dir, sql, params);
    assert_eq!(rows.len(), 1, "{sql}: one row expected, got {rows:?}");
    rows[0][0].int()
}

/// Checks the physical soundness of the database of `dir`: SQLite's
/// `integrity_check`, or on PostgreSQL amcheck's `bt_index_check` with
/// `heapallindexed` over every B-tree index (each index well-formed and
/// holding every row of its table).
pub fn db_integrity_check(dir: &std::path::Path) {
    if let Some(url) = noted_database_url(dir) {
        on_own_runtime(async move {
            use codegate_storage::postgres::sqlx::{self, Connection};
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query("CREATE EXTENSION IF NOT EXISTS amcheck")
                .execute(&mut conn)
                .await
                .expect("the amcheck extension (PostgreSQL contrib) for checking indexes");
            let checked: i64 = sqlx::query_scalar(
                "SELECT COUNT(bt_index_check(c.oid, true))
                   FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
                  WHERE a.amname = 'btree' AND c.relnamespace = 'public'::regnamespace",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("amcheck found a damaged index: {e}"));
            assert!(checked >= 10, "the indexes of the CodeGate schema were checked ({checked})");
            let _ = conn.close().await;
        });
        return;
    }
    let rows = db_rows(dir, "PRAGMA integrity_check", &[]);
    assert_eq!(rows, vec![vec![Cell::Text("ok".into())]], "SQLite integrity_check");
}

/// Everything the server of `dir` has stored, as bytes to search for secrets:
/// the files of the data directory (on SQLite the database and its WAL among
/// them) and, on PostgreSQL, a full `pg_dump` of its database.
pub fn stored_bytes(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            stored.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    match noted_database_url(dir) {
        Some(url) => {
            let dump = Command::new("pg_dump").arg(&url).output().expect("run pg_dump");
            assert!(dump.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&dump.stderr));
            assert!(
                String::from_utf8_lossy(&dump.stdout).contains("COPY public.codes"),
                "the dump holds the CodeGate tables"
            );
            stored.push((format!("pg_dump {url}"), dump.stdout));
        }
        None => assert!(
            stored.iter().any(|(p, _)| p.ends_with("codegate.db")),
            "the SQLite file is there: {:?}",
            stored.iter().map(|s| &s.0).collect::<Vec<_>>()
        ),
    }
    stored
}

/// Whether `needle` occurs anywhere in what [`stored_bytes`] returned.
pub fn stored_anywhere(stored: &[(String, Vec<u8>)], needle: &str) -> Option<String> {
    assert!(!needle.is_empty());
    stored.iter().find(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes())).map(|s| s.0.clone())
}

/// Drops the database `test_database_url` made for `dir`, if any.
pub fn drop_test_database(dir: &std::path::Path) {
    if let Ok(url) = std::fs::read_to_string(dir.join(TEST_DATABASE_FILE)) {
        let _ = on_own_runtime(async move { codegate_storage::postgres::drop_database(&url).await });
    }
}

/// Runs a future to completion on a thread of its own (callers may be inside a runtime).
fn on_own_runtime<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f))
        .join()
        .unwrap()
}

/// Runs `codegate init` on a fresh directory and returns the token.
pub fn init(dir: &std::path::Path) -> Value {
    let out = Command::new(BIN)
        .args(["init", "--json", "--data-dir"])
        .arg(dir)
        .envs(test_database_url(dir).map(|url| ("CODEGATE_DATABASE_URL", url)))
        .output()
        .expect("run codegate init");
    assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("init prints JSON")
}

/// The child is handed to the caller, whose `Drop` kills and waits for it.
#[allow(clippy::zombie_processes)]
/// Starts `codegate serve` on port 0 and waits for its "listening on" line.
pub fn spawn_serve(dir: &std::path::Path, envs: &[(&str, &str)]) -> (Child, String, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .envs(test_database_url(dir).map(|url| ("CODEGATE_DATABASE_URL", url)))
        .envs(envs.iter().copied())
        .env("CODEGATE_RATE_LIMITS", "off")
        .env("CODEGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn codegate serve");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    loop {
        let mut line = String::new();
        let n = stdout.read_line(&mut line).unwrap_or(0);
        if n == 0 {
            let status = child.wait();
            panic!("server exited ({status:?}) before listening; printed: {banner}");
        }
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in stdout.lines() {});
            return (child, addr.to_owned(), banner);
        }
        banner.push_str(&line);
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(&[]).await
    }

    pub async fn start_with(envs: &[(&str, &str)]) -> TestServer {
        let data_dir = tempfile::tempdir().unwrap();
        let token = init(data_dir.path())["token"].as_str().unwrap().to_owned();
        let (child, base, banner) = spawn_serve(data_dir.path(), envs);
        // The server drops a keep-alive connection idle for 10 s (its header read timeout);
        // reusing one at that very moment fails, so the pool lets them go sooner.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        TestServer { child, base, token, data_dir, http, banner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A management call with the admin token; returns status and JSON body.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.bearer(&self.token.clone(), method, path, body).await
    }

    pub async fn bearer(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        read(resp).await
    }

    pub async fn create_project(&self, name: &str) -> String {
        let (status, p) = self.admin(Method::POST, "/api/v1/projects", Some(json!({"name": name}))).await;
        assert_eq!(status, StatusCode::CREATED, "{p}");
        p["id"].as_str().unwrap().to_owned()
    }

    pub async fn create_key(&self, pid: &str) -> Key {
        let (status, k) =
            self.admin(Method::POST, &format!("/api/v1/projects/{pid}/api-keys"), Some(json!({"name": "test"}))).await;
        assert_eq!(status, StatusCode::CREATED, "{k}");
        Key {
            id: k["id"].as_str().unwrap().into(),
            api_key: k["api_key"].as_str().unwrap().into(),
            secret: k["secret"].as_str().unwrap().into(),
        }
    }

    pub async fn generate(&self, pid: &str, body: Value) -> Vec<String> {
        let (status, g) = self.admin(Method::POST, &format!("/api/v1/projects/{pid}/codes/generate"), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{g}");
        g["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect()
    }

    /// A signed call, the way the SDKs make it.
    pub async fn signed(
        &self,
        key: &Key,
        method: Method,
        path_and_query: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        self.signed_at(key, method, path_and_query, body, now()).await
    }

    pub async fn signed_at(
        &self,
        key: &Key,
        method: Method,
        path_and_query: &str,
        body: Option<&str>,
        ts: i64,
    ) -> (StatusCode, Value) {
        let req = signed_request(&self.http, &self.base, key, method, path_and_query, body, ts);
        read(req.send().await.unwrap()).await
    }

    pub fn stop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop_test_database(self.data_dir.path());
    }
}

#[derive(Clone)]
pub struct Key {
    pub id: String,
    pub api_key: String,
    pub secret: String,
}

pub fn signed_request(
    http: &reqwest::Client,
    base: &str,
    key: &Key,
    method: Method,
    path_and_query: &str,
    body: Option<&str>,
    ts: i64,
) -> reqwest::RequestBuilder {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let body = body.unwrap_or("");
    let ts = ts.to_string();
    // A fresh nonce per request, as the SDKs send: identical signed POSTs would be replays.
    let nonce = codegate_domain::ids::new_id();
    let sts = SignedParts {
        method: method.as_str(),
        path,
        canonical_query: &canonical_query(query),
        body_sha256: &body_sha256_hex(body.as_bytes()),
        timestamp: &ts,
        nonce: Some(&nonce),
    }
    .string_to_sign();
    http.request(method, format!("{base}{path_and_query}"))
        .header("X-API-Key", &key.api_key)
        .header("X-Timestamp", &ts)
        .header("X-Signature", sign(key.secret.as_bytes(), &sts))
        .header("X-Nonce", &nonce)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
}

pub async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let is_problem =
        resp.headers().get("content-type").is_some_and(|v| v.to_str().unwrap().starts_with("application/problem+json"));
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_client_error() || status.is_server_error() {
        assert!(is_problem, "error answers are problem+json: {status} {body}");
        for field in ["type", "title", "status", "detail", "code"] {
            assert!(body.get(field).is_some(), "problem+json has '{field}': {body}");
        }
    }
    (status, body)
}
