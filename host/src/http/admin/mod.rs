//! The native admin API, for operators (operator API keys only): the plugin inventory at
//! `GET /admin/plugins` (what is loaded, from which file and hash, mounted where, since when,
//! and the last load error of every refused file), and JSON resources under `/admin/api/v1`,
//! one module each. Every error is the host's `{"error": {...}}` shape. Each handler carries
//! its OpenAPI description and is registered through `utoipa_axum`'s `routes!`, so the
//! document served at `/admin/api/openapi.json` is generated from the routes themselves and
//! cannot list a route that does not exist or miss one that does.

mod app_keys;
mod campaigns;
mod document;
mod keys;
mod logins;
mod plugins;
mod releases;
mod tenants;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::auth::{KeyIdentity, Role};
use crate::catalog::releases::PageReq;
use crate::config::AuthMode;

/// The admin routes and, beside them, `GET /admin/api/openapi.json` describing them.
pub fn router() -> Router<AppState> {
    let (router, doc) = document();
    let doc = axum::body::Bytes::from(served(doc).to_string());
    router
        .route(
            "/admin/api/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc,
                    )
                }
            }),
        )
        .layer(axum::middleware::map_response(super::error::json_refusals))
}

/// The OpenAPI document of the admin API, as served.
pub fn openapi() -> serde_json::Value {
    served(document().1)
}

/// The document as JSON, with what is added to it after serializing.
fn served(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut doc = serde_json::to_value(doc).expect("an OpenAPI document serializes");
    document::add_links(&mut doc);
    doc
}

/// The routes and their document. The shared refusals and the links are added after the
/// modules' routes are merged: an `#[openapi(modifiers(...))]` modifier runs before that, on
/// no paths.
fn document() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_plugins))
        .merge(tenants::router())
        .merge(keys::router())
        .merge(logins::router())
        .merge(app_keys::router())
        .merge(releases::router())
        .merge(campaigns::router())
        .merge(plugins::router())
        .merge(super::blobs::admin_router())
        .split_for_parts();
    document::SharedRefusals.modify(&mut doc);
    (router, doc)
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

/// Paging as operators write it in the query string: `page` from 1, `page_size` 1-200.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Paging {
    /// The page, from 1 [default: 1].
    #[param(minimum = 1, maximum = 2_147_483_647)]
    page: Option<u32>,
    /// Items per page, 1-200 [default: 20].
    #[param(minimum = 1, maximum = 200)]
    page_size: Option<u32>,
}

impl Paging {
    /// The page asked for, defaults filled in. Pages stop at `i32::MAX`: the document types
    /// `page` (asked and answered) as an `int32`.
    pub(crate) fn req(&self) -> Result<PageReq, ApiError> {
        let defaults = PageReq::default();
        let req = PageReq {
            page: self.page.unwrap_or(defaults.page),
            page_size: self.page_size.unwrap_or(defaults.page_size),
            offset: None,
        };
        if req.page == 0 || req.page > i32::MAX as u32 || !(1..=200).contains(&req.page_size) {
            return Err(ApiError::BadRequest(
                "page must be 1-2147483647 and page_size 1-200".into(),
            ));
        }
        Ok(req)
    }
}

/// A list answered whole.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Items<T> {
    pub items: Vec<T>,
}

/// A JSON request body, refused in the API's error shape (not axum's plain text).
pub(crate) fn body_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let bad = |e: serde_json::Error| ApiError::BadRequest(format!("invalid JSON body: {e}"));
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(bad)?;
    integral(&mut value);
    serde_json::from_value(value).map_err(bad)
}

/// Turns numbers without a fraction (`5.0`) into integers. The document's `integer` is JSON
/// Schema's, which admits them, while serde takes only integer literals for integer fields.
fn integral(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                // 2^64 and -2^63 are exact as f64; a cast saturates, so bound first.
                if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                    *value = Value::from(f as u64);
                } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral),
        Value::Object(fields) => fields.values_mut().for_each(integral),
        _ => {}
    }
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

/// The plugin inventory: what is loaded and what was refused.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Inventory {
    plugins: Vec<PluginInfo>,
    failures: Vec<FailureInfo>,
    /// Canary versions serving a share of their plugin's requests here.
    canaries: Vec<CanaryInfo>,
    /// Every replica on this database heard from in the last 30 seconds, with the plugin
    /// versions it serves (this one included, once it has reported).
    replicas: Vec<crate::pushes::ReplicaReport>,
}

/// A canary version beside a loaded plugin.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct CanaryInfo {
    name: String,
    version: String,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    sha256: String,
    /// Its share of the plugin's requests.
    percent: u8,
}

/// A loaded plugin.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct PluginInfo {
    /// The file it was loaded from.
    file: String,
    name: String,
    version: String,
    vendor: String,
    description: String,
    /// The WIT contract it was built against, e.g. `ota:dialect@0.2.5`.
    contract: String,
    /// The lowest host contract that has every host function it calls, e.g.
    /// `ota:dialect@0.2.1`: hosts from that version on can run it.
    needs: String,
    /// Lower-case hex SHA-256 of the file.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    sha256: String,
    /// When this version was loaded, Unix milliseconds.
    loaded_at: i64,
    mount: MountInfo,
    routes: Vec<RouteInfo>,
    /// The last refusal of a newer version of the same file, while this one keeps serving.
    last_error: Option<LastError>,
}

/// Where a plugin is reachable.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct MountInfo {
    /// Path prefix in front of its routes; empty for none.
    prefix: String,
    /// Only requests with this `Host` reach it.
    host: Option<String>,
    /// Its own listener, if not the main one.
    listen: Option<String>,
    /// How its requests' credentials are checked.
    auth: MountAuth,
}

/// A mount's credential policy.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
enum MountAuth {
    ApiKey,
    Anonymous,
}

/// A route as the plugin's manifest declared it.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct RouteInfo {
    /// An HTTP method, or `*` for any.
    method: String,
    /// The declared pattern (without the mount prefix).
    path: String,
}

/// Why a file was last refused.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct LastError {
    /// Unix milliseconds.
    at: i64,
    reason: String,
    /// Lower-case hex SHA-256 of the refused bytes; empty when the file could not be read.
    sha256: String,
}

/// A file whose last load was refused.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct FailureInfo {
    file: String,
    /// Unix milliseconds.
    at: i64,
    reason: String,
    /// Whether an earlier version of the file is still loaded and serving.
    serving: bool,
}

/// What is loaded, from which file and hash, mounted where, since when, and the last load
/// error of every refused file.
#[utoipa::path(get, path = "/admin/plugins", tag = "plugins", operation_id = "list_plugins",
    responses((status = 200, body = Inventory)))]
async fn list_plugins(
    _op: Operator,
    State(state): State<AppState>,
) -> Result<Json<Inventory>, ApiError> {
    let replicas = state.services.pushes.replicas(30_000).await?;
    let snap = state.registry.snapshot();
    let last_error = |f: &crate::runtime::registry::LoadFailure| LastError {
        at: f.at,
        reason: f.reason.clone(),
        sha256: f.sha256.clone(),
    };
    let plugins = snap
        .plugins
        .values()
        .map(|p| PluginInfo {
            file: p.file.display().to_string(),
            name: p.name.clone(),
            version: p.version.clone(),
            vendor: p.vendor.clone(),
            description: p.description.clone(),
            contract: format!("ota:dialect@{}", p.contract),
            needs: format!("ota:dialect@{}", p.needs),
            sha256: p.hash.clone(),
            loaded_at: p.loaded_at,
            mount: MountInfo {
                prefix: p.mount.prefix.clone(),
                host: p.mount.host.clone(),
                listen: p.mount.listen.map(|a| a.to_string()),
                auth: match p.mount.auth {
                    AuthMode::ApiKey => MountAuth::ApiKey,
                    AuthMode::Anonymous => MountAuth::Anonymous,
                },
            },
            routes: p
                .routes
                .iter()
                .map(|r| RouteInfo {
                    method: r.method.clone(),
                    path: r.path.clone(),
                })
                .collect(),
            last_error: snap.failures.get(&p.file).map(last_error),
        })
        .collect();
    let failures = snap
        .failures
        .iter()
        .map(|(file, f)| FailureInfo {
            file: file.display().to_string(),
            at: f.at,
            reason: f.reason.clone(),
            serving: snap.plugins.contains_key(file),
        })
        .collect();
    let canaries = snap
        .canaries
        .values()
        .map(|c| CanaryInfo {
            name: c.plugin.name.clone(),
            version: c.plugin.version.clone(),
            sha256: c.plugin.hash.clone(),
            percent: c.percent,
        })
        .collect();
    Ok(Json(Inventory {
        plugins,
        failures,
        canaries,
        replicas,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::http::HeaderMap;
    use utoipa::openapi::path::Operation;

    use super::presented_key;

    /// Every operation of the served document with its method and path.
    fn operations() -> Vec<(String, Operation)> {
        let doc = super::document().1;
        let mut all = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in super::document::operations(item) {
                all.push((format!("{method} {path}"), op.clone()));
            }
        }
        all
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (name, op) in operations() {
            let id = op
                .operation_id
                .unwrap_or_else(|| panic!("{name} has no operationId"));
            if let Some(other) = seen.insert(id.clone(), name.clone()) {
                panic!("operationId {id} names both {other} and {name}");
            }
        }
        assert!(seen.contains_key("create_app_key") && seen.contains_key("list_api_keys"));
    }

    #[test]
    fn shared_refusals_are_documented_where_they_can_happen() {
        for (name, op) in operations() {
            let documented: Vec<&str> = op.responses.responses.keys().map(String::as_str).collect();
            let body = op.request_body.is_some();
            let parses = body || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let mut expected = vec!["401", "403"];
            if parses {
                expected.push("400");
            }
            if body {
                expected.push("413");
            }
            for status in expected {
                assert!(documented.contains(&status), "{name} lacks {status}");
            }
            for (status, response) in &op.responses.responses {
                let utoipa::openapi::RefOr::T(r) = response else {
                    continue;
                };
                assert!(
                    !r.description.is_empty(),
                    "{name} {status} has no description"
                );
                if status.starts_with('4') {
                    let schema =
                        serde_json::to_value(&r.content["application/json"].schema).unwrap();
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorBody",
                        "{name} {status}"
                    );
                }
            }
        }
    }

    /// Each module names its request and answer types freely (`Created`, `Create`); two of
    /// the same name would silently share one schema. Spot the answers that once collided.
    #[test]
    fn schemas_are_the_types_answered() {
        let doc = super::openapi();
        let schemas = &doc["components"]["schemas"];
        let fields = |name: &str| -> Vec<String> {
            let mut f: Vec<String> = schemas[name]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("no schema {name}"))
                .keys()
                .cloned()
                .collect();
            f.sort();
            f
        };
        assert_eq!(fields("CreatedAppKey"), ["info", "secret"]);
        assert_eq!(
            schemas["CreatedAppKey"]["properties"]["info"]["$ref"],
            "#/components/schemas/HmacKeyInfo"
        );
        assert_eq!(fields("CreatedApiKey"), ["info", "key"]);
        assert!(fields("CreateCampaign").contains(&"release_id".to_string()));
        assert!(fields("CreateRelease").contains(&"blob_sha256".to_string()));
        assert_eq!(
            fields("Inventory"),
            ["canaries", "failures", "plugins", "replicas"]
        );
        assert!(fields("Pushed").contains(&"state".to_string()));
    }

    #[test]
    fn integral_numbers_are_integers() {
        #[derive(serde::Deserialize)]
        struct T {
            a: u8,
            b: i64,
            c: Vec<u64>,
        }
        let t: T = super::body_json(br#"{"a": 3.0, "b": -7.0, "c": [1e3]}"#).unwrap();
        assert_eq!((t.a, t.b, t.c), (3, -7, vec![1000]));
        assert!(super::body_json::<T>(br#"{"a": 3.5, "b": 0, "c": []}"#).is_err());
        assert!(super::body_json::<T>(br#"{"a": 1, "b": 1e30, "c": []}"#).is_err());
    }

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
