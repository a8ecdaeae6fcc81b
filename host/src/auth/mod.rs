//! Tenants and credentials: operator and tenant API keys, the per-device key + secret that
//! gateways receive in their install command, dialect logins (`logins`) and signed requests
//! (`signed`). Secrets are generated here and shown once; plugins hand over what a client sent
//! and get a principal or a refusal, never a secret.

mod attempts;
mod logins;
mod sessions;
mod signed;
pub mod verified;

pub use attempts::{LoginGuard, Refused as AttemptRefused};

pub use logins::{
    ClientCredentials, Grant, GrantError, LoginAccount, LoginKind, TokenIdentity, TokenPolicy,
};
pub use signed::{HmacKeyInfo, SignedIdentity};

use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;

use crate::clock::SharedClock;
use crate::storage::Db;

/// Why an auth operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
    /// A sealed secret could not be opened (wrong or missing master key).
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
}

/// A tenant: the unit every fact and credential belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: i64,
    pub name: String,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The native admin API.
    Operator,
    /// Dialect requests of one tenant.
    Tenant,
}

/// The shape of a generated API key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyFormat {
    /// `ota_` and 40 characters of `[a-z0-9]` (the default).
    #[default]
    Ota,
    /// 40 lower-case hex characters, the shape of a Django REST framework token, which
    /// MXChip's clients send as `Authorization: token <key>`.
    Hex40,
}

/// An API key as listed to operators (never the secret).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub role: Role,
    pub name: String,
    pub tenant: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Who a verified API key belongs to.
#[derive(Debug, Clone)]
pub struct KeyIdentity {
    pub key_id: i64,
    pub role: Role,
    pub name: String,
    pub tenant: Option<Tenant>,
}

/// Credentials handed to a device once.
#[derive(Debug, Clone)]
pub struct DeviceGrant {
    pub device_key: String,
    pub device_secret: String,
}

/// The credential store.
#[derive(Clone)]
pub struct Auth {
    db: Db,
    clock: SharedClock,
    logins: std::sync::Arc<LoginGuard>,
    sealer: std::sync::Arc<crate::secrets::Sealer>,
    verified: std::sync::Arc<verified::Verified>,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A random string over `[a-z0-9]`, like the keys in IoTStack's install command.
fn random_token(len: usize) -> String {
    const CHARSET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARSET[rng.random_range(0..CHARSET.len())] as char)
        .collect()
}

/// A fresh random secret for an operator who did not choose one (32 characters).
pub fn generate_secret() -> String {
    random_token(32)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl Auth {
    /// `sealer` seals the secrets the host must read back (HMAC app secrets).
    pub fn new(db: Db, clock: SharedClock, sealer: std::sync::Arc<crate::secrets::Sealer>) -> Self {
        Auth {
            verified: std::sync::Arc::new(verified::Verified::new(&db)),
            db,
            clock,
            logins: std::sync::Arc::new(LoginGuard::new(&Default::default())),
            sealer,
        }
    }

    /// The same store with the operator's login limits.
    pub fn with_login_limits(self, limits: &crate::config::LoginLimits) -> Self {
        Auth {
            logins: std::sync::Arc::new(LoginGuard::new(limits)),
            ..self
        }
    }

    /// Create a tenant; its name must be new and `[A-Za-z0-9._-]{1,64}`.
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant, AuthError> {
        if !valid_name(name) {
            return Err(AuthError::Invalid(format!(
                "tenant name {name:?} must be 1-64 characters of [A-Za-z0-9._-]"
            )));
        }
        let row =
            sqlx::query("INSERT INTO tenants (name, created_at) VALUES ($1, $2) RETURNING id")
                .bind(name)
                .bind(self.clock.now_millis())
                .fetch_one(self.db.pool())
                .await
                .map_err(|e| {
                    if Db::is_unique_violation(&e) {
                        AuthError::Conflict(format!("tenant {name:?} already exists"))
                    } else {
                        e.into()
                    }
                })?;
        Ok(Tenant {
            id: row.get(0),
            name: name.to_string(),
        })
    }

    /// The tenant with this name, created if missing (declarative provisioning).
    pub async fn ensure_tenant(&self, name: &str) -> Result<Tenant, AuthError> {
        match self.tenant(name).await {
            Err(AuthError::NotFound(_)) => match self.create_tenant(name).await {
                // Another replica provisioning the same file won the race.
                Err(AuthError::Conflict(_)) => self.tenant(name).await,
                other => other,
            },
            other => other,
        }
    }

    pub async fn tenant(&self, name: &str) -> Result<Tenant, AuthError> {
        let row = self
            .db
            .read_optional(sqlx::query("SELECT id, name FROM tenants WHERE name = $1").bind(name))
            .await?;
        row.map(|r| Tenant {
            id: r.get(0),
            name: r.get(1),
        })
        .ok_or_else(|| AuthError::NotFound(format!("no tenant {name:?}")))
    }

    pub async fn tenant_by_id(&self, id: i64) -> Result<Tenant, AuthError> {
        let row = self
            .db
            .read_optional(sqlx::query("SELECT id, name FROM tenants WHERE id = $1").bind(id))
            .await?;
        row.map(|r| Tenant {
            id: r.get(0),
            name: r.get(1),
        })
        .ok_or_else(|| AuthError::NotFound(format!("no tenant {id}")))
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, AuthError> {
        let rows = sqlx::query("SELECT id, name FROM tenants ORDER BY id")
            .fetch_all(self.db.pool())
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Tenant {
                id: r.get(0),
                name: r.get(1),
            })
            .collect())
    }

    /// Create an API key and return it with its plaintext, which is never stored.
    pub async fn create_api_key(
        &self,
        tenant: Option<&str>,
        name: &str,
    ) -> Result<(ApiKeyInfo, String), AuthError> {
        self.create_api_key_as(tenant, name, KeyFormat::Ota).await
    }

    /// [`Auth::create_api_key`] in a chosen shape, for clients that insist on one.
    pub async fn create_api_key_as(
        &self,
        tenant: Option<&str>,
        name: &str,
        format: KeyFormat,
    ) -> Result<(ApiKeyInfo, String), AuthError> {
        let secret = match format {
            KeyFormat::Ota => format!("ota_{}", random_token(40)),
            KeyFormat::Hex40 => {
                let bytes: [u8; 20] = rand::rng().random();
                hex::encode(bytes)
            }
        };
        let info = self.store_api_key(tenant, name, &secret).await?;
        Ok((info, secret))
    }

    /// Store a key whose plaintext the operator chose (config file); idempotent per key.
    pub async fn import_api_key(
        &self,
        tenant: Option<&str>,
        name: &str,
        key: &str,
    ) -> Result<(), AuthError> {
        if key.len() < 16 {
            return Err(AuthError::Invalid(format!(
                "API key {name:?} is too short (16 characters at least)"
            )));
        }
        match self.store_api_key(tenant, name, key).await {
            Ok(_) | Err(AuthError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn store_api_key(
        &self,
        tenant: Option<&str>,
        name: &str,
        secret: &str,
    ) -> Result<ApiKeyInfo, AuthError> {
        if name.trim().is_empty() {
            return Err(AuthError::Invalid("API key name must not be empty".into()));
        }
        let tenant = match tenant {
            Some(t) => Some(self.tenant(t).await?),
            None => None,
        };
        let role = if tenant.is_some() {
            Role::Tenant
        } else {
            Role::Operator
        };
        let now = self.clock.now_millis();
        let row = sqlx::query(
            "INSERT INTO api_keys (tenant_id, role, name, key_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(tenant.as_ref().map(|t| t.id))
        .bind(if role == Role::Operator {
            "operator"
        } else {
            "tenant"
        })
        .bind(name)
        .bind(hash(secret))
        .bind(now)
        .fetch_one(self.db.pool())
        .await
        .map_err(|e| {
            if Db::is_unique_violation(&e) {
                AuthError::Conflict("that key already exists".into())
            } else {
                e.into()
            }
        })?;
        Ok(ApiKeyInfo {
            id: row.get(0),
            role,
            name: name.to_string(),
            tenant: tenant.map(|t| t.name),
            created_at: now,
            revoked_at: None,
        })
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, AuthError> {
        let rows = sqlx::query(
            "SELECT k.id, k.role, k.name, t.name, k.created_at, k.revoked_at \
             FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id ORDER BY k.id",
        )
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ApiKeyInfo {
                id: r.get(0),
                role: if r.get::<String, _>(1) == "operator" {
                    Role::Operator
                } else {
                    Role::Tenant
                },
                name: r.get(2),
                tenant: r.get(3),
                created_at: r.get(4),
                revoked_at: r.get(5),
            })
            .collect())
    }

    /// Revoke a key; it stops working on the next request. The last live operator key is
    /// refused: without one, nobody could use the admin API again.
    pub async fn revoke_api_key(&self, id: i64) -> Result<(), AuthError> {
        let mut tx = self.db.pool().begin().await?;
        if self.db.backend() == crate::storage::Backend::Postgres {
            // Two revokes racing for the last two operator keys must not both win; SQLite
            // runs the one statement below atomically anyway.
            sqlx::query(
                "SELECT id FROM api_keys WHERE role = 'operator' AND revoked_at IS NULL FOR UPDATE",
            )
            .execute(&mut *tx)
            .await?;
        }
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
               AND (role <> 'operator' OR (SELECT COUNT(*) FROM api_keys \
                 WHERE role = 'operator' AND revoked_at IS NULL) > 1)",
        )
        .bind(self.clock.now_millis())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            let live_operator: Option<String> = sqlx::query_scalar(
                "SELECT role FROM api_keys WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            return Err(match live_operator.as_deref() {
                Some("operator") => AuthError::Conflict(
                    "this is the last operator key; create another one before revoking it".into(),
                ),
                _ => AuthError::NotFound(format!("no active API key {id}")),
            });
        }
        tx.commit().await?;
        self.credentials_ended().await
    }

    /// Verify an API key as a client sent it.
    pub async fn verify_api_key(&self, key: &str) -> Result<KeyIdentity, AuthError> {
        let key_hash = hash(key);
        if let Some(id) = self.verified.key(&key_hash) {
            return Ok(id);
        }
        let generation = self.verified.generation();
        let row = self
            .db
            .read_optional(
                sqlx::query(
                    "SELECT k.id, k.role, k.name, t.id, t.name FROM api_keys k \
             LEFT JOIN tenants t ON t.id = k.tenant_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
                )
                .bind(&key_hash),
            )
            .await?
            .ok_or_else(|| AuthError::Unauthenticated("unknown or revoked API key".into()))?;
        let tenant_id: Option<i64> = row.get(3);
        let id = KeyIdentity {
            key_id: row.get(0),
            role: if row.get::<String, _>(1) == "operator" {
                Role::Operator
            } else {
                Role::Tenant
            },
            name: row.get(2),
            tenant: tenant_id.map(|id| Tenant {
                id,
                name: row.get(4),
            }),
        };
        self.verified.keep_key(generation, key_hash, id.clone());
        Ok(id)
    }

    /// Issue a fresh secret for a device (its key stays stable); the previous secret dies.
    pub async fn issue_device_secret(&self, device_id: i64) -> Result<DeviceGrant, AuthError> {
        let secret = random_token(16);
        let now = self.clock.now_millis();
        // One statement, so two first contacts at once converge instead of one failing.
        let device_key: String = sqlx::query_scalar(
            "INSERT INTO device_credentials (device_id, device_key, secret_hash, issued_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (device_id) DO UPDATE \
               SET secret_hash = excluded.secret_hash, issued_at = excluded.issued_at \
             RETURNING device_key",
        )
        .bind(device_id)
        .bind(random_token(16))
        .bind(hash(&secret))
        .bind(now)
        .fetch_one(self.db.pool())
        .await?;
        Ok(DeviceGrant {
            device_key,
            device_secret: secret,
        })
    }

    /// Verify a device's key and secret; answers the device id.
    pub async fn verify_device_secret(&self, key: &str, secret: &str) -> Result<i64, AuthError> {
        let refused = || AuthError::Unauthenticated("unknown device key or wrong secret".into());
        let row = self
            .db
            .read_optional(
                sqlx::query(
                    "SELECT device_id, secret_hash FROM device_credentials WHERE device_key = $1",
                )
                .bind(key),
            )
            .await?
            .ok_or_else(refused)?;
        let stored: String = row.get(1);
        if bool::from(stored.as_bytes().ct_eq(hash(secret).as_bytes())) {
            Ok(row.get(0))
        } else {
            Err(refused())
        }
    }

    /// The device a (public) device key names, if any.
    pub async fn device_by_key(&self, key: &str) -> Result<Option<i64>, AuthError> {
        Ok(
            sqlx::query_scalar("SELECT device_id FROM device_credentials WHERE device_key = $1")
                .bind(key)
                .fetch_optional(self.db.pool())
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_names() {
        let t = random_token(16);
        assert_eq!(t.len(), 16);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert_ne!(random_token(16), t);
        assert!(valid_name("acme-1"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(""));
        assert_eq!(hash("x").len(), 64);
    }
}
