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

/// The server's threads, as Linux lists them.
#[cfg(target_os = "linux")]
fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server runs").count()
}

/// A burst of concurrent reads waits for the eight read connections as tasks,
/// and tokio's blocking pool is bounded: the server does not grow a thread per
/// waiting reader (64 concurrent readers once meant more than 64 threads).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_concurrent_reads_keeps_the_server_to_a_few_threads() {
    let s = Arc::new(TestServer::start().await);
    let pid = s.create_project("readers").await;
    let key = s.create_key(&pid).await;
    let codes = Arc::new(s.generate(&pid, json!({"count": 64})).await);
    const READERS: usize = 64;
    let mut tasks = Vec::new();
    for reader in 0..READERS {
        let (s, key, pid, codes) = (s.clone(), key.clone(), pid.clone(), codes.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..10 {
                let path = match round % 3 {
                    0 => format!("/api/v1/projects/{pid}/statistics"),
                    1 => format!("/api/v1/projects/{pid}/codes?page=1&page_size=20"),
                    _ => format!("/api/v1/projects/{pid}/codes/by-code/{}", codes[reader]),
                };
                let (status, body) = s.signed(&key, Method::GET, &path, None).await;
                assert_eq!(status, StatusCode::OK, "{path}: {body}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let threads = thread_count(s.child.id());
    // Workers (one per core), at most 16 blocking threads, and a dozen of the
    // server's own (main, SQLite writer, sync and checkpointer, the read pool's
    // helpers, metrics upkeep).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    assert!(threads <= cores + 16 + 12, "{threads} threads after {READERS} concurrent readers");
}
