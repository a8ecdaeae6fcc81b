//! Browser-form uploads in Aliyun OSS's PostObject dialect, so vendor consoles and uploaders
//! written for OSS can put firmware here unchanged. A dialect asks for a signed *policy*
//! (what may be uploaded, until when); the uploader posts it back with the file; this module
//! checks the signature and every condition, and names the stored blob by its object key in
//! the tenant's bucket. The wire format (multipart, XML errors, callbacks) is `http::oss`.

use crate::secrets::Sealer;
use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sqlx::Row;

use crate::clock::SharedClock;
use crate::storage::Db;

/// Why an upload was refused; each case is one of OSS's error codes at the edge.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The access id names no upload key.
    #[error("The OSS Access Key Id you provided does not exist in our records.")]
    UnknownAccessId,
    /// The signature does not match the policy.
    #[error("The request signature we calculated does not match the signature you provided.")]
    BadSignature,
    /// The policy's expiration has passed.
    #[error("Invalid according to Policy: Policy expired.")]
    Expired,
    /// A field does not satisfy a condition of the policy.
    #[error("Invalid according to Policy: Policy Condition failed: {0}")]
    Condition(String),
    /// The policy is not a policy document we can read.
    #[error("{0}")]
    BadPolicy(String),
    /// A dialect asked for a policy outside the rules.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
}

/// A tenant's upload credential: `access_id` is public, `secret` signs policies.
#[derive(Debug, Clone)]
pub struct UploadKey {
    pub tenant_id: i64,
    pub access_id: String,
    secret: String,
}

/// Where OSS posts after storing, as a dialect asks for it: an absolute URL on this host and
/// a body template with `${object}`, `${size}`, ... variables.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Callback {
    #[serde(rename = "callbackUrl")]
    pub url: String,
    #[serde(rename = "callbackBody")]
    pub body: String,
    #[serde(rename = "callbackBodyType", default = "form_type")]
    pub body_type: String,
    /// The plugin that asked for the form: the only one the callback is delivered to.
    #[serde(
        rename = "callbackPlugin",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub plugin: Option<String>,
}

fn form_type() -> String {
    "application/x-www-form-urlencoded".to_string()
}

impl Callback {
    /// The `callback` form field: base64 of the JSON document.
    pub fn encode(&self) -> String {
        B64.encode(serde_json::to_vec(self).expect("a callback serializes"))
    }

    /// Read a `callback` form field.
    pub fn decode(field: &str) -> Result<Self, UploadError> {
        let raw = B64
            .decode(field.trim())
            .map_err(|_| UploadError::Invalid("callback is not base64".into()))?;
        serde_json::from_slice(&raw)
            .map_err(|e| UploadError::Invalid(format!("callback is not a callback document: {e}")))
    }
}

/// A signed upload form, field for field what OSS's token services hand to uploaders.
#[derive(Debug, Clone)]
pub struct PostPolicy {
    pub access_id: String,
    /// The URL to post the form to (this host's bucket for the tenant).
    pub host: String,
    /// Base64 of the policy document.
    pub policy: String,
    /// Base64 of HMAC-SHA1(secret, policy).
    pub signature: String,
    /// Expiry, Unix seconds.
    pub expire: i64,
    pub dir: String,
    /// Base64 of the callback document, empty without one.
    pub callback: String,
}

/// One condition of a policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The form field (lower-case name without `$`) equals the value.
    Eq(String, String),
    /// The form field starts with the value.
    StartsWith(String, String),
    /// The form field is one of the values (an absent field counts as empty).
    In(String, Vec<String>),
    /// The file's size in bytes is within the range (inclusive).
    LengthRange(u64, u64),
}

/// A decoded policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub expires_millis: i64,
    pub conditions: Vec<Condition>,
}

impl Policy {
    /// Decode a base64 policy (`{"expiration": ISO 8601, "conditions": [...]}`).
    pub fn decode(b64: &str) -> Result<Self, UploadError> {
        let bad = |m: &str| UploadError::BadPolicy(format!("Invalid Policy: {m}"));
        let raw = B64.decode(b64.trim()).map_err(|_| bad("not base64"))?;
        let doc: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| bad("not JSON"))?;
        let expiration = doc
            .get("expiration")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("no expiration"))?;
        let at =
            time::OffsetDateTime::parse(expiration, &time::format_description::well_known::Rfc3339)
                .map_err(|_| bad("expiration is not an ISO 8601 time"))?;
        let expires_millis = (at.unix_timestamp_nanos() / 1_000_000) as i64;
        let mut conditions = Vec::new();
        for c in doc
            .get("conditions")
            .and_then(|v| v.as_array())
            .ok_or_else(|| bad("no conditions"))?
        {
            conditions.push(condition(c).ok_or_else(|| bad(&format!("condition {c}")))?);
        }
        Ok(Policy {
            expires_millis,
            conditions,
        })
    }

    /// Check the form's fields (lower-case names) against every non-size condition.
    pub fn check_fields(&self, fields: &BTreeMap<String, String>) -> Result<(), UploadError> {
        for c in &self.conditions {
            let (name, ok) = match c {
                Condition::Eq(f, v) => (f, fields.get(f) == Some(v)),
                Condition::StartsWith(f, v) => {
                    (f, fields.get(f).is_some_and(|x| x.starts_with(v.as_str())))
                }
                Condition::In(f, vs) => {
                    let got = fields.get(f).map_or("", String::as_str);
                    (f, vs.iter().any(|v| v == got))
                }
                Condition::LengthRange(..) => continue,
            };
            if !ok {
                return Err(UploadError::Condition(describe(c, name)));
            }
        }
        Ok(())
    }

    /// Whether a condition names exactly this value for the field (`eq`, or among `in`'s).
    pub fn pins(&self, field: &str, value: &str) -> bool {
        self.conditions.iter().any(|c| match c {
            Condition::Eq(f, v) => f == field && v == value,
            Condition::In(f, vs) => f == field && vs.iter().any(|v| v == value),
            _ => false,
        })
    }

    /// The largest size any length condition allows, if one limits it.
    pub fn max_size(&self) -> Option<u64> {
        self.conditions
            .iter()
            .filter_map(|c| match c {
                Condition::LengthRange(_, max) => Some(*max),
                _ => None,
            })
            .min()
    }

    /// Check the stored file's size against the length conditions.
    pub fn check_size(&self, size: u64) -> Result<(), UploadError> {
        for c in &self.conditions {
            if let Condition::LengthRange(min, max) = c
                && !(*min..=*max).contains(&size)
            {
                return Err(UploadError::Condition(format!(
                    "[\"content-length-range\", {min}, {max}]"
                )));
            }
        }
        Ok(())
    }
}

fn describe(c: &Condition, name: &str) -> String {
    match c {
        Condition::Eq(_, v) => format!("[\"eq\", \"${name}\", \"{v}\"]"),
        Condition::StartsWith(_, v) => format!("[\"starts-with\", \"${name}\", \"{v}\"]"),
        Condition::LengthRange(a, b) => format!("[\"content-length-range\", {a}, {b}]"),
        Condition::In(_, vs) => format!("[\"in\", \"${name}\", {vs:?}]"),
    }
}

fn condition(c: &serde_json::Value) -> Option<Condition> {
    let field = |v: &serde_json::Value| {
        v.as_str()
            .map(|s| s.strip_prefix('$').unwrap_or(s).to_ascii_lowercase())
    };
    if let Some(obj) = c.as_object() {
        // `{"bucket": "b"}` is shorthand for `["eq", "$bucket", "b"]`.
        let (k, v) = obj.iter().next().filter(|_| obj.len() == 1)?;
        return Some(Condition::Eq(
            k.to_ascii_lowercase(),
            v.as_str()?.to_string(),
        ));
    }
    let a = c.as_array()?;
    let op = a.first()?.as_str()?.to_ascii_lowercase();
    match (op.as_str(), a.len()) {
        ("eq", 3) => Some(Condition::Eq(field(&a[1])?, a[2].as_str()?.to_string())),
        ("starts-with", 3) => Some(Condition::StartsWith(
            field(&a[1])?,
            a[2].as_str()?.to_string(),
        )),
        ("in", 3) => Some(Condition::In(
            field(&a[1])?,
            a[2].as_array()?
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()?,
        )),
        ("content-length-range", 3) => {
            let n = |v: &serde_json::Value| v.as_u64().or_else(|| v.as_str()?.parse().ok());
            Some(Condition::LengthRange(n(&a[1])?, n(&a[2])?))
        }
        _ => None,
    }
}

/// Base64 of HMAC-SHA1(secret, policy): OSS's V1 POST signature.
fn sign(secret: &str, policy_b64: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(policy_b64.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// A stored object: its key in the bucket and the blob it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub sha256: String,
    pub content_type: String,
    pub created_at: i64,
}

/// The upload service.
#[derive(Clone)]
pub struct Uploads {
    db: Db,
    clock: SharedClock,
    max_bytes: u64,
    sealer: std::sync::Arc<Sealer>,
}

/// The column the sealed upload signing secrets live in.
const UPLOAD_SECRET: &str = "upload_keys.secret";

/// Object keys are what OSS allows, minus what would make URLs ambiguous here (`?`, `#`,
/// `%`, `\`, whitespace, `..` segments): a key is its URL path as is.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 1023
        && !key.starts_with('/')
        && !key
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "?#%\\".contains(c))
        && !key.split('/').any(|seg| seg == "..")
}

impl Uploads {
    /// `max_bytes` caps every policy (the operator's upload limit); `sealer` keeps the
    /// signing secrets sealed at rest.
    pub fn new(db: Db, clock: SharedClock, max_bytes: u64, sealer: std::sync::Arc<Sealer>) -> Self {
        Uploads {
            db,
            clock,
            max_bytes,
            sealer,
        }
    }

    /// Seal signing secrets kept in clear (before sealing) or under an older master key with
    /// the current one, in place. Answers how many were rewritten.
    pub async fn reseal_secrets(&self) -> Result<u64, UploadError> {
        let rows = sqlx::query("SELECT tenant_id, secret FROM upload_keys")
            .fetch_all(self.db.pool())
            .await?;
        let mut done = 0;
        for r in rows {
            let (tenant, stored): (i64, String) = (r.get(0), r.get(1));
            if !self.sealer.stale(&stored) {
                continue;
            }
            let plain = if Sealer::is_sealed(&stored) {
                self.sealer.open(&stored, UPLOAD_SECRET)?
            } else {
                stored.clone()
            };
            done += sqlx::query(
                "UPDATE upload_keys SET secret = $1 WHERE tenant_id = $2 AND secret = $3",
            )
            .bind(self.sealer.seal(&plain, UPLOAD_SECRET))
            .bind(tenant)
            .bind(&stored)
            .execute(self.db.pool())
            .await?
            .rows_affected();
        }
        Ok(done)
    }

    /// The operator's upload limit, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The tenant's upload key, created on first use (nothing for operators to provision).
    pub async fn key_for(&self, tenant_id: i64) -> Result<UploadKey, UploadError> {
        let access_id = format!("LTAI{}", hex::encode_upper(rand::random::<[u8; 8]>()));
        let secret = hex::encode(rand::random::<[u8; 20]>());
        sqlx::query(
            "INSERT INTO upload_keys (tenant_id, access_id, secret, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(&access_id)
        .bind(self.sealer.seal(&secret, UPLOAD_SECRET))
        .bind(self.clock.now_millis())
        .execute(self.db.pool())
        .await?;
        let row = self
            .db
            .read_one(
                sqlx::query("SELECT access_id, secret FROM upload_keys WHERE tenant_id = $1")
                    .bind(tenant_id),
            )
            .await?;
        Ok(UploadKey {
            tenant_id,
            access_id: row.get(0),
            secret: self.sealer.open(&row.get::<String, _>(1), UPLOAD_SECRET)?,
        })
    }

    /// Replace a tenant's upload key: every policy signed with the old one stops working.
    pub async fn rotate_key(&self, tenant_id: i64) -> Result<UploadKey, UploadError> {
        sqlx::query("DELETE FROM upload_keys WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(self.db.pool())
            .await?;
        self.key_for(tenant_id).await
    }

    /// Sign a policy for uploads under `dir` of at most `max_bytes`, valid for `ttl_secs`.
    /// A callback becomes a condition of the policy (that form field may be absent or this
    /// callback), so an uploader may skip it but cannot redirect it.
    pub async fn issue(
        &self,
        tenant_id: i64,
        bucket_url: &str,
        dir: &str,
        max_bytes: u64,
        ttl_secs: u32,
        callback: Option<&Callback>,
    ) -> Result<PostPolicy, UploadError> {
        if !dir.is_empty() && !valid_key(dir) {
            return Err(UploadError::Invalid(format!(
                "{dir:?} is not a valid key prefix"
            )));
        }
        if !(1..=7 * 86_400).contains(&ttl_secs) {
            return Err(UploadError::Invalid(
                "a policy lives 1 second to 7 days".into(),
            ));
        }
        let key = self.key_for(tenant_id).await?;
        let expire = self.clock.now_millis() / 1000 + i64::from(ttl_secs);
        let expiration = time::OffsetDateTime::from_unix_timestamp(expire)
            .map_err(|e| UploadError::Invalid(e.to_string()))?
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| UploadError::Invalid(e.to_string()))?;
        let encoded_callback = callback.map(Callback::encode).unwrap_or_default();
        let mut conditions = vec![
            serde_json::json!(["content-length-range", 0, max_bytes.min(self.max_bytes)]),
            serde_json::json!(["starts-with", "$key", dir]),
        ];
        if callback.is_some() {
            conditions.push(serde_json::json!([
                "in",
                "$callback",
                ["", encoded_callback]
            ]));
        }
        let doc = serde_json::json!({ "expiration": expiration, "conditions": conditions });
        let policy = B64.encode(doc.to_string());
        Ok(PostPolicy {
            signature: sign(&key.secret, &policy),
            access_id: key.access_id,
            host: bucket_url.to_string(),
            policy,
            expire,
            dir: dir.to_string(),
            callback: encoded_callback,
        })
    }

    /// Check a posted form's credentials: the access id must be the bucket tenant's, the
    /// signature must match and the policy must not have expired. Answers the policy.
    pub async fn authorize(
        &self,
        tenant_id: i64,
        access_id: &str,
        policy_b64: &str,
        signature: &str,
    ) -> Result<Policy, UploadError> {
        let row = self
            .db
            .read_optional(
                sqlx::query("SELECT tenant_id, secret FROM upload_keys WHERE access_id = $1")
                    .bind(access_id),
            )
            .await?
            .ok_or(UploadError::UnknownAccessId)?;
        if row.get::<i64, _>(0) != tenant_id {
            return Err(UploadError::UnknownAccessId);
        }
        let secret = self.sealer.open(&row.get::<String, _>(1), UPLOAD_SECRET)?;
        let expected = sign(&secret, policy_b64);
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), signature.trim().as_bytes()).into();
        if !same {
            return Err(UploadError::BadSignature);
        }
        let policy = Policy::decode(policy_b64)?;
        if self.clock.now_millis() > policy.expires_millis {
            return Err(UploadError::Expired);
        }
        Ok(policy)
    }

    /// Name a stored blob by a key in the tenant's bucket (replacing what the key named).
    pub async fn put_object(
        &self,
        tenant_id: i64,
        key: &str,
        sha256: &str,
        content_type: &str,
    ) -> Result<StoredObject, UploadError> {
        let now = self.clock.now_millis();
        sqlx::query(
            "INSERT INTO upload_objects (tenant_id, object_key, blob_sha256, content_type, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, object_key) DO UPDATE SET \
             blob_sha256 = excluded.blob_sha256, content_type = excluded.content_type, \
             created_at = excluded.created_at",
        )
        .bind(tenant_id)
        .bind(key)
        .bind(sha256)
        .bind(content_type)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(StoredObject {
            key: key.to_string(),
            sha256: sha256.to_string(),
            content_type: content_type.to_string(),
            created_at: now,
        })
    }

    /// The object a key names in the tenant's bucket.
    pub async fn object(
        &self,
        tenant_id: i64,
        key: &str,
    ) -> Result<Option<StoredObject>, UploadError> {
        let row = self
            .db
            .read_optional(
                sqlx::query(
                    "SELECT object_key, blob_sha256, content_type, created_at FROM upload_objects \
             WHERE tenant_id = $1 AND object_key = $2",
                )
                .bind(tenant_id)
                .bind(key),
            )
            .await?;
        Ok(row.map(|r| StoredObject {
            key: r.get(0),
            sha256: r.get(1),
            content_type: r.get(2),
            created_at: r.get(3),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oss_signature_vector() {
        // A PostObject policy in Aliyun's documented shape; the signature was computed with
        // Python's hmac/hashlib/base64.
        let policy = "eyJleHBpcmF0aW9uIjoiMjAxNC0xMi0wMVQxMjowMDowMC4wMDBaIiwiY29uZGl0aW9ucyI6W3siYnVja2V0Ijoiam9obnNtaXRoIn0sWyJzdGFydHMtd2l0aCIsIiRrZXkiLCJ1c2VyL2VyaWMvIl1dfQ==";
        let sig = sign("OtxrzxIsfpFjA7SwPzILwy8Bw21TLhquhboDYROV", policy);
        let p = Policy::decode(policy).unwrap();
        assert_eq!(p.conditions.len(), 2);
        assert_eq!(
            p.conditions[0],
            Condition::Eq("bucket".into(), "johnsmith".into())
        );
        assert_eq!(
            p.conditions[1],
            Condition::StartsWith("key".into(), "user/eric/".into())
        );
        assert_eq!(p.expires_millis, 1_417_435_200_000);
        assert_eq!(sig, "J18ktWpx+03SAMpPzLvetM35nuo=");
    }

    #[test]
    fn conditions() {
        let p = Policy {
            expires_millis: 0,
            conditions: vec![
                Condition::StartsWith("key".into(), "ota/".into()),
                Condition::In("callback".into(), vec!["".into(), "cb".into()]),
                Condition::LengthRange(1, 10),
            ],
        };
        let mut f = BTreeMap::from([
            ("key".to_string(), "ota/a.bin".to_string()),
            ("callback".to_string(), "cb".to_string()),
        ]);
        assert!(p.check_fields(&f).is_ok());
        f.insert("key".into(), "other/a.bin".into());
        assert!(matches!(p.check_fields(&f), Err(UploadError::Condition(_))));
        f.insert("key".into(), "ota/a.bin".into());
        f.remove("callback");
        assert!(p.check_fields(&f).is_ok(), "the callback may be left out");
        f.insert("callback".into(), "elsewhere".into());
        assert!(matches!(p.check_fields(&f), Err(UploadError::Condition(_))));
        assert_eq!(p.max_size(), Some(10));
        assert!(p.check_size(10).is_ok());
        assert!(p.check_size(0).is_err() && p.check_size(11).is_err());
        assert!(valid_key("ota/x.bin") && !valid_key("ota/../x") && !valid_key("/x"));
        for bad in ["ota/a?b", "ota/a#b", "ota/a%20b", "ota/a b", "ota\\a"] {
            assert!(!valid_key(bad), "{bad}");
        }
        assert!(p.pins("callback", "cb") && p.pins("callback", ""));
        assert!(!p.pins("callback", "other") && !p.pins("key", "ota/"));
    }
}
