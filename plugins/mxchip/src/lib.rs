//! The MXChip FogCloud OTA dialect (`specs/mxchip.md`): firmware management for a product,
//! the device's version check and version report, and the OSS upload token its console
//! uploads firmware with, at MXChip's paths (trailing slashes as printed, and without) in its
//! `{"meta":{"code","message"},"data"}` envelope.
//!
//! How MXChip's names map onto the host's model:
//! - every call carries `Authorization: token <key>` (Django REST framework's scheme): a
//!   tenant API key the operator issued (`ota-host api-key create --format hex40`);
//! - `product_id` is a product's serial number; a firmware is a release of it
//!   (`ug_type` 0 → `mcu`, 1 → `wifi`), its status the release's status;
//! - a device is named by the check's optional `device_id` (else `mac`) and the report's
//!   `device_id`; offers go through the rollout engine: online firmware through a formal
//!   campaign of the whole product, test firmware through a test campaign its `mac_range`
//!   devices join (both created on demand, `mxchip:<id>:online|test`);
//! - `GET /oss_token/ota/` signs an upload form for the host's OSS-compatible endpoint, whose
//!   callback (`POST /oss_callback/ota/`) answers the uploaded file's URL, md5 and size.

mod device;
mod files;
mod meta;
mod oss;

use ota_plugin_sdk::catalog::{self, Product};
use ota_plugin_sdk::{
    Dialect, Failure, HostError, Refusal, Request, Response, Router, auth, dialect,
};

use meta::MxError;

/// The dialect as the host sees it.
pub struct Mxchip;

/// Check `Authorization: token <key>` against the tenant's API keys.
pub(crate) fn authenticate(req: &Request) -> Result<(), MxError> {
    let key = req
        .authorization("token")
        .filter(|k| !k.is_empty() && !k.contains(char::is_whitespace))
        .ok_or_else(|| {
            MxError::Unauthorized(
                "Authentication credentials were not provided: send Authorization: token <key>"
                    .into(),
            )
        })?;
    auth::verify_api_key(key).map_err(|e| match e {
        HostError::Unauthenticated(_) | HostError::Forbidden(_) | HostError::NotFound(_) => {
            MxError::Unauthorized("Invalid token.".into())
        }
        other => MxError::Host(other),
    })?;
    Ok(())
}

/// The product named by the path's `product_id`.
pub(crate) fn product_of(req: &Request) -> Result<Product, MxError> {
    let sn = req.param("product_id").unwrap_or_default();
    match catalog::get_product(sn) {
        Ok(p) => Ok(p),
        Err(HostError::NotFound(_)) => Err(MxError::BadParam(format!("unknown product {sn}"))),
        Err(e) => Err(e.into()),
    }
}

/// Register `path` with and without its trailing slash: Django clients send both.
fn both(router: Router, method: &str, path: &str, handler: ota_plugin_sdk::Handler) -> Router {
    let other = match path.strip_suffix('/') {
        Some(bare) => bare.to_string(),
        None => format!("{path}/"),
    };
    router
        .route(method, path, handler)
        .route(method, &other, handler)
}

impl Dialect for Mxchip {
    const NAME: &'static str = "mxchip";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const VENDOR: &'static str = "MXChip";
    const DESCRIPTION: &'static str =
        "MXChip FogCloud OTA: firmware files, device check and report, OSS upload tokens";

    fn router() -> Router {
        let files = "/api/v1/ota/{product_id}/files/";
        let file = "/api/v1/ota/{product_id}/files/{id}";
        let mut r = Router::new();
        r = both(r, "GET", "/oss_token/ota/", oss::token);
        r = both(r, "POST", "/oss_callback/ota/", oss::callback);
        r = both(r, "POST", files, files::create);
        r = both(r, "GET", files, files::list);
        r = both(r, "GET", file, files::show);
        r = both(r, "PUT", file, files::update);
        r = both(r, "PATCH", file, files::update);
        r = both(r, "DELETE", file, files::delete);
        r = both(r, "GET", "/api/v1/ota/device/", device::check);
        // The spec's own example URL misspells the path; devices built from it call this.
        r = both(r, "GET", "/api/v1/ota/devce/", device::check);
        r = both(r, "PUT", "/api/v1/ota/version/", device::report);
        r = both(r, "POST", "/api/v1/ota/version/", device::report);
        // Every path under /api/v1/ota is MXChip's: unknown ones answer in its envelope.
        r.claim("/api/v1/ota/{*rest}").unrouted(|_, u| {
            if u.allow.is_empty() {
                return Response::json(
                    404,
                    &meta::envelope(10000, "no such API", serde_json::Value::Null),
                );
            }
            Response::json(
                405,
                &meta::envelope(10000, "method not allowed", serde_json::Value::Null),
            )
            .header("Allow", u.allow_header())
        })
    }

    fn refuse(_req: &Request, reason: Refusal) -> Response {
        match reason {
            Refusal::BodyTooLarge => Response::json(
                413,
                &meta::envelope(
                    10000,
                    "参数错误: request body too large",
                    serde_json::Value::Null,
                ),
            ),
        }
    }

    fn fail(_req: &Request, failure: &Failure) -> Response {
        meta::failed(failure)
    }
}

dialect!(Mxchip);
