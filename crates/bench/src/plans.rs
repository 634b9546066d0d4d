//! Prepared, signed requests (DESIGN §2 signing, via `codegate_domain::signing`).
//! Signing happens here, before a step starts, so the load loop only sends.

use crate::load::{common_headers, Item, Mode, Plan};
use bytes::Bytes;
use codegate_domain::signing::{body_sha256_hex, canonical_query, sign, SignedParts};
use hyper::header::HeaderValue;
use hyper::{Method, Uri};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::time::{SystemTime, UNIX_EPOCH};

/// Path segment encoding: everything but the unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Above this many items, signing is split over two threads.
const PARALLEL_SIGNING: usize = 20_000;

/// What a run signs with.
pub struct Signer {
    pub host: String,
    pub api_key: String,
    pub secret: String,
}

fn unix_now() -> String {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs().to_string()
}

fn header(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("signing headers are ASCII")
}

impl Signer {
    fn common(&self, timestamp: &str, json_body: bool) -> hyper::header::HeaderMap {
        let mut extra = vec![("x-api-key", header(&self.api_key)), ("x-timestamp", header(timestamp))];
        if json_body {
            extra.push(("content-type", HeaderValue::from_static("application/json")));
        }
        common_headers(&self.host, &extra)
    }

    fn signature(&self, method: &str, path: &str, query: &str, body: &[u8], ts: &str) -> String {
        let sts = SignedParts {
            method,
            path,
            canonical_query: &canonical_query(query),
            body_sha256: &body_sha256_hex(body),
            timestamp: ts,
            nonce: None,
        }
        .string_to_sign();
        sign(self.secret.as_bytes(), &sts)
    }

    /// One signed verify per code, each sent once.
    pub fn verify_plan(&self, pid: &str, codes: &[String]) -> Plan {
        let ts = unix_now();
        let path = format!("/api/v1/projects/{pid}/codes/verify");
        let uri: Uri = path.parse().expect("verify path is a URI");
        let sign_one = |code: &String| {
            let body = serde_json::json!({"code": code, "verified_by": "codegate-bench"}).to_string().into_bytes();
            let sig = self.signature("POST", &path, "", &body, &ts);
            Item { uri: uri.clone(), body: Bytes::from(body), signature: Some(header(&sig)) }
        };
        let items = if codes.len() > PARALLEL_SIGNING {
            let (a, b) = codes.split_at(codes.len() / 2);
            std::thread::scope(|s| {
                let first = s.spawn(|| a.iter().map(sign_one).collect::<Vec<_>>());
                let second: Vec<Item> = b.iter().map(sign_one).collect();
                let mut items = first.join().expect("signing thread");
                items.extend(second);
                items
            })
        } else {
            codes.iter().map(sign_one).collect()
        };
        Plan { method: Method::POST, common: self.common(&ts, true), items, mode: Mode::Once, expect_success: true }
    }

    /// Signed GETs of the given paths (with queries), cycled through.
    pub fn get_plan(&self, paths_and_queries: &[String]) -> Plan {
        let ts = unix_now();
        let items = paths_and_queries
            .iter()
            .map(|pq| {
                let (path, query) = pq.split_once('?').unwrap_or((pq, ""));
                let sig = self.signature("GET", path, query, b"", &ts);
                Item { uri: pq.parse().expect("read path is a URI"), body: Bytes::new(), signature: Some(header(&sig)) }
            })
            .collect();
        Plan { method: Method::GET, common: self.common(&ts, false), items, mode: Mode::Cycle, expect_success: false }
    }

    /// By-code lookups of these codes.
    pub fn by_code_plan(&self, pid: &str, codes: &[String]) -> Plan {
        let paths: Vec<String> = codes
            .iter()
            .map(|c| format!("/api/v1/projects/{pid}/codes/by-code/{}", utf8_percent_encode(c, SEGMENT)))
            .collect();
        self.get_plan(&paths)
    }
}

/// An unsigned GET (the `/healthz` ceiling).
pub fn unsigned_get_plan(host: &str, path: &str) -> Plan {
    Plan {
        method: Method::GET,
        common: common_headers(host, &[]),
        items: vec![Item { uri: path.parse().expect("path is a URI"), body: Bytes::new(), signature: None }],
        mode: Mode::Cycle,
        expect_success: false,
    }
}
