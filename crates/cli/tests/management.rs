//! The management API over HTTP: scopes and roles, sessions, keys, tokens,
//! bulk actions, import/export, quotas and the problem+json errors.

mod common;

use common::{now, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashSet;

async fn token_with(s: &TestServer, scopes: &[&str]) -> String {
    let (status, t) =
        s.admin(Method::POST, "/api/v1/tokens", Some(json!({"name": format!("{scopes:?}"), "scopes": scopes}))).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    t["token"].as_str().unwrap().to_owned()
}

/// Every route, the scope it needs, and a request that is valid apart from authorisation.
fn routes(
    pid: &str,
    code_id: &str,
    key_id: &str,
    user_id: &str,
    other_pid: &str,
) -> Vec<(&'static str, Method, String, Option<Value>)> {
    let p = format!("/api/v1/projects/{pid}");
    vec![
        ("read", Method::GET, "/api/v1/projects".into(), None),
        (
            "write",
            Method::POST,
            "/api/v1/projects".into(),
            Some(json!({"name": format!("p-{}", codegate_domain::ids::new_id())})),
        ),
        ("read", Method::GET, p.clone(), None),
        ("write", Method::PATCH, p.clone(), Some(json!({"description": "changed"}))),
        ("write", Method::DELETE, format!("/api/v1/projects/{other_pid}"), None),
        ("read", Method::GET, format!("{p}/statistics"), None),
        ("read", Method::GET, format!("{p}/overview"), None),
        ("read", Method::GET, "/api/v1/overview".into(), None),
        ("read", Method::GET, format!("{p}/redemptions"), None),
        ("read", Method::GET, format!("{p}/batches"), None),
        ("read", Method::GET, format!("{p}/codes"), None),
        ("read", Method::GET, format!("{p}/codes/{code_id}"), None),
        ("read", Method::GET, format!("{p}/codes/by-code/NOPE"), None),
        ("read", Method::GET, format!("{p}/codes/export"), None),
        ("verify", Method::POST, format!("{p}/codes/verify"), Some(json!({"code": "NOPE"}))),
        ("verify", Method::POST, format!("{p}/codes/reactivate"), Some(json!({"code": "NOPE"}))),
        ("write", Method::POST, format!("{p}/codes/generate"), Some(json!({"count": 1}))),
        ("write", Method::PATCH, format!("{p}/codes/{code_id}"), Some(json!({"metadata": {"a": 1}}))),
        ("write", Method::POST, format!("{p}/codes/bulk"), Some(json!({"action": "enable", "ids": [code_id]}))),
        ("write", Method::DELETE, format!("{p}/codes/{}", "0".repeat(32)), None),
        ("keys", Method::GET, format!("{p}/api-keys"), None),
        ("keys", Method::POST, format!("{p}/api-keys"), Some(json!({"name": "k"}))),
        ("keys", Method::PATCH, format!("{p}/api-keys/{key_id}"), Some(json!({"enabled": true}))),
        ("keys", Method::POST, format!("{p}/api-keys/{key_id}/rotate"), Some(json!({"grace_seconds": 60}))),
        ("keys", Method::DELETE, format!("{p}/api-keys/{}", "0".repeat(32)), None),
        ("admin", Method::GET, "/api/v1/users".into(), None),
        (
            "admin",
            Method::POST,
            "/api/v1/users".into(),
            Some(json!({"username": format!("u{}", &codegate_domain::ids::new_id()[24..]), "role": "viewer"})),
        ),
        ("admin", Method::PATCH, format!("/api/v1/users/{user_id}"), Some(json!({"disabled": false}))),
        ("admin", Method::GET, "/api/v1/audit-log".into(), None),
    ]
}

#[tokio::test]
async fn every_route_needs_its_scope() {
    let s = TestServer::start().await;
    let pid = s.create_project("matrix").await;
    let key = s.create_key(&pid).await;
    let codes = s.generate(&pid, json!({"count": 3})).await;
    let (_, c) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/codes/by-code/{}", codes[0]), None).await;
    let code_id = c["id"].as_str().unwrap().to_owned();
    let (_, u) = s.admin(Method::POST, "/api/v1/users", Some(json!({"username": "victim", "role": "viewer"}))).await;
    let user_id = u["id"].as_str().unwrap().to_owned();
    let all = ["read", "write", "verify", "keys", "admin"];
    let mut checked = 0;
    for needed in all {
        let without: Vec<&str> = all.iter().copied().filter(|s| *s != needed).collect();
        let (lacking, only) = (token_with(&s, &without).await, token_with(&s, &[needed]).await);
        let other_pid = s.create_project(&format!("doomed-{needed}")).await;
        for (scope, method, path, body) in routes(&pid, &code_id, &key.id, &user_id, &other_pid) {
            if scope != needed {
                continue;
            }
            let (status, p) = s.bearer(&lacking, method.clone(), &path, body.clone()).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} without '{needed}': {p}");
            let (status, p) = s.bearer(&only, method.clone(), &path, body).await;
            assert!(
                status.is_success() || status == StatusCode::NOT_FOUND,
                "{method} {path} with only '{needed}': {status} {p}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, routes("", "", "", "", "").len());
}

#[tokio::test]
async fn roles_bound_what_tokens_can_do() {
    let s = TestServer::start().await;
    let pid = s.create_project("roles").await;
    let (_, viewer) = s
        .admin(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "vera", "role": "viewer", "password": "viewer-pass-123"})),
        )
        .await;
    assert_eq!(viewer["must_change_password"], true);
    // A viewer logs in, changes the forced password, and gets a read token at most.
    let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let login = http
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"username": "vera", "password": "viewer-pass-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let csrf = login.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_owned();
    let (status, p) = common::read(http.get(s.url("/api/v1/projects")).send().await.unwrap()).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("PASSWORD_CHANGE_REQUIRED")));
    let change = json!({"current_password": "viewer-pass-123", "new_password": "a-much-better-one"});
    let (status, p) = common::read(http.post(s.url("/api/v1/auth/password")).json(&change).send().await.unwrap()).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("CSRF_FAILED")),
        "state changes need the CSRF token"
    );
    let resp =
        http.post(s.url("/api/v1/auth/password")).header("X-CSRF-Token", &csrf).json(&change).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (status, list) = common::read(http.get(s.url("/api/v1/projects")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 1);
    let (status, _) = common::read(
        http.post(s.url(&format!("/api/v1/projects/{pid}/codes/generate")))
            .header("X-CSRF-Token", &csrf)
            .json(&json!({"count": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "viewers do not write");
    let (status, _) = common::read(
        http.post(s.url("/api/v1/tokens"))
            .header("X-CSRF-Token", &csrf)
            .json(&json!({"name": "w", "scopes": ["write"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer cannot mint a write token");
    let (status, t) = common::read(
        http.post(s.url("/api/v1/tokens"))
            .header("X-CSRF-Token", &csrf)
            .json(&json!({"name": "r", "scopes": ["read"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    // The last owner cannot be demoted; logout ends the session.
    let (_, users) = s.admin(Method::GET, "/api/v1/users", None).await;
    let owner = users["items"].as_array().unwrap().iter().find(|u| u["role"] == "owner").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, p) = s.admin(Method::PATCH, &format!("/api/v1/users/{owner}"), Some(json!({"role": "viewer"}))).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::CONFLICT, Some("LAST_OWNER")));
    let resp = http.post(s.url("/api/v1/auth/logout")).header("X-CSRF-Token", &csrf).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (status, _) = common::read(http.get(s.url("/api/v1/auth/me")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Wrong passwords and unknown users get the same answer.
    let a = http
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"username": "vera", "password": "nope-nope-nope"}))
        .send()
        .await
        .unwrap();
    let b = http
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"username": "nobody", "password": "nope-nope-nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!((a.status(), b.status()), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
    assert_eq!(a.text().await.unwrap(), b.text().await.unwrap());
}

#[tokio::test]
async fn tokens_are_shown_once_revocable_and_rotatable() {
    let s = TestServer::start().await;
    let pid = s.create_project("tokens").await;
    let other = s.create_project("elsewhere").await;
    let (status, t) = s
        .admin(Method::POST, "/api/v1/tokens", Some(json!({"name": "ci", "scopes": ["read"], "project_id": pid})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = t["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("cgp_"));
    let (_, list) = s.admin(Method::GET, "/api/v1/tokens", None).await;
    assert!(list.to_string().contains(t["display_prefix"].as_str().unwrap()));
    assert!(!list.to_string().contains(&token), "listings never carry the token");
    let (status, _) = s.bearer(&token, Method::GET, &format!("/api/v1/projects/{pid}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.bearer(&token, Method::GET, &format!("/api/v1/projects/{other}"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "restricted to its project");
    let (status, r) =
        s.admin(Method::POST, &format!("/api/v1/tokens/{}/rotate", t["id"].as_str().unwrap()), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let rotated = r["token"].as_str().unwrap().to_owned();
    let (status, _) = s.bearer(&token, Method::GET, &format!("/api/v1/projects/{pid}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old token is revoked");
    let (status, _) = s.bearer(&rotated, Method::GET, &format!("/api/v1/projects/{pid}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.admin(Method::DELETE, &format!("/api/v1/tokens/{}", r["id"].as_str().unwrap()), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.bearer(&rotated, Method::GET, &format!("/api/v1/projects/{pid}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Neither the SQLite file nor a dump of the PostgreSQL database holds the token.
    let stored = common::stored_bytes(s.data_dir.path());
    assert_eq!(common::stored_anywhere(&stored, &rotated), None, "the token is stored in clear");
    assert!(common::stored_anywhere(&stored, &pid).is_some(), "what was searched holds the data");
}

#[tokio::test]
async fn api_keys_rotate_with_a_grace_period_and_disable() {
    let s = TestServer::start().await;
    let pid = s.create_project("keys").await;
    let key = s.create_key(&pid).await;
    let path = format!("/api/v1/projects/{pid}");
    let (status, r) = s
        .admin(Method::POST, &format!("{path}/api-keys/{}/rotate", key.id), Some(json!({"grace_seconds": 3600})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let new = common::Key { secret: r["secret"].as_str().unwrap().into(), ..key.clone() };
    assert_ne!(new.secret, key.secret);
    assert_eq!(s.signed(&key, Method::GET, &path, None).await.0, StatusCode::OK, "old secret inside the grace period");
    assert_eq!(s.signed(&new, Method::GET, &path, None).await.0, StatusCode::OK);
    s.admin(Method::POST, &format!("{path}/api-keys/{}/rotate", key.id), Some(json!({"grace_seconds": 0}))).await;
    assert_eq!(
        s.signed(&new, Method::GET, &path, None).await.0,
        StatusCode::UNAUTHORIZED,
        "no grace: the previous secret stops at once"
    );
    let (_, k) = s.admin(Method::GET, &format!("{path}/api-keys"), None).await;
    assert_eq!(k["items"].as_array().unwrap().len(), 1);
    let key2 = s.create_key(&pid).await;
    let (status, _) =
        s.admin(Method::PATCH, &format!("{path}/api-keys/{}", key2.id), Some(json!({"enabled": false}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s.signed(&key2, Method::GET, &path, None).await.0, StatusCode::UNAUTHORIZED);
}

fn patient() -> reqwest::Client {
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(900)).build().unwrap()
}

async fn export(s: &TestServer, pid: &str, query: &str) -> String {
    let resp = patient()
        .get(s.url(&format!("/api/v1/projects/{pid}/codes/export?{query}")))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-disposition"].to_str().unwrap().contains("attachment"));
    resp.text().await.unwrap()
}

/// Rows of an export without the columns that differ between projects.
fn comparable(csv_text: &str) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let h = r.headers().unwrap().clone();
    let keep: Vec<usize> =
        ["code", "state", "disabled", "use_count", "max_uses", "expires_at", "verified_at", "verified_by", "metadata"]
            .iter()
            .map(|c| h.iter().position(|x| x == *c).unwrap())
            .collect();
    let mut rows: Vec<Vec<String>> =
        r.records().map(|rec| keep.iter().map(|i| rec.as_ref().unwrap()[*i].to_owned()).collect()).collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn export_then_import_keeps_codes_and_states() {
    let s = TestServer::start().await;
    let a = s.create_project("source").await;
    let key = s.create_key(&a).await;
    let codes = s.generate(&a, json!({"count": 12, "metadata": {"plan": "pro"}, "max_uses": 2})).await;
    let verify = format!("/api/v1/projects/{a}/codes/verify");
    for (i, c) in codes[..4].iter().enumerate() {
        for attempt in 0..(1 + i % 2) {
            // Distinct bodies: an identical signed POST inside the window would be a replay.
            let body = json!({"code": c, "verified_by": format!("user {i}.{attempt}")}).to_string();
            let (_, r) = s.signed(&key, Method::POST, &verify, Some(&body)).await;
            assert_eq!(r["success"], true, "{r}");
        }
    }
    let (_, d) = s.admin(Method::GET, &format!("/api/v1/projects/{a}/codes/by-code/{}", codes[5]), None).await;
    s.admin(
        Method::PATCH,
        &format!("/api/v1/projects/{a}/codes/{}", d["id"].as_str().unwrap()),
        Some(json!({"disabled": true})),
    )
    .await;
    let (_, d) = s.admin(Method::GET, &format!("/api/v1/projects/{a}/codes/by-code/{}", codes[6]), None).await;
    s.admin(
        Method::PATCH,
        &format!("/api/v1/projects/{a}/codes/{}", d["id"].as_str().unwrap()),
        Some(json!({"expires_at": now() - 5})),
    )
    .await;

    let exported = export(&s, &a, "format=csv").await;
    assert_eq!(exported.lines().count(), 13, "header + one row per code");
    let b = s.create_project("copy").await;
    let resp = s
        .http
        .post(s.url(&format!("/api/v1/projects/{b}/codes/import")))
        .bearer_auth(&s.token)
        .header("Content-Type", "text/csv")
        .body(exported.clone())
        .send()
        .await
        .unwrap();
    let (status, r) = common::read(resp).await;
    assert_eq!((status, r["imported"].as_u64()), (StatusCode::OK, Some(12)), "{r}");
    let reexported = export(&s, &b, "format=csv").await;
    assert_eq!(comparable(&exported), comparable(&reexported));
    let states: Vec<String> = comparable(&reexported).into_iter().map(|r| r[1].clone()).collect();
    for state in ["used", "unused", "disabled", "expired"] {
        assert!(states.iter().any(|s| s == state), "{state} survives the round trip");
    }
    // JSON Lines and filters.
    let used = export(&s, &b, "format=jsonl&status=used").await;
    assert_eq!(used.lines().count(), 2);
    assert!(used.lines().all(|l| serde_json::from_str::<Value>(l).unwrap()["state"] == "used"));
    let resp = s
        .http
        .post(s.url(&format!("/api/v1/projects/{b}/codes/import")))
        .bearer_auth(&s.token)
        .header("Content-Type", "application/x-ndjson")
        .body("{\"code\": \"JSONL-1\", \"max_uses\": 5}\nnot json\n{\"code\": \"JSONL-1\"}\n")
        .send()
        .await
        .unwrap();
    let (_, r) = common::read(resp).await;
    assert_eq!(r["imported"], 1);
    let lines: Vec<u64> = r["rejected"].as_array().unwrap().iter().map(|x| x["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [2, 3]);
}

#[tokio::test]
async fn bulk_actions_batches_and_logs() {
    let s = TestServer::start().await;
    let pid = s.create_project("bulk").await;
    let key = s.create_key(&pid).await;
    let first = s.generate(&pid, json!({"count": 5, "batch_name": "first"})).await;
    s.generate(&pid, json!({"count": 7, "batch_name": "second", "prefix": "B2B2B2-"})).await;
    let (_, batches) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/batches"), None).await;
    let items = batches["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let second = items.iter().find(|b| b["name"] == "second").unwrap();
    assert_eq!(second["code_count"], 7);
    let (_, r) = s
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{pid}/codes/bulk"),
            Some(json!({"action": "disable", "filter": {"batch_id": second["id"]}})),
        )
        .await;
    assert_eq!(r["affected"], 7);
    let (_, st) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/statistics"), None).await;
    assert_eq!(st["disabled_codes"], 7);
    let (_, r) = s
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{pid}/codes/bulk"),
            // Long enough that none of the first batch's random codes contains it.
            Some(json!({"action": "delete", "filter": {"search": "b2b2b2-"}})),
        )
        .await;
    assert_eq!(r["affected"], 7);
    let (_, st) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/statistics"), None).await;
    assert_eq!((st["total_codes"].as_i64(), st["disabled_codes"].as_i64()), (Some(5), Some(0)));

    s.signed(
        &key,
        Method::POST,
        &format!("/api/v1/projects/{pid}/codes/verify"),
        Some(&json!({"code": first[0], "verified_by": "a"}).to_string()),
    )
    .await;
    s.signed(
        &key,
        Method::POST,
        &format!("/api/v1/projects/{pid}/codes/verify"),
        Some(&json!({"code": first[0], "verified_by": "b"}).to_string()),
    )
    .await;
    let (_, logs) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/redemptions?result=failed"), None).await;
    assert_eq!(logs["total"], 1);
    assert_eq!(logs["items"][0]["reason"], "CODE_ALREADY_USED");
    assert!(logs["items"][0]["credential"].as_str().unwrap().starts_with("api_key:"));
    let (_, o) = s.admin(Method::GET, "/api/v1/overview", None).await;
    let days = o["redemptions_per_day"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    assert_eq!(days.last().unwrap()["count"], 1, "today's redemption");
    assert_eq!(o["totals"]["used_codes"], 1);
    let (_, audit) = s.admin(Method::GET, &format!("/api/v1/audit-log?project_id={pid}&action=codes.bulk"), None).await;
    assert_eq!(audit["total"], 2);
    assert_eq!(audit["items"][0]["actor"], "admin");
}

#[tokio::test]
async fn quotas_answer_402() {
    let s = TestServer::start().await;
    let pid = s.create_project("limited").await;
    let key = s.create_key(&pid).await;
    let (status, p) = s
        .admin(
            Method::PATCH,
            &format!("/api/v1/projects/{pid}"),
            Some(json!({"quotas": {"max_codes": 5, "max_redemptions": 2, "redemption_period_secs": 3600}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let codes = s.generate(&pid, json!({"count": 5})).await;
    let (status, p) =
        s.admin(Method::POST, &format!("/api/v1/projects/{pid}/codes/generate"), Some(json!({"count": 1}))).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::PAYMENT_REQUIRED, Some("QUOTA_EXHAUSTED")));
    let verify = format!("/api/v1/projects/{pid}/codes/verify");
    for c in &codes[..2] {
        let (_, r) = s.signed(&key, Method::POST, &verify, Some(&json!({"code": c}).to_string())).await;
        assert_eq!(r["success"], true);
    }
    let (status, p) = s.signed(&key, Method::POST, &verify, Some(&json!({"code": codes[2]}).to_string())).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::PAYMENT_REQUIRED, Some("QUOTA_EXHAUSTED")));
}

#[tokio::test]
async fn a_million_codes_in_one_request_are_all_unique() {
    let s = TestServer::start().await;
    let pid = s.create_project("million").await;
    // A slow machine may take a while; this is a behaviour test, not a timing one.
    let resp = patient()
        .post(s.url(&format!("/api/v1/projects/{pid}/codes/generate")))
        .bearer_auth(&s.token)
        .json(&json!({"count": 1_000_000, "group": 4}))
        .send()
        .await
        .unwrap();
    let (status, g) = common::read(resp).await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    assert_eq!(g["count"], 1_000_000);
    assert_eq!(g["codes_inline"], false);
    let text = export(&s, &pid, &format!("format=csv&batch_id={}", g["batch_id"].as_str().unwrap())).await;
    let mut unique = HashSet::with_capacity(1_000_000);
    for line in text.lines().skip(1) {
        let code = line.split(',').nth(1).unwrap();
        assert_eq!(code.len(), 14, "XXXX-XXXX-XXXX: {code}");
        assert!(unique.insert(code.replace('-', "")), "duplicate {code}");
    }
    assert_eq!(unique.len(), 1_000_000);
    let (_, st) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/statistics"), None).await;
    assert_eq!(st["total_codes"], 1_000_000);
}

async fn import(s: &TestServer, pid: &str, content_type: &str, body: String) -> Value {
    let resp = patient()
        .post(s.url(&format!("/api/v1/projects/{pid}/codes/import")))
        .bearer_auth(&s.token)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, r) = common::read(resp).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    r
}

fn rejections(r: &Value) -> Vec<(u64, String)> {
    r["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["line"].as_u64().unwrap(), x["reason"].as_str().unwrap().to_owned()))
        .collect()
}

/// More rows than one write chunk (100,000), in no order: rows are written in
/// code order, read again from where the first walk found them, so line numbers,
/// fields of multi-line records, and which of two equal codes is kept must
/// survive that.
#[tokio::test]
async fn a_large_import_keeps_every_row_its_fields_and_its_line() {
    let s = TestServer::start().await;
    let pid = s.create_project("large-import").await;
    const ROWS: u64 = 150_001;
    let mut csv = String::from("code,max_uses,note,metadata\n");
    let mut line = 1;
    let mut expected_rejections = Vec::new();
    for i in 0..ROWS {
        // A permutation of 0..ROWS: the file is not in code order.
        let n = (i * 7919) % ROWS;
        line += 1;
        match i {
            // A quoted field over two lines: the next record starts a line later.
            10 => csv.push_str(&format!("L-{n:07},2,\"first\nsecond\",\"{{\"\"n\"\":{n}}}\"\n")),
            _ if i % 50_000 == 7 => csv.push_str(&format!("L-{n:07},x,,\n")),
            _ => csv.push_str(&format!("L-{n:07},,,\n")),
        }
        if i == 10 {
            line += 1;
        }
        if i % 50_000 == 7 {
            expected_rejections.push((line, "max_uses must be an integer".to_owned()));
        }
    }
    // The same code again, normalised differently, near the end: the later line is the duplicate.
    csv.push_str(&format!("l-{:07},,,\n", 10 * 7919 % ROWS));
    line += 1;
    expected_rejections.push((line, "duplicate code".to_owned()));

    let r = import(&s, &pid, "text/csv", csv).await;
    assert_eq!(rejections(&r), expected_rejections, "{}", r["rejected"]);
    assert_eq!(r["imported"].as_u64(), Some(ROWS - 3));
    let (_, st) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/statistics"), None).await;
    assert_eq!(st["total_codes"].as_u64(), Some(ROWS - 3));
    let n = 10 * 7919 % ROWS;
    let (_, c) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/codes/by-code/L-{n:07}"), None).await;
    assert_eq!((c["max_uses"].as_i64(), &c["metadata"]), (Some(2), &json!({ "n": n })), "{c}");
    let text = export(&s, &pid, "format=csv").await;
    let codes: HashSet<&str> = text.lines().skip(1).map(|l| l.split(',').nth(1).unwrap()).collect();
    assert_eq!(codes.len() as u64, ROWS - 3);

    // JSON Lines, with blank lines between rows: line numbers count them.
    let pid = s.create_project("jsonl-import").await;
    let body = "{\"code\":\"J-1\",\"max_uses\":3}\n\n{\"code\":\"J-0\"}\n{\"code\":\"j-1\"}\n  \nnot json\n{\"code\":\"J-2\",\"metadata\":{\"a\":1}}\n{\"code\":\"J-4\",\"metadata\":{\"a\":1}}\n{\"code\":\"J-3\",\"metadata\":{\"a\":2}}";
    let r = import(&s, &pid, "application/x-ndjson", body.to_owned()).await;
    let rejected = rejections(&r);
    assert_eq!(rejected.iter().map(|x| x.0).collect::<Vec<_>>(), vec![4, 6], "{}", r["rejected"]);
    assert_eq!(rejected[0].1, "duplicate code");
    assert_eq!(r["imported"], 5);
    let (_, c) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/codes/by-code/J-1"), None).await;
    assert_eq!(c["max_uses"], 3, "the earlier of two equal codes is kept: {c}");
    // Each row keeps its own metadata, whatever the rows written next to it carry.
    for (code, metadata) in
        [("J-0", Value::Null), ("J-2", json!({"a": 1})), ("J-3", json!({"a": 2})), ("J-4", json!({"a": 1}))]
    {
        let (_, c) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/codes/by-code/{code}"), None).await;
        assert_eq!(c["metadata"], metadata, "{code}: {c}");
    }
}
