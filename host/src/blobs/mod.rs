//! Firmware files. Uploads are streamed to a staging object (`tmp/…`, a multipart upload
//! when large) while MD5, SHA-256 and CRC-64 are computed, checked against what the uploader
//! declared, and only then moved to their content address (`sha256/ab/abcdef…`); a mismatch
//! keeps nothing. The objects live in a local directory or an S3-compatible bucket
//! ([`objects`]), the facts about them in the database. Downloads are served by
//! `http::blobs` with Range and ETag, optionally behind signed, expiring URLs whose key is
//! shared by every replica through the database.

mod objects;
mod slots;

pub use slots::{Slot, SlotRefused, UploadSlots};

use std::path::PathBuf;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::io::AsyncWriteExt;

use objects::Objects;

use crate::clock::SharedClock;
use crate::secrets::Sealer;
use crate::storage::Db;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{0}")]
    Mismatch(String),
    #[error("upload exceeds the {0}-byte limit")]
    TooLarge(u64),
    #[error("{0}")]
    Invalid(String),
    #[error("no blob {0}")]
    NotFound(String),
    #[error("download link is invalid")]
    BadSignature,
    #[error("download link has expired")]
    Expired,
    #[error("upload interrupted: {0}")]
    Interrupted(String),
    #[error("blob storage I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("blob store: {0}")]
    Store(#[from] object_store::Error),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
}

/// Facts about a stored file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct BlobInfo {
    pub sha256: String,
    pub md5: String,
    pub size: u64,
    pub created_at: i64,
    /// CRC-64/XZ (OSS's `x-oss-hash-crc64ecma`), for blobs stored since it was recorded.
    pub crc64: Option<u64>,
}

/// OSS's CRC-64 ("ECMA" in its header name; the XZ parameters: reflected, all-ones init and
/// final xor), which `oss2` and other OSS SDKs check a download against.
const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_XZ);

/// What an uploader says about the file; every given field must match.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Expect {
    pub md5: Option<String>,
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

/// The column the sealed URL-signing key lives in.
const URL_KEY: &str = "host_secrets.blob-url-key";

/// The content-addressed store.
#[derive(Clone)]
pub struct BlobStore {
    objects: Objects,
    db: Db,
    clock: SharedClock,
    signing_key: std::sync::Arc<[u8; 32]>,
    url_policy: UrlPolicy,
}

/// How download links are handed out: whether the operator requires signed links, and
/// their default lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlPolicy {
    pub require_signed: bool,
    pub ttl_secs: u64,
}

impl Default for UrlPolicy {
    fn default() -> Self {
        UrlPolicy {
            require_signed: false,
            ttl_secs: 86_400,
        }
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A valid content address (64 lower-case hex characters).
pub fn valid_sha256(s: &str) -> bool {
    is_hex(s, 64) && !s.bytes().any(|b| b.is_ascii_uppercase())
}

impl BlobStore {
    /// Open the store `location` names (see [`BlobLocation`]), and load (or create once,
    /// for every replica) the URL-signing key, which is kept sealed with the host's master
    /// key.
    pub async fn open(
        location: &BlobLocation,
        db: Db,
        clock: SharedClock,
        sealer: &Sealer,
    ) -> Result<Self, BlobError> {
        let objects = match location {
            BlobLocation::Dir(root) => Objects::local(root.clone())?,
            BlobLocation::Url { url, options } => Objects::from_url(url, options)?,
        };
        match objects.sweep_stale_uploads().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                uploads = n,
                store = objects.name(),
                "dropped uploads left over from a crash"
            ),
            Err(e) => {
                tracing::warn!(error = %e, store = objects.name(), "cannot sweep stale uploads")
            }
        }
        let fresh: [u8; 32] = rand::random();
        sqlx::query(
            "INSERT INTO host_secrets (name, value) VALUES ('blob-url-key', $1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(sealer.seal(&hex::encode(fresh), URL_KEY))
        .execute(db.pool())
        .await?;
        let stored: String =
            sqlx::query_scalar("SELECT value FROM host_secrets WHERE name = 'blob-url-key'")
                .fetch_one(db.pool())
                .await?;
        // A key kept in clear (before sealing) or under an older master key is sealed anew.
        let plain = if Sealer::is_sealed(&stored) {
            sealer.open(&stored, URL_KEY)?
        } else {
            stored.clone()
        };
        if sealer.stale(&stored) {
            sqlx::query(
                "UPDATE host_secrets SET value = $1 WHERE name = 'blob-url-key' AND value = $2",
            )
            .bind(sealer.seal(&plain, URL_KEY))
            .bind(&stored)
            .execute(db.pool())
            .await?;
        }
        let mut key = [0u8; 32];
        hex::decode_to_slice(plain, &mut key)
            .map_err(|e| BlobError::Invalid(format!("corrupt signing key: {e}")))?;
        Ok(BlobStore {
            objects,
            db,
            clock,
            signing_key: std::sync::Arc::new(key),
            url_policy: UrlPolicy::default(),
        })
    }

    /// Whether the store answers (for `/readyz`).
    pub async fn check(&self) -> Result<(), BlobError> {
        self.objects.check().await
    }

    /// The bytes of a stored blob, all of them or the inclusive range `first..=last`.
    pub async fn read(
        &self,
        sha256: &str,
        range: Option<(u64, u64)>,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, BlobError> {
        if !valid_sha256(sha256) {
            return Err(BlobError::NotFound(sha256.to_string()));
        }
        self.objects.read(&address(sha256), range).await
    }

    /// Stream an upload into the store. Nothing is kept unless every declared fact matches.
    pub async fn put<S, E>(
        &self,
        mut body: S,
        expect: &Expect,
        max_size: u64,
    ) -> Result<BlobInfo, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        for (name, value, len) in [("md5", &expect.md5, 32), ("sha256", &expect.sha256, 64)] {
            if let Some(v) = value
                && !is_hex(v, len)
            {
                return Err(BlobError::Invalid(format!(
                    "{name} must be {len} hex characters"
                )));
            }
        }
        if let Some(size) = expect.size
            && size > max_size
        {
            return Err(BlobError::TooLarge(max_size));
        }
        let tmp = format!("tmp/{:032x}", rand::random::<u128>());
        let mut upload = self.objects.writer(&tmp);
        let received = async {
            let (mut md5, mut sha, mut size) = (Md5::new(), Sha256::new(), 0u64);
            let mut crc = CRC64.digest();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| BlobError::Interrupted(e.to_string()))?;
                size += chunk.len() as u64;
                if size > max_size || expect.size.is_some_and(|s| size > s) {
                    return Err(match expect.size {
                        Some(s) if s < max_size => BlobError::Mismatch(format!(
                            "body is larger than the declared size {s}"
                        )),
                        _ => BlobError::TooLarge(max_size),
                    });
                }
                md5.update(&chunk);
                sha.update(&chunk);
                crc.update(&chunk);
                upload.put(chunk).await?;
            }
            Ok(BlobInfo {
                sha256: hex::encode(sha.finalize()),
                md5: hex::encode(md5.finalize()),
                size,
                created_at: self.clock.now_millis(),
                crc64: Some(crc.finalize()),
            })
        }
        .await;
        let info = match received {
            Ok(info) => info,
            Err(e) => {
                // Parts already sent are discarded with the multipart upload.
                if let Err(abort) = upload.abort().await {
                    tracing::warn!(error = %abort, "could not abort a refused upload");
                }
                return Err(e);
            }
        };
        upload.shutdown().await?;
        let stored = match check(&info, expect) {
            Ok(()) => self.settle(&tmp, &info).await,
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            let _ = self.objects.delete(&tmp).await;
            return Err(e);
        }
        sqlx::query(
            "INSERT INTO blobs (sha256, md5, size, created_at, crc64) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (sha256) DO UPDATE SET crc64 = COALESCE(blobs.crc64, excluded.crc64)",
        )
        .bind(&info.sha256)
        .bind(&info.md5)
        .bind(info.size as i64)
        .bind(info.created_at)
        // Text: a CRC-64 does not fit the signed 64-bit integers both databases store.
        .bind(info.crc64.map(|c| c.to_string()))
        .execute(self.db.pool())
        .await?;
        self.stat(&info.sha256).await
    }

    /// Move a verified upload to its content address (or drop it: same content is stored).
    async fn settle(&self, tmp: &str, info: &BlobInfo) -> Result<(), BlobError> {
        let dest = address(&info.sha256);
        if self.objects.exists(&dest).await? {
            self.objects.delete(tmp).await
        } else {
            self.objects.rename(tmp, &dest).await
        }
    }

    /// Facts about a stored blob.
    pub async fn stat(&self, sha256: &str) -> Result<BlobInfo, BlobError> {
        let row = self
            .db
            .read_optional(
                sqlx::query(
                    "SELECT sha256, md5, size, created_at, crc64 FROM blobs WHERE sha256 = $1",
                )
                .bind(sha256),
            )
            .await?
            .ok_or_else(|| BlobError::NotFound(sha256.to_string()))?;
        Ok(BlobInfo {
            sha256: row.get(0),
            md5: row.get(1),
            size: row.get::<i64, _>(2) as u64,
            created_at: row.get(3),
            crc64: row.get::<Option<String>, _>(4).and_then(|c| c.parse().ok()),
        })
    }

    fn mac(&self, sha256: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.signing_key.as_slice())
            .expect("HMAC takes keys of any size");
        mac.update(sha256.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The query string (`exp=…&sig=…`) that makes a download link valid until `expires`
    /// (Unix seconds).
    pub fn sign(&self, sha256: &str, expires: i64) -> String {
        let sig = hex::encode(self.mac(sha256, expires).finalize().into_bytes());
        format!("exp={expires}&sig={sig}")
    }

    /// Hand out links under this policy.
    pub fn with_url_policy(mut self, policy: UrlPolicy) -> Self {
        self.url_policy = policy;
        self
    }

    /// The download URL devices get: signed for `ttl_secs` when given, else signed with the
    /// policy's lifetime when signed links are required, else plain.
    pub fn download_url(&self, host_url: &str, sha256: &str, ttl_secs: Option<u64>) -> String {
        match ttl_secs {
            Some(ttl) => self.signed_url(host_url, sha256, ttl),
            None if self.url_policy.require_signed => {
                self.signed_url(host_url, sha256, self.url_policy.ttl_secs)
            }
            None => format!("{host_url}/blobs/{sha256}"),
        }
    }

    /// A signed download URL under `host_url`, valid for `ttl_secs`.
    pub fn signed_url(&self, host_url: &str, sha256: &str, ttl_secs: u64) -> String {
        let expires = self.clock.now_millis() / 1000 + ttl_secs as i64;
        format!("{host_url}/blobs/{sha256}?{}", self.sign(sha256, expires))
    }

    /// Check a signed link (constant-time) and its expiry.
    pub fn verify(&self, sha256: &str, expires: i64, sig: &str) -> Result<(), BlobError> {
        let raw = hex::decode(sig).map_err(|_| BlobError::BadSignature)?;
        self.mac(sha256, expires)
            .verify_slice(&raw)
            .map_err(|_| BlobError::BadSignature)?;
        if self.clock.now_millis() / 1000 > expires {
            return Err(BlobError::Expired);
        }
        Ok(())
    }
}

/// Where the blob with this SHA-256 lives in the store.
fn address(sha256: &str) -> String {
    format!("sha256/{}/{sha256}", &sha256[..2])
}

/// Where blobs are kept: a directory (the default, `<data-dir>/blobs`) or a store URL
/// (`s3://bucket/prefix`, `file:///dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    Dir(PathBuf),
    /// A store URL and the options of an `s3://` one (see `config::BlobsConfig`).
    Url {
        url: String,
        options: std::collections::BTreeMap<String, String>,
    },
}

fn check(info: &BlobInfo, expect: &Expect) -> Result<(), BlobError> {
    if let Some(size) = expect.size
        && size != info.size
    {
        return Err(BlobError::Mismatch(format!(
            "declared size {size} but received {} bytes",
            info.size
        )));
    }
    if let Some(md5) = &expect.md5
        && !md5.eq_ignore_ascii_case(&info.md5)
    {
        return Err(BlobError::Mismatch(format!(
            "declared md5 {md5} but the file's md5 is {}",
            info.md5
        )));
    }
    if let Some(sha) = &expect.sha256
        && !sha.eq_ignore_ascii_case(&info.sha256)
    {
        return Err(BlobError::Mismatch(format!(
            "declared sha256 {sha} but the file's sha256 is {}",
            info.sha256
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_oss_s() {
        // CRC-64/XZ's check value, and an empty file's.
        assert_eq!(CRC64.checksum(b"123456789"), 0x995d_c9bb_df19_39fa);
        assert_eq!(CRC64.checksum(b""), 0);
    }

    #[test]
    fn declared_facts_must_match() {
        let info = BlobInfo {
            sha256: "a".repeat(64),
            md5: "b".repeat(32),
            size: 3,
            created_at: 0,
            crc64: None,
        };
        assert!(check(&info, &Expect::default()).is_ok());
        let ok = Expect {
            md5: Some("B".repeat(32)),
            sha256: Some("a".repeat(64)),
            size: Some(3),
        };
        assert!(check(&info, &ok).is_ok());
        for bad in [
            Expect {
                size: Some(4),
                ..Default::default()
            },
            Expect {
                md5: Some("c".repeat(32)),
                ..Default::default()
            },
            Expect {
                sha256: Some("c".repeat(64)),
                ..Default::default()
            },
        ] {
            assert!(matches!(check(&info, &bad), Err(BlobError::Mismatch(_))));
        }
    }

    #[test]
    fn content_addresses() {
        assert!(valid_sha256(&"0f".repeat(32)));
        assert!(!valid_sha256(&"0F".repeat(32)));
        assert!(!valid_sha256("../etc/passwd"));
    }
}
