//! Firmware downloads and uploads over HTTP. `GET /blobs/{sha256}[/{name}]` serves a stored
//! file with `ETag` (its SHA-256), `Content-Length`, single-range `Range` requests (resume)
//! and `If-None-Match`; links may carry `exp` + `sig` (signed, expiring), which the operator
//! can make mandatory. `POST /admin/api/v1/blobs` streams an upload into the store, checking
//! the `md5`, `sha256` and `size` the uploader declares in the query.

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::admin::Operator;
use super::error::{ApiError, ErrorBody};
use super::{AppState, Listener};
use crate::blobs::{BlobError, Expect, valid_sha256};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/blobs/{sha256}", get(download))
        .route("/blobs/{sha256}/{name}", get(download_named))
}

/// The operator's upload, part of the admin API (and its OpenAPI document).
pub fn admin_router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(upload))
}

/// What an uploader declares about the file in the query; every given fact must match.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Declared {
    /// 32 hex characters.
    #[param(pattern = "^[0-9a-fA-F]{32}$")]
    md5: Option<String>,
    /// 64 hex characters.
    #[param(pattern = "^[0-9a-fA-F]{64}$")]
    sha256: Option<String>,
    /// In bytes (an `int64`); over the upload limit is refused (413) before anything is read.
    size: Option<u64>,
}

/// What an upload answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Uploaded {
    sha256: String,
    md5: String,
    size: u64,
    created_at: i64,
    /// Plain download URL on this host.
    url: String,
    /// Signed download URL, valid for the configured lifetime.
    signed_url: String,
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Mismatch(m) | BlobError::Invalid(m) | BlobError::Interrupted(m) => {
                ApiError::BadRequest(m)
            }
            BlobError::TooLarge(_) => ApiError::PayloadTooLarge(e.to_string()),
            BlobError::NotFound(_) => ApiError::NotFound(e.to_string()),
            BlobError::BadSignature | BlobError::Expired => ApiError::Forbidden(e.to_string()),
            BlobError::Io(e) => ApiError::Internal(e.to_string()),
            BlobError::Store(e) => ApiError::Internal(e.to_string()),
            BlobError::Storage(e) => ApiError::Internal(e.to_string()),
            BlobError::Secret(e) => ApiError::Internal(e.to_string()),
        }
    }
}

/// What a `Range` header asks of a file.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranged {
    /// Serve the whole file (no header, or a form not served partially, e.g. several ranges).
    Whole,
    /// Serve bytes `start..=end`.
    Part(u64, u64),
    /// Nothing of the file matches (416).
    Unsatisfiable,
}

/// Resolve a single-range `Range` header against a file of `size` bytes.
pub fn parse_range(value: Option<&str>, size: u64) -> Ranged {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let resolve = || -> Option<(u64, u64)> {
        let (first, last) = spec.split_once('-')?;
        let (first, last) = (first.trim(), last.trim());
        if first.is_empty() {
            let n: u64 = last.parse().ok()?;
            (n > 0 && size > 0).then(|| (size.saturating_sub(n), size - 1))
        } else {
            let start: u64 = first.parse().ok()?;
            let end = if last.is_empty() {
                size.saturating_sub(1)
            } else {
                last.parse::<u64>().ok()?.min(size.saturating_sub(1))
            };
            (start < size && end >= start).then_some((start, end))
        }
    };
    match resolve() {
        Some((start, end)) => Ranged::Part(start, end),
        None => Ranged::Unsatisfiable,
    }
}

#[derive(Deserialize)]
struct Signed {
    exp: Option<i64>,
    sig: Option<String>,
}

async fn download_named(
    state: State<AppState>,
    Path((sha256, _name)): Path<(String, String)>,
    q: Query<Signed>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    download(state, Path(sha256), q, headers).await
}

async fn download(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    Query(q): Query<Signed>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !valid_sha256(&sha256) {
        return Err(ApiError::NotFound(format!("no blob {sha256}")));
    }
    let blobs = &state.services.blobs;
    match (q.exp, q.sig.as_deref()) {
        (Some(exp), Some(sig)) => blobs.verify(&sha256, exp, sig)?,
        (None, None) if !state.config.blobs.require_signed_urls => {}
        _ => return Err(BlobError::BadSignature.into()),
    }
    serve(&state, &sha256, &headers).await
}

/// Serve a stored blob (its access already checked) with `ETag`, `If-None-Match`, `If-Range`
/// and single-range `Range` requests; its validator is its quoted SHA-256.
pub async fn serve(
    state: &AppState,
    sha256: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let info = state.services.blobs.stat(sha256).await?;
    let etag = format!("\"{}\"", info.sha256);
    serve_as(state, &info, &etag, headers).await
}

/// [`serve`] a blob already looked up, with `etag` as its validator (OSS objects answer
/// with their MD5, which is what OSS SDKs send back in `If-None-Match` and `If-Range`).
pub async fn serve_as(
    state: &AppState,
    info: &crate::blobs::BlobInfo,
    etag: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let sha256 = info.sha256.as_str();
    let blobs = &state.services.blobs;
    let mut resp_headers = HeaderMap::new();
    resp_headers.insert(
        header::ETAG,
        HeaderValue::from_str(etag).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    resp_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    resp_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    resp_headers.insert(
        "content-md5-hex",
        HeaderValue::from_str(&info.md5).expect("hex"),
    );
    // Uploaded bytes may be a page (OSS objects keep the uploader's content type): opened in
    // a browser, it runs in a sandbox with no origin, so it cannot act on this host's
    // dashboard with the operator's cookie.
    resp_headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    resp_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if header_str(header::IF_NONE_MATCH).is_some_and(|v| {
        v.split(',').any(|t| {
            // If-None-Match compares weakly: `W/"<sha>"` names the same content.
            let t = t.trim();
            t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
        })
    }) {
        return Ok((StatusCode::NOT_MODIFIED, resp_headers).into_response());
    }
    // A resume against a different version of the file must get the whole new file.
    let range_header = match header_str(header::IF_RANGE) {
        Some(tag) if tag.trim() != etag => None,
        _ => header_str(header::RANGE),
    };
    let unreadable =
        |e: BlobError| ApiError::Internal(format!("blob {sha256} is recorded but unreadable: {e}"));
    match parse_range(range_header, info.size) {
        Ranged::Whole => {
            let bytes = blobs.read(sha256, None).await.map_err(unreadable)?;
            resp_headers.insert(header::CONTENT_LENGTH, info.size.into());
            Ok((
                StatusCode::OK,
                resp_headers,
                counted(bytes, &state.services.metrics),
            )
                .into_response())
        }
        Ranged::Part(start, end) => {
            let bytes = blobs
                .read(sha256, Some((start, end)))
                .await
                .map_err(unreadable)?;
            let len = end - start + 1;
            resp_headers.insert(header::CONTENT_LENGTH, len.into());
            resp_headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {start}-{end}/{}", info.size))
                    .expect("ascii"),
            );
            let body = counted(bytes, &state.services.metrics);
            Ok((StatusCode::PARTIAL_CONTENT, resp_headers, body).into_response())
        }
        Ranged::Unsatisfiable => {
            resp_headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{}", info.size)).expect("ascii"),
            );
            Ok((StatusCode::RANGE_NOT_SATISFIABLE, resp_headers).into_response())
        }
    }
}

/// A download body that counts the bytes as they leave (a client that hangs up early is
/// counted for what it got).
fn counted<S>(stream: S, metrics: &crate::metrics::Metrics) -> Body
where
    S: futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
{
    let metrics = metrics.clone();
    Body::from_stream(futures::StreamExt::inspect(stream, move |chunk| {
        if let Ok(c) = chunk {
            metrics.blob_bytes_served(c.len() as u64);
        }
    }))
}

/// Stream a file into the content-addressed store (never whole in memory); md5 and sha256
/// are computed on the way in, and a declared `md5`, `sha256` or `size` that does not match
/// keeps nothing.
#[utoipa::path(
    post,
    path = "/admin/api/v1/blobs",
    tag = "blobs",
    operation_id = "upload_blob",
    params(Declared),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, body = Uploaded),
        (status = 400, description = "declared facts that are malformed or do not match the file", body = ErrorBody),
        (status = 413, description = "the file (or its declared size) is over the upload limit", body = ErrorBody),
        (status = 429, description = "too many uploads in flight (this key's or the host's); retry after `Retry-After` seconds", body = ErrorBody),
    )
)]
async fn upload(
    Operator(op): Operator,
    State(state): State<AppState>,
    Extension(listener): Extension<Listener>,
    Query(declared): Query<Declared>,
    req: Request,
) -> Result<impl IntoResponse, ApiError> {
    // Held until the upload ends, whichever way; refused before any of the body is read.
    let _slot = state
        .upload_slots
        .take(&format!("operator:{}", op.key_id))?;
    // The document types `size` as an `int64`: beyond it is malformed, not merely too large.
    if declared.size.is_some_and(|s| s > i64::MAX as u64) {
        return Err(ApiError::BadRequest(format!(
            "size must be at most {}",
            i64::MAX
        )));
    }
    let expect = Expect {
        md5: declared.md5,
        sha256: declared.sha256,
        size: declared.size,
    };
    let max = state.config.blobs.max_upload_mib << 20;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(BlobError::TooLarge(max).into());
    }
    let host_url = super::host_url(&state.config, listener, req.headers(), req.uri());
    let stream = req.into_body().into_data_stream();
    let info = state.services.blobs.put(stream, &expect, max).await?;
    let ttl = state.config.blobs.url_ttl_secs;
    Ok((
        StatusCode::CREATED,
        Json(Uploaded {
            url: format!("{host_url}/blobs/{}", info.sha256),
            signed_url: state
                .services
                .blobs
                .signed_url(&host_url, &info.sha256, ttl),
            sha256: info.sha256,
            md5: info.md5,
            size: info.size,
            created_at: info.created_at,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::{Ranged, parse_range};

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Ranged::Whole);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), Ranged::Part(0, 3));
        assert_eq!(parse_range(Some("bytes=4-"), 10), Ranged::Part(4, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ranged::Part(7, 9));
        assert_eq!(parse_range(Some("bytes=5-100"), 10), Ranged::Part(5, 9));
        assert_eq!(parse_range(Some("bytes=-30"), 10), Ranged::Part(0, 9));
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Ranged::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), Ranged::Whole);
        assert_eq!(parse_range(Some("bytes=10-"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=x-2"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Ranged::Unsatisfiable);
    }
}
