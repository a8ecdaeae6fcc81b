//! The native admin API, for operators (operator API keys only): the plugin inventory at
//! `GET /admin/plugins` (what is loaded, from which file and hash, mounted where, since when,
//! and the last load error of every refused file), and JSON resources under `/admin/api/v1`,
//! one module each. Every error is the host's `{"error": {...}}` shape. Each handler carries
//! its OpenAPI description and is registered through `utoipa_axum`'s `routes!`, so the
//! document served at `/admin/api/openapi.json` is generated from the routes themselves and
//! cannot list a route that does not exist or miss one that does.

mod app_keys;
mod campaigns;
mod keys;
mod logins;
mod releases;
mod tenants;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::auth::{KeyIdentity, Role};

/// The admin routes and, beside them, `GET /admin/api/openapi.json` describing them.
pub fn router() -> Router<AppState> {
    let (router, doc) = api().split_for_parts();
    let doc = std::sync::Arc::new(doc);
    router
        .route(
            "/admin/api/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .layer(axum::middleware::map_response(super::error::json_refusals))
}

/// The OpenAPI document of the admin API, as served.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_plugins))
        .merge(tenants::router())
        .merge(keys::router())
        .merge(logins::router())
        .merge(app_keys::router())
        .merge(releases::router())
        .merge(campaigns::router())
        .merge(super::blobs::admin_router())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ota-host admin API",
        description = "The native API for operators: tenants, API keys, dialect logins, products, devices, \
            firmware blobs and releases, campaigns with their actions, jobs, statistics and op \
            log. Every call needs an operator API key (`Authorization: Bearer <key>` or \
            `X-API-Key: <key>`); errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    modifiers(&Security),
    security(("bearer" = []), ("api_key" = [])),
    components(schemas(ErrorBody, crate::rollout::campaigns::Action))
)]
struct ApiDoc;

/// The two ways an operator key may be sent.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        c.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// A list answered whole.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Items<T> {
    pub items: Vec<T>,
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

/// The operator key a request carries: `X-API-Key`, else `Authorization: Bearer`. A header
/// that is present but blank counts as absent, so it never hides the other one.
fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    header("x-api-key").or_else(|| {
        header("authorization").and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            let rest = rest.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty()).then_some(rest)
        })
    })
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = presented_key(&parts.headers)
            .ok_or_else(|| ApiError::Unauthorized("operator API key required".into()))?;
        let id = state.services.auth.verify_api_key(key).await?;
        if id.role != Role::Operator {
            return Err(ApiError::Forbidden("this API needs an operator key".into()));
        }
        Ok(Operator(id))
    }
}

/// What is loaded, from which file and hash, mounted where, since when, and the last load
/// error of every refused file.
#[utoipa::path(
    get,
    path = "/admin/plugins",
    tag = "plugins",
    responses(
        (status = 200, description = "`{plugins: [...], failures: [...]}`", body = Object),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
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

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::presented_key;

    fn headers(list: &[(&'static str, &'static str)]) -> HeaderMap {
        list.iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn a_blank_header_does_not_hide_the_other() {
        let h = headers(&[("x-api-key", ""), ("authorization", "Bearer k1")]);
        assert_eq!(presented_key(&h), Some("k1"));
        let h = headers(&[("x-api-key", "  "), ("authorization", "bearer  k2 ")]);
        assert_eq!(presented_key(&h), Some("k2"));
        let h = headers(&[("x-api-key", "k3"), ("authorization", "Bearer k1")]);
        assert_eq!(presented_key(&h), Some("k3"));
        let h = headers(&[("authorization", "Bearer ")]);
        assert_eq!(presented_key(&h), None);
        let h = headers(&[("authorization", "Basic abc")]);
        assert_eq!(presented_key(&h), None);
    }
}
