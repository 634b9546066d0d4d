//! Identifiers: 32 lower-case hex characters (a UUIDv7 without hyphens).

/// A fresh identifier: time-ordered (UUIDv7: 48 bits of milliseconds, then 74
/// random bits), so that rows written together land side by side in an id
/// index instead of on random pages — a million generated codes append to it.
/// Ids name things; they are not secrets.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Whether `s` has the shape of an identifier. Cheap enough to run before any lookup.
pub fn is_valid_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_valid_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert!(is_valid_id(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn rejects_other_shapes() {
        assert!(!is_valid_id("6F1C2B7E9D0A4C3B8E5F1A2D3C4B5A69"));
        assert!(!is_valid_id("6f1c2b7e-9d0a-4c3b-8e5f-1a2d3c4b5a69"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("../../etc/passwd"));
    }
}
