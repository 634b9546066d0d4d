//! Hostile input against the running server, over raw TCP (so requests can be
//! malformed HTTP) and reqwest. Whatever arrives: never a 5xx, every 4xx the
//! application produces is problem+json, and the server keeps serving.
//!
//! Malformed HTTP that hyper refuses before the application sees it (bad
//! request line, invalid header bytes, oversized head, conflicting
//! Content-Length, URI too long) may be answered with hyper's plain, bodiless
//! 400 / 414 / 431 or a closed connection: those cases are marked `Wire`.

mod common;

use codegate_domain::signing::{body_sha256_hex, canonical_query, sign, SignedParts};
use common::{now, Key, TestServer};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Who may answer a case.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Layer {
    /// The application: a 4xx must be problem+json.
    App,
    /// hyper may refuse it before the application: plain 4xx or a closed connection.
    Wire,
}

#[derive(Debug)]
struct Answer {
    status: Option<u16>,
    content_type: Option<String>,
    body: String,
}

/// Sends raw bytes and reads the answer until the server closes (requests ask it to).
async fn raw(addr: &str, request: &[u8]) -> Result<Answer, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    // The server may close early (e.g. on an oversized head) while we still write.
    let _ = stream.write_all(request).await;
    let mut buf = Vec::new();
    match tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut buf)).await {
        Err(_) => return Err("no answer within 15 s (hang)".into()),
        Ok(Err(e)) if buf.is_empty() => {
            return Ok(Answer { status: None, content_type: None, body: format!("read error: {e}") })
        }
        Ok(_) => {}
    }
    Ok(parse(&buf))
}

fn parse(buf: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok());
    let content_type = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-type").then(|| v.trim().to_owned())
    });
    Answer { status, content_type, body: body.to_owned() }
}

struct Env {
    s: TestServer,
    addr: String,
    pid: String,
    /// A project the hostile PATCHes may change without spoiling the final verify.
    scratch: String,
    key: Key,
    codes: Vec<String>,
}

impl Env {
    /// A request line and headers, `Connection: close` added, with a body.
    fn request(&self, method: &str, target: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(method.as_bytes());
        r.push(b' ');
        r.extend_from_slice(target);
        r.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        r.extend_from_slice(self.addr.as_bytes());
        r.extend_from_slice(b"\r\nConnection: close\r\n");
        for (k, v) in headers {
            r.extend_from_slice(k.as_bytes());
            r.extend_from_slice(b": ");
            r.extend_from_slice(v);
            r.extend_from_slice(b"\r\n");
        }
        if !body.is_empty() || method == "POST" || method == "PATCH" {
            r.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        r.extend_from_slice(b"\r\n");
        r.extend_from_slice(body);
        r
    }

    /// A correctly signed request for `target` (path and query as sent) and `body`.
    fn signed(&self, method: &str, target: &str, body: &[u8], extra: &[(&str, &[u8])]) -> Vec<u8> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let ts = now().to_string();
        let sts = SignedParts {
            method,
            path,
            canonical_query: &canonical_query(query),
            body_sha256: &body_sha256_hex(body),
            timestamp: &ts,
            nonce: None,
        }
        .string_to_sign();
        let sig = sign(self.key.secret.as_bytes(), &sts);
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("X-API-Key", self.key.api_key.as_bytes()),
            ("X-Timestamp", ts.as_bytes()),
            ("X-Signature", sig.as_bytes()),
            ("Content-Type", b"application/json"),
        ];
        headers.extend_from_slice(extra);
        self.request(method, target.as_bytes(), &headers, body)
    }

    fn bearer(&self, method: &str, target: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
        let auth = format!("Bearer {}", self.s.token);
        self.request(
            method,
            target.as_bytes(),
            &[("Authorization", auth.as_bytes()), ("Content-Type", content_type.as_bytes())],
            body,
        )
    }

    fn verify_path(&self) -> String {
        format!("/api/v1/projects/{}/codes/verify", self.pid)
    }

    async fn alive(&self) -> bool {
        matches!(
            raw(&self.addr, &self.request("GET", b"/healthz", &[], b"")).await,
            Ok(Answer { status: Some(200), .. })
        )
    }
}

/// Checks one answer against the rules; returns what is wrong, if anything.
fn judge(layer: Layer, answer: &Result<Answer, String>) -> Option<String> {
    let a = match answer {
        Err(e) => return Some(e.clone()),
        Ok(a) => a,
    };
    match a.status {
        None if layer == Layer::Wire => None,
        None => Some(format!("no HTTP answer ({})", a.body)),
        Some(s) if s >= 500 => Some(format!("{s} {:?} {}", a.content_type, a.body)),
        Some(s) if (400..500).contains(&s) && layer == Layer::App => {
            let problem = a.content_type.as_deref().is_some_and(|c| c.starts_with("application/problem+json"));
            let json: Option<Value> = serde_json::from_str(a.body.trim()).ok();
            let fields = json
                .as_ref()
                .is_some_and(|j| ["type", "title", "status", "detail", "code"].iter().all(|f| j.get(f).is_some()));
            (!problem || !fields).then(|| format!("{s} is not problem+json: {:?} {}", a.content_type, a.body))
        }
        Some(_) => None,
    }
}

async fn setup() -> Env {
    let s = TestServer::start().await;
    let pid = s.create_project("hostile").await;
    let scratch = s.create_project("hostile-scratch").await;
    let key = s.create_key(&pid).await;
    let codes = s.generate(&pid, json!({"count": 20})).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    Env { s, addr, pid, scratch, key, codes }
}

/// Every hostile case: (name, who may answer, request bytes).
fn cases(e: &Env) -> Vec<(String, Layer, Vec<u8>)> {
    use Layer::{App, Wire};
    let pid = &e.pid;
    let verify = e.verify_path();
    let mut c: Vec<(String, Layer, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, layer, bytes| c.push((name.to_owned(), layer, bytes));

    // Malformed HTTP.
    add("garbage request line", Wire, b"GARBAGE\r\n\r\n".to_vec());
    add("binary noise", Wire, (0u8..=255).cycle().take(4096).collect());
    add("unknown method", App, e.request("FROB", b"/healthz", &[], b""));
    add("HTTP/1.0 without Host", App, b"GET /healthz HTTP/1.0\r\n\r\n".to_vec());
    add("NUL in header value", Wire, e.request("GET", b"/healthz", &[("X-Test", b"a\0b")], b""));
    add("non-UTF-8 header value", App, e.request("GET", b"/healthz", &[("X-Test", b"\xff\xfe\xfd")], b""));
    add("non-UTF-8 in path", Wire, e.request("GET", b"/api/v1/projects/\xff\xfe", &[], b""));
    add("1 MB header", Wire, e.request("GET", b"/healthz", &[("X-Big", &vec![b'a'; 1 << 20])], b""));
    let many: Vec<(String, Vec<u8>)> = (0..300).map(|i| (format!("X-H{i}"), b"v".to_vec())).collect();
    let many_refs: Vec<(&str, &[u8])> = many.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    add("300 headers", Wire, e.request("GET", b"/healthz", &many_refs, b""));
    add(
        "70k-char URI",
        Wire,
        e.request("GET", format!("/api/v1/projects/{pid}/codes/by-code/{}", "A".repeat(70_000)).as_bytes(), &[], b""),
    );
    add(
        "conflicting Content-Length",
        Wire,
        format!("POST {verify} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\nConnection: close\r\n\r\nab").into_bytes(),
    );
    add(
        "bad chunk size",
        Wire,
        format!("POST {verify} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZZ\r\nab\r\n0\r\n\r\n").into_bytes(),
    );

    // Credentials: missing, duplicated, malformed.
    add("verify without any credential", App, e.request("POST", verify.as_bytes(), &[], b"{\"code\":\"X\"}"));
    let body = format!("{{\"code\":\"{}\"}}", e.codes[0]);
    let no_sig: Vec<u8> = {
        let ts = now().to_string();
        e.request(
            "POST",
            verify.as_bytes(),
            &[("X-API-Key", e.key.api_key.as_bytes()), ("X-Timestamp", ts.as_bytes())],
            body.as_bytes(),
        )
    };
    add("verify without X-Signature", App, no_sig);
    add(
        "duplicated X-API-Key",
        App,
        e.signed("POST", &verify, body.as_bytes(), &[("X-API-Key", b"0123456789abcdef0123456789abcdef")]),
    );
    add("duplicated X-Signature", App, e.signed("POST", &verify, body.as_bytes(), &[("X-Signature", &[b'0'; 64])]));
    add(
        "non-UTF-8 X-API-Key",
        App,
        e.request(
            "POST",
            verify.as_bytes(),
            &[("X-API-Key", b"\xff\xff"), ("X-Timestamp", b"1"), ("X-Signature", b"00")],
            b"{}",
        ),
    );
    add(
        "non-UTF-8 Authorization",
        App,
        e.request("GET", format!("/api/v1/projects/{pid}").as_bytes(), &[("Authorization", b"Bearer \xff\xfe")], b""),
    );
    add(
        "Authorization without scheme",
        App,
        e.request("GET", format!("/api/v1/projects/{pid}").as_bytes(), &[("Authorization", b"cgp_x")], b""),
    );
    add("duplicated Authorization", App, {
        let good = format!("Bearer {}", e.s.token);
        e.request(
            "GET",
            format!("/api/v1/projects/{pid}").as_bytes(),
            &[("Authorization", good.as_bytes()), ("Authorization", b"Bearer cgp_bogus")],
            b"",
        )
    });
    // now - i64::MIN: the difference whose absolute value does not fit an i64.
    let edge = (i64::MIN + now()).to_string();
    for ts in [
        edge.as_str(),
        "99999999999999999999",
        "-9223372036854775808",
        "-9223372036854775000",
        "9223372036854775807",
        "1e9",
        " ",
        "\u{663}",
    ] {
        add(
            &format!("X-Timestamp {ts:?}"),
            App,
            e.request(
                "POST",
                verify.as_bytes(),
                &[
                    ("X-API-Key", e.key.api_key.as_bytes()),
                    ("X-Timestamp", ts.as_bytes()),
                    ("X-Signature", &[b'a'; 64]),
                ],
                body.as_bytes(),
            ),
        );
    }
    add("oversized X-Nonce", App, e.signed("POST", &verify, body.as_bytes(), &[("X-Nonce", &[b'n'; 5000])]));
    add(
        "oversized Idempotency-Key",
        App,
        e.signed("POST", &verify, b"{\"code\":\"NOPE-1\"}", &[("Idempotency-Key", &[b'k'; 5000])]),
    );
    add(
        "non-UTF-8 User-Agent on verify",
        App,
        e.signed("POST", &verify, b"{\"code\":\"NOPE-2\",\"verified_by\":\"ua\"}", &[("User-Agent", b"\xff\xfebot")]),
    );

    // Bodies: invalid, deep, wrong types, huge numbers, NUL, long.
    for (name, b) in [
        ("invalid JSON", b"{\"code\":".to_vec()),
        ("non-UTF-8 body", b"{\"code\":\"\xff\xfe\"}".to_vec()),
        ("100k [ (over the body limit)", vec![b'['; 100_000]),
        ("60k [ (under the body limit)", vec![b'['; 60_000]),
        ("deep object", "{\"a\":".repeat(10_000).into_bytes()),
        ("code is a number", b"{\"code\":123}".to_vec()),
        ("code is null", b"{\"code\":null}".to_vec()),
        ("code is an array", b"{\"code\":[\"A\"]}".to_vec()),
        ("verified_by is an object", b"{\"code\":\"A\",\"verified_by\":{}}".to_vec()),
        ("JSON array body", b"[1,2,3]".to_vec()),
        ("empty object", b"{}".to_vec()),
        ("NUL in code", b"{\"code\":\"AB\\u0000CD\"}".to_vec()),
        ("raw NUL bytes in body", b"{\"code\":\"AB\0CD\"}".to_vec()),
        ("lone surrogate", b"{\"code\":\"\\ud800\"}".to_vec()),
        ("very long code", format!("{{\"code\":\"{}\"}}", "Z".repeat(60_000)).into_bytes()),
        (
            "very long verified_by",
            format!("{{\"code\":\"NOPE-3\",\"verified_by\":\"{}\"}}", "v".repeat(60_000)).into_bytes(),
        ),
        ("huge number", b"{\"code\":\"A\",\"n\":1e400}".to_vec()),
    ] {
        add(&format!("verify: {name}"), App, e.signed("POST", &verify, &b, &[]));
    }

    // Management bodies with hostile numbers and shapes.
    let generate = format!("/api/v1/projects/{pid}/codes/generate");
    for b in [
        "{\"count\":1e30}",
        "{\"count\":-1}",
        "{\"count\":18446744073709551616}",
        "{\"count\":0}",
        "{\"count\":1,\"max_uses\":9223372036854775807}",
        "{\"count\":1,\"length\":18446744073709551615}",
        "{\"count\":1,\"length\":0}",
        "{\"count\":1,\"group\":0}",
        "{\"count\":1,\"charset\":\"\"}",
        "{\"count\":1,\"charset\":\"A\"}",
        "{\"count\":1,\"expires_at\":-9223372036854775808}",
        "{\"count\":1,\"metadata\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    ] {
        add(&format!("generate {b}"), App, e.bearer("POST", &generate, "application/json", b.as_bytes()));
    }
    for b in [
        "{\"expires_at\":9223372036854775807}",
        "{\"expires_at\":-9223372036854775808}",
        "{\"name\":\"\"}",
        "{\"status\":\"yes\"}",
        "{\"name\":null}",
    ] {
        add(
            &format!("patch project {b}"),
            App,
            e.bearer("PATCH", &format!("/api/v1/projects/{}", e.scratch), "application/json", b.as_bytes()),
        );
    }
    let import = format!("/api/v1/projects/{pid}/codes/import");
    let deep_line = format!("{{\"code\":\"DEEP\",\"metadata\":{}}}\n", "[".repeat(50_000));
    for (name, ct, b) in [
        ("CSV without header", "text/csv", b"".to_vec()),
        ("CSV non-UTF-8", "text/csv", b"code\n\xff\xfe\n".to_vec()),
        ("CSV unbalanced quote", "text/csv", b"code\n\"abc\n".to_vec()),
        ("CSV NUL", "text/csv", b"code\nA\0B\n".to_vec()),
        (
            "CSV huge ints",
            "text/csv",
            b"code,max_uses,expires_at,use_count\nHUGE-1,99999999999999999999,-9223372036854775808,-1\n".to_vec(),
        ),
        ("CSV deep metadata", "text/csv", format!("code,metadata\nDEEP-CSV,\"{}\"\n", "[".repeat(50_000)).into_bytes()),
        ("JSONL deep line", "application/x-ndjson", deep_line.into_bytes()),
        (
            "JSONL wrong types",
            "application/x-ndjson",
            b"{\"code\":1}\n{\"code\":\"OK-WT\",\"max_uses\":\"x\"}\n[]\nnull\n".to_vec(),
        ),
        ("JSONL non-UTF-8", "application/x-ndjson", b"{\"code\":\"\xff\"}\n".to_vec()),
    ] {
        add(&format!("import {name}"), App, e.bearer("POST", &import, ct, &b));
    }

    // Paging and query strings.
    for q in [
        "page=0",
        "page=-1",
        "page=99999999999",
        "page=4294967295",
        "page=4294967296",
        "page_size=0",
        "page_size=101",
        "page_size=-5",
        "page_size=1000000000",
        "page=abc",
        "status=bogus",
        "cursor=%%%",
        "cursor=AAAAAAAAAAAAAAAAAAAAAAAA",
        "cursor=-1",
        "search=%25%5F%5C",
        "page=1&page=2",
        "status=used&status=unused",
        "search=%00",
        "search=%FF%FE",
    ] {
        add(&format!("list ?{q}"), App, e.signed("GET", &format!("/api/v1/projects/{pid}/codes?{q}"), b"", &[]));
    }
    add(
        "list with a 10k search",
        App,
        e.signed("GET", &format!("/api/v1/projects/{pid}/codes?search={}", "s".repeat(10_000)), b"", &[]),
    );

    // Paths: traversal, encoded slashes, NUL, odd ids.
    for path in [
        "/api/v1/projects/..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/api/v1/projects/%2e%2e/codes".to_owned(),
        "/api/v1/../../etc/passwd".to_owned(),
        "/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        format!("/api/v1/projects/{pid}/codes/by-code/..%2F..%2F"),
        format!("/api/v1/projects/{pid}/codes/by-code/%2e%2e"),
        format!("/api/v1/projects/{pid}/codes/by-code/A%2FB"),
        format!("/api/v1/projects/{pid}/codes/by-code/A%00B"),
        format!("/api/v1/projects/{pid}/codes/by-code/%FF%FE"),
        format!("/api/v1/projects/{pid}/codes/by-code/{}", "%41".repeat(5_000)),
        format!("/api/v1/projects/{pid}/codes/{}", "f".repeat(33)),
        format!("/api/v1/projects/{pid}/codes/%00"),
        format!("/api/v1/projects/{}", pid.to_uppercase()),
        "/api/v1/projects/%00".to_owned(),
        "//api//v1//projects".to_owned(),
    ] {
        add(&format!("GET {}", &path[..path.len().min(80)]), App, e.signed("GET", &path, b"", &[]));
    }
    add("DELETE on verify", App, e.signed("DELETE", &verify, b"", &[]));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_input_never_breaks_the_server() {
    let e = setup().await;
    let mut problems = Vec::new();
    for (name, layer, bytes) in cases(&e) {
        let answer = raw(&e.addr, &bytes).await;
        // Shown with --nocapture: what each case is answered.
        match &answer {
            Ok(a) => eprintln!("{name:<50} {:?} {}", a.status, a.content_type.as_deref().unwrap_or("-")),
            Err(err) => eprintln!("{name:<50} {err}"),
        }
        if let Some(wrong) = judge(layer, &answer) {
            problems.push(format!("{name}: {wrong}"));
        }
        if answer.as_ref().is_ok_and(|a| a.body.contains("root:x:0:0")) {
            problems.push(format!("{name}: served /etc/passwd"));
        }
        if !e.alive().await {
            panic!("the server stopped answering /healthz after '{name}'; so far: {problems:#?}");
        }
    }

    // Same checks through a regular client, for what reqwest can express.
    let http = &e.s.http;
    let huge_page = http
        .get(e.s.url(&format!("/api/v1/projects/{}/codes?page=18446744073709551616", e.pid)))
        .bearer_auth(&e.s.token)
        .send()
        .await
        .unwrap();
    if huge_page.status().is_server_error() {
        problems.push(format!("reqwest huge page: {}", huge_page.status()));
    }

    // Afterwards the server still does its job.
    let (status, r) =
        e.s.signed(&e.key, Method::POST, &e.verify_path(), Some(&json!({"code": e.codes[1]}).to_string())).await;
    assert_eq!(status, 200);
    assert_eq!(r["success"], true, "{r}");
    assert!(problems.is_empty(), "hostile input found {} problem(s):\n{}", problems.len(), problems.join("\n"));
}

/// Slow clients (slowloris): headers, then a byte a second. The server keeps
/// serving everyone else meanwhile, never answers 5xx, and drops the slow
/// client within the bound instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_do_not_hold_the_server() {
    let e = setup().await;
    const BOUND: Duration = Duration::from_secs(15);
    let verify = e.verify_path();
    let slow_body =
        format!("POST {verify} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{{");
    let slow_head = format!("POST {verify} HTTP/1.1\r\nHost: x\r\nX-Padding: ");
    let mut tasks = Vec::new();
    for (name, start) in [("slow body", slow_body), ("slow headers", slow_head)] {
        let addr = e.addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(&addr).await.unwrap();
            stream.write_all(start.as_bytes()).await.unwrap();
            let began = Instant::now();
            let mut buf = Vec::new();
            // A byte a second until the server gives up on us, or the bound.
            while began.elapsed() < BOUND {
                let mut chunk = [0u8; 4096];
                match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut chunk)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return (name, true, buf),
                    Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                    Err(_) => {}
                }
                if stream.write_all(b"a").await.is_err() {
                    return (name, true, buf);
                }
            }
            (name, false, buf)
        }));
    }
    // Meanwhile everyone else is served.
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(3) {
        assert!(e.alive().await, "healthz while slow clients hold connections");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut held = Vec::new();
    for t in tasks {
        let (name, dropped, answer) = t.await.unwrap();
        let a = parse(&answer);
        if let Some(s) = a.status {
            assert!(s < 500, "{name}: answered {s} {}", a.body);
        }
        if !dropped {
            held.push(name);
        }
    }
    assert!(e.alive().await);
    assert!(held.is_empty(), "slow clients held a connection for {BOUND:?} without being timed out: {held:?}");
}
