//! A dump of the PostgreSQL database holds no API secret, token or password in clear.

mod common;

use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_postgres_dump_reveals_no_secret() {
    if std::env::var("CODEGATE_TEST_DATABASE_URL").is_err() {
        // Runs in the PostgreSQL pass of scripts/test.sh, which sets it.
        std::env::set_var("CODEGATE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
    }
    let s = TestServer::start().await;
    let url = common::test_database_url(s.data_dir.path()).expect("the server runs on PostgreSQL");
    let pid = s.create_project("vault").await;
    let key = s.create_key(&pid).await;
    let (status, t) = s.admin(Method::POST, "/api/v1/tokens", Some(json!({"name": "ci", "scopes": ["read"]}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let token = t["token"].as_str().unwrap().to_owned();
    let (status, u) = s.admin(Method::POST, "/api/v1/users", Some(json!({"username": "dora", "role": "viewer"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let password = u["password"].as_str().unwrap().to_owned();

    let dump = std::process::Command::new("pg_dump").arg("--data-only").arg(&url).output().expect("run pg_dump");
    assert!(dump.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&dump.stderr));
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains(&key.api_key), "the dump holds the data (public key id present)");
    for (what, secret) in
        [("API secret", &key.secret), ("token", &token), ("admin token", &s.token), ("password", &password)]
    {
        assert!(!text.contains(secret.as_str()), "{what} in clear in the PostgreSQL dump");
    }
}
