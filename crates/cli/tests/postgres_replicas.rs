//! Three `codegate serve` replicas on one PostgreSQL keep the guarantees of
//! one server: exactly-once verify across replicas, and an API key deleted
//! through one replica is refused by the others within seconds.

mod common;
mod postgres_support;

use postgres_support::Cluster;
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifies_over_three_replicas_succeed_exactly_once_per_code() {
    let Some(cluster) = Cluster::start(3).await else { return };
    let cluster = Arc::new(cluster);
    let pid = cluster.create_project("replicas").await;
    let key = cluster.create_key(&pid).await;
    let codes = Arc::new(cluster.generate(&pid, 100).await);

    // 24 clients, each sending every code (from its own starting point) and
    // spreading its requests over the three replicas.
    let tasks: Vec<_> = (0..24usize)
        .map(|client| {
            let (cluster, key, pid, codes) = (cluster.clone(), key.clone(), pid.clone(), codes.clone());
            tokio::spawn(async move {
                let mut won = Vec::new();
                for i in 0..codes.len() {
                    let code = &codes[(i * 7 + client * 13) % codes.len()];
                    let (status, body) =
                        cluster.verify(i + client, &key, &pid, code, &format!("client-{client}")).await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                    if body["success"] == true {
                        won.push(code.clone());
                    } else {
                        assert_eq!(body["error_code"], "CODE_ALREADY_USED", "{body}");
                    }
                }
                won
            })
        })
        .collect();
    let mut wins: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        for code in t.await.unwrap() {
            *wins.entry(code).or_default() += 1;
        }
    }
    assert_eq!(wins.len(), codes.len(), "every code was redeemed");
    assert!(wins.values().all(|n| *n == 1), "exactly one success per code: {wins:?}");

    // Every replica sees the same totals, from counters kept in the database.
    for i in 0..3 {
        let (s, stats) = cluster.admin(i, Method::GET, &format!("/api/v1/projects/{pid}/statistics"), None).await;
        assert_eq!(s, StatusCode::OK, "{stats}");
        assert_eq!((stats["used_codes"].as_i64(), stats["unused_codes"].as_i64()), (Some(100), Some(0)), "{stats}");
    }
    // One success row per code in the redemption log.
    let store = codegate_storage::postgres::PgStore::connect(&cluster.url).await.unwrap();
    use codegate_storage::RedemptionStore;
    let filter = codegate_storage::RedemptionFilter { result: Some("success".into()), code_id: None };
    assert_eq!(store.list_redemptions(&pid, &filter, 1, 1).await.unwrap().total, 100);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_deleted_on_one_replica_is_refused_by_the_others_within_five_seconds() {
    let Some(cluster) = Cluster::start(3).await else { return };
    let pid = cluster.create_project("keys").await;
    let key = cluster.create_key(&pid).await;
    let codes = cluster.generate(&pid, 3).await;
    let project_path = format!("/api/v1/projects/{pid}");
    let signed_get = |i: usize| {
        let req = common::signed_request(
            &cluster.http,
            cluster.base(i),
            &key,
            Method::GET,
            &project_path,
            None,
            common::now(),
        );
        async move { req.send().await.unwrap().status() }
    };
    for i in 0..3 {
        assert_eq!(signed_get(i).await, StatusCode::OK, "replica {i} accepts the key");
    }
    let (s, _) = cluster.admin(0, Method::DELETE, &format!("/api/v1/projects/{pid}/api-keys/{}", key.id), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let deadline = Instant::now() + Duration::from_secs(5);
    for i in 1..3 {
        loop {
            let status = signed_get(i).await;
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(Instant::now() < deadline, "replica {i} still accepts a deleted key after 5 s ({status})");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, body) = cluster.verify(i, &key, &pid, &codes[0], "late").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "replica {i} refuses verifies too: {body}");
    }
}
