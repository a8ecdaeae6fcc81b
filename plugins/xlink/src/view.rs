//! A task as XLINK prints it: one campaign, its target release and its `xlink.*` attributes,
//! with every number XLINK clients parse as a number (versions, sizes, enums, counts) emitted
//! as a JSON number, and each key once.

use std::collections::HashMap;

use ota_plugin_sdk::catalog::{self, Release};
use ota_plugin_sdk::rollout::{self, Campaign, CampaignStatus, JobState, Scope};
use ota_plugin_sdk::{HostError, Module, release_url};
use serde_json::{Map, Value, json};

use crate::errors::XError;

/// Campaign attributes this dialect keeps.
pub const FROM_URL: &str = "xlink.from_version_url";
pub const FROM_MD5: &str = "xlink.from_version_md5";
pub const FROM_SIZE: &str = "xlink.from_version_size";
pub const TARGET_URL: &str = "xlink.target_version_url";
pub const TASK_TYPE: &str = "xlink.task_type";
/// Set while a formal task must pass audit before it runs (made under Api-Version 2, turned
/// formal, or rejected); cleared on approval.
pub const AUDIT: &str = "xlink.audit";
pub const AUDIT_REQUIRED: &str = "required";

/// A loaded task.
pub struct Task {
    pub campaign: Campaign,
    pub release: Release,
    pub attrs: HashMap<String, String>,
}

/// XLINK's task status for a campaign status: 2 and 3 exist only for `Api-Version: 2`.
pub fn status(s: CampaignStatus, v2: bool) -> i64 {
    match s {
        CampaignStatus::Running => 1,
        CampaignStatus::Draft if v2 => 2,
        CampaignStatus::Pending if v2 => 3,
        _ => 0,
    }
}

/// A task's status in the words of XLINK's console, for refusal messages.
pub fn status_words(s: CampaignStatus) -> &'static str {
    match s {
        CampaignStatus::Draft => "pending execution",
        CampaignStatus::Pending => "awaiting audit",
        CampaignStatus::Running => "running",
        CampaignStatus::Paused => "stopped",
        CampaignStatus::Stopped => "ended",
        CampaignStatus::Finished => "finished",
        CampaignStatus::Cancelled => "deleted",
    }
}

/// A decimal version as a JSON number (text that is not one stays text).
pub fn number_or_text(v: &str) -> Value {
    v.parse::<i64>().map_or_else(|_| json!(v), |n| json!(n))
}

/// `yyyy-MM-dd'T'HH:mm:ss.SS'Z'` in UTC, the spec's pattern for every time it prints:
/// hundredths of a second, truncated.
pub fn utc_time(ms: u64) -> String {
    format!(
        "{}.{:02}Z",
        ota_plugin_sdk::time::format_at(ms, 0, 'T'),
        ms % 1000 / 10
    )
}

/// The XLINK device ids of a product's devices named by serial number.
pub fn device_ids(product: &str, sns: &[String]) -> Result<Vec<u64>, XError> {
    sns.iter()
        .map(|sn| Ok(catalog::get_device(product, sn)?.id))
        .collect()
}

impl Task {
    /// A live task of the caller's tenant; a deleted (cancelled) one is unknown.
    pub fn load(id: u64) -> Result<Task, XError> {
        let unknown = || XError::UnknownTask(format!("upgrade task {id} does not exist"));
        let campaign = match rollout::get_campaign(id) {
            Ok(c) if c.status != CampaignStatus::Cancelled => c,
            Ok(_) | Err(HostError::NotFound(_)) => return Err(unknown()),
            Err(e) => return Err(e.into()),
        };
        let release = catalog::get_release(campaign.release_id)?;
        Task::of(campaign, release)
    }

    /// A task from a campaign and its release already at hand.
    pub fn of(campaign: Campaign, release: Release) -> Result<Task, XError> {
        let attrs = rollout::campaign_attributes(campaign.id)?
            .into_iter()
            .collect();
        Ok(Task {
            campaign,
            release,
            attrs,
        })
    }

    /// The task id as given in a path or body.
    pub fn parse_id(raw: &str) -> Result<u64, XError> {
        raw.trim()
            .parse()
            .map_err(|_| XError::UnknownTask(format!("upgrade task {raw:?} does not exist")))
    }

    /// Whether this task may start only through audit.
    pub fn needs_audit(&self) -> bool {
        self.campaign.tag == rollout::CampaignTag::Formal && self.attr(AUDIT) == AUDIT_REQUIRED
    }

    fn attr(&self, name: &str) -> &str {
        self.attrs.get(name).map_or("", String::as_str)
    }

    /// Devices that finished the upgrade.
    fn upgrade_count(&self) -> Result<u64, XError> {
        Ok(rollout::count_jobs(
            self.campaign.id,
            &[JobState::Succeeded],
        )?)
    }

    /// `surplus_count`: the devices the task selects that still run its from-version (the
    /// spec prints it for wifi tasks only).
    fn surplus_count(&self) -> Result<u64, XError> {
        let c = &self.campaign;
        let from = c.from_version.as_deref().unwrap_or("0");
        Ok(match &c.scope {
            Scope::Devices(sns) => {
                let mut n = 0;
                for sn in sns {
                    let d = catalog::get_device(&c.product_sn, sn)?;
                    let on_from = d.modules.iter().any(|m| {
                        m.module == Module::Wifi && m.identify == c.identify && m.version == from
                    });
                    n += u64::from(on_from);
                }
                n
            }
            _ => catalog::count_devices_on(&c.product_sn, Module::Wifi, c.identify, from)?,
        })
    }

    pub fn scope(&self) -> Result<Value, XError> {
        Ok(match &self.campaign.scope {
            Scope::Devices(sns) => json!({
                "category": 1,
                "device_list": device_ids(&self.campaign.product_sn, sns)?,
            }),
            _ => json!({ "category": 0, "device_list": [] }),
        })
    }

    /// The fields every answer has (the device check's answer is exactly these).
    pub fn core(&self, v2: bool) -> Result<Map<String, Value>, XError> {
        let c = &self.campaign;
        let r = &self.release;
        let target_url = match self.attrs.get(TARGET_URL) {
            Some(u) => u.clone(),
            None => release_url(r)?.unwrap_or_default(),
        };
        let from_size = self.attr(FROM_SIZE).parse::<u64>().unwrap_or(0);
        let v = json!({
            "id": c.id.to_string(),
            "product_id": c.product_sn,
            "name": c.name,
            "description": c.description,
            "from_version": number_or_text(c.from_version.as_deref().unwrap_or("0")),
            "from_version_url": self.attr(FROM_URL),
            "from_version_md5": self.attr(FROM_MD5),
            "from_version_size": from_size,
            "target_version": number_or_text(&c.target_version),
            "target_version_url": target_url,
            "target_version_md5": r.md5,
            "target_version_size": r.size,
            "upgrade_count": self.upgrade_count()?,
            "status": status(c.status, v2),
            "type": crate::type_of(c.module),
            "identify": c.identify,
            "scope": self.scope()?,
        });
        Ok(match v {
            Value::Object(m) => m,
            _ => Map::new(),
        })
    }

    /// The whole task, as the task calls print it.
    pub fn full(&self, v2: bool) -> Result<Value, XError> {
        let c = &self.campaign;
        let mut m = self.core(v2)?;
        let task_type = self.attr(TASK_TYPE).parse::<i64>().unwrap_or(0);
        let tag = match c.tag {
            rollout::CampaignTag::Formal => 0,
            rollout::CampaignTag::Test => 1,
        };
        let auditor = match (c.status, &c.approver) {
            (CampaignStatus::Pending, Some(a)) => a.clone(),
            _ => String::new(),
        };
        if c.module == Module::Wifi {
            m.insert("surplus_count".into(), json!(self.surplus_count()?));
        }
        m.insert("task_type".into(), json!(task_type));
        m.insert("tag_type".into(), json!(tag));
        m.insert("audit_member_id".into(), json!(auditor));
        m.insert("create_time".into(), json!(utc_time(c.created_at)));
        Ok(Value::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_depend_on_the_api_version() {
        assert_eq!(status(CampaignStatus::Draft, false), 0);
        assert_eq!(status(CampaignStatus::Draft, true), 2);
        assert_eq!(status(CampaignStatus::Pending, true), 3);
        assert_eq!(status(CampaignStatus::Pending, false), 0);
        assert_eq!(status(CampaignStatus::Running, false), 1);
        assert_eq!(status(CampaignStatus::Paused, true), 0);
    }

    #[test]
    fn times_are_utc_with_millis() {
        assert_eq!(utc_time(1_700_000_000_123), "2023-11-14T22:13:20.12Z");
        assert_eq!(utc_time(1_700_000_000_009), "2023-11-14T22:13:20.00Z");
        assert_eq!(number_or_text("15"), json!(15));
        assert_eq!(number_or_text("1.2"), json!("1.2"));
    }
}
