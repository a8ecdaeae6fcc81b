//! `/admin/api/v1/tenants`: tenants and their products and devices.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Items, Operator, Paging, body_json, query};
use crate::auth::Tenant;
use crate::catalog::releases::Page;
use crate::catalog::{Device, DeviceFilter, DevicePatch, Product};
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product))
        .routes(routes!(get_attributes, put_attributes))
        .routes(routes!(put_product_key))
        .routes(routes!(list_devices))
        .routes(routes!(get_device, put_device))
}

/// The version a device last reported for one module.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ModuleVersion {
    module: String,
    identify: i64,
    version: String,
}

/// A device with the versions it runs.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct DeviceDetail {
    #[serde(flatten)]
    device: Device,
    modules: Vec<ModuleVersion>,
}

/// Every tenant.
#[utoipa::path(get, path = "/admin/api/v1/tenants", tag = "tenants", operation_id = "list_tenants",
    responses((status = 200, body = Items<Tenant>)))]
async fn list_tenants(
    _: Operator,
    State(st): State<AppState>,
) -> Result<Json<Items<Tenant>>, ApiError> {
    Ok(Json(Items {
        items: st.services.auth.list_tenants().await?,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    /// 1-64 characters of `[A-Za-z0-9._-]`, new among tenants.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    name: String,
}

/// Create a tenant; its name must be new.
#[utoipa::path(post, path = "/admin/api/v1/tenants", tag = "tenants", operation_id = "create_tenant",
    request_body = NewTenant,
    responses((status = 201, body = Tenant), (status = 409, description = "the name is taken", body = ErrorBody)))]
async fn create_tenant(
    _: Operator,
    State(st): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    let t: NewTenant = body_json(&body)?;
    let tenant = st.services.auth.create_tenant(&t.name).await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

/// A tenant's products.
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/products", tag = "products",
    operation_id = "list_products", params(("tenant" = String, Path)),
    responses((status = 200, body = Items<Product>), (status = 404, description = "unknown tenant", body = ErrorBody)))]
async fn list_products(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Items<Product>>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    Ok(Json(Items {
        items: st.services.catalog.list_products(t.id).await?,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewProduct {
    /// Serial number, unique within the tenant; dialects name the product by it: 1-128
    /// characters, no control characters.
    #[schema(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,128}$")]
    sn: String,
    /// Display name (the serial number when omitted).
    name: Option<String>,
}

/// Create a product of a tenant.
#[utoipa::path(post, path = "/admin/api/v1/tenants/{tenant}/products", tag = "products",
    operation_id = "create_product", params(("tenant" = String, Path)), request_body = NewProduct,
    responses((status = 201, body = Product), (status = 404, description = "unknown tenant", body = ErrorBody),
        (status = 409, description = "the serial number is taken", body = ErrorBody)))]
async fn create_product(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    let p: NewProduct = body_json(&body)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let name = p.name.as_deref().unwrap_or(&p.sn);
    let product = st
        .services
        .catalog
        .create_product(t.id, &p.sn, name)
        .await?;
    Ok((StatusCode::CREATED, Json(product)))
}

/// One product.
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/products/{sn}", tag = "products",
    operation_id = "get_product", params(("tenant" = String, Path), ("sn" = String, Path)),
    responses((status = 200, body = Product), (status = 404, description = "unknown tenant or product", body = ErrorBody)))]
async fn get_product(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, sn)): Path<(String, String)>,
) -> Result<Json<Product>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    Ok(Json(st.services.catalog.product(t.id, &sn).await?))
}

/// A product's attributes: names of 1-64 characters of `[A-Za-z0-9._-]` to values.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Attributes(std::collections::BTreeMap<String, String>);

/// Attribute changes: a value (at most 1024 characters) sets one, `null` removes one.
#[derive(Deserialize)]
#[serde(transparent)]
struct AttributeChanges(std::collections::BTreeMap<String, Option<String>>);

/// An object keyed by attribute names, with `values` as its values. Written by hand: the
/// derive cannot say what a map's keys must look like.
fn attribute_map(values: utoipa::openapi::schema::Schema) -> RefOr<Schema> {
    ObjectBuilder::new()
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z0-9._-]{1,64}$")),
        ))
        .additional_properties(Some(values))
        .into()
}

impl utoipa::PartialSchema for Attributes {
    fn schema() -> RefOr<Schema> {
        attribute_map(ObjectBuilder::new().schema_type(Type::String).into())
    }
}

impl utoipa::ToSchema for Attributes {}

impl utoipa::PartialSchema for AttributeChanges {
    fn schema() -> RefOr<Schema> {
        attribute_map(
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .max_length(Some(1024))
                .into(),
        )
    }
}

impl utoipa::ToSchema for AttributeChanges {}

/// A product's attributes: facts dialects read that the canonical model does not carry
/// (e.g. `ctwing.protocol`).
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/products/{sn}/attributes", tag = "products",
    operation_id = "get_product_attributes", params(("tenant" = String, Path), ("sn" = String, Path)),
    responses((status = 200, body = Attributes), (status = 404, description = "unknown tenant or product", body = ErrorBody)))]
async fn get_attributes(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, sn)): Path<(String, String)>,
) -> Result<Json<Attributes>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    let attrs = st.services.catalog.product_attributes(t.id, &sn).await?;
    Ok(Json(Attributes(attrs.into_iter().collect())))
}

/// Set attributes (`{"name": "value"}`; `null` removes one); answers them all.
#[utoipa::path(put, path = "/admin/api/v1/tenants/{tenant}/products/{sn}/attributes", tag = "products",
    operation_id = "put_product_attributes", params(("tenant" = String, Path), ("sn" = String, Path)),
    request_body = AttributeChanges,
    responses((status = 200, body = Attributes), (status = 404, description = "unknown tenant or product", body = ErrorBody)))]
async fn put_attributes(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, sn)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Attributes>, ApiError> {
    let AttributeChanges(changes) = body_json(&body)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let changes: Vec<(String, Option<String>)> = changes.into_iter().collect();
    let attrs = st
        .services
        .catalog
        .set_product_attributes(t.id, &sn, &changes)
        .await?;
    Ok(Json(Attributes(attrs.into_iter().collect())))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewProductKey {
    /// The key clients will send, 1-256 characters without spaces or control characters;
    /// generated when omitted.
    #[schema(pattern = "^[^\\u0000-\\u0020\\u007f-\\u009f]{1,256}$")]
    key: Option<String>,
    /// How many characters of `[a-z0-9]` to generate when `key` is omitted (16-256; 24 by
    /// default, which fits device firmware that keeps the key in a 32-byte C string);
    /// checked, and unused, with `key`.
    #[schema(minimum = 16, maximum = 256)]
    length: Option<usize>,
}

/// A product key as set: shown only now.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ProductKey {
    key: String,
}

/// Set (or replace) the product's key, e.g. CTWing's MasterKey; only its hash is kept.
#[utoipa::path(put, path = "/admin/api/v1/tenants/{tenant}/products/{sn}/key", tag = "products",
    operation_id = "put_product_key", params(("tenant" = String, Path), ("sn" = String, Path)),
    request_body(content = Option<NewProductKey>, description = "optional: without it a key is generated"),
    responses((status = 200, body = ProductKey), (status = 404, description = "unknown tenant or product", body = ErrorBody)))]
async fn put_product_key(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, sn)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<ProductKey>, ApiError> {
    // An object or nothing: serde would also read a struct from a JSON array.
    let k: NewProductKey = if body.is_empty() {
        NewProductKey::default()
    } else {
        match body_json::<serde_json::Value>(&body)? {
            serde_json::Value::Null => NewProductKey::default(),
            serde_json::Value::Object(_) => body_json(&body)?,
            _ => {
                return Err(ApiError::BadRequest(
                    "the body must be a JSON object or empty".into(),
                ));
            }
        }
    };
    let t = st.services.auth.tenant(&tenant).await?;
    let p = st.services.catalog.product(t.id, &sn).await?;
    let key = st
        .services
        .auth
        .set_product_key(p.id, k.key.as_deref(), k.length)
        .await?;
    Ok(Json(ProductKey { key }))
}

/// A product's devices, oldest first; every given filter must match exactly.
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/products/{sn}/devices", tag = "devices",
    operation_id = "list_devices",
    params(("tenant" = String, Path), ("sn" = String, Path), Paging, DeviceFilter),
    responses((status = 200, body = Page<Device>), (status = 404, description = "unknown tenant or product", body = ErrorBody)))]
async fn list_devices(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, sn)): Path<(String, String)>,
    q: Result<Query<Paging>, axum::extract::rejection::QueryRejection>,
    f: Result<Query<DeviceFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page<Device>>, ApiError> {
    let page = query(q)?.req()?;
    let filter = query(f)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let devices = st
        .services
        .catalog
        .list_devices(t.id, &sn, &filter, page)
        .await?;
    Ok(Json(devices))
}

/// One device with the versions it last reported.
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/products/{sn}/devices/{device}", tag = "devices",
    operation_id = "get_device",
    params(("tenant" = String, Path), ("sn" = String, Path), ("device" = String, Path, description = "device serial number")),
    responses((status = 200, body = DeviceDetail), (status = 404, description = "unknown tenant, product or device", body = ErrorBody)))]
async fn get_device(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, sn, device)): Path<(String, String, String)>,
) -> Result<Json<DeviceDetail>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    let d = st.services.catalog.find_device(t.id, &sn, &device).await?;
    let modules = st.services.catalog.module_versions(d.id).await?;
    Ok(Json(DeviceDetail {
        device: d,
        modules: modules
            .into_iter()
            .map(|(module, identify, version)| ModuleVersion {
                module,
                identify,
                version,
            })
            .collect(),
    }))
}

/// A device's facts as operators write them: an omitted field (or `null`) keeps its value,
/// an empty string clears it; otherwise at most 128 characters, no control characters.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DeviceFacts {
    #[schema(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{0,128}$")]
    name: Option<String>,
    #[schema(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{0,128}$")]
    imei: Option<String>,
    #[schema(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{0,128}$")]
    mac: Option<String>,
    #[schema(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{0,128}$")]
    group: Option<String>,
}

impl DeviceFacts {
    fn into_patch(self) -> DevicePatch {
        DevicePatch {
            name: self.name,
            imei: self.imei,
            mac: self.mac,
            group: self.group,
        }
    }
}

/// Register a device (or update an existing one) with its name, IMEI, MAC and group; an
/// omitted field keeps its value, an empty string clears it.
#[utoipa::path(put, path = "/admin/api/v1/tenants/{tenant}/products/{sn}/devices/{device}", tag = "devices",
    operation_id = "put_device",
    params(("tenant" = String, Path), ("sn" = String, Path),
        ("device" = String, Path, description = "device serial number: 1-128 characters, no control characters",
            pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,128}$")),
    request_body(content = Option<DeviceFacts>, description = "optional: without it the device is only registered"),
    responses((status = 200, body = Device), (status = 404, description = "unknown tenant or product", body = ErrorBody)))]
async fn put_device(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, sn, device)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Device>, ApiError> {
    let patch = if body.is_empty() {
        DevicePatch::default()
    } else {
        body_json::<Option<DeviceFacts>>(&body)?
            .map(DeviceFacts::into_patch)
            .unwrap_or_default()
    };
    let t = st.services.auth.tenant(&tenant).await?;
    let d = st
        .services
        .catalog
        .update_device(t.id, &sn, &device, &patch)
        .await?;
    Ok(Json(d))
}
