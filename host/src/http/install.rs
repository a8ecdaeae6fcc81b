//! What the host serves to IoTStack gateways being installed:
//! `GET /install/{device-key}/iot_edge_process.sh` renders the edge installer for that
//! gateway's stored configuration, and `GET /install/{device-key}/packages/{arch}/{version}`
//! says which file `--install ARCH VERSION` downloads. The device key is public; the secret
//! travels only in the install command the operator received, never in the script.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;
use super::error::ApiError;
use crate::catalog::packages::PackageQuery;
use crate::catalog::releases::valid_arch;
use crate::catalog::{Device, StoredInstall};

const TEMPLATE: &str = include_str!("iot_edge_process.sh");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/install/{device_key}/iot_edge_process.sh", get(script))
        .route(
            "/install/{device_key}/packages/{arch}/{version}",
            get(package),
        )
}

/// A POSIX-shell single-quoted word.
fn sh_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The template with each `__NAME__` of `values` replaced by its value as a shell word, in
/// one pass: a value that itself contains `__OTHER__` (a gateway named `gw__CPU_ARCH__`)
/// stays as it is.
fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("__") {
        let after = &rest[start + 2..];
        let value = after.find("__").and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (end, sh_word(v)))
        });
        match value {
            Some((end, word)) => {
                out.push_str(&rest[..start]);
                out.push_str(&word);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[..start + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The gateway a device key names, with its stored install configuration.
async fn gateway(state: &AppState, device_key: &str) -> Result<(Device, StoredInstall), ApiError> {
    let unknown = || ApiError::NotFound(format!("no install script for device key {device_key:?}"));
    let device_id = state
        .services
        .auth
        .device_by_key(device_key)
        .await?
        .ok_or_else(unknown)?;
    let stored = state
        .services
        .catalog
        .install_config(device_id)
        .await?
        .ok_or_else(unknown)?;
    let device = state.services.catalog.device(device_id).await?;
    Ok((device, stored))
}

/// `scheme://host[:port]` of the URL the gateway was told to report to: the address it
/// reaches this host by (the dialect saw it in the `reinstall/create` request).
fn origin(url: &str) -> String {
    url.split('/').take(3).collect::<Vec<_>>().join("/")
}

async fn script(
    State(state): State<AppState>,
    Path(device_key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (device, stored) = gateway(&state, &device_key).await?;
    let report_url = &stored.report_url;
    // The agent's poll sits beside the report endpoint, under the same mount.
    let poll_url = match report_url.strip_suffix("/report") {
        Some(base) => format!("{base}/poll"),
        None => String::new(),
    };
    let body = render(
        TEMPLATE,
        &[
            ("SERVER", &origin(report_url)),
            ("REPORT_URL", report_url),
            ("POLL_URL", &poll_url),
            ("DEVICE_KEY", &device_key),
            ("PRODUCT_SN", &device.product_sn),
            ("GATEWAY_SN", &device.sn),
            ("SOFTWARE_VERSION", &stored.config.software_version),
            ("CPU_ARCH", &stored.config.cpu_arch),
        ],
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    ))
}

/// The file `--install ARCH VERSION` installs, as `key=value` lines a shell reads without a
/// JSON parser: `version`, `arch` (empty for a file built for every architecture), `url`,
/// `sha256` (empty for an external file), `md5`, `size`. The release must be a full release
/// (not a patch) of the gateway's product's main module, and `online`: this answer needs only
/// the public device key, and `test` releases reach only the devices a test campaign names.
async fn package(
    State(state): State<AppState>,
    Path((device_key, arch, version)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    if !valid_arch(&arch) {
        return Err(ApiError::BadRequest(format!(
            "{arch:?} is no CPU architecture"
        )));
    }
    let (device, stored) = gateway(&state, &device_key).await?;
    let query = PackageQuery {
        arch: Some(&arch),
        version: Some(&version),
        ..Default::default()
    };
    let release = state
        .services
        .catalog
        .package(device.tenant_id, &device.product_sn, &query)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "product {} has no release {version} for {arch}; upload one with \
                 `ota-host release create --product {} --version {version} --arch {arch} --file …`",
                device.product_sn, device.product_sn
            ))
        })?;
    let url = match (&release.blob_sha256, &release.external_url) {
        (Some(sha), _) => state
            .services
            .blobs
            .download_url(&origin(&stored.report_url), sha, None),
        (None, url) => url.clone().unwrap_or_default(),
    };
    let body = format!(
        "version={}\narch={}\nurl={url}\nsha256={}\nmd5={}\nsize={}\n",
        release.version,
        release.arch.as_deref().unwrap_or(""),
        release.blob_sha256.as_deref().unwrap_or(""),
        release.md5,
        release.size,
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_once_each_as_shell_words() {
        let t = "A=__A__\nB=__B__\nkeep __NOPE__ and a__b\n";
        let out = render(t, &[("A", "gw__B__x"), ("B", "it's")]);
        assert_eq!(out, "A='gw__B__x'\nB='it'\\''s'\nkeep __NOPE__ and a__b\n");
    }

    #[test]
    fn the_template_has_no_placeholder_left_unfilled() {
        let out = render(
            TEMPLATE,
            &[
                ("SERVER", "s"),
                ("REPORT_URL", "r"),
                ("POLL_URL", "p"),
                ("DEVICE_KEY", "k"),
                ("PRODUCT_SN", "ps"),
                ("GATEWAY_SN", "gs"),
                ("SOFTWARE_VERSION", "v"),
                ("CPU_ARCH", "a"),
            ],
        );
        let left: Vec<&str> = out
            .lines()
            .filter(|l| l.contains("=__") && l.trim_end().ends_with("__"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
