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
pub mod http;
pub mod provision;
pub mod rollout;
pub mod runtime;
pub mod server;
pub mod storage;

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
    pub clock: SharedClock,
    pub db: Db,
}

/// Why a cross-module update flow failed.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    #[error(transparent)]
    Rollout(#[from] rollout::RolloutError),
}

impl Services {
    /// A device asks for an update of one module while running `current`: its version is
    /// recorded in the catalog, then the rollout engine answers (creating the job on first
    /// contact). This is the one call a dialect's check endpoint needs.
    pub async fn check_in(
        &self,
        device: &catalog::Device,
        module: &str,
        identify: i64,
        current: &str,
    ) -> Result<Option<rollout::campaigns::Offer>, FlowError> {
        self.catalog
            .set_module_version(device.id, module, identify, current)
            .await?;
        let product = self
            .catalog
            .product(device.tenant_id, &device.product_sn)
            .await?;
        let facts = rollout::campaigns::DeviceFacts {
            id: device.id,
            product_id: product.id,
            group: self.catalog.device_group(device.id).await?,
        };
        Ok(self
            .rollout
            .check_in(&facts, module, identify, current)
            .await?)
    }

    /// A device reports on its job; success also moves the device's recorded module version
    /// to the one it reports running, or else the campaign's target.
    pub async fn report_job(
        &self,
        job_id: i64,
        device_id: i64,
        state: rollout::job::JobState,
        code: Option<i64>,
        text: &str,
        version_now: Option<&str>,
    ) -> Result<rollout::campaigns::Job, FlowError> {
        let job = self
            .rollout
            .report_job(job_id, device_id, state, code, text, version_now)
            .await?;
        if job.state == rollout::job::JobState::Succeeded
            && let Some(version) = &job.version_after
        {
            let c = self.rollout.campaign_by_id(job.campaign_id).await?;
            self.catalog
                .set_module_version(job.device_id, &c.module, c.identify, version)
                .await?;
        }
        Ok(job)
    }

    /// Connect to the configured database (migrating it) and build the services.
    pub async fn open(config: &Config, clock: SharedClock) -> Result<Self, OpenError> {
        if config
            .database
            .contains(config.data_dir.to_string_lossy().as_ref())
        {
            // The default SQLite file lives in the data dir, which may not exist yet.
            std::fs::create_dir_all(&config.data_dir)?;
        }
        let db = Db::connect(&config.database).await?;
        let blobs =
            blobs::BlobStore::open(config.data_dir.join("blobs"), db.clone(), clock.clone())
                .await?;
        Ok(Services {
            blobs,
            auth: auth::Auth::new(db.clone(), clock.clone()),
            catalog: catalog::Catalog::new(db.clone(), clock.clone()),
            rollout: rollout::Rollout::new(
                db.clone(),
                clock.clone(),
                Duration::from_secs(config.scheduler.deployment_timeout_secs),
            ),
            clock,
            db,
        })
    }
}
