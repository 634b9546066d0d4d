//! Exactly-once verify under concurrency, and durability across restarts.

mod common;

use common::{signed_request, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_verifies_succeed_exactly_once_per_code() {
    let s = Arc::new(TestServer::start().await);
    let pid = s.create_project("race").await;
    let key = s.create_key(&pid).await;
    let codes = s.generate(&pid, json!({"count": 40})).await;
    const RACERS: usize = 32;
    let path = format!("/api/v1/projects/{pid}/codes/verify");
    let mut tasks = Vec::new();
    for code in &codes {
        for racer in 0..RACERS {
            let (s, key, path) = (s.clone(), key.clone(), path.clone());
            let body = json!({"code": code, "verified_by": format!("racer-{racer}")}).to_string();
            tasks.push(tokio::spawn(async move {
                let resp = signed_request(&s.http, &s.base, &key, Method::POST, &path, Some(&body), common::now())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                let r: serde_json::Value = resp.json().await.unwrap();
                (r["code"].as_str().unwrap().to_owned(), r["success"].as_bool().unwrap(), r["error_code"].clone())
            }));
        }
    }
    let mut successes = std::collections::HashMap::<String, usize>::new();
    for t in tasks {
        let (code, ok, err) = t.await.unwrap();
        if ok {
            *successes.entry(code).or_default() += 1;
        } else {
            assert_eq!(err, "CODE_ALREADY_USED");
        }
    }
    assert_eq!(successes.len(), codes.len(), "every code was redeemed");
    assert!(successes.values().all(|n| *n == 1), "exactly one success per code: {successes:?}");
    let (_, stats) = s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/statistics"), None).await;
    assert_eq!(stats["used_codes"], codes.len());
}

#[tokio::test]
async fn redemptions_survive_a_restart() {
    let mut s = TestServer::start().await;
    let pid = s.create_project("durable").await;
    let key = s.create_key(&pid).await;
    let codes = s.generate(&pid, json!({"count": 3})).await;
    let (_, r) = s
        .signed(
            &key,
            Method::POST,
            &format!("/api/v1/projects/{pid}/codes/verify"),
            Some(&json!({"code": codes[0]}).to_string()),
        )
        .await;
    assert_eq!(r["success"], true);
    s.stop();
    let (child, base, banner) = common::spawn_serve(s.data_dir.path(), &[]);
    assert!(!banner.contains("password"), "credentials are printed only on the first start");
    s.child = child;
    s.base = base;
    let (status, p) = s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}"), None).await;
    assert_eq!(status, StatusCode::OK, "the key (sealed under the master key) still works: {p}");
    assert_eq!(p["statistics"]["used_codes"], 1);
    assert_eq!(p["statistics"]["total_codes"], 3);
    let (_, r) = s
        .signed(
            &key,
            Method::POST,
            &format!("/api/v1/projects/{pid}/codes/verify"),
            Some(&json!({"code": codes[0]}).to_string()),
        )
        .await;
    assert_eq!(r["error_code"], "CODE_ALREADY_USED");
}
