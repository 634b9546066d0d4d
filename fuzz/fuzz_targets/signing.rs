//! The signature canonicaliser: arbitrary queries, paths, bodies and nonces
//! never panic, and the canonical forms keep their documented properties.
#![no_main]

use codegate_domain::signing::{body_sha256_hex, canonical_query, decoded_path, sign, signature_matches, SignedParts};
use libfuzzer_sys::fuzz_target;

fn sorted_pairs(query: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    pairs.sort();
    pairs
}

fuzz_target!(|input: (&str, &str, &str, &[u8], &str, Option<&str>, &str)| {
    let (method, path, query, body, secret, nonce, provided) = input;

    let canonical = canonical_query(query);
    assert!(
        canonical.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-~%+=&".contains(&b)),
        "canonical query is plain form-encoding: {canonical:?}"
    );
    assert_eq!(canonical_query(&canonical), canonical, "canonicalising is idempotent");
    // Re-encoding loses nothing: the canonical form decodes to the same pairs.
    assert_eq!(sorted_pairs(&canonical), sorted_pairs(query));

    if let Some(decoded) = decoded_path(path) {
        assert!(path.contains('%'));
        assert_ne!(decoded, path);
    }

    let body_sha256 = body_sha256_hex(body);
    assert_eq!(body_sha256.len(), 64);
    let parts = SignedParts {
        method,
        path,
        canonical_query: &canonical,
        body_sha256: &body_sha256,
        timestamp: "1767225600",
        nonce,
    };
    let sts = parts.string_to_sign();
    let mut expected = [method, path, &canonical, &body_sha256, "1767225600"].join("\n");
    if let Some(n) = nonce {
        expected = format!("{expected}\n{n}");
    }
    assert_eq!(sts, expected);

    let signature = sign(secret.as_bytes(), &sts);
    assert!(signature_matches(secret.as_bytes(), &sts, &signature));
    assert!(signature_matches(secret.as_bytes(), &sts, &signature.to_ascii_uppercase()));
    // Whatever a client sends as a signature is answered, never a panic;
    // only the right one (in any case) is accepted.
    let accepted = signature_matches(secret.as_bytes(), &sts, provided);
    assert_eq!(accepted, provided.eq_ignore_ascii_case(&signature));
});
