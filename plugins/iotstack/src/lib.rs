//! The IoTStack dialect: the edge-gateway installer (`/api/v1/reinstall/*`) and deployment
//! (`/api/v1/deployment/*`) APIs of `specs/iotstack.md`, with IoTStack's `Code`/`Data`
//! envelope and PascalCase fields. Facts live in the host (`catalog`, `rollout`); this crate
//! only validates, translates and renders.
//!
//! Error envelope (not printed in the spec, so ours): `{"Code": <non-zero>, "Message": "…"}`
//! with an HTTP status that says whose fault it is; see `errors.rs` for the code table.

mod errors;
mod fields;
mod handlers;

use ota_plugin_sdk::{Dialect, Failure, IntoResponse, Refusal, Request, Response, Router, dialect};

use errors::ApiError;

/// The dialect as the host sees it.
pub struct IotStack;

impl Dialect for IotStack {
    const NAME: &'static str = "iotstack";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const VENDOR: &'static str = "IoTStack";
    const DESCRIPTION: &'static str =
        "IoTStack edge gateway installer and deployment API (reinstall/*, deployment/*)";

    fn router() -> Router {
        Router::new()
            .post("/api/v1/reinstall/create", handlers::reinstall_create)
            .post("/api/v1/reinstall/info", handlers::reinstall_info)
            .post("/api/v1/deployment/create", handlers::deployment_create)
            .post("/api/v1/deployment/info", handlers::deployment_info)
            .post("/api/v1/deployment/report", handlers::deployment_report)
            .post("/api/v1/deployment/poll", handlers::deployment_poll)
            // Every path under /api/v1 not claimed deeper (MXChip's /api/v1/ota) is ours.
            .claim("/api/v1/{*rest}")
            .unrouted(|_, u| {
                if u.allow.is_empty() {
                    return ApiError::NoSuchApi.into_response();
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

dialect!(IotStack);
