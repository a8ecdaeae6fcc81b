//! Install scripts the host serves to gateways: `GET /install/{device-key}/iot_edge_process.sh`
//! renders the edge installer for that gateway's stored configuration (server, report URL,
//! version, architecture). The device key is public; the secret travels only in the install
//! command the operator received, never in the script.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;
use super::error::ApiError;

const TEMPLATE: &str = include_str!("iot_edge_process.sh");

pub fn router() -> Router<AppState> {
    Router::new().route("/install/{device_key}/iot_edge_process.sh", get(script))
}

/// A POSIX-shell single-quoted word.
fn sh_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

async fn script(
    State(state): State<AppState>,
    Path(device_key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let unknown = || ApiError::NotFound(format!("no install script for device key {device_key:?}"));
    let device_id = state
        .services
        .auth
        .device_by_key(&device_key)
        .await?
        .ok_or_else(unknown)?;
    let stored = state
        .services
        .catalog
        .install_config(device_id)
        .await?
        .ok_or_else(unknown)?;
    let server = stored
        .report_url
        .split('/')
        .take(3)
        .collect::<Vec<_>>()
        .join("/");
    let body = TEMPLATE
        .replace("__SERVER__", &sh_word(&server))
        .replace("__REPORT_URL__", &sh_word(&stored.report_url))
        .replace("__DEVICE_KEY__", &sh_word(&device_key))
        .replace(
            "__SOFTWARE_VERSION__",
            &sh_word(&stored.config.software_version),
        )
        .replace("__CPU_ARCH__", &sh_word(&stored.config.cpu_arch));
    Ok((
        [
            (header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    ))
}
