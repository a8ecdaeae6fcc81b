//! `GET /metrics` (Prometheus text; an operator key on the main listener, open on the
//! operator's own `metrics.listen`) and `GET /readyz` (whether the database and the blob
//! store answer, for load balancers). The facts read per scrape are gathered here from the
//! modules that own them; `crate::metrics` renders them.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::AppState;
use super::admin::Operator;
use super::error::ApiError;
use crate::metrics::{LoadedPlugin, Scrape};

/// How long `/readyz` waits for each dependency.
const READY_WITHIN: Duration = Duration::from_secs(2);

/// `/metrics` behind an operator key, and `/readyz`, for the main listener.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/metrics",
            get(|_op: Operator, State(state): State<AppState>| metrics(state)),
        )
        .route("/readyz", get(readyz))
        .layer(axum::middleware::map_response(super::error::json_refusals))
}

/// The whole router of the operator's metrics listener: `/metrics` without a key (the
/// listener's address is the operator's access control), and `/readyz`.
pub fn open_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<AppState>| metrics(state)),
        )
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(state: AppState) -> Result<Response, ApiError> {
    let s = &state.services;
    let campaigns = s.rollout.progress().await.map_err(ApiError::from)?;
    let tenants = s
        .auth
        .list_tenants()
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    let snap = state.registry.snapshot();
    let loaded = |p: &crate::runtime::LoadedPlugin, canary: bool| LoadedPlugin {
        name: p.name.clone(),
        version: p.version.clone(),
        contract: p.contract.clone(),
        canary,
        in_use: p.budget.in_use() as u32,
        instances: p.budget.shares().instances as u32,
    };
    let plugins = snap
        .plugins
        .values()
        .map(|p| loaded(p, false))
        .chain(snap.canaries.values().map(|c| loaded(&c.plugin, true)))
        .collect();
    let pool = s.db.pool();
    let (auth_cache_hits, auth_cache_misses) = s.auth.cache_lookups();
    let scrape = Scrape {
        campaigns,
        tenants,
        plugins,
        plugin_load_failures: snap.failures.len(),
        db_open: pool.size(),
        db_idle: pool.num_idle() as u32,
        db_max: pool.options().get_max_connections(),
        auth_cache_hits,
        auth_cache_misses,
        db_fast_reads: s.db.fast_reads(),
    };
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        s.metrics.render(&scrape),
    )
        .into_response())
}

/// 200 when the database and the blob store both answer within [`READY_WITHIN`], else 503
/// naming what did not.
async fn readyz(State(state): State<AppState>) -> Response {
    let s = &state.services;
    let database =
        tokio::time::timeout(READY_WITHIN, sqlx::query("SELECT 1").execute(s.db.pool())).await;
    let database = match database {
        Ok(Ok(_)) => "ok".to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {READY_WITHIN:?}"),
    };
    let blobs = match tokio::time::timeout(READY_WITHIN, s.blobs.check()).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {READY_WITHIN:?}"),
    };
    let status = if database == "ok" && blobs == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({ "database": database, "blobs": blobs })),
    )
        .into_response()
}
