//! `/admin/api/v1/tenants`: tenants and their products and devices.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Operator, body_json, query};
use crate::catalog::releases::PageReq;
use crate::catalog::{DeviceFilter, DevicePatch};
use crate::http::AppState;
use crate::http::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/api/v1/tenants", get(list).post(create))
        .route(
            "/admin/api/v1/tenants/{tenant}/products",
            get(list_products).post(create_product),
        )
        .route(
            "/admin/api/v1/tenants/{tenant}/products/{sn}",
            get(get_product),
        )
        .route(
            "/admin/api/v1/tenants/{tenant}/products/{sn}/devices",
            get(list_devices),
        )
        .route(
            "/admin/api/v1/tenants/{tenant}/products/{sn}/devices/{device}",
            get(get_device).put(put_device),
        )
}

async fn get_device(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, sn, device)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    let d = st.services.catalog.find_device(t.id, &sn, &device).await?;
    let modules = st.services.catalog.module_versions(d.id).await?;
    let mut v = json!(d);
    v["modules"] = json!(
        modules
            .into_iter()
            .map(|(module, identify, version)| json!({
                "module": module, "identify": identify, "version": version
            }))
            .collect::<Vec<_>>()
    );
    Ok(Json(v))
}

/// Register a device (or update an existing one) with its name, IMEI, MAC and group.
async fn put_device(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, sn, device)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let patch: DevicePatch = if body.is_empty() {
        DevicePatch::default()
    } else {
        body_json(&body)?
    };
    let t = st.services.auth.tenant(&tenant).await?;
    let d = st
        .services
        .catalog
        .update_device(t.id, &sn, &device, &patch)
        .await?;
    Ok(Json(json!(d)))
}

async fn list(_: Operator, State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "items": st.services.auth.list_tenants().await? }),
    ))
}

#[derive(Deserialize)]
struct NewTenant {
    name: String,
}

async fn create(
    _: Operator,
    State(st): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let t: NewTenant = body_json(&body)?;
    let tenant = st.services.auth.create_tenant(&t.name).await?;
    Ok((StatusCode::CREATED, Json(json!(tenant))))
}

async fn list_products(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    Ok(Json(
        json!({ "items": st.services.catalog.list_products(t.id).await? }),
    ))
}

#[derive(Deserialize)]
struct NewProduct {
    sn: String,
    name: Option<String>,
}

async fn create_product(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let p: NewProduct = body_json(&body)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let name = p.name.as_deref().unwrap_or(&p.sn);
    let product = st
        .services
        .catalog
        .create_product(t.id, &p.sn, name)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(product))))
}

async fn get_product(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, sn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    Ok(Json(json!(st.services.catalog.product(t.id, &sn).await?)))
}

async fn list_devices(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, sn)): Path<(String, String)>,
    q: Result<Query<PageReq>, axum::extract::rejection::QueryRejection>,
    f: Result<Query<DeviceFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let page = query(q)?;
    let filter = query(f)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let devices = st
        .services
        .catalog
        .list_devices(t.id, &sn, &filter, page)
        .await?;
    Ok(Json(json!(devices)))
}
