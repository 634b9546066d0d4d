//! Code generation: patterns, their guessability, and drawing codes from a CSPRNG.

use rand::{CryptoRng, Rng};

/// No 0/O/1/I: nothing people confuse when typing a code from paper.
pub const DEFAULT_CHARSET: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
pub const DEFAULT_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 64;
pub const MAX_COUNT: u64 = 1_000_000;

/// A pattern may hold at most one issued code per this many possible codes,
/// so that a guess hits a live code with probability at most one in a million.
pub const GUESS_RESISTANCE: f64 = 1_000_000.0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("charset must hold at least 2 distinct characters")]
    CharsetTooSmall,
    #[error("charset must not contain spaces, dashes, control characters or repeats")]
    CharsetInvalid,
    #[error("length must be between 1 and {MAX_LENGTH}")]
    LengthOutOfRange,
    #[error("group size must be between 1 and the length")]
    GroupOutOfRange,
    #[error("codes of this pattern would be {0} characters long; the maximum is 100")]
    TooLong(usize),
    #[error("prefix and suffix must not contain control characters")]
    AffixInvalid,
    #[error("count must be between 1 and {MAX_COUNT}")]
    CountOutOfRange,
    #[error(
        "this pattern is too small for {requested} codes: they would be guessable; it can safely hold {safe_max} codes (use a longer length or a larger charset)"
    )]
    TooSmall { requested: u64, safe_max: u64 },
}

/// What a caller asks for; every field optional.
#[derive(Debug, Clone, Default)]
pub struct PatternSpec {
    pub charset: Option<String>,
    pub length: Option<usize>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    /// Insert a dash every `group` characters of the random part.
    pub group: Option<usize>,
    /// Append a check character (Luhn mod N) so typos are caught without a lookup.
    pub check_char: bool,
}

#[derive(Debug, Clone)]
pub struct Pattern {
    charset: Vec<char>,
    length: usize,
    prefix: String,
    suffix: String,
    group: Option<usize>,
    check_char: bool,
}

impl Pattern {
    pub fn new(spec: &PatternSpec) -> Result<Pattern, PatternError> {
        let charset: Vec<char> = spec.charset.as_deref().unwrap_or(DEFAULT_CHARSET).chars().collect();
        let mut seen = std::collections::HashSet::new();
        if charset.iter().any(|c| c.is_whitespace() || c.is_control() || *c == '-' || !seen.insert(*c)) {
            return Err(PatternError::CharsetInvalid);
        }
        if charset.len() < 2 {
            return Err(PatternError::CharsetTooSmall);
        }
        let length = spec.length.unwrap_or(DEFAULT_LENGTH);
        if !(1..=MAX_LENGTH).contains(&length) {
            return Err(PatternError::LengthOutOfRange);
        }
        if let Some(g) = spec.group {
            if g == 0 || g > length {
                return Err(PatternError::GroupOutOfRange);
            }
        }
        let prefix = spec.prefix.clone().unwrap_or_default();
        let suffix = spec.suffix.clone().unwrap_or_default();
        if prefix.chars().chain(suffix.chars()).any(char::is_control) {
            return Err(PatternError::AffixInvalid);
        }
        let pattern = Pattern { charset, length, prefix, suffix, group: spec.group, check_char: spec.check_char };
        let total = pattern.code_chars();
        if total > crate::normalize::MAX_CODE_CHARS {
            return Err(PatternError::TooLong(total));
        }
        Ok(pattern)
    }

    /// Characters in one generated code, separators and affixes included.
    pub fn code_chars(&self) -> usize {
        let body = self.length + usize::from(self.check_char);
        let dashes = self.group.map_or(0, |g| (body - 1) / g);
        self.prefix.chars().count() + body + dashes + self.suffix.chars().count()
    }

    /// How many distinct codes the pattern can produce (saturating).
    pub fn space(&self) -> f64 {
        (self.charset.len() as f64).powi(self.length as i32)
    }

    /// How many codes the pattern can hold while staying unguessable.
    pub fn safe_capacity(&self) -> u64 {
        let cap = (self.space() / GUESS_RESISTANCE).floor();
        if cap >= u64::MAX as f64 {
            u64::MAX
        } else {
            cap as u64
        }
    }

    /// Refuse counts out of range and counts the pattern cannot safely hold.
    pub fn check_count(&self, requested: u64) -> Result<(), PatternError> {
        if !(1..=MAX_COUNT).contains(&requested) {
            return Err(PatternError::CountOutOfRange);
        }
        let safe_max = self.safe_capacity();
        if requested > safe_max {
            return Err(PatternError::TooSmall { requested, safe_max });
        }
        Ok(())
    }

    /// Draw one code. `rng` must be a CSPRNG.
    pub fn generate<R: Rng + CryptoRng + ?Sized>(&self, rng: &mut R) -> String {
        let mut body: Vec<char> =
            (0..self.length).map(|_| self.charset[rng.random_range(0..self.charset.len())]).collect();
        if self.check_char {
            body.push(check_character(&self.charset, &body).expect("body drawn from the charset"));
        }
        let mut out = String::with_capacity(self.code_chars() * 2);
        out.push_str(&self.prefix);
        for (i, c) in body.iter().enumerate() {
            if let Some(g) = self.group {
                if i > 0 && i % g == 0 {
                    out.push('-');
                }
            }
            out.push(*c);
        }
        out.push_str(&self.suffix);
        out
    }
}

/// Luhn mod N check character over `body`, whose characters must all be in `charset`.
pub fn check_character(charset: &[char], body: &[char]) -> Option<char> {
    let n = charset.len();
    let mut sum = 0usize;
    // Double every second character counting from the right, the check character's neighbour first.
    for (i, c) in body.iter().rev().enumerate() {
        let mut v = charset.iter().position(|x| x == c)?;
        if i % 2 == 0 {
            v *= 2;
            v = v / n + v % n;
        }
        sum += v;
    }
    Some(charset[(n - sum % n) % n])
}

/// Whether the last character of `body_with_check` is its valid check character.
pub fn has_valid_check_character(charset: &[char], body_with_check: &[char]) -> bool {
    match body_with_check.split_last() {
        Some((last, body)) if !body.is_empty() => check_character(charset, body) == Some(*last),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(spec: PatternSpec) -> Pattern {
        Pattern::new(&spec).unwrap()
    }

    #[test]
    fn default_pattern_draws_from_default_charset() {
        let p = pattern(PatternSpec::default());
        let mut rng = rand::rng();
        for _ in 0..200 {
            let code = p.generate(&mut rng);
            assert_eq!(code.len(), DEFAULT_LENGTH);
            assert!(code.chars().all(|c| DEFAULT_CHARSET.contains(c)));
        }
    }

    #[test]
    fn prefix_suffix_and_grouping() {
        let p = pattern(PatternSpec {
            prefix: Some("GIFT-".into()),
            suffix: Some("-X".into()),
            group: Some(4),
            length: Some(12),
            ..Default::default()
        });
        let code = p.generate(&mut rand::rng());
        assert!(code.starts_with("GIFT-") && code.ends_with("-X"), "{code}");
        let body = &code[5..code.len() - 2];
        let groups: Vec<&str> = body.split('-').collect();
        assert_eq!(groups.len(), 3);
        assert!(groups.iter().all(|g| g.len() == 4));
        assert_eq!(p.code_chars(), code.chars().count());
    }

    #[test]
    fn refuses_guessable_patterns_and_names_the_safe_maximum() {
        let p = pattern(PatternSpec { charset: Some("0123456789".into()), length: Some(8), ..Default::default() });
        assert_eq!(p.safe_capacity(), 100);
        assert_eq!(p.check_count(100), Ok(()));
        let err = p.check_count(101).unwrap_err();
        assert_eq!(err, PatternError::TooSmall { requested: 101, safe_max: 100 });
        assert!(err.to_string().contains("safely hold 100"));
        let default = pattern(PatternSpec::default());
        assert_eq!(default.check_count(MAX_COUNT), Ok(()));
        assert_eq!(default.check_count(MAX_COUNT + 1), Err(PatternError::CountOutOfRange));
    }

    #[test]
    fn rejects_bad_charsets() {
        assert_eq!(
            Pattern::new(&PatternSpec { charset: Some("A".into()), ..Default::default() }).unwrap_err(),
            PatternError::CharsetTooSmall
        );
        assert_eq!(
            Pattern::new(&PatternSpec { charset: Some("AAB".into()), ..Default::default() }).unwrap_err(),
            PatternError::CharsetInvalid
        );
        assert_eq!(
            Pattern::new(&PatternSpec { charset: Some("A-B".into()), ..Default::default() }).unwrap_err(),
            PatternError::CharsetInvalid
        );
    }

    #[test]
    fn the_one_swap_luhn_mod_n_cannot_see_is_first_and_last_of_the_alphabet() {
        let charset: Vec<char> = DEFAULT_CHARSET.chars().collect();
        let (first, last) = (charset[0], charset[charset.len() - 1]);
        let body = ['B', first, last, 'C'];
        let check = check_character(&charset, &body).unwrap();
        let swapped = ['B', last, first, 'C'];
        assert_eq!(check_character(&charset, &swapped), Some(check));
        // Every other adjacent pair of distinct characters changes the check character.
        for &a in &charset {
            for &b in &charset {
                if a != b && !((a, b) == (first, last) || (a, b) == (last, first)) {
                    assert_ne!(
                        check_character(&charset, &['B', a, b, 'C']),
                        check_character(&charset, &['B', b, a, 'C'])
                    );
                }
            }
        }
    }

    #[test]
    fn check_character_catches_single_typos_and_swaps() {
        let charset: Vec<char> = DEFAULT_CHARSET.chars().collect();
        let p = pattern(PatternSpec { check_char: true, ..Default::default() });
        let mut rng = rand::rng();
        for _ in 0..100 {
            let code: Vec<char> = p.generate(&mut rng).chars().collect();
            assert!(has_valid_check_character(&charset, &code));
            let mut typo = code.clone();
            let i = rng.random_range(0..typo.len());
            let old = typo[i];
            typo[i] = *charset.iter().find(|c| **c != old).unwrap();
            assert!(!has_valid_check_character(&charset, &typo));
            // Luhn mod N sees every adjacent swap but one: the alphabet's first and last
            // characters (like 09 and 90 for digits) give the same sum either way round.
            let (first, last) = (charset[0], charset[charset.len() - 1]);
            let blind = matches!((code[0], code[1]), (a, b) if (a, b) == (first, last) || (a, b) == (last, first));
            if code[0] != code[1] && !blind {
                let mut swapped = code.clone();
                swapped.swap(0, 1);
                assert!(!has_valid_check_character(&charset, &swapped));
            }
        }
    }
}
