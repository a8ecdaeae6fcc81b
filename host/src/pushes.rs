//! Plugins pushed once for every replica sharing the database: each pushed version's
//! component is stored as a blob, and per plugin name one version is `serving`, the one
//! before it is kept (`previous`) for a rollback, and a `canary` may serve a share of the
//! requests until it is promoted or rolled back. Replicas follow the serving set
//! (`runtime::fleet`) and report here, every few seconds, which versions they serve.

use serde::Serialize;
use sqlx::Row;

use crate::blobs::{BlobError, BlobStore, Expect};
use crate::clock::SharedClock;
use crate::storage::Db;

/// Why a push or a rollback failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

/// One pushed version of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Pushed {
    pub id: i64,
    /// The plugin's manifest name.
    pub name: String,
    pub version: String,
    /// Lower-case hex SHA-256 of the component.
    pub sha256: String,
    pub size: i64,
    /// `serving`, `canary`, `previous` (what a rollback returns to) or `retired`.
    pub state: String,
    /// A canary's share of the plugin's requests, in percent.
    pub canary_percent: Option<i64>,
    pub pushed_by: String,
    /// Unix milliseconds.
    pub pushed_at: i64,
}

/// What one replica last said it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReplicaReport {
    /// The replica's id (its address and a per-process suffix).
    pub id: String,
    /// Its main listener's URL.
    pub url: String,
    /// Unix milliseconds.
    pub started_at: i64,
    pub seen_at: i64,
    /// The plugins it serves.
    pub plugins: Vec<Serving>,
}

/// A plugin version a replica serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Serving {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// Requests this version answered on the replica since it started, and how many were
    /// server errors (5xx): two reports apart give its request and error rates.
    #[serde(default)]
    pub requests: u64,
    #[serde(default)]
    pub server_errors: u64,
}

const COLUMNS: &str =
    "id, name, version, sha256, size, state, pushed_by, pushed_at, canary_percent";

fn pushed(r: &sqlx::any::AnyRow) -> Pushed {
    Pushed {
        id: r.get(0),
        name: r.get(1),
        version: r.get(2),
        sha256: r.get(3),
        size: r.get(4),
        state: r.get(5),
        pushed_by: r.get(6),
        pushed_at: r.get(7),
        canary_percent: r.get(8),
    }
}

/// The pushed plugins and the replicas' reports.
#[derive(Clone)]
pub struct Pushes {
    db: Db,
    blobs: BlobStore,
    clock: SharedClock,
}

impl Pushes {
    pub fn new(db: Db, blobs: BlobStore, clock: SharedClock) -> Self {
        Pushes { db, blobs, clock }
    }

    /// Store a component the caller validated (its manifest said `name` and `version`) and
    /// make it the serving version, the one it replaces kept for a rollback; or, with
    /// `canary`, let it serve that percentage of the plugin's requests beside the serving
    /// version (replacing an earlier canary). Pushing the bytes that serve already changes
    /// nothing.
    pub async fn push(
        &self,
        name: &str,
        version: &str,
        component: Vec<u8>,
        by: &str,
        canary: Option<u8>,
    ) -> Result<Pushed, PushError> {
        let size = component.len() as u64;
        let chunks =
            futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(component))]);
        let blob = self.blobs.put(chunks, &Expect::default(), size).await?;
        let mut tx = self.db.pool().begin().await?;
        let current = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM plugin_pushes WHERE name = $1 AND state = 'serving'"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(c) = current.as_ref().map(pushed)
            && c.sha256 == blob.sha256
        {
            return Ok(c);
        }
        if canary.is_some() && current.is_none() {
            return Err(PushError::Conflict(format!(
                "plugin {name} has no pushed serving version for a canary to run beside; push it \
                 without a canary first"
            )));
        }
        // A new version supersedes any canary.
        sqlx::query(
            "UPDATE plugin_pushes SET state = 'retired' WHERE name = $1 AND state = 'canary'",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        if canary.is_none() {
            sqlx::query(
                "UPDATE plugin_pushes SET state = 'retired' WHERE name = $1 AND state = 'previous'",
            )
            .bind(name)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE plugin_pushes SET state = 'previous' WHERE name = $1 AND state = 'serving'",
            )
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        let row = sqlx::query(&format!(
            "INSERT INTO plugin_pushes (name, version, sha256, size, state, pushed_by, pushed_at, canary_percent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        ))
        .bind(name)
        .bind(version)
        .bind(&blob.sha256)
        .bind(size as i64)
        .bind(if canary.is_some() { "canary" } else { "serving" })
        .bind(by)
        .bind(self.clock.now_millis())
        .bind(canary.map(|p| i64::from(p.min(100))))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(pushed(&row))
    }

    /// Make the canary of `name` its serving version, for every request; the version it
    /// replaces is kept for a rollback.
    pub async fn promote(&self, name: &str) -> Result<Pushed, PushError> {
        let mut tx = self.db.pool().begin().await?;
        let canary = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM plugin_pushes WHERE name = $1 AND state = 'canary'"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| pushed(&r))
        .ok_or_else(|| PushError::NotFound(format!("plugin {name} has no canary")))?;
        for (from, to) in [("previous", "retired"), ("serving", "previous")] {
            sqlx::query("UPDATE plugin_pushes SET state = $1 WHERE name = $2 AND state = $3")
                .bind(to)
                .bind(name)
                .bind(from)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE plugin_pushes SET state = 'serving', canary_percent = NULL WHERE id = $1",
        )
        .bind(canary.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Pushed {
            state: "serving".into(),
            canary_percent: None,
            ..canary
        })
    }

    /// Undo the last step for `name`: end its canary if it has one (answering the version
    /// that keeps serving), else serve the previous version again (the one serving now is
    /// retired).
    pub async fn rollback(&self, name: &str) -> Result<Pushed, PushError> {
        let mut tx = self.db.pool().begin().await?;
        let ended = sqlx::query(
            "UPDATE plugin_pushes SET state = 'retired' WHERE name = $1 AND state = 'canary'",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if ended > 0 {
            let serving = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM plugin_pushes WHERE name = $1 AND state = 'serving'"
            ))
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(pushed(&serving));
        }
        let previous = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM plugin_pushes WHERE name = $1 AND state = 'previous'"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| pushed(&r));
        let Some(previous) = previous else {
            let any: Option<i64> =
                sqlx::query_scalar("SELECT id FROM plugin_pushes WHERE name = $1 LIMIT 1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(match any {
                None => PushError::NotFound(format!("no plugin {name} was pushed")),
                Some(_) => PushError::Conflict(format!(
                    "plugin {name} has no previous version to roll back to"
                )),
            });
        };
        sqlx::query(
            "UPDATE plugin_pushes SET state = 'retired' WHERE name = $1 AND state = 'serving'",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE plugin_pushes SET state = 'serving' WHERE id = $1")
            .bind(previous.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Pushed {
            state: "serving".into(),
            ..previous
        })
    }

    /// Every pushed version, newest first.
    pub async fn list(&self) -> Result<Vec<Pushed>, PushError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM plugin_pushes ORDER BY id DESC"
        ))
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(pushed).collect())
    }

    /// The serving version and the canary (if any) of every pushed plugin.
    pub async fn serving(&self) -> Result<Vec<Pushed>, PushError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM plugin_pushes WHERE state IN ('serving', 'canary') ORDER BY name, id"
        ))
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(pushed).collect())
    }

    /// A pushed component's bytes, checked against its SHA-256.
    pub async fn component(&self, p: &Pushed) -> Result<Vec<u8>, PushError> {
        use futures::TryStreamExt;
        use sha2::Digest;
        let chunks: Vec<bytes::Bytes> = self
            .blobs
            .read(&p.sha256, None)
            .await?
            .try_collect()
            .await
            .map_err(BlobError::from)?;
        let bytes = chunks.concat();
        if hex::encode(sha2::Sha256::digest(&bytes)) != p.sha256 {
            return Err(PushError::Conflict(format!(
                "the stored component of {} {} does not match its SHA-256",
                p.name, p.version
            )));
        }
        Ok(bytes)
    }

    /// Record what replica `id` serves now.
    pub async fn report(
        &self,
        id: &str,
        url: &str,
        started_at: i64,
        plugins: &[Serving],
    ) -> Result<(), PushError> {
        let serving = serde_json::to_string(plugins).expect("plain data serializes");
        sqlx::query(
            "INSERT INTO replicas (id, url, started_at, seen_at, serving) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, serving = excluded.serving",
        )
        .bind(id)
        .bind(url)
        .bind(started_at)
        .bind(self.clock.now_millis())
        .bind(serving)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// The replicas heard from in the last `within_ms`; older reports are deleted.
    pub async fn replicas(&self, within_ms: i64) -> Result<Vec<ReplicaReport>, PushError> {
        let since = self.clock.now_millis() - within_ms;
        sqlx::query("DELETE FROM replicas WHERE seen_at < $1")
            .bind(since - within_ms)
            .execute(self.db.pool())
            .await?;
        let rows = sqlx::query(
            "SELECT id, url, started_at, seen_at, serving FROM replicas WHERE seen_at >= $1 ORDER BY id",
        )
        .bind(since)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| ReplicaReport {
                id: r.get(0),
                url: r.get(1),
                started_at: r.get(2),
                seen_at: r.get(3),
                plugins: serde_json::from_str(&r.get::<String, _>(4)).unwrap_or_default(),
            })
            .collect())
    }
}
