//! Where test suites get their PostgreSQL databases (feature `test-support`,
//! enabled only by the workspace's tests): on 127.0.0.1:5432 unless
//! `CODEGATE_TEST_DATABASE_URL` names another server.
//!
//! Without a reachable server a suite says so and passes locally; in CI
//! (`CI=true`) it fails, so it can never be skipped silently there.

use super::create_database;
use std::time::Duration;

/// The server test databases are made on.
fn server_url() -> String {
    std::env::var("CODEGATE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Whether this runs in CI, where a missing PostgreSQL is a failure.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Fails in CI, skips (loudly) elsewhere.
pub fn unavailable(why: &str) {
    if in_ci() {
        panic!("{why} (CI must run the PostgreSQL suite; set CODEGATE_TEST_DATABASE_URL)");
    }
    eprintln!("SKIPPED: {why}");
}

/// A new database `name` on the test server, and its URL; `None` (after
/// [`unavailable`]) when the server cannot make one.
pub async fn fresh_database(name: &str) -> Option<String> {
    let server = server_url();
    match tokio::time::timeout(Duration::from_secs(10), create_database(&server, name)).await {
        Ok(Ok(url)) => Some(url),
        failure => {
            unavailable(&format!("PostgreSQL at {server} is not usable: {failure:?}"));
            None
        }
    }
}
