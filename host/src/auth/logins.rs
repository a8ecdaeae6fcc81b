//! Dialect logins: user accounts and client applications the operator provisions for one
//! plugin (its realm), and the bearer tokens they earn through OAuth2's password and refresh
//! grants. Passwords and client secrets are kept as Argon2id hashes; tokens are random and
//! kept as SHA-256 hashes, expire, rotate on refresh and can be revoked.

use std::net::IpAddr;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use rand::Rng;
use sqlx::Row;

use super::attempts::Refused;
use super::{Auth, AuthError, Tenant, hash};
use crate::runtime::plugin::valid_plugin_name;

/// What a login account is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LoginKind {
    /// A person or robot that logs in with a username and password.
    User,
    /// A client application (OAuth2 `client_id` / `client_secret`).
    Client,
}

impl LoginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginKind::User => "user",
            LoginKind::Client => "client",
        }
    }
}

/// A login account as operators see it (never the secret).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LoginAccount {
    pub id: i64,
    pub tenant: String,
    /// The plugin (mount name) whose requests accept it.
    pub realm: String,
    pub kind: LoginKind,
    pub name: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

/// A client as presented in a grant request.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: String,
}

/// How long issued tokens live, per plugin.
#[derive(Debug, Clone, Copy)]
pub struct TokenPolicy {
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
}

/// A freshly issued token pair.
#[derive(Debug, Clone)]
pub struct Grant {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub tenant: Tenant,
    /// The user's name (empty for a device's pair).
    pub subject: String,
    /// The device a device login's pair is confined to.
    pub device_id: Option<i64>,
}

/// Who a verified access token acts for.
#[derive(Debug, Clone)]
pub struct TokenIdentity {
    pub tenant: Tenant,
    /// The user's name (empty for a device's token).
    pub subject: String,
    /// The device a device login's token is confined to.
    pub device_id: Option<i64>,
}

/// Whom a token pair is issued to: a login account, or a device that logged in with its
/// product's key.
enum TokenOwner<'a> {
    Account(&'a AccountRow),
    Device {
        tenant: &'a Tenant,
        device_id: i64,
        /// The product whose key the device logged in with.
        product_id: i64,
    },
}

/// Why a grant was refused, in OAuth2's terms.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{0}")]
    InvalidClient(String),
    #[error("{0}")]
    InvalidGrant(String),
    /// Too many attempts from the client's address or for the account; nothing was checked.
    #[error("too many attempts; retry in {0} s")]
    Throttled(u32),
    /// Every credential-check slot and waiting place is taken; nothing was checked.
    #[error("credential checks are saturated; retry shortly")]
    Busy,
    #[error(transparent)]
    Other(#[from] AuthError),
}

impl From<Refused> for GrantError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Throttled(s) => GrantError::Throttled(s),
            Refused::Busy => GrantError::Busy,
        }
    }
}

impl From<sqlx::Error> for GrantError {
    fn from(e: sqlx::Error) -> Self {
        GrantError::Other(e.into())
    }
}

fn slow_hash(secret: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Invalid(format!("cannot hash the secret: {e}")))
}

thread_local! {
    /// Argon2's working memory, kept by each hashing thread and reused by every check it
    /// runs: allocating ~19 MiB per check leaves the allocator holding many of them.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `secret` hashes to the PHC string `stored` (its algorithm, version, parameters and
/// salt), compared in constant time, computed in this thread's reused working memory.
fn slow_verify(secret: &str, stored: &str) -> bool {
    let Ok(h) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        argon2::Algorithm::try_from(h.algorithm),
        argon2::Params::try_from(&h),
    ) else {
        return false;
    };
    let version = match h.version.map(argon2::Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let computed = BLOCKS.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < blocks {
            b.resize(blocks, argon2::Block::default());
        }
        argon.hash_password_into_with_memory(secret.as_bytes(), salt, &mut out, &mut b[..blocks])
    });
    computed.is_ok()
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            out.as_slice(),
            expected.as_bytes(),
        ))
}

/// A hash of a password nobody has, verified against when the account is unknown, so that
/// an unknown name costs as much time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| slow_hash("decoy password nobody has").unwrap_or_default())
}

/// 32 lower-case hex characters (128 random bits), the shape OAuth2 servers commonly issue.
fn new_token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

/// How many same-named accounts (in different tenants) a login checks its secret against.
const SAME_NAME_CANDIDATES: i64 = 8;

struct AccountRow {
    id: i64,
    tenant: Tenant,
    name: String,
    secret_hash: String,
}

/// Revoke every live token issued to ($2 as user) or through ($2 as client) an account.
const REVOKE_ACCOUNT_TOKENS: &str = "UPDATE login_tokens SET revoked_at = $1 \
    WHERE (account_id = $2 OR client_id = $2) AND revoked_at IS NULL";

/// Issue an access + refresh pair for `user` inside `tx`.
async fn issue_pair(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    realm: &str,
    policy: TokenPolicy,
    owner: TokenOwner<'_>,
    client_id: Option<i64>,
    now: i64,
) -> Result<Grant, AuthError> {
    let (tenant, account_id, device, subject) = match owner {
        TokenOwner::Account(a) => (&a.tenant, Some(a.id), None, a.name.clone()),
        TokenOwner::Device {
            tenant,
            device_id,
            product_id,
        } => (tenant, None, Some((device_id, product_id)), String::new()),
    };
    let device_id = device.map(|d| d.0);
    let grant_id = new_token();
    let access = new_token();
    let refresh = new_token();
    for (token, kind, ttl) in [
        (&access, "access", policy.access_ttl_secs),
        (&refresh, "refresh", policy.refresh_ttl_secs),
    ] {
        let ttl_ms = i64::try_from(ttl.saturating_mul(1000)).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO login_tokens (token_hash, grant_id, kind, realm, tenant_id, \
               account_id, device_id, device_product_id, client_id, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(hash(token))
        .bind(&grant_id)
        .bind(kind)
        .bind(realm)
        .bind(tenant.id)
        .bind(account_id)
        .bind(device_id)
        .bind(device.map(|d| d.1))
        .bind(client_id)
        .bind(now)
        .bind(now.saturating_add(ttl_ms))
        .execute(&mut **tx)
        .await?;
    }
    Ok(Grant {
        access_token: access,
        refresh_token: refresh,
        expires_in: policy.access_ttl_secs,
        tenant: tenant.clone(),
        subject,
        device_id,
    })
}

impl Auth {
    /// Provision a login account for a plugin; the name must be new among the tenant's live
    /// accounts of that kind for the plugin (other tenants may use it too). The secret is
    /// stored as an Argon2id hash.
    pub async fn create_login(
        &self,
        tenant: &str,
        realm: &str,
        kind: LoginKind,
        name: &str,
        secret: &str,
    ) -> Result<LoginAccount, AuthError> {
        if !valid_plugin_name(realm) {
            return Err(AuthError::Invalid(format!(
                "realm {realm:?} must be a plugin name (1-64 characters of [a-z0-9-])"
            )));
        }
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(AuthError::Invalid(
                "login name must be 1-128 printable characters".into(),
            ));
        }
        // The operator chooses (the spec's own example password is `aa`); only the extremes
        // are refused.
        if secret.is_empty() || secret.len() > 1024 {
            return Err(AuthError::Invalid(
                "password or client secret must be 1-1024 bytes".into(),
            ));
        }
        let t = self.tenant(tenant).await?;
        // A login checks its secret against every live account of that name: a bound.
        let same_name: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM login_accounts \
             WHERE realm = $1 AND kind = $2 AND name = $3 AND disabled_at IS NULL",
        )
        .bind(realm)
        .bind(kind.as_str())
        .bind(name)
        .fetch_one(self.db.pool())
        .await?;
        if same_name >= SAME_NAME_CANDIDATES {
            return Err(AuthError::Conflict(format!(
                "{SAME_NAME_CANDIDATES} tenants already have a {} named {name:?} for plugin {realm:?}",
                kind.as_str()
            )));
        }
        let secret = secret.to_string();
        let secret_hash = self
            .logins
            .hash(None, move || slow_hash(&secret))
            .await
            .map_err(|_| {
                AuthError::Invalid("the host is busy checking passwords; retry".into())
            })??;
        let now = self.clock.now_millis();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO login_accounts (tenant_id, realm, kind, name, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(t.id)
        .bind(realm)
        .bind(kind.as_str())
        .bind(name)
        .bind(secret_hash)
        .bind(now)
        .fetch_one(self.db.pool())
        .await
        .map_err(|e| {
            if crate::storage::Db::is_unique_violation(&e) {
                AuthError::Conflict(format!(
                    "tenant {tenant:?} already has a {} named {name:?} for plugin {realm:?}",
                    kind.as_str()
                ))
            } else {
                e.into()
            }
        })?;
        Ok(LoginAccount {
            id,
            tenant: t.name,
            realm: realm.to_string(),
            kind,
            name: name.to_string(),
            created_at: now,
            disabled_at: None,
        })
    }

    /// A tenant's login accounts, oldest first (disabled ones included).
    pub async fn list_logins(&self, tenant: &str) -> Result<Vec<LoginAccount>, AuthError> {
        let t = self.tenant(tenant).await?;
        let rows = sqlx::query(
            "SELECT id, realm, kind, name, created_at, disabled_at FROM login_accounts \
             WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(t.id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| LoginAccount {
                id: r.get(0),
                tenant: t.name.clone(),
                realm: r.get(1),
                kind: if r.get::<String, _>(2) == "client" {
                    LoginKind::Client
                } else {
                    LoginKind::User
                },
                name: r.get(3),
                created_at: r.get(4),
                disabled_at: r.get(5),
            })
            .collect())
    }

    /// Revoke every live token issued to (or through) an account; answers how many died.
    pub async fn revoke_login_tokens(&self, tenant: &str, id: i64) -> Result<u64, AuthError> {
        let t = self.tenant(tenant).await?;
        self.login_of(t.id, id).await?;
        let done = sqlx::query(REVOKE_ACCOUNT_TOKENS)
            .bind(self.clock.now_millis())
            .bind(id)
            .execute(self.db.pool())
            .await?;
        self.credentials_ended().await?;
        Ok(done.rows_affected())
    }

    /// Disable an account for good (its name becomes free again) and revoke its tokens.
    pub async fn disable_login(&self, tenant: &str, id: i64) -> Result<(), AuthError> {
        let t = self.tenant(tenant).await?;
        let now = self.clock.now_millis();
        let mut tx = self.db.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE login_accounts SET disabled_at = $1 \
             WHERE id = $2 AND tenant_id = $3 AND disabled_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(t.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(AuthError::NotFound(format!("no active login {id}")));
        }
        sqlx::query(REVOKE_ACCOUNT_TOKENS)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.credentials_ended().await
    }

    async fn login_of(&self, tenant_id: i64, id: i64) -> Result<(), AuthError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM login_accounts WHERE id = $1 AND tenant_id = $2")
                .bind(id)
                .bind(tenant_id)
                .fetch_optional(self.db.pool())
                .await?;
        found
            .map(|_| ())
            .ok_or_else(|| AuthError::NotFound(format!("no login {id}")))
    }

    /// The live accounts of a realm with this name, in `tenant` when given, else in any
    /// tenant (names are unique per tenant only), oldest first and at most
    /// [`SAME_NAME_CANDIDATES`]: a login checks its secret against each.
    async fn live_accounts(
        &self,
        realm: &str,
        kind: LoginKind,
        name: &str,
        tenant: Option<i64>,
    ) -> Result<Vec<AccountRow>, AuthError> {
        let rows = sqlx::query(
            "SELECT a.id, t.id, t.name, a.name, a.secret_hash FROM login_accounts a \
             JOIN tenants t ON t.id = a.tenant_id \
             WHERE a.realm = $1 AND a.kind = $2 AND a.name = $3 AND a.disabled_at IS NULL \
               AND (CAST($4 AS BIGINT) IS NULL OR a.tenant_id = $4) \
             ORDER BY a.id LIMIT $5",
        )
        .bind(realm)
        .bind(kind.as_str())
        .bind(name)
        .bind(tenant)
        .bind(SAME_NAME_CANDIDATES)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| AccountRow {
                id: r.get(0),
                tenant: Tenant {
                    id: r.get(1),
                    name: r.get(2),
                },
                name: r.get(3),
                secret_hash: r.get(4),
            })
            .collect())
    }

    /// The one account among `accounts` whose hash `secret` matches, within the login limits:
    /// no account is checked against a decoy (as slow as a wrong secret); a secret that fits
    /// several (the same name and secret in two tenants) logs into none; a failure counts
    /// towards the address's and the name's back-off, a success ends the name's. The time a
    /// wrong secret takes grows with the number of same-named accounts (at most
    /// [`SAME_NAME_CANDIDATES`]), never with whose they are.
    async fn checks_out(
        &self,
        source: Option<IpAddr>,
        realm: &str,
        account_key: &str,
        secret: &str,
        accounts: Vec<AccountRow>,
    ) -> Result<Option<AccountRow>, GrantError> {
        self.logins.admit(source, realm, account_key)?;
        let secret = secret.to_string();
        let hashes: Vec<String> = accounts.iter().map(|a| a.secret_hash.clone()).collect();
        let matched = self
            .logins
            .hash(source, move || {
                if hashes.is_empty() {
                    slow_verify(&secret, decoy_hash());
                    return Vec::new();
                }
                // Every candidate, not the first that fits: the same name and secret in two
                // tenants must not log one tenant's client into the other's account.
                (0..hashes.len())
                    .filter(|&i| slow_verify(&secret, &hashes[i]))
                    .collect::<Vec<_>>()
            })
            .await?;
        let found = match matched.as_slice() {
            [i] => accounts.into_iter().nth(*i),
            [] => None,
            _ => {
                tracing::warn!(
                    realm,
                    account = account_key,
                    "refused a login: its name and secret fit accounts of several tenants"
                );
                None
            }
        };
        if found.is_some() {
            self.logins.succeeded(realm, account_key);
        } else {
            self.logins.failed(source, realm, account_key);
        }
        Ok(found)
    }

    /// The client account when credentials were given; refused when unknown or wrong.
    async fn check_client(
        &self,
        realm: &str,
        client: Option<&ClientCredentials>,
        source: Option<IpAddr>,
    ) -> Result<Option<AccountRow>, GrantError> {
        let Some(c) = client else { return Ok(None) };
        let rows = self
            .live_accounts(realm, LoginKind::Client, &c.id, None)
            .await?;
        let key = format!("client:{}", c.id);
        match self
            .checks_out(source, realm, &key, &c.secret, rows)
            .await?
        {
            Some(r) => Ok(Some(r)),
            None => Err(GrantError::InvalidClient(
                "unknown client or wrong client secret".into(),
            )),
        }
    }

    /// OAuth2 password grant: verify the client (when given) and the user, issue a pair.
    /// `source` is the client's address, for the login limits.
    pub async fn password_grant(
        &self,
        realm: &str,
        policy: TokenPolicy,
        client: Option<&ClientCredentials>,
        username: &str,
        password: &str,
        source: Option<IpAddr>,
    ) -> Result<Grant, GrantError> {
        let client = self.check_client(realm, client, source).await?;
        // A client's users are those of its tenant: a user of another tenant is as unknown
        // as one that does not exist.
        let users = self
            .live_accounts(
                realm,
                LoginKind::User,
                username,
                client.as_ref().map(|c| c.tenant.id),
            )
            .await?;
        let key = format!("user:{username}");
        let Some(user) = self
            .checks_out(source, realm, &key, password, users)
            .await?
        else {
            return Err(GrantError::InvalidGrant(
                "bad credentials: unknown user or wrong password".into(),
            ));
        };
        let mut tx = self.db.pool().begin().await?;
        let now = self.clock.now_millis();
        let client_id = client.as_ref().map(|c| c.id);
        let grant = issue_pair(
            &mut tx,
            realm,
            policy,
            TokenOwner::Account(&user),
            client_id,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(grant)
    }

    /// Issue a pair to a device whose product key the caller already checked (XLINK's device
    /// login); the tokens act only for that device.
    pub async fn device_grant(
        &self,
        realm: &str,
        policy: TokenPolicy,
        tenant: &Tenant,
        device_id: i64,
        product_id: i64,
    ) -> Result<Grant, GrantError> {
        let mut tx = self.db.pool().begin().await?;
        let now = self.clock.now_millis();
        let owner = TokenOwner::Device {
            tenant,
            device_id,
            product_id,
        };
        let grant = issue_pair(&mut tx, realm, policy, owner, None, now).await?;
        tx.commit().await?;
        Ok(grant)
    }

    /// OAuth2 refresh grant: the old pair dies, a new one is issued.
    pub async fn refresh_grant(
        &self,
        realm: &str,
        policy: TokenPolicy,
        client: Option<&ClientCredentials>,
        refresh_token: &str,
        source: Option<IpAddr>,
    ) -> Result<Grant, GrantError> {
        let client = self.check_client(realm, client, source).await?;
        let now = self.clock.now_millis();
        let token_hash = hash(refresh_token);
        let row = self.db.read_optional(sqlx::query(
            "SELECT k.grant_id, k.client_id, k.account_id, t.id, t.name, a.name, k.device_id, \
               k.device_product_id \
             FROM login_tokens k JOIN tenants t ON t.id = k.tenant_id \
             LEFT JOIN login_accounts a ON a.id = k.account_id \
             WHERE k.token_hash = $1 AND k.kind = 'refresh' AND k.realm = $2 \
               AND k.revoked_at IS NULL AND k.expires_at > $3 AND a.disabled_at IS NULL",
        )
        .bind(&token_hash)
        .bind(realm)
        .bind(now)
        )
        .await?
        .ok_or_else(|| {
            GrantError::InvalidGrant("invalid refresh token (unknown, expired or revoked)".into())
        })?;
        let grant_id: String = row.get(0);
        let token_client: Option<i64> = row.get(1);
        if token_client != client.as_ref().map(|c| c.id) {
            return Err(GrantError::InvalidGrant(
                "the refresh token was issued to another client".into(),
            ));
        }
        let tenant = Tenant {
            id: row.get(3),
            name: row.get(4),
        };
        let account_id: Option<i64> = row.get(2);
        let device: Option<(i64, i64)> = row.get::<Option<i64>, _>(6).zip(row.get(7));
        let user = account_id.map(|id| AccountRow {
            id,
            tenant: tenant.clone(),
            name: row.get::<Option<String>, _>(5).unwrap_or_default(),
            secret_hash: String::new(),
        });
        let owner = match (&user, device) {
            (Some(u), _) => TokenOwner::Account(u),
            (None, Some((device_id, product_id))) => TokenOwner::Device {
                tenant: &tenant,
                device_id,
                product_id,
            },
            (None, None) => {
                return Err(GrantError::InvalidGrant(
                    "invalid refresh token (it has no owner)".into(),
                ));
            }
        };
        // Only the request that revokes this very refresh token may issue the new pair (two
        // refreshes racing with one token cannot both succeed); revoking and issuing share a
        // transaction, so a failure leaves the old pair working rather than none.
        let mut tx = self.db.pool().begin().await?;
        let used = sqlx::query(
            "UPDATE login_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&token_hash)
        .execute(&mut *tx)
        .await?;
        if used.rows_affected() == 0 {
            return Err(GrantError::InvalidGrant(
                "invalid refresh token (already used)".into(),
            ));
        }
        sqlx::query(
            "UPDATE login_tokens SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&grant_id)
        .execute(&mut *tx)
        .await?;
        let grant = issue_pair(&mut tx, realm, policy, owner, token_client, now).await?;
        tx.commit().await?;
        // The old pair's access token died with it.
        self.credentials_ended().await.map_err(GrantError::Other)?;
        Ok(grant)
    }

    /// Accept an access token issued in `realm`.
    pub async fn verify_token(&self, realm: &str, token: &str) -> Result<TokenIdentity, AuthError> {
        let token_hash = hash(token);
        let now = self.clock.now_millis();
        if let Some(id) = self.verified.token(realm, &token_hash, now) {
            return Ok(id);
        }
        let generation = self.verified.generation();
        let row = self
            .db
            .read_optional(
                sqlx::query(
                    "SELECT t.id, t.name, a.name, k.device_id, k.expires_at FROM login_tokens k \
             JOIN tenants t ON t.id = k.tenant_id \
             LEFT JOIN login_accounts a ON a.id = k.account_id \
             LEFT JOIN login_accounts c ON c.id = k.client_id \
             WHERE k.token_hash = $1 AND k.kind = 'access' AND k.realm = $2 \
               AND k.revoked_at IS NULL AND k.expires_at > $3 AND a.disabled_at IS NULL \
               AND c.disabled_at IS NULL",
                )
                .bind(&token_hash)
                .bind(realm)
                .bind(now),
            )
            .await?
            .ok_or_else(|| {
                AuthError::Unauthenticated(
                    "invalid access token (unknown, expired or revoked)".into(),
                )
            })?;
        let id = TokenIdentity {
            tenant: Tenant {
                id: row.get(0),
                name: row.get(1),
            },
            subject: row.get::<Option<String>, _>(2).unwrap_or_default(),
            device_id: row.get(3),
        };
        self.verified
            .keep_token(generation, realm, token_hash, id.clone(), row.get(4));
        Ok(id)
    }

    /// Whether `token` is an access token of `realm` that is past its expiry, neither revoked
    /// nor made for a disabled account or client (so renewing it could work).
    pub async fn token_expired(&self, realm: &str, token: &str) -> Result<bool, AuthError> {
        let expired = self
            .db
            .read_optional(
                sqlx::query(
                    "SELECT 1 FROM login_tokens k \
             LEFT JOIN login_accounts a ON a.id = k.account_id \
             LEFT JOIN login_accounts c ON c.id = k.client_id \
             WHERE k.token_hash = $1 AND k.kind = 'access' AND k.realm = $2 \
               AND k.revoked_at IS NULL AND k.expires_at <= $3 AND a.disabled_at IS NULL \
               AND c.disabled_at IS NULL",
                )
                .bind(hash(token))
                .bind(realm)
                .bind(self.clock.now_millis()),
            )
            .await?;
        Ok(expired.is_some())
    }

    /// Whether a tenant has a live login account of this kind and name for `realm`.
    pub async fn login_exists(
        &self,
        tenant_id: i64,
        realm: &str,
        kind: LoginKind,
        name: &str,
    ) -> Result<bool, AuthError> {
        Ok(!self
            .live_accounts(realm, kind, name, Some(tenant_id))
            .await?
            .is_empty())
    }

    /// Delete the pairs whose tokens all died (expired or were revoked) more than a day ago
    /// (kept that long so an operator can still see why a client was refused). A pair goes
    /// whole, so revoking through a dead access token still reaches its live refresh token.
    pub async fn prune_tokens(&self) -> Result<u64, AuthError> {
        let cutoff = self.clock.now_millis() - 86_400_000;
        Ok(sqlx::query(
            "DELETE FROM login_tokens WHERE grant_id IN (SELECT grant_id FROM login_tokens \
               GROUP BY grant_id HAVING MAX(CASE WHEN revoked_at IS NOT NULL \
                 AND revoked_at < expires_at THEN revoked_at ELSE expires_at END) < $1)",
        )
        .bind(cutoff)
        .execute(self.db.pool())
        .await?
        .rows_affected())
    }

    /// Revoke a token of `realm` and the other half of its pair; unknown tokens are fine.
    pub async fn revoke_token(&self, realm: &str, token: &str) -> Result<(), AuthError> {
        sqlx::query(
            "UPDATE login_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND grant_id IN \
               (SELECT grant_id FROM login_tokens WHERE token_hash = $2 AND realm = $3)",
        )
        .bind(self.clock.now_millis())
        .bind(hash(token))
        .bind(realm)
        .execute(self.db.pool())
        .await?;
        self.credentials_ended().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_hashes_are_salted_and_verify() {
        let a = slow_hash("secret_1").unwrap();
        let b = slow_hash("secret_1").unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$"));
        assert!(slow_verify("secret_1", &a));
        assert!(!slow_verify("secret_2", &a));
        assert!(!slow_verify("secret_1", "not a hash"));
        assert!(!slow_verify("decoy", decoy_hash()));
    }

    #[test]
    fn tokens_are_32_hex() {
        let t = new_token();
        assert_eq!(t.len(), 32);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(new_token(), t);
    }
}
