//! Code normalisation and validation: never a panic, and matching forms are
//! stable, so a code typed the way it is stored always finds itself.
#![no_main]

use codegate_domain::normalize::{normalize_code, validate_code, MAX_CODE_CHARS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|code: &str| {
    assert_eq!(normalize_code(code, false), code, "off means exact");
    let norm = normalize_code(code, true);
    assert!(!norm.chars().any(|c| c.is_whitespace() || c == '-'));
    assert_eq!(normalize_code(&norm, true), norm, "normalising is idempotent for {code:?}");
    // Case, spaces and dashes never matter.
    let retyped: String = code.to_lowercase().replace('-', " ");
    if code.is_ascii() {
        assert_eq!(normalize_code(&retyped, true), norm);
    }
    match validate_code(code) {
        Ok(()) => {
            let n = code.chars().count();
            assert!((1..=MAX_CODE_CHARS).contains(&n));
            assert!(!code.chars().any(char::is_control));
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
});
