//! `/admin/api/v1/api-keys`: tenant keys (dialect requests) and operator keys (this API).
//! A created key is answered once, in clear; afterwards only its metadata is listed.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Items, Operator, body_json};
use crate::auth::{ApiKeyInfo, KeyFormat};
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// Every key's metadata (never the key itself).
#[utoipa::path(get, path = "/admin/api/v1/api-keys", tag = "api-keys",
    responses((status = 200, body = Items<ApiKeyInfo>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(
    _: Operator,
    State(st): State<AppState>,
) -> Result<Json<Items<ApiKeyInfo>>, ApiError> {
    Ok(Json(Items {
        items: st.services.auth.list_api_keys().await?,
    }))
}

/// A key as created: answered once, in clear.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Created {
    key: String,
    info: ApiKeyInfo,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NewKey {
    /// Omit for an operator key.
    tenant: Option<String>,
    name: String,
    /// `ota` (default) or `hex40` (a Django REST framework token's shape).
    #[serde(default)]
    format: KeyFormat,
}

/// Create a tenant key (for dialect requests) or, without `tenant`, an operator key.
#[utoipa::path(post, path = "/admin/api/v1/api-keys", tag = "api-keys", request_body = NewKey,
    responses((status = 201, body = Created), (status = 400, body = ErrorBody), (status = 404, description = "unknown tenant", body = ErrorBody)))]
async fn create(
    _: Operator,
    State(st): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let k: NewKey = body_json(&body)?;
    let (info, key) = st
        .services
        .auth
        .create_api_key_as(k.tenant.as_deref(), &k.name, k.format)
        .await?;
    Ok((StatusCode::CREATED, Json(Created { key, info })))
}

/// Revoke a key: it stops working at once. The last live operator key cannot be revoked
/// (409): create another one first.
#[utoipa::path(delete, path = "/admin/api/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = i64, Path, description = "key id")),
    responses((status = 204, description = "revoked"), (status = 404, body = ErrorBody),
        (status = 409, description = "the last operator key", body = ErrorBody)))]
async fn revoke(
    _: Operator,
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    st.services.auth.revoke_api_key(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
