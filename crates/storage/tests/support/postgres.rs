//! A fresh PostgreSQL database per test, dropped afterwards (where, and
//! what happens without a server: `codegate_storage::postgres::test_support`).

use codegate_domain::ids::new_id;
use codegate_storage::postgres::test_support::fresh_database;
use codegate_storage::postgres::{self, PgStore};

/// A fresh database, dropped when this goes away (also when a test fails).
pub struct TestDb {
    pub url: String,
}

impl TestDb {
    /// `None` (after saying why) when no PostgreSQL answers outside CI.
    pub async fn new() -> Option<TestDb> {
        let url = fresh_database(&format!("cg_test_{}", new_id())).await?;
        Some(TestDb { url })
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
