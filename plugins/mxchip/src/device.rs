//! The device side: `GET /api/v1/ota/device/` (also at the spec's misspelled `devce/`)
//! answers which firmware a device should install, `PUT /api/v1/ota/version/` records what
//! it runs after installing.
//!
//! The check answers, per module (`mcu`, then `wifi`), the newest firmware newer than the
//! reported version (by the host's version ordering, `1.0.10` > `1.0.9`) that the device may
//! have: online firmware for every device, test firmware only for devices in its `mac_range`
//! (entries are MACs, with or without separators, or `A~B` / `A-B` ranges of 12-hex-digit
//! MACs). A device names itself with `device_id` (else `mac`); such a check goes through the
//! rollout engine: the firmware's campaign is created on first need (online: a formal campaign
//! of the whole product; test: a test campaign the device joins), the device gets a job, and
//! the engine decides (an operator's paused or stopped campaign offers nothing, and firmware
//! the operator rolls out with a campaign of their own is left to that campaign). A failed or
//! timed-out job is retried on the next check, and a job for firmware that is no longer the
//! device's best (a newer one appeared, or its `mac_range` dropped the device) is cancelled.
//! A check without `device_id` or `mac` is answered from the catalog alone, creating nothing.
//!
//! The report records both versions (registering the device when it named itself nowhere
//! before) and closes the device's open jobs whose target a version reached, as succeeded.

use std::cmp::Ordering;

use ota_plugin_sdk::catalog::DevicePatch;
use ota_plugin_sdk::catalog::{self, ModuleVersion, Release, ReleaseStatus};
use ota_plugin_sdk::rollout::{
    self, Campaign, CampaignAction, CampaignFilter, CampaignMode, CampaignStatus, CampaignTag,
    JobState, NewCampaign, Scope,
};
use ota_plugin_sdk::{HostError, Module, Request, Response};
use serde::Serialize;
use serde_json::json;

use crate::authenticate;
use crate::files::{firmware_of, ota_type};
use crate::meta::{MxError, ok, respond};
use ota_plugin_sdk::params::Params;

/// Who the dialect acts as in campaign op logs.
const ACTOR: &str = "mxchip";
/// How long a device has to report the version it was offered.
const JOB_TIMEOUT_SECS: u64 = 7 * 86_400;

/// One file of the check's answer.
#[derive(Serialize)]
struct FileOffer {
    file_url: String,
    md5: String,
    version: String,
    ota_type: u8,
    customize: String,
}

fn newer(a: &str, b: &str) -> bool {
    ota_plugin_sdk::version::compare(a, b) == Ordering::Greater
}

/// A MAC without separators, upper case.
fn norm_mac(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ':' | '-' | '.' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn mac_value(s: &str) -> Option<u64> {
    let m = norm_mac(s);
    (m.len() == 12)
        .then(|| u64::from_str_radix(&m, 16).ok())
        .flatten()
}

/// Whether one `mac_range` entry covers the device named `id`.
fn entry_covers(entry: &str, id: &str) -> bool {
    let range = entry.split_once('~').or_else(|| {
        entry
            .split_once('-')
            .filter(|(a, b)| mac_value(a).is_some() && mac_value(b).is_some())
    });
    if let Some((lo, hi)) = range
        && let (Some(lo), Some(hi), Some(v)) = (mac_value(lo), mac_value(hi), mac_value(id))
    {
        return (lo.min(hi)..=lo.max(hi)).contains(&v);
    }
    !norm_mac(entry).is_empty() && norm_mac(entry) == norm_mac(id)
}

/// Whether test firmware reaches a device known by these names (its MAC, its id).
fn in_range(mac_range: &[String], names: &[String]) -> bool {
    mac_range
        .iter()
        .any(|e| names.iter().any(|n| entry_covers(e, n)))
}

/// The device's names for `mac_range`, and its serial number when it named itself.
struct Caller {
    sn: Option<String>,
    names: Vec<String>,
}

fn caller(p: &Params) -> Result<Caller, MxError> {
    let device_id = p.text("device_id")?.filter(|v| !v.is_empty());
    let mac = p.text("mac")?.filter(|v| !v.is_empty());
    let sn = device_id.clone().or_else(|| mac.as_deref().map(norm_mac));
    if sn.as_ref().is_some_and(|s| s.len() > 128) {
        return Err(MxError::BadParam(
            "device_id is longer than 128 characters".into(),
        ));
    }
    Ok(Caller {
        sn,
        names: mac.into_iter().chain(device_id).collect(),
    })
}

/// The newest firmware of a module newer than `current` that this caller may have.
fn best<'a>(
    releases: &'a [Release],
    module: Module,
    current: &str,
    names: &[String],
) -> Option<&'a Release> {
    releases
        .iter()
        .filter(|r| r.module == module && r.from_version.is_none())
        .filter(|r| match r.status {
            ReleaseStatus::Online => true,
            ReleaseStatus::Test => in_range(&r.mac_range, names),
            ReleaseStatus::Invalid => false,
        })
        .filter(|r| newer(&r.version, current))
        .fold(None, |b: Option<&Release>, r| match b {
            Some(b) if !newer(&r.version, &b.version) => Some(b),
            _ => Some(r),
        })
}

/// Every campaign of a release (any name, tag or status), oldest first.
fn campaigns_of(r: &Release) -> Result<Vec<Campaign>, MxError> {
    let filter = CampaignFilter {
        product_sn: Some(r.product_sn.clone()),
        name_contains: None,
        module: Some(r.module),
        tag: None,
        status: None,
    };
    let mut all: Vec<Campaign> = ota_plugin_sdk::all_pages(|w| {
        rollout::list_campaigns(&filter, w).map(|p| (p.items, p.total))
    })?
    .into_iter()
    .filter(|c| c.release_id == r.id)
    .collect();
    all.sort_by_key(|c| c.id);
    Ok(all)
}

/// The campaign name the dialect gives a release's offer.
fn our_name(r: &Release) -> Option<String> {
    let label = match r.status {
        ReleaseStatus::Online => "online",
        ReleaseStatus::Test => "test",
        ReleaseStatus::Invalid => return None,
    };
    Some(format!("mxchip:{}:{label}", r.id))
}

/// Whether the dialect made this campaign (so it may steer its jobs).
fn is_ours(c: &Campaign) -> bool {
    c.created_by == ACTOR && c.name.starts_with("mxchip:")
}

/// What `ensure_offered` found.
struct Readiness {
    /// The dialect's campaign for the release runs and may hold the device.
    ready: bool,
    /// Something changed (campaign created or started, device added or its job retried):
    /// a second check-in may answer differently.
    changed: bool,
}

/// Make sure the engine can offer `r` to `device` through the dialect's own campaign: online
/// firmware through a formal campaign of the whole product, test firmware through a test
/// campaign the device joins. A release the operator rolls out with a campaign of their own
/// is left to it (its scope, waves and windows decide). A device whose job there failed or
/// timed out gets it again: MXChip's check is stateless, newer firmware is always offered.
fn ensure_offered(r: &Release, device: &str) -> Result<Readiness, MxError> {
    let Some(name) = our_name(r) else {
        return Ok(Readiness {
            ready: false,
            changed: false,
        });
    };
    let (tag, mode) = match r.status {
        ReleaseStatus::Test => (CampaignTag::Test, CampaignMode::Manual),
        _ => (CampaignTag::Formal, CampaignMode::Auto),
    };
    let existing = campaigns_of(r)?;
    let mut changed = false;
    let mut campaign = match existing.iter().find(|c| c.name == name) {
        Some(c) => c.clone(),
        None if existing.iter().any(|c| !is_ours(c)) => {
            return Ok(Readiness {
                ready: false,
                changed: false,
            });
        }
        None => {
            let c = rollout::create_campaign(&NewCampaign {
                release_id: r.id,
                name: name.clone(),
                description: format!("MXChip firmware {} {}", r.name, r.version),
                from_version: None,
                scope: Scope::All,
                mode,
                tag,
                retries: 0,
                timeout_secs: JOB_TIMEOUT_SECS,
                waves: None,
                maintenance_window: None,
                created_by: Some(ACTOR.into()),
            })?;
            changed = true;
            // Two first checks may race to create it: the oldest campaign stays.
            let oldest = campaigns_of(r)?
                .into_iter()
                .find(|o| o.name == name)
                .unwrap_or_else(|| c.clone());
            if oldest.id != c.id {
                let _ = rollout::delete_campaign(c.id, Some(ACTOR));
            }
            oldest
        }
    };
    // A campaign of ours left in draft (a start that failed) is started now.
    if campaign.status == CampaignStatus::Draft && is_ours(&campaign) {
        campaign = match rollout::act(campaign.id, CampaignAction::Start, Some(ACTOR), "offered") {
            Ok(c) => c,
            Err(HostError::Conflict(_)) => rollout::get_campaign(campaign.id)?,
            Err(e) => return Err(e.into()),
        };
        changed = true;
    }
    let open = matches!(
        campaign.status,
        CampaignStatus::Running | CampaignStatus::Finished
    );
    if !open {
        return Ok(Readiness {
            ready: false,
            changed,
        });
    }
    let job = ota_plugin_sdk::device_job(campaign.id, device)?;
    match job {
        Some(j) if matches!(j.state, JobState::Failed | JobState::TimedOut) => {
            match rollout::retry_jobs(campaign.id, &[j.id], Some(ACTOR)) {
                Ok(n) => changed |= n > 0,
                Err(HostError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Some(j) if j.state != JobState::Cancelled || mode == CampaignMode::Auto => {}
        _ if mode == CampaignMode::Manual => {
            catalog::register_device(&r.product_sn, device)?;
            match rollout::add_devices(campaign.id, &[device.to_string()], Some(ACTOR)) {
                Ok(n) => changed |= n > 0,
                Err(HostError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        _ => {}
    }
    Ok(Readiness {
        ready: campaign.status == CampaignStatus::Running || changed,
        changed,
    })
}

/// The engine's answer for one module of a named device: the offer of the newest firmware
/// this device may have. An offer of ours that is stale (test firmware whose `mac_range` no
/// longer covers the device, or firmware older than `best` once `best` can be offered) is
/// withdrawn, its job cancelled, and the engine asked again.
fn engine_offer(
    product: &str,
    device: &str,
    module: Module,
    current: &str,
    best: Option<&Release>,
    names: &[String],
) -> Result<Option<Release>, MxError> {
    for _ in 0..3 {
        match rollout::check_in(product, device, module, 0, current)? {
            Some(o) => {
                let stale_test = o.release.status == ReleaseStatus::Test
                    && !in_range(&o.release.mac_range, names);
                let superseded = match best {
                    Some(b) if newer(&b.version, &o.release.version) => {
                        ensure_offered(b, device)?.ready
                    }
                    _ => false,
                };
                if is_ours(&o.campaign) && (stale_test || superseded) {
                    rollout::cancel_jobs(o.campaign.id, &[o.job.id], Some(ACTOR))?;
                    continue;
                }
                if stale_test {
                    return Ok(None);
                }
                return Ok(Some(o.release));
            }
            None => match best {
                Some(b) if ensure_offered(b, device)?.changed => continue,
                _ => return Ok(None),
            },
        }
    }
    Ok(None)
}

fn offer_of(r: &Release) -> Result<FileOffer, MxError> {
    // Devices download from this host when it stores the file (signed links when the
    // operator requires them), else from the external URL the firmware has now.
    Ok(FileOffer {
        file_url: ota_plugin_sdk::release_url(r)?.unwrap_or_default(),
        md5: r.md5.clone(),
        version: r.version.clone(),
        ota_type: ota_type(r.module),
        customize: r.customize.clone(),
    })
}

/// The reported `wifi_version` and `mcu_version`, both required, 1-64 printable characters.
fn versions(p: &Params) -> Result<(String, String), MxError> {
    let wifi = p.required("wifi_version")?;
    let mcu = p.required("mcu_version")?;
    for (name, v) in [("wifi_version", &wifi), ("mcu_version", &mcu)] {
        if v.len() > 64 || v.chars().any(char::is_control) {
            return Err(MxError::BadParam(format!(
                "{name} must be 1-64 printable characters"
            )));
        }
    }
    Ok((wifi, mcu))
}

/// `GET /api/v1/ota/device/?product_id&wifi_version&mcu_version[&device_id|&mac]`.
pub fn check(req: &Request) -> Response {
    respond((|| {
        authenticate(req)?;
        let p = Params::of(req)?;
        let product = p.required("product_id")?;
        let (wifi, mcu) = versions(&p)?;
        let who = caller(&p)?;
        match catalog::get_product(&product) {
            Ok(_) => {}
            Err(HostError::NotFound(_)) => {
                return Err(MxError::BadParam(format!("unknown product_id {product}")));
            }
            Err(e) => return Err(e.into()),
        }
        if let (Some(sn), Some(mac)) = (&who.sn, p.text("mac")?.filter(|m| !m.is_empty())) {
            remember_mac(&product, sn, &norm_mac(&mac))?;
        }
        let releases = firmware_of(&product)?;
        let mut offers = Vec::new();
        for (module, current) in [(Module::Mcu, &mcu), (Module::Wifi, &wifi)] {
            let candidate = best(&releases, module, current, &who.names);
            let chosen = match &who.sn {
                None => candidate.cloned(),
                Some(sn) => engine_offer(&product, sn, module, current, candidate, &who.names)?,
            };
            if let Some(r) = chosen {
                offers.push(offer_of(&r)?);
            }
        }
        Ok(ok(
            "ota file info",
            json!({ "need_ota": !offers.is_empty(), "files": offers }),
        ))
    })())
}

/// Keep the MAC a device checks in with, for operators and for `mac_range`.
fn remember_mac(product: &str, sn: &str, mac: &str) -> Result<(), MxError> {
    let device = catalog::register_device(product, sn)?;
    if device.mac.as_deref() != Some(mac) {
        catalog::update_device(
            product,
            sn,
            &DevicePatch {
                name: None,
                imei: None,
                mac: Some(mac.to_string()),
                group: None,
            },
        )?;
    }
    Ok(())
}

/// The product of a device known by its serial number: the given `product_id`, else the
/// tenant's only product, else the one product holding the device.
fn product_of_device(p: &Params, device: &str) -> Result<String, MxError> {
    if let Some(product) = p.text("product_id")?.filter(|v| !v.is_empty()) {
        return match catalog::get_product(&product) {
            Ok(_) => Ok(product),
            Err(HostError::NotFound(_)) => {
                Err(MxError::BadParam(format!("unknown product_id {product}")))
            }
            Err(e) => Err(e.into()),
        };
    }
    let products = catalog::list_products()?;
    // The spec's report names no product: with one product there is no question.
    if let [only] = products.as_slice() {
        return Ok(only.sn.clone());
    }
    let mut holding = Vec::new();
    for product in products {
        match catalog::get_device(&product.sn, device) {
            Ok(_) => holding.push(product.sn),
            Err(HostError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match holding.len() {
        1 => Ok(holding.remove(0)),
        0 => Err(MxError::BadParam(format!(
            "unknown device_id {device}: it has not checked in yet (pass product_id)"
        ))),
        _ => Err(MxError::BadParam(format!(
            "device_id {device} exists in several products: pass product_id"
        ))),
    }
}

/// `PUT /api/v1/ota/version/` with `device_id`, `wifi_version`, `mcu_version`.
pub fn report(req: &Request) -> Response {
    respond((|| {
        authenticate(req)?;
        let p = Params::of(req)?;
        let device = p.required("device_id")?;
        let (wifi, mcu) = versions(&p)?;
        let product = product_of_device(&p, &device)?;
        catalog::report_versions(
            &product,
            &device,
            &[
                ModuleVersion {
                    module: Module::Mcu,
                    identify: 0,
                    version: mcu.clone(),
                },
                ModuleVersion {
                    module: Module::Wifi,
                    identify: 0,
                    version: wifi.clone(),
                },
            ],
        )?;
        close_reached_jobs(&product, &device, &mcu, &wifi)?;
        Ok(ok("update version ok", json!({})))
    })())
}

/// Finish, as succeeded, the device's open jobs whose target its reported version reached.
fn close_reached_jobs(product: &str, device: &str, mcu: &str, wifi: &str) -> Result<(), MxError> {
    let filter = CampaignFilter {
        product_sn: Some(product.to_string()),
        name_contains: None,
        module: None,
        tag: None,
        status: None,
    };
    let campaigns = ota_plugin_sdk::all_pages(|w| {
        rollout::list_campaigns(&filter, w).map(|p| (p.items, p.total))
    })?;
    for c in campaigns {
        if matches!(c.status, CampaignStatus::Draft | CampaignStatus::Cancelled) {
            continue;
        }
        let now = match c.module {
            Module::Mcu => mcu,
            Module::Wifi => wifi,
            Module::Sub => continue,
        };
        if newer(&c.target_version, now) {
            continue;
        }
        let job = ota_plugin_sdk::device_job(c.id, device)?;
        for job in job.iter().filter(|j| !j.state.is_final()) {
            match rollout::report_job(
                job.id,
                JobState::Succeeded,
                None,
                "version reported",
                Some(now),
            ) {
                Ok(_) | Err(HostError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_ranges() {
        let names = |s: &str| vec![s.to_string()];
        let range = vec!["C8:93:46:00:00:10~C8:93:46:00:00:20".to_string()];
        assert!(in_range(&range, &names("c89346000015")));
        assert!(!in_range(&range, &names("C89346000021")));
        let dashed = vec!["C89346000010-C89346000020".to_string()];
        assert!(in_range(&dashed, &names("C8-93-46-00-00-20")));
        let exact = vec!["DEF1LUK".to_string(), "AA:BB:CC:DD:EE:FF".to_string()];
        assert!(in_range(&exact, &names("DEF1LUK")));
        assert!(in_range(&exact, &names("aabbccddeeff")));
        assert!(!in_range(&exact, &names("DEF1L2G")));
        assert!(!in_range(&[], &names("DEF1LUK")));
    }
}
