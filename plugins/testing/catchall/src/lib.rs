//! A test-only plugin that claims as much as a pattern can: a route led by a parameter (a
//! hawkBit-style `/{tenant}/controller/v1/{id}`) and a fallback for every path (`/{*rest}`).
//! It answers who took the request, so tests can prove that the host's own paths (`/admin`,
//! `/install`, `/blobs`, `/oss`, `/healthz`) never reach it and that deeper claims win.

use ota_plugin_sdk::{Dialect, Refusal, Request, Response, Router, dialect};

struct Catchall;

fn controller(req: &Request) -> Response {
    Response::text(
        200,
        format!(
            "route tenant={} id={}",
            req.param("tenant").unwrap_or("-"),
            req.param("id").unwrap_or("-")
        ),
    )
}

impl Dialect for Catchall {
    const NAME: &'static str = "catchall";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const VENDOR: &'static str = "Test";
    const DESCRIPTION: &'static str = "a parameter-led route and a root fallback";

    fn router() -> Router {
        Router::new()
            .get("/{tenant}/controller/v1/{id}", controller)
            .claim("/{*rest}")
            .unrouted(|req, u| {
                Response::text(
                    404,
                    format!("fallback {} allow=[{}]", req.path(), u.allow_header()),
                )
            })
    }

    fn refuse(_: &Request, _: Refusal) -> Response {
        Response::text(413, "too large")
    }
}

dialect!(Catchall);
