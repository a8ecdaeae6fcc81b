//! Firmware files, `/api/v1/ota/{product_id}/files/[{id}]`: create, list (Django REST
//! framework pages), read, update and delete. A firmware is a release of the product
//! (`ug_type` 0 → module `mcu`, 1 → `wifi`); status 0 test / 1 online / 2 invalid is the
//! release's status, which operators change through the admin API or `ota-host release
//! set-status` (MXChip's API has no call for it). `size` is free text as MXChip prints it
//! ("20kb"), kept beside the release with the `file_url` as registered.

use ota_plugin_sdk::catalog::{
    self, ExternalFile, NewRelease, Payload, Release, ReleaseFilter, ReleasePatch, ReleaseStatus,
};
use ota_plugin_sdk::{HostError, Module, Request, Response, Window, blobs};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::meta::{MxError, ok, respond};
use crate::{authenticate, product_of};
use ota_plugin_sdk::params::Params;

/// Attribute holding `size` as the client wrote it.
const SIZE_ATTR: &str = "mxchip.size";
/// Attribute holding `file_url` as the client wrote it.
const URL_ATTR: &str = "mxchip.file_url";

/// DRF's default page size.
const PAGE_SIZE: u32 = 10;

/// A firmware as every MXChip answer prints it.
#[derive(Serialize)]
struct FileView {
    id: u64,
    product: String,
    ota_type: u8,
    file_name: String,
    file_url: String,
    size: String,
    md5: String,
    version: String,
    mac_range: Option<Vec<String>>,
    customize: String,
    created_at: String,
    updated_at: String,
    description: String,
    status: u8,
    is_delete: bool,
    extra: Map<String, Value>,
}

/// `ug_type` / `ota_type`: 0 mcu, 1 wifi.
pub fn ota_type(m: Module) -> u8 {
    match m {
        Module::Wifi => 1,
        Module::Mcu | Module::Sub => 0,
    }
}

fn status_code(s: ReleaseStatus) -> u8 {
    match s {
        ReleaseStatus::Test => 0,
        ReleaseStatus::Online => 1,
        ReleaseStatus::Invalid => 2,
    }
}

fn attr(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// The URL devices and operators see for a firmware: as registered, else the host's link.
fn file_url(r: &Release, attrs: &[(String, String)]) -> Result<String, MxError> {
    match attr(attrs, URL_ATTR) {
        Some(u) => Ok(u),
        None => Ok(ota_plugin_sdk::release_url(r)?.unwrap_or_default()),
    }
}

fn view(r: &Release) -> Result<FileView, MxError> {
    let attrs = catalog::release_attributes(r.id)?;
    Ok(FileView {
        id: r.id,
        product: r.product_sn.clone(),
        ota_type: ota_type(r.module),
        file_name: r.name.clone(),
        file_url: file_url(r, &attrs)?,
        size: attr(&attrs, SIZE_ATTR).unwrap_or_else(|| r.size.to_string()),
        md5: r.md5.clone(),
        version: r.version.clone(),
        mac_range: (!r.mac_range.is_empty()).then(|| r.mac_range.clone()),
        customize: r.customize.clone(),
        created_at: ota_plugin_sdk::time::format(r.created_at, 'T'),
        updated_at: ota_plugin_sdk::time::format(r.updated_at, 'T'),
        description: r.description.clone(),
        status: status_code(r.status),
        is_delete: false,
        extra: Map::new(),
    })
}

/// Bytes from MXChip's free-text size: `20480`, `20kb`, `20 KB`, `1.5M`, `3mb`.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().ok()?;
    let scale: u64 = match unit.trim().trim_end_matches("ytes") {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    let bytes = n * scale as f64;
    (n.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes.round() as u64)
}

fn check_md5(md5: &str) -> Result<String, MxError> {
    ota_plugin_sdk::params::md5_hex(md5)
        .ok_or_else(|| MxError::BadParam("md5 must be 32 hex characters".into()))
}

/// Where a firmware's bytes are: an object uploaded to this host (its md5, and its size
/// when given in bytes, must match the stored file), or an external URL taken as declared.
/// A URL of this host's object or download space that names nothing stored is a mistake
/// (a typo, an upload that failed), never an external file.
fn payload_of(req: &Request, url: &str, md5: &str, size: &str) -> Result<Payload, MxError> {
    let md5 = check_md5(md5)?;
    let found = blobs::find_url(url)?;
    let ours = ["/oss/", "/blobs/"]
        .iter()
        .any(|space| url.starts_with(&format!("{}{space}", req.host_url())));
    if found.is_none() && ours {
        return Err(MxError::BadParam(format!(
            "file_url {url} names no file uploaded to this server"
        )));
    }
    if let Some(info) = found {
        if md5 != info.md5 {
            return Err(MxError::BadParam(format!(
                "md5 {md5} does not match the uploaded file's {}",
                info.md5
            )));
        }
        if let Ok(n) = size.trim().parse::<u64>()
            && n != info.size
        {
            return Err(MxError::BadParam(format!(
                "size {n} does not match the uploaded file's {} bytes",
                info.size
            )));
        }
        return Ok(Payload::Blob(info.id));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(MxError::BadParam(
            "file_url must be an http:// or https:// URL".into(),
        ));
    }
    let size = parse_size(size).ok_or_else(|| {
        MxError::BadParam(format!(
            "size {size:?} must be a byte count or a size like 20kb"
        ))
    })?;
    Ok(Payload::External(ExternalFile {
        url: url.to_string(),
        md5,
        size,
    }))
}

/// Every live firmware of a product, newest first.
pub fn firmware_of(product: &str) -> Result<Vec<Release>, MxError> {
    let filter = ReleaseFilter {
        product_sn: Some(product.to_string()),
        module: None,
        status: None,
    };
    Ok(ota_plugin_sdk::all_pages(|w| {
        catalog::list_releases(&filter, w).map(|p| (p.items, p.total))
    })?)
}

/// A version is unique within a product, whatever the module.
fn check_version_free(product: &str, version: &str, except: Option<u64>) -> Result<(), MxError> {
    if firmware_of(product)?
        .iter()
        .any(|r| r.version == version && Some(r.id) != except)
    {
        return Err(MxError::BadParam(format!(
            "version {version} already exists in product {product}"
        )));
    }
    Ok(())
}

fn module_of(ug_type: Option<i64>) -> Result<Option<Module>, MxError> {
    match ug_type {
        None => Ok(None),
        Some(0) => Ok(Some(Module::Mcu)),
        Some(1) => Ok(Some(Module::Wifi)),
        Some(n) => Err(MxError::BadParam(format!(
            "ug_type {n} must be 0 (mcu) or 1 (wifi)"
        ))),
    }
}

fn text_within(p: &Params, name: &str, max: usize) -> Result<Option<String>, MxError> {
    let v = p.text(name)?;
    if v.as_ref().is_some_and(|s| s.chars().count() > max) {
        return Err(MxError::BadParam(format!(
            "{name} is longer than {max} characters"
        )));
    }
    Ok(v)
}

/// `POST /api/v1/ota/{product_id}/files/`.
pub fn create(req: &Request) -> Response {
    respond((|| {
        authenticate(req)?;
        let product = product_of(req)?;
        let p = Params::of(req)?;
        let file_name = p.required("file_name")?;
        let file_url = p.required("file_url")?;
        let md5 = p.required("md5")?;
        let size = p.required("size")?;
        let version = p.required("version")?;
        let module = module_of(p.int("ug_type")?)?.unwrap_or(Module::Mcu);
        let description = text_within(&p, "description", 1024)?.unwrap_or_default();
        let customize = text_within(&p, "customize", 1024)?.unwrap_or_default();
        let mac_range = p.list("mac_range")?.unwrap_or_default();
        if file_name.chars().count() > 255 {
            return Err(MxError::BadParam(
                "file_name is longer than 255 characters".into(),
            ));
        }
        check_version_free(&product.sn, &version, None)?;
        let payload = payload_of(req, &file_url, &md5, &size)?;
        let r = catalog::create_release(&NewRelease {
            product_sn: product.sn.clone(),
            module,
            identify: 0,
            name: file_name,
            version,
            from_version: None,
            payload,
            status: ReleaseStatus::Test,
            description,
            customize,
            mac_range,
        })?;
        let facts = [
            (SIZE_ATTR.to_string(), Some(size)),
            (URL_ATTR.to_string(), Some(file_url)),
        ];
        if let Err(e) = catalog::set_release_attributes(r.id, &facts) {
            // No half-written firmware: without its facts it would print wrongly.
            let _ = catalog::delete_release(r.id);
            return Err(e.into());
        }
        Ok(ok("upload file ok", view(&r)?))
    })())
}

/// The page of `page` (1-based) and its size, from `page` and `page_size`.
fn page_params(p: &Params) -> Result<(u64, u32), MxError> {
    let page = p.int("page")?.unwrap_or(1);
    let size = p.int("page_size")?.unwrap_or(i64::from(PAGE_SIZE));
    if page < 1 {
        return Err(MxError::BadParam("invalid page".into()));
    }
    if !(1..=100).contains(&size) {
        return Err(MxError::BadParam("page_size must be 1-100".into()));
    }
    Ok((page as u64, size as u32))
}

/// DRF's `next`/`previous`: this URL with `page` replaced (dropped for page 1).
fn page_link(req: &Request, page: u64) -> String {
    let mut pairs: Vec<(String, String)> = req
        .query_pairs()
        .into_iter()
        .filter(|(k, _)| k != "page")
        .collect();
    if page > 1 {
        pairs.push(("page".into(), page.to_string()));
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let base = format!("{}{}", req.base_url(), req.path());
    if query.is_empty() {
        base
    } else {
        format!("{base}?{}", query.join("&"))
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /api/v1/ota/{product_id}/files/`: newest first, ten a page.
pub fn list(req: &Request) -> Response {
    respond((|| {
        authenticate(req)?;
        let product = product_of(req)?;
        let p = Params::of(req)?;
        let (page, size) = page_params(&p)?;
        let result = catalog::list_releases(
            &ReleaseFilter {
                product_sn: Some(product.sn.clone()),
                module: None,
                status: None,
            },
            Window {
                offset: (page - 1) * u64::from(size),
                limit: size,
            },
        )?;
        let last = result.total.div_ceil(u64::from(size)).max(1);
        if page > last {
            return Err(MxError::BadParam(format!("invalid page {page}")));
        }
        let results = result
            .items
            .iter()
            .map(view)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ok(
            "info list",
            json!({
                "count": result.total,
                "page_size": size,
                "next": (page < last).then(|| page_link(req, page + 1)),
                "previous": (page > 1).then(|| page_link(req, page - 1)),
                "results": results,
            }),
        ))
    })())
}

/// The firmware named by the path's `id`, in the path's product.
fn firmware(req: &Request, product: &str) -> Result<Release, MxError> {
    let raw = req.param("id").unwrap_or_default();
    let id: u64 = raw
        .parse()
        .map_err(|_| MxError::BadParam(format!("id {raw:?} must be an integer")))?;
    match catalog::get_release(id) {
        Ok(r) if r.product_sn == product => Ok(r),
        Ok(_) | Err(HostError::NotFound(_)) => Err(MxError::UnknownId(format!(
            "ot_id错误,找不到任务: no firmware {id}"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/v1/ota/{product_id}/files/{id}`.
pub fn show(req: &Request) -> Response {
    respond((|| {
        authenticate(req)?;
        let product = product_of(req)?;
        let r = firmware(req, &product.sn)?;
        Ok(ok("file info", view(&r)?))
    })())
}

/// `PUT /api/v1/ota/{product_id}/files/{id}`: fields not given keep their values.
pub fn update(req: &Request) -> Response {
    respond((|| {
        authenticate(req)?;
        let product = product_of(req)?;
        let r = firmware(req, &product.sn)?;
        let p = Params::of(req)?;
        if let Some(m) = module_of(p.int("ug_type")?)?
            && m != r.module
        {
            return Err(MxError::BadParam(
                "ug_type of a firmware cannot change".into(),
            ));
        }
        let attrs = catalog::release_attributes(r.id)?;
        let version = p.text("version")?.filter(|v| !v.is_empty());
        if let Some(v) = &version
            && *v != r.version
        {
            check_version_free(&product.sn, v, Some(r.id))?;
        }
        let (url, md5, size) = (
            p.text("file_url")?.filter(|v| !v.is_empty()),
            p.text("md5")?.filter(|v| !v.is_empty()),
            p.text("size")?.filter(|v| !v.is_empty()),
        );
        let file_changes = url.is_some() || md5.is_some() || size.is_some();
        let old_url = file_url(&r, &attrs)?;
        let old_size = attr(&attrs, SIZE_ATTR).unwrap_or_else(|| r.size.to_string());
        let (new_url, new_size) = (
            url.clone().unwrap_or(old_url),
            size.clone().unwrap_or(old_size),
        );
        let payload = if file_changes {
            Some(payload_of(
                req,
                &new_url,
                md5.as_deref().unwrap_or(&r.md5),
                &new_size,
            )?)
        } else {
            None
        };
        let name = text_within(&p, "file_name", 255)?.filter(|v| !v.is_empty());
        let patch = ReleasePatch {
            name,
            version,
            payload,
            description: text_within(&p, "description", 1024)?,
            customize: text_within(&p, "customize", 1024)?,
            mac_range: p.list("mac_range")?,
        };
        let updated = catalog::update_release(r.id, &patch)?;
        if file_changes {
            catalog::set_release_attributes(
                r.id,
                &[
                    (SIZE_ATTR.to_string(), Some(new_size)),
                    (URL_ATTR.to_string(), Some(new_url)),
                ],
            )?;
        }
        let v = view(&updated)?;
        Ok(ok(
            "update file ok",
            json!({
                "ota_type": v.ota_type,
                "file_name": v.file_name,
                "file_url": v.file_url,
                "size": v.size,
                "md5": v.md5,
                "version": v.version,
                "mac_range": v.mac_range,
                "extra": v.extra,
            }),
        ))
    })())
}

/// `DELETE /api/v1/ota/{product_id}/files/{id}`: only test firmware (status 0).
pub fn delete(req: &Request) -> Response {
    respond((|| {
        authenticate(req)?;
        let product = product_of(req)?;
        let r = firmware(req, &product.sn)?;
        if r.status != ReleaseStatus::Test {
            return Err(MxError::WrongState(format!(
                "任务状态错误:仅有测试中的任务可以删除 (firmware {} has status {})",
                r.id,
                status_code(r.status)
            )));
        }
        catalog::delete_release(r.id)?;
        Ok(ok("任务删除成功", json!({ "ot_id": null })))
    })())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("20480"), Some(20480));
        assert_eq!(parse_size("20kb"), Some(20480));
        assert_eq!(parse_size("20 KB"), Some(20480));
        assert_eq!(parse_size("1.5M"), Some(1_572_864));
        assert_eq!(parse_size("3mb"), Some(3 << 20));
        assert_eq!(parse_size("7 bytes"), Some(7));
        assert_eq!(parse_size("big"), None);
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size(""), None);
    }
}
