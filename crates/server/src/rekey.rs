//! `codegate rotate-master-key`: every API key's secrets re-sealed under a new
//! master key. The secrets themselves do not change, so backends keep signing
//! with what they have.
//!
//! With a key file (the default) the new key is first written to
//! `master.key.next`; the database is re-sealed in one transaction; then the
//! old key is kept as `master.key.<unix time>.old` (old backups need it) and
//! the new one replaces `master.key`. A run cut short anywhere is finished by
//! running it again: it picks up `master.key.next`, and secrets already
//! sealed under the new key are left as they are. The server refuses to start
//! while `master.key.next` exists.

use crate::secrets::{new_master_key_hex, write_private, MasterKey, MASTER_KEY_FILE, NEXT_MASTER_KEY_FILE};
use anyhow::{bail, Context};
use codegate_storage::{SealedSecrets, Store, StoreError};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What a rotation did.
#[derive(Debug, Serialize)]
pub struct RekeyReport {
    /// API keys whose secrets were re-sealed.
    pub resealed: usize,
    /// API keys already sealed under the new key (a run that was cut short).
    pub already_resealed: usize,
    /// Where the previous key file was kept (key file only).
    pub previous_key_file: Option<PathBuf>,
    /// The file now holding the master key (key file only).
    pub key_file: Option<PathBuf>,
}

/// The key in use, which a rotation replaces; an error when there is none.
pub fn current_key(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<MasterKey> {
    MasterKey::load(configured, data_dir)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no master key to rotate: neither CODEGATE_MASTER_KEY nor {MASTER_KEY_FILE} in {}",
            data_dir.display()
        )
    })
}

/// Re-seals every API secret from `current` (see [`current_key`]) to
/// `new_key` (64 hex characters), or to a new random key when none is given
/// and the key lives in a file.
/// `configured` is `CODEGATE_MASTER_KEY`, when set: then the new key must be
/// given, and putting it in place on every server is the operator's part.
pub async fn rotate_master_key(
    store: &dyn Store,
    current: &MasterKey,
    configured: Option<&str>,
    data_dir: &Path,
    new_key: Option<&str>,
) -> anyhow::Result<RekeyReport> {
    let next_file = data_dir.join(NEXT_MASTER_KEY_FILE);
    let new_hex = match (new_key, configured) {
        (Some(key), _) => key.trim().to_owned(),
        (None, Some(_)) => bail!("CODEGATE_MASTER_KEY is set: give the new key with --new-key-file"),
        (None, None) if next_file.exists() => std::fs::read_to_string(&next_file)?.trim().to_owned(),
        (None, None) => new_master_key_hex(),
    };
    let new = MasterKey::from_hex(&new_hex).context("the new master key must be 64 hexadecimal characters")?;
    // Checked before anything is written: every secret opens with one of the two keys.
    let (changes, already_resealed) = reseal(current, &new, store.sealed_secrets().await?)?;
    if configured.is_none() {
        // On disk before the database changes, so a cut-short run can finish with the same key.
        if next_file.exists() {
            if std::fs::read_to_string(&next_file)?.trim() != new_hex {
                bail!(
                    "{} holds another key, from a rotation that did not finish: run without --new-key-file to finish it",
                    next_file.display()
                );
            }
        } else {
            write_private(&next_file, &new_hex).with_context(|| format!("writing {}", next_file.display()))?;
        }
    }

    let resealed = changes.len();
    store.reseal_secrets(changes).await.map_err(|e| match e {
        StoreError::Conflict(_) => anyhow::anyhow!("API keys changed while they were re-sealed (is a server running?): nothing was written; stop every server and run again"),
        other => anyhow::Error::new(other).context("writing the re-sealed secrets: run again to finish"),
    })?;

    let (mut previous_key_file, mut key_file) = (None, None);
    if configured.is_none() {
        let key_path = data_dir.join(MASTER_KEY_FILE);
        let kept = data_dir.join(format!("{MASTER_KEY_FILE}.{}.old", crate::state::now()));
        // A copy, not a rename: `master.key` is never missing (a server would make a new one).
        if !kept.exists() {
            let old_text = std::fs::read_to_string(&key_path)?;
            write_private(&kept, old_text.trim())
                .with_context(|| format!("keeping the old key in {}", kept.display()))?;
        }
        std::fs::rename(&next_file, &key_path)
            .with_context(|| format!("moving the new key to {}", key_path.display()))?;
        std::fs::File::open(data_dir)?.sync_all()?;
        previous_key_file = Some(kept);
        key_file = Some(key_path);
    }
    Ok(RekeyReport { resealed, already_resealed, previous_key_file, key_file })
}

/// The changes that move every secret from `current` to `new`, and how many
/// keys needed none. A secret that neither key opens stops the rotation.
fn reseal(
    current: &MasterKey,
    new: &MasterKey,
    stored: Vec<SealedSecrets>,
) -> anyhow::Result<(Vec<(SealedSecrets, SealedSecrets)>, usize)> {
    let move_one = |sealed: &[u8], key: &SealedSecrets| -> anyhow::Result<Option<Vec<u8>>> {
        if let Some(plain) = current.open(sealed, &key.api_key) {
            return Ok(Some(new.seal(&plain, &key.api_key)));
        }
        if new.open(sealed, &key.api_key).is_some() {
            return Ok(None);
        }
        bail!("API key {} has a secret that neither the current nor the new master key opens", key.key_id)
    };
    let (mut changes, mut already) = (Vec::new(), 0);
    for key in stored {
        let secret = move_one(&key.secret, &key)?;
        let previous = match &key.previous {
            Some(p) => move_one(p, &key)?.map(Some),
            None => None,
        };
        if secret.is_none() && previous.is_none() {
            already += 1;
            continue;
        }
        let resealed = SealedSecrets {
            secret: secret.unwrap_or_else(|| key.secret.clone()),
            previous: previous.unwrap_or_else(|| key.previous.clone()),
            ..key.clone()
        };
        changes.push((key, resealed));
    }
    Ok((changes, already))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(key: &MasterKey, id: &str, secret: &str, previous: Option<&str>) -> SealedSecrets {
        SealedSecrets {
            key_id: id.into(),
            api_key: format!("ak-{id}"),
            secret: key.seal(secret, &format!("ak-{id}")),
            previous: previous.map(|p| key.seal(p, &format!("ak-{id}"))),
        }
    }

    #[test]
    fn every_secret_moves_to_the_new_key_and_keeps_its_value() {
        let (old, new) =
            (MasterKey::from_hex(&new_master_key_hex()).unwrap(), MasterKey::from_hex(&new_master_key_hex()).unwrap());
        let rows = vec![stored(&old, "a", "secret-a", None), stored(&old, "b", "secret-b", Some("before-b"))];
        let (changes, already) = reseal(&old, &new, rows).unwrap();
        assert_eq!((changes.len(), already), (2, 0));
        let (read_b, after_b) = &changes[1];
        assert_eq!(new.open(&after_b.secret, "ak-b").as_deref(), Some("secret-b"));
        assert_eq!(new.open(after_b.previous.as_ref().unwrap(), "ak-b").as_deref(), Some("before-b"));
        assert_eq!(old.open(&after_b.secret, "ak-b"), None, "sealed under the new key only");
        assert_eq!(old.open(&read_b.secret, "ak-b").as_deref(), Some("secret-b"), "the pair keeps what was read");
        // A second pass over the result has nothing left to do.
        let after: Vec<_> = changes.into_iter().map(|(_, a)| a).collect();
        let (again, already) = reseal(&old, &new, after).unwrap();
        assert_eq!((again.len(), already), (0, 2));
    }

    #[test]
    fn a_secret_neither_key_opens_stops_the_rotation() {
        let keys: Vec<_> = (0..3).map(|_| MasterKey::from_hex(&new_master_key_hex()).unwrap()).collect();
        let rows = vec![stored(&keys[0], "a", "hush-a", None), stored(&keys[2], "stranger", "hush-hush", None)];
        let err = reseal(&keys[0], &keys[1], rows).unwrap_err().to_string();
        assert!(err.contains("stranger"), "{err}");
        assert!(!err.contains("hush"), "no secret in the message: {err}");
    }
}
