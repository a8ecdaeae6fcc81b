//! `/admin/api/v1/tenants/{tenant}/releases`: firmware releases, from a blob uploaded to
//! `/admin/api/v1/blobs` (facts taken from the store) or an external URL registered with its
//! md5 and size. Invalidating or deleting a release cancels its unfinished campaigns.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Operator, Paging, body_json, query};
use crate::catalog::releases::{
    Module, NewRelease, Page, Release, ReleaseFilter, ReleasePatch, ReleaseStatus,
};
use crate::flows::PayloadRequest;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_releases, create_release))
        .routes(routes!(get_release, update_release, delete_release))
}

/// A new release: exactly one of `blob_sha256` (an uploaded file; declared md5/size are
/// checked against it) or `url` (an external file, with its md5 and size).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateRelease {
    /// The product's serial number.
    product: String,
    /// [default: `mcu`, as `ota-host release create`]
    #[serde(default = "mcu")]
    module: Module,
    /// Which sub-device, for module `sub`.
    #[serde(default)]
    #[schema(minimum = 0)]
    identify: i64,
    /// Display and file name [default: the last segment of `url`, else product and
    /// version].
    name: Option<String>,
    /// 1-64 characters, not blank.
    #[schema(
        max_length = 64,
        pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    version: String,
    /// For a delta: the version it applies to, older than `version`.
    from_version: Option<String>,
    /// An uploaded file's SHA-256.
    blob_sha256: Option<String>,
    /// An external file, `http://` or `https://`; needs `md5` and `size`.
    #[schema(pattern = "^https?://")]
    url: Option<String>,
    /// 32 hex characters.
    #[schema(pattern = "^[0-9a-fA-F]{32}$")]
    md5: Option<String>,
    /// In bytes (an `int64`).
    size: Option<u64>,
    /// [default: `test`]
    #[serde(default = "test_status")]
    status: ReleaseStatus,
    #[serde(default)]
    description: String,
    #[serde(default)]
    customize: String,
    /// MAC ranges the release is limited to; no entry blank.
    #[serde(default)]
    #[schema(inline, value_type = Vec<MacRange>)]
    mac_range: Vec<String>,
    /// The CPU architecture the file is built for (IoTStack: `x86_64`, `arm7`, `ARMv8_64`);
    /// 1-32 of `[A-Za-z0-9_.-]`. Absent: for every architecture.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,32}$")]
    arch: Option<String>,
}

/// One MAC range: not blank.
#[derive(utoipa::ToSchema)]
#[schema(
    pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
)]
#[allow(dead_code)] // only describes a string in the document
struct MacRange(String);

fn mcu() -> Module {
    Module::Mcu
}

fn test_status() -> ReleaseStatus {
    ReleaseStatus::Test
}

/// A release as operators see it: where its file is downloaded from, and (after an
/// invalidation) which campaigns that cancelled.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ReleaseView {
    #[serde(flatten)]
    release: Release,
    /// `/blobs/<sha256>` on this host, or the external URL.
    download_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancelled_campaigns: Option<Vec<i64>>,
}

fn view(r: Release) -> ReleaseView {
    let url = match (&r.blob_sha256, &r.external_url) {
        (Some(sha), _) => Some(format!("/blobs/{sha}")),
        (None, Some(url)) => Some(url.clone()),
        _ => None,
    };
    ReleaseView {
        release: r,
        download_path: url,
        cancelled_campaigns: None,
    }
}

/// Exactly one of a stored blob or an external URL (which needs its md5 and size).
fn payload_of(
    blob: Option<String>,
    url: Option<String>,
    md5: Option<String>,
    size: Option<u64>,
) -> Result<PayloadRequest, ApiError> {
    // Sizes are stored as BIGINT.
    if size.is_some_and(|s| s > i64::MAX as u64) {
        return Err(ApiError::BadRequest(format!(
            "size must be at most {}",
            i64::MAX
        )));
    }
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

/// Create a release of a product's module.
#[utoipa::path(post, path = "/admin/api/v1/tenants/{tenant}/releases", tag = "releases",
    operation_id = "create_release", params(("tenant" = String, Path)), request_body = CreateRelease,
    responses((status = 201, body = ReleaseView),
        (status = 400, description = "not exactly one of blob_sha256 or url, declared facts that do not match the blob, \
            or a from_version not older than version", body = ErrorBody),
        (status = 404, description = "unknown tenant, product or blob", body = ErrorBody),
        (status = 409, description = "that version exists", body = ErrorBody)))]
async fn create_release(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ReleaseView>), ApiError> {
    let c: CreateRelease = body_json(&body)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let name = c.name.clone().unwrap_or_else(|| {
        crate::catalog::releases::default_name(&c.product, &c.version, c.url.as_deref())
    });
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
                name,
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
                arch: c.arch,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(release))))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Product serial number.
    product: Option<String>,
    module: Option<Module>,
    status: Option<ReleaseStatus>,
}

/// Live releases, newest first.
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/releases", tag = "releases",
    operation_id = "list_releases", params(("tenant" = String, Path), Paging, ListQuery),
    responses((status = 200, body = Page<ReleaseView>), (status = 404, description = "unknown tenant", body = ErrorBody)))]
async fn list_releases(
    _: Operator,
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    p: Result<Query<Paging>, QueryRejection>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<ReleaseView>>, ApiError> {
    let page = query(p)?.req()?;
    let q = query(q)?;
    let t = st.services.auth.tenant(&tenant).await?;
    let filter = ReleaseFilter {
        product: q.product,
        module: q.module,
        status: q.status,
    };
    let found = st
        .services
        .catalog
        .list_releases(t.id, &filter, page)
        .await?;
    Ok(Json(Page {
        items: found.items.into_iter().map(view).collect(),
        page: found.page,
        page_size: found.page_size,
        total: found.total,
    }))
}

/// One live release.
#[utoipa::path(get, path = "/admin/api/v1/tenants/{tenant}/releases/{id}", tag = "releases",
    operation_id = "get_release", params(("tenant" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = ReleaseView), (status = 404, description = "unknown tenant or release", body = ErrorBody)))]
async fn get_release(
    _: Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<Json<ReleaseView>, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    Ok(Json(view(st.services.catalog.release(t.id, id).await?)))
}

/// Changes to a release; omitted fields keep their value. `md5` and `size` come with a new
/// `blob_sha256` or `url`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateRelease {
    status: Option<ReleaseStatus>,
    name: Option<String>,
    /// 1-64 characters, not blank.
    #[schema(
        max_length = 64,
        pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    version: Option<String>,
    blob_sha256: Option<String>,
    /// An external file, `http://` or `https://`; needs `md5` and `size`.
    #[schema(pattern = "^https?://")]
    url: Option<String>,
    /// 32 hex characters.
    #[schema(pattern = "^[0-9a-fA-F]{32}$")]
    md5: Option<String>,
    /// In bytes (an `int64`).
    size: Option<u64>,
    description: Option<String>,
    customize: Option<String>,
    #[schema(inline, value_type = Option<Vec<MacRange>>)]
    mac_range: Option<Vec<String>>,
}

/// Change a release's facts (a new file replaces md5 and size too) and/or its status;
/// invalidating it cancels its unfinished campaigns.
#[utoipa::path(patch, path = "/admin/api/v1/tenants/{tenant}/releases/{id}", tag = "releases",
    operation_id = "update_release", params(("tenant" = String, Path), ("id" = i64, Path)),
    request_body = UpdateRelease,
    responses((status = 200, body = ReleaseView),
        (status = 400, description = "md5 or size without a new file, declared facts that do not match the blob, \
            or a version its campaigns cannot move to", body = ErrorBody),
        (status = 404, description = "unknown tenant, release or blob", body = ErrorBody),
        (status = 409, description = "that version exists, or the release changed meanwhile", body = ErrorBody)))]
async fn update_release(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
    body: axum::body::Bytes,
) -> Result<Json<ReleaseView>, ApiError> {
    let u: UpdateRelease = body_json(&body)?;
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
        v.cancelled_campaigns = Some(cancelled);
    }
    Ok(Json(v))
}

/// Delete a release (its version may be released again); its unfinished campaigns are
/// cancelled.
#[utoipa::path(delete, path = "/admin/api/v1/tenants/{tenant}/releases/{id}", tag = "releases",
    operation_id = "delete_release", params(("tenant" = String, Path), ("id" = i64, Path)),
    responses((status = 204, description = "deleted"), (status = 404, description = "unknown tenant or release", body = ErrorBody)))]
async fn delete_release(
    Operator(op): Operator,
    State(st): State<AppState>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let t = st.services.auth.tenant(&tenant).await?;
    st.services.delete_release(t.id, id, &op.name).await?;
    Ok(StatusCode::NO_CONTENT)
}
