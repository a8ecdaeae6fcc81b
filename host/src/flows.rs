//! Flows that span modules: the catalog, the rollout engine and the blob store each own their
//! tables, and these few operations need two of them in order (a campaign is made from a
//! release; a device's check-in records its version then asks the engine). The admin API and
//! the plugin contract both call these, so a dialect and an operator get the same rules.

use crate::Services;
use crate::blobs::BlobError;
use crate::catalog::packages::PackageQuery;
use crate::catalog::releases::{Payload, Release, ReleasePatch, ReleaseStatus};
use crate::catalog::{self, CatalogError};
use crate::rollout::campaigns::{
    Campaign, CampaignPatch, Job, MaintenanceWindow, NewCampaign, Offer, Scope, Target, Waves,
};
use crate::rollout::job::JobState;
use crate::rollout::{self, Deployment, DeploymentStatus, RolloutError};

/// Why a cross-module flow failed.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Rollout(#[from] RolloutError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The request contradicts the release it names (e.g. a formal campaign of a test
    /// release); a conflict with stored state rather than a malformed request.
    #[error("{0}")]
    ReleaseState(String),
    #[error("{0}")]
    Invalid(String),
}

/// Which devices a campaign reaches, as callers name them: serial numbers, not ids.
#[derive(Debug, Clone)]
pub enum ScopeRequest {
    All,
    Devices(Vec<String>),
    Group(String),
}

/// How a staged rollout starts: a device count or a share of the product's devices.
#[derive(Debug, Clone, Copy)]
pub enum WaveStart {
    Count(u64),
    Percent(u8),
}

/// Staged rollout as callers ask for it.
#[derive(Debug, Clone, Copy)]
pub struct WavesRequest {
    pub start: WaveStart,
    pub step: u64,
    pub interval_secs: u64,
    pub max_failure_pct: Option<u8>,
}

/// A campaign as callers ask for it: by release id, devices by serial number.
#[derive(Debug, Clone)]
pub struct CampaignRequest {
    pub release_id: i64,
    pub name: String,
    pub description: String,
    pub from_version: Option<String>,
    pub scope: ScopeRequest,
    pub mode: rollout::campaigns::Mode,
    pub tag: String,
    pub retries: u8,
    pub timeout_secs: u64,
    pub waves: Option<WavesRequest>,
    pub window: Option<MaintenanceWindow>,
    /// Register listed devices the product does not know yet (they have not checked in)
    /// instead of refusing the campaign; off by default, so a mistyped serial number is an
    /// error rather than a device that never comes.
    pub register_devices: bool,
}

/// Where a release's bytes are, as callers name them: a stored blob (facts from the store,
/// declared ones checked against it) or an external URL with declared facts.
#[derive(Debug, Clone)]
pub enum PayloadRequest {
    Blob {
        sha256: String,
        md5: Option<String>,
        size: Option<u64>,
    },
    External {
        url: String,
        md5: String,
        size: u64,
    },
}

impl Services {
    /// Resolve a payload against the blob store.
    pub async fn payload(&self, p: PayloadRequest) -> Result<Payload, FlowError> {
        Ok(match p {
            PayloadRequest::Blob { sha256, md5, size } => {
                let info = self.blobs.stat(&sha256).await?;
                if let Some(md5) = &md5
                    && !md5.eq_ignore_ascii_case(&info.md5)
                {
                    return Err(FlowError::Invalid(format!(
                        "declared md5 {md5} does not match the stored blob's {}",
                        info.md5
                    )));
                }
                if let Some(size) = size
                    && size != info.size
                {
                    return Err(FlowError::Invalid(format!(
                        "declared size {size} does not match the stored blob's {}",
                        info.size
                    )));
                }
                Payload::Blob {
                    sha256: info.sha256,
                    md5: info.md5,
                    size: info.size,
                }
            }
            PayloadRequest::External { url, md5, size } => Payload::External { url, md5, size },
        })
    }

    /// Device serial numbers of one product to ids; an unknown one is `NotFound`.
    pub async fn device_ids(
        &self,
        tenant_id: i64,
        product_sn: &str,
        sns: &[String],
    ) -> Result<Vec<i64>, FlowError> {
        let mut ids = Vec::with_capacity(sns.len());
        for sn in sns {
            ids.push(
                self.catalog
                    .find_device(tenant_id, product_sn, sn)
                    .await?
                    .id,
            );
        }
        Ok(ids)
    }

    /// Create a campaign from a release: the release must be usable for the tag (never
    /// invalid; a test release only for test campaigns), a delta pins the from-version, and
    /// a wave share is turned into a count of the product's devices now.
    pub async fn create_campaign(
        &self,
        tenant_id: i64,
        c: CampaignRequest,
        actor: &str,
    ) -> Result<Campaign, FlowError> {
        let release = self.catalog.release(tenant_id, c.release_id).await?;
        let product = self.catalog.product(tenant_id, &release.product_sn).await?;
        match (release.status, c.tag.as_str()) {
            (ReleaseStatus::Invalid, _) => {
                return Err(FlowError::ReleaseState(format!(
                    "release {} is invalid",
                    release.id
                )));
            }
            (ReleaseStatus::Test, "formal") => {
                return Err(FlowError::ReleaseState(format!(
                    "release {} is a test release; use tag \"test\" or put it online first",
                    release.id
                )));
            }
            _ => {}
        }
        // A delta applies only to the version it was built from.
        let from_version = match (&release.from_version, c.from_version) {
            (Some(base), None) => Some(base.clone()),
            (Some(base), Some(asked)) if *base != asked => {
                return Err(FlowError::Invalid(format!(
                    "release {} is a delta from {base}, not from {asked}",
                    release.id
                )));
            }
            (_, asked) => asked,
        };
        let scope = match c.scope {
            ScopeRequest::Devices(sns) if c.register_devices => {
                let mut ids = Vec::with_capacity(sns.len());
                for sn in &sns {
                    ids.push(
                        self.catalog
                            .register_device(tenant_id, &product.sn, sn)
                            .await?
                            .id,
                    );
                }
                Scope::Devices(ids)
            }
            s => self
                .scope(tenant_id, &product.sn, s)
                .await
                .map_err(|e| match e {
                    FlowError::Catalog(CatalogError::NotFound(m)) => {
                        FlowError::Catalog(CatalogError::NotFound(format!(
                            "{m} (register_devices, the CLI's --register-devices, registers \
                             devices that have not checked in yet)"
                        )))
                    }
                    e => e,
                })?,
        };
        let waves = match c.waves {
            None => None,
            Some(w) => {
                let initial = match w.start {
                    WaveStart::Count(n) => n,
                    WaveStart::Percent(p) if (1..=100).contains(&p) => {
                        let devices = self.catalog.count_devices(product.id).await?;
                        (devices as u64 * p as u64).div_ceil(100).max(1)
                    }
                    WaveStart::Percent(_) => {
                        return Err(FlowError::Invalid(
                            "a wave share must be 1-100 percent".into(),
                        ));
                    }
                };
                Some(Waves {
                    initial,
                    step: w.step,
                    interval_secs: w.interval_secs,
                    max_failure_pct: w.max_failure_pct,
                })
            }
        };
        Ok(self
            .rollout
            .create_campaign(
                tenant_id,
                NewCampaign {
                    name: c.name,
                    description: c.description,
                    target: Target {
                        release_id: release.id,
                        product_id: product.id,
                        module: release.module.as_str().to_string(),
                        identify: release.identify,
                        version: release.version,
                    },
                    from_version,
                    scope,
                    mode: c.mode,
                    tag: c.tag,
                    retries: c.retries,
                    timeout_secs: c.timeout_secs,
                    waves,
                    window: c.window,
                },
                actor,
            )
            .await?)
    }

    /// A scope with device serial numbers resolved to ids.
    pub async fn scope(
        &self,
        tenant_id: i64,
        product_sn: &str,
        s: ScopeRequest,
    ) -> Result<Scope, FlowError> {
        Ok(match s {
            ScopeRequest::All => Scope::All,
            ScopeRequest::Group(g) => Scope::Group(g),
            ScopeRequest::Devices(sns) => {
                Scope::Devices(self.device_ids(tenant_id, product_sn, &sns).await?)
            }
        })
    }

    /// The product serial number of a campaign (its devices are named within it).
    /// Put devices on a campaign's list (see [`rollout::Rollout::add_devices`]); a finished
    /// campaign runs again only while its release is still offered.
    pub async fn add_devices(
        &self,
        campaign: &Campaign,
        devices: &[i64],
        actor: &str,
    ) -> Result<u64, FlowError> {
        let may_reopen = self.may_reopen(campaign).await?;
        Ok(self
            .rollout
            .add_devices(campaign.tenant_id, campaign.id, devices, actor, may_reopen)
            .await?)
    }

    /// Queue failed jobs again (see [`rollout::Rollout::retry_jobs`]); a finished campaign
    /// runs again only while its release is still offered.
    pub async fn retry_jobs(
        &self,
        campaign: &Campaign,
        jobs: &[i64],
        actor: &str,
    ) -> Result<u64, FlowError> {
        let may_reopen = self.may_reopen(campaign).await?;
        Ok(self
            .rollout
            .retry_jobs(campaign.tenant_id, campaign.id, jobs, actor, may_reopen)
            .await?)
    }

    /// Whether a finished campaign may run again (devices added, jobs retried): its release
    /// is still live, not invalid, and at the campaign's target version.
    async fn may_reopen(&self, campaign: &Campaign) -> Result<bool, FlowError> {
        match self
            .catalog
            .release(campaign.tenant_id, campaign.release_id)
            .await
        {
            Ok(r) => Ok(r.status != ReleaseStatus::Invalid && r.version == campaign.target_version),
            Err(crate::catalog::CatalogError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn campaign_product(&self, campaign: &Campaign) -> Result<String, FlowError> {
        Ok(self.catalog.product_by_id(campaign.product_id).await?.sn)
    }

    /// Device serial numbers of a campaign's product to ids.
    pub async fn campaign_device_ids(
        &self,
        campaign: &Campaign,
        sns: &[String],
    ) -> Result<Vec<i64>, FlowError> {
        let product = self.campaign_product(campaign).await?;
        self.device_ids(campaign.tenant_id, &product, sns).await
    }

    /// Change a release; when its version changes, its unfinished campaigns follow.
    pub async fn update_release(
        &self,
        tenant_id: i64,
        id: i64,
        patch: ReleasePatch,
    ) -> Result<Release, FlowError> {
        let before = self.catalog.release(tenant_id, id).await?;
        if let Some(version) = &patch.version
            && *version != before.version
        {
            // A campaign from version F must still move devices forward.
            for c in self.rollout.unfinished_for_release(id).await? {
                if let Some(from) = &c.from_version
                    && crate::catalog::version::compare(from, version) != std::cmp::Ordering::Less
                {
                    return Err(FlowError::Invalid(format!(
                        "campaign {} upgrades from {from}; version {version} would not be newer",
                        c.id
                    )));
                }
            }
        }
        let after = self.catalog.update_release(tenant_id, id, patch).await?;
        if after.version != before.version {
            self.rollout.retarget_release(id, &after.version).await?;
        }
        Ok(after)
    }

    /// Change an unfinished campaign. Turning it formal needs a release that is online, as at
    /// creation.
    pub async fn update_campaign(
        &self,
        tenant_id: i64,
        id: i64,
        patch: CampaignPatch,
        actor: &str,
    ) -> Result<Campaign, FlowError> {
        if patch.tag.as_deref() == Some("formal") {
            let c = self.rollout.campaign(tenant_id, id).await?;
            let release = self.catalog.release(tenant_id, c.release_id).await?;
            if release.status != ReleaseStatus::Online {
                return Err(FlowError::ReleaseState(format!(
                    "release {} is {}; a formal campaign needs it online",
                    release.id,
                    release.status.as_str()
                )));
            }
        }
        Ok(self
            .rollout
            .update_campaign(tenant_id, id, patch, actor)
            .await?)
    }

    /// Move a release to a status; invalidating it cancels its unfinished campaigns (their
    /// ids are returned) so it reaches no further device.
    pub async fn set_release_status(
        &self,
        tenant_id: i64,
        id: i64,
        status: ReleaseStatus,
        actor: &str,
    ) -> Result<(Release, Vec<i64>), FlowError> {
        let r = self
            .catalog
            .set_release_status(tenant_id, id, status)
            .await?;
        let cancelled = if status == ReleaseStatus::Invalid {
            let why = format!("release {id} was invalidated");
            self.rollout
                .cancel_for_release(tenant_id, id, actor, &why)
                .await?
        } else {
            Vec::new()
        };
        Ok((r, cancelled))
    }

    /// Delete a release and cancel its unfinished campaigns.
    pub async fn delete_release(
        &self,
        tenant_id: i64,
        id: i64,
        actor: &str,
    ) -> Result<Vec<i64>, FlowError> {
        self.catalog.delete_release(tenant_id, id).await?;
        let why = format!("release {id} was deleted");
        Ok(self
            .rollout
            .cancel_for_release(tenant_id, id, actor, &why)
            .await?)
    }

    /// A device asks for an update of one module while running `current`: its version is
    /// recorded in the catalog, then the rollout engine answers (creating the job on first
    /// contact). This is the one call a dialect's check endpoint needs.
    pub async fn check_in(
        &self,
        device: &catalog::Device,
        module: &str,
        identify: i64,
        current: &str,
    ) -> Result<Option<Offer>, FlowError> {
        self.catalog
            .set_module_version(device.id, module, identify, current)
            .await?;
        let facts = rollout::campaigns::DeviceFacts {
            id: device.id,
            product_id: device.product_id,
            group: device.group.clone(),
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
        state: JobState,
        code: Option<i64>,
        text: &str,
        version_now: Option<&str>,
    ) -> Result<Job, FlowError> {
        let job = self
            .rollout
            .report_job(job_id, device_id, state, code, text, version_now)
            .await?;
        if job.state == JobState::Succeeded
            && let Some(version) = &job.version_after
        {
            let c = self.rollout.campaign_by_id(job.campaign_id).await?;
            self.catalog
                .set_module_version(job.device_id, &c.module, c.identify, version)
                .await?;
        }
        Ok(job)
    }

    /// What a gateway's agent does next: its oldest open deployment and the release that
    /// installs. The release is chosen at the first ask (the newest online full release of
    /// the product for the gateway's configured CPU architecture) and kept; `package` is
    /// `None` when there is none, or the chosen one was withdrawn (invalid or deleted) since.
    pub async fn deployment_order(
        &self,
        device: &catalog::Device,
    ) -> Result<Option<DeploymentOrder>, FlowError> {
        let Some(mut deployment) = self.rollout.next_deployment(device.id).await? else {
            return Ok(None);
        };
        if deployment.release_id.is_none() {
            let config = self.catalog.install_config(device.id).await?;
            let query = PackageQuery {
                arch: config.as_ref().map(|c| c.config.cpu_arch.as_str()),
                ..Default::default()
            };
            if let Some(r) = self
                .catalog
                .package(device.tenant_id, &device.product_sn, &query)
                .await?
            {
                deployment = self.rollout.pin_release(deployment.id, r.id).await?;
            }
        }
        let package = match deployment.release_id {
            None => None,
            Some(id) => match self.catalog.release(device.tenant_id, id).await {
                Ok(r) => (r.status != ReleaseStatus::Invalid).then_some(r),
                Err(CatalogError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            },
        };
        Ok(Some(DeploymentOrder {
            deployment,
            package,
        }))
    }

    /// A gateway reports on a deployment; success of one that installs a release also records
    /// that version as the gateway's, like a campaign job's success does.
    pub async fn report_deployment(
        &self,
        id: i64,
        status: DeploymentStatus,
        line: Option<&str>,
    ) -> Result<Deployment, FlowError> {
        let d = self.rollout.report(id, status, line).await?;
        if d.status == DeploymentStatus::Success
            && let Some(release_id) = d.release_id
        {
            match self.catalog.release(d.tenant_id, release_id).await {
                Ok(r) => {
                    self.catalog
                        .set_module_version(d.device_id, r.module.as_str(), r.identify, &r.version)
                        .await?
                }
                Err(CatalogError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(d)
    }
}

/// A gateway's next deployment and the release it installs (see
/// [`Services::deployment_order`]).
#[derive(Debug, Clone)]
pub struct DeploymentOrder {
    pub deployment: Deployment,
    pub package: Option<Release>,
}
