//! The UBTech robot dialect (`specs/ubtech.md`): `GET|POST /oauth/token` (OAuth2 password and
//! refresh grants), `GET /file/download` (the patch chain that takes a robot's package to the
//! newest release) and `GET|POST /file/callback` (the robot's result). Accounts, tokens, releases,
//! chains and jobs live in the host; this crate reads UBTech's query parameters and answers
//! in its `{"code": "<string>", "data": …}` envelope.
//!
//! How UBTech's names map onto the host's model:
//! - a **product** per package, file and language: serial number
//!   `<package_name>:<file_name>:<language>` (e.g. `com.ubtechinc.alpha2services:service5mic:CN`);
//! - a **device** per robot in that product, serial number = `robot_id`; the package version
//!   is its `mcu` module (identify 0), its `robot_version` the `sub` module 0;
//! - **releases** of module `mcu`: full packages, and patches (a from-version);
//! - a robot is offered an update only through a running **campaign** that reaches it.

mod errors;
mod files;
mod oauth;
mod params;

use ota_plugin_sdk::{Dialect, Refusal, Request, Response, Router, dialect};

use errors::UbError;

/// The dialect as the host sees it.
pub struct Ubtech;

/// OAuth2's token endpoint: everything it answers, refusals included, is OAuth2's shape.
const TOKEN: &str = "/oauth/token";

impl Dialect for Ubtech {
    const NAME: &'static str = "ubtech";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const VENDOR: &'static str = "UBTech";
    const DESCRIPTION: &'static str =
        "UBTech robot firmware API: OAuth2 token, patch-chain download, upgrade callback";

    fn router() -> Router {
        // The spec prints GET for the token and the download and POST for the callback, and
        // prints the callback as a link, which robots' HTTP stacks follow with GET: every call
        // takes both methods.
        Router::new()
            .get("/oauth/token", oauth::token)
            .post("/oauth/token", oauth::token)
            .get("/file/download", files::download)
            .post("/file/download", files::download)
            .get("/file/callback", files::callback)
            .post("/file/callback", files::callback)
            .claim("/oauth/{*rest}")
            .claim("/file/{*rest}")
            .unrouted(|req, u| {
                if u.allow.is_empty() {
                    return UbError::NoSuchApi.into_response();
                }
                let r = if req.path() == TOKEN {
                    oauth::refused(405, "use GET or POST")
                } else {
                    UbError::MethodNotAllowed.into_response()
                };
                r.header("Allow", u.allow_header())
            })
    }

    fn refuse(req: &Request, reason: Refusal) -> Response {
        match reason {
            Refusal::BodyTooLarge if req.path() == TOKEN => {
                oauth::refused(413, "request body too large")
            }
            Refusal::BodyTooLarge => UbError::BodyTooLarge.into_response(),
        }
    }

    fn fail(req: &Request, failure: &ota_plugin_sdk::Failure) -> Response {
        if req.path() == TOKEN {
            oauth::failed(failure)
        } else {
            UbError::failed(failure)
        }
    }
}

dialect!(Ubtech);
