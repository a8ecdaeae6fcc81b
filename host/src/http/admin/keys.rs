//! `/admin/api/v1/api-keys`: tenant keys (dialect requests) and operator keys (this API).
//! A created key is answered once, in clear; afterwards only its metadata is listed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Operator, body_json};
use crate::http::AppState;
use crate::http::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/api/v1/api-keys", get(list).post(create))
        .route("/admin/api/v1/api-keys/{id}", delete(revoke))
}

async fn list(_: Operator, State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "items": st.services.auth.list_api_keys().await? }),
    ))
}

#[derive(Deserialize)]
struct NewKey {
    /// Omit for an operator key.
    tenant: Option<String>,
    name: String,
}

async fn create(
    _: Operator,
    State(st): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let k: NewKey = body_json(&body)?;
    let (info, key) = st
        .services
        .auth
        .create_api_key(k.tenant.as_deref(), &k.name)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "key": key, "info": info })),
    ))
}

async fn revoke(
    _: Operator,
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    st.services.auth.revoke_api_key(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
