//! Devices and subtasks: which devices are in a task or may join it (`/devices`), adding,
//! cancelling and retrying devices (`/operational`, whose body shape depends on the product's
//! protocol), and the subtask list with per-protocol states (`/details`).

use ota_plugin_sdk::catalog::{self, Device, DeviceFilter};
use ota_plugin_sdk::rollout::{self, Job, JobFilter};
use ota_plugin_sdk::{HostError, Module, Request, Response};
use serde::Serialize;
use serde_json::Value;

use crate::envelope::{ApiError, Page, ok};
use crate::params::{Query, id_list};
use crate::sign;
use crate::tasks::{paging, respond, signed_body};
use crate::view::{Ctx, Protocol, datetime, task_state};

/// Every job of a task, oldest first.
fn all_jobs(task: u64) -> Result<Vec<Job>, ApiError> {
    let filter = JobFilter {
        state: None,
        device_sn: None,
    };
    Ok(ota_plugin_sdk::all_pages(|w| {
        rollout::list_jobs(task, &filter, w).map(|p| (p.items, p.total))
    })?)
}

/// Every device of the product matching `filter`, oldest first.
fn all_devices(product: &str, filter: &DeviceFilter) -> Result<Vec<Device>, ApiError> {
    Ok(ota_plugin_sdk::all_pages(|w| {
        catalog::list_devices(product, filter, w).map(|p| (p.items, p.total))
    })?)
}

/// T-Link's device number: CTWing's deviceId is the productId followed by it. LWM2M devices
/// have none (`""`, as CTWing prints them).
fn device_no(ctx: &Ctx, device_id: &str) -> String {
    if ctx.protocol != Protocol::TLink {
        return String::new();
    }
    device_id
        .strip_prefix(&ctx.product.sn)
        .filter(|rest| !rest.is_empty())
        .unwrap_or("")
        .to_string()
}

fn firmware_version(d: &Device) -> String {
    d.modules
        .iter()
        .find(|m| m.module == Module::Mcu && m.identify == 0)
        .or_else(|| d.modules.first())
        .map(|m| m.version.clone())
        .unwrap_or_default()
}

/// A device as `QueryRemoteUpradeDeviceList` prints it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceRow {
    device_name: String,
    device_id: String,
    device_sn: String,
    imei: String,
    task_id: String,
    create_time: u64,
    device_status: u8,
    firmware_version: String,
    task_state: String,
    result_code: String,
    flag: String,
    net_status: u8,
    /// Numbers always, `0` when never seen: SDK users `int()` them.
    online_at: u64,
    offline_at: u64,
    device_group_id: String,
}

fn device_row(ctx: &Ctx, d: &Device, job: Option<&Job>) -> DeviceRow {
    let online = match (d.online_at, d.offline_at) {
        (Some(on), Some(off)) => on > off,
        (Some(_), None) => true,
        _ => false,
    };
    DeviceRow {
        device_name: d.name.clone().unwrap_or_default(),
        device_id: d.sn.clone(),
        device_sn: device_no(ctx, &d.sn),
        imei: d.imei.clone().unwrap_or_default(),
        task_id: job.map(|j| j.id.to_string()).unwrap_or_default(),
        create_time: d.created_at,
        device_status: 1,
        firmware_version: firmware_version(d),
        task_state: job
            .map(|j| task_state(ctx.protocol, j).to_string())
            .unwrap_or_default(),
        result_code: job
            .and_then(|j| j.result_code)
            .map(|c| c.to_string())
            .unwrap_or_default(),
        flag: String::new(),
        net_status: if online { 1 } else { 2 },
        online_at: d.online_at.unwrap_or(0),
        offline_at: d.offline_at.unwrap_or(0),
        device_group_id: d.group.clone().unwrap_or_default(),
    }
}

/// The exact-match filters of `/devices`, checked against the product's protocol; `None`
/// when they contradict each other (nothing can match).
fn device_filter(ctx: &Ctx, q: &Query) -> Result<Option<DeviceFilter>, ApiError> {
    if q.get("imeiSearch").is_some() && ctx.protocol != Protocol::Lwm2m {
        return Err(ApiError::Bad(
            "imeiSearch applies only to LWM2M products".into(),
        ));
    }
    if q.get("deviceNoSearch").is_some() && ctx.protocol != Protocol::TLink {
        return Err(ApiError::Bad(
            "deviceNoSearch applies only to T-Link products".into(),
        ));
    }
    let by_id = q.get("deviceIdSearch").map(str::to_string);
    let by_no = q
        .get("deviceNoSearch")
        .map(|no| format!("{}{no}", ctx.product.sn));
    if let (Some(a), Some(b)) = (&by_id, &by_no)
        && a != b
    {
        // Both given and naming different devices: nothing matches.
        return Ok(None);
    }
    Ok(Some(DeviceFilter {
        sn: by_id.or(by_no),
        name: q.get("deviceNameSearch").map(str::to_string),
        imei: q.get("imeiSearch").map(str::to_string),
        mac: None,
        group: q.get("deviceGroupIdSearch").map(str::to_string),
    }))
}

fn matches(f: &DeviceFilter, d: &Device) -> bool {
    let eq =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    eq(&f.sn, Some(&d.sn))
        && eq(&f.name, d.name.as_deref())
        && eq(&f.imei, d.imei.as_deref())
        && eq(&f.group, d.group.as_deref())
}

fn page_of<T>(items: Vec<T>, page: u64, size: u32, offset: u64) -> Page<T> {
    let total = items.len() as u64;
    let list = items
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(size as usize)
        .collect();
    Page {
        page_num: page,
        page_size: u64::from(size),
        total,
        list,
    }
}

/// `GET /devices` (QueryRemoteUpradeDeviceList): `isSelectDevice` 1 lists the task's devices
/// (`id` required), 2 the product's devices that are not in it (yet).
pub fn devices(req: &Request) -> Response {
    respond(|| {
        let q = Query::of(req);
        let principal = sign::authenticate(req, &q)?;
        let ctx = Ctx::for_product(req, &q, principal, q.required_id("productId")?)?;
        let (page, size, offset) = paging(&q)?;
        let mode = q.required("isSelectDevice")?;
        let Some(filter) = device_filter(&ctx, &q)? else {
            return Ok(ok(page_of(Vec::<DeviceRow>::new(), page, size, offset)));
        };
        let rows = match mode {
            "1" => {
                let task = ctx.task(q.required_id("id").map_err(|_| {
                    ApiError::Bad("id is required when isSelectDevice is 1".into())
                })?)?;
                let mut rows = Vec::new();
                for job in all_jobs(task.id)? {
                    let Some(d) = device_of(&ctx, &job)? else {
                        continue;
                    };
                    if matches(&filter, &d) {
                        rows.push(device_row(&ctx, &d, Some(&job)));
                    }
                }
                rows
            }
            "2" => {
                let taken: std::collections::HashSet<String> = match q.optional_u64("id")? {
                    Some(id) => all_jobs(ctx.task(id)?.id)?
                        .into_iter()
                        .map(|j| j.device_sn)
                        .collect(),
                    None => Default::default(),
                };
                all_devices(&ctx.product.sn, &filter)?
                    .iter()
                    .filter(|d| !taken.contains(&d.sn))
                    .map(|d| device_row(&ctx, d, None))
                    .collect()
            }
            other => {
                return Err(ApiError::Bad(format!(
                    "isSelectDevice must be 1 or 2, not {other:?}"
                )));
            }
        };
        Ok(ok(page_of(rows, page, size, offset)))
    })
}

/// A job's device; `None` when it has gone (its row is left out rather than failing the list).
fn device_of(ctx: &Ctx, job: &Job) -> Result<Option<Device>, ApiError> {
    match catalog::get_device(&ctx.product.sn, &job.device_sn) {
        Ok(d) => Ok(Some(d)),
        Err(HostError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `POST /operational` (OperationalRemoteUpgradeTask). T-Link: 1 adds `deviceIdList`
/// (comma-separated), 2 cancels `taskIdList`. LWM2M: 1 adds `deviceInfoList`
/// (`[{"deviceId"}]`), 2 cancels and 3 retries `taskIdList`. The other protocol's shape is
/// refused.
pub fn operational(req: &Request) -> Response {
    respond(|| {
        let q = Query::of(req);
        let (ctx, b) = signed_body(req, &q)?;
        let actor = b.string("createBy")?;
        let job_id = u64::try_from(b.int("jobId")?)
            .map_err(|_| ApiError::Bad("jobId must be positive".into()))?;
        let op = b.int("operational")?;
        let wrong_shape = |field: &str| {
            ApiError::Bad(format!(
                "{field} is not part of a {} product's body",
                match ctx.protocol {
                    Protocol::TLink => "T-Link",
                    Protocol::Lwm2m => "LWM2M",
                }
            ))
        };
        match ctx.protocol {
            Protocol::TLink if b.has("deviceInfoList") => {
                return Err(wrong_shape("deviceInfoList"));
            }
            Protocol::Lwm2m if b.has("deviceIdList") => return Err(wrong_shape("deviceIdList")),
            _ => {}
        }
        let task = ctx.task(job_id)?;
        // Subtask ids must be this task's; then at least one must be in a state that allows
        // the operation.
        let task_ids = || -> Result<Vec<u64>, ApiError> {
            let ids = id_list("taskIdList", &b.string("taskIdList")?)?;
            let known: std::collections::HashSet<u64> =
                all_jobs(task.id)?.into_iter().map(|j| j.id).collect();
            if let Some(unknown) = ids.iter().find(|id| !known.contains(id)) {
                return Err(ApiError::NotFound(format!(
                    "unknown subtask {unknown} of task {}",
                    task.id
                )));
            }
            Ok(ids)
        };
        let none_changed = |what: &str| ApiError::Bad(format!("no listed subtask can be {what}"));
        match (ctx.protocol, op) {
            (_, 1) => {
                let sns: Vec<String> = match ctx.protocol {
                    Protocol::TLink => b
                        .string("deviceIdList")?
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                    Protocol::Lwm2m => device_info_list(b.raw("deviceInfoList"))?,
                };
                if sns.is_empty() {
                    return Err(ApiError::Bad("no device to add".into()));
                }
                rollout::add_devices(task.id, &sns, Some(&actor)).map_err(|e| match e {
                    HostError::NotFound(m) => ApiError::NotFound(m),
                    e => e.into(),
                })?;
            }
            (_, 2) => {
                if rollout::cancel_jobs(task.id, &task_ids()?, Some(&actor))? == 0 {
                    return Err(none_changed(
                        "cancelled (only waiting or upgrading ones can)",
                    ));
                }
            }
            (Protocol::Lwm2m, 3) => {
                if rollout::retry_jobs(task.id, &task_ids()?, Some(&actor))? == 0 {
                    return Err(none_changed("retried (only failed ones can)"));
                }
            }
            (Protocol::TLink, other) => {
                return Err(ApiError::Bad(format!(
                    "operational must be 1 (add) or 2 (cancel) for T-Link, not {other}"
                )));
            }
            (Protocol::Lwm2m, other) => {
                return Err(ApiError::Bad(format!(
                    "operational must be 1 (add), 2 (cancel) or 3 (retry), not {other}"
                )));
            }
        }
        Ok(ok("SUCCESS"))
    })
}

/// LWM2M's `deviceInfoList`: `[{"deviceId": "…"}]`.
fn device_info_list(v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let Some(v) = v else {
        return Err(ApiError::Bad("missing field deviceInfoList".into()));
    };
    let items = v
        .as_array()
        .ok_or_else(|| ApiError::Bad("deviceInfoList must be an array".into()))?;
    items
        .iter()
        .map(|item| match item.get("deviceId") {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(ApiError::Bad(
                "every deviceInfoList entry needs a deviceId".into(),
            )),
        })
        .collect()
}

/// A subtask as `QueryRemoteUpgradeSubtasks` prints it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubtaskRow {
    job_id: u64,
    task_id: u64,
    product_id: u64,
    tenant_id: String,
    device_name: String,
    device_id: String,
    device_sn: String,
    imei: String,
    product_name: String,
    update_time: String,
    task_state: String,
    result_code: String,
    finish_time: String,
    pre_upgrade_version: String,
    upgraded_version: String,
}

/// `GET /details` (QueryRemoteUpgradeSubtasks): `taskStatus` in the product's vocabulary
/// (required for T-Link, 1-4; optional for LWM2M, 0-11), `searchValue` fuzzy over device id,
/// IMEI and name.
pub fn details(req: &Request) -> Response {
    respond(|| {
        let q = Query::of(req);
        let principal = sign::authenticate(req, &q)?;
        let ctx = Ctx::for_product(req, &q, principal, q.required_id("productId")?)?;
        let task = ctx.task(q.required_id("id")?)?;
        let (page, size, offset) = paging(&q)?;
        let status = q.optional_u64("taskStatus")?;
        match (ctx.protocol, status) {
            (Protocol::TLink, None) => {
                return Err(ApiError::Bad(
                    "taskStatus is required for T-Link products".into(),
                ));
            }
            (Protocol::TLink, Some(s)) if !(1..=4).contains(&s) => {
                return Err(ApiError::Bad(format!(
                    "taskStatus must be 1-4 for T-Link, not {s}"
                )));
            }
            (Protocol::Lwm2m, Some(s)) if s > 11 => {
                return Err(ApiError::Bad(format!(
                    "taskStatus must be 0-11 for LWM2M, not {s}"
                )));
            }
            _ => {}
        }
        let search = q.get("searchValue").map(str::to_lowercase);
        let mut rows = Vec::new();
        for job in all_jobs(task.id)? {
            let state = task_state(ctx.protocol, &job);
            if status.is_some_and(|s| s != u64::from(state)) {
                continue;
            }
            let Some(d) = device_of(&ctx, &job)? else {
                continue;
            };
            if let Some(s) = &search {
                let hit = [Some(d.sn.as_str()), d.imei.as_deref(), d.name.as_deref()]
                    .into_iter()
                    .flatten()
                    .any(|v| v.to_lowercase().contains(s.as_str()));
                if !hit {
                    continue;
                }
            }
            let finished = job.state.is_final();
            rows.push(SubtaskRow {
                job_id: task.id,
                task_id: job.id,
                product_id: ctx.product_id(),
                tenant_id: ctx.principal.tenant.clone(),
                device_name: d.name.clone().unwrap_or_default(),
                device_id: d.sn.clone(),
                device_sn: device_no(&ctx, &d.sn),
                imei: d.imei.clone().unwrap_or_default(),
                product_name: ctx.product.name.clone(),
                update_time: datetime(job.updated_at),
                task_state: state.to_string(),
                result_code: job
                    .result_code
                    .map_or_else(|| "-1".to_string(), |c| c.to_string()),
                finish_time: if finished {
                    datetime(job.updated_at)
                } else {
                    String::new()
                },
                pre_upgrade_version: job.version_before.clone().unwrap_or_default(),
                upgraded_version: job.version_after.clone().unwrap_or_default(),
            });
        }
        Ok(ok(page_of(rows, page, size, offset)))
    })
}
