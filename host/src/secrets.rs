//! Sealed secrets: what the host must read back in clear (HMAC app secrets, its download-URL
//! and upload signing keys) is stored encrypted with a host master key — XChaCha20-Poly1305
//! with a random nonce per value, the column it belongs to as associated data, and the key's
//! id in the stored text so keys can be rotated. Everything else the host keeps is hashed.
//!
//! The master key comes from `OTA_HOST_MASTER_KEY` (hex, several comma-separated: the first
//! seals, all open), else from a key file (`[secrets] master-key-file`, default
//! `<data-dir>/master.key`, generated on first start, one hex key per line).

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// How a sealed value starts; anything else in a sealed column is a clear value from before
/// sealing (migrated at start).
pub const PREFIX: &str = "sealed:v1:";

/// The environment variable holding the master key(s).
pub const KEY_ENV: &str = "OTA_HOST_MASTER_KEY";

/// Why secrets could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("master key: {0}")]
    Key(String),
    #[error("reading master key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "a sealed secret was made with master key {0}, which this host does not have (replicas \
         sharing a database need the same master key: the same key file, or {KEY_ENV})"
    )]
    UnknownKey(String),
    #[error("a sealed secret is corrupt or was moved from another column")]
    Corrupt,
}

/// One 256-bit master key.
struct MasterKey {
    /// The first 8 hex characters of the key's SHA-256: names the key, reveals nothing.
    id: String,
    cipher: XChaCha20Poly1305,
    hex: String,
}

impl MasterKey {
    fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let mut raw = [0u8; 32];
        hex::decode_to_slice(text, &mut raw)
            .map_err(|_| SecretError::Key("a master key is 64 hex characters".into()))?;
        Ok(MasterKey {
            id: hex::encode(&Sha256::digest(raw)[..4]),
            cipher: XChaCha20Poly1305::new(&raw.into()),
            hex: text.to_ascii_lowercase(),
        })
    }

    fn generate() -> Self {
        let raw: [u8; 32] = rand::random();
        // A freshly made key always parses.
        MasterKey::parse(&hex::encode(raw)).unwrap_or_else(|_| unreachable!())
    }
}

/// Where the keys came from (rotation rewrites a file, never the environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
}

/// Seals and opens secrets with the host's master keys (the first one seals).
pub struct Sealer {
    keys: Vec<MasterKey>,
    source: KeySource,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key_ids", &self.key_ids())
            .field("source", &self.source)
            .finish()
    }
}

fn parse_keys(text: &str, sep: char) -> Result<Vec<MasterKey>, SecretError> {
    let keys = text
        .split(sep)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(MasterKey::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(SecretError::Key("no master key given".into()));
    }
    Ok(keys)
}

fn write_key_file(path: &Path, keys: &[&MasterKey]) -> Result<(), SecretError> {
    let io = |source| SecretError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::from(
        "# ota-host master key(s): the first seals, every one opens. Keep this file secret;\n\
         # without it the sealed secrets in the database cannot be read.\n",
    );
    for k in keys {
        text.push_str(&k.hex);
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

impl Sealer {
    /// The keys from the environment, else from `file` (generated there when missing).
    pub fn load(file: &Path) -> Result<Self, SecretError> {
        if let Ok(v) = std::env::var(KEY_ENV) {
            return Ok(Sealer {
                keys: parse_keys(&v, ',')?,
                source: KeySource::Env,
            });
        }
        Self::from_file(file)
    }

    /// The keys in `file`, which is created with a new key when it does not exist.
    pub fn from_file(file: &Path) -> Result<Self, SecretError> {
        let io = |source| SecretError::Io {
            path: file.to_path_buf(),
            source,
        };
        if !file.exists() {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let key = MasterKey::generate();
            write_key_file(file, &[&key])?;
            tracing::info!(file = %file.display(), key = %key.id, "generated a master key for sealed secrets");
        }
        let text = std::fs::read_to_string(file).map_err(io)?;
        Ok(Sealer {
            keys: parse_keys(&text, '\n')?,
            source: KeySource::File(file.to_path_buf()),
        })
    }

    /// A sealer with one given key (tests, benches).
    pub fn with_key(hex_key: &str) -> Result<Self, SecretError> {
        Ok(Sealer {
            keys: vec![MasterKey::parse(hex_key)?],
            source: KeySource::Env,
        })
    }

    /// The ids of the keys, the sealing one first.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// Seal `plain` for the column named by `context` (e.g. `hmac_keys.secret`).
    pub fn seal(&self, plain: &str, context: &str) -> String {
        let key = &self.keys[0];
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        // Encrypting into a Vec cannot fail for inputs this size.
        let sealed = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut blob = nonce_bytes.to_vec();
        blob.extend(sealed);
        format!("{PREFIX}{}:{}", key.id, B64.encode(blob))
    }

    /// Whether `stored` is sealed at all (else it is a clear value from before sealing).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    /// The key id a sealed value names.
    pub fn key_of(stored: &str) -> Option<&str> {
        stored
            .strip_prefix(PREFIX)?
            .split_once(':')
            .map(|(id, _)| id)
    }

    /// Open a sealed value of the column `context`.
    pub fn open(&self, stored: &str, context: &str) -> Result<String, SecretError> {
        let rest = stored.strip_prefix(PREFIX).ok_or(SecretError::Corrupt)?;
        let (id, b64) = rest.split_once(':').ok_or(SecretError::Corrupt)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SecretError::UnknownKey(id.to_string()))?;
        let blob = B64.decode(b64).map_err(|_| SecretError::Corrupt)?;
        if blob.len() < 24 {
            return Err(SecretError::Corrupt);
        }
        let (nonce, sealed) = blob.split_at(24);
        let plain = key
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| SecretError::Corrupt)
    }

    /// Whether `stored` needs writing again: clear, or sealed with an older key.
    pub fn stale(&self, stored: &str) -> bool {
        Self::key_of(stored) != Some(self.keys[0].id.as_str())
    }

    /// A new key, sealing from now on; the current ones still open. For rotation.
    pub fn with_new_key(&self) -> Sealer {
        let mut keys = vec![MasterKey::generate()];
        keys.extend(self.keys.iter().map(|k| MasterKey {
            id: k.id.clone(),
            cipher: k.cipher.clone(),
            hex: k.hex.clone(),
        }));
        Sealer {
            keys,
            source: self.source.clone(),
        }
    }

    /// Write the keys to `file`: all of them (before re-sealing, so a crash loses nothing),
    /// or only the sealing one (after).
    pub fn save(&self, file: &Path, only_current: bool) -> Result<(), SecretError> {
        let keys: Vec<&MasterKey> = if only_current {
            vec![&self.keys[0]]
        } else {
            self.keys.iter().collect()
        };
        write_key_file(file, &keys)
    }

    /// The sealing key in hex (printed once by rotation when keys live in the environment).
    pub fn current_hex(&self) -> &str {
        &self.keys[0].hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn sealed_values_open_only_in_their_column() {
        let s = Sealer::with_key(K1).unwrap();
        let sealed = s.seal("app-secret-1", "hmac_keys.secret");
        assert!(Sealer::is_sealed(&sealed));
        assert!(!sealed.contains("app-secret-1"));
        assert_ne!(
            sealed,
            s.seal("app-secret-1", "hmac_keys.secret"),
            "a fresh nonce each time"
        );
        assert_eq!(s.open(&sealed, "hmac_keys.secret").unwrap(), "app-secret-1");
        assert!(matches!(
            s.open(&sealed, "upload_keys.secret"),
            Err(SecretError::Corrupt)
        ));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(s.open(&tampered, "hmac_keys.secret").is_err());
        assert!(s.open("clear text", "hmac_keys.secret").is_err());
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = Sealer::with_key(K1).unwrap();
        let sealed = old.seal("x", "c");
        let new = old.with_new_key();
        assert_eq!(new.open(&sealed, "c").unwrap(), "x");
        assert!(new.stale(&sealed));
        let resealed = new.seal("x", "c");
        assert!(!new.stale(&resealed));
        assert!(matches!(
            old.open(&resealed, "c"),
            Err(SecretError::UnknownKey(_))
        ));
    }

    #[test]
    fn a_key_file_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/master.key");
        let a = Sealer::from_file(&file).unwrap();
        let b = Sealer::from_file(&file).unwrap();
        assert_eq!(a.key_ids(), b.key_ids());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
        }
        let rotated = a.with_new_key();
        rotated.save(&file, false).unwrap();
        assert_eq!(Sealer::from_file(&file).unwrap().key_ids().len(), 2);
        rotated.save(&file, true).unwrap();
        assert_eq!(
            Sealer::from_file(&file).unwrap().key_ids(),
            vec![rotated.key_ids()[0].clone()]
        );
    }
}
