//! Replay protection and idempotency keys on the real server: a captured
//! signed request sent again is refused, nonces are single-use, reads stay
//! repeatable, and an `Idempotency-Key` retry gets the first answer again.

mod abuse_support;
mod common;

use abuse_support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn replayed(a: &Answer) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert_eq!(a.body["code"], "REPLAYED_REQUEST", "{}", a.body);
}

#[tokio::test]
async fn a_captured_verify_or_reactivate_cannot_be_replayed() {
    let s = start(&[]);
    let pid = s.project("replay").await;
    let key = s.key(&pid).await;
    let codes = s.codes(&pid, 1).await;
    let verify = s.signed(
        &key,
        Method::POST,
        &format!("/api/v1/projects/{pid}/codes/verify"),
        &json!({"code": codes[0], "verified_by": "buyer"}).to_string(),
    );
    let first = verify.send().await;
    assert_eq!(first.body["success"], true, "{}", first.body);
    // The very same bytes again, as an eavesdropper would send them.
    replayed(&verify.send().await);

    let reactivate = s.signed(
        &key,
        Method::POST,
        &format!("/api/v1/projects/{pid}/codes/reactivate"),
        &json!({"code": codes[0], "reason": "refund"}).to_string(),
    );
    assert_eq!(reactivate.send().await.body["success"], true);
    replayed(&reactivate.send().await);
    // The replays changed nothing: one success, one reactivation.
    let detail =
        s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes/by-code/{}", codes[0]), "").send().await;
    let results: Vec<&str> =
        detail.body["verification_logs"].as_array().unwrap().iter().map(|l| l["result"].as_str().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| **r == "success").count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| **r == "reactivated").count(), 1, "{results:?}");
}

#[tokio::test]
async fn nonces_are_single_use_and_reads_stay_repeatable() {
    let s = start(&[]);
    let pid = s.project("nonces").await;
    let key = s.key(&pid).await;
    let codes = s.codes(&pid, 2).await;
    let path = format!("/api/v1/projects/{pid}/codes/verify");
    let used = nonce();

    let mut req = s.signed(&key, Method::POST, &path, &json!({"code": codes[0]}).to_string());
    req.sign(&key, &path, Some(&used));
    let a = req.send().await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["success"], true);

    // The same nonce on another, correctly signed request: refused.
    let mut again = s.signed(&key, Method::POST, &path, &json!({"code": codes[1]}).to_string());
    again.sign(&key, &path, Some(&used));
    replayed(&again.send().await);
    // …and on a read too.
    let project = format!("/api/v1/projects/{pid}");
    let mut read = s.signed(&key, Method::GET, &project, "");
    read.sign(&key, &project, Some(&used));
    replayed(&read.send().await);

    // A fresh nonce is accepted.
    again.sign(&key, &path, Some(&nonce()));
    let fresh = again.send().await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert_eq!(fresh.body["success"], true);

    // Reads without a nonce can be repeated as they are.
    let plain = s.signed(&key, Method::GET, &project, "");
    assert_eq!(plain.send().await.status, StatusCode::OK);
    assert_eq!(plain.send().await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_idempotent_retry_gets_the_first_answer() {
    let s = start(&[]);
    let pid = s.project("idempotency").await;
    let key = s.key(&pid).await;
    let codes = s.codes(&pid, 2).await;
    let path = format!("/api/v1/projects/{pid}/codes/verify");
    let body = json!({"code": codes[0], "verified_by": "order-1"}).to_string();
    let idem = format!("order-{}", nonce());

    let first = s.signed(&key, Method::POST, &path, &body).header("Idempotency-Key", &idem).send().await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["success"], true, "{}", first.body);
    // A retry re-signs with a fresh nonce (so it is no replay) and keeps the key.
    let mut retry = s.signed(&key, Method::POST, &path, &body).header("Idempotency-Key", &idem);
    retry.sign(&key, &path, Some(&nonce()));
    let second = retry.send().await;
    assert_eq!(second.status, first.status);
    assert_eq!(second.body, first.body, "the first answer, not CODE_ALREADY_USED");
    assert_eq!(second.header("idempotent-replayed"), Some("true"));

    // The same key with another body is refused.
    let other = json!({"code": codes[1], "verified_by": "order-1"}).to_string();
    let conflict = s.signed(&key, Method::POST, &path, &other).header("Idempotency-Key", &idem).send().await;
    assert_eq!(conflict.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", conflict.body);
    assert_eq!(conflict.body["code"], "IDEMPOTENCY_KEY_REUSED");

    // Without the key it is a new redemption.
    let mut fresh = s.signed(&key, Method::POST, &path, &body);
    fresh.sign(&key, &path, Some(&nonce()));
    let used = fresh.send().await;
    assert_eq!(used.body["error_code"], "CODE_ALREADY_USED", "{}", used.body);

    // The same key from another credential is that credential's own.
    let key2 = s.key(&pid).await;
    let mine = s.signed(&key2, Method::POST, &path, &other).header("Idempotency-Key", &idem).send().await;
    assert_eq!(mine.body["success"], true, "{}", mine.body);

    let too_long = "k".repeat(256);
    let mut bad = s.signed(&key, Method::POST, &path, &other).header("Idempotency-Key", &too_long);
    bad.sign(&key, &path, Some(&nonce()));
    let bad = bad.send().await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);

    let detail =
        s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes/by-code/{}", codes[0]), "").send().await;
    let successes =
        detail.body["verification_logs"].as_array().unwrap().iter().filter(|l| l["result"] == "success").count();
    assert_eq!(successes, 1);
}

#[tokio::test]
async fn reactivate_is_idempotent_too() {
    let s = start(&[]);
    let pid = s.project("idem-reactivate").await;
    let key = s.key(&pid).await;
    let codes = s.codes(&pid, 1).await;
    let verify = format!("/api/v1/projects/{pid}/codes/verify");
    assert_eq!(
        s.signed(&key, Method::POST, &verify, &json!({"code": codes[0]}).to_string()).send().await.body["success"],
        true
    );
    let path = format!("/api/v1/projects/{pid}/codes/reactivate");
    let body = json!({"code": codes[0], "reason": "refund"}).to_string();
    let idem = nonce();
    let first = s.signed(&key, Method::POST, &path, &body).header("Idempotency-Key", &idem).send().await;
    assert_eq!(first.body["success"], true, "{}", first.body);
    let mut retry = s.signed(&key, Method::POST, &path, &body).header("Idempotency-Key", &idem);
    retry.sign(&key, &path, Some(&nonce()));
    let second = retry.send().await;
    assert_eq!(second.body, first.body, "not CODE_ALREADY_UNUSED");
}
