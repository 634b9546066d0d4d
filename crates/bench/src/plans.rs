//! Prepared, signed requests. The headers come from the client crate's signer
//! (`codegate_client::HmacCredentials::sign`, the one every client call uses),
//! run before a step starts, so the load loop only sends.

use crate::load::{common_headers, Item, Mode, Plan};
use bytes::Bytes;
use codegate_client::{encode_segment, unix_now, HmacCredentials, RequestParts, SignedHeaders, SIGNATURE_HEADER};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Uri};

/// Above this many items, signing is split over two threads.
const PARALLEL_SIGNING: usize = 20_000;

/// What a run signs with.
pub struct Signer {
    pub host: String,
    pub credentials: HmacCredentials,
}

fn header(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("signing headers are ASCII")
}

/// The name the per-request signature goes under.
fn signature_header() -> HeaderName {
    HeaderName::from_bytes(SIGNATURE_HEADER.as_bytes()).expect("a valid header name")
}

impl Signer {
    /// Signs one request at `timestamp`. No nonce: a verify is still sent only
    /// once (the server refuses a repeated POST signature), and the read plans
    /// may repeat a signed GET for the whole step.
    fn sign(&self, method: &str, path_and_query: &str, body: &[u8], timestamp: i64) -> SignedHeaders {
        self.credentials.sign(RequestParts::new(method, path_and_query, body), timestamp, None)
    }

    /// The headers every request of a plan shares: all the signed ones but
    /// the signature (the same key and timestamp sign the whole plan).
    fn common(&self, signed: &SignedHeaders, json_body: bool) -> hyper::header::HeaderMap {
        let mut extra: Vec<(HeaderName, HeaderValue)> = signed
            .iter()
            .filter(|(name, _)| *name != SIGNATURE_HEADER)
            .map(|(name, value)| (HeaderName::from_bytes(name.as_bytes()).expect("a valid header name"), header(value)))
            .collect();
        if json_body {
            extra.push((hyper::header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
        }
        common_headers(&self.host, &extra)
    }

    /// A plan of signed requests, one item per input, made by `request`.
    fn plan<T: Sync>(
        &self,
        method: Method,
        inputs: &[T],
        request: impl Fn(&T) -> (Uri, Bytes) + Sync,
        mode: Mode,
    ) -> Plan {
        let ts = unix_now();
        let signed = |input: &T| {
            let (uri, body) = request(input);
            let headers = self.sign(method.as_str(), uri.path_and_query().map_or("/", |pq| pq.as_str()), &body, ts);
            (uri, body, headers)
        };
        let item = |input: &T| {
            let (uri, body, headers) = signed(input);
            Item { uri, body, signature: Some(header(&headers.signature)) }
        };
        let items = if inputs.len() > PARALLEL_SIGNING {
            let (a, b) = inputs.split_at(inputs.len() / 2);
            std::thread::scope(|s| {
                let first = s.spawn(|| a.iter().map(item).collect::<Vec<_>>());
                let second: Vec<Item> = b.iter().map(item).collect();
                let mut items = first.join().expect("signing thread");
                items.extend(second);
                items
            })
        } else {
            inputs.iter().map(item).collect()
        };
        let json_body = method == Method::POST;
        let common = match inputs.first() {
            Some(first) => self.common(&signed(first).2, json_body),
            None => common_headers(&self.host, &[]),
        };
        Plan {
            method,
            common,
            signature_header: signature_header(),
            items,
            mode,
            // Verify answers must also say `"success":true`.
            expect_success: json_body,
        }
    }

    /// One signed verify per code, each sent once.
    pub fn verify_plan(&self, pid: &str, codes: &[String]) -> Plan {
        // One URI shared by every item (a reference-counted clone).
        let uri: Uri = format!("/api/v1/projects/{}/codes/verify", encode_segment(pid)).parse().expect("a URI");
        let request = |code: &String| {
            let body = serde_json::json!({"code": code, "verified_by": "codegate-bench"}).to_string();
            (uri.clone(), Bytes::from(body))
        };
        self.plan(Method::POST, codes, request, Mode::Once)
    }

    /// Signed GETs of the given paths (with queries), cycled through.
    pub fn get_plan(&self, paths_and_queries: &[String]) -> Plan {
        let request = |pq: &String| (pq.parse().expect("a read target is a URI"), Bytes::new());
        self.plan(Method::GET, paths_and_queries, request, Mode::Cycle)
    }

    /// By-code lookups of these codes.
    pub fn by_code_plan(&self, pid: &str, codes: &[String]) -> Plan {
        let paths: Vec<String> = codes
            .iter()
            .map(|c| format!("/api/v1/projects/{}/codes/by-code/{}", encode_segment(pid), encode_segment(c)))
            .collect();
        self.get_plan(&paths)
    }
}

/// An unsigned GET (the `/healthz` ceiling).
pub fn unsigned_get_plan(host: &str, path: &str) -> Plan {
    Plan {
        method: Method::GET,
        common: common_headers(host, &[]),
        signature_header: signature_header(),
        items: vec![Item { uri: path.parse().expect("path is a URI"), body: Bytes::new(), signature: None }],
        mode: Mode::Cycle,
        expect_success: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer { host: "127.0.0.1:1".into(), credentials: HmacCredentials::new("cg_bench", "s3cret") }
    }

    /// Every prepared request carries exactly the headers the client's signer
    /// gives for it, under the names the server reads.
    #[test]
    fn plans_carry_the_client_signers_headers() {
        let s = signer();
        let plan = s.verify_plan("p1", &["AAAA".to_owned(), "BBBB".to_owned()]);
        assert_eq!(plan.items.len(), 2);
        let ts: i64 = plan.common["x-timestamp"].to_str().unwrap().parse().unwrap();
        assert_eq!(plan.common["x-api-key"], "cg_bench");
        assert_eq!(plan.common["content-type"], "application/json");
        assert!(plan.common.get("x-nonce").is_none());
        assert_eq!(plan.signature_header, "x-signature");
        for item in &plan.items {
            assert_eq!(item.uri.path(), "/api/v1/projects/p1/codes/verify");
            let expected = s.credentials.sign(RequestParts::new("POST", item.uri.path(), &item.body), ts, None);
            assert_eq!(item.signature.as_ref().unwrap(), expected.signature.as_str());
        }
        assert_ne!(plan.items[0].signature, plan.items[1].signature, "distinct bodies, distinct signatures");

        let reads = s.get_plan(&["/api/v1/projects/p1/codes?page_size=20&page=3".to_owned()]);
        let ts: i64 = reads.common["x-timestamp"].to_str().unwrap().parse().unwrap();
        let item = &reads.items[0];
        assert_eq!(item.uri.query(), Some("page_size=20&page=3"));
        let expected = s.credentials.sign(RequestParts::new("GET", &item.uri.to_string(), b""), ts, None);
        assert_eq!(item.signature.as_ref().unwrap(), expected.signature.as_str());
        assert!(reads.common.get("content-type").is_none());
    }

    #[test]
    fn by_code_paths_are_percent_encoded_as_the_client_does() {
        let plan = signer().by_code_plan("p1", &["A/B C#1".to_owned()]);
        assert_eq!(plan.items[0].uri.path(), "/api/v1/projects/p1/codes/by-code/A%2FB%20C%231");
    }
}
