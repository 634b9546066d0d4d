//! `codegate migrate-db`: a SQLite installation moved to PostgreSQL keeps
//! every code, state, log row, key and token, and keeps working.

mod common;
mod postgres_support;

use common::{signed_request, Key, BIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

struct Server {
    child: std::process::Child,
    base: String,
    http: reqwest::Client,
    token: String,
}

impl Server {
    fn start(dir: &Path, token: &str, envs: &[(&str, &str)]) -> Server {
        let (child, base, _) = common::spawn_serve(dir, envs);
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Server { child, base, http, token: token.to_owned() }
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        common::read(req.send().await.unwrap()).await
    }

    async fn signed(&self, key: &Key, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string());
        let req = signed_request(&self.http, &self.base, key, method, path, body.as_deref(), common::now());
        common::read(req.send().await.unwrap()).await
    }

    /// SIGTERM, then wait: the server drains and closes the database.
    fn stop(mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a client can read about the project: codes with their logs, statistics, keys.
async fn snapshot(s: &Server, key: &Key, pid: &str) -> Value {
    let (st, list) = s.signed(key, Method::GET, &format!("/api/v1/projects/{pid}/codes?page_size=100"), None).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    let mut codes = Vec::new();
    for item in list["items"].as_array().unwrap() {
        let path = format!("/api/v1/projects/{pid}/codes/{}", item["id"].as_str().unwrap());
        let (st, code) = s.signed(key, Method::GET, &path, None).await;
        assert_eq!(st, StatusCode::OK, "{code}");
        codes.push(code);
    }
    let (_, project) = s.signed(key, Method::GET, &format!("/api/v1/projects/{pid}"), None).await;
    let (_, mut stats) = s.signed(key, Method::GET, &format!("/api/v1/projects/{pid}/statistics"), None).await;
    let (_, keys) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/api-keys"), None).await;
    let mut keys = keys["items"].clone();
    // Reading with the key just now moved last_used_at; the rest must be equal.
    for k in keys.as_array_mut().unwrap() {
        k.as_object_mut().unwrap().remove("last_used_at");
    }
    stats.as_object_mut().unwrap().remove("generated_at");
    json!({"total": list["total"], "codes": codes, "project": project, "stats": stats, "keys": keys})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_db_keeps_codes_states_logs_keys_and_tokens() {
    let name = format!("cg_{}", codegate_domain::ids::new_id());
    let Some(pg_url) = codegate_storage::postgres::test_support::fresh_database(&name).await else { return };

    // 1. A SQLite installation with codes in every state and a redemption history.
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("codegate.db").display());
    let out = Command::new(BIN)
        .args(["init", "--json", "--data-dir"])
        .arg(dir.path())
        .env("CODEGATE_DATABASE_URL", &sqlite_url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = serde_json::from_slice::<Value>(&out.stdout).unwrap()["token"].as_str().unwrap().to_owned();
    let sqlite = Server::start(dir.path(), &token, &[("CODEGATE_DATABASE_URL", &sqlite_url)]);
    let (st, p) = sqlite.admin(Method::POST, "/api/v1/projects", Some(json!({"name": "moving"}))).await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let pid = p["id"].as_str().unwrap().to_owned();
    let (_, k) =
        sqlite.admin(Method::POST, &format!("/api/v1/projects/{pid}/api-keys"), Some(json!({"name": "b"}))).await;
    let key = Key {
        id: k["id"].as_str().unwrap().into(),
        api_key: k["api_key"].as_str().unwrap().into(),
        secret: k["secret"].as_str().unwrap().into(),
    };
    let body = json!({"count": 30, "metadata": {"plan": "pro"}, "batch_name": "spring"});
    let (_, g) = sqlite.admin(Method::POST, &format!("/api/v1/projects/{pid}/codes/generate"), Some(body)).await;
    let codes: Vec<String> = g["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    let verify = format!("/api/v1/projects/{pid}/codes/verify");
    for (i, code) in codes.iter().take(8).enumerate() {
        let (_, r) = sqlite
            .signed(&key, Method::POST, &verify, Some(json!({"code": code, "verified_by": format!("u{i}")})))
            .await;
        assert_eq!(r["success"], true, "{r}");
    }
    let (_, r) =
        sqlite.signed(&key, Method::POST, &verify, Some(json!({"code": codes[0], "verified_by": "again"}))).await;
    assert_eq!(r["error_code"], "CODE_ALREADY_USED");
    let reactivate = format!("/api/v1/projects/{pid}/codes/reactivate");
    let (_, r) =
        sqlite.signed(&key, Method::POST, &reactivate, Some(json!({"code": codes[1], "reason": "support"}))).await;
    assert_eq!(r["success"], true, "{r}");
    for code in &codes[10..12] {
        let (_, c) =
            sqlite.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes/by-code/{code}"), None).await;
        let path = format!("/api/v1/projects/{pid}/codes/{}", c["id"].as_str().unwrap());
        let (st, _) = sqlite.admin(Method::PATCH, &path, Some(json!({"disabled": true}))).await;
        assert_eq!(st, StatusCode::OK);
    }
    let before = snapshot(&sqlite, &key, &pid).await;
    sqlite.stop();

    // 2. Move it.
    let out =
        Command::new(BIN).args(["migrate-db", "--json", "--from", &sqlite_url, "--to", &pg_url]).output().unwrap();
    assert!(out.status.success(), "migrate-db failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tables"]["codes"], 30, "{report}");
    assert_eq!(report["tables"]["redemptions"], 10, "8 successes, 1 failure, 1 reactivation: {report}");
    // A second run refuses to copy into a database that now holds data.
    let again = Command::new(BIN).args(["migrate-db", "--from", &sqlite_url, "--to", &pg_url]).output().unwrap();
    assert!(!again.status.success(), "migrating twice must refuse");

    // 3. The same data directory (master key) on PostgreSQL answers the same.
    std::fs::write(dir.path().join(".test-database-url"), &pg_url).unwrap();
    let pg = Server::start(dir.path(), &token, &[("CODEGATE_DATABASE_URL", &pg_url)]);
    let after = snapshot(&pg, &key, &pid).await;
    assert_eq!(after, before, "codes, states, logs, statistics and keys survive the move");

    // It keeps working: the old key signs, states hold, new codes come first.
    let (_, r) = pg.signed(&key, Method::POST, &verify, Some(json!({"code": codes[0], "verified_by": "x"}))).await;
    assert_eq!(r["error_code"], "CODE_ALREADY_USED", "{r}");
    let (_, r) = pg.signed(&key, Method::POST, &verify, Some(json!({"code": codes[10], "verified_by": "x"}))).await;
    assert_eq!(r["error_code"], "CODE_DISABLED", "{r}");
    let (_, r) = pg.signed(&key, Method::POST, &verify, Some(json!({"code": codes[1], "verified_by": "x"}))).await;
    assert_eq!(r["success"], true, "the reactivated code redeems again: {r}");
    let (st, g) =
        pg.admin(Method::POST, &format!("/api/v1/projects/{pid}/codes/generate"), Some(json!({"count": 1}))).await;
    assert_eq!(st, StatusCode::CREATED, "{g}");
    let (_, list) = pg.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes?page_size=1"), None).await;
    assert_eq!(list["items"][0]["code"], g["codes"][0], "newest first continues after the copied codes");
    assert_eq!(list["total"], 31);
    pg.stop();
    common::drop_test_database(dir.path());
}
