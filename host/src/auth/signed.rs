//! Signed requests: application keys whose secret signs each request with HMAC-SHA1 (CTWing's
//! App Key / App Secret; the host must read it back, so it is sealed with the master key),
//! checked in constant time with a timestamp window against replays, and product-level keys
//! sent in clear with every call (CTWing's MasterKey, XLINK's authorize code), kept as a salted
//! SHA-256. The dialect builds the string to sign; the secret never leaves the host.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sqlx::Row;
use subtle::ConstantTimeEq;

use sha2::{Digest, Sha256};

use super::{Auth, AuthError, Tenant, random_token};
use crate::secrets::Sealer;

/// The column the sealed app secrets live in (bound into each sealed value).
const APP_SECRET: &str = "hmac_keys.secret";

/// How a product key is kept: `s1$<salt hex>$<hex SHA-256(salt ‖ SHA-256(key))>`. Product keys
/// are checked on every device login of a fleet, so a fast hash; the per-key salt keeps equal
/// keys from looking equal. Hashing the unsalted digest lets keys stored before salting (a
/// bare hex SHA-256) be salted in place, without the key.
fn salted_product_key(inner: &[u8]) -> String {
    let salt: [u8; 16] = rand::random();
    let mut h = Sha256::new();
    h.update(salt);
    h.update(inner);
    format!("s1${}${}", hex::encode(salt), hex::encode(h.finalize()))
}

/// Whether `key` matches a stored product key (salted, or a bare digest not yet migrated).
fn product_key_matches(stored: &str, key: &str) -> bool {
    let inner = Sha256::digest(key.as_bytes());
    match stored.split('$').collect::<Vec<_>>().as_slice() {
        ["s1", salt, digest] => {
            let Ok(salt) = hex::decode(salt) else {
                return false;
            };
            let mut h = Sha256::new();
            h.update(&salt);
            h.update(inner);
            let got = hex::encode(h.finalize());
            bool::from(got.as_bytes().ct_eq(digest.as_bytes()))
        }
        [bare] => bool::from(bare.as_bytes().ct_eq(hex::encode(inner).as_bytes())),
        _ => false,
    }
}
use crate::runtime::plugin::valid_plugin_name;

/// An application key as operators see it (never the secret).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct HmacKeyInfo {
    pub id: i64,
    pub tenant: String,
    /// The plugin (mount name) whose requests it signs.
    pub realm: String,
    pub app_key: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Who a verified signature came from.
#[derive(Debug, Clone)]
pub struct SignedIdentity {
    pub tenant: Tenant,
    pub app_key: String,
}

/// The length of a generated product key: 24 of `[a-z0-9]` (about 124 bits) fit device
/// firmware that keeps the key in a 32-byte C string (XLINK's `authorize_code`).
pub const GENERATED_PRODUCT_KEY_LEN: usize = 24;

/// The shortest product key the host generates (about 83 bits).
const GENERATED_PRODUCT_KEY_MIN: usize = 16;

fn printable(what: &str, v: &str, max: usize) -> Result<(), AuthError> {
    if v.is_empty() || v.len() > max || v.chars().any(|c| c.is_control() || c == ' ') {
        return Err(AuthError::Invalid(format!(
            "{what} must be 1-{max} printable characters without spaces"
        )));
    }
    Ok(())
}

impl Auth {
    /// Create an application key for one plugin; key and secret are generated unless given.
    /// Answers the key's facts and its secret (shown once).
    pub async fn create_hmac_key(
        &self,
        tenant: &str,
        realm: &str,
        app_key: Option<&str>,
        secret: Option<&str>,
    ) -> Result<(HmacKeyInfo, String), AuthError> {
        if !valid_plugin_name(realm) {
            return Err(AuthError::Invalid(format!(
                "realm {realm:?} must be a plugin name (1-64 characters of [a-z0-9-])"
            )));
        }
        let app_key = app_key.map_or_else(|| random_token(11), str::to_string);
        let secret = secret.map_or_else(|| random_token(32), str::to_string);
        printable("app key", &app_key, 128)?;
        printable("app secret", &secret, 256)?;
        let t = self.tenant(tenant).await?;
        let now = self.clock.now_millis();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO hmac_keys (tenant_id, realm, app_key, secret, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(t.id)
        .bind(realm)
        .bind(&app_key)
        .bind(self.sealer.seal(&secret, APP_SECRET))
        .bind(now)
        .fetch_one(self.db.pool())
        .await
        .map_err(|e| {
            if crate::storage::Db::is_unique_violation(&e) {
                AuthError::Conflict(format!("plugin {realm:?} already has app key {app_key:?}"))
            } else {
                e.into()
            }
        })?;
        Ok((
            HmacKeyInfo {
                id,
                tenant: t.name,
                realm: realm.to_string(),
                app_key,
                created_at: now,
                revoked_at: None,
            },
            secret,
        ))
    }

    /// A tenant's application keys, oldest first.
    pub async fn list_hmac_keys(&self, tenant: &str) -> Result<Vec<HmacKeyInfo>, AuthError> {
        let t = self.tenant(tenant).await?;
        let rows = sqlx::query(
            "SELECT id, realm, app_key, created_at, revoked_at FROM hmac_keys \
             WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(t.id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| HmacKeyInfo {
                id: r.get(0),
                tenant: t.name.clone(),
                realm: r.get(1),
                app_key: r.get(2),
                created_at: r.get(3),
                revoked_at: r.get(4),
            })
            .collect())
    }

    /// Revoke an application key: its signatures stop verifying at once.
    pub async fn revoke_hmac_key(&self, tenant: &str, id: i64) -> Result<(), AuthError> {
        let t = self.tenant(tenant).await?;
        let done = sqlx::query(
            "UPDATE hmac_keys SET revoked_at = $1 \
             WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL",
        )
        .bind(self.clock.now_millis())
        .bind(id)
        .bind(t.id)
        .execute(self.db.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(AuthError::NotFound(format!("no active app key {id}")));
        }
        Ok(())
    }

    /// Verify `signature` = HMAC-SHA1(secret of `app_key`, `message`) for a key of `realm`,
    /// and, when given, that `timestamp_ms` is within `max_skew_secs` of the host's clock.
    pub async fn verify_hmac_sha1(
        &self,
        realm: &str,
        app_key: &str,
        message: &[u8],
        signature: &[u8],
        timestamp_ms: Option<i64>,
        max_skew_secs: u64,
    ) -> Result<SignedIdentity, AuthError> {
        if let Some(ts) = timestamp_ms {
            let skew = self.clock.now_millis().abs_diff(ts);
            if skew > max_skew_secs.saturating_mul(1000) {
                return Err(AuthError::Unauthenticated(format!(
                    "timestamp {ts} is more than {max_skew_secs} s away from the server's clock"
                )));
            }
        }
        let q = sqlx::query(
            "SELECT k.secret, t.id, t.name FROM hmac_keys k JOIN tenants t ON t.id = k.tenant_id \
             WHERE k.realm = $1 AND k.app_key = $2 AND k.revoked_at IS NULL",
        )
        .bind(realm)
        .bind(app_key);
        let row = self.db.read_optional(q).await?.ok_or_else(|| {
            AuthError::Unauthenticated(format!("unknown application {app_key:?}"))
        })?;
        let secret = self.sealer.open(&row.get::<String, _>(0), APP_SECRET)?;
        let expected = hmac_sha1(secret.as_bytes(), message);
        if !bool::from(expected.as_slice().ct_eq(signature)) {
            return Err(AuthError::Unauthenticated("signature mismatch".into()));
        }
        Ok(SignedIdentity {
            tenant: Tenant {
                id: row.get(1),
                name: row.get(2),
            },
            app_key: app_key.to_string(),
        })
    }

    /// Set a product's key (generated with `generated_len` characters, default
    /// [`GENERATED_PRODUCT_KEY_LEN`], unless given; a given length is checked either way and
    /// unused with a key); answers it (shown once). Tokens devices
    /// earned with the old key (device logins) are revoked with it.
    pub async fn set_product_key(
        &self,
        product_id: i64,
        key: Option<&str>,
        generated_len: Option<usize>,
    ) -> Result<String, AuthError> {
        let len = generated_len.unwrap_or(GENERATED_PRODUCT_KEY_LEN);
        if !(GENERATED_PRODUCT_KEY_MIN..=256).contains(&len) {
            return Err(AuthError::Invalid(format!(
                "a generated product key has {GENERATED_PRODUCT_KEY_MIN}-256 characters"
            )));
        }
        let key = key.map_or_else(|| random_token(len), str::to_string);
        printable("product key", &key, 256)?;
        let now = self.clock.now_millis();
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(
            "UPDATE login_tokens SET revoked_at = $1 \
             WHERE device_product_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(product_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO product_keys (product_id, key_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (product_id) DO UPDATE SET key_hash = excluded.key_hash, \
               created_at = excluded.created_at",
        )
        .bind(product_id)
        .bind(salted_product_key(&Sha256::digest(key.as_bytes())))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // Device tokens earned with the old key died.
        self.credentials_ended().await?;
        Ok(key)
    }

    /// Check a product key as a client sent it; a product without a key refuses every key.
    pub async fn verify_product_key(&self, product_id: i64, key: &str) -> Result<(), AuthError> {
        let q =
            sqlx::query("SELECT key_hash FROM product_keys WHERE product_id = $1").bind(product_id);
        let stored: Option<String> = self.db.read_optional(q).await?.map(|r| r.get(0));
        match stored {
            Some(h) if product_key_matches(&h, key) => Ok(()),
            _ => Err(AuthError::Unauthenticated(
                "wrong product key (MasterKey)".into(),
            )),
        }
    }

    /// Bring the stored secrets up to date, in place: app secrets kept in clear (before
    /// sealing) or sealed with an older master key are sealed with the current one, and bare
    /// product-key digests are salted. Answers how many values were rewritten.
    pub async fn reseal_secrets(&self) -> Result<u64, AuthError> {
        let mut done = 0;
        let rows = sqlx::query("SELECT id, secret FROM hmac_keys")
            .fetch_all(self.db.pool())
            .await?;
        for r in rows {
            let (id, stored): (i64, String) = (r.get(0), r.get(1));
            if !self.sealer.stale(&stored) {
                continue;
            }
            let plain = if Sealer::is_sealed(&stored) {
                self.sealer.open(&stored, APP_SECRET)?
            } else {
                stored.clone()
            };
            done += sqlx::query("UPDATE hmac_keys SET secret = $1 WHERE id = $2 AND secret = $3")
                .bind(self.sealer.seal(&plain, APP_SECRET))
                .bind(id)
                .bind(&stored)
                .execute(self.db.pool())
                .await?
                .rows_affected();
        }
        let rows = sqlx::query("SELECT product_id, key_hash FROM product_keys")
            .fetch_all(self.db.pool())
            .await?;
        for r in rows {
            let (id, stored): (i64, String) = (r.get(0), r.get(1));
            let Ok(inner) = hex::decode(&stored) else {
                continue; // salted already
            };
            done += sqlx::query(
                "UPDATE product_keys SET key_hash = $1 WHERE product_id = $2 AND key_hash = $3",
            )
            .bind(salted_product_key(&inner))
            .bind(id)
            .bind(&stored)
            .execute(self.db.pool())
            .await?
            .rows_affected();
        }
        Ok(done)
    }
}

fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this never fails; an empty answer could only
    // fail verification, never pass it.
    <Hmac<Sha1> as Mac>::new_from_slice(key)
        .map(|mut mac| {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::auth::hash;

    #[test]
    fn product_keys_are_salted_and_old_digests_still_match() {
        let a = salted_product_key(&Sha256::digest(b"master-key"));
        let b = salted_product_key(&Sha256::digest(b"master-key"));
        assert_ne!(a, b, "salted");
        assert!(!a.contains(&hash("master-key")));
        assert!(product_key_matches(&a, "master-key"));
        assert!(!product_key_matches(&a, "master-kez"));
        let legacy = hash("master-key");
        assert!(product_key_matches(&legacy, "master-key"));
        let migrated = salted_product_key(&hex::decode(&legacy).unwrap());
        assert!(product_key_matches(&migrated, "master-key"));
        assert!(!product_key_matches("s1$zz$00", "master-key"));
    }

    /// RFC 2202 test case 2.
    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        assert_eq!(
            hex::encode(hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }
}
