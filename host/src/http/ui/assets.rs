//! The dashboard's static files, compiled into the binary: htmx and uPlot (vendored, with
//! their licenses beside them, also served) and the dashboard's own stylesheet and script.
//! They hold nothing secret, so they need no login.

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::AppState;

/// Name, content type and bytes of every served file.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "htmx-2.0.11.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/ui/htmx-2.0.11.min.js"),
    ),
    (
        "uPlot-1.6.32.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/ui/uPlot-1.6.32.iife.min.js"),
    ),
    (
        "uPlot-1.6.32.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/ui/uPlot-1.6.32.min.css"),
    ),
    (
        "LICENSE.htmx",
        "text/plain; charset=utf-8",
        include_bytes!("../../../assets/ui/LICENSE.htmx"),
    ),
    (
        "LICENSE.uPlot",
        "text/plain; charset=utf-8",
        include_bytes!("../../../assets/ui/LICENSE.uPlot"),
    ),
    (
        "ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/ui/ui.css"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/ui/ui.js"),
    ),
];

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ui/assets/{file}", get(serve))
}

async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        // Pages name them with `?v=<host version>` (`ASSET_VERSION`).
        Some((_, kind, bytes)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        None => super::not_found(),
    }
}
