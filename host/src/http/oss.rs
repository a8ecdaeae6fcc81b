//! Aliyun OSS's PostObject on the wire, so uploaders written for OSS (browser forms, the
//! SDKs' post-policy helpers) store firmware here unchanged. `POST /oss/{bucket}` takes a
//! `multipart/form-data` form (`key`, `OSSAccessKeyId`, `policy`, `Signature`, optional
//! `success_action_status`, `callback`, `x:*` and `Content-Type`, then `file`), checks it
//! with `uploads` before storing a byte, streams the file into the blob store, and answers
//! as OSS does; `GET /oss/{bucket}/{key}` serves the object with `Range`. Refusals are OSS's
//! XML `<Error>` documents. A bucket is a tenant. With `blobs.oss-listen` the same endpoint
//! is also served path-style at the root of a listener of its own (`/{bucket}/{key}`), the
//! URLs OSS SDKs such as `oss2` build from an IP endpoint.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine as _;

use super::{AppState, Listener};
use crate::auth::AuthError;
use crate::blobs::{BlobError, Expect};
use crate::runtime::Preauthorized;
use crate::runtime::bindings;
use crate::uploads::{Callback, UploadError, valid_key};

/// Form fields other than `file`: how many, and how long each may be.
const MAX_FIELDS: usize = 64;
const MAX_FIELD_BYTES: usize = 64 << 10;

pub fn router(config: &crate::config::Config) -> Router<AppState> {
    Router::new()
        .route("/oss/{bucket}", post(post_object))
        .route("/oss/{bucket}/", post(post_object))
        .route("/oss/{bucket}/{*key}", get(get_object))
        // The policy and the operator's upload limit bound the file, not axum's default.
        .layer(DefaultBodyLimit::disable())
        // Browser uploaders post from the console's origin after a preflight.
        .layer(super::cors::layer(&config.blobs.oss_cors))
        .layer(Extension(PathStyle(false)))
}

/// The OSS listener's whole router (`blobs.oss-listen`): buckets at its root, nothing else.
/// Callbacks are delivered as on the main listener, where the plugins that sign forms live.
pub fn path_style_router(state: AppState) -> axum::Router {
    Router::new()
        .route("/{bucket}", post(post_object))
        .route("/{bucket}/", post(post_object))
        .route("/{bucket}/{*key}", get(get_object))
        .fallback(|| async {
            oss(
                StatusCode::NOT_FOUND,
                "NoSuchBucket",
                "name a bucket and an object: /<bucket>/<key>",
            )
            .render(&request_id(), "")
        })
        .layer(DefaultBodyLimit::disable())
        .layer(super::cors::layer(&state.config.blobs.oss_cors))
        .layer(Extension(PathStyle(true)))
        .layer(Extension(Listener(None)))
        .with_state(state)
}

/// Whether a request came to the OSS listener (buckets at the root) rather than `/oss`.
#[derive(Clone, Copy)]
struct PathStyle(bool);

/// The main host's base URL as this request sees it (`None` on the OSS listener, which
/// cannot know the name clients give the main host: a callback is then taken at its own
/// origin, which the signed policy pinned) and the bucket's URL.
fn urls(
    state: &AppState,
    style: PathStyle,
    listener: Listener,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    bucket: &str,
) -> (Option<String>, String) {
    match (style.0, &state.oss_url) {
        (true, Some(oss)) => (None, format!("{oss}/{bucket}")),
        _ => {
            let host = super::host_url(&state.config, listener, headers, uri);
            let bucket_url = format!("{host}/oss/{bucket}");
            (Some(host), bucket_url)
        }
    }
}

/// `scheme://authority` of a URL (empty when it has none).
fn origin_of(url: &str) -> &str {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            &url[..scheme.len() + 3 + authority.len()]
        }
        None => "",
    }
}

/// An OSS error document.
#[derive(Debug)]
struct OssError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn oss(status: StatusCode, code: &'static str, message: impl Into<String>) -> OssError {
    OssError {
        status,
        code,
        message: message.into(),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn xml(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        r.headers_mut().insert("x-oss-request-id", v);
    }
    r
}

impl OssError {
    fn render(self, request_id: &str, host: &str) -> Response {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{}</Code>\n  <Message>{}</Message>\n  <RequestId>{}</RequestId>\n  <HostId>{}</HostId>\n</Error>\n",
            self.code,
            xml_escape(&self.message),
            request_id,
            xml_escape(host)
        );
        xml(self.status, body, request_id)
    }
}

impl From<UploadError> for OssError {
    fn from(e: UploadError) -> Self {
        let m = e.to_string();
        match e {
            UploadError::UnknownAccessId => oss(StatusCode::FORBIDDEN, "InvalidAccessKeyId", m),
            UploadError::BadSignature => oss(StatusCode::FORBIDDEN, "SignatureDoesNotMatch", m),
            UploadError::Expired | UploadError::Condition(_) => {
                oss(StatusCode::FORBIDDEN, "AccessDenied", m)
            }
            UploadError::BadPolicy(_) => oss(StatusCode::BAD_REQUEST, "InvalidPolicyDocument", m),
            UploadError::Invalid(_) => oss(StatusCode::BAD_REQUEST, "InvalidArgument", m),
            e @ (UploadError::Storage(_) | UploadError::Secret(_)) => internal(e),
        }
    }
}

impl From<BlobError> for OssError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::TooLarge(_) => oss(
                StatusCode::BAD_REQUEST,
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size.",
            ),
            BlobError::Interrupted(m) => oss(
                StatusCode::BAD_REQUEST,
                "MalformedPOSTRequest",
                format!("The body of your POST request is not well-formed: {m}"),
            ),
            e @ (BlobError::Io(_)
            | BlobError::Store(_)
            | BlobError::Storage(_)
            | BlobError::Secret(_)) => internal(e),
            e => oss(StatusCode::BAD_REQUEST, "InvalidArgument", e.to_string()),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> OssError {
    tracing::error!(error = %e, "upload failed");
    oss(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "We encountered an internal error. Please try again.",
    )
}

fn malformed(e: impl std::fmt::Display) -> OssError {
    oss(
        StatusCode::BAD_REQUEST,
        "MalformedPOSTRequest",
        format!("The body of your POST request is not well-formed multipart/form-data: {e}"),
    )
}

/// Percent-decode a URL path segment (object keys may arrive encoded).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn request_id() -> String {
    format!("{:024X}", rand::random::<u128>() >> 32)
}

async fn tenant_of(state: &AppState, bucket: &str) -> Result<crate::auth::Tenant, OssError> {
    match state.services.auth.tenant(bucket).await {
        Ok(t) => Ok(t),
        Err(AuthError::NotFound(_)) => Err(oss(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist.",
        )),
        Err(e) => Err(internal(e)),
    }
}

async fn post_object(
    State(state): State<AppState>,
    Extension(listener): Extension<Listener>,
    Extension(style): Extension<PathStyle>,
    Path(bucket): Path<String>,
    req: Request,
) -> Response {
    let id = request_id();
    let (host, bucket_url) = urls(&state, style, listener, req.headers(), req.uri(), &bucket);
    let shown = host.clone().unwrap_or_else(|| bucket_url.clone());
    match upload(
        &state,
        listener,
        (host.as_deref(), &bucket_url),
        &bucket,
        req,
        &id,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => e.render(&id, &shown),
    }
}

/// What was stored, for the answer and the callback.
struct Stored {
    key: String,
    sha256: String,
    md5: String,
    size: u64,
    content_type: String,
    crc64: Option<u64>,
}

/// OSS's `ETag` for an object uploaded in one piece: its MD5, upper-case, quoted.
fn oss_etag(md5: &str) -> String {
    format!("\"{}\"", md5.to_ascii_uppercase())
}

/// The headers OSS sends about an object: `ETag` and, when known, its CRC-64.
fn object_headers(r: &mut Response, md5: &str, crc64: Option<u64>) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&oss_etag(md5)) {
        h.insert(header::ETAG, v);
    }
    if let Some(c) = crc64 {
        h.insert("x-oss-hash-crc64ecma", HeaderValue::from(c));
    }
}

async fn read_text(
    field: &mut axum::extract::multipart::Field<'_>,
    name: &str,
) -> Result<String, OssError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
        buf.extend_from_slice(&chunk);
        if buf.len() > MAX_FIELD_BYTES {
            return Err(oss(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                format!("form field {name} is longer than {MAX_FIELD_BYTES} bytes"),
            ));
        }
    }
    String::from_utf8(buf).map_err(|_| malformed(format!("form field {name} is not UTF-8")))
}

fn required<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, OssError> {
    fields.get(name).map(String::as_str).ok_or_else(|| {
        oss(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            format!("the form has no {name} field"),
        )
    })
}

async fn upload(
    state: &AppState,
    listener: Listener,
    (host_url, bucket_url): (Option<&str>, &str),
    bucket: &str,
    req: Request,
    id: &str,
) -> Result<Response, OssError> {
    let uploads = &state.services.uploads;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // A form is the file plus bounded fields: refuse an obviously oversized one unread.
    let slack = (MAX_FIELDS * MAX_FIELD_BYTES) as u64;
    if declared.is_some_and(|n| n > uploads.max_bytes().saturating_add(slack)) {
        return Err(BlobError::TooLarge(uploads.max_bytes()).into());
    }
    let tenant = tenant_of(state, bucket).await?;
    let mut form = Multipart::from_request(req, state)
        .await
        .map_err(malformed)?;

    // Field names are case-insensitive in OSS, values are not.
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut stored = None;
    let mut callback = None;
    let mut parts = 0usize;
    while let Some(mut field) = form.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_ascii_lowercase();
        if name != "file" {
            // Every part counts, repeated names too: the form is read before it is checked.
            parts += 1;
            if parts > MAX_FIELDS {
                return Err(oss(
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    format!("a form has at most {MAX_FIELDS} fields"),
                ));
            }
            let value = read_text(&mut field, &name).await?;
            fields.insert(name, value);
            continue;
        }
        // `file` comes last; OSS ignores whatever follows it.
        let policy = uploads
            .authorize(
                tenant.id,
                required(&fields, "ossaccesskeyid")?,
                required(&fields, "policy")?,
                required(&fields, "signature")?,
            )
            .await?;
        let file_name = field.file_name().map(str::to_string);
        let part_type = field.content_type().map(str::to_string);
        let mut key = required(&fields, "key")?.to_string();
        if let Some(f) = &file_name {
            key = key.replace("${filename}", f);
        }
        if !valid_key(&key) {
            return Err(oss(
                StatusCode::BAD_REQUEST,
                "InvalidObjectName",
                format!("{key:?} is not a valid object name"),
            ));
        }
        fields.insert("key".into(), key.clone());
        fields.insert("bucket".into(), bucket.to_string());
        // An empty callback field is no callback (what the policy's `["in", …, ""]` allows).
        if fields.get("callback").is_some_and(|c| c.trim().is_empty()) {
            fields.remove("callback");
        }
        policy.check_fields(&fields)?;
        if let Some(cb) = fields.get("callback") {
            // Only a callback the signer chose is delivered: one an uploader adds to a form
            // signed without one could reach any route with this tenant's authority.
            if !policy.pins("callback", cb) {
                return Err(oss(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "Invalid according to Policy: the callback is not part of the signed policy",
                ));
            }
            callback = Some(Callback::decode(cb)?);
        }
        let max = policy
            .max_size()
            .unwrap_or(u64::MAX)
            .min(uploads.max_bytes());
        // Bounded per tenant and over the host, before the file is read (OSS clients retry
        // a 503).
        let _slot = state
            .upload_slots
            .take(&format!("tenant:{}", tenant.id))
            .map_err(|e| {
                oss(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    e.to_string(),
                )
            })?;
        let info = state
            .services
            .blobs
            .put(Box::pin(field), &Expect::default(), max)
            .await?;
        policy.check_size(info.size)?;
        let content_type = fields
            .get("content-type")
            .cloned()
            .or(part_type)
            .unwrap_or_else(|| "application/octet-stream".into());
        uploads
            .put_object(tenant.id, &key, &info.sha256, &content_type)
            .await?;
        stored = Some(Stored {
            key,
            sha256: info.sha256,
            md5: info.md5,
            size: info.size,
            content_type,
            crc64: info.crc64,
        });
        break;
    }
    let Some(stored) = stored else {
        return Err(oss(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "the form has no file field",
        ));
    };
    tracing::info!(bucket, key = %stored.key, size = stored.size, sha256 = %stored.sha256, "object stored");
    let etag = oss_etag(&stored.md5);

    if let Some(cb) = callback {
        // A callback is delivered inside this server, never fetched: on the OSS listener it
        // is taken at the origin the (pinned) callback URL names.
        let host_url = host_url.unwrap_or_else(|| origin_of(&cb.url));
        let answer = deliver_callback(
            state, listener, host_url, &tenant, bucket, &stored, &fields, &cb, id,
        )
        .await;
        let mut r = match answer {
            Ok(r) => r,
            Err(m) => oss(
                StatusCode::NON_AUTHORITATIVE_INFORMATION,
                "CallbackFailed",
                m,
            )
            .render(id, host_url),
        };
        object_headers(&mut r, &stored.md5, stored.crc64);
        return Ok(r);
    }

    // A browser form that names where to go next: 303 there, with what OSS appends.
    if let Some(to) = fields
        .get("success_action_redirect")
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
    {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("bucket", bucket)
            .append_pair("key", &stored.key)
            .append_pair("etag", &etag)
            .finish();
        let sep = if to.contains('?') { '&' } else { '?' };
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::SEE_OTHER;
        if let Ok(v) = HeaderValue::from_str(&format!("{to}{sep}{query}")) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        if let Ok(v) = HeaderValue::from_str(id) {
            r.headers_mut().insert("x-oss-request-id", v);
        }
        object_headers(&mut r, &stored.md5, stored.crc64);
        return Ok(r);
    }

    let status = match fields.get("success_action_status").map(String::as_str) {
        Some("200") => StatusCode::OK,
        Some("201") => StatusCode::CREATED,
        _ => StatusCode::NO_CONTENT,
    };
    let mut r = if status == StatusCode::CREATED {
        let location = format!("{bucket_url}/{}", stored.key);
        xml(
            status,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse>\n  <Bucket>{}</Bucket>\n  <Location>{}</Location>\n  <Key>{}</Key>\n  <ETag>{}</ETag>\n</PostResponse>\n",
                xml_escape(bucket),
                xml_escape(&location),
                xml_escape(&stored.key),
                xml_escape(&etag)
            ),
            id,
        )
    } else {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = status;
        if let Ok(v) = HeaderValue::from_str(id) {
            r.headers_mut().insert("x-oss-request-id", v);
        }
        r
    };
    object_headers(&mut r, &stored.md5, stored.crc64);
    Ok(r)
}

/// Fill a callback body template, escaping each value for the body's type.
fn fill(template: &str, body_type: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let json = body_type.to_ascii_lowercase().contains("json");
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        match value(name) {
            Some(v) if json => {
                let quoted = serde_json::to_string(&v).expect("a string serializes");
                out.push_str(&quoted[1..quoted.len() - 1]);
            }
            Some(v) => out.extend(form_urlencoded::byte_serialize(v.as_bytes())),
            None => {}
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// POST the callback to the plugin route it names, as the uploading tenant, and hand its
/// answer to the uploader. Only routes of this host, of the plugin that signed the form, are
/// called: the host never makes outbound requests on an uploader's behalf. An error is the
/// `CallbackFailed` message.
#[allow(clippy::too_many_arguments)]
async fn deliver_callback(
    state: &AppState,
    listener: Listener,
    host_url: &str,
    tenant: &crate::auth::Tenant,
    bucket: &str,
    stored: &Stored,
    fields: &BTreeMap<String, String>,
    cb: &Callback,
    id: &str,
) -> Result<Response, String> {
    let Some(rest) = cb.url.strip_prefix(host_url) else {
        return Err(format!("callback URL {} is not on this host", cb.url));
    };
    // Route by the signed URL's host name, never by the uploader's `Host` header.
    let authority = cb
        .url
        .split_once("://")
        .map_or("", |(_, r)| r.split('/').next().unwrap_or_default());
    let host_name = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = if path.is_empty() { "/" } else { path };
    let content_md5 = base64::engine::general_purpose::STANDARD
        .encode(hex::decode(&stored.md5).unwrap_or_default());
    let body = fill(&cb.body, &cb.body_type, |name| match name {
        "bucket" => Some(bucket.to_string()),
        "object" => Some(stored.key.clone()),
        "etag" => Some(stored.md5.to_ascii_uppercase()),
        "size" => Some(stored.size.to_string()),
        "mimeType" => Some(stored.content_type.clone()),
        "contentMd5" => Some(content_md5.clone()),
        custom if custom.starts_with("x:") => fields.get(&custom.to_ascii_lowercase()).cloned(),
        _ => None,
    });
    let Some((plugin, rel_path)) = state
        .registry
        .route(listener.0, Some(host_name), "POST", path)
    else {
        return Err(format!("no route on this host for POST {path}"));
    };
    if cb.plugin.as_deref() != Some(plugin.name.as_str()) {
        return Err(format!(
            "POST {path} is not a route of the plugin that signed the form"
        ));
    }
    let wit = bindings::Request {
        method: "POST".into(),
        path: rel_path,
        query: query.to_string(),
        headers: vec![
            ("content-type".into(), cb.body_type.clone()),
            ("x-oss-request-id".into(), id.to_string()),
        ],
        body: body.into_bytes(),
        base_url: format!("{host_url}{}", plugin.mount.prefix),
        host_url: host_url.to_string(),
        request_id: id.to_string(),
    };
    let principal = Preauthorized {
        tenant_id: tenant.id,
        tenant: tenant.name.clone(),
        subject: format!("oss-upload:{}", stored.key),
    };
    let site = crate::runtime::CallSite {
        host_url: host_url.to_string(),
        oss_url: state.oss_url.as_deref().map(str::to_string),
        client: None,
        preauthorized: Some(principal),
    };
    let answer = state
        .runtime
        .handle(&plugin, &wit, &site)
        .await
        .map_err(|e| format!("the callback failed: {e}"))?;
    if !(200..300).contains(&answer.status) {
        return Err(format!("the callback answered HTTP {}", answer.status));
    }
    let content_type = answer
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "application/json".into());
    let mut r = Response::new(Body::from(answer.body));
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(id) {
        r.headers_mut().insert("x-oss-request-id", v);
    }
    Ok(r)
}

async fn get_object(
    State(state): State<AppState>,
    Extension(listener): Extension<Listener>,
    Extension(style): Extension<PathStyle>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let id = request_id();
    let (host, bucket_url) = urls(&state, style, listener, &headers, &uri, &bucket);
    let host = host.unwrap_or(bucket_url);
    let found = async {
        if state.config.blobs.require_signed_urls {
            return Err(oss(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "this host serves files through signed download links only",
            ));
        }
        let tenant = tenant_of(&state, &bucket).await?;
        let object = state
            .services
            .uploads
            .object(tenant.id, &key)
            .await?
            .ok_or_else(|| {
                oss(
                    StatusCode::NOT_FOUND,
                    "NoSuchKey",
                    "The specified key does not exist.",
                )
            })?;
        Ok(object)
    }
    .await;
    let object = match found {
        Ok(o) => o,
        Err(e) => return e.render(&id, &host),
    };
    let info = match state.services.blobs.stat(&object.sha256).await {
        Ok(i) => i,
        Err(e) => return OssError::from(e).render(&id, &host),
    };
    // OSS's validators: the MD5 ETag (which is what OSS SDKs send back) and the upload time.
    let last_modified = httpdate::fmt_http_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(object.created_at.max(0) as u64),
    );
    let mut r = match super::blobs::serve_as(&state, &info, &oss_etag(&info.md5), &headers).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&object.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-oss-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&last_modified) {
        h.insert(header::LAST_MODIFIED, v);
    }
    h.insert("x-oss-object-type", HeaderValue::from_static("Normal"));
    object_headers(&mut r, &info.md5, info.crc64);
    r
}

#[cfg(test)]
mod tests {
    use super::{fill, origin_of};

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("http://localhost:8911/oss_callback/ota/"),
            "http://localhost:8911"
        );
        assert_eq!(origin_of("https://h?x"), "https://h");
        assert_eq!(origin_of("nope"), "");
    }

    #[test]
    fn callback_templates() {
        let v = |n: &str| match n {
            "object" => Some("ota/a b&c.bin".to_string()),
            "size" => Some("5".to_string()),
            "x:note" => Some("say \"hi\"".to_string()),
            _ => None,
        };
        assert_eq!(
            fill(
                "object=${object}&size=${size}&n=${x:note}&u=${unknown}",
                "application/x-www-form-urlencoded",
                v
            ),
            "object=ota%2Fa+b%26c.bin&size=5&n=say+%22hi%22&u="
        );
        assert_eq!(
            fill(
                r#"{"object":"${object}","note":"${x:note}"}"#,
                "application/json",
                v
            ),
            r#"{"object":"ota/a b&c.bin","note":"say \"hi\""}"#
        );
        assert_eq!(fill("a ${open", "application/json", v), "a ${open");
    }
}
