//! Helpers of the abuse-protection tests: a `codegate serve` started with the
//! rate limits ON (the shared harness switches them off), its log captured,
//! and signed requests with full control over nonce and headers.
#![allow(dead_code)]

use codegate_domain::signing::{body_sha256_hex, canonical_query, sign, SignedParts};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::common::{init, now, Key, BIN};

/// A running server with limits as configured by `envs`.
pub struct Limited {
    pub child: Child,
    pub base: String,
    pub token: String,
    pub dir: PathBuf,
    pub http: reqwest::Client,
    /// Everything the server wrote on stderr.
    pub log: Arc<Mutex<String>>,
    _temp: Option<Arc<DataDir>>,
}

/// The data directory of a server and its replicas; with
/// `CODEGATE_TEST_DATABASE_URL` set, also drops the PostgreSQL database the
/// harness made for it once the last of them is gone.
pub struct DataDir(tempfile::TempDir);

impl DataDir {
    pub fn new() -> DataDir {
        DataDir(tempfile::tempdir().unwrap())
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        crate::common::drop_test_database(self.0.path());
    }
}

/// An answer with its headers.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn secs(&self, name: &str) -> u64 {
        self.header(name).unwrap_or_else(|| panic!("answer lacks {name}")).parse().unwrap()
    }
}

pub async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, headers, body }
}

/// `codegate init` in a fresh directory, then `serve` with `envs` (limits on unless they say otherwise).
pub fn start(envs: &[(&str, &str)]) -> Limited {
    let temp = Arc::new(DataDir::new());
    let token = init(temp.path())["token"].as_str().unwrap().to_owned();
    let mut s = spawn(temp.path(), &token, envs);
    s._temp = Some(temp);
    s
}

/// A second server on the same data directory (a replica).
pub fn replica(of: &Limited, envs: &[(&str, &str)]) -> Limited {
    let mut s = spawn(&of.dir, &of.token, envs);
    s._temp = of._temp.clone();
    s
}

/// The child is handed to the returned `Limited`, whose `Drop` kills and waits for it.
#[allow(clippy::zombie_processes)]
pub fn spawn(dir: &Path, token: &str, envs: &[(&str, &str)]) -> Limited {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir);
    for var in ["CODEGATE_RATE_LIMITS", "CODEGATE_REDIS_URL", "CODEGATE_TRUSTED_PROXIES", "CODEGATE_DATABASE_URL"] {
        cmd.env_remove(var);
    }
    // The same database as `init` used: SQLite in `dir`, or the PostgreSQL
    // database the harness made for `dir` when CODEGATE_TEST_DATABASE_URL is set.
    cmd.envs(crate::common::noted_database_url(dir).map(|url| ("CODEGATE_DATABASE_URL", url)));
    cmd.env("CODEGATE_LOG", "info");
    let mut child = cmd.envs(envs.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            let status = child.wait();
            std::thread::sleep(Duration::from_millis(200));
            panic!("server exited ({status:?}) before listening; log:\n{}", log.lock().unwrap());
        }
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            std::thread::spawn(move || for _ in stdout.lines() {});
            let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
            return Limited {
                child,
                base: addr.to_owned(),
                token: token.to_owned(),
                dir: dir.to_owned(),
                http,
                log,
                _temp: None,
            };
        }
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Limited {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stops with SIGTERM and waits, so the log is complete.
    pub fn stop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(200));
    }

    pub async fn bearer(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.bearer_as(&self.token.clone(), method, path, body).await
    }

    pub async fn bearer_as(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.unwrap()).await
    }

    /// A management call that must succeed (it waits out a 429 if one comes).
    pub async fn admin_ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        for _ in 0..10 {
            let a = self.bearer(method.clone(), path, body.clone()).await;
            if a.status == StatusCode::TOO_MANY_REQUESTS {
                tokio::time::sleep(Duration::from_secs(a.secs("retry-after"))).await;
                continue;
            }
            assert!(a.status.is_success(), "{method} {path}: {} {}", a.status, a.body);
            return a.body;
        }
        panic!("{method} {path} stayed rate limited");
    }

    pub async fn project(&self, name: &str) -> String {
        let p = self.admin_ok(Method::POST, "/api/v1/projects", Some(json!({"name": name}))).await;
        p["id"].as_str().unwrap().to_owned()
    }

    pub async fn key(&self, pid: &str) -> Key {
        let k = self.admin_ok(Method::POST, &format!("/api/v1/projects/{pid}/api-keys"), Some(json!({}))).await;
        Key {
            id: k["id"].as_str().unwrap().into(),
            api_key: k["api_key"].as_str().unwrap().into(),
            secret: k["secret"].as_str().unwrap().into(),
        }
    }

    pub async fn codes(&self, pid: &str, count: u32) -> Vec<String> {
        let g = self
            .admin_ok(Method::POST, &format!("/api/v1/projects/{pid}/codes/generate"), Some(json!({"count": count})))
            .await;
        g["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect()
    }

    pub fn signed(&self, key: &Key, method: Method, path: &str, body: &str) -> Signed {
        Signed::new(self, key, method, path, body)
    }
}

/// A signed request being built; `send` can be called again to replay it byte for byte.
pub struct Signed {
    pub http: reqwest::Client,
    pub url: String,
    pub method: Method,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Signed {
    fn new(s: &Limited, key: &Key, method: Method, path_and_query: &str, body: &str) -> Signed {
        let mut r = Signed {
            http: s.http.clone(),
            url: s.url(path_and_query),
            method,
            body: body.to_owned(),
            headers: vec![
                ("X-API-Key".into(), key.api_key.clone()),
                ("Content-Type".into(), "application/json".into()),
            ],
        };
        r.sign(key, path_and_query, None);
        r
    }

    /// (Re-)signs with the current time and the given nonce.
    pub fn sign(&mut self, key: &Key, path_and_query: &str, nonce: Option<&str>) {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let ts = now().to_string();
        let sts = SignedParts {
            method: self.method.as_str(),
            path,
            canonical_query: &canonical_query(query),
            body_sha256: &body_sha256_hex(self.body.as_bytes()),
            timestamp: &ts,
            nonce,
        }
        .string_to_sign();
        self.headers.retain(|(k, _)| !["X-Timestamp", "X-Signature", "X-Nonce"].contains(&k.as_str()));
        self.headers.push(("X-Timestamp".into(), ts));
        self.headers.push(("X-Signature".into(), sign(key.secret.as_bytes(), &sts)));
        if let Some(n) = nonce {
            self.headers.push(("X-Nonce".into(), n.to_owned()));
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Signed {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends the request as it stands; again and again if called again.
    pub fn send(&self) -> impl std::future::Future<Output = Answer> + 'static {
        let mut req = self.http.request(self.method.clone(), &self.url).body(self.body.clone());
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        async move { answer(req.send().await.unwrap()).await }
    }
}

/// A fresh random nonce.
pub fn nonce() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut bytes).unwrap();
    hex::encode(bytes)
}

/// Asserts the rate-limit headers an answer must carry, for `policy` with `limit` per `window` s.
pub fn assert_rate_headers(a: &Answer, policy: &str, limit: u32, window: u32) {
    let p = a.header("ratelimit-policy").unwrap_or_else(|| panic!("no RateLimit-Policy: {:?}", a.headers));
    assert!(p.contains(&format!("\"{policy}\";q={limit};w={window}")), "RateLimit-Policy {p}");
    let r = a.header("ratelimit").expect("RateLimit header");
    assert!(r.contains(&format!("\"{policy}\";r=")), "RateLimit {r}");
    for h in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
        assert!(a.header(h).is_some(), "answer lacks {h}: {:?}", a.headers);
    }
}

/// The `t` of `policy` in the RateLimit header.
pub fn reset_of(a: &Answer, policy: &str) -> u64 {
    let r = a.header("ratelimit").unwrap();
    let member = r.split(',').map(str::trim).find(|m| m.starts_with(&format!("\"{policy}\""))).unwrap();
    member.split(';').find_map(|p| p.strip_prefix("t=")).unwrap().parse().unwrap()
}

/// Asserts a 429 of `policy` with problem `code`, and returns its `Retry-After`.
pub fn assert_limited(a: &Answer, policy: &str, code: &str) -> u64 {
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    assert_eq!(a.body["code"], code, "{}", a.body);
    assert_eq!(a.body["policy"], policy, "{}", a.body);
    assert_eq!(a.body["status"], 429);
    let retry_after = a.secs("retry-after");
    assert!(retry_after >= 1);
    assert!(retry_after >= reset_of(a, policy), "Retry-After is never earlier than t");
    assert_eq!(a.header("x-ratelimit-remaining"), Some("0"));
    retry_after
}

/// Waits `secs` (a server's Retry-After).
pub async fn wait(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

/// Sends a raw RESP command to the Redis of the tests; returns the raw reply.
pub fn redis_command(args: &[&str]) -> String {
    let mut stream = TcpStream::connect(redis_addr()).expect("Redis for the tests at CODEGATE_TEST_REDIS_ADDR");
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(req.as_bytes()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The local Redis the suite uses (scripts/services.sh starts it).
pub fn redis_addr() -> String {
    std::env::var("CODEGATE_TEST_REDIS_ADDR").unwrap_or_else(|_| "127.0.0.1:6379".into())
}

pub fn redis_url() -> String {
    format!("redis://{}", redis_addr())
}

/// A Redis key prefix no other test uses.
pub fn unique_prefix(name: &str) -> String {
    format!("codegate-test-{name}-{}", nonce())
}
