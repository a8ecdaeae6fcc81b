//! The main-task APIs: create, modify, delete, query one, query the list, query the detail
//! statistics, and start (`/control`). A main task is a campaign in manual mode: it starts
//! as a draft, devices join it through `/operational`, and `runStatus` 2 starts it.

use ota_plugin_sdk::catalog::{self, Release, ReleaseStatus};
use ota_plugin_sdk::rollout::{
    self, Campaign, CampaignAction, CampaignFilter, CampaignMode, CampaignPatch, CampaignTag,
    NewCampaign, Scope,
};
use ota_plugin_sdk::{HostError, Request, Response, Window};
use serde::Serialize;

use crate::envelope::{ApiError, Page, ok};
use crate::params::{Body, Query};
use crate::sign;
use crate::view::{Ctx, Protocol, task_view};

/// How long an LWM2M device has to finish (CTWing sets no limit for LWM2M; the engine needs
/// one): a day.
const LWM2M_TIMEOUT_SECS: u64 = 86_400;

/// A handler's result, refusals rendered in the envelope.
pub fn respond(f: impl FnOnce() -> Result<Response, ApiError>) -> Response {
    f().unwrap_or_else(ApiError::into_response)
}

/// Authenticate (before reading the body: a bad signature is a 401 whatever the body), then
/// the body and the product its `productId` names.
pub fn signed_body(req: &Request, q: &Query) -> Result<(Ctx, Body), ApiError> {
    let principal = sign::authenticate(req, q)?;
    let b = Body::parse(req)?;
    let product_id = b.int("productId")?;
    let product_id = u64::try_from(product_id)
        .map_err(|_| ApiError::Bad("productId must be positive".into()))?;
    Ok((Ctx::for_product(req, q, principal, product_id)?, b))
}

fn ctx_from_query(req: &Request, q: &Query) -> Result<Ctx, ApiError> {
    let principal = sign::authenticate(req, q)?;
    let product_id = q.required_id("productId")?;
    Ctx::for_product(req, q, principal, product_id)
}

/// `retryTimes` for LWM2M (0-3), `outTime` in hours for T-Link (1-168); the other
/// protocol's field is ignored, as CTWing does (its own example sends both).
fn limits(ctx: &Ctx, b: &Body, required: bool) -> Result<(Option<u8>, Option<u64>), ApiError> {
    match ctx.protocol {
        Protocol::Lwm2m => match b.opt_int("retryTimes")? {
            Some(r @ 0..=3) => Ok((Some(r as u8), None)),
            Some(r) => Err(ApiError::Bad(format!("retryTimes must be 0-3, not {r}"))),
            None if required => Err(ApiError::Bad(
                "retryTimes is required for LWM2M products".into(),
            )),
            None => Ok((None, None)),
        },
        Protocol::TLink => match b.opt_int("outTime")? {
            Some(h @ 1..=168) => Ok((None, Some(h.unsigned_abs() * 3600))),
            Some(h) => Err(ApiError::Bad(format!(
                "outTime must be 1-168 hours, not {h}"
            ))),
            None if required => Err(ApiError::Bad(
                "outTime is required for T-Link products".into(),
            )),
            None => Ok((None, None)),
        },
    }
}

fn firmware_of(ctx: &Ctx, id: u64) -> Result<Release, ApiError> {
    let not_found = || {
        ApiError::NotFound(format!(
            "unknown firmware {id} of product {}",
            ctx.product.sn
        ))
    };
    match catalog::get_release(id) {
        Ok(r) if r.product_sn == ctx.product.sn => Ok(r),
        Ok(_) | Err(HostError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// The created task as `CreateRemoteUpgradeTask` prints it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    job_id: u64,
    product_id: u64,
    tenant_id: String,
    job_name: String,
    job_desc: String,
    firmware_id: u64,
    create_by: String,
    product_protocol: u8,
    upgrade_plan: u8,
    retry_times: u8,
}

/// `POST /task` (CreateRemoteUpgradeTask).
pub fn create(req: &Request) -> Response {
    respond(|| {
        let q = Query::of(req);
        let (ctx, b) = signed_body(req, &q)?;
        let firmware_id = u64::try_from(b.int("firmwareId")?)
            .map_err(|_| ApiError::Bad("firmwareId must be positive".into()))?;
        let job_name = b.string("jobName")?;
        let job_desc = b.opt_string("jobDesc")?.unwrap_or_default();
        let create_by = b.opt_string("createBy")?;
        let (retries, timeout) = limits(&ctx, &b, true)?;
        let release = firmware_of(&ctx, firmware_id)?;
        let c = rollout::create_campaign(&NewCampaign {
            release_id: release.id,
            name: job_name,
            description: job_desc,
            from_version: None,
            scope: Scope::Devices(Vec::new()),
            mode: CampaignMode::Manual,
            tag: if release.status == ReleaseStatus::Test {
                CampaignTag::Test
            } else {
                CampaignTag::Formal
            },
            retries: retries.unwrap_or(0),
            timeout_secs: timeout.unwrap_or(LWM2M_TIMEOUT_SECS),
            waves: None,
            maintenance_window: None,
            created_by: create_by,
        })?;
        Ok(ok(Created {
            job_id: c.id,
            product_id: ctx.product_id(),
            tenant_id: ctx.principal.tenant.clone(),
            job_name: c.name.clone(),
            job_desc: c.description.clone(),
            firmware_id: c.release_id,
            create_by: c.created_by.clone(),
            product_protocol: ctx.protocol.code(),
            upgrade_plan: 1,
            retry_times: retries.unwrap_or(0),
        }))
    })
}

/// `PUT /task?id=` (ModifyRemoteUpgradeTask).
pub fn modify(req: &Request) -> Response {
    respond(|| {
        let q = Query::of(req);
        let (ctx, b) = signed_body(req, &q)?;
        let task = ctx.task(q.required_id("id")?)?;
        let (retries, timeout) = limits(&ctx, &b, false)?;
        rollout::update_campaign(
            task.id,
            &CampaignPatch {
                name: b.opt_string("jobName")?,
                description: b.opt_string("jobDesc")?,
                retries,
                timeout_secs: timeout,
                tag: None,
                scope: None,
                maintenance_window: None,
            },
        )?;
        Ok(ok("SUCCESS"))
    })
}

/// `DELETE /task?id=&productId=&updateBy=` (DeleteRemoteUpgradeTask).
pub fn delete(req: &Request) -> Response {
    respond(|| {
        let q = Query::of(req);
        let ctx = ctx_from_query(req, &q)?;
        let task = ctx.task(q.required_id("id")?)?;
        rollout::delete_campaign(task.id, q.get("updateBy"))?;
        Ok(ok("SUCCESS"))
    })
}

/// `GET /task?id=&productId=` (QueryRemoteUpgradeTask).
pub fn show(req: &Request) -> Response {
    respond(|| {
        let q = Query::of(req);
        let ctx = ctx_from_query(req, &q)?;
        let task = ctx.task(q.required_id("id")?)?;
        let release = firmware_of(&ctx, task.release_id)?;
        let mut v = task_view(&ctx, &task, &release)?;
        let devices = rollout::stats(task.id)?.total;
        v.device_status = Some(u8::from(devices > 0));
        Ok(ok(v))
    })
}

/// `GET /detail?id=&productId=` (QueryRemoteUpgradeDetail): the task with its device count.
pub fn detail(req: &Request) -> Response {
    respond(|| {
        let q = Query::of(req);
        let ctx = ctx_from_query(req, &q)?;
        let task = ctx.task(q.required_id("id")?)?;
        let release = firmware_of(&ctx, task.release_id)?;
        let mut v = task_view(&ctx, &task, &release)?;
        v.upgrade_plan = None;
        v.product_name = None;
        v.all_num = Some(rollout::stats(task.id)?.total);
        Ok(ok(v))
    })
}

/// `pageNow` (from 1, default 1), `pageSize` (default 20, at most 200: larger asks get 200,
/// which the answer's `pageSize` says) and the offset they make.
pub fn paging(q: &Query) -> Result<(u64, u32, u64), ApiError> {
    let page = q.optional_u64("pageNow")?.unwrap_or(1);
    let size = q.optional_u64("pageSize")?.unwrap_or(20).min(200);
    if page == 0 || size == 0 {
        return Err(ApiError::Bad("pageNow and pageSize start at 1".into()));
    }
    let offset = (page - 1)
        .checked_mul(size)
        .filter(|o| i64::try_from(*o).is_ok())
        .ok_or_else(|| ApiError::Bad(format!("pageNow {page} is out of range")))?;
    Ok((page, size as u32, offset))
}

/// `GET /tasks?productId=&pageNow=&pageSize=&searchValue=` (QueryRemoteUpgradeTaskList).
pub fn list(req: &Request) -> Response {
    respond(|| {
        let q = Query::of(req);
        let ctx = ctx_from_query(req, &q)?;
        let (page, size, offset) = paging(&q)?;
        let found = rollout::list_campaign_briefs(
            &CampaignFilter {
                product_sn: Some(ctx.product.sn.clone()),
                name_contains: q.get("searchValue").map(str::to_string),
                module: None,
                tag: None,
                status: None,
            },
            Window {
                offset,
                limit: size,
            },
        )?;
        let mut list = Vec::with_capacity(found.items.len());
        for c in found.items.iter().map(|b| &b.campaign) {
            let release = firmware_of(&ctx, c.release_id)?;
            list.push(task_view(&ctx, c, &release)?);
        }
        Ok(ok(Page {
            page_num: page,
            page_size: u64::from(size),
            total: found.total,
            list,
        }))
    })
}

/// `PUT /control?id=` (ControlRemoteUpgradeTask): `runStatus` 2 starts the task now; CTWing
/// supports nothing else.
pub fn control(req: &Request) -> Response {
    respond(|| {
        let q = Query::of(req);
        let (ctx, b) = signed_body(req, &q)?;
        let task: Campaign = ctx.task(q.required_id("id")?)?;
        match b.int("runStatus")? {
            2 => {}
            other => {
                return Err(ApiError::Bad(format!(
                    "runStatus {other} is not supported; only 2 (start now) is"
                )));
            }
        }
        rollout::act(
            task.id,
            CampaignAction::Start,
            None,
            "started through ControlRemoteUpgradeTask",
        )?;
        Ok(ok("SUCCESS"))
    })
}
