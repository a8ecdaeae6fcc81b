//! `/admin/api/v1/plugins`: push a plugin once for every replica sharing the database (or
//! as a canary serving a share of its requests), list the pushed versions, promote a canary,
//! and roll back. A pushed component is loaded exactly as a file in
//! the plugins folder would be (contract, world, manifest) before it is stored; each replica
//! then takes it within seconds (`runtime::fleet`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Items, Operator, query};
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::pushes::{PushError, Pushed};

/// The largest component a push takes (a Python dialect is about 20 MB).
const MAX_COMPONENT_BYTES: usize = 64 << 20;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_pushed, push_plugin))
        .routes(routes!(rollback_plugin))
        .routes(routes!(promote_plugin))
}

impl From<PushError> for ApiError {
    fn from(e: PushError) -> Self {
        match e {
            PushError::NotFound(m) => ApiError::NotFound(m),
            PushError::Conflict(m) => ApiError::Conflict(m),
            PushError::Blob(e) => e.into(),
            PushError::Storage(e) => ApiError::Internal(e.to_string()),
        }
    }
}

/// Every pushed version, newest first.
#[utoipa::path(
    get,
    path = "/admin/api/v1/plugins",
    tag = "plugins",
    operation_id = "list_pushed_plugins",
    responses((status = 200, body = Items<Pushed>))
)]
async fn list_pushed(
    _op: Operator,
    State(state): State<AppState>,
) -> Result<Json<Items<Pushed>>, ApiError> {
    Ok(Json(Items {
        items: state.services.pushes.list().await?,
    }))
}

/// How a push serves.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PushMode {
    /// Serve the new version to this percentage of the plugin's requests only (by a hash of
    /// the mount's `canary-key`: each device or credential sees one version), beside the
    /// serving version, until it is promoted or rolled back. Needs a pushed serving version.
    #[param(minimum = 0, maximum = 100)]
    canary_percent: Option<u8>,
}

/// Push a plugin component (the `.wasm` file's bytes) to every replica: it is validated as
/// the plugins folder would load it, stored, and made the serving version of its name (the
/// version it replaces is kept for a rollback), or a canary with `canary_percent`.
#[utoipa::path(
    post,
    path = "/admin/api/v1/plugins",
    tag = "plugins",
    operation_id = "push_plugin",
    params(PushMode),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The `.wasm` file's bytes (any content type is taken)"),
    responses(
        (status = 201, body = Pushed),
        (status = 400, description = "not a plugin this host can load, or a canary share over 100", body = ErrorBody),
        (status = 409, description = "a canary of a plugin with no pushed serving version", body = ErrorBody),
        (status = 413, description = "over 64 MiB", body = ErrorBody),
    )
)]
async fn push_plugin(
    op: Operator,
    State(state): State<AppState>,
    mode: Result<Query<PushMode>, QueryRejection>,
    req: Request,
) -> Result<(StatusCode, Json<Pushed>), ApiError> {
    let mode = query(mode)?;
    if mode.canary_percent.is_some_and(|p| p > 100) {
        return Err(ApiError::BadRequest("canary_percent is 0-100".into()));
    }
    let bytes = axum::body::to_bytes(req.into_body(), MAX_COMPONENT_BYTES)
        .await
        .map_err(|e| {
            ApiError::PayloadTooLarge(format!(
                "a plugin component is at most {MAX_COMPONENT_BYTES} bytes: {e}"
            ))
        })?
        .to_vec();
    let config = state.config.clone();
    let loaded = state
        .runtime
        .load(
            std::path::Path::new("pushed.wasm"),
            bytes.clone(),
            |name| config.mount(name),
            state.services.clock.now_millis(),
        )
        .await
        .map_err(|e| ApiError::BadRequest(format!("not a plugin this host can load: {e}")))?;
    let pushed = state
        .services
        .pushes
        .push(
            &loaded.name,
            &loaded.version,
            bytes,
            &op.0.name,
            mode.canary_percent,
        )
        .await?;
    tracing::info!(plugin = %pushed.name, version = %pushed.version, canary_percent = ?pushed.canary_percent, by = %op.0.name, "plugin pushed");
    Ok((StatusCode::CREATED, Json(pushed)))
}

/// Make a plugin's canary its serving version for every request, on every replica.
#[utoipa::path(
    post,
    path = "/admin/api/v1/plugins/{name}/promote",
    tag = "plugins",
    operation_id = "promote_plugin",
    params(("name" = String, Path, description = "The plugin's manifest name")),
    responses(
        (status = 200, body = Pushed),
        (status = 404, description = "the plugin has no canary", body = ErrorBody),
    )
)]
async fn promote_plugin(
    op: Operator,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Pushed>, ApiError> {
    let p = state.services.pushes.promote(&name).await?;
    tracing::info!(plugin = %p.name, version = %p.version, by = %op.0.name, "canary promoted");
    Ok(Json(p))
}

/// Undo the last step, on every replica: end the plugin's canary if it has one (answering
/// the version that keeps serving), else serve the version before the current one again.
#[utoipa::path(
    post,
    path = "/admin/api/v1/plugins/{name}/rollback",
    tag = "plugins",
    operation_id = "rollback_plugin",
    params(("name" = String, Path, description = "The plugin's manifest name")),
    responses(
        (status = 200, body = Pushed),
        (status = 404, description = "no plugin of that name was pushed", body = ErrorBody),
        (status = 409, description = "no previous version is kept", body = ErrorBody),
    )
)]
async fn rollback_plugin(
    op: Operator,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Pushed>, ApiError> {
    let p = state.services.pushes.rollback(&name).await?;
    tracing::info!(plugin = %p.name, version = %p.version, by = %op.0.name, "plugin rolled back");
    Ok(Json(p))
}
