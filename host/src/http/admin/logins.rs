//! `/admin/api/v1/tenants/{tenant}/logins`: the user accounts and client applications that a
//! dialect's own login calls accept (e.g. UBTech's OAuth2 password grant). Each belongs to one
//! plugin (`realm`, its mount name). Secrets go in once and are kept only as Argon2id hashes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Items, Operator, body_json};
use crate::auth::{LoginAccount, LoginKind};
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_logins, create_login))
        .routes(routes!(disable_login))
        .routes(routes!(revoke_login_tokens))
}

/// A tenant's login accounts (never their secrets), disabled ones included.
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/logins", tag = "logins", operation_id = "list_logins",
    params(("tenant" = String, Path)),
    responses((status = 200, body = Items<LoginAccount>), (status = 404, description = "unknown tenant", body = ErrorBody)))]
async fn list_logins(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Items<LoginAccount>>, ApiError> {
    Ok(Json(Items {
        items: st.services.auth.list_logins(&tenant).await?,
    }))
}

/// A new account: a `user` (username + password) or a `client` (client id + secret).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewLogin {
    /// The plugin whose login calls accept it (its mount name, e.g. `ubtech`).
    #[schema(pattern = "^[a-z0-9-]{1,64}$")]
    realm: String,
    kind: LoginKind,
    /// Username or client id: 1-128 characters, no control characters.
    #[schema(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,128}$")]
    name: String,
    /// Password or client secret, 1-1024 bytes (choose long random ones).
    #[schema(min_length = 1, max_length = 1024)]
    secret: String,
}

/// Provision a login account for one plugin.
#[utoipa::path(post, path = "/admin/api/v1/tenants/{tenant}/logins", tag = "logins", operation_id = "create_login",
    params(("tenant" = String, Path)), request_body = NewLogin,
    responses((status = 201, body = LoginAccount),
        (status = 404, description = "unknown tenant", body = ErrorBody),
        (status = 409, description = "the plugin already has that name", body = ErrorBody)))]
async fn create_login(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<LoginAccount>), ApiError> {
    let l: NewLogin = body_json(&body)?;
    let account = st
        .services
        .auth
        .create_login(&tenant, &l.realm, l.kind, &l.name, &l.secret)
        .await?;
    Ok((StatusCode::CREATED, Json(account)))
}

/// Disable an account for good and revoke every token it holds.
#[utoipa::path(delete, path = "/admin/api/v1/tenants/{tenant}/logins/{id}", tag = "logins", operation_id = "disable_login",
    params(("tenant" = String, Path), ("id" = i64, Path)),
    responses((status = 204, description = "disabled"), (status = 404, description = "unknown tenant or login", body = ErrorBody)))]
async fn disable_login(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    st.services.auth.disable_login(&tenant, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many tokens a revocation ended.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Revoked {
    revoked: u64,
}

/// Revoke every live token issued to (or through) an account; the account keeps working.
#[utoipa::path(post, path = "/admin/api/v1/tenants/{tenant}/logins/{id}/revoke-tokens", tag = "logins",
    operation_id = "revoke_login_tokens", params(("tenant" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = Revoked), (status = 404, description = "unknown tenant or login", body = ErrorBody)))]
async fn revoke_login_tokens(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<Json<Revoked>, ApiError> {
    let revoked = st.services.auth.revoke_login_tokens(&tenant, id).await?;
    Ok(Json(Revoked { revoked }))
}
