//! `/admin/api/v1/tenants/{tenant}/app-keys`: application keys for dialects whose clients sign
//! every request with HMAC (CTWing's App Key / App Secret). Each belongs to one plugin
//! (`realm`). The secret is answered once, at creation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Items, Operator, body_json};
use crate::auth::HmacKeyInfo;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_app_keys, create_app_key))
        .routes(routes!(revoke_app_key))
}

/// A tenant's application keys (never their secrets).
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/app-keys", tag = "app-keys", operation_id = "list_app_keys",
    params(("tenant" = String, Path)),
    responses((status = 200, body = Items<HmacKeyInfo>), (status = 404, description = "unknown tenant", body = ErrorBody)))]
async fn list_app_keys(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Items<HmacKeyInfo>>, ApiError> {
    Ok(Json(Items {
        items: st.services.auth.list_hmac_keys(&tenant).await?,
    }))
}

/// A new application key; key and secret are generated when omitted.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewAppKey {
    /// The plugin whose requests it signs (its mount name, e.g. `ctwing`).
    #[schema(pattern = "^[a-z0-9-]{1,64}$")]
    realm: String,
    /// The App Key clients send (e.g. `dAaFG7DiPt8`): 1-128 characters without spaces or
    /// control characters.
    #[schema(pattern = "^[^\\u0000-\\u0020\\u007f-\\u009f]{1,128}$")]
    app_key: Option<String>,
    /// The App Secret they sign with: 1-256 characters without spaces or control characters.
    #[schema(pattern = "^[^\\u0000-\\u0020\\u007f-\\u009f]{1,256}$")]
    secret: Option<String>,
}

/// An application key as created: the secret is shown only now.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct CreatedAppKey {
    /// The App Secret: shown only now.
    secret: String,
    info: HmacKeyInfo,
}

/// Create an application key for one plugin.
#[utoipa::path(post, path = "/admin/api/v1/tenants/{tenant}/app-keys", tag = "app-keys", operation_id = "create_app_key",
    params(("tenant" = String, Path)), request_body = NewAppKey,
    responses((status = 201, body = CreatedAppKey),
        (status = 404, description = "unknown tenant", body = ErrorBody),
        (status = 409, description = "the plugin already has that app key", body = ErrorBody)))]
async fn create_app_key(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<CreatedAppKey>), ApiError> {
    let k: NewAppKey = body_json(&body)?;
    let (info, secret) = st
        .services
        .auth
        .create_hmac_key(&tenant, &k.realm, k.app_key.as_deref(), k.secret.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedAppKey { secret, info })))
}

/// Revoke an application key: its signatures stop verifying at once.
#[utoipa::path(delete, path = "/admin/api/v1/tenants/{tenant}/app-keys/{id}", tag = "app-keys", operation_id = "revoke_app_key",
    params(("tenant" = String, Path), ("id" = i64, Path)),
    responses((status = 204, description = "revoked"), (status = 404, description = "unknown tenant or app key", body = ErrorBody)))]
async fn revoke_app_key(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    st.services.auth.revoke_hmac_key(&tenant, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
