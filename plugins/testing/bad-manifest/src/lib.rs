//! A test-only plugin whose manifest traps: its router declares a pattern without a leading
//! slash, which the SDK refuses with a panic. The host must refuse the file at load time and
//! keep serving whatever it served before.

use ota_plugin_sdk::{Dialect, Refusal, Request, Response, Router, dialect};

struct BadManifest;

fn never(_: &Request) -> Response {
    Response::text(200, "unreachable")
}

impl Dialect for BadManifest {
    const NAME: &'static str = "bad-manifest";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const VENDOR: &'static str = "Test";
    const DESCRIPTION: &'static str = "traps in its manifest";

    fn router() -> Router {
        Router::new().get("no/leading/slash", never)
    }

    fn refuse(_: &Request, _: Refusal) -> Response {
        Response::text(413, "too large")
    }
}

dialect!(BadManifest);
