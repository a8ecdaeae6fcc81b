//! The CTWing AEP dialect (`specs/ctwing-aep.md`): the ten `aep_upgrade_management` APIs at the
//! paths the official AEP SDKs call (`/aep_upgrade_management/<api>`), plus `GET /echo`, which
//! the SDKs read the server clock from. Every API is signed as the SDKs sign (`sign.rs`); the
//! answers use CTWing's `{"code","msg","result"}` envelope and `pageNum`/`pageSize`/`total`/
//! `list` pages.
//!
//! How CTWing's names map onto the host's model:
//! - `productId` is a product whose serial number is that number; its protocol is the product
//!   attribute `ctwing.protocol` (`lwm2m`, the default, or `t-link`; the numbers 3 and 1 too),
//!   and its `MasterKey` the product key the operator set;
//! - a main task (`jobId`) is a campaign of that product in manual mode (devices join through
//!   `/operational`), `firmwareId` its release; a subtask (`taskId`) is one device's job;
//! - `deviceId` is the device's serial number; T-Link's device number (`deviceSn`) is the
//!   `deviceId` without the leading `productId`, as CTWing builds its ids.

mod envelope;
mod params;
mod sign;
mod subtasks;
mod tasks;
mod view;

use ota_plugin_sdk::{Dialect, Failure, Refusal, Request, Response, Router, dialect};

use envelope::ApiError;

/// The dialect as the host sees it.
pub struct Ctwing;

const BASE: &str = "/aep_upgrade_management";

impl Dialect for Ctwing {
    const NAME: &'static str = "ctwing";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const VENDOR: &'static str = "CTWing";
    const DESCRIPTION: &'static str =
        "CTWing AEP remote upgrade management (aep_upgrade_management), HMAC-SHA1 signed";

    fn router() -> Router {
        Router::new()
            .get("/echo", sign::echo)
            .get(&format!("{BASE}/detail"), tasks::detail)
            .get(&format!("{BASE}/task"), tasks::show)
            .post(&format!("{BASE}/task"), tasks::create)
            .put(&format!("{BASE}/task"), tasks::modify)
            .delete(&format!("{BASE}/task"), tasks::delete)
            .get(&format!("{BASE}/tasks"), tasks::list)
            .put(&format!("{BASE}/control"), tasks::control)
            .get(&format!("{BASE}/devices"), subtasks::devices)
            .post(&format!("{BASE}/operational"), subtasks::operational)
            .get(&format!("{BASE}/details"), subtasks::details)
            .claim(&format!("{BASE}/{{*rest}}"))
            .unrouted(|_, u| {
                if u.allow.is_empty() {
                    return ApiError::NotFound("no such API".into()).into_response();
                }
                ApiError::MethodNotAllowed
                    .into_response()
                    .header("Allow", u.allow_header())
            })
    }

    fn refuse(_req: &Request, reason: Refusal) -> Response {
        match reason {
            Refusal::BodyTooLarge => ApiError::BodyTooLarge.into_response(),
        }
    }

    fn fail(_req: &Request, failure: &Failure) -> Response {
        ApiError::Failed(failure.clone()).into_response()
    }
}

dialect!(Ctwing);
