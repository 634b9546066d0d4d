//! Slow and oversized requests are cut off, and no secret is ever stored in
//! clear or written to the log.

mod abuse_support;
mod common;

use abuse_support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads what the server sends within `wait`: `None` while it stays silent,
/// `Some(bytes)` once it answered or closed (empty: closed).
async fn server_spoke(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Err(_) => None,
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        Ok(Err(_)) => Some(vec![]),
    }
}

#[tokio::test]
async fn a_slowloris_request_head_is_cut_off() {
    let s = start(&[("CODEGATE_HEADER_READ_TIMEOUT", "1")]);
    let mut stream = TcpStream::connect(s.addr()).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // One header line every quarter second, never the blank line; at most 80 of them.
    let mut cut_off = None;
    for i in 0..80 {
        if stream.write_all(format!("X-Trickle-{i}: a\r\n").as_bytes()).await.is_err() {
            cut_off = Some(vec![]);
            break;
        }
        if let Some(answer) = server_spoke(&mut stream, Duration::from_millis(250)).await {
            cut_off = Some(answer);
            break;
        }
    }
    let answer = cut_off.expect("the server waited for a request head trickled over 20 s");
    let text = String::from_utf8_lossy(&answer);
    assert!(!text.starts_with("HTTP/1.1 2"), "a trickled head was served: {text}");
    // Everyone else is still served.
    let ok = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_stalled_body_gets_408() {
    let s = start(&[("CODEGATE_BODY_READ_TIMEOUT", "1")]);
    let mut stream = TcpStream::connect(s.addr()).await.unwrap();
    let head =
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{\"username\":").await.unwrap();
    // Then nothing: the server must give up on its own (the 30 s cap only stops a hung test).
    let answer = server_spoke(&mut stream, Duration::from_secs(30)).await.expect("no answer to a stalled body");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("REQUEST_TIMEOUT"), "{text}");
}

#[tokio::test]
async fn oversized_heads_and_bodies_are_refused() {
    let s = start(&[]);
    let big = "a".repeat(40 * 1024);
    let a = s.http.get(s.url("/healthz")).header("X-Big", big).send().await.unwrap();
    assert_eq!(a.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let pid = s.project("big").await;
    let key = s.key(&pid).await;
    let body = json!({"code": "x".repeat(70 * 1024)}).to_string();
    let r = s.signed(&key, Method::POST, &format!("/api/v1/projects/{pid}/codes/verify"), &body).send().await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
}

#[tokio::test]
async fn no_secret_is_stored_in_clear_or_logged() {
    let temp = abuse_support::DataDir::new();
    let admin = init(temp.path());
    let (user, password, token) =
        (admin["username"].as_str().unwrap(), admin["password"].as_str().unwrap(), admin["token"].as_str().unwrap());
    let mut s = spawn(temp.path(), token, &[("CODEGATE_LOG", "debug")]);
    let pid = s.project("secrets").await;
    let key = s.key(&pid).await;
    let created = s.admin_ok(Method::POST, "/api/v1/tokens", Some(json!({"name": "ci", "scopes": ["read"]}))).await;
    let second_token = created["token"].as_str().unwrap().to_owned();
    let login = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    let session = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
    // Use every credential once, so each passes through the code that checks it.
    let codes = s.codes(&pid, 1).await;
    let v = s
        .signed(
            &key,
            Method::POST,
            &format!("/api/v1/projects/{pid}/codes/verify"),
            &json!({"code": codes[0]}).to_string(),
        )
        .send()
        .await;
    assert_eq!(v.body["success"], true);
    assert_eq!(s.bearer_as(&second_token, Method::GET, "/api/v1/projects", None).await.status, StatusCode::OK);
    s.stop();

    let secrets = [
        ("API secret", key.secret.as_str()),
        ("admin token", token),
        ("second token", second_token.as_str()),
        ("password", password),
        ("session cookie", session.as_str()),
    ];
    // The files of the data directory (the SQLite file and its WAL), or those
    // and a dump of the PostgreSQL database.
    let stored = common::stored_bytes(temp.path());
    let log = s.log_text();
    assert!(log.contains("DEBUG") || log.contains("debug"), "the server logged at debug level");
    for (what, secret) in secrets {
        assert!(secret.len() >= 16, "{what} looks like a secret");
        for (file, bytes) in &stored {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "the {what} is stored in clear in {file}");
        }
        assert!(!log.contains(secret), "the {what} appears in the server log");
    }
}
