//! The client against the real server: requests signed by hand with the public
//! signer are accepted exactly as the server expects (the benchmark sends its
//! verify and read traffic this way), and the management calls that load a
//! benchmark's data give typed answers.

mod common;

use codegate_client::{
    encode_segment, unix_now, Client, CodeFilter, ExportOptions, FileFormat, GenerateRequest, HmacCredentials,
    NewProject, RequestParts, SignedHeaders,
};
use common::TestServer;
use futures_util::TryStreamExt;
use serde_json::{json, Value};

/// Sends a request with the given signed headers; returns (status, JSON answer).
async fn send(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    target: &str,
    body: &[u8],
    h: &SignedHeaders,
) -> (u16, Value) {
    let mut req = http.request(method.parse().unwrap(), format!("{base}{target}"));
    for (name, value) in h.iter() {
        req = req.header(name, value);
    }
    if !body.is_empty() {
        req = req.header("Content-Type", "application/json").body(body.to_vec());
    }
    let resp = req.send().await.expect("the server answers");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn requests_signed_with_the_public_signer_pass_the_servers_checks() {
    let s = TestServer::start();
    let admin = Client::with_token(&s.base, &s.token).unwrap();
    let pid = admin.create_project(&NewProject { name: "signer".into(), ..Default::default() }).await.unwrap().id;
    let project = admin.project(&pid);
    let key = project.create_api_key(Some("hand-signed")).await.unwrap();
    let signer = HmacCredentials::new(key.api_key.clone(), key.secret.expect("a new key shows its secret"));
    let csv = "code\nPLAIN-1\nPLAIN-2\nPLAIN-3\n\"A/B C#1?x=兑%\"\n";
    let imported = project.import(FileFormat::Csv, std::io::Cursor::new(csv.as_bytes().to_vec()), None).await.unwrap();
    assert_eq!(imported.imported, 4, "{imported:?}");

    let http = reqwest::Client::new();
    let verify = format!("/api/v1/projects/{}/codes/verify", encode_segment(&pid));
    let body = |code: &str| json!({"code": code, "verified_by": "hand"}).to_string().into_bytes();

    // Without a nonce, as the benchmark signs: accepted once, then refused as a replay.
    let b1 = body("PLAIN-1");
    let h = signer.sign(RequestParts::new("POST", &verify, &b1), unix_now(), None);
    assert!(h.nonce.is_none());
    let (status, answer) = send(&http, &s.base, "POST", &verify, &b1, &h).await;
    assert_eq!((status, &answer["success"]), (200, &json!(true)), "{answer}");
    let (status, answer) = send(&http, &s.base, "POST", &verify, &b1, &h).await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("REPLAYED_REQUEST")), "{answer}");

    // With a nonce: accepted, and that nonce is refused on any other request.
    let b2 = body("PLAIN-2");
    let h = signer.sign(RequestParts::new("POST", &verify, &b2), unix_now(), Some("nonce-1"));
    let (status, answer) = send(&http, &s.base, "POST", &verify, &b2, &h).await;
    assert_eq!((status, &answer["success"]), (200, &json!(true)), "{answer}");
    let b3 = body("PLAIN-3");
    let h = signer.sign(RequestParts::new("POST", &verify, &b3), unix_now(), Some("nonce-1"));
    let (status, answer) = send(&http, &s.base, "POST", &verify, &b3, &h).await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("REPLAYED_REQUEST")), "{answer}");
    // sign_now: the clock and a fresh nonce, as the client's own calls.
    let h = signer.sign_now(RequestParts::new("POST", &verify, &b3));
    let (status, answer) = send(&http, &s.base, "POST", &verify, &b3, &h).await;
    assert_eq!((status, &answer["success"]), (200, &json!(true)), "{answer}");

    // Signed reads without a nonce may repeat; the query and the encoded path are signed as sent.
    let list = format!("/api/v1/projects/{}/codes?page_size=2&status=used&page=1", encode_segment(&pid));
    let h = signer.sign(RequestParts::new("GET", &list, b""), unix_now(), None);
    for _ in 0..2 {
        let (status, answer) = send(&http, &s.base, "GET", &list, b"", &h).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["total"], 3, "{answer}");
    }
    let odd = format!("/api/v1/projects/{}/codes/by-code/{}", encode_segment(&pid), encode_segment("A/B C#1?x=兑%"));
    let h = signer.sign(RequestParts::new("GET", &odd, b""), unix_now(), None);
    let (status, answer) = send(&http, &s.base, "GET", &odd, b"", &h).await;
    assert_eq!((status, answer["code"].as_str()), (200, Some("A/B C#1?x=兑%")), "{answer}");

    // What the server checks beyond the signature itself.
    let b4 = body("PLAIN-4");
    let wrong = HmacCredentials::new(key.api_key.clone(), "not-the-secret");
    let h = wrong.sign(RequestParts::new("POST", &verify, &b4), unix_now(), None);
    let (status, answer) = send(&http, &s.base, "POST", &verify, &b4, &h).await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("INVALID_SIGNATURE")), "{answer}");
    let h = signer.sign(RequestParts::new("POST", &verify, &b4), unix_now() - 24 * 3600, None);
    let (status, answer) = send(&http, &s.base, "POST", &verify, &b4, &h).await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("TIMESTAMP_OUT_OF_WINDOW")), "{answer}");
    // Signed for one body, sent with another.
    let h = signer.sign(RequestParts::new("POST", &verify, &b4), unix_now(), None);
    let (status, answer) = send(&http, &s.base, "POST", &verify, &body("PLAIN-5"), &h).await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("INVALID_SIGNATURE")), "{answer}");

    let stats = project.get_statistics().await.unwrap();
    assert_eq!(stats.counts.used_codes, 3, "three verifies went through");
}

/// The calls that load a benchmark run, through the typed API.
#[tokio::test]
async fn loading_a_project_through_the_typed_api() {
    let s = TestServer::start();
    let admin = Client::with_token(&s.base, &s.token).unwrap();
    let new = NewProject { name: "load".into(), description: Some("codegate-bench".into()), ..Default::default() };
    let created = admin.create_project(&new).await.unwrap();
    assert_eq!((created.name.as_str(), created.description.as_str()), ("load", "codegate-bench"));
    let project = admin.project(&created.id);

    let key = project.create_api_key(Some("bench")).await.unwrap();
    assert_eq!(key.project_id, created.id);
    let secret = key.secret.clone().expect("a new key shows its secret once");
    assert!(!key.api_key.is_empty() && !secret.is_empty() && key.api_key != secret, "{key:?}");
    assert!(project.list_api_keys().await.unwrap().iter().all(|k| k.secret.is_none()), "never shown again");

    let generated = project
        .generate(&GenerateRequest {
            count: 250,
            batch_name: Some("bench".into()),
            metadata: Some(json!({"plan": "pro"})),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(generated.count, 250);

    // One code twice in the file: imported once, the second line rejected.
    let csv = "code\nIMPORT-1\nIMPORT-2\nIMPORT-1\n";
    let imported = project.import(FileFormat::Csv, std::io::Cursor::new(csv.as_bytes().to_vec()), None).await.unwrap();
    assert_eq!((imported.imported, imported.rejected.len()), (2, 1), "{imported:?}");

    let sdk = Client::with_api_key(&s.base, &key.api_key, &secret).unwrap().project(&created.id);
    assert!(sdk.verify_code("IMPORT-2", None).await.unwrap().success);

    // The unused codes by export and by the cursor walk: the same set.
    let unused = CodeFilter { status: Some("unused".into()), ..Default::default() };
    let mut csv = Vec::new();
    let written = project
        .export(&ExportOptions { format: FileFormat::Csv, filter: unused.clone() }, &mut csv, None)
        .await
        .unwrap();
    assert_eq!(written, csv.len() as u64);
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    let col = reader.headers().unwrap().iter().position(|h| h == "code").expect("a code column");
    let mut exported: Vec<String> = reader.records().map(|r| r.unwrap()[col].to_owned()).collect();
    let mut walked = Vec::new();
    let pages = project.code_pages(unused);
    futures_util::pin_mut!(pages);
    while let Some(page) = pages.try_next().await.unwrap() {
        walked.extend(page.items.into_iter().map(|c| c.code));
    }
    exported.sort_unstable();
    walked.sort_unstable();
    assert_eq!(exported.len(), 251, "250 generated and IMPORT-1");
    assert!(!exported.contains(&"IMPORT-2".to_owned()), "a redeemed code is not unused");
    assert_eq!(walked, exported);
    let generated_inline: Vec<&String> = generated.codes.iter().collect();
    assert!(generated_inline.iter().all(|c| exported.contains(c)));

    let stats = project.get_statistics().await.unwrap();
    assert_eq!((stats.counts.total_codes, stats.counts.used_codes), (252, 1));
}
