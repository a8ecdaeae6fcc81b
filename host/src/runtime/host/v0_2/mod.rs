//! Adapters for `ota:dialect@0.2.x`: each imported function checks what the principal may
//! reach, converts WIT values to domain values, calls the domain service (or a cross-module
//! flow) and converts the answer back. No rule of the domain lives here.

use crate::auth::{ClientCredentials, Grant, GrantError, Role};
use crate::catalog::releases::{Module, NewRelease, PageReq, Release, ReleasePatch, ReleaseStatus};
use crate::catalog::{DeviceFilter, DevicePatch, InstallConfig};
use crate::flows::{CampaignRequest, PayloadRequest, ScopeRequest, WaveStart, WavesRequest};
use crate::rollout::campaigns::{
    Action, Campaign, CampaignFilter, CampaignPatch, CampaignStatus, Job, JobFilter, Mode,
};
use crate::rollout::job::JobState;
use crate::rollout::{DeploymentStatus, RolloutError};

use super::super::bindings::v0_2::ota::dialect::{
    auth, blobs, catalog, clock, config, log, rollout, types,
};
use super::super::bindings::{CredentialScheme, HostError, Principal};
use super::{Acting, RequestState, to_wit_principal};
use crate::config::AuthMode;

// One file per WIT interface (the small ones stay here).
mod auth_calls;
mod blobs_calls;
mod catalog_calls;
mod rollout_calls;

/// Job ids as the host stores them; ids beyond `i64` name no job and are skipped, as
/// unknown ids are.
fn job_ids_of(ids: &[u64]) -> Vec<i64> {
    ids.iter().filter_map(|j| i64::try_from(*j).ok()).collect()
}

/// A client's credentials as the auth module takes them.
fn client_of(c: auth::ClientCredentials) -> ClientCredentials {
    ClientCredentials {
        id: c.id,
        secret: c.secret,
    }
}

fn ms(v: i64) -> u64 {
    v.max(0) as u64
}

fn module_from(m: types::Module) -> Module {
    match m {
        types::Module::Wifi => Module::Wifi,
        types::Module::Mcu => Module::Mcu,
        types::Module::Sub => Module::Sub,
    }
}

fn module_to(m: Module) -> types::Module {
    match m {
        Module::Wifi => types::Module::Wifi,
        Module::Mcu => types::Module::Mcu,
        Module::Sub => types::Module::Sub,
    }
}

fn module_str(s: &str) -> types::Module {
    module_to(Module::parse(s).unwrap_or(Module::Mcu))
}

fn status_from(s: catalog::ReleaseStatus) -> ReleaseStatus {
    match s {
        catalog::ReleaseStatus::Test => ReleaseStatus::Test,
        catalog::ReleaseStatus::Online => ReleaseStatus::Online,
        catalog::ReleaseStatus::Invalid => ReleaseStatus::Invalid,
    }
}

fn status_to(s: ReleaseStatus) -> catalog::ReleaseStatus {
    match s {
        ReleaseStatus::Test => catalog::ReleaseStatus::Test,
        ReleaseStatus::Online => catalog::ReleaseStatus::Online,
        ReleaseStatus::Invalid => catalog::ReleaseStatus::Invalid,
    }
}

fn release_to(r: Release) -> catalog::Release {
    catalog::Release {
        id: r.id as u64,
        product_sn: r.product_sn,
        module: module_to(r.module),
        identify: r.identify.clamp(0, u32::MAX as i64) as u32,
        name: r.name,
        version: r.version,
        from_version: r.from_version,
        blob_id: r.blob_sha256,
        external_url: r.external_url,
        md5: r.md5,
        size: r.size,
        status: status_to(r.status),
        description: r.description,
        customize: r.customize,
        mac_range: r.mac_range,
        created_at: ms(r.created_at),
        updated_at: ms(r.updated_at),
    }
}

fn payload_from(p: catalog::Payload) -> PayloadRequest {
    match p {
        catalog::Payload::Blob(sha256) => PayloadRequest::Blob {
            sha256,
            md5: None,
            size: None,
        },
        catalog::Payload::External(f) => PayloadRequest::External {
            url: f.url,
            md5: f.md5,
            size: f.size,
        },
    }
}

/// A job as the contract shows it, its device named by `device_sn`.
fn wit_job_of(j: Job, device_sn: String) -> rollout::Job {
    rollout::Job {
        id: j.id as u64,
        campaign_id: j.campaign_id as u64,
        device_sn,
        state: job_state_to(j.state),
        previous_state: job_state_to(j.previous_state),
        retry_count: j.retry_count.clamp(0, 255) as u8,
        result_code: j.result_code,
        result_text: j.result_text,
        version_before: j.version_before,
        version_after: j.version_after,
        created_at: ms(j.created_at),
        updated_at: ms(j.updated_at),
        deadline_at: j.deadline_at.map(ms),
    }
}

fn job_state_from(s: rollout::JobState) -> JobState {
    match s {
        rollout::JobState::Queued => JobState::Queued,
        rollout::JobState::Notified => JobState::Notified,
        rollout::JobState::Downloading => JobState::Downloading,
        rollout::JobState::Installing => JobState::Installing,
        rollout::JobState::Succeeded => JobState::Succeeded,
        rollout::JobState::Failed => JobState::Failed,
        rollout::JobState::Cancelled => JobState::Cancelled,
        rollout::JobState::TimedOut => JobState::TimedOut,
    }
}

fn job_state_to(s: JobState) -> rollout::JobState {
    match s {
        JobState::Queued => rollout::JobState::Queued,
        JobState::Notified => rollout::JobState::Notified,
        JobState::Downloading => rollout::JobState::Downloading,
        JobState::Installing => rollout::JobState::Installing,
        JobState::Succeeded => rollout::JobState::Succeeded,
        JobState::Failed => rollout::JobState::Failed,
        JobState::Cancelled => rollout::JobState::Cancelled,
        JobState::TimedOut => rollout::JobState::TimedOut,
    }
}

fn campaign_status_to(s: CampaignStatus) -> rollout::CampaignStatus {
    match s {
        CampaignStatus::Draft => rollout::CampaignStatus::Draft,
        CampaignStatus::Pending => rollout::CampaignStatus::Pending,
        CampaignStatus::Running => rollout::CampaignStatus::Running,
        CampaignStatus::Paused => rollout::CampaignStatus::Paused,
        CampaignStatus::Stopped => rollout::CampaignStatus::Stopped,
        CampaignStatus::Finished => rollout::CampaignStatus::Finished,
        CampaignStatus::Cancelled => rollout::CampaignStatus::Cancelled,
    }
}

fn campaign_status_from(s: rollout::CampaignStatus) -> CampaignStatus {
    match s {
        rollout::CampaignStatus::Draft => CampaignStatus::Draft,
        rollout::CampaignStatus::Pending => CampaignStatus::Pending,
        rollout::CampaignStatus::Running => CampaignStatus::Running,
        rollout::CampaignStatus::Paused => CampaignStatus::Paused,
        rollout::CampaignStatus::Stopped => CampaignStatus::Stopped,
        rollout::CampaignStatus::Finished => CampaignStatus::Finished,
        rollout::CampaignStatus::Cancelled => CampaignStatus::Cancelled,
    }
}

fn tag_str(t: rollout::CampaignTag) -> String {
    match t {
        rollout::CampaignTag::Test => "test".into(),
        rollout::CampaignTag::Formal => "formal".into(),
    }
}

fn scope_from(s: rollout::Scope) -> ScopeRequest {
    match s {
        rollout::Scope::All => ScopeRequest::All,
        rollout::Scope::Devices(d) => ScopeRequest::Devices(d),
        rollout::Scope::Group(g) => ScopeRequest::Group(g),
    }
}

fn window_from(w: rollout::MaintenanceWindow) -> crate::rollout::campaigns::MaintenanceWindow {
    crate::rollout::campaigns::MaintenanceWindow {
        start_min: w.start_minute,
        end_min: w.end_minute,
    }
}

fn window(w: types::Window) -> PageReq {
    PageReq::window(w.offset, w.limit)
}

fn check_window(w: types::Window) -> Result<(i64, i64), HostError> {
    if w.limit == 0 || w.limit > 200 {
        return Err(HostError::Invalid("window limit must be 1-200".into()));
    }
    let offset = i64::try_from(w.offset)
        .map_err(|_| HostError::Invalid("window offset out of range".into()))?;
    Ok((w.limit as i64, offset))
}

fn id_of(id: u64, what: &str) -> Result<i64, HostError> {
    i64::try_from(id).map_err(|_| HostError::NotFound(format!("unknown {what} {id}")))
}

fn version_list(items: Vec<(String, i64, String)>) -> Vec<catalog::ModuleVersion> {
    items
        .into_iter()
        .map(|(module, identify, version)| catalog::ModuleVersion {
            module: module_str(&module),
            identify: identify.clamp(0, u32::MAX as i64) as u32,
            version,
        })
        .collect()
}

impl RequestState {
    /// The actor recorded in op logs: the name a dialect passed on, else the principal.
    fn actor(&self, given: Option<String>) -> Result<String, HostError> {
        let a = self.acting()?;
        Ok(given
            .map(|g| g.trim().to_string())
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| a.subject.clone()))
    }

    async fn wit_device(
        &mut self,
        d: crate::catalog::Device,
    ) -> Result<catalog::Device, HostError> {
        let modules = self
            .services
            .catalog
            .module_versions(d.id)
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(catalog::Device {
            id: d.id as u64,
            product_sn: d.product_sn,
            sn: d.sn,
            name: d.name,
            imei: d.imei,
            mac: d.mac,
            group: d.group,
            online_at: d.online_at.map(ms),
            offline_at: d.offline_at.map(ms),
            created_at: ms(d.created_at),
            modules: version_list(modules),
        })
    }

    /// A product of `tenant_id` by serial number (the catalog keeps products in memory).
    async fn tenant_product(
        &mut self,
        tenant_id: i64,
        sn: &str,
    ) -> Result<crate::catalog::Product, HostError> {
        self.services
            .catalog
            .product(tenant_id, sn)
            .await
            .map_err(|e| self.catalog_err(e))
    }

    /// A device principal may touch only its own product.
    fn check_product(&self, product_sn: &str) -> Result<i64, HostError> {
        let a = self.acting()?;
        if a.device
            .as_ref()
            .is_some_and(|d| d.product_sn != product_sn)
        {
            return Err(HostError::Forbidden(
                "device credentials reach only their own product".into(),
            ));
        }
        Ok(a.tenant_id)
    }

    /// The device a check-in or report names: a device principal's own, or (for tenant
    /// principals) the tenant's, registered on first contact.
    async fn contact_device(
        &mut self,
        product_sn: &str,
        device_sn: &str,
    ) -> Result<crate::catalog::Device, HostError> {
        let a = self.acting()?;
        if let Some(own) = &a.device {
            if own.product_sn == product_sn && own.sn == device_sn {
                // Read in this request, and what a check-in uses of it (id, tenant, product,
                // group) a device principal cannot change; its contact makes it stale.
                let own = own.clone();
                self.own_device_current = false;
                return Ok(own);
            }
            return Err(HostError::Forbidden(
                "device credentials reach only their own device".into(),
            ));
        }
        if let Some(d) = self
            .contacted
            .values()
            .find(|d| d.product_sn == product_sn && d.sn == device_sn)
        {
            return Ok(d.clone());
        }
        let d = self
            .services
            .catalog
            .register_device(a.tenant_id, product_sn, device_sn)
            .await
            .map_err(|e| self.catalog_err(e))?;
        self.contacted.insert(d.id, d.clone());
        Ok(d)
    }

    /// A campaign with its whole device list, as `get-campaign` answers it.
    async fn wit_campaign(&mut self, c: Campaign) -> Result<rollout::Campaign, HostError> {
        Ok(self.wit_campaign_listing(c, true).await?.campaign)
    }

    /// A campaign with its device list's size only (contract 0.2.8's `campaign-brief`).
    async fn wit_campaign_brief(
        &mut self,
        c: Campaign,
    ) -> Result<rollout::CampaignBrief, HostError> {
        self.wit_campaign_listing(c, false).await
    }

    /// A campaign and how many devices its scope lists; the serial numbers themselves only
    /// when `with_devices`, since lowering thousands of them is what makes a call costly.
    async fn wit_campaign_listing(
        &mut self,
        c: Campaign,
        with_devices: bool,
    ) -> Result<rollout::CampaignBrief, HostError> {
        let product_sn = self.campaign_product_sn(&c).await?;
        let own = self
            .acting
            .as_ref()
            .and_then(|a| a.device.as_ref())
            .map(|d| d.sn.clone());
        let (scope, listed) = match (c.scope.as_str(), own) {
            // A device principal learns nothing about other devices: only itself is shown.
            ("devices", Some(own)) => (
                rollout::Scope::Devices(if with_devices { vec![own] } else { vec![] }),
                1,
            ),
            ("devices", None) if with_devices => {
                let sns = self
                    .services
                    .rollout
                    .listed_devices(c.id)
                    .await
                    .map_err(|e| self.rollout_err(e))?;
                let n = sns.len() as u64;
                (rollout::Scope::Devices(sns), n)
            }
            ("devices", None) => (
                rollout::Scope::Devices(vec![]),
                self.services
                    .rollout
                    .count_listed(c.id)
                    .await
                    .map_err(|e| self.rollout_err(e))?,
            ),
            ("group", _) => (
                rollout::Scope::Group(c.scope_group.clone().unwrap_or_default()),
                0,
            ),
            _ => (rollout::Scope::All, 0),
        };
        let waves = match (c.wave_cap, c.wave_step, c.wave_interval_secs) {
            (Some(cap), Some(step), Some(interval)) => Some(rollout::Waves {
                initial: cap.max(0) as u64,
                step: step.max(0) as u64,
                interval_secs: interval.max(0) as u64,
                max_failure_pct: c.max_failure_pct.map(|p| p.clamp(0, 100) as u8),
            }),
            _ => None,
        };
        let campaign = rollout::Campaign {
            id: c.id as u64,
            product_sn,
            release_id: c.release_id as u64,
            name: c.name,
            description: c.description,
            module: module_str(&c.module),
            identify: c.identify.clamp(0, u32::MAX as i64) as u32,
            target_version: c.target_version,
            from_version: c.from_version,
            scope,
            mode: if c.mode == "manual" {
                rollout::CampaignMode::Manual
            } else {
                rollout::CampaignMode::Auto
            },
            tag: if c.tag == "test" {
                rollout::CampaignTag::Test
            } else {
                rollout::CampaignTag::Formal
            },
            status: campaign_status_to(c.status),
            approver: c.approver,
            retries: c.retries.clamp(0, 3) as u8,
            timeout_secs: c.timeout_secs.max(0) as u64,
            created_by: c.created_by,
            created_at: ms(c.created_at),
            updated_at: ms(c.updated_at),
            waves,
            maintenance_window: c.window.map(|w| rollout::MaintenanceWindow {
                start_minute: w.start_min,
                end_minute: w.end_min,
            }),
        };
        Ok(rollout::CampaignBrief { campaign, listed })
    }

    async fn wit_job(&mut self, j: Job) -> Result<rollout::Job, HostError> {
        // A device's serial number never changes: the principal's own device, or one this
        // request checked in, is at hand.
        let own = self.acting.as_ref().and_then(|a| a.device.as_ref());
        let sn = match own.or_else(|| self.contacted.get(&j.device_id)) {
            Some(d) if d.id == j.device_id => d.sn.clone(),
            _ => {
                self.services
                    .catalog
                    .device(j.device_id)
                    .await
                    .map_err(|e| self.catalog_err(e))?
                    .sn
            }
        };
        Ok(wit_job_of(j, sn))
    }

    /// A campaign of the principal's tenant (tenant principals only).
    async fn campaign_in_scope(&mut self, id: u64) -> Result<Campaign, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let id = id_of(id, "campaign")?;
        // A tenant's calls may change campaigns: what a check-in offered may be stale now.
        self.offered.clear();
        self.services
            .rollout
            .campaign(tenant_id, id)
            .await
            .map_err(|e| self.rollout_err(e))
    }

    /// One window of the tenant's campaigns matching a contract filter, and how many match.
    async fn campaigns_matching(
        &mut self,
        filter: rollout::CampaignFilter,
        w: types::Window,
    ) -> Result<(Vec<Campaign>, u64), HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let (limit, offset) = check_window(w)?;
        let product_id = match &filter.product_sn {
            Some(sn) => Some(self.tenant_product(tenant_id, sn).await?.id),
            None => None,
        };
        let filter = CampaignFilter {
            product_id,
            name_contains: filter.name_contains,
            module: filter.module.map(|m| module_from(m).as_str().to_string()),
            identify: None,
            tag: filter.tag.map(tag_str),
            status: filter.status.map(campaign_status_from),
        };
        let (list, total) = self
            .services
            .rollout
            .list_campaigns(tenant_id, &filter, limit, offset)
            .await
            .map_err(|e| self.rollout_err(e))?;
        Ok((list, total.max(0) as u64))
    }
}

impl types::Host for RequestState {}

impl log::Host for RequestState {
    async fn log(&mut self, level: log::Level, message: String) {
        let (plugin, version, rid) = (&self.plugin.name, &self.plugin.version, &self.request_id);
        match level {
            log::Level::Trace => {
                tracing::trace!(plugin = %plugin, version = %version, request_id = %rid, "{message}")
            }
            log::Level::Debug => {
                tracing::debug!(plugin = %plugin, version = %version, request_id = %rid, "{message}")
            }
            log::Level::Info => {
                tracing::info!(plugin = %plugin, version = %version, request_id = %rid, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(plugin = %plugin, version = %version, request_id = %rid, "{message}")
            }
            log::Level::Error => {
                tracing::error!(plugin = %plugin, version = %version, request_id = %rid, "{message}")
            }
        }
    }
}

impl clock::Host for RequestState {
    async fn now_millis(&mut self) -> u64 {
        self.services.clock.now_millis().max(0) as u64
    }
}

impl config::Host for RequestState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.plugin.settings.get(&key).cloned()
    }
}
