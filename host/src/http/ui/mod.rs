//! The operator dashboard at `/ui`: pages rendered on the server (askama templates under
//! `host/templates/ui`), refreshed and acted on through htmx, with campaign charts drawn by
//! uPlot. Both libraries are vendored under `host/assets/ui` with their licenses, so the
//! build needs no Node. Every page reads the same service calls the admin API does.

mod assets;
mod campaigns;
mod fleet;
mod plugins;
mod session;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use super::AppState;
use super::error::ApiError;

pub use plugins::Rates;

/// Appended to asset URLs (`?v=`), so a browser's cached copy never outlives an upgrade.
pub(crate) const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The dashboard's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/campaigns") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/campaigns") }))
        .merge(session::router())
        .merge(assets::router())
        .merge(campaigns::router())
        .merge(fleet::router())
        .merge(plugins::router())
        .route("/ui/{*rest}", get(|| async { not_found() }))
        .layer(axum::middleware::map_response(guard_headers))
}

/// What the browser may do with a dashboard page: run and load only what `/ui` serves, never
/// be framed, and (pages, not assets) never be cached, since they carry fleet data.
async fn guard_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The page shell's navigation: which tab is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tab {
    Campaigns,
    Devices,
    Releases,
    Plugins,
}

/// A dashboard error, answered as a page; when an htmx request gets one, `ui.js` shows its
/// message above the page instead.
pub(crate) struct UiError(pub ApiError);

impl<E: Into<ApiError>> From<E> for UiError {
    fn from(e: E) -> Self {
        UiError(e.into())
    }
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage<'a> {
    tab: Option<Tab>,
    operator: &'a str,
    status: u16,
    message: String,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self.0 {
            tracing::error!(%detail, "internal error in the dashboard");
        }
        let status = self.0.status();
        page(
            status,
            &ErrorPage {
                tab: None,
                operator: "",
                status: status.as_u16(),
                message: self.0.to_string(),
            },
        )
    }
}

fn not_found() -> Response {
    UiError(ApiError::NotFound("no such page".into())).into_response()
}

/// A rendered template as an HTML answer with `status`.
pub(crate) fn page(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dashboard template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// A rendered template as a 200 answer.
pub(crate) fn ok(t: &impl Template) -> Response {
    page(StatusCode::OK, t)
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC; empty for none.
pub(crate) fn when(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return String::new();
    };
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) else {
        return ms.to_string();
    };
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.format(&f).unwrap_or_else(|_| ms.to_string())
}

/// A share as a percentage with one decimal, e.g. `12.5%`.
pub(crate) fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_shares_read_as_people_write_them() {
        assert_eq!(when(Some(0)), "1970-01-01 00:00:00");
        assert_eq!(when(Some(1_764_763_200_999)), "2025-12-03 12:00:00");
        assert_eq!(when(None), "");
        assert_eq!(percent(0.125), "12.5%");
        assert_eq!(percent(0.0), "0.0%");
    }
}
