//! Input normalisation: people mistype case, spaces and dashes. When a project
//! normalises (the default), codes match ignoring those; the code is still
//! shown exactly as it was generated or imported.

/// The form a code is matched and kept unique by.
pub fn normalize_code(code: &str, enabled: bool) -> String {
    if !enabled {
        return code.to_owned();
    }
    code.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_uppercase).collect()
}

/// Largest accepted code, in characters.
pub const MAX_CODE_CHARS: usize = 100;

/// Why a code string cannot be stored.
pub fn validate_code(code: &str) -> Result<(), &'static str> {
    let chars = code.chars().count();
    if chars == 0 {
        return Err("code must not be empty");
    }
    if chars > MAX_CODE_CHARS {
        return Err("code must be at most 100 characters");
    }
    if code.chars().any(char::is_control) {
        return Err("code must not contain control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_case_spaces_and_dashes() {
        assert_eq!(normalize_code("abcd-efgh ijkl", true), "ABCDEFGHIJKL");
        assert_eq!(normalize_code(" ab\tc-d ", true), "ABCD");
    }

    #[test]
    fn off_means_exact() {
        assert_eq!(normalize_code("abcd-efgh", false), "abcd-efgh");
    }

    #[test]
    fn keeps_other_characters() {
        assert_eq!(normalize_code("a/b+c#1", true), "A/B+C#1");
        assert_eq!(normalize_code("straße", true), "STRASSE");
    }

    #[test]
    fn validation() {
        assert!(validate_code("ABC").is_ok());
        assert!(validate_code("").is_err());
        assert!(validate_code(&"x".repeat(101)).is_err());
        assert!(validate_code("a\0b").is_err());
    }
}
