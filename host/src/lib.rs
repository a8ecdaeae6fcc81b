//! `ota-host`: one OTA rollout server that speaks many vendors' upgrade APIs through
//! WebAssembly dialect plugins. This crate is the host: storage, credentials, catalog,
//! rollouts, the plugin runtime with hot loading, and the HTTP edge. `main.rs` only parses
//! the command line; [`server::start`] runs everything.

pub mod auth;
pub mod blobs;
pub mod bundled;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod flows;
pub mod http;
pub mod metrics;
pub mod provision;
pub mod pushes;
pub mod remembered;
pub mod rollout;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod storage;
pub mod uploads;

use std::time::Duration;

use clock::SharedClock;
use config::Config;
use storage::{Db, StorageError};

/// Why the services could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Blobs(#[from] blobs::BlobError),
    #[error(transparent)]
    Secrets(#[from] secrets::SecretError),
    #[error("sealing stored secrets: {0}")]
    Reseal(String),
    #[error("creating the data directory: {0}")]
    Io(#[from] std::io::Error),
}

/// The domain services, cheap to clone (each holds the pool and the clock).
#[derive(Clone)]
pub struct Services {
    pub auth: auth::Auth,
    pub catalog: catalog::Catalog,
    pub rollout: rollout::Rollout,
    pub blobs: blobs::BlobStore,
    pub uploads: uploads::Uploads,
    /// Plugins pushed for every replica.
    pub pushes: pushes::Pushes,
    /// What the host counts for `/metrics`.
    pub metrics: metrics::Metrics,
    pub clock: SharedClock,
    pub db: Db,
}

pub use flows::FlowError;
/// How callers stop the host's background tasks (scheduler, change feed).
pub use tokio_util::sync::CancellationToken;

impl Services {
    /// Connect to the configured database (migrating it) and build the services, with the
    /// master key from the environment or the key file.
    pub async fn open(config: &Config, clock: SharedClock) -> Result<Self, OpenError> {
        let sealer = secrets::Sealer::load(&config.master_key_file())?;
        Self::open_with(config, clock, std::sync::Arc::new(sealer)).await
    }

    /// [`Services::open`] with a given master key (rotation opens with the new one). Stored
    /// secrets kept in clear or under an older key are sealed with it before anything runs.
    pub async fn open_with(
        config: &Config,
        clock: SharedClock,
        sealer: std::sync::Arc<secrets::Sealer>,
    ) -> Result<Self, OpenError> {
        if storage::sqlite_file(&config.database).is_some_and(|f| f.starts_with(&config.data_dir)) {
            // The default SQLite file lives in the data dir, which may not exist yet.
            std::fs::create_dir_all(&config.data_dir)?;
        }
        let db = Db::connect(&config.database, config.limits.database_connections).await?;
        let blobs =
            blobs::BlobStore::open(&config.blob_location(), db.clone(), clock.clone(), &sealer)
                .await?
                .with_url_policy(blobs::UrlPolicy {
                    require_signed: config.blobs.require_signed_urls,
                    ttl_secs: config.blobs.url_ttl_secs,
                });
        let auth = auth::Auth::new(db.clone(), clock.clone(), sealer.clone())
            .with_login_limits(&config.logins);
        let uploads = uploads::Uploads::new(
            db.clone(),
            clock.clone(),
            config.blobs.max_upload_mib << 20,
            sealer,
        );
        let resealed = auth
            .reseal_secrets()
            .await
            .map_err(|e| OpenError::Reseal(e.to_string()))?
            + uploads
                .reseal_secrets()
                .await
                .map_err(|e| OpenError::Reseal(e.to_string()))?;
        if resealed > 0 {
            tracing::info!(
                secrets = resealed,
                "sealed stored secrets with the current master key"
            );
        }
        Ok(Services {
            pushes: pushes::Pushes::new(db.clone(), blobs.clone(), clock.clone()),
            blobs,
            uploads,
            auth,
            catalog: catalog::Catalog::new(db.clone(), clock.clone()),
            rollout: rollout::Rollout::new(
                db.clone(),
                clock.clone(),
                Duration::from_secs(config.scheduler.deployment_timeout_secs),
            ),
            metrics: metrics::Metrics::new(),
            clock,
            db,
        })
    }
}
