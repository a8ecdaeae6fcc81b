//! What the APIs share: the product a call names (with its protocol and MasterKey check),
//! CTWing's renderings of tasks, times and statuses, and firmware download URLs.

use ota_plugin_sdk::catalog::{self, Product, Release};
use ota_plugin_sdk::rollout::{Campaign, CampaignStatus, Job, JobState};
use ota_plugin_sdk::{HostError, Principal, Request, clock};
use serde::Serialize;

use crate::envelope::ApiError;
use crate::params::Query;
use crate::sign;

/// The transport protocol of a product, which decides parameters and status vocabularies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    TLink,
    Lwm2m,
}

impl Protocol {
    /// CTWing's `productProtocol` number.
    pub fn code(self) -> u8 {
        match self {
            Protocol::TLink => 1,
            Protocol::Lwm2m => 3,
        }
    }
}

/// A signed call about one product: who calls, the product and its protocol.
pub struct Ctx {
    pub principal: Principal,
    pub product: Product,
    pub protocol: Protocol,
}

impl Ctx {
    /// Load the product `product_id` for an authenticated call (checking `MasterKey` when
    /// sent).
    pub fn for_product(
        req: &Request,
        query: &Query,
        principal: Principal,
        product_id: u64,
    ) -> Result<Ctx, ApiError> {
        query.check_printable()?;
        let sn = product_id.to_string();
        let product = catalog::get_product(&sn).map_err(|e| match e {
            HostError::NotFound(_) => ApiError::NotFound(format!("unknown product {sn}")),
            e => e.into(),
        })?;
        sign::master_key(req, query, &sn)?;
        let attrs = catalog::product_attributes(&sn)?;
        let protocol = match attrs
            .iter()
            .find(|(k, _)| k == "ctwing.protocol")
            .map(|(_, v)| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("lwm2m") | Some("3") => Protocol::Lwm2m,
            Some("t-link") | Some("tlink") | Some("t_link") | Some("1") => Protocol::TLink,
            Some(other) => {
                return Err(ApiError::Bad(format!(
                    "product {sn} has an unknown ctwing.protocol {other:?} (lwm2m or t-link)"
                )));
            }
        };
        Ok(Ctx {
            principal,
            product,
            protocol,
        })
    }

    /// The numeric productId (the product's serial number).
    pub fn product_id(&self) -> u64 {
        self.product.sn.parse().unwrap_or(0)
    }

    /// A task (campaign) of this product; another product's or an unknown one is 404. No
    /// API renders a task's device list (subtasks are its jobs), so it is left behind.
    pub fn task(&self, id: u64) -> Result<Campaign, ApiError> {
        let not_found =
            || ApiError::NotFound(format!("unknown task {id} of product {}", self.product.sn));
        match ota_plugin_sdk::rollout::get_campaign_brief(id) {
            Ok(b) if b.campaign.product_sn == self.product.sn => Ok(b.campaign),
            Ok(_) | Err(HostError::NotFound(_)) => Err(not_found()),
            Err(e) => Err(e.into()),
        }
    }
}

/// `yyyy-MM-dd HH:mm:ss` in the configured offset (CTWing prints China time).
pub fn datetime(ms: u64) -> String {
    ota_plugin_sdk::time::format(ms, ' ')
}

/// `jobStatus`: 1 not started (draft, awaiting approval), 2 upgrading (running, paused),
/// 3 ended (finished, stopped, cancelled).
pub fn job_status(s: CampaignStatus) -> u8 {
    match s {
        CampaignStatus::Draft | CampaignStatus::Pending => 1,
        CampaignStatus::Running | CampaignStatus::Paused => 2,
        CampaignStatus::Stopped | CampaignStatus::Finished | CampaignStatus::Cancelled => 3,
    }
}

/// `takeTime`: how long the task has run (`93时43分`), from when it first started (its op
/// log's first `start` or `approve`) to now or to its end; empty before it starts.
pub fn take_time(c: &Campaign) -> Result<String, ApiError> {
    let end = match c.status {
        CampaignStatus::Draft | CampaignStatus::Pending => return Ok(String::new()),
        CampaignStatus::Running | CampaignStatus::Paused => clock::now_millis(),
        _ => c.updated_at,
    };
    let mut started = None;
    let mut offset = 0;
    while started.is_none() {
        let page = ota_plugin_sdk::rollout::campaign_log(
            c.id,
            ota_plugin_sdk::Window { offset, limit: 200 },
        )?;
        started = page
            .items
            .iter()
            .find(|e| e.action == "start" || e.action == "approve")
            .map(|e| e.at);
        offset += page.items.len() as u64;
        if page.items.is_empty() || offset >= page.total {
            break;
        }
    }
    // A task stopped or cancelled before it ever ran took no time.
    let Some(started) = started else {
        return Ok(String::new());
    };
    let minutes = end.saturating_sub(started) / 60_000;
    Ok(format!("{}时{}分", minutes / 60, minutes % 60))
}

/// A subtask's state in the product's vocabulary: T-Link 1 waiting, 2 upgrading,
/// 3 succeeded, 4 failed; LWM2M 0-11, where failures tell the stage they failed at.
pub fn task_state(p: Protocol, j: &Job) -> u8 {
    match p {
        Protocol::TLink => match j.state {
            JobState::Queued | JobState::Notified => 1,
            JobState::Downloading | JobState::Installing => 2,
            JobState::Succeeded => 3,
            JobState::Failed | JobState::Cancelled | JobState::TimedOut => 4,
        },
        Protocol::Lwm2m => match j.state {
            JobState::Queued => 0,
            JobState::Notified => 2,
            JobState::Downloading => 4,
            JobState::Installing => 6,
            JobState::Succeeded => 8,
            JobState::Cancelled => 10,
            JobState::Failed | JobState::TimedOut => match j.previous_state {
                JobState::Queued => 1,
                JobState::Notified => 3,
                JobState::Downloading => 5,
                _ => 7,
            },
        },
    }
}

/// Where the firmware is downloaded from.
pub fn firmware_url(r: &Release) -> Result<String, ApiError> {
    Ok(ota_plugin_sdk::release_url(r)?.unwrap_or_default())
}

/// A task as `QueryRemoteUpgradeTask`, `QueryRemoteUpgradeTaskList` and
/// `QueryRemoteUpgradeDetail` print it (each leaves some fields out).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub job_id: u64,
    pub product_id: u64,
    pub tenant_id: String,
    pub job_name: String,
    pub job_status: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_status: Option<u8>,
    pub firmware_name: String,
    pub out_time: u64,
    pub firmware_id: u64,
    pub firmware_url: String,
    pub file_name: String,
    pub firmware_version: String,
    pub job_desc: String,
    pub take_time: String,
    pub create_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_plan: Option<u8>,
    pub retry_times: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_num: Option<u64>,
}

/// Render a task; `release` is its firmware.
pub fn task_view(ctx: &Ctx, c: &Campaign, release: &Release) -> Result<TaskView, ApiError> {
    Ok(TaskView {
        job_id: c.id,
        product_id: ctx.product_id(),
        tenant_id: ctx.principal.tenant.clone(),
        job_name: c.name.clone(),
        job_status: job_status(c.status),
        device_status: None,
        firmware_name: release.name.clone(),
        out_time: match ctx.protocol {
            Protocol::TLink => c.timeout_secs / 3600,
            Protocol::Lwm2m => 0,
        },
        firmware_id: release.id,
        firmware_url: firmware_url(release)?,
        file_name: release.name.clone(),
        firmware_version: release.version.clone(),
        job_desc: c.description.clone(),
        take_time: take_time(c)?,
        create_time: datetime(c.created_at),
        upgrade_plan: Some(1),
        retry_times: match ctx.protocol {
            Protocol::TLink => 0,
            Protocol::Lwm2m => c.retries,
        },
        product_name: Some(ctx.product.name.clone()),
        all_num: None,
    })
}
