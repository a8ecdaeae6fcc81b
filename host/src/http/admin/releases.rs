//! `/admin/api/v1/tenants/{tenant}/releases`: firmware releases, from a blob uploaded to
//! `/admin/api/v1/blobs` (facts taken from the store) or an external URL registered with its
//! md5 and size. Invalidating or deleting a release cancels its unfinished campaigns.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Operator, body_json, query};
use crate::catalog::releases::{
    Module, NewRelease, PageReq, Release, ReleaseFilter, ReleasePatch, ReleaseStatus,
};
use crate::flows::PayloadRequest;
use crate::http::AppState;
use crate::http::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/api/v1/tenants/{tenant}/releases",
            get(list).post(create),
        )
        .route(
            "/admin/api/v1/tenants/{tenant}/releases/{id}",
            get(show).patch(update).delete(remove),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    product: String,
    module: Module,
    #[serde(default)]
    identify: i64,
    name: Option<String>,
    version: String,
    from_version: Option<String>,
    blob_sha256: Option<String>,
    url: Option<String>,
    md5: Option<String>,
    size: Option<u64>,
    #[serde(default = "test_status")]
    status: ReleaseStatus,
    #[serde(default)]
    description: String,
    #[serde(default)]
    customize: String,
    #[serde(default)]
    mac_range: Vec<String>,
}

fn test_status() -> ReleaseStatus {
    ReleaseStatus::Test
}

fn view(r: Release) -> Value {
    let mut v = json!(r);
    let url = match (&r.blob_sha256, &r.external_url) {
        (Some(sha), _) => Some(format!("/blobs/{sha}")),
        (None, Some(url)) => Some(url.clone()),
        _ => None,
    };
    v["download_path"] = json!(url);
    v
}

/// Exactly one of a stored blob or an external URL (which needs its md5 and size).
fn payload_of(
    blob: Option<String>,
    url: Option<String>,
    md5: Option<String>,
    size: Option<u64>,
) -> Result<PayloadRequest, ApiError> {
    match (blob, url) {
        (Some(sha256), None) => Ok(PayloadRequest::Blob { sha256, md5, size }),
        (None, Some(url)) => Ok(PayloadRequest::External {
            url,
            md5: md5.ok_or_else(|| ApiError::BadRequest("an external url needs md5".into()))?,
            size: size.ok_or_else(|| ApiError::BadRequest("an external url needs size".into()))?,
        }),
        _ => Err(ApiError::BadRequest(
            "give exactly one of blob_sha256 or url".into(),
        )),
    }
}

async fn create(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c: Create = body_json(&body)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let payload = st
        .services
        .payload(payload_of(c.blob_sha256, c.url, c.md5, c.size)?)
        .await?;
    let release = st
        .services
        .catalog
        .create_release(
            t.id,
            NewRelease {
                name: c
                    .name
                    .unwrap_or_else(|| format!("{} {}", c.product, c.version)),
                product_sn: c.product,
                module: c.module,
                identify: c.identify,
                version: c.version,
                from_version: c.from_version,
                payload,
                status: c.status,
                description: c.description,
                customize: c.customize,
                mac_range: c.mac_range,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(release))))
}

#[derive(Deserialize)]
struct ListQuery {
    product: Option<String>,
    module: Option<Module>,
    status: Option<ReleaseStatus>,
    page: Option<u32>,
    page_size: Option<u32>,
}

async fn list(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let filter = ReleaseFilter {
        product: q.product,
        module: q.module,
        status: q.status,
    };
    let defaults = PageReq::default();
    let page = PageReq {
        page: q.page.unwrap_or(defaults.page),
        page_size: q.page_size.unwrap_or(defaults.page_size),
        offset: None,
    };
    let found = st
        .services
        .catalog
        .list_releases(t.id, &filter, page)
        .await?;
    let mut v = json!(found);
    v["items"] = found.items.into_iter().map(view).collect();
    Ok(Json(v))
}

async fn show(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    Ok(Json(view(st.services.catalog.release(t.id, id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Update {
    status: Option<ReleaseStatus>,
    name: Option<String>,
    version: Option<String>,
    blob_sha256: Option<String>,
    url: Option<String>,
    md5: Option<String>,
    size: Option<u64>,
    description: Option<String>,
    customize: Option<String>,
    mac_range: Option<Vec<String>>,
}

/// Change a release's facts (a new file replaces md5 and size too) and/or its status;
/// invalidating it cancels its unfinished campaigns.
async fn update(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let u: Update = body_json(&body)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let payload = match (&u.blob_sha256, &u.url) {
        (None, None) if u.md5.is_some() || u.size.is_some() => {
            return Err(ApiError::BadRequest(
                "md5 and size come with a new blob_sha256 or url".into(),
            ));
        }
        (None, None) => None,
        _ => Some(
            st.services
                .payload(payload_of(u.blob_sha256, u.url, u.md5, u.size)?)
                .await?,
        ),
    };
    let patch = ReleasePatch {
        name: u.name,
        version: u.version,
        payload,
        description: u.description,
        customize: u.customize,
        mac_range: u.mac_range,
    };
    let has_changes = patch.name.is_some()
        || patch.version.is_some()
        || patch.payload.is_some()
        || patch.description.is_some()
        || patch.customize.is_some()
        || patch.mac_range.is_some();
    let mut r = if has_changes {
        st.services.update_release(t.id, id, patch).await?
    } else {
        st.services.catalog.release(t.id, id).await?
    };
    let mut cancelled = Vec::new();
    if let Some(status) = u.status {
        (r, cancelled) = st
            .services
            .set_release_status(t.id, id, status, &op.name)
            .await?;
    }
    let mut v = view(r);
    if u.status == Some(ReleaseStatus::Invalid) {
        v["cancelled_campaigns"] = json!(cancelled);
    }
    Ok(Json(v))
}

async fn remove(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    st.services.delete_release(t.id, id, &op.name).await?;
    Ok(StatusCode::NO_CONTENT)
}
