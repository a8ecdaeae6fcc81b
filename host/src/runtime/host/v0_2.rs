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
                return self
                    .services
                    .catalog
                    .device(own.id)
                    .await
                    .map_err(|e| self.catalog_err(e));
            }
            return Err(HostError::Forbidden(
                "device credentials reach only their own device".into(),
            ));
        }
        self.services
            .catalog
            .register_device(a.tenant_id, product_sn, device_sn)
            .await
            .map_err(|e| self.catalog_err(e))
    }

    async fn wit_campaign(&mut self, c: Campaign) -> Result<rollout::Campaign, HostError> {
        let product_sn = self.campaign_product_sn(&c).await?;
        let own = self
            .acting
            .as_ref()
            .and_then(|a| a.device.as_ref())
            .map(|d| d.sn.clone());
        let scope = match (c.scope.as_str(), own) {
            // A device principal learns nothing about other devices: only itself is shown.
            ("devices", Some(own)) => rollout::Scope::Devices(vec![own]),
            ("devices", None) => rollout::Scope::Devices(
                self.services
                    .rollout
                    .listed_devices(c.id)
                    .await
                    .map_err(|e| self.rollout_err(e))?,
            ),
            ("group", _) => rollout::Scope::Group(c.scope_group.clone().unwrap_or_default()),
            _ => rollout::Scope::All,
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
        Ok(rollout::Campaign {
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
        })
    }

    async fn wit_job(&mut self, j: Job) -> Result<rollout::Job, HostError> {
        let device = self
            .services
            .catalog
            .device(j.device_id)
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(wit_job_of(j, device.sn))
    }

    /// A campaign of the principal's tenant (tenant principals only).
    async fn campaign_in_scope(&mut self, id: u64) -> Result<Campaign, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let id = id_of(id, "campaign")?;
        self.services
            .rollout
            .campaign(tenant_id, id)
            .await
            .map_err(|e| self.rollout_err(e))
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

impl auth::Host for RequestState {
    async fn anonymous(&mut self) -> Result<Principal, HostError> {
        let tenant = match (self.plugin.auth, &self.plugin.tenant) {
            (AuthMode::Anonymous, Some(t)) => t.clone(),
            _ => {
                return Err(HostError::Unauthenticated(
                    "credentials required (send an API key)".into(),
                ));
            }
        };
        let t = self
            .services
            .auth
            .tenant(&tenant)
            .await
            .map_err(|e| self.auth_err(e))?;
        Ok(self.establish(Acting {
            tenant_id: t.id,
            tenant: t.name,
            subject: "anonymous".into(),
            scheme: CredentialScheme::Anonymous,
            device: None,
        }))
    }

    async fn verify_api_key(&mut self, key: String) -> Result<Principal, HostError> {
        let id = self
            .services
            .auth
            .verify_api_key(&key)
            .await
            .map_err(|e| self.auth_err(e))?;
        let tenant = match (id.role, id.tenant) {
            (Role::Tenant, Some(t)) => t,
            _ => {
                return Err(HostError::Forbidden(
                    "operator keys are for the admin API; use a tenant API key".into(),
                ));
            }
        };
        Ok(self.establish(Acting {
            tenant_id: tenant.id,
            tenant: tenant.name,
            subject: id.name,
            scheme: CredentialScheme::ApiKey,
            device: None,
        }))
    }

    async fn verify_device_secret(
        &mut self,
        device_key: String,
        secret: String,
    ) -> Result<Principal, HostError> {
        let device_id = self
            .services
            .auth
            .verify_device_secret(&device_key, &secret)
            .await
            .map_err(|e| self.auth_err(e))?;
        let device = self
            .services
            .catalog
            .device(device_id)
            .await
            .map_err(|e| self.catalog_err(e))?;
        let tenant = self
            .services
            .auth
            .tenant_by_id(device.tenant_id)
            .await
            .map_err(|e| self.auth_err(e))?;
        Ok(self.establish(Acting {
            tenant_id: tenant.id,
            tenant: tenant.name,
            subject: device.sn.clone(),
            scheme: CredentialScheme::DeviceSecret,
            device: Some(device),
        }))
    }

    async fn current(&mut self) -> Option<Principal> {
        self.acting.as_ref().map(to_wit_principal)
    }

    async fn password_grant(
        &mut self,
        client: Option<auth::ClientCredentials>,
        username: String,
        password: String,
    ) -> Result<auth::TokenGrant, auth::GrantError> {
        let client = client.map(client_of);
        let grant = self
            .services
            .auth
            .password_grant(
                &self.plugin.name,
                self.plugin.tokens,
                client.as_ref(),
                &username,
                &password,
                self.client,
            )
            .await;
        self.token_grant(grant).await
    }

    async fn refresh_grant(
        &mut self,
        client: Option<auth::ClientCredentials>,
        refresh_token: String,
    ) -> Result<auth::TokenGrant, auth::GrantError> {
        let client = client.map(client_of);
        let grant = self
            .services
            .auth
            .refresh_grant(
                &self.plugin.name,
                self.plugin.tokens,
                client.as_ref(),
                &refresh_token,
                self.client,
            )
            .await;
        self.token_grant(grant).await
    }

    async fn verify_token(&mut self, token: String) -> Result<Principal, HostError> {
        let id = self
            .services
            .auth
            .verify_token(&self.plugin.name, &token)
            .await
            .map_err(|e| self.auth_err(e))?;
        let acting = self
            .token_acting(id.tenant, id.subject, id.device_id)
            .await?;
        Ok(self.establish(acting))
    }

    async fn revoke_token(&mut self, token: String) -> Result<(), HostError> {
        self.services
            .auth
            .revoke_token(&self.plugin.name, &token)
            .await
            .map_err(|e| self.auth_err(e))
    }

    async fn verify_hmac_sha1(
        &mut self,
        key_id: String,
        message: Vec<u8>,
        signature: Vec<u8>,
        timestamp_millis: Option<u64>,
    ) -> Result<Principal, HostError> {
        let id = self
            .services
            .auth
            .verify_hmac_sha1(
                &self.plugin.name,
                &key_id,
                &message,
                &signature,
                timestamp_millis.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
                self.plugin.hmac_max_skew_secs,
            )
            .await
            .map_err(|e| self.auth_err(e))?;
        Ok(self.establish(Acting {
            tenant_id: id.tenant.id,
            tenant: id.tenant.name,
            subject: id.app_key,
            scheme: CredentialScheme::Hmac,
            device: None,
        }))
    }

    async fn device_login(
        &mut self,
        product_sn: String,
        mac: String,
        product_key: String,
    ) -> Result<auth::TokenGrant, auth::GrantError> {
        let grant = self
            .device_login_grant(&product_sn, &mac, &product_key)
            .await;
        self.token_grant(grant).await
    }

    async fn verify_product_key(
        &mut self,
        product_sn: String,
        key: String,
    ) -> Result<(), HostError> {
        let tenant_id = self.acting()?.tenant_id;
        let product = self
            .services
            .catalog
            .product(tenant_id, &product_sn)
            .await
            .map_err(|e| self.catalog_err(e))?;
        self.services
            .auth
            .verify_product_key(product.id, &key)
            .await
            .map_err(|e| self.auth_err(e))
    }

    async fn token_expired(&mut self, token: String) -> Result<bool, HostError> {
        self.services
            .auth
            .token_expired(&self.plugin.name, &token)
            .await
            .map_err(|e| self.auth_err(e))
    }

    async fn login_exists(
        &mut self,
        kind: auth::LoginKind,
        name: String,
    ) -> Result<bool, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let kind = match kind {
            auth::LoginKind::User => crate::auth::LoginKind::User,
            auth::LoginKind::Client => crate::auth::LoginKind::Client,
        };
        self.services
            .auth
            .login_exists(tenant_id, &self.plugin.name, kind, &name)
            .await
            .map_err(|e| self.auth_err(e))
    }
}

impl RequestState {
    /// Who a token acts for: its account, or the one device a device login confined it to.
    async fn token_acting(
        &mut self,
        tenant: crate::auth::Tenant,
        subject: String,
        device_id: Option<i64>,
    ) -> Result<Acting, HostError> {
        let device = match device_id {
            Some(id) => Some(
                self.services
                    .catalog
                    .device(id)
                    .await
                    .map_err(|e| self.catalog_err(e))?,
            ),
            None => None,
        };
        Ok(Acting {
            tenant_id: tenant.id,
            tenant: tenant.name,
            subject: device.as_ref().map_or(subject, |d| d.sn.clone()),
            scheme: CredentialScheme::Token,
            device,
        })
    }

    /// The product whose key `key` is (of whichever tenant), and its device with `mac`.
    async fn device_login_grant(
        &mut self,
        product_sn: &str,
        mac: &str,
        key: &str,
    ) -> Result<Grant, GrantError> {
        let refused = || GrantError::InvalidGrant("unknown product or wrong product key".into());
        let catalog_err = |e: crate::catalog::CatalogError| match e {
            crate::catalog::CatalogError::Storage(e) => GrantError::Other(e.into()),
            other => GrantError::Other(crate::auth::AuthError::Invalid(other.to_string())),
        };
        let products = self
            .services
            .catalog
            .products_with_sn(product_sn)
            .await
            .map_err(catalog_err)?;
        let (mut product, mut more) = (None, None);
        for p in products {
            match self.services.auth.verify_product_key(p.id, key).await {
                Ok(()) if product.is_none() => product = Some(p),
                Ok(()) => more = Some(p),
                Err(crate::auth::AuthError::Unauthenticated(_)) => {}
                Err(e) => return Err(GrantError::Other(e)),
            }
        }
        let product = product.ok_or_else(refused)?;
        if let Some(other) = more {
            return Err(GrantError::InvalidGrant(format!(
                "the key fits product {product_sn} of several tenants ({} and {}); the operator \
                 must give each its own key",
                product.tenant_id, other.tenant_id
            )));
        }
        let device = self
            .services
            .catalog
            .device_by_mac(&product, mac)
            .await
            .map_err(catalog_err)?;
        let tenant = self.services.auth.tenant_by_id(product.tenant_id).await?;
        self.services
            .auth
            .device_grant(
                &self.plugin.name,
                self.plugin.tokens,
                &tenant,
                device.id,
                product.id,
            )
            .await
    }

    /// A product's serial number by id (read once per request).
    async fn product_sn(&mut self, product_id: i64) -> Result<String, HostError> {
        if let Some(sn) = self.product_sns.get(&product_id) {
            return Ok(sn.clone());
        }
        let sn = self
            .services
            .catalog
            .product_by_id(product_id)
            .await
            .map_err(|e| self.catalog_err(e))?
            .sn;
        self.product_sns.insert(product_id, sn.clone());
        Ok(sn)
    }

    /// The serial number of a campaign's product.
    async fn campaign_product_sn(&mut self, c: &Campaign) -> Result<String, HostError> {
        self.product_sn(c.product_id).await
    }

    /// A campaign the principal may read: any of its tenant's, or, for a device principal,
    /// one of its own product's.
    async fn campaign_readable(&mut self, id: u64) -> Result<Campaign, HostError> {
        let a = self.acting()?;
        let (tenant_id, own_product) =
            (a.tenant_id, a.device.as_ref().map(|d| d.product_sn.clone()));
        let id = id_of(id, "campaign")?;
        let c = self
            .services
            .rollout
            .campaign(tenant_id, id)
            .await
            .map_err(|e| self.rollout_err(e))?;
        if let Some(own) = own_product {
            let product = self.campaign_product_sn(&c).await?;
            if product != own {
                return Err(HostError::Forbidden(
                    "device credentials reach only their own product's campaigns".into(),
                ));
            }
        }
        Ok(c)
    }

    /// A grant's answer; a successful one also becomes the request's principal.
    async fn token_grant(
        &mut self,
        grant: Result<Grant, GrantError>,
    ) -> Result<auth::TokenGrant, auth::GrantError> {
        let g = match grant {
            Ok(g) => g,
            Err(GrantError::InvalidClient(m)) => return Err(auth::GrantError::InvalidClient(m)),
            Err(GrantError::InvalidGrant(m)) => return Err(auth::GrantError::InvalidGrant(m)),
            Err(GrantError::Other(e)) => return Err(auth::GrantError::Other(self.auth_err(e))),
            // The request ends here: the call hook raises the abort as soon as this returns,
            // and the host answers the failure (so the plugin never sees this value).
            Err(GrantError::Throttled(s)) => {
                self.abort = Some(super::Abort::RateLimited {
                    retry_after_secs: s,
                });
                return Err(auth::GrantError::Other(HostError::Internal(
                    "too many attempts".into(),
                )));
            }
            Err(GrantError::Busy) => {
                self.abort = Some(super::Abort::Busy);
                return Err(auth::GrantError::Other(HostError::Internal(
                    "credential checks are saturated".into(),
                )));
            }
        };
        let acting = self
            .token_acting(g.tenant, g.subject, g.device_id)
            .await
            .map_err(auth::GrantError::Other)?;
        let principal = self.establish(acting);
        Ok(auth::TokenGrant {
            access_token: g.access_token,
            refresh_token: g.refresh_token,
            expires_in: g.expires_in,
            principal,
        })
    }
}

impl catalog::Host for RequestState {
    async fn get_product(&mut self, sn: String) -> Result<catalog::Product, HostError> {
        let tenant_id = self.check_product(&sn)?;
        let p = self
            .services
            .catalog
            .product(tenant_id, &sn)
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(catalog::Product {
            id: p.id as u64,
            sn: p.sn,
            name: p.name,
            created_at: ms(p.created_at),
        })
    }

    async fn list_products(&mut self) -> Result<Vec<catalog::Product>, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let list = self
            .services
            .catalog
            .list_products(tenant_id)
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(list
            .into_iter()
            .map(|p| catalog::Product {
                id: p.id as u64,
                sn: p.sn,
                name: p.name,
                created_at: ms(p.created_at),
            })
            .collect())
    }

    async fn register_device(
        &mut self,
        product_sn: String,
        device_sn: String,
    ) -> Result<catalog::Device, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let d = self
            .services
            .catalog
            .register_device(tenant_id, &product_sn, &device_sn)
            .await
            .map_err(|e| self.catalog_err(e))?;
        self.wit_device(d).await
    }

    async fn get_device(
        &mut self,
        product_sn: String,
        device_sn: String,
    ) -> Result<catalog::Device, HostError> {
        let d = self.device_in_scope(&product_sn, &device_sn).await?;
        // A device principal's cached copy may be stale; read it afresh.
        let d = self
            .services
            .catalog
            .device(d.id)
            .await
            .map_err(|e| self.catalog_err(e))?;
        self.wit_device(d).await
    }

    async fn get_device_by_id(&mut self, id: u64) -> Result<catalog::Device, HostError> {
        let a = self.acting()?;
        let not_found = || HostError::NotFound(format!("unknown device {id}"));
        let (tenant_id, own) = (a.tenant_id, a.device.as_ref().map(|d| d.id));
        let id = id_of(id, "device")?;
        let d = match self.services.catalog.device(id).await {
            Err(crate::catalog::CatalogError::NotFound(_)) => return Err(not_found()),
            other => other.map_err(|e| self.catalog_err(e))?,
        };
        // Another tenant's (or device's) id is unknown, not forbidden: ids reveal nothing.
        if d.tenant_id != tenant_id || own.is_some_and(|o| o != d.id) {
            return Err(not_found());
        }
        self.wit_device(d).await
    }

    async fn update_device(
        &mut self,
        product_sn: String,
        device_sn: String,
        patch: catalog::DevicePatch,
    ) -> Result<catalog::Device, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let patch = DevicePatch {
            name: patch.name,
            imei: patch.imei,
            mac: patch.mac,
            group: patch.group,
        };
        let d = self
            .services
            .catalog
            .update_device(tenant_id, &product_sn, &device_sn, &patch)
            .await
            .map_err(|e| self.catalog_err(e))?;
        self.wit_device(d).await
    }

    async fn count_devices_on(
        &mut self,
        product_sn: String,
        module: types::Module,
        identify: u32,
        version: String,
    ) -> Result<u64, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        self.services
            .catalog
            .count_devices_on(
                tenant_id,
                &product_sn,
                module_from(module),
                identify.into(),
                &version,
            )
            .await
            .map_err(|e| self.catalog_err(e))
    }

    async fn list_devices(
        &mut self,
        product_sn: String,
        filter: catalog::DeviceFilter,
        w: types::Window,
    ) -> Result<catalog::DevicePage, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        check_window(w)?;
        let filter = DeviceFilter {
            sn: filter.sn,
            name: filter.name,
            imei: filter.imei,
            mac: filter.mac,
            group: filter.group,
        };
        let page = self
            .services
            .catalog
            .list_devices(tenant_id, &product_sn, &filter, window(w))
            .await
            .map_err(|e| self.catalog_err(e))?;
        let mut items = Vec::with_capacity(page.items.len());
        for d in page.items {
            items.push(self.wit_device(d).await?);
        }
        Ok(catalog::DevicePage {
            total: page.total.max(0) as u64,
            items,
        })
    }

    async fn report_versions(
        &mut self,
        product_sn: String,
        device_sn: String,
        versions: Vec<catalog::ModuleVersion>,
    ) -> Result<catalog::Device, HostError> {
        self.check_product(&product_sn)?;
        let device = self.contact_device(&product_sn, &device_sn).await?;
        for v in &versions {
            if v.version.trim().is_empty() || v.version.len() > 64 {
                return Err(HostError::Invalid(
                    "a version must be 1-64 characters".into(),
                ));
            }
        }
        for v in versions {
            self.services
                .catalog
                .set_module_version(
                    device.id,
                    module_from(v.module).as_str(),
                    v.identify as i64,
                    v.version.trim(),
                )
                .await
                .map_err(|e| self.catalog_err(e))?;
        }
        let d = self
            .services
            .catalog
            .device(device.id)
            .await
            .map_err(|e| self.catalog_err(e))?;
        self.wit_device(d).await
    }

    async fn put_install_config(
        &mut self,
        product_sn: String,
        device_sn: String,
        config: catalog::InstallConfig,
        report_url: String,
    ) -> Result<catalog::InstallGrant, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        if !(report_url.starts_with("http://") || report_url.starts_with("https://")) {
            return Err(HostError::Invalid(
                "report-url must be an absolute http(s) URL".into(),
            ));
        }
        let c = &self.services.catalog;
        let device = c
            .register_device(tenant_id, &product_sn, &device_sn)
            .await
            .map_err(|e| self.catalog_err(e))?;
        let config = InstallConfig {
            software_version: config.software_version,
            os: config.os,
            cpu_arch: config.cpu_arch,
            mode: config.mode,
            password: config.password,
        };
        c.put_install_config(device.id, &config, &report_url)
            .await
            .map_err(|e| self.catalog_err(e))?;
        let grant = self
            .services
            .auth
            .issue_device_secret(device.id)
            .await
            .map_err(|e| self.auth_err(e))?;
        Ok(catalog::InstallGrant {
            script_url: format!(
                "{}/install/{}/iot_edge_process.sh",
                self.host_url, grant.device_key
            ),
            device_key: grant.device_key,
            device_secret: grant.device_secret,
        })
    }

    async fn get_install_config(
        &mut self,
        product_sn: String,
        device_sn: String,
    ) -> Result<catalog::InstallConfig, HostError> {
        let missing = || {
            HostError::NotFound(format!(
                "gateway {device_sn:?} of product {product_sn:?} has no install configuration"
            ))
        };
        let device = match self.device_in_scope(&product_sn, &device_sn).await {
            Err(HostError::NotFound(_)) => return Err(missing()),
            other => other?,
        };
        let stored = self
            .services
            .catalog
            .install_config(device.id)
            .await
            .map_err(|e| self.catalog_err(e))?
            .ok_or_else(missing)?;
        let c = stored.config;
        Ok(catalog::InstallConfig {
            software_version: c.software_version,
            os: c.os,
            cpu_arch: c.cpu_arch,
            mode: c.mode,
            password: c.password,
        })
    }

    async fn create_release(
        &mut self,
        r: catalog::NewRelease,
    ) -> Result<catalog::Release, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let payload = self
            .services
            .payload(payload_from(r.payload))
            .await
            .map_err(|e| self.flow_err(e))?;
        let release = self
            .services
            .catalog
            .create_release(
                tenant_id,
                NewRelease {
                    product_sn: r.product_sn,
                    module: module_from(r.module),
                    identify: r.identify as i64,
                    name: r.name,
                    version: r.version,
                    from_version: r.from_version,
                    payload,
                    status: status_from(r.status),
                    description: r.description,
                    customize: r.customize,
                    mac_range: r.mac_range,
                },
            )
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(release_to(release))
    }

    async fn get_release(&mut self, id: u64) -> Result<catalog::Release, HostError> {
        let a = self.acting()?;
        let (tenant_id, own_product) =
            (a.tenant_id, a.device.as_ref().map(|d| d.product_sn.clone()));
        let r = self
            .services
            .catalog
            .release(tenant_id, id_of(id, "release")?)
            .await
            .map_err(|e| self.catalog_err(e))?;
        if own_product.is_some_and(|p| p != r.product_sn) {
            return Err(HostError::NotFound(format!("unknown release {id}")));
        }
        Ok(release_to(r))
    }

    async fn list_releases(
        &mut self,
        filter: catalog::ReleaseFilter,
        w: types::Window,
    ) -> Result<catalog::ReleasePage, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        check_window(w)?;
        let filter = crate::catalog::releases::ReleaseFilter {
            product: filter.product_sn,
            module: filter.module.map(module_from),
            status: filter.status.map(status_from),
        };
        let page = self
            .services
            .catalog
            .list_releases(tenant_id, &filter, window(w))
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(catalog::ReleasePage {
            total: page.total.max(0) as u64,
            items: page.items.into_iter().map(release_to).collect(),
        })
    }

    async fn update_release(
        &mut self,
        id: u64,
        patch: catalog::ReleasePatch,
    ) -> Result<catalog::Release, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let payload = match patch.payload {
            Some(p) => Some(
                self.services
                    .payload(payload_from(p))
                    .await
                    .map_err(|e| self.flow_err(e))?,
            ),
            None => None,
        };
        let patch = ReleasePatch {
            name: patch.name,
            version: patch.version,
            payload,
            description: patch.description,
            customize: patch.customize,
            mac_range: patch.mac_range,
        };
        let r = self
            .services
            .update_release(tenant_id, id_of(id, "release")?, patch)
            .await
            .map_err(|e| self.flow_err(e))?;
        Ok(release_to(r))
    }

    async fn set_release_status(
        &mut self,
        id: u64,
        status: catalog::ReleaseStatus,
    ) -> Result<catalog::Release, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let actor = self.actor(None)?;
        let (r, _) = self
            .services
            .set_release_status(
                tenant_id,
                id_of(id, "release")?,
                status_from(status),
                &actor,
            )
            .await
            .map_err(|e| self.flow_err(e))?;
        Ok(release_to(r))
    }

    async fn delete_release(&mut self, id: u64) -> Result<(), HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let actor = self.actor(None)?;
        self.services
            .delete_release(tenant_id, id_of(id, "release")?, &actor)
            .await
            .map_err(|e| self.flow_err(e))?;
        Ok(())
    }

    async fn upgrade_path(
        &mut self,
        id: u64,
        from_version: String,
    ) -> Result<Vec<catalog::Release>, HostError> {
        // The target must be visible to the principal (a device sees its own product only).
        let target = self.get_release(id).await?;
        let tenant_id = self.acting()?.tenant_id;
        let path = self
            .services
            .catalog
            .upgrade_path(tenant_id, target.id as i64, &from_version)
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(path.into_iter().map(release_to).collect())
    }

    async fn product_attributes(&mut self, sn: String) -> Result<Vec<(String, String)>, HostError> {
        let tenant_id = self.check_product(&sn)?;
        self.services
            .catalog
            .product_attributes(tenant_id, &sn)
            .await
            .map_err(|e| self.catalog_err(e))
    }

    async fn release_attributes(&mut self, id: u64) -> Result<Vec<(String, String)>, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        self.services
            .catalog
            .release_attributes(tenant_id, id_of(id, "release")?)
            .await
            .map_err(|e| self.catalog_err(e))
    }

    async fn set_release_attributes(
        &mut self,
        id: u64,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<Vec<(String, String)>, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        self.services
            .catalog
            .set_release_attributes(tenant_id, id_of(id, "release")?, &changes)
            .await
            .map_err(|e| self.catalog_err(e))
    }
}

impl rollout::Host for RequestState {
    async fn create_deployment(
        &mut self,
        product_sn: String,
        device_sn: String,
        keep_local: bool,
    ) -> Result<rollout::Deployment, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let device = self
            .services
            .catalog
            .register_device(tenant_id, &product_sn, &device_sn)
            .await
            .map_err(|e| self.catalog_err(e))?;
        let d = self
            .services
            .rollout
            .create_deployment(tenant_id, device.id, keep_local)
            .await
            .map_err(|e| self.rollout_err(e))?;
        self.wit_deployment(d).await
    }

    async fn get_deployment(&mut self, id: u64) -> Result<rollout::Deployment, HostError> {
        let d = self.deployment_in_scope(id).await?;
        self.wit_deployment(d).await
    }

    async fn report_deployment(
        &mut self,
        id: u64,
        status: rollout::DeploymentStatus,
        log_line: Option<String>,
    ) -> Result<rollout::Deployment, HostError> {
        let d = self.deployment_in_scope(id).await?;
        let status = match status {
            rollout::DeploymentStatus::Init => DeploymentStatus::Init,
            rollout::DeploymentStatus::Processing => DeploymentStatus::Processing,
            rollout::DeploymentStatus::Success => DeploymentStatus::Success,
            rollout::DeploymentStatus::Failed => DeploymentStatus::Failed,
            rollout::DeploymentStatus::Timeout => DeploymentStatus::Timeout,
        };
        let d = self
            .services
            .rollout
            .report(d.id, status, log_line.as_deref())
            .await
            .map_err(|e| self.rollout_err(e))?;
        self.wit_deployment(d).await
    }

    async fn create_campaign(
        &mut self,
        c: rollout::NewCampaign,
    ) -> Result<rollout::Campaign, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let actor = self.actor(c.created_by)?;
        let request = CampaignRequest {
            release_id: id_of(c.release_id, "release")?,
            name: c.name,
            description: c.description,
            from_version: c.from_version,
            scope: scope_from(c.scope),
            mode: match c.mode {
                rollout::CampaignMode::Auto => Mode::Auto,
                rollout::CampaignMode::Manual => Mode::Manual,
            },
            tag: tag_str(c.tag),
            retries: c.retries,
            timeout_secs: c.timeout_secs,
            window: c.maintenance_window.map(window_from),
            // A dialect registers the devices it names itself (register-device).
            register_devices: false,
            waves: c.waves.map(|w| WavesRequest {
                start: WaveStart::Count(w.initial),
                step: w.step,
                interval_secs: w.interval_secs,
                max_failure_pct: w.max_failure_pct,
            }),
        };
        let created = self
            .services
            .create_campaign(tenant_id, request, &actor)
            .await
            .map_err(|e| self.flow_err(e))?;
        self.wit_campaign(created).await
    }

    async fn get_campaign(&mut self, id: u64) -> Result<rollout::Campaign, HostError> {
        let c = self.campaign_in_scope(id).await?;
        self.wit_campaign(c).await
    }

    async fn list_campaigns(
        &mut self,
        filter: rollout::CampaignFilter,
        w: types::Window,
    ) -> Result<rollout::CampaignPage, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let (limit, offset) = check_window(w)?;
        let product_id = match &filter.product_sn {
            Some(sn) => Some(
                self.services
                    .catalog
                    .product(tenant_id, sn)
                    .await
                    .map_err(|e| self.catalog_err(e))?
                    .id,
            ),
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
        let mut items = Vec::with_capacity(list.len());
        for c in list {
            items.push(self.wit_campaign(c).await?);
        }
        Ok(rollout::CampaignPage {
            total: total.max(0) as u64,
            items,
        })
    }

    async fn update_campaign(
        &mut self,
        id: u64,
        patch: rollout::CampaignPatch,
    ) -> Result<rollout::Campaign, HostError> {
        let c = self.campaign_in_scope(id).await?;
        let actor = self.actor(None)?;
        let scope = match patch.scope {
            Some(s) => {
                let product = self.campaign_product_sn(&c).await?;
                Some(
                    self.services
                        .scope(c.tenant_id, &product, scope_from(s))
                        .await
                        .map_err(|e| self.flow_err(e))?,
                )
            }
            None => None,
        };
        let patch = CampaignPatch {
            name: patch.name,
            description: patch.description,
            retries: patch.retries,
            timeout_secs: patch.timeout_secs,
            tag: patch.tag.map(tag_str),
            scope,
            window: patch.maintenance_window.map(window_from),
        };
        let c = self
            .services
            .update_campaign(c.tenant_id, c.id, patch, &actor)
            .await
            .map_err(|e| self.flow_err(e))?;
        self.wit_campaign(c).await
    }

    async fn submit(
        &mut self,
        id: u64,
        approver: Option<String>,
        actor: Option<String>,
    ) -> Result<rollout::Campaign, HostError> {
        let c = self.campaign_in_scope(id).await?;
        let actor = self.actor(actor)?;
        let c = self
            .services
            .rollout
            .submit(c.tenant_id, c.id, &actor, approver.as_deref())
            .await
            .map_err(|e| self.rollout_err(e))?;
        self.wit_campaign(c).await
    }

    async fn act(
        &mut self,
        id: u64,
        action: rollout::CampaignAction,
        actor: Option<String>,
        note: String,
    ) -> Result<rollout::Campaign, HostError> {
        let c = self.campaign_in_scope(id).await?;
        let actor = self.actor(actor)?;
        let action = match action {
            rollout::CampaignAction::Submit => Action::Submit,
            rollout::CampaignAction::Approve => Action::Approve,
            rollout::CampaignAction::Reject => Action::Reject,
            rollout::CampaignAction::Start => Action::Start,
            rollout::CampaignAction::Pause => Action::Pause,
            rollout::CampaignAction::Resume => Action::Resume,
            rollout::CampaignAction::Stop => Action::Stop,
            rollout::CampaignAction::Cancel => Action::Cancel,
        };
        let c = self
            .services
            .rollout
            .act(c.tenant_id, c.id, action, &actor, &note)
            .await
            .map_err(|e| self.rollout_err(e))?;
        self.wit_campaign(c).await
    }

    async fn delete_campaign(&mut self, id: u64, actor: Option<String>) -> Result<(), HostError> {
        let c = self.campaign_in_scope(id).await?;
        let actor = self.actor(actor)?;
        self.services
            .rollout
            .delete_campaign(c.tenant_id, c.id, &actor)
            .await
            .map_err(|e| self.rollout_err(e))
    }

    async fn add_devices(
        &mut self,
        id: u64,
        device_sns: Vec<String>,
        actor: Option<String>,
    ) -> Result<u64, HostError> {
        let c = self.campaign_in_scope(id).await?;
        let actor = self.actor(actor)?;
        let ids = self
            .services
            .campaign_device_ids(&c, &device_sns)
            .await
            .map_err(|e| self.flow_err(e))?;
        self.services
            .add_devices(&c, &ids, &actor)
            .await
            .map_err(|e| self.flow_err(e))
    }

    async fn remove_devices(
        &mut self,
        id: u64,
        device_sns: Vec<String>,
        actor: Option<String>,
    ) -> Result<u64, HostError> {
        let c = self.campaign_in_scope(id).await?;
        let actor = self.actor(actor)?;
        let ids = self
            .services
            .campaign_device_ids(&c, &device_sns)
            .await
            .map_err(|e| self.flow_err(e))?;
        self.services
            .rollout
            .remove_devices(c.tenant_id, c.id, &ids, &actor)
            .await
            .map_err(|e| self.rollout_err(e))
    }

    async fn cancel_jobs(
        &mut self,
        campaign_id: u64,
        job_ids: Vec<u64>,
        actor: Option<String>,
    ) -> Result<u64, HostError> {
        let c = self.campaign_in_scope(campaign_id).await?;
        let actor = self.actor(actor)?;
        self.services
            .rollout
            .cancel_jobs(c.tenant_id, c.id, &job_ids_of(&job_ids), &actor)
            .await
            .map_err(|e| self.rollout_err(e))
    }

    async fn retry_jobs(
        &mut self,
        campaign_id: u64,
        job_ids: Vec<u64>,
        actor: Option<String>,
    ) -> Result<u64, HostError> {
        let c = self.campaign_in_scope(campaign_id).await?;
        let actor = self.actor(actor)?;
        self.services
            .retry_jobs(&c, &job_ids_of(&job_ids), &actor)
            .await
            .map_err(|e| self.flow_err(e))
    }

    async fn list_jobs(
        &mut self,
        campaign_id: u64,
        filter: rollout::JobFilter,
        w: types::Window,
    ) -> Result<rollout::JobPage, HostError> {
        let c = self.campaign_in_scope(campaign_id).await?;
        let (limit, offset) = check_window(w)?;
        let device_id = match &filter.device_sn {
            Some(sn) => {
                let product = self.campaign_product_sn(&c).await?;
                match self
                    .services
                    .catalog
                    .find_device(c.tenant_id, &product, sn)
                    .await
                {
                    Ok(d) => Some(d.id),
                    // An unknown device has no jobs: an empty page, not an error.
                    Err(crate::catalog::CatalogError::NotFound(_)) => Some(-1),
                    Err(e) => return Err(self.catalog_err(e)),
                }
            }
            None => None,
        };
        let filter = JobFilter {
            state: filter.state.map(job_state_from),
            device_id,
        };
        let (list, total) = self
            .services
            .rollout
            .jobs(c.tenant_id, c.id, &filter, limit, offset)
            .await
            .map_err(|e| self.rollout_err(e))?;
        let mut items = Vec::with_capacity(list.len());
        for j in list {
            items.push(self.wit_job(j).await?);
        }
        Ok(rollout::JobPage {
            total: total.max(0) as u64,
            items,
        })
    }

    async fn check_in(
        &mut self,
        product_sn: String,
        device_sn: String,
        module: types::Module,
        identify: u32,
        current: String,
    ) -> Result<Option<rollout::Offer>, HostError> {
        self.check_product(&product_sn)?;
        let current = current.trim().to_string();
        if current.is_empty() || current.len() > 64 {
            return Err(HostError::Invalid(
                "the current version must be 1-64 characters".into(),
            ));
        }
        let device = self.contact_device(&product_sn, &device_sn).await?;
        let offer = self
            .services
            .check_in(
                &device,
                module_from(module).as_str(),
                identify as i64,
                &current,
            )
            .await
            .map_err(|e| self.flow_err(e))?;
        let Some(offer) = offer else {
            return Ok(None);
        };
        // Deleting or invalidating a release cancels its campaigns, so an offer's release is
        // live; the read is still tenant-scoped and refuses deleted ones.
        let release = self
            .services
            .catalog
            .release(device.tenant_id, offer.campaign.release_id)
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(Some(rollout::Offer {
            campaign: self.wit_campaign(offer.campaign).await?,
            job: self.wit_job(offer.job).await?,
            release: release_to(release),
        }))
    }

    async fn report_job(
        &mut self,
        job_id: u64,
        state: rollout::JobState,
        code: Option<i64>,
        text: String,
        version_now: Option<String>,
    ) -> Result<rollout::Job, HostError> {
        let a = self.acting()?;
        let (tenant_id, own) = (a.tenant_id, a.device.as_ref().map(|d| d.id));
        let not_found = || HostError::NotFound(format!("unknown job {job_id}"));
        let id = id_of(job_id, "job")?;
        let job = match self.services.rollout.job(id).await {
            Err(RolloutError::NotFound(_)) => return Err(not_found()),
            other => other.map_err(|e| self.rollout_err(e))?,
        };
        let campaign = self
            .services
            .rollout
            .campaign_by_id(job.campaign_id)
            .await
            .map_err(|e| self.rollout_err(e))?;
        // Another tenant's (or device's) job is unknown: ids reveal nothing.
        if campaign.tenant_id != tenant_id || own.is_some_and(|o| o != job.device_id) {
            return Err(not_found());
        }
        if let Some(v) = &version_now
            && (v.trim().is_empty() || v.len() > 64)
        {
            return Err(HostError::Invalid(
                "a version must be 1-64 characters".into(),
            ));
        }
        let job = self
            .services
            .report_job(
                job.id,
                job.device_id,
                job_state_from(state),
                code,
                &text,
                version_now.as_deref().map(str::trim),
            )
            .await
            .map_err(|e| self.flow_err(e))?;
        self.wit_job(job).await
    }

    async fn stats(&mut self, campaign_id: u64) -> Result<rollout::CampaignStats, HostError> {
        let c = self.campaign_in_scope(campaign_id).await?;
        let s = self
            .services
            .rollout
            .stats(c.tenant_id, c.id)
            .await
            .map_err(|e| self.rollout_err(e))?;
        let mut by_state: Vec<(rollout::JobState, u64)> = s
            .by_state
            .iter()
            .filter_map(|(k, v)| JobState::parse(k).map(|st| (st, *v)))
            .map(|(st, v)| (job_state_to(st), v.max(0) as u64))
            .collect();
        by_state.sort_by_key(|(st, _)| *st as u8);
        let mut versions: Vec<(String, u64)> = s
            .versions
            .into_iter()
            .map(|(k, v)| (k, v.max(0) as u64))
            .collect();
        versions.sort_by(|a, b| crate::catalog::version::compare(&a.0, &b.0));
        Ok(rollout::CampaignStats {
            total: s.total.max(0) as u64,
            by_state,
            versions,
        })
    }

    async fn campaign_log(
        &mut self,
        campaign_id: u64,
        w: types::Window,
    ) -> Result<rollout::LogPage, HostError> {
        let c = self.campaign_in_scope(campaign_id).await?;
        check_window(w)?;
        let all = self
            .services
            .rollout
            .campaign_log(c.tenant_id, c.id)
            .await
            .map_err(|e| self.rollout_err(e))?;
        let total = all.len() as u64;
        let items = all
            .into_iter()
            .skip(w.offset.min(usize::MAX as u64) as usize)
            .take(w.limit as usize)
            .map(|e| rollout::LogEntry {
                at: ms(e.at),
                actor: e.actor,
                action: e.action,
                detail: e.detail,
            })
            .collect();
        Ok(rollout::LogPage { total, items })
    }

    async fn revise(
        &mut self,
        id: u64,
        actor: Option<String>,
    ) -> Result<rollout::Campaign, HostError> {
        let c = self.campaign_in_scope(id).await?;
        let actor = self.actor(actor)?;
        let c = self
            .services
            .rollout
            .act(c.tenant_id, c.id, Action::Revise, &actor, "")
            .await
            .map_err(|e| self.rollout_err(e))?;
        self.wit_campaign(c).await
    }

    async fn count_jobs(
        &mut self,
        campaign_id: u64,
        states: Vec<rollout::JobState>,
    ) -> Result<u64, HostError> {
        let c = self.campaign_readable(campaign_id).await?;
        let states: Vec<JobState> = states.into_iter().map(job_state_from).collect();
        let n = self
            .services
            .rollout
            .count_jobs(&c, &states)
            .await
            .map_err(|e| self.rollout_err(e))?;
        Ok(n.max(0) as u64)
    }

    async fn campaign_attributes(&mut self, id: u64) -> Result<Vec<(String, String)>, HostError> {
        let c = self.campaign_readable(id).await?;
        self.services
            .rollout
            .campaign_attributes(&c)
            .await
            .map_err(|e| self.rollout_err(e))
    }

    async fn set_campaign_attributes(
        &mut self,
        id: u64,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<Vec<(String, String)>, HostError> {
        let c = self.campaign_in_scope(id).await?;
        self.services
            .rollout
            .set_campaign_attributes(c.tenant_id, c.id, &changes)
            .await
            .map_err(|e| self.rollout_err(e))
    }

    async fn search_jobs(
        &mut self,
        query: rollout::JobQuery,
        w: types::Window,
    ) -> Result<rollout::JobEntryPage, HostError> {
        use crate::rollout::search::{Condition, Field, Operator, Query};
        let a = self.acting()?;
        let (tenant_id, only_device) = (a.tenant_id, a.device.as_ref().map(|d| d.id));
        let (limit, offset) = check_window(w)?;
        let field = |f: rollout::JobField| match f {
            rollout::JobField::JobId => Field::JobId,
            rollout::JobField::CampaignId => Field::CampaignId,
            rollout::JobField::DeviceId => Field::DeviceId,
            rollout::JobField::DeviceMac => Field::DeviceMac,
            rollout::JobField::DeviceSn => Field::DeviceSn,
            rollout::JobField::UpdatedAt => Field::UpdatedAt,
        };
        let q = Query {
            conditions: query
                .conditions
                .into_iter()
                .map(|c| Condition {
                    field: field(c.field),
                    operator: match c.operator {
                        rollout::JobOperator::Eq => Operator::Eq,
                        rollout::JobOperator::In => Operator::In,
                        rollout::JobOperator::Lt => Operator::Lt,
                        rollout::JobOperator::Lte => Operator::Lte,
                        rollout::JobOperator::Gt => Operator::Gt,
                        rollout::JobOperator::Gte => Operator::Gte,
                        rollout::JobOperator::Like => Operator::Like,
                    },
                    values: c.values,
                })
                .collect(),
            order: query
                .order
                .into_iter()
                .map(|o| (field(o.field), o.descending))
                .collect(),
            states: query.states.into_iter().map(job_state_from).collect(),
        };
        let (hits, total) = self
            .services
            .rollout
            .search_jobs(tenant_id, only_device, &q, limit, offset)
            .await
            .map_err(|e| self.rollout_err(e))?;
        let mut items = Vec::with_capacity(hits.len());
        for h in hits {
            let product_sn = self.product_sn(h.product_id).await?;
            let device_id = h.job.device_id.max(0) as u64;
            items.push(rollout::JobEntry {
                job: wit_job_of(h.job, h.device_sn),
                product_sn,
                device_id,
                device_mac: h.device_mac,
                module: module_str(&h.module),
                identify: h.identify.clamp(0, i64::from(u32::MAX)) as u32,
            });
        }
        Ok(rollout::JobEntryPage {
            total: total.max(0) as u64,
            items,
        })
    }
}

impl blobs::Host for RequestState {
    async fn stat(&mut self, id: String) -> Result<blobs::BlobInfo, HostError> {
        self.acting()?;
        if !crate::blobs::valid_sha256(&id) {
            return Err(HostError::Invalid(
                "a blob id is 64 lower-case hex characters".into(),
            ));
        }
        let info = self
            .services
            .blobs
            .stat(&id)
            .await
            .map_err(|e| self.blob_err(e))?;
        Ok(blobs::BlobInfo {
            id: info.sha256,
            size: info.size,
            md5: info.md5,
        })
    }

    async fn download_url(
        &mut self,
        id: String,
        ttl_seconds: Option<u32>,
    ) -> Result<String, HostError> {
        let info = self.stat(id).await?;
        if ttl_seconds == Some(0) {
            return Err(HostError::Invalid("ttl-seconds must be at least 1".into()));
        }
        Ok(self
            .services
            .blobs
            .download_url(&self.host_url, &info.id, ttl_seconds.map(u64::from)))
    }

    async fn post_policy(
        &mut self,
        dir: String,
        max_bytes: u64,
        ttl_seconds: u32,
        callback: Option<blobs::UploadCallback>,
    ) -> Result<blobs::UploadForm, HostError> {
        let a = self.acting_tenant()?.clone();
        let callback = match callback {
            Some(cb) => {
                if !cb.url.starts_with(&format!("{}/", self.host_url)) {
                    return Err(HostError::Invalid(format!(
                        "callback URL {} is not on this host ({})",
                        cb.url, self.host_url
                    )));
                }
                Some(crate::uploads::Callback {
                    url: cb.url,
                    body: cb.body,
                    body_type: cb.body_type,
                    plugin: Some(self.plugin.name.clone()),
                })
            }
            None => None,
        };
        let p = self
            .services
            .uploads
            .issue(
                a.tenant_id,
                &self.bucket_url(&a.tenant),
                &dir,
                max_bytes,
                ttl_seconds,
                callback.as_ref(),
            )
            .await
            .map_err(|e| self.upload_err(e))?;
        Ok(blobs::UploadForm {
            access_id: p.access_id,
            host: p.host,
            policy: p.policy,
            signature: p.signature,
            expire: p.expire.max(0) as u64,
            dir: p.dir,
            callback: p.callback,
        })
    }

    async fn get_object(&mut self, key: String) -> Result<blobs::StoredObject, HostError> {
        let a = self.acting_tenant()?.clone();
        let object = self
            .services
            .uploads
            .object(a.tenant_id, &key)
            .await
            .map_err(|e| self.upload_err(e))?
            .ok_or_else(|| HostError::NotFound(format!("no object {key}")))?;
        let blob = self.stat(object.sha256).await?;
        Ok(blobs::StoredObject {
            url: format!("{}/{}", self.bucket_url(&a.tenant), object.key),
            key: object.key,
            blob,
        })
    }

    async fn find_url(&mut self, url: String) -> Result<Option<blobs::BlobInfo>, HostError> {
        let a = self.acting_tenant()?.clone();
        // An object of the tenant's bucket: on the OSS listener, or under `/oss` here.
        let object_key = url
            .strip_prefix(&format!("{}/", self.bucket_url(&a.tenant)))
            .or_else(|| url.strip_prefix(&format!("{}/oss/{}/", self.host_url, a.tenant)))
            .map(|k| k.split(['?', '#']).next().unwrap_or_default());
        if let Some(key) = object_key {
            return self.object_blob(a.tenant_id, key).await;
        }
        let Some(rest) = url.strip_prefix(&format!("{}/", self.host_url)) else {
            return Ok(None);
        };
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        if let Some(id) = path.strip_prefix("blobs/") {
            let sha = id.split('/').next().unwrap_or_default();
            if crate::blobs::valid_sha256(sha) {
                return match self.stat(sha.to_string()).await {
                    Ok(info) => Ok(Some(info)),
                    Err(HostError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                };
            }
        }
        Ok(None)
    }
}

impl RequestState {
    /// The stored file behind an object key of the tenant's bucket (as written, or
    /// percent-decoded as OSS SDKs send keys), none when there is no such object.
    async fn object_blob(
        &mut self,
        tenant_id: i64,
        key: &str,
    ) -> Result<Option<blobs::BlobInfo>, HostError> {
        let decoded = crate::http::oss::percent_decode(key);
        for k in [key, decoded.as_str()] {
            if let Some(o) = self
                .services
                .uploads
                .object(tenant_id, k)
                .await
                .map_err(|e| self.upload_err(e))?
            {
                return blobs::Host::stat(self, o.sha256).await.map(Some);
            }
        }
        Ok(None)
    }

    /// The tenant's bucket on the OSS-compatible upload endpoint.
    fn bucket_url(&self, tenant: &str) -> String {
        match &self.oss_url {
            Some(oss) => format!("{oss}/{tenant}"),
            None => format!("{}/oss/{tenant}", self.host_url),
        }
    }

    fn upload_err(&self, e: crate::uploads::UploadError) -> HostError {
        use crate::uploads::UploadError as U;
        match e {
            U::Invalid(m) | U::BadPolicy(m) => HostError::Invalid(m),
            U::Storage(e) => self.internal("upload storage", e),
            e => HostError::Unauthenticated(e.to_string()),
        }
    }
}
