//! The device side: `POST /v2/upgrade/firmware/check/{device_id}` asks the rollout engine for
//! the newest running task that applies to the device's module and version (creating its job)
//! and `POST /v2/upgrade/firmware/report/{device_id}` reports the result. Devices send numbers
//! as numbers or strings (`"type":"1"`, `"current_version":"01"`); both are read.

use ota_plugin_sdk::catalog::{self, ModuleVersion};
use ota_plugin_sdk::rollout::{self, JobCondition, JobField, JobOperator, JobQuery, JobState};
use ota_plugin_sdk::{HostError, Module, Principal, Request, Response, Window};

use crate::errors::{XError, done, respond};
use crate::view::Task;

/// The device a check or report is about: what they need of it.
pub(crate) struct PathDevice {
    id: u64,
    product_sn: String,
    sn: String,
}

/// The device the path names; a device token may name only its own device (whose id is all
/// the host needs to answer: contract 0.2.8's `device-id` reads no module versions).
pub(crate) fn path_device(req: &Request, caller: &Principal) -> Result<PathDevice, XError> {
    let raw = req.param("device_id").unwrap_or_default();
    let unknown = || XError::UnknownDevice(format!("device {raw} does not exist"));
    let id: u64 = raw.trim().parse().map_err(|_| unknown())?;
    if let Some(own) = &caller.device {
        let own_id = catalog::device_id(&own.product_sn, &own.device_sn)?;
        if own_id != id {
            return Err(XError::Forbidden(format!(
                "this token belongs to device {own_id}, not {id}"
            )));
        }
        return Ok(PathDevice {
            id,
            product_sn: own.product_sn.clone(),
            sn: own.device_sn.clone(),
        });
    }
    match catalog::get_device_by_id(id) {
        Ok(d) => Ok(PathDevice {
            id: d.id,
            product_sn: d.product_sn,
            sn: d.sn,
        }),
        Err(HostError::NotFound(_)) => Err(unknown()),
        Err(e) => Err(e.into()),
    }
}

/// The module and identify a check or report is about (`type` 1 wifi by default).
fn module(p: &ota_plugin_sdk::params::Params) -> Result<(Module, u32), XError> {
    let module = crate::module_of(crate::choice(p, "type", &[1, 2, 3], Some(1))?)?;
    Ok((module, crate::identify(p)?))
}

/// `product_id`, when sent, must be the device's product.
fn same_product(p: &ota_plugin_sdk::params::Params, d: &PathDevice) -> Result<(), XError> {
    match p.text("product_id")?.filter(|s| !s.is_empty()) {
        Some(sn) if sn != d.product_sn => Err(XError::Param(format!(
            "device {} belongs to product {}, not {sn}",
            d.id, d.product_sn
        ))),
        _ => Ok(()),
    }
}

pub fn check(req: &Request) -> Response {
    respond((|| {
        let caller = crate::token(req)?;
        let p = crate::params(req)?;
        let device = path_device(req, &caller)?;
        same_product(&p, &device)?;
        let (module, identify) = module(&p)?;
        let current = crate::required_version(&p, "current_version")?;
        let offer = rollout::check_in(
            &device.product_sn,
            &device.sn,
            module,
            identify,
            &current.to_string(),
        )?
        .ok_or(XError::NothingToUpgrade)?;
        let task = Task::of(offer.campaign, offer.release)?;
        Ok(Response::json(
            200,
            &serde_json::Value::Object(task.core(crate::api_v2(req))?),
        ))
    })())
}

/// The device's unfinished job for this module and identify, newest first.
fn open_job(
    device: &PathDevice,
    module: Module,
    identify: u32,
) -> Result<Option<rollout::Job>, XError> {
    let query = JobQuery {
        conditions: vec![JobCondition {
            field: JobField::DeviceId,
            operator: JobOperator::Eq,
            values: vec![device.id.to_string()],
        }],
        order: vec![rollout::JobOrder {
            field: JobField::JobId,
            descending: true,
        }],
        states: vec![
            JobState::Queued,
            JobState::Notified,
            JobState::Downloading,
            JobState::Installing,
        ],
    };
    let page = rollout::search_jobs(
        &query,
        Window {
            offset: 0,
            limit: 50,
        },
    )?;
    Ok(page
        .items
        .into_iter()
        .find(|e| e.module == module && e.identify == identify)
        .map(|e| e.job))
}

pub fn report(req: &Request) -> Response {
    respond((|| {
        let caller = crate::token(req)?;
        let p = crate::params(req)?;
        let device = path_device(req, &caller)?;
        let (module, identify) = module(&p)?;
        let current = crate::required_version(&p, "current_version")?;
        crate::version(&p, "last_version")?;
        let success = crate::choice(&p, "result", &[0, 1], None)? == 0;
        let mut text = p.text("desc")?.unwrap_or_default();
        if let Some(m) = p.text("mod")?.filter(|m| !m.is_empty()) {
            text = if text.is_empty() {
                format!("mod {m}")
            } else {
                format!("{text} (mod {m})")
            };
        }
        let current = current.to_string();
        match open_job(&device, module, identify)? {
            Some(job) => {
                let (state, code) = if success {
                    (JobState::Succeeded, 0)
                } else {
                    (JobState::Failed, 1)
                };
                rollout::report_job(job.id, state, Some(code), &text, Some(&current))?;
                if !success {
                    record_version(&device, module, identify, &current)?;
                }
            }
            None => record_version(&device, module, identify, &current)?,
        }
        Ok(done())
    })())
}

fn record_version(
    d: &PathDevice,
    module: Module,
    identify: u32,
    version: &str,
) -> Result<(), XError> {
    catalog::report_versions(
        &d.product_sn,
        &d.sn,
        &[ModuleVersion {
            module,
            identify,
            version: version.to_string(),
        }],
    )?;
    Ok(())
}
