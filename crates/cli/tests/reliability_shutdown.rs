//! Graceful shutdown: on SIGTERM the server stops accepting connections,
//! answers what is in flight (a slow import upload, concurrent verifies)
//! completely, and exits 0. Every success it answered is kept.

mod common;

use common::{init, now, signed_request, spawn_serve, Key};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IMPORT_ROWS: usize = 400;

async fn admin(http: &reqwest::Client, base: &str, token: &str, path: &str, body: Value) -> Value {
    let resp = http.post(format!("{base}{path}")).bearer_auth(token).json(&body).send().await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// Waits (bounded) for the child to exit by itself.
async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    panic!("the server did not exit within 15 s of SIGTERM");
}

/// Reads one HTTP/1.1 answer to the end (the request asked to close).
async fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("the in-flight upload is answered")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status =
        text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let token = init(dir.path())["token"].as_str().unwrap().to_owned();
    let (mut child, base, _) = spawn_serve(dir.path(), &[]);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();

    let project = admin(&http, &base, &token, "/api/v1/projects", json!({"name": "drain"})).await;
    let pid = project["id"].as_str().unwrap().to_owned();
    let k = admin(&http, &base, &token, &format!("/api/v1/projects/{pid}/api-keys"), json!({})).await;
    let key = Key {
        id: k["id"].as_str().unwrap().into(),
        api_key: k["api_key"].as_str().unwrap().into(),
        secret: k["secret"].as_str().unwrap().into(),
    };
    let generated =
        admin(&http, &base, &token, &format!("/api/v1/projects/{pid}/codes/generate"), json!({"count": 2000})).await;
    let codes: Arc<Vec<String>> =
        Arc::new(generated["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect());

    // A slow import: headers and half the body now, the rest after SIGTERM.
    let addr = base.trim_start_matches("http://").to_owned();
    let mut csv = String::from("code\n");
    for i in 0..IMPORT_ROWS {
        csv.push_str(&format!("DRAIN-IMPORT-{i:05}\n"));
    }
    let head = format!(
        "POST /api/v1/projects/{pid}/codes/import HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        csv.len()
    );
    let mut upload = TcpStream::connect(&addr).await.unwrap();
    let (first, rest) = csv.as_bytes().split_at(csv.len() / 2);
    upload.write_all(head.as_bytes()).await.unwrap();
    upload.write_all(first).await.unwrap();
    upload.flush().await.unwrap();

    // Concurrent verifies that run through the shutdown.
    let successes = Arc::new(Mutex::new(Vec::<String>::new()));
    let answered = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (codes, successes, answered, next, stop, key, base) = (
                codes.clone(),
                successes.clone(),
                answered.clone(),
                next.clone(),
                stop.clone(),
                key.clone(),
                base.clone(),
            );
            let path = format!("/api/v1/projects/{pid}/codes/verify");
            tokio::spawn(async move {
                // A fresh client per task: no pooled connection outlives its request.
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let Some(code) = codes.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    let body = json!({"code": code, "verified_by": "drain"}).to_string();
                    let sent = signed_request(&http, &base, &key, Method::POST, &path, Some(&body), now()).send().await;
                    let resp = match sent {
                        Ok(r) => r,
                        // Refused or closed before the server took the request: not in flight.
                        Err(e) if e.is_connect() || e.is_request() => return,
                        Err(e) => panic!("verify failed oddly: {e}"),
                    };
                    // Once the server has answered a status line, the answer must be complete.
                    assert_eq!(resp.status(), StatusCode::OK);
                    let answer: Value = resp.json().await.expect("a complete answer");
                    answered.fetch_add(1, Ordering::Relaxed);
                    if answer["success"] == true {
                        successes.lock().unwrap().push(code.clone());
                    }
                }
            })
        })
        .collect();

    for _ in 0..400 {
        if answered.load(Ordering::Relaxed) >= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at_sigterm = answered.load(Ordering::Relaxed);
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The listener is closed: a new connection is refused while the upload is still open.
    assert!(child.try_wait().unwrap().is_none(), "the server waits for the in-flight upload");
    let fresh = TcpStream::connect(&addr).await;
    assert!(fresh.is_err(), "new connections are refused after SIGTERM");

    upload.write_all(rest).await.unwrap();
    upload.flush().await.unwrap();
    let (status, body) = read_answer(&mut upload).await;
    assert_eq!(status, 200, "the in-flight import is answered: {body}");
    let report: Value = serde_json::from_str(&body).expect("the import answer is whole");
    assert_eq!(report["imported"], IMPORT_ROWS, "{report}");

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!("verifies answered: {at_sigterm} before SIGTERM, {} in all", answered.load(Ordering::Relaxed));
    let status = wait_exit(&mut child).await;
    assert!(status.success(), "exit status after SIGTERM: {status:?}");

    // Restart on the same data: every success answered is used, the import is there.
    let (mut child, base, _) = spawn_serve(dir.path(), &[]);
    let successes = successes.lock().unwrap().clone();
    assert!(!successes.is_empty());
    for code in &successes {
        let path = format!("/api/v1/projects/{pid}/codes/verify");
        let body = json!({"code": code, "verified_by": "after-restart"}).to_string();
        let resp = signed_request(&http, &base, &key, Method::POST, &path, Some(&body), now()).send().await.unwrap();
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["error_code"], "CODE_ALREADY_USED", "{code}: {answer}");
    }
    // The database (the SQLite file, or the test's PostgreSQL database) read directly.
    let imported = common::db_int(dir.path(), "SELECT COUNT(*) FROM codes WHERE code LIKE 'DRAIN-IMPORT-%'", &[]);
    assert_eq!(imported as usize, IMPORT_ROWS);
    let used = common::db_int(dir.path(), "SELECT COUNT(*) FROM codes WHERE use_count >= max_uses", &[]);
    assert_eq!(used as usize, successes.len(), "exactly the answered successes are used");
    child.kill().unwrap();
    child.wait().unwrap();
    common::drop_test_database(dir.path());
}
