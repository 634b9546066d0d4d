//! Limits, nonces and idempotency keys shared by replicas through Redis
//! (`CODEGATE_REDIS_URL`, the suite's local Redis), and a server that keeps
//! serving when Redis is unreachable. Each test uses its own key prefix.

mod abuse_support;
mod common;

use abuse_support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn two_replicas_share_one_quota() {
    let prefix = unique_prefix("shared-quota");
    let env = [
        ("CODEGATE_REDIS_URL", redis_url()),
        ("CODEGATE_REDIS_PREFIX", prefix.clone()),
        ("CODEGATE_RATE_LIMIT_READS", "4/60".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = start(&env);
    let b = replica(&a, &env);
    let pid = a.project("shared").await;
    let key = a.key(&pid).await;
    let path = format!("/api/v1/projects/{pid}");
    let mut remaining = vec![];
    for server in [&a, &b, &a, &b] {
        let r = server.signed(&key, Method::GET, &path, "").send().await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        remaining.push(r.secs("x-ratelimit-remaining"));
    }
    assert_eq!(remaining, vec![3, 2, 1, 0], "one quota across both replicas");
    for server in [&a, &b] {
        let r = server.signed(&key, Method::GET, &path, "").send().await;
        assert_limited(&r, "reads", "RATE_LIMITED");
    }
    for server in [&a, &b] {
        let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
        let body: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(body["redis"], "ok", "{body}");
    }
}

#[tokio::test]
async fn replicas_share_nonces_and_idempotent_answers() {
    let prefix = unique_prefix("shared-nonce");
    let env = [("CODEGATE_REDIS_URL", redis_url()), ("CODEGATE_REDIS_PREFIX", prefix.clone())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = start(&env);
    let b = replica(&a, &env);
    let pid = a.project("shared-nonce").await;
    let key = a.key(&pid).await;
    let codes = a.codes(&pid, 2).await;
    let path = format!("/api/v1/projects/{pid}/codes/verify");

    // A nonce used at one replica is refused at the other.
    let used = nonce();
    let mut first = a.signed(&key, Method::POST, &path, &json!({"code": codes[0]}).to_string());
    first.sign(&key, &path, Some(&used));
    assert_eq!(first.send().await.body["success"], true);
    let mut elsewhere = b.signed(&key, Method::POST, &path, &json!({"code": codes[1]}).to_string());
    elsewhere.sign(&key, &path, Some(&used));
    let refused = elsewhere.send().await;
    assert_eq!(refused.body["code"], "REPLAYED_REQUEST", "{}", refused.body);

    // An idempotent retry that lands on the other replica gets the first answer.
    let body = json!({"code": codes[1], "verified_by": "order-7"}).to_string();
    let idem = nonce();
    let one = a.signed(&key, Method::POST, &path, &body).header("Idempotency-Key", &idem).send().await;
    assert_eq!(one.body["success"], true, "{}", one.body);
    let mut retry = b.signed(&key, Method::POST, &path, &body).header("Idempotency-Key", &idem);
    retry.sign(&key, &path, Some(&nonce()));
    let two = retry.send().await;
    assert_eq!(two.status, one.status);
    assert_eq!(two.body, one.body);

    // While another replica still runs the first request, a retry is told so (409).
    let running = nonce();
    let scope = hex::encode(Sha256::digest(format!("key:{}\n{running}", key.api_key)));
    let busy_body = json!({"code": "ANY"}).to_string();
    let fingerprint = hex::encode(Sha256::digest(format!("POST\n{path}\n{busy_body}")));
    let record = json!({"fingerprint": fingerprint, "answer": null, "owner": "replica-c"}).to_string();
    let reply = redis_command(&["SET", &format!("{prefix}:idem:{scope}"), &record, "EX", "60"]);
    assert!(reply.starts_with("+OK"), "{reply}");
    let busy = b.signed(&key, Method::POST, &path, &busy_body).header("Idempotency-Key", &running).send().await;
    assert_eq!(busy.status, StatusCode::CONFLICT, "{}", busy.body);
    assert_eq!(busy.body["code"], "IDEMPOTENCY_IN_PROGRESS");
}

#[tokio::test]
async fn an_unreachable_redis_degrades_to_local_limits() {
    let s = start(&[
        ("CODEGATE_REDIS_URL", "redis://127.0.0.1:1"),
        ("CODEGATE_REDIS_PREFIX", "unreachable"),
        ("CODEGATE_RATE_LIMIT_READS", "2/60"),
    ]);
    let pid = s.project("no-redis").await;
    let key = s.key(&pid).await;
    let codes = s.codes(&pid, 1).await;
    let verify = s
        .signed(
            &key,
            Method::POST,
            &format!("/api/v1/projects/{pid}/codes/verify"),
            &json!({"code": codes[0]}).to_string(),
        )
        .send()
        .await;
    assert_eq!(verify.body["success"], true, "{}", verify.body);
    // Limits still hold, from this replica's memory.
    let path = format!("/api/v1/projects/{pid}");
    for _ in 0..2 {
        assert_eq!(s.signed(&key, Method::GET, &path, "").send().await.status, StatusCode::OK);
    }
    assert_limited(&s.signed(&key, Method::GET, &path, "").send().await, "reads", "RATE_LIMITED");
    // Serving, but not ready: a load balancer should prefer replicas that share their limits.
    let ready = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["redis"], "unreachable", "{body}");
    assert_eq!(body["code"], "NOT_READY", "{body}");
    assert_eq!(body["database"], "ok");
    assert!(s.log_text().contains("Redis is unreachable"), "log: {}", s.log_text());
}
