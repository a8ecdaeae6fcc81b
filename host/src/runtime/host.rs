//! The host side of the contract: one [`RequestState`] per plugin call (inside its `Store`),
//! and thin adapters from each imported interface to the domain services (`auth`, `catalog`,
//! `rollout`). The adapters hold the authorization rules of the contract: nothing but `auth`
//! works before a principal exists, data is always the principal's tenant's, and a device
//! principal reaches only its own device.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::ota::dialect::{auth, blobs, catalog, clock, config, log, rollout, types};
use super::bindings::{CredentialScheme, DeviceRef, HostError, Principal};
use crate::Services;
use crate::auth::{AuthError, Role};
use crate::catalog::{CatalogError, Device, InstallConfig};
use crate::config::AuthMode;
use crate::rollout::{Deployment, DeploymentStatus, RolloutError};

/// What the host knows about the plugin serving a request (fixed per loaded version).
#[derive(Debug, Clone)]
pub struct PluginIdentity {
    pub name: String,
    pub version: String,
    pub auth: AuthMode,
    /// Tenant that anonymous requests act for.
    pub tenant: Option<String>,
    pub settings: BTreeMap<String, String>,
}

/// The principal as the host keeps it (with ids the WIT never shows).
#[derive(Debug, Clone)]
struct Acting {
    tenant_id: i64,
    tenant: String,
    subject: String,
    scheme: CredentialScheme,
    device: Option<Device>,
}

/// Everything one plugin call may touch.
pub struct RequestState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    services: Services,
    plugin: Arc<PluginIdentity>,
    request_id: String,
    host_url: String,
    acting: Option<Acting>,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl RequestState {
    pub fn new(
        services: Services,
        plugin: Arc<PluginIdentity>,
        request_id: String,
        host_url: String,
        memory_bytes: usize,
    ) -> Self {
        // WASI is satisfied with an empty sandbox: no args, env, preopened dirs or sockets,
        // stdin closed, stdout/stderr discarded. Plugins log through the `log` import.
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        RequestState {
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            services,
            plugin,
            request_id,
            host_url,
            acting: None,
        }
    }

    fn acting(&self) -> Result<&Acting, HostError> {
        self.acting.as_ref().ok_or_else(|| {
            HostError::Unauthenticated("no credentials were verified for this request".into())
        })
    }

    /// The acting principal, refused when it is confined to a single device.
    fn acting_tenant(&self) -> Result<&Acting, HostError> {
        let a = self.acting()?;
        if a.device.is_some() {
            return Err(HostError::Forbidden(
                "device credentials may not do this; use a tenant API key".into(),
            ));
        }
        Ok(a)
    }

    fn internal(&self, what: &str, e: impl std::fmt::Display) -> HostError {
        tracing::error!(plugin = %self.plugin.name, request_id = %self.request_id, error = %e, "{what}");
        HostError::Internal(format!("internal error (request {})", self.request_id))
    }

    fn auth_err(&self, e: AuthError) -> HostError {
        match e {
            AuthError::Unauthenticated(m) => HostError::Unauthenticated(m),
            AuthError::NotFound(m) => HostError::NotFound(m),
            AuthError::Conflict(m) => HostError::Conflict(m),
            AuthError::Invalid(m) => HostError::Invalid(m),
            AuthError::Storage(e) => self.internal("auth storage", e),
        }
    }

    fn catalog_err(&self, e: CatalogError) -> HostError {
        match e {
            CatalogError::NotFound(m) => HostError::NotFound(m),
            CatalogError::Conflict(m) => HostError::Conflict(m),
            CatalogError::Invalid(m) => HostError::Invalid(m),
            CatalogError::Storage(e) => self.internal("catalog storage", e),
        }
    }

    fn rollout_err(&self, e: RolloutError) -> HostError {
        match e {
            RolloutError::NotFound(m) => HostError::NotFound(m),
            RolloutError::Conflict(m) => HostError::Conflict(m),
            RolloutError::Invalid(m) => HostError::Invalid(m),
            RolloutError::Storage(e) => self.internal("rollout storage", e),
        }
    }

    fn establish(&mut self, acting: Acting) -> Principal {
        let principal = to_wit_principal(&acting);
        self.acting = Some(acting);
        principal
    }

    /// A device the principal may act on: its own, or any of its tenant's.
    async fn device_in_scope(
        &mut self,
        product_sn: &str,
        device_sn: &str,
    ) -> Result<Device, HostError> {
        let a = self.acting()?;
        if let Some(own) = &a.device {
            if own.product_sn == product_sn && own.sn == device_sn {
                return Ok(own.clone());
            }
            return Err(HostError::Forbidden(
                "device credentials reach only their own device".into(),
            ));
        }
        let tenant_id = a.tenant_id;
        self.services
            .catalog
            .find_device(tenant_id, product_sn, device_sn)
            .await
            .map_err(|e| self.catalog_err(e))
    }

    /// A deployment of the principal's tenant (and device, for device principals).
    async fn deployment_in_scope(&mut self, id: u64) -> Result<Deployment, HostError> {
        let a = self.acting()?;
        let not_found = || HostError::NotFound(format!("unknown deployment {id}"));
        let id = i64::try_from(id).map_err(|_| not_found())?;
        let d = match self.services.rollout.deployment(id).await {
            Err(RolloutError::NotFound(_)) => return Err(not_found()),
            other => other.map_err(|e| self.rollout_err(e))?,
        };
        // Another tenant's (or device's) deployment is reported as unknown, not forbidden,
        // so ids reveal nothing across tenants.
        let visible =
            d.tenant_id == a.tenant_id && a.device.as_ref().is_none_or(|own| own.id == d.device_id);
        if !visible {
            return Err(not_found());
        }
        Ok(d)
    }

    async fn wit_deployment(&mut self, d: Deployment) -> Result<rollout::Deployment, HostError> {
        let device = self
            .services
            .catalog
            .device(d.device_id)
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(rollout::Deployment {
            id: d.id as u64,
            product_sn: device.product_sn,
            device_sn: device.sn,
            keep_local: d.keep_local,
            status: match d.status {
                DeploymentStatus::Init => rollout::DeploymentStatus::Init,
                DeploymentStatus::Processing => rollout::DeploymentStatus::Processing,
                DeploymentStatus::Success => rollout::DeploymentStatus::Success,
                DeploymentStatus::Failed => rollout::DeploymentStatus::Failed,
                DeploymentStatus::Timeout => rollout::DeploymentStatus::Timeout,
            },
            created_at: (d.created_at / 1000) as u64,
            updated_at: (d.updated_at / 1000) as u64,
            log: d.log(),
        })
    }
}

fn to_wit_principal(a: &Acting) -> Principal {
    Principal {
        tenant: a.tenant.clone(),
        subject: a.subject.clone(),
        scheme: a.scheme,
        device: a.device.as_ref().map(|d| DeviceRef {
            product_sn: d.product_sn.clone(),
            device_sn: d.sn.clone(),
        }),
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

    async fn verify_hmac_sha1(
        &mut self,
        _app_key: String,
        _string_to_sign: String,
        _signature: String,
        _timestamp_ms: u64,
    ) -> Result<Principal, HostError> {
        Err(HostError::Unsupported(
            "auth.verify-hmac-sha1 is not implemented by this host version".into(),
        ))
    }

    async fn verify_token(&mut self, _token: String) -> Result<Principal, HostError> {
        Err(HostError::Unsupported(
            "auth.verify-token is not implemented by this host version".into(),
        ))
    }

    async fn current(&mut self) -> Option<Principal> {
        self.acting.as_ref().map(to_wit_principal)
    }
}

impl catalog::Host for RequestState {
    async fn get_product(&mut self, sn: String) -> Result<catalog::Product, HostError> {
        let a = self.acting()?;
        if a.device.as_ref().is_some_and(|d| d.product_sn != sn) {
            return Err(HostError::Forbidden(
                "device credentials reach only their own product".into(),
            ));
        }
        let p = self
            .services
            .catalog
            .product(a.tenant_id, &sn)
            .await
            .map_err(|e| self.catalog_err(e))?;
        Ok(catalog::Product {
            sn: p.sn,
            name: p.name,
        })
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
        Ok(catalog::Device {
            product_sn: d.product_sn,
            sn: d.sn,
            created_at: (d.created_at / 1000) as u64,
        })
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
}

impl blobs::Host for RequestState {
    async fn stat(&mut self, _id: String) -> Result<blobs::BlobInfo, HostError> {
        Err(HostError::Unsupported(
            "blobs.stat is not implemented by this host version".into(),
        ))
    }

    async fn download_url(
        &mut self,
        _id: String,
        _ttl_seconds: Option<u32>,
    ) -> Result<String, HostError> {
        Err(HostError::Unsupported(
            "blobs.download-url is not implemented by this host version".into(),
        ))
    }
}
