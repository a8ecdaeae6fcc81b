//! `ota:dialect/blobs@0.2.x`: stored files, download links, and the OSS-compatible upload
//! endpoint's forms, objects and URLs.

use super::*;

impl blobs::Host for RequestState {
    async fn stat(&mut self, id: String) -> Result<blobs::BlobInfo, HostError> {
        self.acting()?;
        if !crate::blobs::valid_sha256(&id) {
            return Err(HostError::Invalid(
                "a blob id is 64 lower-case hex characters".into(),
            ));
        }
        let info = self
            .services
            .blobs
            .stat(&id)
            .await
            .map_err(|e| self.blob_err(e))?;
        Ok(blobs::BlobInfo {
            id: info.sha256,
            size: info.size,
            md5: info.md5,
        })
    }

    async fn download_url(
        &mut self,
        id: String,
        ttl_seconds: Option<u32>,
    ) -> Result<String, HostError> {
        let info = self.stat(id).await?;
        if ttl_seconds == Some(0) {
            return Err(HostError::Invalid("ttl-seconds must be at least 1".into()));
        }
        Ok(self
            .services
            .blobs
            .download_url(&self.host_url, &info.id, ttl_seconds.map(u64::from)))
    }

    async fn post_policy(
        &mut self,
        dir: String,
        max_bytes: u64,
        ttl_seconds: u32,
        callback: Option<blobs::UploadCallback>,
    ) -> Result<blobs::UploadForm, HostError> {
        let a = self.acting_tenant()?.clone();
        let callback = match callback {
            Some(cb) => {
                if !cb.url.starts_with(&format!("{}/", self.host_url)) {
                    return Err(HostError::Invalid(format!(
                        "callback URL {} is not on this host ({})",
                        cb.url, self.host_url
                    )));
                }
                Some(crate::uploads::Callback {
                    url: cb.url,
                    body: cb.body,
                    body_type: cb.body_type,
                    plugin: Some(self.plugin.name.clone()),
                })
            }
            None => None,
        };
        let p = self
            .services
            .uploads
            .issue(
                a.tenant_id,
                &self.bucket_url(&a.tenant),
                &dir,
                max_bytes,
                ttl_seconds,
                callback.as_ref(),
            )
            .await
            .map_err(|e| self.upload_err(e))?;
        Ok(blobs::UploadForm {
            access_id: p.access_id,
            host: p.host,
            policy: p.policy,
            signature: p.signature,
            expire: p.expire.max(0) as u64,
            dir: p.dir,
            callback: p.callback,
        })
    }

    async fn get_object(&mut self, key: String) -> Result<blobs::StoredObject, HostError> {
        let a = self.acting_tenant()?.clone();
        let object = self
            .services
            .uploads
            .object(a.tenant_id, &key)
            .await
            .map_err(|e| self.upload_err(e))?
            .ok_or_else(|| HostError::NotFound(format!("no object {key}")))?;
        let blob = self.stat(object.sha256).await?;
        Ok(blobs::StoredObject {
            url: format!("{}/{}", self.bucket_url(&a.tenant), object.key),
            key: object.key,
            blob,
        })
    }

    async fn find_url(&mut self, url: String) -> Result<Option<blobs::BlobInfo>, HostError> {
        let a = self.acting_tenant()?.clone();
        // An object of the tenant's bucket: on the OSS listener, or under `/oss` here.
        let object_key = url
            .strip_prefix(&format!("{}/", self.bucket_url(&a.tenant)))
            .or_else(|| url.strip_prefix(&format!("{}/oss/{}/", self.host_url, a.tenant)))
            .map(|k| k.split(['?', '#']).next().unwrap_or_default());
        if let Some(key) = object_key {
            return self.object_blob(a.tenant_id, key).await;
        }
        let Some(rest) = url.strip_prefix(&format!("{}/", self.host_url)) else {
            return Ok(None);
        };
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        if let Some(id) = path.strip_prefix("blobs/") {
            let sha = id.split('/').next().unwrap_or_default();
            if crate::blobs::valid_sha256(sha) {
                return match self.stat(sha.to_string()).await {
                    Ok(info) => Ok(Some(info)),
                    Err(HostError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                };
            }
        }
        Ok(None)
    }
}

impl RequestState {
    /// The stored file behind an object key of the tenant's bucket (as written, or
    /// percent-decoded as OSS SDKs send keys), none when there is no such object.
    pub(super) async fn object_blob(
        &mut self,
        tenant_id: i64,
        key: &str,
    ) -> Result<Option<blobs::BlobInfo>, HostError> {
        let decoded = crate::http::oss::percent_decode(key);
        for k in [key, decoded.as_str()] {
            if let Some(o) = self
                .services
                .uploads
                .object(tenant_id, k)
                .await
                .map_err(|e| self.upload_err(e))?
            {
                return blobs::Host::stat(self, o.sha256).await.map(Some);
            }
        }
        Ok(None)
    }

    /// The tenant's bucket on the OSS-compatible upload endpoint.
    pub(super) fn bucket_url(&self, tenant: &str) -> String {
        match &self.oss_url {
            Some(oss) => format!("{oss}/{tenant}"),
            None => format!("{}/oss/{tenant}", self.host_url),
        }
    }

    pub(super) fn upload_err(&self, e: crate::uploads::UploadError) -> HostError {
        use crate::uploads::UploadError as U;
        match e {
            U::Invalid(m) | U::BadPolicy(m) => HostError::Invalid(m),
            U::Storage(e) => self.internal("upload storage", e),
            e => HostError::Unauthenticated(e.to_string()),
        }
    }
}
