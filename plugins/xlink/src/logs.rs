//! OTA logs: `POST /v2/upgrade/ota-log` (the upgrade gateway says it handed a device its
//! task: the device's job becomes `notified`, status 1) and `POST /v2/upgrade/ota-logs` (a
//! management search with `offset`, `limit`, `filter`, `order` and `query` over `task_id`,
//! `device_id`, `device_mac` and `device_sn` with `$eq`, `$in`, `$lt`, `$lte`, `$gt`,
//! `$gte` and `$like`). An OTA log is a job that reached its device; finished jobs are status
//! 2. The query becomes the host's typed job search, so client text never becomes SQL.

use ota_plugin_sdk::catalog;
use ota_plugin_sdk::params::Params;
use ota_plugin_sdk::rollout::{
    self, JobCondition, JobField, JobOperator, JobOrder, JobQuery, JobState,
};
use ota_plugin_sdk::{HostError, Request, Response, Window, device_job};
use serde_json::{Map, Value, json};

use crate::errors::{XError, done, respond};
use crate::view::{Task, utc_time};

/// The gateway's `Corp-ID`, when sent, must be the token's corp.
fn check_corp(req: &Request, tenant: &str) -> Result<(), XError> {
    match req
        .header("corp-id")
        .map(|c| c.trim().trim_matches('"').trim())
    {
        Some(c) if !c.is_empty() && c != tenant => Err(XError::Forbidden(format!(
            "Corp-ID {c} is not the token's corp"
        ))),
        _ => Ok(()),
    }
}

pub fn issued(req: &Request) -> Response {
    respond((|| {
        let member = crate::member(req)?;
        check_corp(req, &member.tenant)?;
        let p = crate::params(req)?;
        let task = Task::load(Task::parse_id(&p.required("task_id")?)?)?;
        let c = &task.campaign;
        let id: u64 = p
            .required("device_id")?
            .parse()
            .map_err(|_| XError::Param("device_id must be a device id".into()))?;
        let device = match catalog::get_device_by_id(id) {
            Ok(d) if d.product_sn == c.product_sn => d,
            Ok(_) | Err(HostError::NotFound(_)) => {
                return Err(XError::UnknownDevice(format!(
                    "device {id} does not exist in the task's product"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        match device_job(c.id, &device.sn)? {
            Some(job) if job.state == JobState::Queued => {
                rollout::report_job(
                    job.id,
                    JobState::Notified,
                    None,
                    "issued by the gateway",
                    None,
                )?;
            }
            Some(_) => {}
            None => {
                // The gateway delivered it as if the device had asked, so the device must be
                // one the task reaches, on the task's from_version, before the engine is
                // asked (which admits it and records the issue).
                let running = device
                    .modules
                    .iter()
                    .find(|m| m.module == c.module && m.identify == c.identify)
                    .map(|m| m.version.clone())
                    .ok_or_else(|| {
                        XError::State(format!(
                            "device {id} has not reported a version of this task's module"
                        ))
                    })?;
                let in_scope = match &c.scope {
                    rollout::Scope::Devices(sns) => sns.contains(&device.sn),
                    _ => true,
                };
                if c.status != rollout::CampaignStatus::Running
                    || !in_scope
                    || c.from_version.as_deref().is_some_and(|f| f != running)
                {
                    return Err(XError::State(format!(
                        "task {} is not running for device {id} (running version {running})",
                        c.id
                    )));
                }
                let offer =
                    rollout::check_in(&c.product_sn, &device.sn, c.module, c.identify, &running)?;
                if offer.map(|o| o.campaign.id) != Some(c.id) {
                    return Err(XError::State(format!(
                        "task {} does not apply to device {id} (running version {running})",
                        c.id
                    )));
                }
            }
        }
        Ok(done())
    })())
}

fn field(name: &str) -> Result<JobField, XError> {
    Ok(match name {
        "task_id" => JobField::CampaignId,
        "device_id" => JobField::DeviceId,
        "device_mac" => JobField::DeviceMac,
        "device_sn" => JobField::DeviceSn,
        "id" => JobField::JobId,
        "execute_time" => JobField::UpdatedAt,
        other => {
            return Err(XError::Param(format!(
                "unknown field {other}: query task_id, device_id, device_mac or device_sn"
            )));
        }
    })
}

/// A condition's value as text; MACs are compared as they are stored (upper case, no
/// separators).
fn scalar(field: &str, v: &Value) -> Result<String, XError> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(XError::Param(format!(
                "query.{field} takes a string or a number"
            )));
        }
    };
    Ok(if field == "device_mac" {
        text.chars()
            .filter(|c| !matches!(c, ':' | '-'))
            .collect::<String>()
            .to_ascii_uppercase()
    } else {
        text
    })
}

/// `{"field": {"$op": value}, ...}` as the host's conditions (a bare value means `$eq`).
fn conditions(q: &Value) -> Result<Vec<JobCondition>, XError> {
    let Value::Object(q) = q else {
        return Err(XError::Param("query must be an object".into()));
    };
    let mut out = vec![];
    for (name, cond) in q {
        let f = field(name)?;
        if name == "execute_time" {
            return Err(XError::Param("execute_time can order, not filter".into()));
        }
        let ops: Vec<(&str, &Value)> = match cond {
            Value::Object(ops) if !ops.is_empty() => {
                ops.iter().map(|(k, v)| (k.as_str(), v)).collect()
            }
            Value::Object(_) => return Err(XError::Param(format!("query.{name} is empty"))),
            v => vec![("$eq", v)],
        };
        for (op, v) in ops {
            let operator = match op {
                "$eq" => JobOperator::Eq,
                "$in" => JobOperator::In,
                "$lt" => JobOperator::Lt,
                "$lte" => JobOperator::Lte,
                "$gt" => JobOperator::Gt,
                "$gte" => JobOperator::Gte,
                "$like" => JobOperator::Like,
                other => {
                    return Err(XError::Param(format!(
                        "unknown operator {other} on {name}: use $eq, $in, $lt, $lte, $gt, $gte or $like"
                    )));
                }
            };
            let values = match (operator, v) {
                (JobOperator::In, Value::Array(items)) if !items.is_empty() => items
                    .iter()
                    .map(|i| scalar(name, i))
                    .collect::<Result<Vec<_>, _>>()?,
                (JobOperator::In, _) => {
                    return Err(XError::Param(format!(
                        "query.{name}.$in takes a non-empty list"
                    )));
                }
                (_, v) => vec![scalar(name, v)?],
            };
            out.push(JobCondition {
                field: f,
                operator,
                values,
            });
        }
    }
    Ok(out)
}

fn order(o: &Value) -> Result<Vec<JobOrder>, XError> {
    let Value::Object(o) = o else {
        return Err(XError::Param("order must be an object".into()));
    };
    o.iter()
        .map(|(name, dir)| {
            let descending = match dir.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("desc") => true,
                Some("asc") => false,
                _ => return Err(XError::Param(format!("order.{name} must be asc or desc"))),
            };
            Ok(JobOrder {
                field: field(name)?,
                descending,
            })
        })
        .collect()
}

pub fn query(req: &Request) -> Response {
    respond((|| {
        crate::member(req)?;
        let p = crate::params(req)?;
        let window = window(&p)?;
        let query = JobQuery {
            conditions: match p.get("query") {
                Some(q) => conditions(q)?,
                None => vec![],
            },
            order: match p.get("order") {
                Some(o) => order(o)?,
                None => vec![],
            },
            // A queued job has not reached its device yet: no log.
            states: vec![
                JobState::Notified,
                JobState::Downloading,
                JobState::Installing,
                JobState::Succeeded,
                JobState::Failed,
                JobState::Cancelled,
                JobState::TimedOut,
            ],
        };
        let keep: Option<Vec<String>> = match p.get("filter") {
            None => None,
            Some(Value::Array(items)) if items.is_empty() => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| XError::Param("filter must be a list of field names".into()))?,
            ),
            Some(_) => return Err(XError::Param("filter must be a list of field names".into())),
        };
        let page = rollout::search_jobs(&query, window)?;
        let list: Vec<Value> = page
            .items
            .into_iter()
            .map(|e| {
                let status = if e.job.state.is_final() { 2 } else { 1 };
                let full = json!({
                    "id": e.job.id.to_string(),
                    "product_id": e.product_sn,
                    "task_id": e.job.campaign_id.to_string(),
                    "device_id": e.device_id,
                    "device_mac": e.device_mac.unwrap_or_default(),
                    "device_sn": e.job.device_sn,
                    "status": status,
                    "execute_time": utc_time(e.job.updated_at),
                });
                match (&keep, full) {
                    (Some(keep), Value::Object(m)) => Value::Object(
                        m.into_iter()
                            .filter(|(k, _)| keep.contains(k))
                            .collect::<Map<_, _>>(),
                    ),
                    (_, v) => v,
                }
            })
            .collect();
        Ok(Response::json(
            200,
            &json!({ "count": page.total, "list": list }),
        ))
    })())
}

/// `offset` (0) and `limit` (10; at most 200 per page).
fn window(p: &Params) -> Result<Window, XError> {
    let offset = p.int("offset")?.unwrap_or(0);
    let limit = p.int("limit")?.unwrap_or(10);
    if offset < 0 || limit < 0 {
        return Err(XError::Param(
            "offset and limit must not be negative".into(),
        ));
    }
    Ok(Window {
        offset: offset as u64,
        limit: limit.clamp(1, 200) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_map_to_typed_conditions() {
        let c = conditions(
            &json!({"task_id": {"$in": ["1", 2]}, "device_mac": {"$like": "%"}, "device_sn": "x"}),
        )
        .unwrap();
        assert_eq!(c.len(), 3);
        assert!(conditions(&json!({"name": {"$eq": "x"}})).is_err());
        assert!(conditions(&json!({"task_id": {"$regex": "x"}})).is_err());
        assert!(conditions(&json!({"task_id": {"$in": "x"}})).is_err());
        assert!(conditions(&json!({"task_id": {"$eq": {"a": 1}}})).is_err());
        assert!(order(&json!({"device_sn": "sideways"})).is_err());
    }
}
