//! The host side of the contract: one [`RequestState`] per plugin call (inside its `Store`),
//! and thin adapters from each imported interface to the domain services — `v0_2` for the
//! current contract, `v0_1` for the frozen one (it delegates to `v0_2`). The adapters hold
//! the authorization rules of the contract: nothing but `auth` works before a principal
//! exists, data is always the principal's tenant's, and a device principal reaches only its
//! own device.

mod v0_1;
mod v0_2;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::guest_output::GuestOutput;

use super::budget::{CpuTurn, MemoryLimiter};
use super::{CallSite, InvokeError};

use super::bindings::v0_2::ota::dialect::rollout;
use super::bindings::{CredentialScheme, DeviceRef, HostError, Principal};
use crate::Services;
use crate::auth::{AuthError, TokenPolicy};
use crate::blobs::BlobError;
use crate::catalog::{CatalogError, Device};
use crate::config::AuthMode;
use crate::flows::FlowError;
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
    /// Lifetimes of the tokens this plugin's logins earn.
    pub tokens: TokenPolicy,
    /// How far a signed request's timestamp may be from the host's clock.
    pub hmac_max_skew_secs: u64,
}

/// A principal the host established itself before a plugin runs: the tenant whose signed
/// upload form it accepted, when it delivers that upload's callback. The plugin sees it from
/// `auth.current` with the `hmac` scheme (the form's signature is an HMAC).
#[derive(Debug, Clone)]
pub struct Preauthorized {
    pub tenant_id: i64,
    pub tenant: String,
    pub subject: String,
}

/// A host call's decision to end the request at once; the host then answers the failure (in
/// the plugin's words where it can) instead of whatever the plugin would have said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    /// Too many attempts from this client or for this account (a login flood).
    RateLimited { retry_after_secs: u32 },
    /// The host's capacity for this kind of work is in use (the password-hash queue).
    Busy,
}

impl From<&Abort> for InvokeError {
    fn from(a: &Abort) -> Self {
        match *a {
            Abort::RateLimited { retry_after_secs } => {
                InvokeError::RateLimited { retry_after_secs }
            }
            Abort::Busy => InvokeError::Busy("the host's credential checks are saturated".into()),
        }
    }
}

/// The trap that carries an [`Abort`] out of the guest.
#[derive(Debug, thiserror::Error)]
#[error("the host ended the call")]
pub struct Aborted;

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
    /// What the guest printed, forwarded by [`RequestState::forward_output`].
    stdout: GuestOutput,
    stderr: GuestOutput,
    table: ResourceTable,
    pub(crate) limits: MemoryLimiter,
    /// The call's CPU turn (see `runtime::budget`); none for calls outside the gate.
    pub(crate) cpu: Option<Arc<CpuTurn>>,
    /// Between a host call's start and its return (the call hook's bookkeeping).
    pub(crate) in_host_call: bool,
    /// Set by a host call that ends the request (read by the call hook and the runtime).
    pub(crate) abort: Option<Abort>,
    services: Arc<Services>,
    plugin: Arc<PluginIdentity>,
    request_id: String,
    host_url: String,
    /// See [`crate::runtime::CallSite::oss_url`].
    oss_url: Option<String>,
    /// The client's address, for per-address limits.
    client: Option<IpAddr>,
    acting: Option<Acting>,
    /// Whether a device principal's `acting.device` is still its stored row: true from the
    /// read that established the principal until this request's own check-in or report
    /// touches the device. Until then the plugin's own reads of it need no second query.
    own_device_current: bool,
    /// Campaigns a check-in offered in this request, by id: the plugin's next calls about
    /// that campaign (its attributes, its job counts) find it here. A device principal cannot
    /// change a campaign; a tenant's calls that may empty this first.
    offered: std::collections::HashMap<i64, crate::rollout::campaigns::Campaign>,
    /// Devices a tenant principal's check-ins reached in this request, by id: a dialect
    /// that checks in two modules of one device finds it once. What a check-in uses of a
    /// device (id, product, group) changes only through `update-device`, which empties this.
    contacted: std::collections::HashMap<i64, Device>,
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
        services: Arc<Services>,
        plugin: Arc<PluginIdentity>,
        request_id: String,
        site: CallSite,
        limits: MemoryLimiter,
        cpu: Option<Arc<CpuTurn>>,
    ) -> Self {
        // WASI is satisfied with an empty sandbox: no args, env, preopened dirs or sockets,
        // stdin closed. Plugins log through the `log` import; what they print anyway (a
        // Python traceback, a debugging line) is kept, bounded, and forwarded to the log.
        let stdout = GuestOutput::default();
        let stderr = GuestOutput::default();
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        RequestState {
            wasi,
            stdout,
            stderr,
            table: ResourceTable::new(),
            limits,
            cpu,
            in_host_call: false,
            abort: None,
            services,
            plugin,
            request_id,
            host_url: site.host_url,
            oss_url: site.oss_url,
            client: site.client,
            own_device_current: false,
            offered: Default::default(),
            contacted: Default::default(),
            acting: site.preauthorized.map(|p| Acting {
                tenant_id: p.tenant_id,
                tenant: p.tenant,
                subject: p.subject,
                scheme: CredentialScheme::Hmac,
                device: None,
            }),
        }
    }

    /// Log what the guest printed during the call, tagged with the plugin, its version and
    /// the request id: stderr as warnings, stdout as information.
    pub fn forward_output(&self) {
        let (plugin, version) = (&self.plugin.name, &self.plugin.version);
        let request_id = &self.request_id;
        for (stream, out) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let (lines, dropped) = out.take_lines();
            for line in &lines {
                if stream == "stderr" {
                    tracing::warn!(%plugin, %version, %request_id, %stream, "guest: {line}");
                } else {
                    tracing::info!(%plugin, %version, %request_id, %stream, "guest: {line}");
                }
            }
            if dropped > 0 {
                tracing::warn!(%plugin, %version, %request_id, %stream, dropped_bytes = dropped, "guest output over the per-request bound was dropped");
            }
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
            AuthError::Secret(e) => self.internal("sealed secret", e),
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
            RolloutError::Forbidden(m) => HostError::Forbidden(m),
            RolloutError::Storage(e) => self.internal("rollout storage", e),
        }
    }

    fn blob_err(&self, e: BlobError) -> HostError {
        match e {
            BlobError::NotFound(id) => HostError::NotFound(format!("no stored file {id}")),
            BlobError::Invalid(m) | BlobError::Mismatch(m) => HostError::Invalid(m),
            e @ (BlobError::TooLarge(_) | BlobError::BadSignature | BlobError::Expired) => {
                HostError::Invalid(e.to_string())
            }
            e => self.internal("blob storage", e),
        }
    }

    fn flow_err(&self, e: FlowError) -> HostError {
        match e {
            FlowError::Catalog(e) => self.catalog_err(e),
            FlowError::Rollout(e) => self.rollout_err(e),
            FlowError::Blob(e) => self.blob_err(e),
            FlowError::ReleaseState(m) => HostError::Conflict(m),
            FlowError::Invalid(m) => HostError::Invalid(m),
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
