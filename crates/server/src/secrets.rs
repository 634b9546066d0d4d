//! Secrets: the master key that seals API secrets at rest, personal access
//! tokens (only their hash is kept) and password hashes (argon2id).

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::distr::{Alphanumeric, SampleString};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Seals API secrets so a copy of the database alone does not reveal them.
#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
}

pub(crate) const MASTER_KEY_FILE: &str = "master.key";
/// A new master key waits here while `codegate rotate-master-key` re-seals
/// the database; while it exists the rotation has not finished.
pub(crate) const NEXT_MASTER_KEY_FILE: &str = "master.key.next";

impl MasterKey {
    /// From `CODEGATE_MASTER_KEY` (64 hex characters) when given, else from
    /// `master.key` in the data directory, created with mode 0600 on first start.
    pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<MasterKey> {
        if configured.is_none() && data_dir.join(NEXT_MASTER_KEY_FILE).exists() {
            anyhow::bail!(
                "a master key rotation did not finish ({} exists): run `codegate rotate-master-key` again",
                data_dir.join(NEXT_MASTER_KEY_FILE).display()
            );
        }
        if let Some(key) = Self::load(configured, data_dir)? {
            return Ok(key);
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        let key = new_master_key_hex();
        write_private(&path, &key)?;
        tracing::info!(path = %path.display(), "created a new master key");
        Ok(Self::from_hex(&key).expect("a new key is valid"))
    }

    /// The configured key, else the data directory's `master.key`; `None` when neither exists.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Option<MasterKey>> {
        if let Some(hex_key) = configured {
            let key = Self::from_hex(hex_key)
                .ok_or_else(|| anyhow::anyhow!("CODEGATE_MASTER_KEY must be 64 hexadecimal characters"))?;
            return Ok(Some(key));
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)?;
        let key =
            Self::from_hex(&text).ok_or_else(|| anyhow::anyhow!("{} is not a valid master key", path.display()))?;
        Ok(Some(key))
    }

    /// From 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(hex_key: &str) -> Option<MasterKey> {
        let bytes = decode_key(hex_key.trim())?;
        Some(MasterKey { cipher: XChaCha20Poly1305::new(&bytes.into()) })
    }

    /// nonce ‖ ciphertext, bound to `context` (the API key it belongs to).
    pub fn seal(&self, plaintext: &str, context: &str) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() })
            .expect("sealing never fails for in-memory data");
        [nonce.as_slice(), &sealed].concat()
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Option<String> {
        if sealed.len() < 24 {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: context.as_bytes() })
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

fn decode_key(hex_key: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut key).ok()?;
    Some(key)
}

/// A new random master key, as 64 hex characters.
pub fn new_master_key_hex() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    hex::encode(key)
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Personal access tokens start with this, so secret scanners can spot leaks.
pub const TOKEN_PREFIX: &str = "cgp_";

/// A new token: the value shown once, and the hash that is stored.
pub fn new_access_token() -> (String, String) {
    let token = format!("{TOKEN_PREFIX}{}", Alphanumeric.sample_string(&mut rand::rng(), 40));
    let hash = token_hash(&token);
    (token, hash)
}

/// Tokens are long and random, so a plain SHA-256 is a sound lookup hash.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// 32 hex characters, public.
pub fn new_api_key() -> String {
    codegate_domain::ids::new_id()
}

/// 64 hex characters, shown once.
pub fn new_api_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn new_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 20)
}

pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 hashing").to_string()
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_in_their_context() {
        let dir = std::env::temp_dir().join(format!("cg-mk-{}", codegate_domain::ids::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = MasterKey::load_or_create(None, &dir).unwrap();
        let sealed = key.seal("s3cret", "key-a");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(key.open(&sealed, "key-a").as_deref(), Some("s3cret"));
        assert_eq!(key.open(&sealed, "key-b"), None);
        // The same file gives the same key back.
        let again = MasterKey::load_or_create(None, &dir).unwrap();
        assert_eq!(again.open(&sealed, "key-a").as_deref(), Some("s3cret"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(MASTER_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn passwords_and_tokens() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        let (token, hash) = new_access_token();
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(token_hash(&token), hash);
    }
}
