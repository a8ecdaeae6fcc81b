//! The native admin API, for operators (operator API keys only): the plugin inventory at
//! `GET /admin/plugins` (what is loaded, from which file and hash, mounted where, since when,
//! and the last load error of every refused file), and JSON resources under `/admin/api/v1`,
//! one module each. Every error is the host's `{"error": {...}}` shape.

mod campaigns;
mod keys;
mod releases;
mod tenants;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::auth::{KeyIdentity, Role};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/plugins", get(list_plugins))
        .merge(tenants::router())
        .merge(keys::router())
        .merge(releases::router())
        .merge(campaigns::router())
}

/// A JSON request body, refused in the API's error shape (not axum's plain text).
pub(crate) fn body_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// A query string, refused in the API's error shape.
pub(crate) fn query<T>(
    q: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|axum::extract::Query(v)| v)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// An authenticated operator: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
pub struct Operator(pub KeyIdentity);

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let key = header("x-api-key")
            .map(str::trim)
            .or_else(|| {
                header("authorization").and_then(|v| {
                    let (scheme, rest) = v.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
                })
            })
            .ok_or_else(|| ApiError::Unauthorized("operator API key required".into()))?;
        let id = state.services.auth.verify_api_key(key).await?;
        if id.role != Role::Operator {
            return Err(ApiError::Forbidden("this API needs an operator key".into()));
        }
        Ok(Operator(id))
    }
}

async fn list_plugins(_op: Operator, State(state): State<AppState>) -> Json<Value> {
    let snap = state.registry.snapshot();
    let plugins: Vec<Value> = snap
        .plugins
        .values()
        .map(|p| {
            json!({
                "file": p.file.display().to_string(),
                "name": p.name,
                "version": p.version,
                "vendor": p.vendor,
                "description": p.description,
                "contract": format!("ota:dialect@{}", p.contract),
                "sha256": p.hash,
                "loaded_at": p.loaded_at,
                "mount": {
                    "prefix": p.mount.prefix,
                    "host": p.mount.host,
                    "listen": p.mount.listen.map(|a| a.to_string()),
                    "auth": p.mount.auth,
                },
                "routes": p.routes,
                "last_error": snap.failures.get(&p.file),
            })
        })
        .collect();
    let failures: Vec<Value> = snap
        .failures
        .iter()
        .map(|(file, f)| json!({ "file": file.display().to_string(), "at": f.at, "reason": f.reason, "serving": snap.plugins.contains_key(file) }))
        .collect();
    Json(json!({ "plugins": plugins, "failures": failures }))
}
