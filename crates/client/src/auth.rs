//! Credentials and request signing (`codegate-hmac-v1`, DESIGN §2).

use codegate_domain::signing::{body_sha256_hex, canonical_query, form_encode, sign, SignedParts};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// A project's API key and its secret; every request is signed with them.
#[derive(Clone)]
pub struct HmacCredentials {
    pub api_key: String,
    pub secret: String,
}

impl std::fmt::Debug for HmacCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacCredentials").field("api_key", &self.api_key).field("secret", &"…").finish()
    }
}

/// A personal access token (`cgp_…`), sent as `Authorization: Bearer`.
#[derive(Clone)]
pub struct BearerToken(pub String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(…)")
    }
}

#[derive(Clone, Debug)]
pub enum Credentials {
    Hmac(HmacCredentials),
    Bearer(BearerToken),
}

impl From<HmacCredentials> for Credentials {
    fn from(c: HmacCredentials) -> Self {
        Credentials::Hmac(c)
    }
}

impl From<BearerToken> for Credentials {
    fn from(t: BearerToken) -> Self {
        Credentials::Bearer(t)
    }
}

/// `X-API-Key`: the project's API key (the header names are matched without regard to case).
pub const API_KEY_HEADER: &str = "X-API-Key";
/// `X-Timestamp`: Unix seconds; the server refuses it outside its signature window.
pub const TIMESTAMP_HEADER: &str = "X-Timestamp";
/// `X-Signature`: lower-case hex HMAC-SHA256 of the string to sign.
pub const SIGNATURE_HEADER: &str = "X-Signature";
/// `X-Nonce`: optional, 1 to 64 characters; when sent it is signed as a sixth
/// line and the server refuses it a second time within the window.
pub const NONCE_HEADER: &str = "X-Nonce";

/// The headers that authenticate one signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub api_key: String,
    pub timestamp: String,
    pub signature: String,
    pub nonce: Option<String>,
}

impl SignedHeaders {
    /// The headers to put on the request, as `(name, value)`: `X-API-Key`,
    /// `X-Timestamp`, `X-Signature`, then `X-Nonce` when the request was signed
    /// with one (a nonce that is signed but not sent fails verification).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        [
            (API_KEY_HEADER, self.api_key.as_str()),
            (TIMESTAMP_HEADER, self.timestamp.as_str()),
            (SIGNATURE_HEADER, self.signature.as_str()),
        ]
        .into_iter()
        .chain(self.nonce.as_deref().map(|n| (NONCE_HEADER, n)))
    }
}

/// What a signature covers: the request exactly as it goes on the wire.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// Percent-encoded path, no query.
    pub path: &'a str,
    /// The raw query as sent (`a=1&b=2`), empty when there is none.
    pub wire_query: &'a str,
    pub body: &'a [u8],
}

impl<'a> RequestParts<'a> {
    /// The parts of a request target as sent: `path_and_query` is the
    /// percent-encoded path with its raw query, if any (`/api/v1/…/codes?page=1`).
    pub fn new(method: &'a str, path_and_query: &'a str, body: &'a [u8]) -> Self {
        let (path, wire_query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        RequestParts { method, path, wire_query, body }
    }
}

impl HmacCredentials {
    pub fn new(api_key: impl Into<String>, secret: impl Into<String>) -> Self {
        HmacCredentials { api_key: api_key.into(), secret: secret.into() }
    }

    /// Signs a request at `timestamp` (Unix seconds), with an optional nonce
    /// line: the headers [`Client`](crate::Client) sends, for callers that
    /// build their own requests (or sign them ahead of time, as the benchmark
    /// does). Deterministic: the same inputs give the same signature.
    ///
    /// Without a nonce the server refuses a second POST/PUT/PATCH/DELETE with
    /// the same signature, and lets signed reads repeat; with one it refuses
    /// any second use of that nonce within its window.
    pub fn sign(&self, req: RequestParts<'_>, timestamp: i64, nonce: Option<&str>) -> SignedHeaders {
        let timestamp = timestamp.to_string();
        let string_to_sign = SignedParts {
            method: req.method,
            path: req.path,
            canonical_query: &canonical_query(req.wire_query),
            body_sha256: &body_sha256_hex(req.body),
            timestamp: &timestamp,
            nonce,
        }
        .string_to_sign();
        SignedHeaders {
            api_key: self.api_key.clone(),
            signature: sign(self.secret.as_bytes(), &string_to_sign),
            timestamp,
            nonce: nonce.map(str::to_owned),
        }
    }

    /// Signs a request now, with a fresh random nonce: what [`Client`](crate::Client)
    /// does for every attempt of every call.
    pub fn sign_now(&self, req: RequestParts<'_>) -> SignedHeaders {
        let nonce = uuid::Uuid::new_v4().to_string();
        self.sign(req, unix_now(), Some(&nonce))
    }
}

/// The current time in Unix seconds, as `X-Timestamp` carries it.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The wire query for these pairs, form-encoded in the order given.
pub fn encode_query<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k.as_ref()), form_encode(v.as_ref())))
        .collect::<Vec<_>>()
        .join("&")
}

/// Everything but the unreserved `A-Z a-z 0-9 - . _ ~` is percent-encoded.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One path segment (e.g. a code) with every non-unreserved byte encoded.
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, PATH_SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        let path = std::env::var("CODEGATE_VECTORS").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/vectors/signature_v1.json").to_owned()
        });
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("signature vectors at {path} must be readable: {e}"));
        serde_json::from_str(&text).expect("vectors are JSON")
    }

    #[test]
    fn signs_every_shared_vector() {
        let v = vectors();
        let list = v["vectors"].as_array().expect("vectors list");
        assert!(list.len() >= 10, "expected the full vector set");
        for t in list {
            let name = t["name"].as_str().unwrap();
            let creds = HmacCredentials::new("cg_test", t["secret"].as_str().unwrap());
            // The query as this client would put it on the wire, when given as pairs.
            let wire = match t["query_params"].as_object() {
                Some(params) => {
                    let pairs: Vec<(&str, &str)> =
                        params.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap())).collect();
                    let wire = encode_query(&pairs);
                    assert_eq!(
                        canonical_query(&wire),
                        t["canonical_query"].as_str().unwrap(),
                        "canonical query of {name}"
                    );
                    wire
                }
                None => t["wire_query"].as_str().unwrap().to_owned(),
            };
            let headers = creds.sign(
                RequestParts {
                    method: t["method"].as_str().unwrap(),
                    path: t["path"].as_str().unwrap(),
                    wire_query: &wire,
                    body: t["body"].as_str().unwrap_or("").as_bytes(),
                },
                t["timestamp"].as_i64().unwrap(),
                t["nonce"].as_str(),
            );
            assert_eq!(headers.signature, t["signature"].as_str().unwrap(), "signature of {name}");
            assert_eq!(headers.timestamp, t["timestamp"].as_i64().unwrap().to_string());
            assert_eq!(headers.nonce.as_deref(), t["nonce"].as_str());
            assert_eq!(headers.api_key, "cg_test");
        }
    }

    #[test]
    fn encodes_codes_as_the_vectors_do() {
        let by_code = vectors()["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "get_code_by_code_encoded_path")
            .cloned()
            .expect("by-code vector");
        let path = by_code["path"].as_str().unwrap();
        assert!(path.ends_with(&format!("/by-code/{}", encode_segment("A/B C#1"))));
        assert_eq!(encode_segment("Az09-._~"), "Az09-._~");
        assert_eq!(encode_segment("兑+"), "%E5%85%91%2B");
    }

    #[test]
    fn debug_hides_secrets() {
        let c = HmacCredentials::new("k", "very-secret");
        assert!(!format!("{c:?}").contains("very-secret"));
        assert!(!format!("{:?}", BearerToken("cgp_x".into())).contains("cgp_x"));
    }
}
