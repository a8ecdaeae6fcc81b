//! The HTTP edge: one axum router per listener. Host-owned routes (`/admin/*`, `/install/*`,
//! `/healthz`, see `runtime::registry::RESERVED_SEGMENTS`) are matched first; everything else is dispatched to the plugin whose mount and
//! routes claim it. Errors of host routes are typed ([`error::ApiError`]) and turned into
//! responses here, once.

pub mod admin;
pub mod dispatch;
pub mod error;
pub mod install;

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
    pub services: Services,
    pub config: Arc<Config>,
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
    } else {
        Router::new()
    };
    base.fallback(dispatch::dispatch)
        .layer(axum::Extension(listener))
        .with_state(state)
}
