//! The XLINK upgrade-management dialect (`specs/xlink.md`): its 16 upgrade endpoints, the
//! device and enterprise logins that issue the `Access-Token` they need, and XLINK's
//! `{"error":{"code","msg"}}` refusals.
//!
//! How XLINK's names map onto the host's model:
//! - a device logs in with `POST /v2/device_login` (`product_id`, `mac`, `authorize_code`):
//!   the authorize code is the product's key (`ota-host product key`); its token acts only for
//!   that device, and `device_id` is the host's device id (a number);
//! - management tools log in with `POST /v2/corp_auth` as an account the operator provisioned
//!   for this plugin (`ota-host login create`): `corp_id` is the tenant, `member_id` the
//!   account name, which is also who audits (`audit_member_id`) and who the op log names;
//! - a task is a campaign of the product plus its target release (type 1 wifi, 2 mcu, 3 sub
//!   → the module; versions are 32-bit integers kept as decimal text); facts the campaign has
//!   no field for (the from-version file, `task_type`) are campaign attributes `xlink.*`;
//! - status: draft → 2 "pending execution" with `Api-Version: 2` (0 without), pending
//!   approval → 3 (0 without), running → 1, anything else → 0. Starting is `start`/`resume`,
//!   stopping is `pause`, so a stopped task can start again;
//! - an OTA log is a job that reached the device (`status` 1 issued, 2 finished).

mod device;
mod errors;
mod login;
mod logs;
mod tasks;
mod view;

use ota_plugin_sdk::params::Params;
use ota_plugin_sdk::{
    Dialect, HostError, Module, Principal, Refusal, Request, Response, Router, auth, dialect,
};

use errors::XError;

/// The dialect as the host sees it.
pub struct Xlink;

/// Every parameter of the request (JSON object or form body, and the query).
pub(crate) fn params(req: &Request) -> Result<Params, XError> {
    Ok(Params::of(req)?)
}

/// A header's value without the spaces and quotes the spec prints around values
/// (`Api-Version: " 2 "`); `None` when absent or empty.
pub(crate) fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.header(name)
        .map(|v| v.trim().trim_matches('"').trim())
        .filter(|v| !v.is_empty())
}

/// The principal of the request's `Access-Token` (device or member).
pub(crate) fn token(req: &Request) -> Result<Principal, XError> {
    let token = header(req, "access-token").ok_or(XError::NoToken)?;
    auth::verify_token(token).map_err(|e| match e {
        HostError::Unauthenticated(m) | HostError::Forbidden(m) | HostError::NotFound(m) => {
            match auth::token_expired(token) {
                Ok(true) => XError::ExpiredToken,
                Ok(false) => XError::Token(m),
                Err(e) => XError::Host(e),
            }
        }
        other => XError::Host(other),
    })
}

/// A member's token (from `corp_auth`); device tokens may not manage tasks.
pub(crate) fn member(req: &Request) -> Result<Principal, XError> {
    let p = token(req)?;
    if p.device.is_some() {
        return Err(XError::Forbidden(
            "a device token may not manage upgrade tasks".into(),
        ));
    }
    Ok(p)
}

/// `Api-Version: 2` (quotes and spaces as the spec prints them are tolerated).
pub(crate) fn api_v2(req: &Request) -> bool {
    header(req, "api-version") == Some("2")
}

/// XLINK's firmware type (1 wifi, 2 mcu, 3 sub-device).
pub(crate) fn module_of(t: i64) -> Result<Module, XError> {
    match t {
        1 => Ok(Module::Wifi),
        2 => Ok(Module::Mcu),
        3 => Ok(Module::Sub),
        other => Err(XError::Param(format!(
            "type must be 1 (wifi), 2 (mcu) or 3 (sub-device), not {other}"
        ))),
    }
}

pub(crate) fn type_of(m: Module) -> i64 {
    match m {
        Module::Wifi => 1,
        Module::Mcu => 2,
        Module::Sub => 3,
    }
}

/// A 32-bit version number, sent as a number or a string (leading zeros allowed).
pub(crate) fn version(p: &Params, name: &str) -> Result<Option<u32>, XError> {
    match p.int(name)? {
        None => Ok(None),
        Some(v) if (0..=i64::from(i32::MAX)).contains(&v) => Ok(Some(v as u32)),
        Some(v) => Err(XError::Param(format!(
            "{name} must be a non-negative 32-bit integer, not {v}"
        ))),
    }
}

/// A required 32-bit version number.
pub(crate) fn required_version(p: &Params, name: &str) -> Result<u32, XError> {
    version(p, name)?.ok_or_else(|| XError::Param(format!("missing {name}")))
}

/// `identify` (0 when absent): which MCU or sub-device.
pub(crate) fn identify(p: &Params) -> Result<u32, XError> {
    match p.int("identify")?.unwrap_or(0) {
        i if (0..=i64::from(u32::MAX)).contains(&i) => Ok(i as u32),
        i => Err(XError::Param(format!(
            "identify must be a non-negative integer, not {i}"
        ))),
    }
}

/// `offset` (0) and `limit` (10, at most `max`).
pub(crate) fn page(p: &Params, max: u64) -> Result<(u64, u64), XError> {
    let offset = p.int("offset")?.unwrap_or(0);
    let limit = p.int("limit")?.unwrap_or(10);
    if offset < 0 || limit < 0 {
        return Err(XError::Param(
            "offset and limit must not be negative".into(),
        ));
    }
    Ok((offset as u64, (limit as u64).clamp(1, max)))
}

/// An integer parameter that must be one of `allowed`, `default` when absent.
pub(crate) fn choice(
    p: &Params,
    name: &str,
    allowed: &[i64],
    default: Option<i64>,
) -> Result<i64, XError> {
    match p.int(name)?.or(default) {
        Some(v) if allowed.contains(&v) => Ok(v),
        Some(v) => Err(XError::Param(format!(
            "{name} must be one of {allowed:?}, not {v}"
        ))),
        None => Err(XError::Param(format!("missing {name}"))),
    }
}

impl Dialect for Xlink {
    const NAME: &'static str = "xlink";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const VENDOR: &'static str = "XLINK";
    const DESCRIPTION: &'static str = "XLINK upgrade management: device and enterprise tokens, upgrade tasks with test/formal/audit workflow, device check and report, OTA logs, statistics";

    fn router() -> Router {
        let task = "/v2/upgrade/firmware/tasks/{task_id}";
        Router::new()
            .post("/v2/device_login", login::device_login)
            .post("/v2/corp_auth", login::corp_auth)
            .post("/v2/corp/token/refresh", login::refresh)
            .post("/v2/device/token/refresh", login::refresh)
            .post("/v2/upgrade/firmware/task", tasks::create)
            .get("/v2/upgrade/firmware/tasks", tasks::list_get)
            .post("/v2/upgrade/firmware/tasks", tasks::list_post)
            .get(task, tasks::show)
            .post("/v2/upgrade/firmware/task/status", tasks::set_status)
            .post("/v2/upgrade/firmware/task/delete", tasks::delete)
            .put(&format!("{task}/product-tag"), tasks::product_tag)
            .put(&format!("{task}/submit-audit"), tasks::submit_audit)
            .put(&format!("{task}/audit"), tasks::audit)
            .put(&format!("{task}/devices"), tasks::devices)
            .get(&format!("{task}/op-logs"), tasks::op_logs)
            .get(
                "/v2/statistics/ota/customize-task/{task_id}/device-firmware-version",
                tasks::statistics,
            )
            .post("/v2/upgrade/firmware/check/{device_id}", device::check)
            .post("/v2/upgrade/firmware/report/{device_id}", device::report)
            .post("/v2/upgrade/ota-log", logs::issued)
            .post("/v2/upgrade/ota-logs", logs::query)
            // Every path under /v2 is XLINK's: an unknown one is XLINK's "URL not found"
            // (4041001), never the host's string code.
            .claim("/v2/{*rest}")
            .unrouted(|_, u| {
                let (status, msg) = if u.allow.is_empty() {
                    (404, "no such API")
                } else {
                    (405, "this API does not take that method")
                };
                let r = Response::json(
                    status,
                    &serde_json::json!({"error": {"code": 4041001, "msg": msg}}),
                );
                if u.allow.is_empty() {
                    r
                } else {
                    r.header("Allow", u.allow_header())
                }
            })
    }

    fn refuse(_req: &Request, reason: Refusal) -> Response {
        match reason {
            Refusal::BodyTooLarge => XError::TooLarge.into_response(),
        }
    }

    fn fail(_req: &Request, failure: &ota_plugin_sdk::Failure) -> Response {
        XError::failed(failure)
    }
}

dialect!(Xlink);
