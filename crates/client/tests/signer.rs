//! The public signer (`HmacCredentials::sign`) against every shared vector of
//! `signature_v1.json`, used only through the crate's public API.

use codegate_client::{encode_query, HmacCredentials, RequestParts, SignedHeaders};
use serde_json::Value;

fn vectors() -> Value {
    let path = std::env::var("CODEGATE_VECTORS").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/vectors/signature_v1.json").to_owned()
    });
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("signature vectors at {path} must be readable: {e}"));
    serde_json::from_str(&text).expect("vectors are JSON")
}

/// `path` plus `?query` when there is one: the request target as sent.
fn target(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

fn headers_of(h: &SignedHeaders) -> Vec<(&'static str, String)> {
    h.iter().map(|(name, value)| (name, value.to_owned())).collect()
}

#[test]
fn the_public_signer_reproduces_every_vector() {
    let v = vectors();
    assert_eq!(v["scheme"], "codegate-hmac-v1");
    let list = v["vectors"].as_array().expect("vectors list");
    assert!(list.len() >= 10, "expected the full vector set, got {}", list.len());
    for t in list {
        let name = t["name"].as_str().unwrap();
        let method = t["method"].as_str().unwrap();
        let path = t["path"].as_str().unwrap();
        let body = t["body"].as_str().unwrap_or("").as_bytes();
        let timestamp = t["timestamp"].as_i64().unwrap();
        let nonce = t["nonce"].as_str();
        let expected = t["signature"].as_str().unwrap();
        let signer = HmacCredentials::new("cg_vector", t["secret"].as_str().unwrap());

        // The query exactly as the vector puts it on the wire.
        let wire = t["wire_query"].as_str().unwrap();
        let by_target = signer.sign(RequestParts::new(method, &target(path, wire), body), timestamp, nonce);
        assert_eq!(by_target.signature, expected, "signature of {name} (from the request target)");
        let by_parts = signer.sign(RequestParts { method, path, wire_query: wire, body }, timestamp, nonce);
        assert_eq!(by_parts, by_target, "{name}: RequestParts::new splits path and query as the fields say");

        // The query as this client encodes the vector's parameters, in their order.
        if let Some(params) = t["query_params"].as_object() {
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap())).collect();
            let encoded = encode_query(&pairs);
            let signed = signer.sign(RequestParts::new(method, &target(path, &encoded), body), timestamp, nonce);
            assert_eq!(signed.signature, expected, "signature of {name} (from the query parameters)");
        }

        // The headers to send, named as the server reads them.
        let mut want = vec![
            ("X-API-Key", "cg_vector".to_owned()),
            ("X-Timestamp", timestamp.to_string()),
            ("X-Signature", expected.to_owned()),
        ];
        if let Some(n) = nonce {
            want.push(("X-Nonce", n.to_owned()));
        }
        assert_eq!(headers_of(&by_target), want, "headers of {name}");
    }
    assert!(list.iter().any(|t| t["nonce"].is_string()), "the nonce extension is covered");
}

#[test]
fn signing_is_deterministic_and_covers_every_part() {
    let signer = HmacCredentials::new("cg_k", "secret");
    let base = RequestParts::new("POST", "/api/v1/projects/p/codes/verify", br#"{"code":"A"}"#);
    let at = |req: RequestParts<'_>, ts: i64, nonce: Option<&str>| signer.sign(req, ts, nonce).signature;
    let reference = at(base, 1_767_225_600, None);
    assert_eq!(at(base, 1_767_225_600, None), reference);
    let changed = [
        at(RequestParts { method: "PUT", ..base }, 1_767_225_600, None),
        at(RequestParts { path: "/api/v1/projects/q/codes/verify", ..base }, 1_767_225_600, None),
        at(RequestParts { wire_query: "a=1", ..base }, 1_767_225_600, None),
        at(RequestParts { body: br#"{"code":"B"}"#, ..base }, 1_767_225_600, None),
        at(base, 1_767_225_601, None),
        at(base, 1_767_225_600, Some("n-1")),
        HmacCredentials::new("cg_k", "other").sign(base, 1_767_225_600, None).signature,
    ];
    for (i, sig) in changed.iter().enumerate() {
        assert_ne!(sig, &reference, "change {i} must change the signature");
    }
}

#[test]
fn sign_now_uses_the_clock_and_a_fresh_nonce() {
    let signer = HmacCredentials::new("cg_k", "secret");
    let req = RequestParts::new("GET", "/api/v1/projects/p?x=1", b"");
    let before = codegate_client::unix_now();
    let a = signer.sign_now(req);
    let b = signer.sign_now(req);
    let after = codegate_client::unix_now();
    let ts: i64 = a.timestamp.parse().unwrap();
    assert!((before..=after).contains(&ts), "{ts} within [{before}, {after}]");
    let (na, nb) = (a.nonce.clone().unwrap(), b.nonce.clone().unwrap());
    assert_ne!(na, nb, "every call gets its own nonce");
    assert!((1..=64).contains(&na.len()), "the server takes nonces of 1 to 64 characters");
    // The signature is the one `sign` gives for that timestamp and nonce.
    assert_eq!(signer.sign(req, ts, Some(&na)), a);
    assert_eq!(a.iter().last(), Some(("X-Nonce", na.as_str())));
}
