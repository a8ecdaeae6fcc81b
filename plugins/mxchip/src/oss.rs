//! `GET /oss_token/ota/`: the upload form MXChip's console posts firmware with, in Aliyun
//! OSS's PostObject shape, signed by the host for its own OSS-compatible endpoint (the
//! secret never enters this plugin). `POST /oss_callback/ota/` is the form's callback: the
//! host calls it after storing a file, as the uploading tenant, and the uploader receives its
//! answer: the file's `file_url`, `md5` and `size`, ready for `POST …/files/`.
//!
//! Settings: `upload-dir` (`ota/`), `upload-max-bytes` (64 MiB), `upload-ttl-secs` (1800).

use ota_plugin_sdk::blobs::{self, UploadCallback};
use ota_plugin_sdk::{CredentialScheme, HostError, Request, Response, auth, config};
use serde_json::json;

use crate::authenticate;
use crate::meta::{MxError, ok, respond};

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    config::get(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// `GET /oss_token/ota/`.
pub fn token(req: &Request) -> Response {
    respond((|| {
        authenticate(req)?;
        let dir = config::get("upload-dir").unwrap_or_else(|| "ota/".into());
        let form = blobs::post_policy(
            &dir,
            setting("upload-max-bytes", 64u64 << 20),
            setting("upload-ttl-secs", 1800u32),
            Some(&UploadCallback {
                url: format!("{}/oss_callback/ota/", req.base_url()),
                body: "bucket=${bucket}&object=${object}&etag=${etag}&size=${size}&mimeType=${mimeType}"
                    .into(),
                body_type: "application/x-www-form-urlencoded".into(),
            }),
        )?;
        Ok(ok(
            "oss token",
            json!({
                "accessid": form.access_id,
                "host": form.host,
                "policy": form.policy,
                "signature": form.signature,
                "expire": form.expire,
                "dir": form.dir,
                "callback": form.callback,
            }),
        ))
    })())
}

/// `POST /oss_callback/ota/`: only the host's own delivery after an upload it accepted.
pub fn callback(req: &Request) -> Response {
    respond((|| {
        let from_host = auth::current().is_some_and(|p| {
            p.scheme == CredentialScheme::Hmac && p.subject.starts_with("oss-upload:")
        });
        if !from_host {
            return Err(MxError::Unauthorized(
                "only the upload endpoint delivers callbacks".into(),
            ));
        }
        let object = req
            .form_pairs()
            .into_iter()
            .find(|(k, _)| k == "object")
            .map(|(_, v)| v)
            .ok_or_else(|| MxError::BadParam("missing object".into()))?;
        let stored = blobs::get_object(&object).map_err(|e| match e {
            HostError::NotFound(m) => MxError::UnknownId(m),
            other => other.into(),
        })?;
        let file_name = object.rsplit('/').next().unwrap_or(&object).to_string();
        Ok(ok(
            "upload ok",
            json!({
                "file_name": file_name,
                "file_url": stored.url,
                "md5": stored.blob.md5,
                "size": stored.blob.size.to_string(),
            }),
        ))
    })())
}
