//! The SDK API over HTTP against the real server: signing, shapes, outcomes, errors.

mod common;

use common::{now, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn project_with_codes(s: &TestServer, n: u64) -> (String, common::Key, Vec<String>) {
    let pid = s.create_project("shop").await;
    let key = s.create_key(&pid).await;
    let codes = s.generate(&pid, json!({"count": n})).await;
    (pid, key, codes)
}

#[tokio::test]
async fn signed_reads_answer_the_sdk_shapes() {
    let s = TestServer::start().await;
    let (pid, key, codes) = project_with_codes(&s, 25).await;

    let (status, p) = s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p["id"], pid.as_str());
    assert_eq!(p["status"], true);
    assert_eq!(p["statistics"]["total_codes"], 25);
    assert_eq!(p["statistics"]["unused_codes"], 25);

    let (status, page) =
        s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes?page_size=10&page=3"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 25);
    assert_eq!(page["total_pages"], 3);
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    // Newest first: the last page holds the first codes generated.
    let last_page: Vec<&str> = page["items"].as_array().unwrap().iter().map(|i| i["code"].as_str().unwrap()).collect();
    let mut first_five: Vec<&str> = codes[..5].iter().map(String::as_str).collect();
    first_five.reverse();
    assert_eq!(last_page, first_five);
    for field in
        ["id", "code", "status", "is_disabled", "is_expired", "expires_at", "verified_at", "verified_by", "created_at"]
    {
        assert!(page["items"][0].get(field).is_some(), "item has {field}");
    }

    // Keys in any order sign the same canonical query.
    let (status, _) = s
        .signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes?status=unused&page_size=5&page=1"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn cursor_walks_every_code_once() {
    let s = TestServer::start().await;
    let (pid, key, codes) = project_with_codes(&s, 45).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor.as_ref().map_or(String::new(), |c| format!("&cursor={c}"));
        let (status, page) =
            s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes?page_size=20{q}"), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(page["items"].as_array().unwrap().iter().map(|i| i["code"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    seen.sort();
    let mut all = codes.clone();
    all.sort();
    assert_eq!(seen, all);
}

#[tokio::test]
async fn verify_outcomes_and_metadata() {
    let s = TestServer::start().await;
    let pid = s.create_project("plans").await;
    let key = s.create_key(&pid).await;
    let codes = s.generate(&pid, json!({"count": 2, "metadata": {"plan": "pro", "months": 12}, "max_uses": 2})).await;
    let verify = |code: &str| json!({"code": code, "verified_by": "user-1"}).to_string();
    let path = format!("/api/v1/projects/{pid}/codes/verify");

    // Typed loosely: lower case with dashes and spaces still matches.
    let sloppy = format!("{}-{} ", codes[0][..6].to_lowercase(), &codes[0][6..]);
    let (status, r) = s.signed(&key, Method::POST, &path, Some(&verify(&sloppy))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["code"], codes[0].as_str(), "the code is shown as generated");
    assert_eq!(r["metadata"], json!({"plan": "pro", "months": 12}));
    assert!(r["verified_at"].as_i64().unwrap() >= now() - 5);
    assert_eq!(r["error_code"], serde_json::Value::Null);

    let (_, r) = s.signed(&key, Method::POST, &path, Some(&verify(&codes[0]))).await;
    assert_eq!(r["success"], true, "second of two uses");
    let (status, r) = s.signed(&key, Method::POST, &path, Some(&verify(&codes[0]))).await;
    assert_eq!(status, StatusCode::OK, "business failures are 200");
    assert_eq!(r["success"], false);
    assert_eq!(r["error_code"], "CODE_ALREADY_USED");

    let (_, r) = s.signed(&key, Method::POST, &path, Some(&verify("NOPE-NOPE"))).await;
    assert_eq!(r["error_code"], "CODE_NOT_FOUND");
    assert_eq!(r["code_id"], serde_json::Value::Null);

    // Every attempt on an existing code is logged.
    let (_, detail) =
        s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes/by-code/{}", codes[0]), None).await;
    let results: Vec<&str> =
        detail["verification_logs"].as_array().unwrap().iter().map(|l| l["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["failed", "success", "success"]);
    assert_eq!(detail["use_count"], 2);
    assert_eq!(detail["status"], true);
}

#[tokio::test]
async fn malformed_input_is_a_clear_422() {
    let s = TestServer::start().await;
    let (pid, key, _) = project_with_codes(&s, 1).await;
    let path = format!("/api/v1/projects/{pid}/codes/verify");
    for body in ["", "{", "[]", "{\"code\": 5}", "{\"verified_by\": \"x\"}", "{\"code\": \"\"}"] {
        let (status, p) = s.signed(&key, Method::POST, &path, Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "body {body:?}: {p}");
        assert_eq!(p["code"], "VALIDATION_FAILED");
    }
    let long = json!({"code": "A".repeat(300)}).to_string();
    let (status, _) = s.signed(&key, Method::POST, &path, Some(&long)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for q in ["page=0", "page=x", "page_size=0", "page_size=101", "status=gone", "cursor=%%%"] {
        let (status, p) = s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes?{q}"), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "query {q}: {p}");
    }
}

#[tokio::test]
async fn signature_checks() {
    let s = TestServer::start().await;
    let (pid, key, _) = project_with_codes(&s, 1).await;
    let path = format!("/api/v1/projects/{pid}");

    let bad = common::Key { secret: "0".repeat(64), ..key.clone() };
    let (status, p) = s.signed(&bad, Method::GET, &path, None).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("INVALID_SIGNATURE")));

    let (status, p) = s.signed_at(&key, Method::GET, &path, None, now() - 301).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("TIMESTAMP_OUT_OF_WINDOW")));
    let (status, _) = s.signed_at(&key, Method::GET, &path, None, now() - 200).await;
    assert_eq!(status, StatusCode::OK);

    let unknown = common::Key { api_key: "f".repeat(32), ..key.clone() };
    let (status, p) = s.signed(&unknown, Method::GET, &path, None).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("INVALID_API_KEY")));

    // A body that differs from the signed one is refused.
    let req = common::signed_request(
        &s.http,
        &s.base,
        &key,
        Method::POST,
        &format!("{path}/codes/verify"),
        Some("{\"code\":\"A\"}"),
        now(),
    )
    .body("{\"code\":\"B\"}");
    let (status, p) = common::read(req.send().await.unwrap()).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("INVALID_SIGNATURE")));

    let (status, p) = common::read(s.http.get(s.url(&path)).send().await.unwrap()).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("MISSING_CREDENTIALS")));

    // Another project's id with this key: 403, whether or not that project exists.
    let other = s.create_project("other").await;
    let (status, _) = s.signed(&key, Method::GET, &format!("/api/v1/projects/{other}"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A deleted key stops working at once.
    let (status, _) = s.admin(Method::DELETE, &format!("/api/v1/projects/{pid}/api-keys/{}", key.id), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.signed(&key, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn encoded_paths_sign_as_sent_or_decoded() {
    let s = TestServer::start().await;
    let pid = s.create_project("odd codes").await;
    let key = s.create_key(&pid).await;
    let csv = "code\nA/B C#1\nx+y\n";
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
    assert_eq!((status, r["imported"].as_u64()), (StatusCode::OK, Some(2)), "{r}");

    let encoded = format!("/api/v1/projects/{pid}/codes/by-code/A%2FB%20C%231");
    let (status, c) = s.signed(&key, Method::GET, &encoded, None).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["code"], "A/B C#1");

    // A client that signs the decoded path is accepted too.
    let ts = now().to_string();
    let decoded = format!("/api/v1/projects/{pid}/codes/by-code/A/B C#1");
    let sts = codegate_domain::signing::SignedParts {
        method: "GET",
        path: &decoded,
        canonical_query: "",
        body_sha256: codegate_domain::signing::EMPTY_BODY_SHA256,
        timestamp: &ts,
        nonce: None,
    }
    .string_to_sign();
    let resp = s
        .http
        .get(s.url(&encoded))
        .header("X-API-Key", &key.api_key)
        .header("X-Timestamp", &ts)
        .header("X-Signature", codegate_domain::signing::sign(key.secret.as_bytes(), &sts))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let (status, c) = s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes/by-code/x%2By"), None).await;
    assert_eq!((status, c["code"].as_str()), (StatusCode::OK, Some("x+y")));
    let (status, _) = s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes/by-code/missing"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) =
        s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes/{}", "0".repeat(32)), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn disabled_and_expired_projects() {
    let s = TestServer::start().await;
    let (pid, key, codes) = project_with_codes(&s, 2).await;
    let verify_path = format!("/api/v1/projects/{pid}/codes/verify");
    let (status, _) = s.admin(Method::PATCH, &format!("/api/v1/projects/{pid}"), Some(json!({"status": false}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, p) = s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}"), None).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("PROJECT_DISABLED")));
    let (status, r) = s.signed(&key, Method::POST, &verify_path, Some(&json!({"code": codes[0]}).to_string())).await;
    assert_eq!((status, r["error_code"].as_str()), (StatusCode::OK, Some("PROJECT_DISABLED")));
    // An admin still reads a disabled project.
    let (status, _) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}"), None).await;
    assert_eq!(status, StatusCode::OK);

    // Expired project, code without an expiry of its own: the code is expired.
    let (status, _) = s
        .admin(
            Method::PATCH,
            &format!("/api/v1/projects/{pid}"),
            Some(json!({"status": true, "expires_at": now() - 10})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, r) = s.signed(&key, Method::POST, &verify_path, Some(&json!({"code": codes[0]}).to_string())).await;
    assert_eq!(r["error_code"], "CODE_EXPIRED");
    // A code with a later expiry of its own meets the project's expiry.
    let (_, detail) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/codes/by-code/{}", codes[1]), None).await;
    let code_id = detail["id"].as_str().unwrap();
    let (status, _) = s
        .admin(
            Method::PATCH,
            &format!("/api/v1/projects/{pid}/codes/{code_id}"),
            Some(json!({"expires_at": now() + 3600})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, r) = s.signed(&key, Method::POST, &verify_path, Some(&json!({"code": codes[1]}).to_string())).await;
    assert_eq!(r["error_code"], "PROJECT_EXPIRED");
    // Clearing the expiry with null reopens it.
    let (_, p) = s.admin(Method::PATCH, &format!("/api/v1/projects/{pid}"), Some(json!({"expires_at": null}))).await;
    assert_eq!(p["expires_at"], serde_json::Value::Null);
    let (_, r) = s.signed(&key, Method::POST, &verify_path, Some(&json!({"code": codes[1]}).to_string())).await;
    assert_eq!(r["success"], true);
}

#[tokio::test]
async fn statistics_count_every_state() {
    let s = TestServer::start().await;
    let (pid, key, codes) = project_with_codes(&s, 10).await;
    let verify_path = format!("/api/v1/projects/{pid}/codes/verify");
    for c in &codes[..3] {
        let (_, r) =
            s.signed(&key, Method::POST, &verify_path, Some(&json!({"code": c, "verified_by": "u"}).to_string())).await;
        assert_eq!(r["success"], true);
    }
    for (i, c) in codes[3..7].iter().enumerate() {
        let (_, d) = s.admin(Method::GET, &format!("/api/v1/projects/{pid}/codes/by-code/{c}"), None).await;
        let patch = if i < 2 { json!({"disabled": true}) } else { json!({"expires_at": now() - 1}) };
        let (status, _) = s
            .admin(Method::PATCH, &format!("/api/v1/projects/{pid}/codes/{}", d["id"].as_str().unwrap()), Some(patch))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, st) = s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/statistics"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            st["total_codes"].as_i64(),
            st["used_codes"].as_i64(),
            st["disabled_codes"].as_i64(),
            st["expired_codes"].as_i64(),
            st["unused_codes"].as_i64()
        ),
        (Some(10), Some(3), Some(2), Some(2), Some(3))
    );
    assert_eq!(st["usage_rate"], 0.3);
    let recent: Vec<&str> =
        st["recent_verifications"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert_eq!(recent, [codes[2].as_str(), codes[1].as_str(), codes[0].as_str()]);
    for (status_filter, expected) in [("used", 3), ("disabled", 2), ("expired", 2), ("unused", 3)] {
        let (_, page) =
            s.signed(&key, Method::GET, &format!("/api/v1/projects/{pid}/codes?status={status_filter}"), None).await;
        assert_eq!(page["total"], expected, "{status_filter}");
        assert_eq!(page["items"].as_array().unwrap().len(), expected, "{status_filter}");
    }
}
