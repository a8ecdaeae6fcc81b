//! Dashboard sessions: an operator logs in once with an API key and gets a random session
//! token for a cookie, so the key itself never sits in the browser. Only the token's SHA-256
//! is stored, with the key it was opened with and when it ends; logging out or revoking the
//! key ends it at once, on every replica (each check reads the database).

use std::time::Duration;

use sqlx::Row;

use super::{Auth, AuthError, KeyIdentity, Role, hash};

/// Session tokens carry this prefix, so one is never mistaken for an API key in a log.
const PREFIX: &str = "ota_ui_";

impl Auth {
    /// Open a session for a live operator key, lasting `lifetime`: the token and who it is.
    /// Sessions past their end are swept here.
    pub async fn open_session(
        &self,
        key: &str,
        lifetime: Duration,
    ) -> Result<(String, KeyIdentity), AuthError> {
        let id = self.verify_api_key(key).await?;
        if id.role != Role::Operator {
            return Err(AuthError::Unauthenticated(
                "the dashboard needs an operator key".into(),
            ));
        }
        let now = self.clock.now_millis();
        sqlx::query("DELETE FROM operator_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(self.db.pool())
            .await?;
        let token = format!("{PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
        sqlx::query(
            "INSERT INTO operator_sessions (token_hash, key_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(hash(&token))
        .bind(id.key_id)
        .bind(now)
        .bind(now + lifetime.as_millis() as i64)
        .execute(self.db.pool())
        .await?;
        Ok((token, id))
    }

    /// The operator behind a live session token.
    pub async fn session(&self, token: &str) -> Result<KeyIdentity, AuthError> {
        let refused = || AuthError::Unauthenticated("no such session, or it has ended".into());
        if !token.starts_with(PREFIX) {
            return Err(refused());
        }
        let row = self.db.read_optional(sqlx::query(
            "SELECT k.id, k.name FROM operator_sessions s JOIN api_keys k ON k.id = s.key_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 \
               AND k.revoked_at IS NULL AND k.role = 'operator'",
        )
        .bind(hash(token))
        .bind(self.clock.now_millis())
        )
        .await?
        .ok_or_else(refused)?;
        Ok(KeyIdentity {
            key_id: row.get(0),
            role: Role::Operator,
            name: row.get(1),
            tenant: None,
        })
    }

    /// End a session (logging out); ending one that has already ended is no error.
    pub async fn close_session(&self, token: &str) -> Result<(), AuthError> {
        sqlx::query("DELETE FROM operator_sessions WHERE token_hash = $1")
            .bind(hash(token))
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}
