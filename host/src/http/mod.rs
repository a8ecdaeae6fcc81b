//! The HTTP edge: one axum router per listener. Host-owned routes (`/admin/*`, `/install/*`,
//! `/blobs/*`, `/oss/*`, `/ui/*`, `/healthz`; see `runtime::registry::RESERVED_SEGMENTS`) are matched first;
//! everything else is dispatched to the plugin whose mount and routes claim it. Errors of host routes are typed ([`error::ApiError`]) and turned into
//! responses here, once.

pub mod admin;
pub mod blobs;
pub mod conn;
pub mod cors;
pub mod dispatch;
pub mod error;
pub mod install;
pub mod metrics;
pub mod oss;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::Services;
use crate::config::Config;
use crate::runtime::{Registry, Runtime};

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Arc<Runtime>,
    pub registry: Arc<Registry>,
    /// Behind one pointer: axum clones the state for every request.
    pub services: Arc<Services>,
    pub config: Arc<Config>,
    /// Requests to plugins per client address (see `limits.requests-per-ip-per-sec`).
    pub per_ip: Arc<dispatch::PerIp>,
    /// The CORS layer of each mount that has one, by plugin name: built once, not per request.
    pub cors: Arc<cors::ByMount>,
    /// The main listener's base URL (`public-url`, else its bound address): what requests on
    /// the OSS listener, which has no Host of the main one, name the main host by.
    pub main_url: Arc<str>,
    /// The base URL of the OSS-compatible endpoint's own listener, when one is configured:
    /// buckets are then `<oss_url>/<bucket>`, else `<host>/oss/<bucket>`.
    pub oss_url: Option<Arc<str>>,
    /// Uploads streaming in, bounded over the host and per party.
    pub upload_slots: Arc<crate::blobs::UploadSlots>,
    /// The dashboard's memory of replica reports, for rates between two of them.
    pub ui_rates: Arc<ui::Rates>,
}

/// Which listener a request arrived on: `None` for the main one, else a plugin's own.
#[derive(Clone, Copy, Debug)]
pub struct Listener(pub Option<SocketAddr>);

/// The router for one listener.
pub fn router(state: AppState, listener: Listener) -> Router {
    let base = if listener.0.is_none() {
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .merge(admin::router())
            .merge(install::router())
            .merge(metrics::router())
            .merge(ui::router())
            .merge(blobs::router())
            .merge(oss::router(&state.config))
    } else {
        Router::new()
    };
    base.fallback(dispatch::dispatch)
        .layer(axum::Extension(listener))
        .with_state(state)
}

/// The absolute base URL clients reach the host at: the operator's `public-url` on the main
/// listener, else `http://` + the request's `Host` header (else the listener's address).
pub fn host_url(
    config: &Config,
    listener: Listener,
    headers: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
) -> String {
    if let (Some(url), None) = (&config.public_url, listener.0) {
        return url.clone();
    }
    let authority = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| listener.0.unwrap_or(config.listen).to_string());
    format!("http://{authority}")
}
