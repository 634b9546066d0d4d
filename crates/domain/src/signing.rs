//! Request signing, scheme `codegate-hmac-v1` (DESIGN §2).
//!
//! string to sign = METHOD \n PATH \n CANONICAL_QUERY \n SHA256_HEX(BODY) \n TIMESTAMP [\n NONCE]
//! signature      = lower-case hex HMAC-SHA256(secret as UTF-8 bytes, string to sign)

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const EMPTY_BODY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The canonical form of a raw query string: pairs decoded, sorted by key (then
/// value) in code point order, re-encoded as `application/x-www-form-urlencoded`
/// the way Python's `urllib.parse.urlencode` does, joined with `&`.
pub fn canonical_query(raw_query: &str) -> String {
    if raw_query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(raw_query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    // UTF-8 byte order is code point order, which is how Python sorts str.
    pairs.sort();
    let mut out = String::with_capacity(raw_query.len() + 8);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        form_encode_into(k, &mut out);
        out.push('=');
        form_encode_into(v, &mut out);
    }
    out
}

/// Python's `quote_plus(s, safe='')`: unreserved `A-Z a-z 0-9 _ . - ~` kept,
/// space as `+`, every other byte of the UTF-8 form as `%XX`.
pub fn form_encode_into(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xf) as usize] as char);
            }
        }
    }
}

pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    form_encode_into(s, &mut out);
    out
}

pub fn body_sha256_hex(body: &[u8]) -> String {
    if body.is_empty() {
        return EMPTY_BODY_SHA256.to_owned();
    }
    digest_hex(Sha256::digest(body).into())
}

/// Lower-case hex of a SHA-256 digest. `hex::encode` builds its string one
/// `char` at a time (~2,000 instructions more per signed request, callgrind);
/// the slice form writes the 64 bytes straight into a buffer.
fn digest_hex(digest: [u8; 32]) -> String {
    let mut out = [0u8; 64];
    // Only a length mismatch fails, and the array types rule that out.
    let _ = hex::encode_to_slice(digest, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The parts of a request that are signed.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    pub method: &'a str,
    /// The path as sent on the wire (percent-encoded), without the query.
    pub path: &'a str,
    pub canonical_query: &'a str,
    pub body_sha256: &'a str,
    pub timestamp: &'a str,
    pub nonce: Option<&'a str>,
}

impl SignedParts<'_> {
    pub fn string_to_sign(&self) -> String {
        // Joined rather than formatted (one allocation): this runs for every signed request.
        let parts =
            [self.method, self.path, self.canonical_query, self.body_sha256, self.timestamp, self.nonce.unwrap_or("")];
        parts[..if self.nonce.is_some() { 6 } else { 5 }].join("\n")
    }
}

fn mac(secret: &[u8], string_to_sign: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    mac
}

/// Lower-case hex signature.
pub fn sign(secret: &[u8], string_to_sign: &str) -> String {
    digest_hex(mac(secret, string_to_sign).finalize().into_bytes().into())
}

/// Constant-time comparison of a provided hex signature with the expected one.
pub fn signature_matches(secret: &[u8], string_to_sign: &str, provided_hex: &str) -> bool {
    let expected = mac(secret, string_to_sign).finalize().into_bytes();
    let mut provided = [0u8; 32];
    // Hex in either case decodes alike.
    if provided_hex.len() != 64 || hex::decode_to_slice(provided_hex, &mut provided).is_err() {
        return false;
    }
    expected.as_slice().ct_eq(&provided).into()
}

/// The percent-decoded form of a path, for clients that sign that form.
/// `None` when decoding changes nothing or yields invalid UTF-8.
pub fn decoded_path(path: &str) -> Option<String> {
    if !path.contains('%') {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8().ok()?;
    (decoded != path).then(|| decoded.into_owned())
}

/// Whether a timestamp lies within `window` seconds of `now`.
pub fn timestamp_in_window(timestamp: i64, now: i64, window: i64) -> bool {
    // abs_diff: no overflow for hostile timestamps such as i64::MIN.
    timestamp.abs_diff(now) <= window.unsigned_abs()
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
    fn reproduces_every_shared_vector() {
        let v = vectors();
        assert_eq!(v["empty_body_sha256"], EMPTY_BODY_SHA256);
        let list = v["vectors"].as_array().expect("vectors list");
        assert!(list.len() >= 10, "expected the full vector set");
        for t in list {
            let name = t["name"].as_str().unwrap();
            let body = t["body"].as_str().unwrap_or("");
            let cq = canonical_query(t["wire_query"].as_str().unwrap());
            assert_eq!(cq, t["canonical_query"].as_str().unwrap(), "canonical query of {name}");
            let body_hash = body_sha256_hex(body.as_bytes());
            assert_eq!(body_hash, t["body_sha256"].as_str().unwrap(), "body hash of {name}");
            let ts = t["timestamp"].as_i64().unwrap().to_string();
            let parts = SignedParts {
                method: t["method"].as_str().unwrap(),
                path: t["path"].as_str().unwrap(),
                canonical_query: &cq,
                body_sha256: &body_hash,
                timestamp: &ts,
                nonce: t["nonce"].as_str(),
            };
            let sts = parts.string_to_sign();
            assert_eq!(sts, t["string_to_sign"].as_str().unwrap(), "string to sign of {name}");
            let secret = t["secret"].as_str().unwrap().as_bytes();
            let expected = t["signature"].as_str().unwrap();
            assert_eq!(sign(secret, &sts), expected, "signature of {name}");
            assert!(signature_matches(secret, &sts, expected), "verifier accepts {name}");
            assert!(!signature_matches(secret, &sts, &expected.replace('a', "b")), "verifier refuses altered {name}");
        }
    }

    #[test]
    fn query_params_dicts_encode_like_the_wire_form() {
        for t in vectors()["vectors"].as_array().unwrap() {
            let Some(params) = t["query_params"].as_object() else {
                continue;
            };
            let mut pairs: Vec<(&String, &str)> = params.iter().map(|(k, v)| (k, v.as_str().unwrap())).collect();
            pairs.sort();
            let encoded: Vec<String> =
                pairs.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect();
            assert_eq!(encoded.join("&"), t["canonical_query"].as_str().unwrap());
        }
    }

    #[test]
    fn refuses_malformed_signatures() {
        assert!(!signature_matches(b"s", "x", ""));
        assert!(!signature_matches(b"s", "x", "zz"));
        assert!(!signature_matches(b"s", "x", &"g".repeat(64)));
    }

    #[test]
    fn a_signature_in_capitals_is_the_same_signature() {
        let sig = sign(b"secret", "POST\n/p\n\nx\n1");
        assert!(signature_matches(b"secret", "POST\n/p\n\nx\n1", &sig.to_uppercase()));
        assert!(signature_matches(b"secret", "POST\n/p\n\nx\n1", &sig));
        assert!(!signature_matches(b"secret", "POST\n/p\n\nx\n2", &sig.to_uppercase()));
    }

    #[test]
    fn decoded_path_only_when_it_differs() {
        assert_eq!(decoded_path("/a/b"), None);
        assert_eq!(decoded_path("/by-code/A%2FB%20C%231").as_deref(), Some("/by-code/A/B C#1"));
        assert_eq!(decoded_path("/x/%FF"), None);
    }

    #[test]
    fn window() {
        assert!(timestamp_in_window(1000, 1300, 300));
        assert!(!timestamp_in_window(1000, 1301, 300));
        assert!(timestamp_in_window(1300, 1000, 300));
        assert!(!timestamp_in_window(i64::MIN, 1000, 300));
        assert!(!timestamp_in_window(i64::MIN + 1000, 1000, 300));
        assert!(!timestamp_in_window(i64::MAX, -5, 300));
    }
}
