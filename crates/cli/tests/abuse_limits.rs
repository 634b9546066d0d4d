//! Rate limits by endpoint category against the real server: each category
//! answers 429 with the rate-limit headers once its quota is used up, and a
//! request sent after `Retry-After` passes again. Small windows keep it quick.

mod abuse_support;
mod common;

use abuse_support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Sends `request` until it is limited (at most `limit` + 1 times), checks
/// the answers on the way, waits `Retry-After` and checks it passes again.
async fn exhaust_and_recover<F, Fut>(policy: &str, limit: u32, window: u32, mut request: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    for i in 0..limit {
        let a = request().await;
        assert!(a.status.is_success() || a.status == StatusCode::UNAUTHORIZED, "request {i}: {} {}", a.status, a.body);
        assert_rate_headers(&a, policy, limit, window);
        assert_eq!(a.secs("x-ratelimit-remaining"), u64::from(limit - 1 - i), "remaining after request {i}");
        assert!(a.header("retry-after").is_none());
    }
    let limited = request().await;
    assert_rate_headers(&limited, policy, limit, window);
    let retry_after = assert_limited(&limited, policy, "RATE_LIMITED");
    assert!(retry_after <= u64::from(window), "a single request waits at most the window");
    wait(retry_after).await;
    let again = request().await;
    assert!(
        again.status.is_success() || again.status == StatusCode::UNAUTHORIZED,
        "after Retry-After: {}",
        again.status
    );
}

#[tokio::test]
async fn reads_are_limited_per_credential() {
    let s = start(&[("CODEGATE_RATE_LIMIT_READS", "3/2")]);
    let pid = s.project("reads").await;
    let key = s.key(&pid).await;
    let path = format!("/api/v1/projects/{pid}");
    exhaust_and_recover("reads", 3, 2, || s.signed(&key, Method::GET, &path, "").send()).await;
    // Another credential of the same project has its own quota.
    let other = s.key(&pid).await;
    let a = s.signed(&other, Method::GET, &format!("{path}/statistics"), "").send().await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("x-ratelimit-remaining"), Some("2"));
}

#[tokio::test]
async fn redemptions_are_limited_per_credential() {
    let s = start(&[("CODEGATE_RATE_LIMIT_REDEMPTION", "3/2"), ("CODEGATE_RATE_LIMIT_FAILED_REDEMPTIONS", "1000/60")]);
    let pid = s.project("redemption").await;
    let key = s.key(&pid).await;
    let path = format!("/api/v1/projects/{pid}/codes/verify");
    let (s, key, path) = (&s, &key, &path);
    exhaust_and_recover("redemption", 3, 2, || {
        let body = json!({"code": format!("NOPE-{}", nonce())}).to_string();
        s.signed(key, Method::POST, path, &body).send()
    })
    .await;
    // Reads of the same key are a separate quota.
    let a = s.signed(key, Method::GET, &format!("/api/v1/projects/{pid}"), "").send().await;
    assert_eq!(a.status, StatusCode::OK);
    assert_rate_headers(&a, "reads", 600, 60);
}

#[tokio::test]
async fn bulk_and_management_writes_have_their_own_quotas() {
    let s = start(&[("CODEGATE_RATE_LIMIT_BULK", "2/2"), ("CODEGATE_RATE_LIMIT_MANAGEMENT", "3/2")]);
    let pid = s.project("bulk").await;
    let s = &s;
    // generate, export and import all count as bulk.
    let mut n = 0;
    exhaust_and_recover("bulk", 2, 2, || {
        n += 1;
        let (method, path, body) = match n % 3 {
            1 => (Method::POST, format!("/api/v1/projects/{pid}/codes/generate"), Some(json!({"count": 2}))),
            2 => (Method::GET, format!("/api/v1/projects/{pid}/codes/export?format=jsonl"), None),
            _ => (Method::POST, format!("/api/v1/projects/{pid}/codes/generate"), Some(json!({"count": 1}))),
        };
        async move { s.bearer(method, &path, body).await }
    })
    .await;
    // Bulk being used up leaves management writes alone (one was spent creating the project).
    wait(2).await;
    let mut i = 0;
    exhaust_and_recover("management", 3, 2, || {
        i += 1;
        let path = format!("/api/v1/projects/{pid}");
        async move { s.bearer(Method::PATCH, &path, Some(json!({"description": format!("edit {i}")}))).await }
    })
    .await;
}

#[tokio::test]
async fn logins_are_throttled_per_ip_and_username_with_identical_answers() {
    let temp = abuse_support::DataDir::new();
    let admin = init(temp.path());
    let (user, password) = (admin["username"].as_str().unwrap(), admin["password"].as_str().unwrap());
    let s = spawn(temp.path(), admin["token"].as_str().unwrap(), &[("CODEGATE_RATE_LIMIT_LOGIN", "2/3")]);
    let login = |u: &str, p: &str| {
        let body = json!({"username": u, "password": p});
        let req = s.http.post(s.url("/api/v1/auth/login")).json(&body);
        async move { answer(req.send().await.unwrap()).await }
    };
    let wrong = login(user, "not the password").await;
    let unknown = login("nobody-here", "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body, unknown.body, "unknown user and wrong password answer alike");
    assert_rate_headers(&wrong, "login", 2, 3);
    // Two failures from this IP: the next attempt is refused before the password is looked at.
    let refused = login(user, password).await;
    let retry_after = assert_limited(&refused, "login", "RATE_LIMITED");
    wait(retry_after).await;
    let ok = login(user, password).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

#[tokio::test]
async fn bad_credentials_are_limited_per_client_ip() {
    let s = start(&[("CODEGATE_RATE_LIMIT_UNAUTHENTICATED", "2/2")]);
    exhaust_and_recover("unauthenticated", 2, 2, || {
        s.bearer_as("cgp_not-a-token", Method::GET, "/api/v1/projects", None)
    })
    .await;
    // A valid credential from the same IP is not held back by that.
    let a = s.bearer(Method::GET, "/api/v1/projects", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

#[tokio::test]
async fn guessing_defence_locks_out_the_guesser_only() {
    let s = start(&[("CODEGATE_RATE_LIMIT_FAILED_REDEMPTIONS", "3/4"), ("CODEGATE_TRUSTED_PROXIES", "127.0.0.1, ::1")]);
    let pid = s.project("guessing").await;
    let key = s.key(&pid).await;
    let codes = s.codes(&pid, 3).await;
    let path = format!("/api/v1/projects/{pid}/codes/verify");
    let verify = |code: &str, ip: &str| {
        let body = json!({"code": code, "verified_by": nonce()}).to_string();
        s.signed(&key, Method::POST, &path, &body).header("X-Forwarded-For", ip).send()
    };
    let guesser = "203.0.113.66";
    for i in 0..3 {
        let a = verify(&format!("GUESS-{i}-{}", nonce()), guesser).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body["error_code"], "CODE_NOT_FOUND");
        assert_rate_headers(&a, "failed_redemptions", 3, 4);
    }
    // Locked out, even for a real code.
    let refused = verify(&codes[0], guesser).await;
    let retry_after = assert_limited(&refused, "failed_redemptions", "TOO_MANY_FAILED_ATTEMPTS");
    // The same credential from another client IP is unaffected.
    let other = verify(&codes[1], "198.51.100.7").await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    assert_eq!(other.body["success"], true);
    // The redemption log records the forwarded client address.
    let code_id = other.body["code_id"].as_str().unwrap();
    let detail = s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes/{code_id}"), "").send().await;
    assert_eq!(detail.body["verification_logs"][0]["ip_address"], "198.51.100.7", "{}", detail.body);
    // A forwarded address from an untrusted peer is ignored: covered by unit tests of client_ip.
    wait(retry_after).await;
    let after = verify(&codes[0], guesser).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
    assert_eq!(after.body["success"], true);
}

#[tokio::test]
async fn a_project_can_override_its_limits() {
    let s = start(&[]);
    let pid = s.project("override").await;
    let key = s.key(&pid).await;
    let bad = s
        .bearer(
            Method::PATCH,
            &format!("/api/v1/projects/{pid}"),
            Some(json!({"quotas": {"rate_limits": {"reads": {"limit": 0, "window_secs": 2}}}})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let patched = s
        .admin_ok(
            Method::PATCH,
            &format!("/api/v1/projects/{pid}"),
            Some(json!({"quotas": {"rate_limits": {"reads": {"limit": 2, "window_secs": 2}}}})),
        )
        .await;
    assert_eq!(patched["quotas"]["rate_limits"]["reads"]["limit"], 2, "{patched}");
    let path = format!("/api/v1/projects/{pid}/codes");
    exhaust_and_recover("reads", 2, 2, || s.signed(&key, Method::GET, &path, "").send()).await;
    // Other categories keep the server's defaults.
    let v = s.signed(&key, Method::POST, &format!("{path}/verify"), &json!({"code": "X"}).to_string()).send().await;
    assert_rate_headers(&v, "redemption", 1200, 60);
}

#[tokio::test]
async fn limits_off_lifts_everything_and_says_so() {
    let s = start(&[("CODEGATE_RATE_LIMITS", "off"), ("CODEGATE_RATE_LIMIT_READS", "1/60")]);
    let pid = s.project("off").await;
    let key = s.key(&pid).await;
    for _ in 0..3 {
        let a = s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}"), "").send().await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.header("ratelimit").is_none());
    }
    assert!(s.log_text().contains("rate limits are lifted"), "log: {}", s.log_text());
}
