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
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(revoke_api_key))
}

/// Every key's metadata (never the key itself).
#[utoipa::path(get, path = "/admin/api/v1/api-keys", tag = "api-keys", operation_id = "list_api_keys",
    responses((status = 200, body = Items<ApiKeyInfo>)))]
async fn list_api_keys(
    _: Operator,
    State(st): State<AppState>,
) -> Result<Json<Items<ApiKeyInfo>>, ApiError> {
    Ok(Json(Items {
        items: st.services.auth.list_api_keys().await?,
    }))
}

/// A key as created: answered once, in clear.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct CreatedApiKey {
    /// The key itself: shown only now.
    key: String,
    info: ApiKeyInfo,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewApiKey {
    /// The tenant whose dialect requests it authenticates; omit for an operator key.
    tenant: Option<String>,
    /// Who or what holds it; not blank.
    #[schema(
        pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    name: String,
    /// `ota` (default) or `hex40` (a Django REST framework token's shape).
    #[serde(default)]
    format: KeyFormat,
}

/// Create a tenant key (for dialect requests) or, without `tenant`, an operator key.
#[utoipa::path(post, path = "/admin/api/v1/api-keys", tag = "api-keys", operation_id = "create_api_key",
    request_body = NewApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 404, description = "unknown tenant", body = ErrorBody)))]
async fn create_api_key(
    _: Operator,
    State(st): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let k: NewApiKey = body_json(&body)?;
    let (info, key) = st
        .services
        .auth
        .create_api_key_as(k.tenant.as_deref(), &k.name, k.format)
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { key, info })))
}

/// Revoke a key: it stops working at once. The last live operator key cannot be revoked
/// (409): create another one first.
#[utoipa::path(delete, path = "/admin/api/v1/api-keys/{id}", tag = "api-keys", operation_id = "revoke_api_key",
    params(("id" = i64, Path, description = "key id")),
    responses((status = 204, description = "revoked"), (status = 404, description = "unknown key", body = ErrorBody),
        (status = 409, description = "the last operator key", body = ErrorBody)))]
async fn revoke_api_key(
    _: Operator,
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    st.services.auth.revoke_api_key(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
