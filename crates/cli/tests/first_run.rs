//! What a newcomer meets: `serve` on an empty directory, `init`, management basics.

mod common;

use common::{TestServer, BIN};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn serve_on_an_empty_directory_creates_the_first_admin() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, banner) = common::spawn_serve(dir.path(), &[]);
    assert!(banner.contains("username: admin"), "{banner}");
    assert!(banner.contains("/api/v1/projects"), "says how to create a project: {banner}");
    let token = banner.split_whitespace().find(|w| w.starts_with("cgp_")).expect("a token in the banner").to_owned();
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/api/v1/projects"))
        .bearer_auth(&token)
        .json(&json!({"name": "first"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let _ = child.kill();
    let _ = child.wait();
    // init refuses once users exist.
    let out = std::process::Command::new(BIN)
        .args(["init", "--json", "--data-dir"])
        .arg(dir.path())
        .envs(common::noted_database_url(dir.path()).map(|url| ("CODEGATE_DATABASE_URL", url)))
        .output()
        .unwrap();
    common::drop_test_database(dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already"));
}

#[tokio::test]
async fn secrets_are_not_stored_in_clear() {
    let s = TestServer::start().await;
    let pid = s.create_project("vault").await;
    let key = s.create_key(&pid).await;
    let (_, list) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/api-keys"), None).await;
    assert_eq!(list["items"][0]["api_key"], key.api_key.as_str());
    assert!(list["items"][0].get("secret").is_none(), "listing never shows secrets");
    // The SQLite file and its WAL, or a dump of the PostgreSQL database.
    let stored = common::stored_bytes(s.data_dir.path());
    assert!(common::stored_anywhere(&stored, &key.api_key).is_some(), "the key itself is stored (public id)");
    assert_eq!(common::stored_anywhere(&stored, &key.secret), None, "API secret in clear");
    assert_eq!(common::stored_anywhere(&stored, &s.token), None, "token in clear");
}

#[tokio::test]
async fn management_errors_are_problems() {
    let s = TestServer::start().await;
    let (status, p) = s.admin(Method::POST, "/api/v1/projects", Some(json!({"name": ""}))).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED")));
    let (status, _) = s.admin(Method::POST, "/api/v1/projects", Some(json!({"name": "x", "colour": "red"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "unknown fields are refused");
    s.create_project("dup").await;
    let (status, p) = s.admin(Method::POST, "/api/v1/projects", Some(json!({"name": "dup"}))).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::CONFLICT, Some("CONFLICT")));
    let (status, _) = s.bearer("cgp_nope", Method::GET, "/api/v1/projects", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s.admin(Method::GET, &format!("/api/v1/projects/{}", "a".repeat(32)), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.admin(Method::GET, "/api/v1/nothing-here", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let pid = s.create_project("gen").await;
    let (status, p) = s
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{pid}/codes/generate"),
            Some(json!({"count": 101, "length": 8, "charset": "0123456789"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p["detail"].as_str().unwrap().contains("safely hold 100"), "{p}");
    let big = "x".repeat(70 * 1024);
    let (status, _) = s
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{pid}/codes/generate"),
            Some(json!({"count": 1, "batch_name": big})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn csv_import_reports_rejected_rows() {
    let s = TestServer::start().await;
    let pid = s.create_project("imports").await;
    let csv = "code,expires_at,max_uses,metadata\nGOOD-1,,,\ngood 1,,,\nBAD,soon,,\n,,,\nMULTI,,3,\"{\"\"tier\"\":\"\"gold\"\"}\"\n";
    let resp = s
        .http
        .post(s.url(&format!("/api/v1/projects/{pid}/codes/import")))
        .bearer_auth(&s.token)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let (status, r) = common::read(resp).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["imported"], 2);
    let rejected: Vec<(u64, &str)> = r["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["line"].as_u64().unwrap(), x["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(rejected.len(), 3, "{r}");
    assert_eq!(rejected[0], (3, "duplicate code"), "normalised duplicates are caught");
    assert_eq!(rejected[1].0, 4);
    assert!(rejected[1].1.contains("expires_at"));
    assert_eq!(rejected[2].0, 5);
    let (_, c) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/codes/by-code/multi"), None).await;
    assert_eq!(c["max_uses"], 3);
    assert_eq!(c["metadata"], json!({"tier": "gold"}));
}
