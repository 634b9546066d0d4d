//! Shared by the `postgres_*` tests: a fresh PostgreSQL database per data
//! directory (on 127.0.0.1:5432 unless `CODEGATE_TEST_DATABASE_URL` names
//! another server) and `codegate serve` replicas sharing it.
//!
//! Without a reachable server these tests say so and pass locally; in CI
//! they fail (`codegate_storage::postgres::test_support`).
#![allow(dead_code)]

use crate::common::{self, Key};
use codegate_storage::postgres::test_support::fresh_database;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

/// A data directory bound to a fresh database (the harness finds it in the
/// directory); `None` when PostgreSQL cannot be reached outside CI.
pub async fn pg_data_dir() -> Option<(tempfile::TempDir, String)> {
    let dir = tempfile::tempdir().unwrap();
    // The whole id: UUIDv7s made in the same millisecond share their leading digits.
    let url = fresh_database(&format!("cg_{}", codegate_domain::ids::new_id())).await?;
    std::fs::write(dir.path().join(".test-database-url"), &url).unwrap();
    assert_eq!(common::test_database_url(dir.path()).as_deref(), Some(url.as_str()));
    Some((dir, url))
}

/// One `codegate serve` process; killed when dropped.
pub struct Replica {
    pub child: Child,
    pub base: String,
}

impl Replica {
    pub fn start(dir: &Path) -> Replica {
        let (child, base, _) = common::spawn_serve(dir, &[]);
        Replica { child, base }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// N replicas on one data directory (same master key) and one database.
pub struct Cluster {
    pub replicas: Vec<Replica>,
    pub token: String,
    pub url: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start(n: usize) -> Option<Cluster> {
        let (dir, url) = pg_data_dir().await?;
        let token = common::init(dir.path())["token"].as_str().unwrap().to_owned();
        let replicas = (0..n).map(|_| Replica::start(dir.path())).collect();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Some(Cluster { replicas, token, url, http, dir })
    }

    pub fn base(&self, i: usize) -> &str {
        &self.replicas[i % self.replicas.len()].base
    }

    pub async fn admin(&self, i: usize, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base(i))).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        common::read(req.send().await.unwrap()).await
    }

    pub async fn create_project(&self, name: &str) -> String {
        let (s, p) = self.admin(0, Method::POST, "/api/v1/projects", Some(serde_json::json!({"name": name}))).await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        p["id"].as_str().unwrap().to_owned()
    }

    pub async fn create_key(&self, pid: &str) -> Key {
        let path = format!("/api/v1/projects/{pid}/api-keys");
        let (s, k) = self.admin(0, Method::POST, &path, Some(serde_json::json!({"name": "pg"}))).await;
        assert_eq!(s, StatusCode::CREATED, "{k}");
        Key {
            id: k["id"].as_str().unwrap().into(),
            api_key: k["api_key"].as_str().unwrap().into(),
            secret: k["secret"].as_str().unwrap().into(),
        }
    }

    pub async fn generate(&self, pid: &str, count: usize) -> Vec<String> {
        let path = format!("/api/v1/projects/{pid}/codes/generate");
        let (s, g) = self.admin(0, Method::POST, &path, Some(serde_json::json!({"count": count}))).await;
        assert_eq!(s, StatusCode::CREATED, "{g}");
        g["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect()
    }

    /// A signed verify through replica `i`.
    pub async fn verify(&self, i: usize, key: &Key, pid: &str, code: &str, by: &str) -> (StatusCode, Value) {
        let body = serde_json::json!({"code": code, "verified_by": by}).to_string();
        let path = format!("/api/v1/projects/{pid}/codes/verify");
        let req =
            common::signed_request(&self.http, self.base(i), key, Method::POST, &path, Some(&body), common::now());
        common::read(req.send().await.unwrap()).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.replicas.clear();
        common::drop_test_database(self.dir.path());
    }
}
