//! A fresh PostgreSQL database per test (127.0.0.1:5432 unless
//! `CODEGATE_TEST_DATABASE_URL` names another server), dropped afterwards.
//!
//! Without a reachable server the tests say so and pass locally; in CI
//! (`CI=true`) they fail, so the suite can never be skipped silently there.

use codegate_domain::ids::new_id;
use codegate_storage::postgres::{self, PgStore};
use std::time::Duration;

pub fn server_url() -> String {
    std::env::var("CODEGATE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A fresh database, dropped when this goes away (also when a test fails).
pub struct TestDb {
    pub url: String,
}

impl TestDb {
    /// `None` (after saying why) when no PostgreSQL answers outside CI.
    pub async fn new() -> Option<TestDb> {
        let server = server_url();
        let name = format!("cg_test_{}", new_id());
        match tokio::time::timeout(Duration::from_secs(10), postgres::create_database(&server, &name)).await {
            Ok(Ok(url)) => Some(TestDb { url }),
            failure => {
                let why = format!("PostgreSQL at {server} is not usable: {failure:?}");
                if in_ci() {
                    panic!("{why} (CI must run the PostgreSQL suite; set CODEGATE_TEST_DATABASE_URL)");
                }
                eprintln!("SKIPPED: {why}");
                None
            }
        }
    }

    pub async fn store(&self) -> PgStore {
        PgStore::connect(&self.url).await.expect("connect and migrate")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let url = self.url.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _ = rt.block_on(postgres::drop_database(&url));
        })
        .join();
    }
}
